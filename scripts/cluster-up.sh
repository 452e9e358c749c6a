#!/usr/bin/env bash
# cluster-up.sh — starts a real single-node Kubernetes on this host, for kpod's tests.
#
#   scripts/cluster-up.sh [--control-plane-only]
#   scripts/cluster-down.sh                       # stops it and removes what it created
#
# Control plane (always): a private PKI (openssl), etcd and kube-apiserver, listening on
# 127.0.0.1 only.
#
# --control-plane-only: nothing else (about 5 s). There is no kube-controller-manager and no
# scheduler: the ServiceAccount admission plugin is disabled (nobody would create the
# "default" ServiceAccounts, so pods get no API token: use the kubeconfig or $K8S_TOKEN), pods
# must set spec.nodeName, and controllers (DaemonSet, ReplicaSet, namespace deletion, garbage
# collection) do nothing.
#
# Full cluster (the default; needs root): the control plane also runs kube-controller-manager
# (every default controller, one ServiceAccount per controller, the apiserver's service-account
# signing key, the CA for kube-root-ca.crt, the node's pod CIDR) and kube-scheduler, so the
# ServiceAccount admission plugin is on: DaemonSets and ReplicaSets get pods, the scheduler
# places them, pods get projected ServiceAccount tokens, namespaces are finalized and garbage is
# collected.
# Node: Debian's containerd + runc (installed with apt-get when missing), the pause and
# busybox images built locally with umoci and imported into containerd, the kubelet (cgroupfs
# driver, cgroup v1/hybrid allowed) and kube-proxy. Pods run for real, in
# /kubepods/<qos>/pod<uid>/<container id> of every cgroup hierarchy, with
# imagePullPolicy Never/IfNotPresent and images imported with `ctr -n k8s.io images import`
# (see scripts/image.sh).
#
# Pod network, on this host only: containerd's CRI runs the CNI plugins built from the module
# proxy (scripts/k8s-build.sh cni) with one configuration: a `bridge` cni0 (created here,
# 10.244.0.1/24, IPv6 off) that every pod's veth joins, `host-local` addresses from
# 10.244.0.0/24 (the node's podCIDR, allocated by kube-controller-manager from the cluster CIDR
# 10.244.0.0/16), a default route to cni0, no masquerading, and `tuning` turning IPv6 off inside
# each pod (no router solicitations or multicast reports: a pod's interface counters only move
# with its own traffic and the bridge's broadcasts). Pods without hostNetwork get their own
# network namespace and IP; hostNetwork pods still work. kube-proxy (nftables mode: `nft` is
# installed and kube-proxy's nftables mode is the one it will default to; its rules live in
# tables of their own, ip/ip6 kube-proxy, which cluster-down.sh deletes) makes every Service's
# ClusterIP (10.0.0.0/24) work from pods and from this host. Nothing leaves the machine: the
# table ip kpod_cluster lets this host forward only from cni0 to cni0 (pod to pod, after a
# Service's DNAT) — nothing is routed between the pods and eth0 — and drops what this host
# would send to a Service address that no rule translated (it would otherwise follow the default
# route). IPv4 forwarding (net.ipv4.ip_forward=1, for a Service's DNAT from pod to pod) and
# the other sysctls are saved and restored by cluster-down.sh, which also removes cni0, the pods'
# veths and network namespaces, the nft tables and the iptables chains the kubelet adds.
# The `kubernetes` Service (10.0.0.1:443, what in-cluster clients read from
# KUBERNETES_SERVICE_HOST/PORT) cannot have an endpoint here (the apiserver listens on
# 127.0.0.1, which an Endpoint may not name): it is labelled for another proxy
# (service.kubernetes.io/service-proxy-name), so kube-proxy leaves it alone, and the table
# ip kpod_cluster DNATs this host's connections to it to the apiserver on 127.0.0.1. So only
# hostNetwork pods (kpod's DaemonSet) reach the API through it.
# `kubectl logs/exec` do not work (the apiserver would dial the node's eth0 address, the kubelet
# listens on 127.0.0.1): read the container logs in $STATE/kubelet/pod-logs and use ctr. The
# kubelet and kube-proxy change some kernel sysctls; their old values are saved in
# $STATE/sysctl.saved and restored by cluster-down.sh.
#
# Everything lives in $STATE (KPOD_CLUSTER_STATE, default /tmp/kpod-cluster):
#   env         source it: KUBECONFIG, K8S_API, K8S_TOKEN, K8S_CA_FILE, K8S_NODE_NAME,
#               CONTAINERD_ADDRESS/CONTAINERD_NAMESPACE (for ctr), PATH (kubectl)
#   kubeconfig  admin (system:masters) client certificate
#   logs/       etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
#               kubelet (kept by cluster-down.sh)
#
# Environment: KPOD_CLUSTER_STATE, KPOD_NODE_NAME (default: lower-case hostname),
# KPOD_CONTAINERD=debian|built (built: containerd 2.x from `scripts/k8s-build.sh containerd`),
# KPOD_K8S_BIN (binary directory, see scripts/k8s-build.sh), KPOD_CLUSTER_KEEP_ON_FAILURE=1
# (do not run cluster-down.sh when start-up fails), KPOD_SERVICE_CIDR (with --control-plane-only:
# kube-apiserver's Service range, default 10.0.0.0/24, 253 Services). Binaries that are missing from the cache
# are built first (scripts/k8s-build.sh: ~15 min cold on 2 cores, nothing when cached).
# Ports (127.0.0.1): etcd 2379/2380 (KPOD_ETCD_PORT, peer = +1), kube-apiserver 6443
# (KPOD_APISERVER_PORT), kube-controller-manager 10257, kube-scheduler 10259, kubelet
# 10250/10248, kube-proxy 10249/10256. One full cluster per host (kubepods cgroups, kubelet,
# controller and proxy ports, cni0 and the pod and Service CIDRs, the nft tables); several
# --control-plane-only clusters can run beside it with their own ports and KPOD_CLUSTER_STATE.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${KPOD_CLUSTER_STATE:-/tmp/kpod-cluster}
NODE=${KPOD_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
CONTAINERD_KIND=${KPOD_CONTAINERD:-debian}
APISERVER_PORT=${KPOD_APISERVER_PORT:-6443}
ETCD_PORT=${KPOD_ETCD_PORT:-2379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
NODE_UP=1
# The pod network (see above). The bridge's name and the CIDRs are fixed: one full cluster per host.
BRIDGE=cni0
CLUSTER_CIDR=10.244.0.0/16 # kube-controller-manager gives the node the first /24 of it
POD_CIDR=10.244.0.0/24     # the node's podCIDR: host-local's range
POD_GATEWAY=10.244.0.1     # cni0's address, the pods' default route
SERVICE_CIDR=10.0.0.0/24

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
for a in "$@"; do
	case $a in
	--control-plane-only) NODE_UP=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "cluster-up: unknown argument '$a'" >&2; usage >&2; exit 2 ;;
	esac
done

die() { echo "cluster-up: $*" >&2; exit 1; }
case $STATE in /?*) ;; *) die "KPOD_CLUSTER_STATE must be an absolute path (got '$STATE')" ;; esac
STATE=${STATE%/}
case $STATE in / | /tmp | /root | /home | /var | /var/tmp) die "KPOD_CLUSTER_STATE must be a directory of its own (got $STATE)" ;; esac
case $CONTAINERD_KIND in debian | built) ;; *) die "KPOD_CONTAINERD must be debian or built" ;; esac

