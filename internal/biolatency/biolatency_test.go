package biolatency

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
)

func TestStatsAdd(t *testing.T) {
	d := cgroupfs.Dev{Major: 7}
	a := Stats{d: {SumNs: 5, Counts: [hist.Slots]uint64{1}}}
	var s Stats
	s = s.Add(a)
	s = s.Add(a)
	if h := s[d]; h.SumNs != 10 || h.Counts[0] != 2 {
		t.Errorf("Add: %+v", s[d])
	}
}

// TestObjectShape checks the committed object without loading it: every hook has its
// tp_btf and raw_tp programs, and kernel names fit (15 characters, kpod_ prefix).
func TestObjectShape(t *testing.T) {
	spec, err := LoadBiolatency()
	if err != nil {
		t.Fatal(err)
	}
	bpftest.CheckShape(t, spec, Spec().Hooks)
	if ms := spec.Maps[BiolatencyMapKpodBioStart]; ms == nil || ms.Type != ebpf.LRUHash {
		t.Errorf("in-flight map %s must be an LRU hash (stale entries are evicted)", BiolatencyMapKpodBioStart)
	}
}

// TestRealBioLatency: a pod reads N blocks of a loop device with O_DIRECT, one request at a
// time; kpod reports exactly N completed requests on that device for the pod, with a total
// latency bounded by the workload's wall time, no request left in flight, and nothing for an
// idle sibling pod.
func TestRealBioLatency(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, path := range []Path{PathIOStart, PathBioQueue} {
		for _, rung := range bpftest.Rungs {
			t.Run(string(path)+"-"+rung, func(t *testing.T) { realBioLatency(t, path, rung) })
		}
	}
}

