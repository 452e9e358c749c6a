#!/usr/bin/env bash
# k8s-build.sh — builds the binaries of the local test cluster from the Go module proxy.
#
#   scripts/k8s-build.sh [etcd] [apiserver] [controller-manager] [scheduler] [proxy] [kubectl] [kubelet] [cni] [containerd] [helm] [all]
#   scripts/k8s-build.sh -q [targets]       # quiet: prints only what it builds
#   scripts/k8s-build.sh --bin-dir          # prints the binary directory and exits
#
# Without arguments: etcd apiserver controller-manager scheduler proxy kubectl kubelet cni
# (what scripts/cluster-up.sh needs for a node; --control-plane-only needs etcd apiserver
# kubectl). `kubelet` also compiles the pod sandbox binary `pause` from the pinned Kubernetes
# source (gcc, static). `proxy` is kube-proxy (nftables mode in the cluster); `cni` the CNI
# plugins of the pod network (bridge, host-local, loopback, tuning from
# github.com/containernetworking/plugins), as cni-<plugin> in the binary directory.
# `containerd` (containerd 2.x + its runc shim + ctr) is optional: the cluster uses Debian's
# containerd 1.6 unless KPOD_CONTAINERD=built. `helm` (Helm v4, for `make helm-test` and
# `make e2e-cluster`, which install charts/kpod) is optional too.
#
# Sources are pinned, checksum-verified, by the wrapper modules in tools/k8s/ (see its
# README.md). Binaries go to a cache outside the clone, keyed by the Kubernetes version:
#
#   ${KPOD_K8S_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kpod-k8s/<kubernetes version>/bin}
#
# Each binary has a stamp (.<name>.stamp: module version + hash of the wrapper's go.mod and
# go.sum); a binary whose stamp matches is not rebuilt. Builds use -trimpath (the same as the
# Makefile's GOFLAGS, so the Go build cache is shared) and the upstream -X version ldflags,
# so `kube-apiserver --version` says the real release. GOCACHE/GOMODCACHE are Go's usual ones
# (override them in the environment to build elsewhere).
#
# Needs: go (the toolchain in tools/k8s/*/go.mod or newer; the go command fetches a newer one
# from the module proxy if needed). Cold build of the default set (six binaries and pause,
# empty GOCACHE, GOMODCACHE and binary directory), measured on the 2-core VM while other jobs
# ran (nice 19, 1.47 CPUs on average): 14m58s wall, 22 CPU-minutes (user 1161 s + sys 161 s),
# so ~11-12 min on an idle 2-core machine — etcd 1m49s, kube-apiserver 8m25s,
# kube-controller-manager 3m00s, kube-scheduler 0m19s, kubectl 0m37s, kubelet 0m48s, in that
# order (each reuses the packages compiled before it); 4.2 GB of Go build cache, 0.77 GB of
# module cache, 463 MB of binaries. kube-controller-manager alone, after the other four:
# 12m15s on the busy VM (16 CPU-minutes). Binaries present: ~0.4 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$ROOT/tools/k8s

# required_version <wrapper dir> <module>: the version the wrapper's go.mod requires.
required_version() {
	awk -v m="$2" '($1 == "require" && $2 == m) || ($1 == m && $0 !~ /=>/) { print ($1 == "require" ? $3 : $2); exit }' "$TOOLS/$1/go.mod"
}

K8S_VERSION=$(required_version kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(required_version etcd go.etcd.io/etcd/server/v3)
CONTAINERD_VERSION=$(required_version containerd github.com/containerd/containerd/v2)
HELM_VERSION=$(required_version helm helm.sh/helm/v4)
CNI_VERSION=$(required_version cni github.com/containernetworking/plugins)
if [ -z "$K8S_VERSION" ] || [ -z "$ETCD_VERSION" ] || [ -z "$CONTAINERD_VERSION" ] || [ -z "$HELM_VERSION" ] || [ -z "$CNI_VERSION" ]; then
	echo "k8s-build: cannot read the pinned versions from $TOOLS/*/go.mod" >&2
	exit 1
fi

BIN=${KPOD_K8S_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/kpod-k8s/$K8S_VERSION/bin}

if [ "${1:-}" = --bin-dir ]; then
	echo "$BIN"
	exit 0
fi
case "${1:-}" in -h | --help)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
	exit 0 ;;
esac

QUIET=0
if [ "${1:-}" = -q ]; then
	QUIET=1
	shift