# ---- timing -------------------------------------------------------------------------------
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
T_START=$(now_ms)
T_PHASE=$T_START
TIMINGS=()
PHASE=preflight
phase() { # phase <name>: ends the current phase, prints and records its duration
	local t
	t=$(now_ms)
	TIMINGS+=("$(printf '%-22s %s' "$PHASE" "$(fmt_ms $((t - T_PHASE)))")")
	echo "cluster-up: $PHASE: $(fmt_ms $((t - T_PHASE)))"
	PHASE=$1 T_PHASE=$t
}

# ---- preflight ----------------------------------------------------------------------------
if [ $NODE_UP = 1 ] && [ "$(id -u)" != 0 ]; then
	die "the node (containerd, kubelet) needs root; run as root or use --control-plane-only"
fi
for c in openssl curl flock ss; do command -v $c >/dev/null || die "$c is needed (apt-get install openssl curl util-linux iproute2)"; done

mkdir -p "$STATE"
exec 9>"$STATE/.lock"
flock -n 9 || die "another cluster-up/cluster-down holds $STATE/.lock"

alive() { # alive <pid file> <exe name>: the pid file names a running <exe name>
	local pid exe
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	exe=${exe% (deleted)}
	[ "${exe##*/}" = "$2" ]
}
if [ -e "$STATE/.kpod-cluster" ]; then
	for d in etcd:etcd kube-apiserver:kube-apiserver kube-controller-manager:kube-controller-manager kube-scheduler:kube-scheduler containerd:containerd kubelet:kubelet; do
		if alive "$STATE/run/${d%%:*}.pid" "${d#*:}"; then
			die "a cluster is already running from $STATE (${d%%:*} pid $(cat "$STATE/run/${d%%:*}.pid")); run scripts/cluster-down.sh first"
		fi
	done
	echo "cluster-up: cleaning up the leftovers of an earlier cluster in $STATE"
	flock -u 9
	"$ROOT/scripts/cluster-down.sh" >"$STATE/cleanup.log" 2>&1 || { cat "$STATE/cleanup.log" >&2; die "cluster-down.sh failed"; }
	flock -n 9 || die "another cluster-up/cluster-down holds $STATE/.lock"
fi

