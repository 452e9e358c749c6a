package syscall

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/window"
)

// TestRealSyscall: on each way the family hooks (the per-call events, or every call on each
// rung of the raw_syscalls ladder), a pod's N close(-1) are N calls and N errors (EBADF); its
// latency histogram holds every one of them when every call is timed (latency_sample 1); with
// the default 1 in 16 the enter program is detached at start, and of three runs of N closes —
// window closed, window open, closed again (the test opens and closes it) — exactly the N of
// the open window are timed while all 3N are counted; without latency (NoLatency) no enter
// program is loaded and nothing is timed. getppid, which is not tracked, is not recorded
// although the pod makes N of them too; an idle pod has nothing.
func TestRealSyscall(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range []way{
		{PathPerCall, "tracepoint", 1, false}, {PathPerCall, "tracepoint", window.DefaultSample, false},
		{PathEveryCall, "tp_btf", 1, false}, {PathEveryCall, "tp_btf", window.DefaultSample, false},
		{PathEveryCall, "raw_tp", window.DefaultSample, false}, {PathEveryCall, "tracepoint", window.DefaultSample, false},
		{PathPerCall, "tracepoint", NoLatency, false}, {PathEveryCall, "tp_btf", NoLatency, false},
		{PathPerCall, "tracepoint", window.DefaultSample, true}, {PathEveryCall, "tp_btf", 1, true},
		{PathEveryCall, "raw_tp", window.DefaultSample, true}, {PathEveryCall, "tracepoint", window.DefaultSample, true},
	} {
		v.run(t, func(t *testing.T) { realSyscall(t, v, v.pid || !bpftest.HasTaskStorage(t)) })
	}
}

// way is one way the family is loaded in the tests: a path, a rung of its ladder, a latency
// sample, and whether the hash by thread id (the store of kernels before 5.11) is forced.
type way struct {
	path   Path
	rung   string
	sample uint32
	pid    bool
}

// run runs f as a subtest named after the way, with the hash forced if it says so.
func (v way) run(t *testing.T, f func(t *testing.T)) {
	name := fmt.Sprintf("%s-%s-sample%d", v.path, v.rung, v.sample)
	if v.pid {
		name += "-pidhash"
	}
	t.Run(name, func(t *testing.T) {
		if v.pid {
			t.Cleanup(bpfload.ForceNoTaskStorageForTest())
		}
		f(t)
	})
}

