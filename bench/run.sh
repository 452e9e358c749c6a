#!/usr/bin/env bash
# `make bench`: installs what the benchmarks need, then runs them (bench/*_test.go, build tag
# `bench`) and writes BENCHMARKS.md. Needs root. Knobs (bench/README.md): BENCH_ROUNDS (2),
# BENCH_MICRO_PAIRS (3), BENCH_PEER_PAIRS (2), BENCH_REDIS_PAIRS (1), BENCH_FOCUS_PAIRS (24),
# BENCH_TCP_PAIRS (16), BENCH_SYSCALL_PAIRS (12), BENCH_L7_PAIRS (12), BENCH_PRIM_PAIRS (40),
# BENCH_SEED (the shuffle seed; default: the time), BENCH_OUT (/tmp/kpod-bench), BENCH_QUICK=1 (a subset, few blocks: for
# trying changes, not for conclusions).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "make bench needs root (BPF, cgroups, loop devices)" >&2; exit 1; fi
missing=""
for p in bpftool bpftrace libbpf-tools redis-server redis-tools gcc libc6-dev util-linux; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing$missing"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
export BENCH_OTELCOL="${BENCH_OTELCOL-$PWD/_build/otelcol-kpod}"
exec ${GO:-go} test -tags bench -count=1 -run '^(TestFloorCounters|TestBench)$' -timeout 60m -v ./bench/