ports=("$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT")
[ $NODE_UP = 0 ] || ports+=(10248 10250 10257 10259 10249 10256)
for p in "${ports[@]}"; do
	if [ -n "$(ss -Hltn "sport = :$p")" ]; then
		die "port $p is in use (etcd $ETCD_PORT/$ETCD_PEER_PORT, kube-apiserver $APISERVER_PORT, kubelet 10248/10250, kube-controller-manager 10257, kube-scheduler 10259, kube-proxy 10249/10256; another cluster? see KPOD_ETCD_PORT, KPOD_APISERVER_PORT): $(ss -Hltnp "sport = :$p" | head -1)"
	fi
done
NFT_TABLE=kpod_cluster # the kube-proxy stand-in of a full cluster (see above)
if [ $NODE_UP = 1 ]; then
	for c in nft ip; do command -v $c >/dev/null || die "$c is needed for the pod network and the Services (apt-get install nftables iproute2)"; done
	for t in "ip $NFT_TABLE" "ip kube-proxy" "ip6 kube-proxy"; do
		# shellcheck disable=SC2086
		! nft list table $t >/dev/null 2>&1 || die "nft table $t exists: another cluster runs on this host, or one was not cleaned up (nft delete table $t)"
	done
	! ip link show "$BRIDGE" >/dev/null 2>&1 || die "network interface $BRIDGE exists: another cluster's pod network, or one was not cleaned up (ip link del $BRIDGE)"
	# The pod and Service CIDRs must be this cluster's alone: no address or route of this host
	# inside them, none covering them but the default route.
	for cidr in "$CLUSTER_CIDR" "$SERVICE_CIDR"; do
		inside=$(ip -4 route show table all to root "$cidr" 2>/dev/null; ip -4 -o addr show to "$cidr")
		covering=$(ip -4 route show table all to match "$cidr" 2>/dev/null | grep -v '^default ' | grep -v '^\(local\|broadcast\) ' || true)
		[ -z "$inside$covering" ] || die "$cidr (pods or Services) is in use on this host: $(echo "$inside$covering" | head -3 | tr '\n' ';')"
	done
fi

