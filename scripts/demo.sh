#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup and kill_cgroup run from the EXIT trap
# scripts/demo.sh — run kpod on this host, against two demo pods (`make run` calls it).
#
# As root it:
#   1. finds the cgroup2 mount and the cgroup v1 controller mounts in /proc/self/mountinfo;
#   2. creates two pods laid out like the kubelet's cgroupfs driver, under a kpod-demo prefix
#      (so a real kubelet's tree is never touched), in the cgroup2 hierarchy and in every v1
#      controller hierarchy:
#        <root>/kpod-demo/kubepods/burstable/pod<uuid>/<64-hex container id>   "writer"
#        <root>/kpod-demo/kubepods/besteffort/pod<uuid>/<64-hex container id>  "idle"
#   3. runs workloads in them: the writer loops `dd oflag=direct` to /var/tmp/kpod-demo-1.img
#      plus a fork loop, the idle pod runs `sleep`;
#   4. starts _build/otelcol-kpod --config examples/collector-local.yaml and every 15 s shows
#      the demo pods' kpod_* series from http://127.0.0.1:9464/metrics.
# It runs until Ctrl-C, or for $DEMO_SECONDS seconds if set, and on exit kills the collector
# and the workloads and removes every cgroup and file it created.
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$REPO/_build/otelcol-kpod
CONFIG=$REPO/examples/collector-local.yaml
METRICS_URL=http://127.0.0.1:9464/metrics
HEALTH_URL=http://127.0.0.1:13133/
PREFIX=kpod-demo
INTERVAL=15

die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (BPF programs and cgroup directories need it): sudo make run"
[ -x "$BIN" ] || die "$BIN not found: run make otelcol first"
command -v curl >/dev/null || die "curl is needed (make deps installs it)"
if [ -n "${DEMO_SECONDS:-}" ] && ! [[ $DEMO_SECONDS =~ ^[0-9]+$ ]]; then
	die "DEMO_SECONDS must be a number of seconds, got '$DEMO_SECONDS'"
fi

# ---- state for cleanup -------------------------------------------------------------------
ROOTS=()          # the cgroup2 mount first, then one mount point per v1 hierarchy
V2=""             # the cgroup2 mount
CREATED=()        # relative cgroup paths this script created, parents first
CONTAINERS=()     # relative paths of the demo containers
WORKLOAD_PIDS=()  # the workloads' top processes
FILES=()          # files to remove
COLLECTOR_PID=""
TMPDIR_DEMO=""
CLEANED=0

# kill_cgroup kills every process in the cgroup2 directory of rel until it is empty.
kill_cgroup() {
	local procs=$V2/$1/cgroup.procs pids i
	for i in $(seq 1 200); do
		[ -r "$procs" ] || return 0
		pids=$(cat "$procs" 2>/dev/null)
		[ -z "$pids" ] && return 0
		# shellcheck disable=SC2086
		kill -9 $pids 2>/dev/null
		sleep 0.05
	done
	echo "demo: processes still in $V2/$1: $(tr '\n' ' ' <"$procs" 2>/dev/null)" >&2
}

cleanup() {
	[ "$CLEANED" = 1 ] && return
	CLEANED=1
	trap - INT TERM
	echo
	echo "demo: cleaning up"
	if [ -n "$COLLECTOR_PID" ] && kill -0 "$COLLECTOR_PID" 2>/dev/null; then
		kill -TERM "$COLLECTOR_PID" 2>/dev/null
		for _ in $(seq 1 100); do kill -0 "$COLLECTOR_PID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$COLLECTOR_PID" 2>/dev/null && kill -KILL "$COLLECTOR_PID" 2>/dev/null
		wait "$COLLECTOR_PID" 2>/dev/null
	fi
	local rel root i
	for rel in "${CONTAINERS[@]}"; do
		kill_cgroup "$rel"
	done
	for i in "${WORKLOAD_PIDS[@]}"; do
		kill -9 "$i" 2>/dev/null
	done
	# Remove directories children first, in every hierarchy (rmdir can see EBUSY for a
	# moment while killed tasks leave the cgroup).
	for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
		rel=${CREATED[i]}
		for root in "${ROOTS[@]}"; do
			[ -d "$root/$rel" ] || continue
			for _ in $(seq 1 100); do rmdir "$root/$rel" 2>/dev/null && break; sleep 0.05; done
			[ -d "$root/$rel" ] && echo "demo: could not remove $root/$rel" >&2
		done
	done
	for i in "${FILES[@]}"; do rm -f "$i"; done
	[ -n "$TMPDIR_DEMO" ] && rm -rf "$TMPDIR_DEMO"
	echo "demo: removed the demo pods, their workloads, the collector and the temporary files"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. cgroup mounts from /proc/self/mountinfo ---------------------------------------------
# mountinfo: id parent major:minor root mountpoint options [optional...] - fstype source superopts
declare -A SEEN=()
V1_DESC=()
while read -r line; do
	left=${line%% - *}
	right=${line#* - }
	read -r _ _ _ mroot mpoint _ <<<"$left"
	read -r fstype _ superopts <<<"$right"
	[ "$mroot" = / ] || continue # a sub-tree (cgroup namespace, bind of one cgroup) shows no pods
	mpoint=$(printf '%b' "${mpoint//\\/\\0}") # undo mountinfo's \040-style octal escapes
	case $fstype in
	cgroup2)
		if [ -z "$V2" ] || [ "$mpoint" = /sys/fs/cgroup ] || [ "$mpoint" = /sys/fs/cgroup/unified ]; then
			V2=$mpoint
		fi
		;;
	cgroup)
		ctrls=""
		IFS=, read -ra opts <<<"$superopts"
		for o in "${opts[@]}"; do
			case $o in rw | ro | *=*) ;; *) ctrls+="${ctrls:+,}$o" ;; esac
		done
		# Only controller hierarchies (not name=systemd), each mount point once.
		if [ -n "$ctrls" ] && [ -z "${SEEN[$mpoint]:-}" ]; then
			SEEN[$mpoint]=1
			V1_DESC+=("$ctrls=$mpoint")
		fi
		;;
	esac
