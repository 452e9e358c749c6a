#!/usr/bin/env bash
# image.sh — builds the otelcol-kpod container image without a Docker engine, and imports it
# into the containerd of the local cluster (scripts/cluster-up.sh).
#
#   scripts/image.sh [--no-import] [-o <image.tar>] [--binary <path>] [--config <path>] [--tag <name:tag>]
#
# The image (OCI, one layer, packed with umoci) holds
#   /otelcol-kpod                        _build/otelcol-kpod (`make otelcol`; must be static)
#   /etc/otelcol-kpod/collector.yaml     examples/collector-node.yaml (the DaemonSet mounts its
#                                        ConfigMap over /etc/otelcol-kpod)
#   /etc/ssl/certs/ca-certificates.crt   the host's CA bundle, for HTTPS exporters
# with entrypoint /otelcol-kpod and command --config=/etc/otelcol-kpod/collector.yaml, as in
# examples/kubernetes/daemonset.yaml. Default tag localhost/otelcol-kpod:dev; the OCI archive
# is written to _build/otelcol-kpod-image.tar and imported with
# `ctr -n k8s.io images import` into the containerd of $KPOD_CLUSTER_STATE (default
# /tmp/kpod-cluster) unless --no-import. Pods use it with imagePullPolicy: IfNotPresent or Never.
# Needs umoci (apt-get install umoci; installed when missing, as root).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${KPOD_CLUSTER_STATE:-/tmp/kpod-cluster}
BINARY=$ROOT/_build/otelcol-kpod
CONFIG=$ROOT/examples/collector-node.yaml
IMAGE=localhost/otelcol-kpod:dev
OUT=$ROOT/_build/otelcol-kpod-image.tar
IMPORT=1

die() { echo "image: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case $1 in
	--no-import) IMPORT=0 ;;
	-o) OUT=${2:?-o needs a file}; shift ;;
	--binary) BINARY=${2:?--binary needs a file}; shift ;;
	--config) CONFIG=${2:?--config needs a file}; shift ;;
	--tag) IMAGE=${2:?--tag needs name:tag}; shift ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done
case $IMAGE in */*:*) ;; *) die "--tag must be <registry>/<name>:<tag>, e.g. localhost/otelcol-kpod:dev" ;; esac
NAME=${IMAGE%:*} TAG=${IMAGE##*:}

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
T0=$(now_ms)

[ -f "$BINARY" ] || die "$BINARY is missing: run make otelcol first"
[ -f "$CONFIG" ] || die "$CONFIG is missing"
# The image has no libc: a dynamically linked binary would not start.
if command -v file >/dev/null && [[ $(file -L "$BINARY") == *"dynamically linked"* ]]; then
	die "$BINARY is dynamically linked; the image has no libc (build it with CGO_ENABLED=0)"
fi
if ! command -v umoci >/dev/null; then
	[ "$(id -u)" = 0 ] || die "umoci is missing (apt-get install umoci)"
	echo "image: apt-get install umoci"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends umoci >/dev/null
fi
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kpod-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R=$WORK/rootfs
mkdir -p "$R/etc/otelcol-kpod" "$R/etc/ssl/certs" "$R/tmp"
chmod 1777 "$R/tmp"
install -m 0755 "$BINARY" "$R/otelcol-kpod"
install -m 0644 "$CONFIG" "$R/etc/otelcol-kpod/collector.yaml"
[ ! -f /etc/ssl/certs/ca-certificates.crt ] || install -m 0644 /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"

L=$WORK/layout
umoci init --layout "$L"
umoci new --image "$L:$TAG"
umoci insert "${rootless[@]}" --image "$L:$TAG" "$R" /
umoci config "${rootless[@]}" --image "$L:$TAG" \
	--config.entrypoint /otelcol-kpod --config.cmd=--config=/etc/otelcol-kpod/collector.yaml \
	--config.exposedports 9464/tcp --config.exposedports 13133/tcp --config.exposedports 8888/tcp \
	--config.label org.opencontainers.image.title=otelcol-kpod \
	--config.label "org.opencontainers.image.version=$("$BINARY" --version 2>/dev/null | awk '{print $NF}' || echo unknown)"
umoci gc --layout "$L"
mkdir -p "$(dirname "$OUT")"
tar -C "$L" -cf "$OUT.tmp" .
mv -f "$OUT.tmp" "$OUT"
digest=$(sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' "$L/index.json")
echo "image: $IMAGE ($digest, $(du -h "$OUT" | cut -f1)) written to $OUT in $(fmt_ms $(($(now_ms) - T0)))"

[ $IMPORT = 1 ] || exit 0
SOCK=$STATE/containerd/containerd.sock
CTR=$(cat "$STATE/run/ctr.path" 2>/dev/null || echo ctr)
if [ ! -S "$SOCK" ] || ! "$CTR" --address "$SOCK" version >/dev/null 2>&1; then
	die "no cluster node is running (no containerd at $SOCK; scripts/cluster-up.sh starts one); the image is in $OUT, or use --no-import"
fi
T1=$(now_ms)
# containerd 2.x's ctr repeats a cgroup v1 deprecation warning on every call: drop it.
ctr_() { "$CTR" --address "$SOCK" --namespace k8s.io "$@" 2> >(grep -v 'DEPRECATION: The support for cgroup v1' >&2); }
ctr_ images import --base-name "$NAME" "$OUT" >/dev/null
grep -qx "$IMAGE" <<<"$(ctr_ images ls -q)" || die "$IMAGE is not in containerd after the import"
echo "image: imported $IMAGE into $SOCK (namespace k8s.io) in $(fmt_ms $(($(now_ms) - T1)))"
