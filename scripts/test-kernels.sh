#!/usr/bin/env bash
# test-kernels.sh — runs the real-kernel tests on another kernel: Debian's cloud kernel of a
# series (6.1, bookworm's: `make test-kernels`; 5.10, bullseye's: `make test-kernel-5.10`)
# booted under qemu (software emulation) with pure cgroup v2.
#
#   scripts/test-kernels.sh
#   KERNEL_TEST_RUN=TestRealCPU scripts/test-kernels.sh          # -test.run of every binary
#   KERNEL_TEST_PKGS=./internal/... scripts/test-kernels.sh      # go list patterns
#
# 1. `go test -c` of every package of the module whose tests import internal/fakepod (the
#    real-kernel tests; with the e2e build tag, so test/e2e and the otelcol-kpod it runs too).
# 2. The kernel: the newest linux-image-<series>.0-*-cloud-amd64-unsigned of the series' Debian
#    release (6.1: the host's apt sources; 5.10: bullseye from deb.debian.org, through an apt
#    configuration of its own under the cache, signatures checked with the host's Debian
#    keyring), fetched with apt-get download and unpacked with dpkg-deb (never installed) into
#    ${KPOD_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpod-kernels}/<package version>/.
# 3. An initramfs (newc cpio, uncompressed): busybox-static, the host tools the tests run
#    with their shared libraries, the kernel modules the tests need, the test binaries, the
#    repository's tracked files (testdata, examples, go.mod, README.md: what the tests read,
#    in the same layout), _build/otelcol-kpod, and an ext4 disk image for the VM's /tmp.
# 4. qemu-system-x86_64 boots it; its /init (busybox sh) mounts what a node has, runs each
#    binary with -test.v, CI=true (a skip is a failure) and KPOD_TEST_KERNEL=vm-<series>, prints
#    "KPOD-VM-EXIT <binary> <code>" after each and "KPOD-VM-END <nonce>" at the end, and
#    powers off.
# 5. The console is kept in _build/test-kernels/console.log. qemu always exits 0, so the
#    result comes from the console: the run fails if a binary exits non-zero, is missing, or the
#    runner's end line (with this run's nonce) never came (hang, panic, soft lockup).
#
# Environment:
#   KERNEL_TEST_RUN      -test.run regexp for every binary (default: all tests)
#   KERNEL_TEST_PKGS     go list patterns to choose from (default ./...)
#   KERNEL_TEST_COUNT    -test.count of each binary (default 1; more to hunt a flake)
#   KERNEL_TEST_TIMEOUT  -test.timeout of each binary (default 20m per count: the receiver's
#                        tests took 421 s in the 6.1 VM of one CI run, and 10m cut off their
#                        second count)
#   KERNEL_VM_TIMEOUT    seconds before the whole VM is killed (default 1500 per count: the 6.1
#                        VM ran 695 s in one CI run and passed 900 s in the next, under emulation)
#   KERNEL_VM_CPUS       guest CPUs (default 2: TestRealCPU and TestRealIRQ pin to CPU 1)
#   KERNEL_VM_MEM        guest MiB (default: twice the initramfs + 1.5 GiB for the tests)
#   KERNEL_VM_TCG_THREAD single (default) or multi: qemu's TCG threads (see the qemu command)
#   KERNEL_VERBOSE=1     stream the whole console, not only results
#   KPOD_KERNEL_CACHE    kernel cache directory
#   KERNEL_SERIES        6.1 (default) or 5.10
#   KPOD_KERNEL_PKG      a specific linux-image package (default: newest cloud unsigned of the series)
#
# Needs: go, gcc (static workload), qemu-system-x86, busybox-static, cpio, apt-get/dpkg-deb,
# iproute2, nftables, e2fsprogs, util-linux, procps (make deps). Runs as any user: the tests
# are root inside the VM.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUN_FILTER=${KERNEL_TEST_RUN:-}
PKGS=${KERNEL_TEST_PKGS:-./...}
TEST_COUNT=${KERNEL_TEST_COUNT:-1}
TEST_TIMEOUT=${KERNEL_TEST_TIMEOUT:-$((20 * TEST_COUNT))m}
VM_TIMEOUT=${KERNEL_VM_TIMEOUT:-$((1500 * TEST_COUNT))}
VM_CPUS=${KERNEL_VM_CPUS:-2}
TCG_THREAD=${KERNEL_VM_TCG_THREAD:-single}
CACHE=${KPOD_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kpod-kernels}
OUT=$ROOT/_build/test-kernels
TAGS=e2e
# The host tools the tests and internal/fakepod run (everything else comes from busybox).
TOOLS="ip tc nft ss sysctl losetup mount umount unshare nsenter mkfs.ext4 dd stat cat mkdir"
# Modules of the cloud flavour that the tests need (the /tmp disk, veth pairs, loop devices,
# the nft loss and RST rules with their named counters, the NAT that plays kube-proxy, the
# tbf qdisc, ss -ti); their dependencies are added from each .ko's modinfo.
# The real servers and clients of the l7 tests, copied with their libraries, and the data
# trees they read at run time (share files, plugins). A program that is not installed here
# is not copied: its test then fails in the VM as on a host without it (fakepod.Unmet).
# PostgreSQL's programs are in a versioned directory (Debian's psql is a Perl wrapper); its
# server runs as nobody (see the passwd below).
L7_PROGRAMS="redis-server redis-cli redis-benchmark curl dnsmasq dig bash mariadbd mariadb setpriv
	$(echo /usr/lib/postgresql/*/bin/postgres /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/psql)"
L7_TREES="/usr/share/mysql/english /usr/share/mysql/charsets $(echo /usr/lib/postgresql/*/lib) /usr/share/postgresql
	/usr/share/zoneinfo"