// start loads the family the way v says, tracking calls (close and read if none), with its
// windows left to the test; it is closed when the test ends.
func (v way) start(t *testing.T, calls ...string) *Collector {
	if len(calls) == 0 {
		calls = []string{"close", "read"}
	}
	tracked, missing := Resolve(calls)
	if len(missing) > 0 {
		t.Fatalf("not on this architecture: %v", missing)
	}
	bpftest.On(t, v.rung)
	c, err := startPath(v.path, tracked, v.sample, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	bpftest.CheckRung(t, c.Obj, v.rung)
	if c.Path != v.path {
		t.Fatalf("path %s, want %s", c.Path, v.path)
	}
	return c
}

// realSyscall: pid says which store the family must have loaded (the hash by thread id, or
// task storage).
func realSyscall(t *testing.T, v way, pid bool) {
	const n = 5000
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	ctr, idleCtr := pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()
	c, sample := v.start(t), v.sample
	stats := bpftest.EnableStats(t)
	runs, timed := 1, n // runs of n closes, and how many of the calls are timed
	switch sample {
	case NoLatency:
		timed = 0
	case 1:
	default:
		ctr.Run("close", strconv.Itoa(n)) // window closed: the enter program is detached at start
		if err := c.OpenWindow(); err != nil {
			t.Fatal(err)
		}
		ctr.Run("close", strconv.Itoa(n))
		if err := c.CloseWindow(); err != nil {
			t.Fatal(err)
		}
		runs = 3
	}
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
	if cl.Count != uint64(runs*n) || cl.Errors != uint64(runs*n) {
		t.Errorf("close: %d calls, %d errors; want %d each", cl.Count, cl.Errors, runs*n)
	}
	closeNr, _ := Number("close")
	if cs, err := CallStats(c.Obj, ctr.CgroupID, closeNr); err != nil || cs.Count != cl.Count || cs.Errors != cl.Errors || cs.Latency.Count() != cl.Latency.Count() {
		t.Errorf("CallStats of close: %+v, %v; want what Collect read", cs, err)
	}
	if cl.Latency.Count() != uint64(timed) {
		t.Errorf("close: %d latency samples, want %d (%d runs of %d calls, latency sample %d)", cl.Latency.Count(), timed, runs, n, sample)
	}
	var enter []string
	for _, p := range c.Obj.Programs {
		if strings.HasPrefix(p.Name, "kpod_scen") || strings.HasPrefix(p.Name, "kpod_sysin") {
			enter = append(enter, p.Name)
		}
	}
	if want := min(sample, 1); len(enter) != int(want) {
		t.Errorf("enter programs loaded: %v, want %d", enter, want)
	}
	for _, p := range c.Obj.Programs {
		if hook := p.Name[:strings.LastIndex(p.Name, "_")]; strings.HasSuffix(hook, bpfload.PidSuffix) != pid {
			t.Errorf("program %s loaded; want those of the pid hash: %v", p.Name, pid)
		}
	}
	if _, ok := c.Obj.Maps[SyscallMapKpodSysPid]; ok != pid {
		t.Errorf("map %s made: %v, want %v", SyscallMapKpodSysPid, ok, pid)
	}
	// Each workload run reads its gate once inside the pod; nothing else it does is tracked.
	if r := got["read"]; r.Count != uint64(runs+1) || r.Errors != 0 {
		t.Errorf("read: %d calls, %d errors; want %d (the gates), 0", r.Count, r.Errors, runs+1)
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

// TestRealSyscallHop: the exits count in a slot per CPU for the task that returned last
// (bpf/syscall.bpf.c). A process that moves itself between two containers and between CPUs
// (kpod-workload hop: 8 rounds of n close(-1), alternately in each container, each on the
// next CPU) has its calls counted exactly in the container it made them in, whichever CPU's
// slot they were in; meanwhile the test reads the family over and over, and no read reports
// fewer calls than the one before it. An idle pod has nothing.
func TestRealSyscallHop(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range []way{{PathPerCall, "tracepoint", window.DefaultSample, false}, {PathEveryCall, "tp_btf", 1, true}} {
		v.run(t, func(t *testing.T) { realSyscallHop(t, v) })
	}
}

func realSyscallHop(t *testing.T, v way) {
	const n, rounds = 3000, 8
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	a, b, idleCtr := pod.AddContainer(), pod.AddContainer(), idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()
	c := v.start(t)
	live := &podid.Index{Live: map[uint64]bool{a.CgroupID: true, b.CgroupID: true, idleCtr.CgroupID: true}}

	p := a.Start("hop", strconv.Itoa(n), strconv.Itoa(rounds), filepath.Join(a.V2Dir(), "cgroup.procs"), filepath.Join(b.V2Dir(), "cgroup.procs"))
	reads, last := 0, map[uint64]uint64{}
	for done := false; !done; reads++ {
		done, _ = p.Exited()
		st, err := c.Collect(context.Background(), live)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []uint64{a.CgroupID, b.CgroupID} {
			got := st[id]["close"].Count
			if got < last[id] {
				t.Fatalf("read %d: container %d has %d calls, the read before %d", reads, id, got, last[id])
			}
			last[id] = got
		}
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Collect(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads while the workload ran; a: %v; b: %v", reads, st[a.CgroupID], st[b.CgroupID])
	for _, w := range []struct {
		ctr         *fakepod.Container
		close, read uint64
	}{{a, rounds / 2 * n, 1}, {b, rounds / 2 * n, 0}} { // the gate's read returns in a
		got := st[w.ctr.CgroupID]
		if cl := got["close"]; cl.Count != w.close || cl.Errors != w.close {
			t.Errorf("container %s: close %d calls, %d errors; want %d each", w.ctr.ID, cl.Count, cl.Errors, w.close)
		}
		if r := got["read"]; r.Count != w.read {
			t.Errorf("container %s: read %d calls, want %d", w.ctr.ID, r.Count, w.read)
		}
	}
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: %v", is)
	}
}

// TestRealSyscallTurns: a CPU's slot keeps the counts of the two tasks that returned there
// last. Two tasks in two containers that take turns on one CPU (kpod-workload turns: r round
// trips over two pipes, the child moved into the second container) are each counted exactly
// in their own container: r reads in each, plus the gate's in the first; an idle pod has
// nothing.
func TestRealSyscallTurns(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range []way{{PathPerCall, "tracepoint", window.DefaultSample, false}, {PathEveryCall, "tp_btf", 1, true}} {
		v.run(t, func(t *testing.T) { realSyscallTurns(t, v) })
	}
}

func realSyscallTurns(t *testing.T, v way) {
	const r = 20000
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	a, b, idleCtr := pod.AddContainer(), pod.AddContainer(), idle.AddContainer()
	a.Env = append(a.Env, "KPOD_CPU=0")
	idleCtr.Start("sleep").WaitReady()
	c := v.start(t)
	a.Run("turns", strconv.Itoa(r), filepath.Join(a.V2Dir(), "cgroup.procs"), filepath.Join(b.V2Dir(), "cgroup.procs"))
	st, err := c.Collect(context.Background(), &podid.Index{Live: map[uint64]bool{a.CgroupID: true, b.CgroupID: true, idleCtr.CgroupID: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a: %v; b: %v", st[a.CgroupID], st[b.CgroupID])
	for _, w := range []struct {
		ctr  *fakepod.Container
		read uint64
	}{{a, r + 1}, {b, r}} {
		got := st[w.ctr.CgroupID]
		if rd := got["read"]; rd.Count != w.read || rd.Errors != 0 {
			t.Errorf("container %s: read %d calls, %d errors; want %d, 0", w.ctr.ID, rd.Count, rd.Errors, w.read)
		}
		if len(got) != 1 {
			t.Errorf("container %s: recorded %v, want read only", w.ctr.ID, got)
		}
	}
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: %v", is)
	}
}

// TestRealSyscallRead: a read takes kpod_sys and the slots as of one moment. Two containers'
// finished workloads leave their counts in CPU 0's slot (a: n close(-1), b: one); during the
// read, between the map and the slots, a third container's task closes on CPU 0 as well,
// which outside a read would take a's place and move a's counts into the map after the map
// was read. Each container's calls are exact in that very read; the third task's call went
// straight to the map (no slot holds its cgroup); an idle pod has nothing.
func TestRealSyscallRead(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range []way{{PathPerCall, "tracepoint", window.DefaultSample, false}, {PathEveryCall, "tp_btf", 1, true}} {
		v.run(t, func(t *testing.T) { realSyscallRead(t, v) })
	}
}

func realSyscallRead(t *testing.T, v way) {
	const n = 3000
	pod, idle := fakepod.New(t, fakepod.Options{}), fakepod.New(t, fakepod.Options{})
	a, b, third, idleCtr := pod.AddContainer(), pod.AddContainer(), pod.AddContainer(), idle.AddContainer()
	for _, c := range []*fakepod.Container{a, b, third} {
		c.Env = append(c.Env, "KPOD_CPU=0")
	}
	idleCtr.Start("sleep").WaitReady()
	c := v.start(t, "close") // not read: every process reads, and would take the places
	a.Run("close", strconv.Itoa(n))
	b.Run("close", "1")
	var during [][]SyscallSysSlot
	testHookMapRead = func() {
		third.Run("close", "1")
		var s []SyscallSysSlot
		if err := takeSlots(c.Obj, &s); err != nil {
			t.Error(err)
		}
		during = append(during, s)
	}
	defer func() { testHookMapRead = nil }()
	live := &podid.Index{Live: map[uint64]bool{a.CgroupID: true, b.CgroupID: true, third.CgroupID: true, idleCtr.CgroupID: true}}
	st, err := c.Collect(context.Background(), live)
	testHookMapRead = nil
	if err != nil {
		t.Fatal(err)
	}
	if len(during) == 0 {
		t.Fatal("the third task did not run during the read")
	}
	// The third task's calls returned after the map was read: they are in the next read.
	next, err := c.Collect(context.Background(), live)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		read         map[uint64]map[string]Stats
		ctr          *fakepod.Container
		close, names uint64
	}{{st, a, n, 1}, {st, b, 1, 1}, {st, third, 0, 0}, {next, a, n, 1}, {next, b, 1, 1}, {next, third, uint64(len(during)), 1}} {
		got := w.read[w.ctr.CgroupID]
		if cl := got["close"]; cl.Count != w.close || cl.Errors != w.close || len(got) != int(w.names) {
			t.Errorf("container %s: %v; want close only, %d calls and errors", w.ctr.ID, got, w.close)
		}
	}
	t.Logf("a: %v; b: %v; third: %v (%d tries)", next[a.CgroupID], next[b.CgroupID], next[third.CgroupID], len(during))
	for _, s := range during {
		eachPending(s, cachedCalls, func(cgid uint64, _ int, count, _ uint64) {
			if cgid == third.CgroupID {
				t.Errorf("a slot holds %d calls of the third container, which returned during a read", count)
			}
		})
	}
	if is, ok := st[idleCtr.CgroupID]; ok {
		t.Errorf("idle pod: %v", is)
	}
}