# The cgroup hierarchies, from mountinfo (hybrid hosts: every v1 controller plus the
# cgroup2 one at /sys/fs/cgroup/unified; pure v2 hosts: /sys/fs/cgroup).
CGROUP_MOUNTS=()
if [ $NODE_UP = 1 ]; then
	while read -r _ _ _ mroot mpoint _ rest; do
		fstype=${rest#*- }
		fstype=${fstype%% *}
		case $fstype in cgroup | cgroup2) [ "$mroot" = / ] && CGROUP_MOUNTS+=("$mpoint") ;; esac
	done </proc/self/mountinfo
	[ ${#CGROUP_MOUNTS[@]} -gt 0 ] || die "no cgroup hierarchy is mounted"
	for m in "${CGROUP_MOUNTS[@]}"; do
		[ ! -e "$m/kubepods" ] || die "$m/kubepods exists: another kubelet runs on this host, or a cluster was not cleaned up (remove it first)"
	done
fi

phase binaries
# Binaries (built into the cache when missing; seconds when they are there).
BIN=$("$ROOT/scripts/k8s-build.sh" --bin-dir)
need=(etcd apiserver kubectl)
[ $NODE_UP = 0 ] || need+=(controller-manager scheduler proxy kubelet cni)
[ $NODE_UP = 0 ] || [ "$CONTAINERD_KIND" = debian ] || need+=(containerd)
"$ROOT/scripts/k8s-build.sh" -q "${need[@]}" | sed 's/^/cluster-up: /'

# ---- from here on, a failure stops what was started ---------------------------------------
on_exit() {
	local rc=$?
	[ $rc != 0 ] || return 0
	echo "cluster-up: FAILED during '$PHASE' (exit $rc)" >&2
	for l in "$STATE"/logs/*.log; do
		[ -s "$l" ] || continue
		echo "---- last lines of $l" >&2
		tail -n 15 "$l" >&2
	done
	if [ "${KPOD_CLUSTER_KEEP_ON_FAILURE:-0}" = 1 ]; then
		echo "cluster-up: leaving everything as it is (KPOD_CLUSTER_KEEP_ON_FAILURE=1); clean up with scripts/cluster-down.sh" >&2
	else
		echo "cluster-up: cleaning up with scripts/cluster-down.sh (logs stay in $STATE/logs)" >&2
		exec 9>&-
		"$ROOT/scripts/cluster-down.sh" >&2 || true
	fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$STATE/logs" "$STATE/cleanup.log"
mkdir -p "$STATE"/{logs,run,pki}
echo "created by scripts/cluster-up.sh at $(date -u +%FT%TZ); remove with scripts/cluster-down.sh" >"$STATE/.kpod-cluster"

# kubelet_chains: "<iptables command> <table> <chain>" for each chain the kubelet may add that exists.
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

# start <name> <command...>: runs a daemon in its own session, output to logs/<name>.log.
start() {
	local name=$1
	shift
	setsid "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 9>&- &
	echo $! >"$STATE/run/$name.pid"
	disown $! # no job notices when cluster-down.sh stops it
}

# wait_for <what> <seconds> <pid name> <command...>: polls the command every 0.1 s; fails
# early when the daemon is gone.
wait_for() {
	local what=$1 timeout=$2 name=$3 deadline
	shift 3
	deadline=$(($(now_ms) + timeout * 1000))
	until "$@" >/dev/null 2>&1; do
		if ! kill -0 "$(cat "$STATE/run/$name.pid")" 2>/dev/null; then
			echo "cluster-up: $name exited while waiting for $what" >&2
			return 1
		fi
		if [ "$(now_ms)" -gt $deadline ]; then
			echo "cluster-up: timed out after ${timeout}s waiting for $what" >&2
			return 1
		fi
		sleep 0.1
	done
}

phase pki
# ---- PKI: one CA, EC P-256 keys -----------------------------------------------------------
PKI=$STATE/pki
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${EC[@]}" -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 -subj "/CN=kpod-cluster-ca" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
# cert <name> <subject> <extendedKeyUsage> [subjectAltName]
cert() {
	local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$3"
	[ -z "${4:-}" ] || ext+=$'\n'"subjectAltName=$4"
	openssl req -new "${EC[@]}" -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2" 2>/dev/null
	openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 12)" \
		-days 30 -out "$PKI/$1.crt" -extfile <(echo "$ext") 2>/dev/null
	rm -f "$PKI/$1.csr"
}
host_ips=""
for ip in $(hostname -I 2>/dev/null); do host_ips+=",IP:$ip"; done
jobs=() # in parallel: each openssl run is mostly process start-up
cert apiserver "/CN=kube-apiserver" serverAuth \
	"IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" &
jobs+=($!)
cert admin "/O=system:masters/CN=kpod-admin" clientAuth &
jobs+=($!)
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth &
jobs+=($!)
if [ $NODE_UP = 1 ]; then
	cert kubelet-client "/O=system:nodes/CN=system:node:$NODE" clientAuth &
	jobs+=($!)
	cert controller-manager "/CN=system:kube-controller-manager" clientAuth &
	jobs+=($!)
	cert scheduler "/CN=system:kube-scheduler" clientAuth &
	jobs+=($!)
	# (bound to the ClusterRole system:node-proxier by the default RBAC policy)
	cert kube-proxy "/CN=system:kube-proxy" clientAuth &
	jobs+=($!)
	cert kubelet "/CN=system:node:$NODE" serverAuth "IP:127.0.0.1,DNS:localhost,DNS:$NODE$host_ips" &
	jobs+=($!)
fi
{
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$PKI/sa.key" 2>/dev/null
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
} &
jobs+=($!)
for j in "${jobs[@]}"; do wait "$j"; done
TOKEN=$(openssl rand -hex 32)
echo "$TOKEN,kpod-admin,kpod-admin,system:masters" >"$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

# kubeconfig <file> <user cert name>
kubeconfig() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kpod
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: kpod
  context: {cluster: kpod, user: $2}
current-context: kpod
EOF
	chmod 600 "$1"
}
kubeconfig "$STATE/kubeconfig" admin
if [ $NODE_UP = 1 ]; then
	kubeconfig "$STATE/kubelet.kubeconfig" kubelet-client
	kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager
	kubeconfig "$STATE/scheduler.kubeconfig" scheduler
	kubeconfig "$STATE/kube-proxy.kubeconfig" kube-proxy
fi

phase etcd
# ---- etcd ---------------------------------------------------------------------------------
start etcd "$BIN/etcd" --name default --data-dir "$STATE/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
	--unsafe-no-fsync --quota-backend-bytes 1073741824 --log-level warn
etcd_healthy() { case $(curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health") in *'"health":"true"'*) ;; *) return 1 ;; esac; }
wait_for "etcd /health" 30 etcd etcd_healthy

phase kube-apiserver
# ---- kube-apiserver -----------------------------------------------------------------------
# Without kube-controller-manager nobody creates the "default" ServiceAccounts: pods could not
# be created with the ServiceAccount admission plugin on.
admission=()
[ $NODE_UP = 1 ] || admission=(--disable-admission-plugins ServiceAccount)
# Without a node nothing routes Services: a control plane alone may take a wider range
# (KPOD_SERVICE_CIDR; make kube creates 300 Services).
api_services=$SERVICE_CIDR
[ $NODE_UP = 1 ] || api_services=${KPOD_SERVICE_CIDR:-$SERVICE_CIDR}
start kube-apiserver "$BIN/kube-apiserver" \
	--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
	--endpoint-reconciler-type none \
	--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
	--client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
	--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority "$PKI/ca.crt" \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
	--service-cluster-ip-range "$api_services" --authorization-mode Node,RBAC \
	"${admission[@]}" --allow-privileged=true --profiling=false
api() { curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$APISERVER_PORT$1"; }
apiserver_ready() { [ "$(api /readyz)" = ok ]; }
wait_for "kube-apiserver /readyz" 90 kube-apiserver apiserver_ready

{
	echo "# written by scripts/cluster-up.sh at $(date -u +%FT%TZ); use: . $STATE/env"
	echo "export KPOD_CLUSTER_STATE=$STATE"
	echo "export KUBECONFIG=$STATE/kubeconfig"
	echo "export K8S_API=https://127.0.0.1:$APISERVER_PORT"
	echo "export K8S_TOKEN=$TOKEN"
	echo "export K8S_CA_FILE=$PKI/ca.crt"
	echo "export KUBECACHEDIR=$STATE/kube-cache # kubectl's discovery cache, instead of ~/.kube/cache"
	echo "export KPOD_K8S_BIN=$BIN"
	echo "export PATH=$BIN:\$PATH"
} >"$STATE/env"
chmod 600 "$STATE/env"
KUBECTL=("$BIN/kubectl" --kubeconfig "$STATE/kubeconfig" --cache-dir "$STATE/kube-cache")

if [ $NODE_UP = 0 ]; then
	phase finished
	total=$(fmt_ms $(($(now_ms) - T_START)))
	echo "cluster-up: control plane $("$BIN/kube-apiserver" --version | cut -d' ' -f2) ready at https://127.0.0.1:$APISERVER_PORT in $total"
	printf 'cluster-up:   %s\n' "${TIMINGS[@]}"
	echo "cluster-up: use it with: . $STATE/env && kubectl get ns"
	exit 0
fi

phase controllers
# ---- kube-controller-manager, kube-scheduler ----------------------------------------------
start kube-controller-manager "$BIN/kube-controller-manager" \
	--kubeconfig "$STATE/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port 10257 --leader-elect=false \
	--use-service-account-credentials=true \
	--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
	--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
	--service-cluster-ip-range "$SERVICE_CIDR" --profiling=false \
	--allocate-node-cidrs=true --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24
start kube-scheduler "$BIN/kube-scheduler" \
	--kubeconfig "$STATE/scheduler.kubeconfig" \
	--authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
	--authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --secure-port 10259 --leader-elect=false --profiling=false
# (their serving certificates are self-signed: /healthz is only a liveness check here)
healthz() { [ "$(curl -fsS --max-time 2 -k "https://127.0.0.1:$1/healthz")" = ok ]; }
wait_for "kube-controller-manager /healthz" 60 kube-controller-manager healthz 10257
wait_for "kube-scheduler /healthz" 60 kube-scheduler healthz 10259
# Pods can be created once their namespace has the "default" ServiceAccount (serviceaccount
# controller) and the kube-root-ca.crt ConfigMap of their token volume (root-ca-cert-publisher).
sa_ready() { "${KUBECTL[@]}" -n default get serviceaccount/default configmap/kube-root-ca.crt -o name; }
wait_for "the default ServiceAccount and kube-root-ca.crt" 60 kube-controller-manager sa_ready

phase network
# ---- pod network: sysctls, the kpod_cluster nft table, cni0 (see the header) ---------------
# Every sysctl the kubelet (container_manager_linux.go setupKernelTunables), kube-proxy
# (conntrack) and this script may change, saved before any of them runs.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
	net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet
	net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established net.netfilter.nf_conntrack_tcp_timeout_close_wait
	net.netfilter.nf_conntrack_tcp_be_liberal net.netfilter.nf_conntrack_udp_timeout net.netfilter.nf_conntrack_udp_timeout_stream)
: >"$STATE/sysctl.saved.tmp"
for s in "${SYSCTLS[@]}"; do
	f=/proc/sys/${s//.//}
	[ ! -r "$f" ] || echo "$s=$(cat "$f")" >>"$STATE/sysctl.saved.tmp"
done
mv "$STATE/sysctl.saved.tmp" "$STATE/sysctl.saved"
# A Service's DNAT between two pods of the bridge needs their packets in the IP hooks
# (br_netfilter): the reply, bridged back, must be translated too.
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
	modprobe br_netfilter 2>/dev/null || true
	[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || die "bridge netfilter (br_netfilter) is not available: Services between pods of the bridge need it"
fi
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
# The kubernetes Service is kpod_cluster's, not kube-proxy's (see the header).
api_service() { "${KUBECTL[@]}" -n default get service kubernetes -o name; }
wait_for "the kubernetes Service" 30 kube-apiserver api_service
"${KUBECTL[@]}" -n default label service kubernetes service.kubernetes.io/service-proxy-name=kpod-cluster --overwrite >/dev/null
# Forwarding: only from cni0 to cni0; where this host did not forward before (ip_forward 0),
# nothing else either.
other_forwarding=""
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || other_forwarding="counter drop"
echo "ip $NFT_TABLE" >"$STATE/nft.created"
nft -f - <<EOF
table ip $NFT_TABLE {
	# The kubernetes Service for this host's processes (hostNetwork pods).
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 10.0.0.1 tcp dport 443 dnat to 127.0.0.1:$APISERVER_PORT
	}
	# A Service address that no rule translated would follow the default route off this host.
	chain output-filter {
		type filter hook output priority 10; policy accept;
		ip daddr $SERVICE_CIDR counter drop
	}
	# Pod traffic stays on this host: forwarded only from cni0 to cni0.
	chain forward {
		type filter hook forward priority -10; policy accept;
		iifname "$BRIDGE" oifname "$BRIDGE" accept
		iifname "$BRIDGE" counter drop
		oifname "$BRIDGE" counter drop
		$other_forwarding
	}
}
EOF
echo "$BRIDGE" >"$STATE/bridge.created"
ip link add "$BRIDGE" type bridge
echo 1 >"/proc/sys/net/ipv6/conf/$BRIDGE/disable_ipv6" # no router solicitations, no multicast reports
ip addr add "$POD_GATEWAY/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
echo 1 >/proc/sys/net/ipv4/ip_forward

phase packages
# ---- node: packages -----------------------------------------------------------------------
pkgs=()
for p in runc umoci busybox-static; do dpkg -s $p >/dev/null 2>&1 || pkgs+=("$p"); done
[ "$CONTAINERD_KIND" = built ] || dpkg -s containerd >/dev/null 2>&1 || pkgs+=(containerd)
if [ ${#pkgs[@]} -gt 0 ]; then
	echo "cluster-up: apt-get install ${pkgs[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
if [ "$CONTAINERD_KIND" = built ]; then
	CONTAINERD=$BIN/containerd CTR=$BIN/ctr
else
	CONTAINERD=/usr/bin/containerd CTR=/usr/bin/ctr
fi
echo "$CTR" >"$STATE/run/ctr.path"
SOCK=$STATE/containerd/containerd.sock
[ ${#SOCK} -lt 100 ] || die "containerd socket path too long ($SOCK): choose a shorter KPOD_CLUSTER_STATE"
CTRN=("$CTR" --address "$SOCK" --namespace k8s.io)
# ctr: its stderr (containerd 2.x repeats a cgroup v1 deprecation warning) goes to logs/ctr.log.
ctr_() { "${CTRN[@]}" "$@" 2>>"$STATE/logs/ctr.log"; }

phase images
# ---- node: images built locally (no registry) ---------------------------------------------
# Built once per pause binary / busybox version and kept next to the binaries
# (<cache>/images), imported into containerd below.
# oci_image <tar> <tag> <rootfs dir> <umoci config args...>: an OCI archive with one layer
# holding <rootfs dir> (the tag becomes the imported name's tag).
oci_image() {
	local tar=$1 tag=$2 rootfs=$3 dir=$STATE/images/layout
	shift 3
	rm -rf "$dir"
	umoci init --layout "$dir"
	umoci new --image "$dir:$tag"
	umoci insert --image "$dir:$tag" "$rootfs" /
	umoci config --image "$dir:$tag" "$@"
	umoci gc --layout "$dir"
	tar -C "$dir" -cf "$tar.tmp" .
	mv -f "$tar.tmp" "$tar"
	rm -rf "$dir"
}
IMG_CACHE=$(dirname "$BIN")/images
mkdir -p "$STATE/images" "$IMG_CACHE"
PAUSE_TAG=$(cat "$BIN/.pause.tag")
PAUSE_IMAGE=localhost/pause:$PAUSE_TAG
PAUSE_TAR=$IMG_CACHE/pause-$PAUSE_TAG-$(sha256sum <"$BIN/pause" | cut -c1-12).tar
if [ ! -f "$PAUSE_TAR" ]; then
	R=$STATE/images/pause-rootfs
	mkdir -p "$R"
	cp "$BIN/pause" "$R/pause"
	oci_image "$PAUSE_TAR" "$PAUSE_TAG" "$R" --config.entrypoint /pause --config.user 65535:65535
	echo "cluster-up: built $PAUSE_IMAGE ($PAUSE_TAR)"
fi
BUSYBOX_TAG=$(dpkg-query -W -f '${Version}' busybox-static | sed 's/^[0-9]*://; s/-.*//')
BUSYBOX_IMAGE=localhost/busybox:$BUSYBOX_TAG
BUSYBOX_TAR=$IMG_CACHE/busybox-$BUSYBOX_TAG-$(sha256sum </bin/busybox | cut -c1-12).tar
if [ ! -f "$BUSYBOX_TAR" ]; then
	R=$STATE/images/busybox-rootfs
	busybox_rootfs "$R"
	oci_image "$BUSYBOX_TAR" "$BUSYBOX_TAG" "$R" --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
	echo "cluster-up: built $BUSYBOX_IMAGE ($BUSYBOX_TAR)"
fi
rm -rf "$STATE/images"

phase containerd
# ---- node: containerd ---------------------------------------------------------------------
CD=$STATE/containerd
mkdir -p "$CD"/{root,state,opt,cni/bin,cni/conf}
# (no `| grep -q` under pipefail: grep exiting early makes the writer fail with SIGPIPE)
case $("$CONTAINERD" --version) in *" 1."* | *" v1."*) CONTAINERD_MAJOR=1 ;; *) CONTAINERD_MAJOR=2 ;; esac
if [ $CONTAINERD_MAJOR = 1 ]; then
	cat >"$CD/config.toml" <<EOF
version = 2
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: runc must not try to lower the pause container's oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # The pods' network namespaces under the state directory (not /var/run/netns).
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CD/cni/bin"
    conf_dir = "$CD/cni/conf"
    max_conf_num = 1
EOF
else
	cat >"$CD/config.toml" <<EOF
version = 3
root = "$CD/root"
state = "$CD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE here: runc must not try to lower the pause container's oom_score_adj.
  restrict_oom_score_adj = true
  cdi_spec_dirs = ["$CD/cdi"]
  # The pods' network namespaces under the state directory (not /var/run/netns).
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$CD/cni/bin"]
    conf_dir = "$CD/cni/conf"
    max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
fi
# The pod network (see the header): the plugins built by scripts/k8s-build.sh cni, under the
# names CNI looks for; host-local keeps its allocations in $CD/cni/ipam.
for p in bridge host-local loopback tuning; do ln -sf "$BIN/cni-$p" "$CD/cni/bin/$p"; done
cat >"$CD/cni/conf/10-kpod-pods.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kpod-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "dataDir": "$CD/cni/ipam"
      }
    },
    {
      "type": "tuning",
      "sysctl": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
    }
  ]
}
EOF
# Directories containerd and the kubelet create outside $STATE whatever their configuration
# (shim sockets, runc state, device plugin socket, log links): removed by cluster-down.sh when
# they did not exist before.
: >"$STATE/host-dirs.created"
for d in /run/containerd /var/lib/kubelet /var/log/containers; do
	[ -e "$d" ] || echo "$d" >>"$STATE/host-dirs.created"