MODULES="virtio_pci virtio_blk veth loop nf_tables nft_numgen nft_objref nft_chain_nat nft_nat sch_tbf inet_diag tcp_diag"
# Modules some kernels have and others build into a larger one (nft's counter: a module of its
# own in 5.10, part of nf_tables in 6.1).
MODULES_IF_ANY="nft_counter"

log() { echo "test-kernels: $*" >&2; }
die() {
	log "$*"
	exit 1
}

WORK=$(mktemp -d /tmp/kpod-test-kernels.XXXXXX)
QEMU_PID= PARTIAL=
cleanup() {
	if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
	rm -rf "$WORK" ${PARTIAL:+"$PARTIAL"}
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for c in go gcc qemu-system-x86_64 cpio mkfs.ext4 apt-get apt-cache dpkg-deb ldd $TOOLS; do
	command -v "$c" >/dev/null || die "$c is missing (make deps)"
done
BUSYBOX=$(command -v busybox) || die "busybox is missing (make deps: busybox-static)"
ldd "$BUSYBOX" >/dev/null 2>&1 && die "$BUSYBOX is not static (install busybox-static)"

# ---- 1. test binaries -------------------------------------------------------------------------
start=$SECONDS
rm -rf "$OUT"
mkdir -p "$OUT/bin"
# Real-kernel tests are the ones that make fake pods; the list is found, never written down.
mapfile -t PKG_LINES < <(go list -tags "$TAGS" -f '{{.Dir}}|{{join .TestImports " "}} {{join .XTestImports " "}}' $PKGS |
	awk -F'|' '$2 ~ /(^| )github.com\/kpod-project\/kpod\/internal\/fakepod( |$)/ {print $1 "|" $2}')
[ ${#PKG_LINES[@]} -gt 0 ] || die "no package in $PKGS has real-kernel tests (tests importing internal/fakepod)"
NEED_COLLECTOR=0
: >"$WORK/tests.list"
for line in "${PKG_LINES[@]}"; do
	dir=${line%%|*} imports=${line#*|}
	rel=${dir#"$ROOT"/}
	name=${rel//\//_}
	log "go test -c ./$rel"
	# -s -w: no symbol table or DWARF (stack traces still work); the initramfs sits in guest RAM.
	go test -c -tags "$TAGS" -ldflags='-s -w' -o "$OUT/bin/$name.test" "./$rel"
	echo "$name $rel" >>"$WORK/tests.list"
	# internal/testenv is how a test finds _build/otelcol-kpod.
	case " $imports " in *" github.com/kpod-project/kpod/internal/testenv "*) NEED_COLLECTOR=1 ;; esac
done
if [ $NEED_COLLECTOR = 1 ] && [ ! -x _build/otelcol-kpod ]; then
	die "_build/otelcol-kpod is missing (make otelcol)"
fi
# internal/fakepod compiles workload.c with gcc at test time; the VM has no gcc, so it gets a
# binary built here with the same command (KPOD_WORKLOAD_BINARY).
gcc -static -O2 -pthread -o "$OUT/kpod-workload" internal/fakepod/workload/workload.c
# The Go servers and clients of the l7 tests (KPOD_L7APP_BINARY), static.
CGO_ENABLED=0 go build -ldflags='-s -w' -o "$OUT/kpod-l7app" ./internal/fakepod/l7app
log "binaries built in $((SECONDS - start)) s"

# ---- 2. kernel --------------------------------------------------------------------------------
start=$SECONDS
SERIES=${KERNEL_SERIES:-6.1}
APT=()
case $SERIES in
6.1) ;;
5.10)
	# bullseye is not among the host's sources: an apt state of its own, for bullseye's main
	# suite alone (its security suite's newer images are not served by the mirror here).
	APTDIR=$CACHE/apt-bullseye
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main" >"$APTDIR/sources.list"
	APT=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache=$APTDIR/cache")
	;;
*) die "KERNEL_SERIES=$SERIES: 6.1 or 5.10" ;;
esac
PKG_RE="^linux-image-${SERIES//./\\.}\\.0-[0-9]+-cloud-amd64-unsigned\$"
newest_kernel() {
	apt-cache "${APT[@]}" search --names-only "$PKG_RE" | awk '{print $1}' | sort -V | tail -1
}
KPKG=${KPOD_KERNEL_PKG:-$(newest_kernel)}
if [ -z "$KPKG" ]; then
	log "apt knows no linux-image-$SERIES.0-*-cloud-amd64-unsigned; apt-get update"
	apt-get "${APT[@]}" update -qq
	KPKG=$(newest_kernel)
	[ -n "$KPKG" ] || die "no linux-image-$SERIES.0-*-cloud-amd64-unsigned in the apt sources"
fi
KVER=$(apt-cache "${APT[@]}" show --no-all-versions "$KPKG" | awk '/^Version:/ && v == "" {v = $2} END {print v}')
KDIR=$CACHE/${KPKG}_$KVER
if [ ! -d "$KDIR" ]; then
	log "downloading $KPKG $KVER into $KDIR"
	mkdir -p "$CACHE" "$WORK/deb"
	# apt-get download as root warns that _apt cannot write a root-owned directory; harmless.
	(cd "$WORK/deb" && apt-get "${APT[@]}" download -q "$KPKG=$KVER" 2>&1 | grep -v 'unsandboxed' >&2 || true)
	deb=$(ls "$WORK"/deb/*.deb 2>/dev/null) || die "apt-get download $KPKG=$KVER failed"
	# Unpacked beside its final name and renamed into place, so that an interrupted run
	# never leaves a half-filled cache entry.
	PARTIAL=$KDIR.partial.$$
	dpkg-deb -x "$deb" "$PARTIAL"
	mv -T "$PARTIAL" "$KDIR"
	PARTIAL=
fi
VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-*)
KRELEASE=${VMLINUZ##*/vmlinuz-}
MODDIR=$KDIR/lib/modules/$KRELEASE
log "kernel $KRELEASE ($KPKG $KVER) ready in $((SECONDS - start)) s"

# ---- 3. initramfs -----------------------------------------------------------------------------
start=$SECONDS
R=$WORK/root
mkdir -p "$R"/{usr/bin,usr/sbin,usr/lib,usr/lib64,usr/local/bb,proc,sys,dev,tmp,run,etc,kpod/tests,kpod/modules,src}
# The host's merged-/usr layout, so that tools and ldd's library paths resolve alike.
for d in bin sbin lib lib64; do ln -s usr/$d "$R/$d"; done

cp "$BUSYBOX" "$R/usr/bin/busybox" # /init links its applets into /usr/local/bb
ln -s busybox "$R/usr/bin/sh" # /bin/sh for popen(3) and system(3) (initdb runs postgres -V)

# copy_with_libs <file>...: each file at its own path, plus the shared libraries ldd lists.
copy_with_libs() {
	local f lib
	for f in "$@"; do
		mkdir -p "$R$(dirname "$f")"
		cp -L "$f" "$R$f"
		for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
			[ -e "$R$lib" ] && continue
			mkdir -p "$R$(dirname "$lib")"
			cp -L "$lib" "$R$lib"
		done
	done
}
for t in $TOOLS; do copy_with_libs "$(command -v "$t")"; done
for t in $L7_PROGRAMS; do
	if p=$(command -v "$t"); then copy_with_libs "$p"; else log "$t is not installed: its l7 test will fail in the VM"; fi
done
for d in $L7_TREES; do
	[ -d "$d" ] || continue
	mkdir -p "$R$(dirname "$d")"
	cp -a "$d" "$R$d"
done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$R/etc/"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"

# Modules in load order: a module after everything its modinfo "depends=" names. One that
# this kernel has built in (modules.builtin) needs nothing.
declare -A KO_PATH=() LOADED=()
while IFS= read -r ko; do
	m=${ko##*/}
	m=${m%.ko}
	KO_PATH[${m//-/_}]=$ko
done < <(find "$MODDIR/kernel" -name '*.ko')
: >"$R/kpod/modules/order"
add_module() {
	local m=${1//-/_} dep deps
	[ -n "${LOADED[$m]:-}" ] && return
	LOADED[$m]=1
	if [ -z "${KO_PATH[$m]:-}" ]; then
		grep -q "/${m}.ko$\|/${1}.ko$" "$MODDIR/modules.builtin" || die "module $1 is neither in $MODDIR nor built in"
		return
	fi
	deps=$(tr '\0' '\n' <"${KO_PATH[$m]}" | sed -n 's/^depends=//p' | tr ',' ' ')
	for dep in $deps; do add_module "$dep"; done
	cp "${KO_PATH[$m]}" "$R/kpod/modules/$m.ko"
	echo "$m" >>"$R/kpod/modules/order"
}
for m in $MODULES; do add_module "$m"; done
for m in $MODULES_IF_ANY; do [ -n "${KO_PATH[${m//-/_}]:-}" ] && add_module "$m"; done

# The repository's tracked (and new, not ignored) files, in their layout: the tests read
# testdata, examples, README.md and find the root by go.mod.
git ls-files -z --cached --others --exclude-standard | tar -C "$ROOT" --null -T - -cf - | tar -C "$R/src" -xf -
if [ $NEED_COLLECTOR = 1 ]; then
	mkdir -p "$R/src/_build"
	cp _build/otelcol-kpod "$R/src/_build/"
fi
cp "$OUT"/bin/*.test "$R/kpod/tests/"
cp "$OUT/kpod-workload" "$OUT/kpod-l7app" "$R/kpod/"
cp "$WORK/tests.list" "$R/kpod/tests.list"

NONCE=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
{
	printf 'RUN_FILTER=%q\n' "$RUN_FILTER"
	printf 'TEST_TIMEOUT=%q\n' "$TEST_TIMEOUT"
	printf 'TEST_COUNT=%q\n' "$TEST_COUNT"
	printf 'NONCE=%q\n' "$NONCE"
} >"$R/kpod/config"
cp "$ROOT/scripts/test-kernels-init.sh" "$R/init"
chmod 755 "$R/init"

# /tmp of the VM is an ext4 disk, as on a node: tests use O_DIRECT on t.TempDir() files
# (tmpfs refuses it) and count the disk's interrupts, and loop images stay out of guest RAM.
# Made here with the inode tables written, so that ext4lazyinit adds no I/O during the tests.
DISK=$WORK/tmp.img
truncate -s 2G "$DISK"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$DISK"

# Not compressed: the guest unpacks a 160 MiB initramfs 6 s faster without gunzip under
# emulation (boot to /init 4.6 s against 10.6 s with gzip -1), and the host saves the gzip.
INITRD=$WORK/initrd.cpio
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null --quiet -o -H newc -R 0:0) >"$INITRD"
initrd_mib=$(($(stat -c %s "$INITRD") >> 20))
log "initramfs: $initrd_mib MiB, built in $((SECONDS - start)) s"

# ---- 4. boot ----------------------------------------------------------------------------------
# Guest RAM holds the initramfs twice while the kernel unpacks it (then once: rootfs is not
# swappable), plus what the tests use: the OOM test's 128 MiB pod, 64 MiB allocations, page
# cache, the collector.
VM_MEM=${KERNEL_VM_MEM:-$((2 * initrd_mib + 1536))}
log "booting $KRELEASE: $VM_CPUS CPUs, $VM_MEM MiB, timeout $VM_TIMEOUT s; console in ${OUT#"$ROOT"/}/console.log"
CONSOLE=$OUT/console.log
: >"$CONSOLE"
start=$SECONDS
# KVM is not usable here (the host is a nested PVM guest; stock kernels die at cmpxchg16b):
# TCG. One host thread runs both guest CPUs in turn (thread=single): with a thread per CPU
# (multi) a CPU whose thread the busy host does not schedule leaves the other spinning in
# text_poke's IPI for 13 s (soft lockup in TestRealCachestat, 1 of 5 runs here), and the run
# took 276 s in the VM against 133 s single (TestRealCPU's ping-pong: 83 s against 10 s).
# softlockup_panic with a 5 s watchdog ends a VM whose CPUs lock up instead of waiting for
# the timeout; panic=-1 with -no-reboot makes qemu exit on a panic.
timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 \
	-accel tcg,thread=$TCG_THREAD -cpu max -smp "$VM_CPUS" -m "$VM_MEM" \
	-nographic -nodefaults -no-reboot -display none -serial stdio \
	-kernel "$VMLINUZ" -initrd "$INITRD" \
	-drive file="$DISK",format=raw,if=virtio,cache=unsafe \
	-append "console=ttyS0 rdinit=/init panic=-1 cgroup_no_v1=all quiet loglevel=4 softlockup_panic=1 softlockup_all_cpu_backtrace=1 watchdog_thresh=5" \
	</dev/null >"$CONSOLE" 2>&1 &
QEMU_PID=$!
if [ "${KERNEL_VERBOSE:-0}" = 1 ]; then
	tail -n +1 -f --pid=$QEMU_PID "$CONSOLE" &
else
	tail -n +1 -f --pid=$QEMU_PID "$CONSOLE" | grep --line-buffered -E '^(--- (PASS|FAIL|SKIP)|KPOD-VM|panic:)|Kernel panic|BUG:|Oops' &
fi
TAIL_PID=$!
rc=0
wait $QEMU_PID || rc=$?
QEMU_PID=
wait $TAIL_PID 2>/dev/null || true
log "VM ran $((SECONDS - start)) s"

# ---- 5. verdict -------------------------------------------------------------------------------
# The console is a serial line: strip carriage returns before matching.
tr -d '\r' <"$CONSOLE" >"$OUT/console.txt" && mv "$OUT/console.txt" "$CONSOLE"

# results.txt: "<binary> <test> PASS|FAIL|SKIP", and NOT-RUN for the tests a binary has but
# never reported (it panicked or the VM stopped) when no -test.run filter was given.
RESULTS=$OUT/results.txt
awk '/^KPOD-VM-RUN / {bin = $2} /^--- (PASS|FAIL|SKIP): / {sub(":", "", $2); print bin, $3, $2}' "$CONSOLE" >"$RESULTS"
if [ -z "$RUN_FILTER" ]; then
	while read -r name rel; do
		for t in $("$OUT/bin/$name.test" -test.list . 2>/dev/null); do
			grep -q "^$name $t " "$RESULTS" || echo "$name $t NOT-RUN" >>"$RESULTS"
		done
	done <"$WORK/tests.list"
fi

failed=0
if [ $rc = 124 ]; then
	log "FAIL: the VM did not finish within $VM_TIMEOUT s (KERNEL_VM_TIMEOUT)"
	failed=1
fi
while read -r name rel; do
	code=$(awk -v n="$name" '$1 == "KPOD-VM-EXIT" && $2 == n {print $3}' "$CONSOLE" | tail -1)
	if [ -z "$code" ]; then
		log "FAIL: $rel: no exit line (the VM stopped while it ran, or before)"
		failed=1
	elif [ "$code" != 0 ]; then
		log "FAIL: $rel: exit code $code"
		failed=1
	fi
done <"$WORK/tests.list"
if ! grep -qx "KPOD-VM-END $NONCE" "$CONSOLE"; then
	log "FAIL: the runner's end line is missing (hang, panic or lockup); the console ends with:"
	tail -20 "$CONSOLE" >&2
	failed=1
fi
if [ $failed = 0 ]; then
	log "all real-kernel tests passed on $KRELEASE ($(grep -c ' PASS$' "$RESULTS") passed; $RESULTS)"
	exit 0
fi
# The output of each failed top-level test (at most 40 lines) and of panics, so that a CI log
# says why without the console file.
awk -v max=40 '
	/^KPOD-VM-RUN / { bin = $2; cur = ""; inpanic = 0; next }
	/^KPOD-VM-EXIT / { inpanic = 0; next }
	/^panic: / { inpanic = 1; print "---- " bin ": panic"; np = 0 }
	inpanic { if (++np <= max) print; next }
	/^=== RUN   / { if (index($3, "/") == 0) { cur = $3; n = 0 } next }
	cur != "" && !/^=== / { if (++n <= max) buf[n] = $0 }
	/^--- FAIL: / && $3 == cur {
		print "---- " bin ": " cur
		for (i = 1; i <= n && i <= max; i++) print buf[i]
		if (n > max) print "    ... " n - max " more lines in the console log"
		cur = ""
	}
	/^--- (PASS|SKIP): / && $3 == cur { cur = "" }
' "$CONSOLE" >&2
log "$(grep -c ' PASS$' "$RESULTS") passed, $(grep -c ' FAIL$' "$RESULTS") failed, $(grep -c ' SKIP$' "$RESULTS") skipped, $(grep -c ' NOT-RUN$' "$RESULTS") not run ($RESULTS)"
log "FAILED on $KRELEASE (full console: $CONSOLE)"
exit 1
