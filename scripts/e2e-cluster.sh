#!/usr/bin/env bash
# e2e-cluster.sh — kpod end to end in a real single-node Kubernetes cluster (`make e2e-cluster`).
#
#   scripts/e2e-cluster.sh            # needs root, a BTF kernel, _build/otelcol-kpod (make otelcol)
#
# 1. builds what is missing: the cluster's binaries and helm (scripts/k8s-build.sh, cached
#    outside the clone), the static kpod-workload binary (gcc, from internal/fakepod/workload)
#    and kpod-l7app (Go, internal/fakepod/l7app: the HTTP server and the HTTP and Redis clients);
# 2. starts the cluster (scripts/cluster-up.sh: etcd, kube-apiserver, kube-controller-manager,
#    kube-scheduler, containerd, kubelet on 127.0.0.1) in $KPOD_CLUSTER_STATE
#    (default /tmp/kpod-e2e-cluster);
# 3. imports two images built with umoci into the node's containerd: otelcol-kpod as
#    localhost/otelcol-kpod:dev (scripts/image.sh, as the README's quick start does), and
#    localhost/kpod-workload (busybox-static, /kpod-workload, /kpod-l7app, and Debian's
#    redis-server with the shared libraries it links);
# 4. runs the Go test test/e2ecluster (build tag e2ecluster): it installs charts/kpod with
#    `helm install` (image.repository/tag set to that image), starts workload pods and checks
#    what the DaemonSet exports (see its package comment);
# 5. always (also on failure or Ctrl-C): scripts/cluster-down.sh, then checks that nothing of
#    the run is left: processes, mounts, kubepods cgroups, network namespaces, the pod network
#    (cni0, pod veths, ip_forward back to its value before the run), loop devices, the nft
#    tables (kpod_cluster, kube-proxy's) and iptables chains of the kubelet that were not
#    there before. A leak fails the run.
#
# Environment: KPOD_CLUSTER_STATE, KPOD_K8S_BIN (see scripts/k8s-build.sh),
# KPOD_E2E_KEEP=1 (leave the cluster running after the test, for debugging; clean up with
# KPOD_CLUSTER_STATE=<state> scripts/cluster-down.sh), KPOD_E2E_RUN (go test -run pattern),
# KPOD_E2E_TIMEOUT (go test -timeout, default 30m),
# KPOD_E2E_SNAPSHOT_DIR (where the test writes its two scrapes and the collector's log;
# default _build/e2e-cluster). Timings of every phase are printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KPOD_CLUSTER_STATE=${KPOD_CLUSTER_STATE:-/tmp/kpod-e2e-cluster}
STATE=${KPOD_CLUSTER_STATE%/}
WORK=$STATE-work # host files of the test (workload binary, hostPath dirs, loop device image)