fi
targets=()
[ $# -gt 0 ] || set -- etcd apiserver controller-manager scheduler proxy kubectl kubelet cni
for t in "$@"; do
	case $t in
	etcd | apiserver | kube-apiserver | controller-manager | kube-controller-manager | scheduler | kube-scheduler | proxy | kube-proxy | kubectl | kubelet | cni | containerd | helm) targets+=("${t#kube-}") ;;
	all) targets+=(etcd apiserver controller-manager scheduler proxy kubectl kubelet cni containerd helm) ;;
	*) echo "k8s-build: unknown target '$t' (etcd, apiserver, controller-manager, scheduler, proxy, kubectl, kubelet, cni, containerd, helm, all)" >&2; exit 2 ;;
	esac
done

command -v go >/dev/null || { echo "k8s-build: go is not on PATH" >&2; exit 1; }
mkdir -p "$BIN"

# One build at a time per binary directory (two CI jobs, or a user and `make cluster-up`),
# taken only when something has to be built: checking cached binaries never waits.
LOCKED=0
lock_bin() {
	[ $LOCKED = 0 ] || return 0
	exec 9>"$BIN/.lock"
	if ! flock -n 9; then
		echo "k8s-build: another build holds $BIN/.lock, waiting"
		flock 9
	fi
	LOCKED=1
}
# current <name> <stamp>: $BIN/<name> exists and was built from <stamp>.
current() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.stamp" 2>/dev/null)" = "$2" ]; }

export GOWORK=off GOFLAGS="-trimpath -mod=readonly${GOFLAGS:+ $GOFLAGS}"

