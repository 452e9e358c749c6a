package diskio

import (
	"context"
	"strconv"
	"testing"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
)

// TestRealBPFSource: the BPF source (used on hosts without a v2 io controller) counts a
// pod's O_DIRECT writes and reads on a loop device exactly, per device and direction, on
// each rung; an idle pod has nothing. On pure v2 hosts the io.stat source is proved by the
// receiver's cgroup family test.
func TestRealBPFSource(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realBPFSource(t, rung) })
	}
}

func realBPFSource(t *testing.T, rung string) {
	const bs, writes, reads = 64 << 10, 40, 24
	loop := fakepod.NewLoopDevice(t, 16)
	dev := cgroupfs.Dev{Major: loop.Major, Minor: loop.Minor}
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	ctr, idleCtr := pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()

	bpftest.On(t, rung)
	c, err := startBPF(fakepod.HostLayout(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bpftest.CheckRung(t, c.Obj, rung)
	ctr.Run("dwrite", loop.Path, strconv.Itoa(writes*bs), strconv.Itoa(bs))
	ctr.Run("dread", loop.Path, strconv.Itoa(reads*bs), strconv.Itoa(bs))
	st, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{ctr.CgroupID: true, idleCtr.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := st[ctr.CgroupID][dev]
	want := cgroupfs.IOCounters{WriteBytes: writes * bs, Writes: writes, ReadBytes: reads * bs, Reads: reads}
	if got != want {
		t.Errorf("pod on %s: %+v, want %+v (one bio per %d-byte O_DIRECT request)", loop.Name, got, want, bs)
	}
	if n := len(st[ctr.CgroupID]); n != 1 {
		t.Errorf("pod: I/O on %d devices, want only %s: %v", n, loop.Name, st[ctr.CgroupID])
	}
	if s, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: %v", s)
	}
}
