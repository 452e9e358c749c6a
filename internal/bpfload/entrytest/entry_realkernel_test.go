package entrytest

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealEntryRace: two processes of a pod, pinned to two CPUs, call getppid N times each
// at once; the test object counts each call under (pod, its place in the calls / 4) through
// kpod_entry, so both CPUs keep making the same fresh entries together. Every call is counted — the
// slices' sums are exactly 2N — and no update is reported lost. Before Linux 6.5 the
// update's -EEXIST reaches the program zero-extended; kpod_entry compared it with -EEXIST
// and dropped the event of the CPU that lost the race (6.1: TestRealSyscall lost one call in
// 2 of 10 runs). The control: slices counted on both CPUs, each a first use both could
// make, are at least minShared over at most maxRounds rounds, so a run where the processes did
// not overlap fails.
func TestRealEntryRace(t *testing.T) {
	fakepod.RequireRoot(t)
	const n, minShared, maxRounds = 200000, 50, 5
	pod := fakepod.New(t, fakepod.Options{})
	ctr := pod.AddContainer()

	spec := bpfload.Spec{
		Family: "entry",
		Load:   LoadEntry,
		Hooks:  []bpfload.Hook{{Tracepoints: []string{"sys_exit_getppid"}, Group: "syscalls", Prog: "kpod_entry"}},
		Prepare: func(cs *ebpf.CollectionSpec) error {
			v, ok := cs.Variables[EntryVarEntryCgid]
			if !ok {
				return fmt.Errorf("the object has no %s", EntryVarEntryCgid)
			}
			return v.Set(ctr.CgroupID)
		},
	}
	// Preallocated, at full size (2^17 entries, a fresh one every fourth call), on every
	// kernel: on 6.1 the on-demand allocator refused some of these bursts of fresh entries
	// (164 and 740 failed inserts in 2 of 7 runs in the 6.1 VM), which is not the race this
	// test is about; kpod_entry meets the race the same way in both kinds of map.
	defer bpfload.ForcePreallocForTest()()
	bpfload.SetPreallocCgroups(bpfload.MaxCgroups)
	defer bpfload.SetPreallocCgroups(0)
	c, err := bpfload.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// Rounds until the processes have raced often enough: under software emulation (the
	// 5.10 VM in CI) one round gave 46 shared slices. Each round starts from an empty map,
	// so its slices are fresh entries again and its count must be exactly 2N.
	shared := 0
	for round := 1; shared < minShared; round++ {
		if round > maxRounds {
			t.Fatalf("%d slices counted on both CPUs in %d rounds, want at least %d: the processes did not overlap enough to race", shared, maxRounds, minShared)
		}
		total, slices, both := raceRound(t, c, ctr, n)
		t.Logf("round %d: %d calls in %d slices, %d of them counted on both CPUs", round, total, slices, both)
		if total != 2*n {
			t.Fatalf("round %d counted %d calls, want %d (%d lost)", round, total, 2*n, int64(2*n)-int64(total))
		}
		shared += both
	}
	errs, err := c.Obj.UpdateErrors()
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) != 1 {
		t.Errorf("error counters %v, want kpod_entry_n only", errs)
	}
	for m, v := range errs {
		if v != 0 {
			t.Errorf("%d failed updates of %s", v, m)
		}
	}
}

// raceRound runs the two pinned processes once, reads the map's slices and empties it.
func raceRound(t *testing.T, c *bpfload.Collector, ctr *fakepod.Container, n int) (total uint64, slices, shared int) {
	t.Helper()
	var procs []*fakepod.Proc
	for cpu := range 2 {
		ctr.Env = []string{"KPOD_CPU=" + strconv.Itoa(cpu)} // read when the process starts
		procs = append(procs, ctr.Prepare("getppid", strconv.Itoa(n)))
	}
	for _, p := range procs {
		p.Go()
	}
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			t.Fatalf("workload: %v", err)
		}
	}
	var (
		k      EntryEntryKey
		perCPU []uint64
		keys   []EntryEntryKey
	)
	m := c.Obj.Maps[EntryMapKpodEntryN]
	it := m.Iterate()
	for it.Next(&k, &perCPU) {
		if k.Cgid != ctr.CgroupID {
			t.Errorf("entry of cgroup %d, want only the pod's %d", k.Cgid, ctr.CgroupID)
		}
		cpus := 0
		for _, v := range perCPU {
			total += v
			if v > 0 {
				cpus++
			}
		}
		slices++
		if cpus > 1 {
			shared++
		}
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil {
			t.Fatalf("emptying the map: %v", err)
		}
	}
	return total, slices, shared
}