done </proc/self/mountinfo
[ -n "$V2" ] || die "no cgroup2 hierarchy is mounted; kpod needs cgroup v2 or a hybrid host (/sys/fs/cgroup/unified)"
ROOTS=("$V2")
CPUSET_ROOT=""
for d in "${V1_DESC[@]}"; do
	ROOTS+=("${d#*=}")
	[[ ,${d%%=*}, == *,cpuset,* ]] && CPUSET_ROOT=${d#*=}
done
PURE_V2=0
grep -qw memory "$V2/cgroup.controllers" 2>/dev/null && PURE_V2=1

echo "demo: cgroup2 mount: $V2 ($([ $PURE_V2 = 1 ] && echo "unified: controllers in v2" || echo "hybrid: controllers in v1"))"
for d in "${V1_DESC[@]}"; do echo "demo: cgroup v1 ${d%%=*}: ${d#*=}"; done

# ---- 2. demo pods ---------------------------------------------------------------------------
# mkcg creates rel in every hierarchy, as the kubelet does.
mkcg() {
	local rel=$1 root made=0 f
	for root in "${ROOTS[@]}"; do
		if [ ! -d "$root/$rel" ]; then
			mkdir "$root/$rel" || die "cannot create $root/$rel"
			made=1
			if [ "$root" = "$CPUSET_ROOT" ]; then
				# A new v1 cpuset is empty and takes no tasks: inherit the parent's.
				for f in cpuset.cpus cpuset.mems; do
					cat "$(dirname "$root/$rel")/$f" >"$root/$rel/$f" || die "cannot set $root/$rel/$f"
				done
			fi
		fi
	done
	[ $made = 1 ] && CREATED+=("$rel")
	if [ $PURE_V2 = 1 ]; then
		# Delegate the controllers one level down, as systemd/the kubelet do.
		for f in +memory +io +cpu +pids; do
			echo "$f" >"$V2/$(dirname "$rel")/cgroup.subtree_control" 2>/dev/null
		done
	fi
	return 0
}

randhex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# newpod QOS -> sets POD_UID and CONTAINER_REL
newpod() {
	local qos=$1
	POD_UID=$(cat /proc/sys/kernel/random/uuid)
	local cid
	cid=$(randhex 32)
	mkcg "$PREFIX"
	mkcg "$PREFIX/kubepods"
	mkcg "$PREFIX/kubepods/$qos"
	mkcg "$PREFIX/kubepods/$qos/pod$POD_UID"
	CONTAINER_REL=$PREFIX/kubepods/$qos/pod$POD_UID/$cid
	mkcg "$CONTAINER_REL"
	CONTAINERS+=("$CONTAINER_REL")
}

# start_in REL CMD... runs CMD in the background, inside REL in every hierarchy: the subshell
# moves itself before it execs, so everything it starts is charged to the demo container.
start_in() {
	local rel=$1
	shift
	(
		for root in "${ROOTS[@]}"; do
			echo "$BASHPID" >"$root/$rel/cgroup.procs" || { echo "demo: cannot join $root/$rel" >&2; exit 1; }
		done
		exec "$@" </dev/null >/dev/null 2>&1
	) &
	WORKLOAD_PIDS+=("$!")
	disown "$!" # killed at exit through its cgroup; no job notices from bash
}

TMPDIR_DEMO=$(mktemp -d /tmp/kpod-demo.XXXXXX)
LOG=$TMPDIR_DEMO/otelcol-kpod.log

newpod burstable
WRITER_UID=$POD_UID WRITER_REL=$CONTAINER_REL
IMG=/var/tmp/kpod-demo-1.img
FILES+=("$IMG")
# The writer gets its own mount namespace (a private copy of the host's mounts), like a
# container, so kpod also reports its filesystems (kpod_fs_*).
# shellcheck disable=SC2016  # $1 expands in the inner bash
start_in "$WRITER_REL" unshare --mount --propagation private bash -c '
	while :; do
		dd if=/dev/zero of="$1" bs=64k count=64 oflag=direct conv=notrunc 2>/dev/null  # 4 MiB, direct I/O
		for i in $(seq 1 20); do /bin/true; done                                       # 20 fork+exec
		sleep 1
	done' demo-writer "$IMG"

newpod besteffort
IDLE_UID=$POD_UID IDLE_REL=$CONTAINER_REL
start_in "$IDLE_REL" sleep infinity

echo "demo: pod writer  uid $WRITER_UID  container ${WRITER_REL##*/}"
echo "demo:             (own mount namespace; dd 4 MiB with oflag=direct to $IMG and 20 fork+exec,"
echo "demo:              every second)"
echo "demo: pod idle    uid $IDLE_UID  container ${IDLE_REL##*/}"
echo "demo:             (sleep)"

# ---- 3. the collector ---------------------------------------------------------------------
if curl -s -o /dev/null --max-time 2 "$METRICS_URL"; then
	die "something already listens on 127.0.0.1:9464 (another otelcol-kpod?); stop it first"
fi
echo "demo: starting $BIN --config $CONFIG (log: $LOG)"
"$BIN" --config "$CONFIG" >"$LOG" 2>&1 &
COLLECTOR_PID=$!

for _ in $(seq 1 60); do
	kill -0 "$COLLECTOR_PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "the collector exited at startup (log above)"; }
	curl -sf -o /dev/null --max-time 2 "$HEALTH_URL" && break
	sleep 0.5
done
curl -sf -o /dev/null --max-time 2 "$HEALTH_URL" || { tail -n 30 "$LOG" >&2; die "the collector did not become healthy in 30 s"; }
grep -h 'collector unavailable on this node' "$LOG" | sed -E 's/.*"collector": "([^"]*)", "reason": "([^"]*)".*/demo: collector \1 unavailable here: \2/'
echo "demo: collector running (pid $COLLECTOR_PID); first metrics after one 10 s collection interval"

# ---- 4. show the demo pods' series -----------------------------------------------------------
show() {
	local body lines
	body=$(curl -sf --max-time 5 "$METRICS_URL") || { echo "demo: scrape of $METRICS_URL failed"; return; }
	echo
	echo "=== $(date +%T)  kpod series of the demo pods, from $METRICS_URL ==="
	echo "    One series per container and metric, labelled with the pod UID (k8s_pod_uid, shown"
	echo "    here as writer/idle) and container ID (container_id, shortened here) that kpod read"
	echo "    from the cgroup path. _total counters are cumulative since the cgroup or kpod started;"
	echo "    histograms are shown by _count and _sum only (the _bucket series are on the endpoint)."
	echo "    The demo pods share the host's network namespace, so they get no kpod_net_iface_*"
	echo "    series (kpod skips the host's namespaces); the writer has its own mount namespace."
	lines=$(grep -E "^kpod_[^ ]*k8s_pod_uid=\"($WRITER_UID|$IDLE_UID)\"" <<<"$body" | grep -v '_bucket{' |
		sed -E 's/(,?)otel_scope_[a-z_]+="[^"]*"//g; s/,?k8s_node_name="[^"]*"//g; s/\{,/{/' |
		sed -E "s/$WRITER_UID/writer/; s/$IDLE_UID/idle/; s/container_id=\"([0-9a-f]{12})[0-9a-f]{52}\"/container_id=\"\1…\"/")
	if [ -z "$lines" ]; then
		echo "    (none yet: the collector has not finished a collection cycle since the pods appeared)"
	else
		echo "$lines" | sort | sed 's/^/    /'
	fi
	echo "    kpod_ series on the endpoint in all: $(grep -cE '^kpod_' <<<"$body");" \
		"collectors unavailable here: $(grep -E '^kpod_collector_unavailable[a-z_]*\{' <<<"$body" | grep -E ' 1$' |
			sed -E 's/.*collector="([^"]*)".*/\1/' | tr '\n' ' ')"
}

START=$SECONDS
NEXT=$((START + 12))
echo "demo: running $([ -n "${DEMO_SECONDS:-}" ] && echo "for $DEMO_SECONDS s" || echo "until Ctrl-C")"
while :; do
	if [ -n "${DEMO_SECONDS:-}" ] && [ $((SECONDS - START)) -ge "$DEMO_SECONDS" ]; then
		break
	fi
	if ! kill -0 "$COLLECTOR_PID" 2>/dev/null; then
		tail -n 30 "$LOG" >&2
		die "the collector exited (log above)"
	fi
	if [ "$SECONDS" -ge "$NEXT" ]; then
		show
		NEXT=$((SECONDS + INTERVAL))
	fi
	sleep 1
done
show
exit 0
