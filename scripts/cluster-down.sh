#!/usr/bin/env bash
# cluster-down.sh — stops the cluster of scripts/cluster-up.sh and removes what it created.
#
#   scripts/cluster-down.sh
#
# In order: kube-scheduler and kube-controller-manager (so that no controller reacts to what
# follows); the kubelet and kube-proxy; every container through ctr (kill, delete: the shims
# exit and unmount the root filesystems); containerd; kube-apiserver; etcd — each by its pid
# file in $STATE/run (the pid must still be that program). Then it kills what is left in the
# kubepods cgroups and shims still attached to this cluster's containerd socket, unmounts
# everything below $STATE (the pods' network namespaces among them: their veths go with
# them), removes the kubepods cgroups cluster-up.sh saw appear, any veth still on the bridge
# and the bridge cni0 ($STATE/bridge.created), the nft tables of cluster-up.sh and kube-proxy
# ($STATE/nft.created), the iptables chains the kubelet added and the iptables-nft tables
# made for them ($STATE/iptables.before, nft-tables.before: what was there before),
# restores the sysctls the kubelet, kube-proxy and the pod network changed
# ($STATE/sysctl.saved), removes the kubelet's /var/log/containers links into $STATE, and
# deletes $STATE except logs/.
#
# Safe to run twice, without a cluster, and after a failed or interrupted cluster-up.sh. It
# only touches a $STATE that cluster-up.sh marked (.kpod-cluster) and refuses to delete files
# while something is still mounted below $STATE.
# Environment: KPOD_CLUSTER_STATE (default /tmp/kpod-cluster).
set -euo pipefail

STATE=${KPOD_CLUSTER_STATE:-/tmp/kpod-cluster}
case ${1:-} in
-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
"") ;;
*) echo "cluster-down: unknown argument '$1'" >&2; exit 2 ;;
esac
case $STATE in /?*) ;; *) echo "cluster-down: KPOD_CLUSTER_STATE must be an absolute path" >&2; exit 1 ;; esac
STATE=${STATE%/}

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
T_START=$(now_ms)
T_STEP=$T_START
TIMINGS=()
step_done() { # step_done <name>
	local t
	t=$(now_ms)
	TIMINGS+=("$(printf '%-22s %s' "$1" "$(fmt_ms $((t - T_STEP)))")")
	T_STEP=$t
}

if [ ! -e "$STATE/.kpod-cluster" ]; then
	echo "cluster-down: no cluster in $STATE, nothing to do"
	exit 0
fi
exec 9>"$STATE/.lock"
if ! flock -w 60 9; then
	echo "cluster-down: $STATE/.lock is held (a cluster-up.sh still running?)" >&2
	exit 1
fi
[ -e "$STATE/.kpod-cluster" ] || { echo "cluster-down: no cluster in $STATE, nothing to do"; exit 0; }

FAILED=0
warn() { echo "cluster-down: $*" >&2; FAILED=1; }

# pid_of <name> <exe name>: the pid in run/<name>.pid if that process still runs <exe name>.
pid_of() {
	local pid exe
	pid=$(cat "$STATE/run/$1.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	exe=${exe% (deleted)}
	[ "${exe##*/}" = "$2" ] && echo "$pid"
}

# running <pid>: the process exists and is not a zombie (PID 1 here may reap them late).
running() {
	local st
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ] && [ "$st" != X ]
}

# stop <name> <exe name> <seconds>: SIGTERM, then SIGKILL after <seconds> (0: SIGKILL at once).
stop() {
	local name=$1 exe=$2 secs=$3 pid i
	if pid=$(pid_of "$name" "$exe"); then
		[ "$secs" = 0 ] || kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < secs * 10; i++)); do
			running "$pid" || break
			sleep 0.1
		done
		if running "$pid"; then
			[ "$secs" = 0 ] || echo "cluster-down: $name (pid $pid) did not stop in ${secs}s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
			for ((i = 0; i < 50; i++)); do running "$pid" || break; sleep 0.1; done
		fi
		! running "$pid" || warn "$name (pid $pid) is still running"
		echo "cluster-down: stopped $name (pid $pid)"
	fi
	rm -f "$STATE/run/$name.pid"
	step_done "$name"
}

SOCK=$STATE/containerd/containerd.sock
CTR=$(cat "$STATE/run/ctr.path" 2>/dev/null || echo /usr/bin/ctr) # the ctr matching the containerd that ran

# ---- 1. controllers, kubelet, kube-proxy ----------------------------------------------------
# Stateless (everything they did is in etcd, deleted below): no graceful shutdown.
stop kube-scheduler kube-scheduler 0
stop kube-controller-manager kube-controller-manager 0
stop kubelet kubelet 20
stop kube-proxy kube-proxy 0

