package syscall

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
)

// TestRealSyscall: on each way the family hooks (the per-call events, or every call on each
// rung of the raw_syscalls ladder), a pod's N close(-1) are N calls and N errors (EBADF); its
// latency histogram holds every one of them when every call is timed (latency_sample 1) and a
// binomial share of them at the default 1 in 16, and none without latency (NoLatency), when
// no enter program is attached at all; getppid, which is not tracked, is not recorded
// although the pod makes N of them too; an idle pod has nothing.
func TestRealSyscall(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range []struct {
		path   Path
		rung   string
		sample uint32
	}{
		{PathPerCall, "tracepoint", 1}, {PathPerCall, "tracepoint", DefaultLatencySample},
		{PathEveryCall, "tp_btf", 1}, {PathEveryCall, "tp_btf", DefaultLatencySample},
		{PathEveryCall, "raw_tp", DefaultLatencySample}, {PathEveryCall, "tracepoint", DefaultLatencySample},
		{PathPerCall, "tracepoint", NoLatency}, {PathEveryCall, "tp_btf", NoLatency},
	} {
		t.Run(fmt.Sprintf("%s-%s-sample%d", v.path, v.rung, v.sample), func(t *testing.T) { realSyscall(t, v.path, v.rung, v.sample) })
	}
}

func realSyscall(t *testing.T, path Path, rung string, sample uint32) {
	const n = 5000
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	ctr, idleCtr := pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()

	tracked, missing := Resolve([]string{"close", "read"})
	if len(missing) > 0 {
		t.Fatalf("not on this architecture: %v", missing)
	}
	bpftest.On(t, rung)
	c, err := startPath(path, tracked, sample)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bpftest.CheckRung(t, c.Obj, rung)
	if c.Path != path {
		t.Fatalf("path %s, want %s", c.Path, path)
	}
	stats := bpftest.EnableStats(t)
	ctr.Run("close", strconv.Itoa(n))
	ctr.Run("getppid", strconv.Itoa(n))
	st, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{ctr.CgroupID: true, idleCtr.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	stats(c.Obj)
	got := st[ctr.CgroupID]
	t.Logf("pod: %v", got)
	cl := got["close"]
	if cl.Count != n || cl.Errors != n {
		t.Errorf("close: %d calls, %d errors; want %d each", cl.Count, cl.Errors, n)
	}
	var enter []string
	for _, p := range c.Obj.Programs {
		if strings.HasPrefix(p.Name, "kpod_scen") || strings.HasPrefix(p.Name, "kpod_sysin") {
			enter = append(enter, p.Name)
		}
	}
	if sample == NoLatency {
		if cl.Latency.Count() != 0 || len(enter) != 0 {
			t.Errorf("without latency: %d latency samples, enter programs %v; want none", cl.Latency.Count(), enter)
		}
	} else {
		if lo, hi := bpftest.SampledBounds(n, sample); cl.Latency.Count() < lo || cl.Latency.Count() > hi {
			t.Errorf("close: %d latency samples of %d calls timed 1 in %d; want %d to %d", cl.Latency.Count(), n, sample, lo, hi)
		}
		if len(enter) != 1 {
			t.Errorf("enter programs attached: %v, want one", enter)
		}
	}
	// Each workload run reads its gate once inside the pod; nothing else it does is tracked.
	if r := got["read"]; r.Count != 2 || r.Errors != 0 {
		t.Errorf("read: %d calls, %d errors; want 2 (the gates), 0", r.Count, r.Errors)
	}
	if len(got) != 2 {
		t.Errorf("recorded %d syscalls, want close and read only: %v", len(got), got)
	}
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: %v", is)
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
}
