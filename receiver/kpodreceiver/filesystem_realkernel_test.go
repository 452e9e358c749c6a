package kpodreceiver

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealFilesystem: a container with its own mount namespace and an ext4 volume mounted at
// /data reports that filesystem's capacity, usage and available space as statfs does, and its
// usage grows by the blocks of the file the container wrote; a container in the host's mount
// namespace reports no filesystems (they are the node's).
func TestRealFilesystem(t *testing.T) {
	fakepod.RequireRoot(t)
	const sizeMiB, written = 64, 8 << 20
	mnt := fakepod.NewMountNS(t)
	fakepod.NewExt4(t, sizeMiB, fakepod.Ext4Options{MountNS: mnt, Dir: "/data"})

	pod := fakepod.New(t, fakepod.Options{})
	ctr := pod.AddContainer()
	ctr.SetNS = []string{mnt.Path}
	host := fakepod.New(t, fakepod.Options{})
	hostCtr := host.AddContainer()

	s := startScraper(t, customConfig("filesystem"))
	hostCtr.Start("sleep").WaitReady()
	ctr.Start("sleep").WaitReady() // keeps the namespace's view alive for kpod
	before := scrape(t, s)
	fs0 := statfsData(t, mnt)
	writer := ctr.Start("dwrite", "/data/blob", strconv.Itoa(written), "65536")
	if err := writer.Wait(); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, s)
	failDump(t, after)

	mp := map[string]string{"system.filesystem.mountpoint": "/data"}
	rmBefore, _ := resourceOf(before, pod.UID, ctr.ID)
	rm, _ := resourceOf(after, pod.UID, ctr.ID)
	// The kernel's own numbers for /data (statfs in the container's mount namespace, taken
	// right after each scrape; only the writer writes to the volume): capacity, usage and
	// available exact, and the usage grew by exactly the blocks the kernel allocated to the
	// file the container wrote (stat: its data and its extent tree).
	fs1 := statfsData(t, mnt)
	if capacity := intValue(t, rm, "kpod.fs.capacity.bytes", mp); capacity != fs1.capacity {
		t.Errorf("capacity of /data = %d, statfs says %d", capacity, fs1.capacity)
	}
	u0, u1 := intValue(t, rmBefore, "kpod.fs.usage.bytes", mp), intValue(t, rm, "kpod.fs.usage.bytes", mp)
	if u0 != fs0.used || u1 != fs1.used {
		t.Errorf("usage of /data = %d before the write and %d after, statfs says %d and %d", u0, u1, fs0.used, fs1.used)
	}
	var fileBlocks, fileSize int64
	st := mnt.Exec("stat", "-c", "%b %s", "/data/blob")
	if _, err := fmt.Sscan(st, &fileBlocks, &fileSize); err != nil {
		t.Fatalf("stat /data/blob: %q: %v", st, err)
	}
	t.Logf("usage of /data %d → %d bytes (statfs %d → %d); /data/blob %d bytes in %d bytes of blocks", u0, u1, fs0.used, fs1.used, fileSize, fileBlocks*512)
	if fileSize != written || u1-u0 != fileBlocks*512 {
		t.Errorf("usage of /data grew by %d bytes; the container wrote %d bytes (want %d), which took %d bytes of blocks", u1-u0, fileSize, written, fileBlocks*512)
	}
	if avail := intValue(t, rm, "kpod.fs.available.bytes", mp); avail != fs1.available {
		t.Errorf("available on /data = %d, statfs says %d", avail, fs1.available)
	}
	hostRM, _ := resourceOf(after, host.UID, hostCtr.ID)
	if _, ok := metricOf(hostRM, "kpod.fs.capacity.bytes"); ok {
		t.Errorf("a container in the host's mount namespace reports filesystems")
	}
}

// fsBytes is what statfs says of /data in a mount namespace.
type fsBytes struct{ capacity, used, available int64 }

// statfsData reads statfs of /data in the mount namespace (stat -f): capacity blocks × size,
// used (blocks − free) × size, available bavail × size.
func statfsData(t *testing.T, mnt *fakepod.MountNS) fsBytes {
	t.Helper()
	var blocks, free, avail, size int64
	st := mnt.Exec("stat", "-f", "-c", "%b %f %a %S", "/data")
	if _, err := fmt.Sscan(st, &blocks, &free, &avail, &size); err != nil {
		t.Fatalf("stat -f /data: %q: %v", st, err)
	}
	return fsBytes{capacity: blocks * size, used: (blocks - free) * size, available: avail * size}
}