done
# PATH: the shim (containerd-shim-runc-v2) next to the chosen containerd, and Debian's runc.
start containerd env PATH="$(dirname "$CONTAINERD"):/usr/sbin:/usr/bin:/sbin:/bin" "$CONTAINERD" --config "$CD/config.toml"
wait_for "containerd" 30 containerd "${CTRN[@]}" version
ctr_ images import --base-name localhost/pause "$PAUSE_TAR" >/dev/null
ctr_ images import --base-name localhost/busybox "$BUSYBOX_TAR" >/dev/null
images=$(ctr_ images ls -q)
for i in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE"; do
	grep -qx "$i" <<<"$images" || die "$i is not in containerd after the import"
done

phase kubelet
# ---- node: kubelet ------------------------------------------------------------------------
printf '%s\n' "${CGROUP_MOUNTS[@]}" >"$STATE/cgroups.created" # where kubepods will appear

KL=$STATE/kubelet
mkdir -p "$KL"/{root,manifests,pod-logs}
cat >"$KL/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
# This host has cgroup v1 (hybrid); kubelet 1.37 refuses it unless told otherwise.
failCgroupV1: false
failSwapOn: false
staticPodPath: $KL/manifests
podLogsDir: $KL/pod-logs
# Images are imported locally and cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
rotateCertificates: false
serverTLSBootstrap: false
EOF
# The kubelet adds iptables chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY, KUBE-FIREWALL) when
# an iptables command is installed, and iptables-nft their tables: those it adds are removed by
# cluster-down.sh.
kubelet_chains >"$STATE/iptables.before"
nft list tables >"$STATE/nft-tables.before"
start kubelet "$BIN/kubelet" --config "$KL/config.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
	--hostname-override "$NODE" --root-dir "$KL/root"