die() { echo "e2e-cluster: $*" >&2; exit 1; }
case ${1:-} in -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;; "") ;; *) die "unknown argument '$1'" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (a kubelet, containerd and BPF programs)"
[ -e /sys/kernel/btf/vmlinux ] || die "needs a kernel with BTF (/sys/kernel/btf/vmlinux)"
[ -x "$ROOT/_build/otelcol-kpod" ] || die "_build/otelcol-kpod is missing: run make otelcol (make e2e-cluster does)"
# Debian packages beyond `make deps` and what cluster-up.sh installs itself.
pkgs=()
for p in bpftool nftables umoci e2fsprogs gcc libc6-dev redis-server redis-tools util-linux iproute2; do dpkg -s $p >/dev/null 2>&1 || pkgs+=("$p"); done
if [ ${#pkgs[@]} -gt 0 ]; then
	echo "e2e-cluster: apt-get install ${pkgs[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# ---- timing ---------------------------------------------------------------------------------
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
T_START=$(now_ms)
T_PHASE=$T_START
PHASE=preflight
TIMINGS=()
phase() {
	local t
	t=$(now_ms)
	TIMINGS+=("$(printf '%-16s %s' "$PHASE" "$(fmt_ms_min $((t - T_PHASE)))")")
	echo "e2e-cluster: ---- $PHASE done in $(fmt_ms_min $((t - T_PHASE))); now: $1"
	PHASE=$1 T_PHASE=$t
}

# ---- leak checks ----------------------------------------------------------------------------
BIN=$("$ROOT/scripts/k8s-build.sh" --bin-dir)
# leaks: prints what this run (or any kpod cluster) left behind, one line each.
leaks() {
	local f pid exe cg m
	# processes: in a kubepods cgroup, running a cluster binary, or naming the state dir
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		[ "$pid" != $$ ] || continue
		exe=$(readlink "$f/exe" 2>/dev/null) || continue
		exe=${exe% (deleted)}
		cg=$(cat "$f/cgroup" 2>/dev/null) || continue
		# (the kubelet's cgroupfs tree is /kubepods at the root of each hierarchy; the fakepod
		# harness of other tests nests its fake ones below a prefix)
		case $'\n'$cg in *:/kubepods/* | *:/kubepods$'\n'*) echo "process $pid ($exe) in a kubepods cgroup"; continue ;; esac
		case $exe in "$BIN"/* | "$WORK"/*) echo "process $pid ($exe)"; continue ;; esac
		if grep -qsF -- "$STATE" "$f/cmdline"; then echo "process $pid ($exe $(tr '\0' ' ' <"$f/cmdline" | cut -c1-120))"; fi
	done
	# mounts below the state or work directory, the kubelet's, containerd's, kubepods
	awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do
		m=$(printf '%b' "$m")
		case $m in "$STATE" | "$STATE"/* | "$WORK" | "$WORK"/* | /var/lib/kubelet/* | /run/containerd/*) echo "mount $m" ;; esac
	done
	# cgroups
	for m in $(awk '$9 ~ /^cgroup2?$/ { print $5 }' /proc/self/mountinfo); do
		[ ! -d "$m/kubepods" ] || echo "cgroup $m/kubepods"
	done
	# network namespaces of pods (containerd names them cni-<uuid>)
	for f in /run/netns/cni-* /var/run/netns/cni-*; do [ ! -e "$f" ] || echo "netns $f"; done
	# loop devices over files of this run
	losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$WORK/" 'index($2, w) == 1 { print "loop device " $1 " (" $2 ")" }'
	# the pod network: the bridge, pods' veths (the CNI bridge plugin names them veth<8 hex>),
	# the nft tables of cluster-up.sh and kube-proxy, the kubelet's iptables chains and
	# ip_forward (compared with what was there when this run began)
	! ip link show cni0 >/dev/null 2>&1 || echo "network interface cni0"
	ip -o link show type veth 2>/dev/null | awk -F': ' '{ split($2, n, "@") } n[1] ~ /^veth[0-9a-f]{8}$/ { print "veth " n[1] }'
	for f in "ip kpod_cluster" "ip kube-proxy" "ip6 kube-proxy"; do
		# shellcheck disable=SC2086
		! nft list table $f >/dev/null 2>&1 || echo "nft table $f"
	done
	kubelet_chains | grep -vxF -f <(printf '%s\n' "$CHAINS_BEFORE") | sed 's/^/iptables chain (kubelet): /' || true
	[ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$FORWARD_BEFORE" ] || echo "net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward) (was $FORWARD_BEFORE)"
}
# kubelet_chains: the iptables chains the kubelet adds (as scripts/cluster-up.sh lists them).
kubelet_chains() {
	local ipt t c
	for ipt in iptables ip6tables; do
		command -v $ipt >/dev/null || continue
		for t in mangle nat filter; do
			for c in KUBE-IPTABLES-HINT KUBE-KUBELET-CANARY KUBE-FIREWALL; do
				! $ipt -w 5 -t $t -S $c >/dev/null 2>&1 || echo "$ipt $t $c"
			done
		done
	done
}
CHAINS_BEFORE=$(kubelet_chains)
FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)

# cleanup_work removes the test's host files: what the test's own cleanup did not get to (a
# panic, a timeout, Ctrl-C) is unmounted and detached here, after cluster-down killed the pods.
cleanup_work() {
	local m d
	[ -d "$WORK" ] || return 0
	awk '{ print $5 }' /proc/self/mountinfo | while read -r m; do printf '%b\n' "$m"; done |
		awk -v w="$WORK/" 'index($0, w) == 1' | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" || true
		echo "e2e-cluster: unmounted $m (left by the test)"
	done
	losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$WORK/" 'index($2, w) == 1 { print $1 }' | while read -r d; do
		losetup -d "$d" || true
		echo "e2e-cluster: detached $d (left by the test)"
	done
	rm -rf --one-file-system "$WORK" || true
}

# ---- teardown, always -------------------------------------------------------------------------
RC=0
CLUSTER=0
finish() {
	local rc=$? left
	[ $RC != 0 ] || RC=$rc
	trap - EXIT INT TERM
	if [ $CLUSTER = 1 ] && [ "${KPOD_E2E_KEEP:-0}" = 1 ]; then
		echo "e2e-cluster: KPOD_E2E_KEEP=1: the cluster keeps running; . $STATE/env; remove it with KPOD_CLUSTER_STATE=$STATE scripts/cluster-down.sh"
	else
		phase cluster-down
		if [ $CLUSTER = 1 ] || [ -e "$STATE/.kpod-cluster" ]; then
			"$ROOT/scripts/cluster-down.sh" || { echo "e2e-cluster: cluster-down.sh failed" >&2; RC=1; }
		fi
		cleanup_work
		phase leak-check
		left=$(leaks)
		if [ -n "$left" ]; then
			echo "e2e-cluster: LEFT BEHIND after cluster-down:" >&2
			echo "$left" | sed 's/^/e2e-cluster:   /' >&2
			RC=1
		else
			echo "e2e-cluster: nothing left behind (processes, mounts, kubepods cgroups, pod netns, cni0, veths, ip_forward, loop devices, nft tables, iptables chains)"
		fi
	fi
	phase end
	echo "e2e-cluster: $([ $RC = 0 ] && echo PASS || echo "FAIL (exit $RC)") in $(fmt_ms_min $(($(now_ms) - T_START)))"
	printf 'e2e-cluster:   %s\n' "${TIMINGS[@]}"
	exit $RC
}
trap finish EXIT
trap 'RC=130; exit 130' INT
trap 'RC=143; exit 143' TERM

before=$(leaks)
[ -z "$before" ] || die "leftovers of an earlier cluster or run; remove them first (scripts/cluster-down.sh with its KPOD_CLUSTER_STATE):
$before"

phase k8s-build
# ---- binaries ---------------------------------------------------------------------------------
"$ROOT/scripts/k8s-build.sh" -q etcd apiserver controller-manager scheduler proxy kubectl kubelet cni helm

phase workload
# The workload: the fakepod harness's static C program (no dynamic loader: the only system
# calls, forks and execs are the ones a pod asks for).
mkdir -p "$WORK"
gcc -static -O2 -pthread -o "$WORK/kpod-workload" "$ROOT/internal/fakepod/workload/workload.c"
# kpod-l7app: the HTTP server and the HTTP and Redis clients of the Service scenario (static Go).
(cd "$ROOT" && CGO_ENABLED=0 go build -ldflags='-s -w' -o "$WORK/kpod-l7app" ./internal/fakepod/l7app)

phase cluster-up
CLUSTER=1
"$ROOT/scripts/cluster-up.sh"
# shellcheck disable=SC1091
. "$STATE/env"

phase images
# otelcol-kpod under the name the test gives the chart (imagePullPolicy IfNotPresent finds it).
export KPOD_E2E_IMAGE=localhost/otelcol-kpod:dev
"$ROOT/scripts/image.sh" --tag "$KPOD_E2E_IMAGE" -o "$WORK/otelcol-kpod-image.tar"
# localhost/kpod-workload:<hash>: busybox-static (a shell for the pods' commands),
# /kpod-workload, /kpod-l7app and Debian's redis-server (with the shared libraries ldd lists,
# at their own paths, and the host's merged-/usr links).
R=$WORK/workload-rootfs
busybox_rootfs "$R"
install -m 0755 "$WORK/kpod-workload" "$R/kpod-workload"
install -m 0755 "$WORK/kpod-l7app" "$R/kpod-l7app"
REDIS=$(command -v redis-server) || die "redis-server is not installed (apt-get install redis-server)"
mkdir -p "$R/usr/lib" "$R/usr/lib64"
for d in lib lib64; do [ ! -L "/$d" ] || ln -s "usr/$d" "$R/$d"; done
for f in "$REDIS" $(ldd "$REDIS" | grep -o '/[^ ]*'); do
	mkdir -p "$R$(dirname "$f")"
	cp -L "$f" "$R$f"
done
WL_TAG=$(cat /bin/busybox "$WORK/kpod-workload" "$WORK/kpod-l7app" "$REDIS" | sha256sum | cut -c1-12)
L=$WORK/workload-layout
umoci init --layout "$L"
umoci new --image "$L:$WL_TAG"
umoci insert --image "$L:$WL_TAG" "$R" /
umoci config --image "$L:$WL_TAG" --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
umoci gc --layout "$L"
tar -C "$L" -cf "$WORK/workload-image.tar" .
rm -rf "$L" "$R"
"$KPOD_CTR" --address "$CONTAINERD_ADDRESS" --namespace k8s.io images import --base-name localhost/kpod-workload "$WORK/workload-image.tar" >/dev/null 2>>"$STATE/logs/ctr.log"
export KPOD_E2E_WORKLOAD_IMAGE=localhost/kpod-workload:$WL_TAG
echo "e2e-cluster: images $KPOD_E2E_IMAGE and $KPOD_E2E_WORKLOAD_IMAGE imported"

phase test
# ---- the Go test ------------------------------------------------------------------------------
export KPOD_E2E_WORK=$WORK
export KPOD_E2E_SNAPSHOT_DIR=${KPOD_E2E_SNAPSHOT_DIR:-$ROOT/_build/e2e-cluster}
set +e
# TMPDIR: the test's temporary directories (the loop device's image) are below $WORK too.
mkdir -p "$WORK/tmp"
(cd "$ROOT" && TMPDIR=$WORK/tmp go test -tags e2ecluster -count=1 -timeout "${KPOD_E2E_TIMEOUT:-30m}" -v ${KPOD_E2E_RUN:+-run "$KPOD_E2E_RUN"} ./test/e2ecluster/)
RC=$?
set -e
exit $RC