# Version ldflags as kubernetes/hack/lib/version.sh sets them (no git commit: the module zip
# has none).
k8s_ldflags() {
	local minor=${K8S_VERSION#v*.} flags="-s -w" key val pkg
	minor=${minor%%.*}
	local major=${K8S_VERSION#v}
	major=${major%%.*}
	for kv in "gitVersion=$K8S_VERSION" "gitMajor=$major" "gitMinor=$minor" "gitTreeState=clean" \
		"buildDate=$(date -u ${SOURCE_DATE_EPOCH:+--date=@$SOURCE_DATE_EPOCH} +%Y-%m-%dT%H:%M:%SZ)"; do
		key=${kv%%=*} val=${kv#*=}
		for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
			flags+=" -X $pkg.$key=$val"
		done
	done
	echo "$flags"
}

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

summary=()
# build <target> <wrapper dir> <version> <ldflags> <env...> -- <name=package>...
build() {
	local target=$1 dir=$2 version=$3 ldflags=$4
	shift 4
	local -a env=() outs=()
	while [ "$1" != -- ]; do env+=("$1"); shift; done
	shift
	local stamp_val missing=0 o
	stamp_val="$version $(cat "$TOOLS/$dir/go.mod" "$TOOLS/$dir/go.sum" | sha256sum | cut -c1-16)"
	for o in "$@"; do
		outs+=("${o%%=*}")
		current "${o%%=*}" "$stamp_val" || missing=1
	done
	if [ $missing = 1 ] && [ $LOCKED = 0 ]; then
		lock_bin # and look again: the build that held the lock may have made them
		missing=0
		for o in "$@"; do current "${o%%=*}" "$stamp_val" || missing=1; done
	fi
	if [ $missing = 0 ]; then
		[ $QUIET = 1 ] || echo "k8s-build: $target $version: up to date (${outs[*]})"
		summary+=("$(printf '%-10s %-8s %s' "$target" "$version" "cached")")
		return
	fi
	local start=$SECONDS
	header
	BUILT=1
	echo "k8s-build: $target $version: building ${outs[*]} (tools/k8s/$dir) ..."
	for o in "$@"; do
		local name=${o%%=*} pkg=${o#*=} t0=$SECONDS
		current "$name" "$stamp_val" && continue
		(cd "$TOOLS/$dir" && env "${env[@]}" go build -ldflags "$ldflags" -o "$BIN/.$name.tmp" "$pkg")
		mv -f "$BIN/.$name.tmp" "$BIN/$name"
		echo "$stamp_val" >"$BIN/.$name.stamp"
		echo "k8s-build:   $name: $(fmt_secs $((SECONDS - t0))) ($(du -h "$BIN/$name" | cut -f1))"
	done
	echo "k8s-build: $target $version: built in $(fmt_secs $((SECONDS - start)))"
	summary+=("$(printf '%-10s %-8s %s' "$target" "$version" "built in $(fmt_secs $((SECONDS - start)))")")
}

# build_pause: the pod sandbox ("pause") binary, compiled from build/pause/linux/pause.c of
# the pinned k8s.io/kubernetes module (gcc, static), for cluster-up's locally built pause image.
build_pause() {
	local stamp_val dir tag t0=$SECONDS
	stamp_val="$K8S_VERSION $(cat "$TOOLS/kubernetes/go.mod" "$TOOLS/kubernetes/go.sum" | sha256sum | cut -c1-16)"
	if current pause "$stamp_val" || { lock_bin && current pause "$stamp_val"; }; then
		[ $QUIET = 1 ] || echo "k8s-build: pause: up to date"
		return
	fi
	header
	BUILT=1
	command -v gcc >/dev/null || { echo "k8s-build: gcc is needed for the pause binary (apt-get install gcc libc6-dev)" >&2; exit 1; }
	dir=$(cd "$TOOLS/kubernetes" && go mod download -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	tag=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
	gcc -Os -Wall -Werror -static -DVERSION="v$tag-kpod" -o "$BIN/.pause.tmp" "$dir/build/pause/linux/pause.c"
	mv -f "$BIN/.pause.tmp" "$BIN/pause"
	echo "$tag" >"$BIN/.pause.tag"
	echo "$stamp_val" >"$BIN/.pause.stamp"
	echo "k8s-build:   pause $tag: $(fmt_secs $((SECONDS - t0))) (gcc, $(du -h "$BIN/pause" | cut -f1))"
}

total_start=$SECONDS
BUILT=0 HEADER=0
header() {
	[ $HEADER = 0 ] || return 0
	HEADER=1
	echo "k8s-build: targets: ${targets[*]}; binaries: $BIN; $(go version | cut -d' ' -f3); GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE)"
}
[ $QUIET = 1 ] || header
declare -A done_targets=()
for t in "${targets[@]}"; do
	[ -z "${done_targets[$t]:-}" ] || continue
	done_targets[$t]=1
	case $t in
	etcd)
		build etcd etcd "$ETCD_VERSION" "-s -w" CGO_ENABLED=0 -- etcd=go.etcd.io/etcd/server/v3 ;;
	apiserver)
		build apiserver kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver ;;
	controller-manager)
		build controller-manager kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager ;;
	scheduler)
		build scheduler kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler ;;
	proxy)
		build proxy kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kube-proxy=k8s.io/kubernetes/cmd/kube-proxy ;;
	kubectl)
		build kubectl kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kubectl=k8s.io/kubernetes/cmd/kubectl ;;
	kubelet)
		build kubelet kubernetes "$K8S_VERSION" "$(k8s_ldflags)" CGO_ENABLED=0 -- kubelet=k8s.io/kubernetes/cmd/kubelet
		build_pause ;;
	cni)
		# Static, with the version ldflag of the plugins' own build_linux.sh release builds.
		build cni cni "$CNI_VERSION" "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_VERSION" \
			CGO_ENABLED=0 -- \
			cni-bridge=github.com/containernetworking/plugins/plugins/main/bridge \
			cni-host-local=github.com/containernetworking/plugins/plugins/ipam/host-local \
			cni-loopback=github.com/containernetworking/plugins/plugins/main/loopback \
			cni-tuning=github.com/containernetworking/plugins/plugins/meta/tuning ;;
	containerd)
		build containerd containerd "$CONTAINERD_VERSION" \
			"-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2" \
			CGO_ENABLED=0 GOFLAGS="$GOFLAGS -tags=no_btrfs,no_devmapper,no_zfs" -- \
			containerd=github.com/containerd/containerd/v2/cmd/containerd \
			containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
			ctr=github.com/containerd/containerd/v2/cmd/ctr ;;
	helm)
		# Version ldflags as Helm's Makefile sets them for a release tag (no git commit: the
		# module zip has none), so `helm version` says the pinned release.
		build helm helm "$HELM_VERSION" \
			"-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
			CGO_ENABLED=0 -- helm=helm.sh/helm/v4/cmd/helm ;;
	esac
done
[ $QUIET = 0 ] || [ $BUILT = 1 ] || exit 0
echo "k8s-build: done in $(fmt_secs $((SECONDS - total_start))):"
printf 'k8s-build:   %s\n' "${summary[@]}"
echo "k8s-build: binaries in $BIN"