func realBioLatency(t *testing.T, path Path, rung string) {
	fakepod.RequireRoot(t)
	if path == PathIOStart && !bpftest.HasTracepoint(t, "block", "block_io_start") {
		// Before 6.5: this path cannot load, says why, and Start takes the other one.
		bpftest.On(t, rung)
		if _, err := startPath(path); err == nil || !strings.Contains(err.Error(), "block_io_start") {
			t.Fatalf("the %s path loaded without block_io_start, or did not say why: %v", path, err)
		}
		c, err := Start()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if c.Path != PathBioQueue {
			t.Errorf("Start took %s, want %s", c.Path, PathBioQueue)
		}
		return
	}
	const n, bs = 300, 64 << 10
	loop := fakepod.NewLoopDevice(t, 32)
	// One request per pread: O_DIRECT reads are synchronous (queue depth 1), sequential and
	// each fits one bio and one request (64 KiB, far below max_sectors_kb); with nomerges=2
	// the block layer does not even try to merge a bio into a queued request.
	noMerges(t, loop.Name)
	dev := cgroupfs.Dev{Major: loop.Major, Minor: loop.Minor}

	bpftest.On(t, rung)
	c, err := startPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bpftest.CheckRung(t, c.Obj, rung)
	for _, p := range c.Obj.Programs {
		t.Logf("attached %s (%s) to %s in %v", p.Name, p.Kind, p.Hook, p.LoadDuration)
	}
	stats := bpftest.EnableStats(t)
	defer stats(c.Obj)

	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	ctr, idleCtr := pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()
	// The kernel's own record of the completions (dev is MKDEV: major << 20 | minor).
	trace := fakepod.NewTrace(t, "block/block_rq_complete", fmt.Sprintf("dev == %d", loop.Major<<20|loop.Minor))
	start := time.Now()
	ctr.Run("dread", loop.Path, strconv.Itoa(n*bs), strconv.Itoa(bs))
	wall := time.Since(start)

	live := map[uint64]bool{ctr.CgroupID: true, idleCtr.CgroupID: true}
	st, err := c.Collect(context.Background(), &podid.Index{Live: live})
	if err != nil {
		t.Fatal(err)
	}
	s := st[ctr.CgroupID]
	h, ok := s[dev]
	if !ok {
		t.Fatalf("no histogram for %v; the pod has %v", dev, s)
	}
	// Exact but for the completions in an interrupt taken over a thread of PID 1, which no BPF
	// program sees on the sandbox host (fakepod.OverPID1; a CI run: 299 of 300).
	lines := trace.Lines()
	blind := uint64(fakepod.OverPID1(lines))
	if len(lines) != n {
		t.Errorf("the kernel traced %d completions on %s, want %d", len(lines), loop.Name, n)
	}
	if h.Count() > n || h.Count()+blind < n {
		t.Errorf("pod: %d requests completed on %s, want %d (%d traced over PID 1's threads)", h.Count(), loop.Name, n, blind)
	}
	if len(s) != 1 {
		t.Errorf("pod: I/O on %d devices, want only %s: %v", len(s), loop.Name, s)
	}
	// The reads never overlap (one pread at a time), and each starts and ends while the
	// workload runs, so their latencies add up to less than its wall time.
	if h.SumNs == 0 || time.Duration(h.SumNs) > wall {
		t.Errorf("pod: total latency %v, want > 0 and <= the workload's wall time %v", time.Duration(h.SumNs), wall)
	}
	t.Logf("pod: %d reads of %d KiB, total latency %v (mean %v) in %v of wall time; slots %v",
		h.Count(), bs>>10, time.Duration(h.SumNs), time.Duration(h.SumNs/max(h.Count(), 1)), wall, nonZero(h))
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: block I/O reported: %v", is)
	}

	fl, err := c.InFlight()
	if err != nil {
		t.Fatal(err)
	}
	// Every read ended: a request is in flight only if its completion is one no BPF program
	// saw (over PID 1, counted above). Requests are preallocated per tag and reused, and the
	// next start on a reused request overwrites its stale entry, so such an entry survives
	// only if its request was not started again: surely when its completion is the last
	// one traced (nothing else uses the loop device), perhaps for the others (which tag a
	// read gets is the block layer's choice). CI runs: 1 of 300 missed and left in flight,
	// 1 of 300 missed mid-run and overwritten.
	missed := int(uint64(n) - min(h.Count(), uint64(n)))
	least := 0
	if len(lines) > 0 && missed > 0 && fakepod.OverPID1(lines[len(lines)-1:]) == 1 {
		least = 1
	}
	if got := fl[ctr.CgroupID]; got < least || got > missed {
		t.Errorf("pod: %d requests still in flight after the workload exited, want %d to %d (of %d completions no program saw, the last traced one among them: %v)",
			got, least, missed, missed, least == 1)
	}
	errs, err := c.Obj.UpdateErrors()
	if err != nil {
		t.Fatal(err)
	}
	for m, v := range errs {
		if v != 0 {
			t.Errorf("%d failed updates of %s", v, m)
		}
	}

	// Once the pod's cgroups are gone (missing from live twice), its entries are deleted.
	for i := 0; i < 2; i++ {
		if _, err := c.Collect(context.Background(), &podid.Index{}); err != nil {
			t.Fatal(err)
		}
	}
	st, err = c.Collect(context.Background(), &podid.Index{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st[ctr.CgroupID]; ok {
		t.Errorf("entries of a removed cgroup were not swept")
	}
}

// noMerges sets the loop device's queue/nomerges to 2 (no merging at all) and restores the
// old value when the test ends.
func noMerges(t *testing.T, name string) {
	t.Helper()
	p := filepath.Join("/sys/block", name, "queue", "nomerges")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(p, []byte(strings.TrimSpace(string(old))), 0); err != nil {
			t.Errorf("restoring %s: %v", p, err)
		}
	})
}

func nonZero(h hist.Hist) map[string]uint64 {
	out := map[string]uint64{}
	b := hist.Bounds()
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		k := "+Inf"
		if i < len(b) {
			k = "<=" + (time.Duration(b[i] * 1e9)).String()
		}
		out[k] = c
	}
	return out
}
