#!/usr/bin/busybox sh
# /init of the test VM of scripts/test-kernels.sh (busybox sh, PID 1): sets the VM up like a
# pure cgroup v2 node, runs every test binary and powers off. The host reads the result from
# the console: "KPOD-VM-EXIT <binary> <code>" per binary, then "KPOD-VM-END <nonce>".
export PATH=/usr/sbin:/usr/bin:/usr/local/bb
export HOME=/root TMPDIR=/tmp

/usr/bin/busybox mount -t devtmpfs devtmpfs /dev # not mounted by the kernel (DEVTMPFS_MOUNT off)
exec </dev/null >/dev/console 2>&1
# Applets last in PATH: for the tests a real tool of the same name (ip, mount, dd, ...) wins;
# this script itself runs busybox's applets whatever PATH says (busybox sh prefers them).
/usr/bin/busybox --install -s /usr/local/bb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mkdir -p /dev/pts /dev/shm /root
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# /run holds the real-kernel test lock, /run/netns and the mount namespaces of fakepod.
mount -t tmpfs tmpfs /run
# Every controller for the children, as systemd does on a v2 node.
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "KPOD-VM-WARN cannot enable controller $c"
done
hostname kpod-vm
ip link set lo up
for m in $(cat /kpod/modules/order); do
	insmod /kpod/modules/$m.ko || echo "KPOD-VM-WARN insmod $m failed"
done
# /tmp is the ext4 disk the host made (virtio-blk).
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.5; done
mount -t ext4 /dev/vda /tmp || echo "KPOD-VM-WARN no /tmp disk: /tmp stays in RAM"
chmod 1777 /tmp

. /kpod/config
# Tests can tell where they run: KPOD_TEST_KERNEL=vm-6.1.
KERNEL=vm-$(uname -r | cut -d. -f1,2)
echo "KPOD-VM-START at $(cut -d" " -f1 /proc/uptime) s: kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo), cgroup $(cat /proc/self/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

while read -r name rel; do
	# A fresh copy of the workload per binary: test/e2e removes the directory it is in.
	mkdir -p /tmp/kpod-workload-$name
	cp /kpod/kpod-workload /tmp/kpod-workload-$name/kpod-workload
	echo "KPOD-VM-RUN $name"
	cd /src/$rel
	set -- -test.v -test.timeout="$TEST_TIMEOUT" -test.count="$TEST_COUNT"
	[ -n "$RUN_FILTER" ] && set -- "$@" -test.run="$RUN_FILTER"
	CI=true KPOD_TEST_KERNEL=$KERNEL KPOD_WORKLOAD_BINARY=/tmp/kpod-workload-$name/kpod-workload KPOD_L7APP_BINARY=/kpod/kpod-l7app \
		/kpod/tests/$name.test "$@" </dev/null
	echo "KPOD-VM-EXIT $name $?"
	cd /
done </kpod/tests.list

echo "KPOD-VM-END $NONCE"
sync
poweroff -f