node_registered() { "${KUBECTL[@]}" get node "$NODE" -o name; }
wait_for "Node $NODE to register" 60 kubelet node_registered

{
	echo "export K8S_NODE_NAME=$NODE"
	echo "export CONTAINERD_ADDRESS=$SOCK"
	echo "export CONTAINERD_NAMESPACE=k8s.io"
	echo "export KPOD_CTR=$CTR"
	echo "export KPOD_BUSYBOX_IMAGE=$BUSYBOX_IMAGE"
	echo "export KPOD_POD_CIDR=$POD_CIDR KPOD_SERVICE_CIDR=$SERVICE_CIDR KPOD_POD_BRIDGE=$BRIDGE"
} >>"$STATE/env"

phase kube-proxy
# ---- node: kube-proxy (nftables mode), the node's pod CIDR -------------------------------
# kube-controller-manager gives the registered Node its podCIDR; host-local hands out exactly
# that range (the CNI configuration above).
node_cidr() { [ -n "$("${KUBECTL[@]}" get node "$NODE" -o 'jsonpath={.spec.podCIDR}')" ]; }
wait_for "Node $NODE's podCIDR" 30 kube-controller-manager node_cidr
got=$("${KUBECTL[@]}" get node "$NODE" -o 'jsonpath={.spec.podCIDR}')
[ "$got" = "$POD_CIDR" ] || die "Node $NODE got podCIDR $got from kube-controller-manager, but the CNI configuration hands out $POD_CIDR"
# Conntrack settings 0: kube-proxy leaves the host's conntrack sysctls as they are.
# nodePortAddresses: NodePorts only on cni0's address, never on eth0.
cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: $CLUSTER_CIDR
detectLocalMode: ClusterCIDR
nodePortAddresses: ["$POD_GATEWAY/32"]
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
EOF
printf 'ip kube-proxy\nip6 kube-proxy\n' >>"$STATE/nft.created"
start kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
proxy_synced() {
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:10256/healthz)" = 200 ] &&
		nft list chain ip kube-proxy services
}
wait_for "kube-proxy's first sync (healthz, table ip kube-proxy)" 60 kube-proxy proxy_synced