# ---- 2. containers, through containerd -------------------------------------------------------
if pid_of containerd containerd >/dev/null && [ -x "$CTR" ]; then
	ctrn=("$CTR" --address "$SOCK" --namespace k8s.io)
	tasks=$("${ctrn[@]}" tasks ls -q 2>/dev/null || true)
	for t in $tasks; do "${ctrn[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
	for t in $tasks; do
		for ((i = 0; i < 50; i++)); do
			st=$("${ctrn[@]}" tasks ls 2>/dev/null | awk -v t="$t" '$1 == t { print $3 }')
			[ "$st" = RUNNING ] || break
			sleep 0.1
		done
		"${ctrn[@]}" tasks delete -f "$t" >/dev/null 2>&1 || "${ctrn[@]}" tasks delete "$t" >/dev/null 2>&1 || true
	done
	for c in $("${ctrn[@]}" containers ls -q 2>/dev/null || true); do
		"${ctrn[@]}" containers delete "$c" >/dev/null 2>&1 || true
	done
	[ -z "$tasks" ] || echo "cluster-down: killed and deleted $(echo "$tasks" | wc -w) containers through ctr"
fi
step_done containers

# ---- 3. containerd, kube-apiserver, etcd ---------------------------------------------------
stop containerd containerd 15
# The API server's and etcd's state is deleted below: a graceful shutdown (~5 s) buys nothing.
stop kube-apiserver kube-apiserver 0
stop etcd etcd 0

