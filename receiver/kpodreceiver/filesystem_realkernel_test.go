package kpodreceiver

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealFilesystem: a container with its own mount namespace and an ext4 volume mounted at
// /data reports that filesystem's capacity, and its usage grows by what the container wrote;
// a container in the host's mount namespace reports no filesystems (they are the node's).
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
	// after the scrape; nothing writes to the volume any more): capacity and available are
	// exact, and usage grew by what was written (±1 %: ext4 allocates the file's extent-tree
	// and journal blocks too).
	var blocks, bsize, bavail int64
	st := mnt.Exec("stat", "-f", "-c", "%b %S %a", "/data")
	if _, err := fmt.Sscan(st, &blocks, &bsize, &bavail); err != nil {
		t.Fatalf("stat -f /data: %q: %v", st, err)
	}
	if capacity := intValue(t, rm, "kpod.fs.capacity.bytes", mp); capacity != blocks*bsize {
		t.Errorf("capacity of /data = %d, statfs says %d", capacity, blocks*bsize)
	}
	grew := intValue(t, rm, "kpod.fs.usage.bytes", mp) - intValue(t, rmBefore, "kpod.fs.usage.bytes", mp)
	if !within(grew, written, 0.01) {
		t.Errorf("usage of /data grew by %d bytes, want %d ±1%%", grew, written)
	}
	if avail := intValue(t, rm, "kpod.fs.available.bytes", mp); avail != bavail*bsize {
		t.Errorf("available on /data = %d, statfs says %d", avail, bavail*bsize)
	}
	hostRM, _ := resourceOf(after, host.UID, hostCtr.ID)
	if _, ok := metricOf(hostRM, "kpod.fs.capacity.bytes"); ok {
		t.Errorf("a container in the host's mount namespace reports filesystems")
	}
}