phase test-pod
# ---- a real pod on the pod network, placed by the scheduler once the Node is Ready ---------
# busybox's httpd behind a Service: this host reaches it at its pod IP and at the Service's
# ClusterIP, and the pod reaches itself through the Service (hairpin).
"${KUBECTL[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: kpod-cluster-check
  namespace: default
  labels: {app: kpod-cluster-check}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: $BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo kpod-cluster-check > /www/index.html && exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata:
  name: kpod-cluster-check
  namespace: default
spec:
  selector: {app: kpod-cluster-check}
  ports: [{port: 80, targetPort: 8080}]
EOF
pod_ready() { [ "$("${KUBECTL[@]}" get pod kpod-cluster-check -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
if ! wait_for "the test pod to become Ready" 90 kubelet pod_ready; then
	"${KUBECTL[@]}" describe pod kpod-cluster-check | tail -n 20 >&2 || true
	exit 1
fi
read -r cid podip <<<"$("${KUBECTL[@]}" get pod kpod-cluster-check -o 'jsonpath={.status.containerStatuses[0].containerID} {.status.podIP}')"
cid=${cid#containerd://}
pid=$(ctr_ tasks ls | awk -v c="$cid" '$1 == c { print $2 }')
cg=$(grep '^0::' "/proc/$pid/cgroup" 2>/dev/null || true)
case $podip in "${POD_GATEWAY%.*}".*) ;; *) die "the test pod's IP is '$podip', not in $POD_CIDR" ;; esac
[ "$(readlink "/proc/$pid/ns/net")" != "$(readlink /proc/self/ns/net)" ] || die "the test pod runs in this host's network namespace"
cip=$("${KUBECTL[@]}" get service kpod-cluster-check -o 'jsonpath={.spec.clusterIP}')
fetch() { [ "$(curl -fsS --noproxy '*' --max-time 3 "$1")" = kpod-cluster-check ]; }
wait_for "http://$podip:8080/ (the pod, from this host)" 30 kubelet fetch "http://$podip:8080/"
wait_for "http://$cip/ (the Service, from this host)" 30 kube-proxy fetch "http://$cip/"
# (busybox nc: the static busybox's wget crashes looking up the port name)
from_pod() {
	[ "$(ctr_ tasks exec --exec-id "check-$RANDOM" "$cid" sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $cip 80 | tail -n 1")" = kpod-cluster-check ]
}
wait_for "http://$cip/ (the Service, from the pod itself)" 30 kube-proxy from_pod
echo "cluster-up: test pod Ready: container ${cid:0:12}, pid $pid, cgroup2 ${cg#0::}, IP $podip; Service $cip reached from this host and from the pod"
"${KUBECTL[@]}" delete service kpod-cluster-check >/dev/null
"${KUBECTL[@]}" delete pod kpod-cluster-check --wait=true --timeout=60s >/dev/null

phase finished
total=$(fmt_ms $(($(now_ms) - T_START)))
echo "cluster-up: node $NODE ($("$BIN/kubelet" --version | cut -d' ' -f2), $("$CONTAINERD" --version | awk '{print $1 " " $3}')) and control plane ready in $total"
printf 'cluster-up:   %s\n' "${TIMINGS[@]}"
echo "cluster-up: use it with: . $STATE/env && kubectl get pods -A   (pod network $POD_CIDR on $BRIDGE, Services $SERVICE_CIDR; image $BUSYBOX_IMAGE or scripts/image.sh)"