# ---- 4. leftovers: processes in the kubepods cgroups, orphaned shims -------------------------
CG_CREATED=()
if [ -f "$STATE/cgroups.created" ]; then mapfile -t CG_CREATED <"$STATE/cgroups.created"; fi
# cg_procs: pids of every process in a kubepods cgroup this cluster created.
cg_procs() {
	local m
	for m in "${CG_CREATED[@]}"; do
		[ -d "$m/kubepods" ] || continue
		find "$m/kubepods" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -un
}
# shims started by this cluster's containerd: its socket on their command line.
our_shims() {
	local f pid exe
	[ -d "$STATE/containerd" ] || return 0
	grep -lsF -- "$SOCK" /proc/[0-9]*/cmdline | while read -r f; do
		pid=${f#/proc/} pid=${pid%/cmdline}
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		case ${exe##*/} in containerd-shim*) echo "$pid" ;; esac
	done || true
}
for round in 1 2 3; do
	pids=$(cg_procs; our_shims)
	[ -n "$pids" ] || break
	[ $round != 1 ] || echo "cluster-down: killing leftover processes: $(echo "$pids" | tr '\n' ' ')"
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	sleep 0.3
done
left=$(cg_procs; our_shims)
[ -z "$left" ] || warn "processes are left in the kubepods cgroups or as shims: $(echo "$left" | tr '\n' ' ')"
step_done leftover-processes

# ---- 5. mounts below $STATE ------------------------------------------------------------------
mounts_below() { # mount points below $STATE, deepest first (octal escapes of mountinfo decoded)
	awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do printf '%b\n' "$m"; done |
		awk -v s="$STATE/" 'index($0, s) == 1' | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}
n=0
for round in 1 2 3; do
	ms=$(mounts_below)
	[ -n "$ms" ] || break
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
		n=$((n + 1))
	done <<<"$ms"
done
[ $n = 0 ] || echo "cluster-down: unmounted $n mounts below $STATE"
step_done unmount

# ---- 6. kubepods cgroups ---------------------------------------------------------------------
for m in "${CG_CREATED[@]}"; do
	[ -d "$m/kubepods" ] || continue
	for round in 1 2 3 4 5; do
		find "$m/kubepods" -depth -type d -exec rmdir {} + 2>/dev/null || true
		[ -d "$m/kubepods" ] || break
		sleep 0.2
	done
	[ ! -d "$m/kubepods" ] || warn "could not remove $m/kubepods"
done
rm -f "$STATE/cgroups.created"
step_done cgroups

# ---- 7. pod network: veths, cni0, nft tables, the kubelet's iptables chains -------------------
# The pods' network namespaces went with their processes and mounts (step 5); their veths go
# with them (the kernel frees a namespace asynchronously): wait, then remove what is left.
if [ -f "$STATE/bridge.created" ]; then
	br=$(cat "$STATE/bridge.created")
	if [ -n "$br" ] && ip link show "$br" >/dev/null 2>&1; then
		ports() { ip -o link show master "$br" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1; }
		for ((i = 0; i < 50; i++)); do
			[ -n "$(ports)" ] || break
			sleep 0.1
		done
		for v in $(ports); do
			if ip link del "$v"; then echo "cluster-down: deleted $v (a pod's veth left on $br)"; else warn "could not delete $v"; fi
		done
		if ip link del "$br"; then
			echo "cluster-down: deleted the bridge $br"
		else
			warn "could not delete the bridge $br"
		fi
	fi
	[ $FAILED = 1 ] || rm -f "$STATE/bridge.created"
fi
# nft.created: "<family> <table>" per line (an older cluster-up wrote the table name alone).
if [ -f "$STATE/nft.created" ]; then
	while read -r fam table; do
		[ -n "$fam" ] || continue
		[ -n "$table" ] || { table=$fam fam=ip; }
		nft list table "$fam" "$table" >/dev/null 2>&1 || continue
		if nft delete table "$fam" "$table"; then
			echo "cluster-down: deleted nft table $fam $table"
		else
			warn "could not delete nft table $fam $table"
		fi
	done <"$STATE/nft.created"
	[ $FAILED = 1 ] || rm -f "$STATE/nft.created"
fi
# The kubelet's iptables chains that were not there before it started (iptables.before), then
# the iptables-nft tables that appeared with them, if nothing else put a rule in them.
if [ -f "$STATE/iptables.before" ]; then
	for ipt in iptables ip6tables; do
		command -v $ipt >/dev/null || continue
		for t in mangle nat filter; do
			for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
				$ipt -w 5 -t $t -S $c >/dev/null 2>&1 || continue
				! grep -qx "$ipt $t $c" "$STATE/iptables.before" || continue
				for from in INPUT OUTPUT; do
					while $ipt -w 5 -t $t -D $from -j $c 2>/dev/null; do :; done
				done
				if $ipt -w 5 -t $t -F $c && $ipt -w 5 -t $t -X $c; then
					echo "cluster-down: deleted the kubelet's $ipt chain $c (table $t)"
				else
					warn "could not delete the kubelet's $ipt chain $c (table $t)"
				fi
			done
		done
	done
	if [ -f "$STATE/nft-tables.before" ]; then
		for ft in "ip mangle" "ip nat" "ip filter" "ip6 mangle" "ip6 nat" "ip6 filter"; do
			! grep -qx "table $ft" "$STATE/nft-tables.before" || continue
			# shellcheck disable=SC2086
			body=$(nft list table $ft 2>/dev/null) || continue
			# (a table of base chains without rules: every line is a brace, a chain, a hook or a comment)
			if ! grep -vqE '^\s*(table|chain|type|\}|#|$)' <<<"$body"; then
				# shellcheck disable=SC2086
				nft delete table $ft && echo "cluster-down: deleted nft table $ft (made for the kubelet's iptables chains)"
			fi
		done
	fi
	[ $FAILED = 1 ] || rm -f "$STATE/iptables.before" "$STATE/nft-tables.before"
fi
step_done network

# ---- 8. sysctls ---------------------------------------------------------------------------
if [ -f "$STATE/sysctl.saved" ]; then
	while IFS='=' read -r k v; do
		[ -n "$k" ] || continue
		f=/proc/sys/${k//.//}
		if [ "$(cat "$f" 2>/dev/null)" != "$v" ]; then
			if echo "$v" >"$f" 2>/dev/null; then
				echo "cluster-down: restored $k=$v"
			else
				warn "could not restore $k=$v"
			fi
		fi
	done <"$STATE/sysctl.saved"
	[ $FAILED = 1 ] || rm -f "$STATE/sysctl.saved"
fi
step_done sysctls

# ---- 9. files --------------------------------------------------------------------------------
# The kubelet links container logs from /var/log/containers (not configurable).
if [ -d /var/log/containers ]; then
	for l in /var/log/containers/*; do
		[ -L "$l" ] || continue
		case $(readlink "$l") in "$STATE"/*) rm -f "$l" ;; esac
	done
fi
# exe_running <name>: some process runs a program called <name> (another containerd/kubelet).
exe_running() {
	local e
	for e in /proc/[0-9]*/exe; do
		e=$(readlink "$e" 2>/dev/null) || continue
		e=${e% (deleted)}
		[ "${e##*/}" != "$1" ] || return 0
	done
	return 1
}
if [ -f "$STATE/host-dirs.created" ]; then
	while read -r d; do
		case $d in
		/run/containerd) owner=containerd ;;
		/var/lib/kubelet | /var/log/containers) owner=kubelet ;;
		*) continue ;;
		esac
		[ -e "$d" ] || continue
		if exe_running "$owner"; then
			echo "cluster-down: another $owner is running now, leaving $d"
		elif awk -v d="$d/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
			warn "something is mounted below $d, leaving it"
		else
			rm -rf --one-file-system "$d"
			echo "cluster-down: removed $d (created by this cluster)"
		fi
	done <"$STATE/host-dirs.created"
fi
if [ -n "$(mounts_below)" ]; then
	warn "still mounted below $STATE, not deleting its files: $(mounts_below | tr '\n' ' ')"
elif [ $FAILED = 1 ]; then
	echo "cluster-down: something failed above; keeping $STATE for a second run" >&2
else
	find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs ! -name .lock ! -name .kpod-cluster -exec rm -rf --one-file-system {} +
	rm -f "$STATE/.kpod-cluster"
fi
step_done files

echo "cluster-down: done in $(fmt_ms $(($(now_ms) - T_START)))$([ $FAILED = 0 ] || echo ' WITH ERRORS')"
printf 'cluster-down:   %s\n' "${TIMINGS[@]}"
[ $FAILED = 0 ] || exit 1
echo "cluster-down: logs kept in $STATE/logs"
