package kpodreceiver

import (
	"strconv"
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealCgroupFamilies proves the cgroup-file families on the real kernel: a fake pod
// writes a known number of bytes with O_DIRECT to a loop device, allocates a known amount
// of memory and sends a known number of packets over its veth; an idle sibling pod shows
// none of it.
func TestRealCgroupFamilies(t *testing.T) {
	fakepod.RequireRoot(t)
	const (
		written = 8 << 20
		bs      = 64 << 10
		alloc   = 64 << 20
		packets = 100
		payload = 200
	)
	disk := fakepod.NewLoopDevice(t, 64)

	busy := fakepod.New(t, fakepod.Options{NetNS: true})
	busy.AddSandbox()
	ctr := busy.AddContainer()
	peer := fakepod.NewNetNS(t)
	veth := fakepod.NewVeth(t, busy.NetNS, peer)

	idle := fakepod.New(t, fakepod.Options{})
	idleCtr := idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()

	s := startScraper(t, customConfig("diskio", "memory", "iface", "filesystem", "pagefaults"))
	scrape(t, s) // a first cycle, so that BPF-sourced counters have seen the pods

	ctr.Run("dwrite", disk.Path, strconv.Itoa(written), strconv.Itoa(bs))
	ctr.Run("udp", veth.AddrB, "9", strconv.Itoa(packets), strconv.Itoa(payload))
	ctr.Start("alloc", strconv.Itoa(alloc)).WaitReady()

	md := scrape(t, s)
	t.Cleanup(func() {
		if t.Failed() {
			dumpMetrics(t, md)
		}
	})
	rm, ok := resourceOf(md, busy.UID, ctr.ID)
	if !ok {
		t.Fatalf("no resource for container %s of pod %s", ctr.ID, busy.UID)
	}
	dev := map[string]string{"system.device": disk.Name}
	if got := intValue(t, rm, "kpod.disk.written.bytes", dev); got != written {
		t.Errorf("written bytes on %s = %d, want %d", disk.Name, got, written)
	}
	if got := intValue(t, rm, "kpod.disk.writes", dev); got != written/bs {
		t.Errorf("writes on %s = %d, want %d (one bio per %d-byte O_DIRECT write)", disk.Name, got, written/bs, bs)
	}
	if got := intValue(t, rm, "kpod.disk.read.bytes", dev); got != 0 {
		t.Errorf("read bytes on %s = %d, want 0", disk.Name, got)
	}
	if got := intValue(t, rm, "kpod.mem.cgroup.usage.bytes", nil); got < alloc {
		t.Errorf("memory usage = %d, want at least the %d allocated", got, alloc)
	}
	if got := intValue(t, rm, "kpod.mem.cgroup.peak.bytes", nil); got < alloc {
		t.Errorf("memory peak = %d, want at least %d", got, alloc)
	}
	intValue(t, rm, "kpod.mem.cgroup.cache.bytes", nil)
	intValue(t, rm, "kpod.mem.major.page.faults", nil)

	// Interface counters are per pod (one network namespace per pod).
	podRM, ok := resourceOf(md, busy.UID, "")
	if !ok {
		t.Fatalf("no pod-level resource for pod %s", busy.UID)
	}
	ifc := map[string]string{"network.interface.name": veth.IfA}
	if got := intValue(t, podRM, "kpod.net.iface.tx.packets", ifc); got != packets {
		t.Errorf("tx packets on %s = %d, want %d", veth.IfA, got, packets)
	}
	// Each frame: payload + 8 UDP + 20 IPv4 + 14 Ethernet header bytes.
	if got, want := intValue(t, podRM, "kpod.net.iface.tx.bytes", ifc), int64(packets*(payload+8+20+14)); got != want {
		t.Errorf("tx bytes on %s = %d, want %d", veth.IfA, got, want)
	}
	if _, ok := point(podRM, "kpod.net.iface.rx.bytes", map[string]string{"network.interface.name": "lo"}); ok {
		t.Errorf("loopback is reported")
	}

	idleRM, ok := resourceOf(md, idle.UID, idleCtr.ID)
	if !ok {
		t.Fatalf("no resource for the idle container")
	}
	if dp, ok := point(idleRM, "kpod.disk.written.bytes", dev); ok && dp.IntValue() != 0 {
		t.Errorf("idle pod wrote %d bytes to %s", dp.IntValue(), disk.Name)
	}
	if got := intValue(t, idleRM, "kpod.mem.cgroup.usage.bytes", nil); got >= alloc/4 {
		t.Errorf("idle pod uses %d bytes of memory", got)
	}
	if _, ok := resourceOf(md, idle.UID, ""); ok {
		t.Errorf("idle pod shares the host network namespace but has interface series")
	}
}
