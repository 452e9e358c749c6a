// Package syscall is the "syscall" family: calls, errors and latency of a configurable set
// of system calls per cgroup, from the sys_enter/sys_exit tracepoints (bpf/syscall.bpf.c).
package syscall

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/window"
)

// Default is the tracked list when none is configured.
var Default = []string{"read", "write", "openat", "close", "connect", "accept4", "sendto", "recvfrom", "epoll_wait", "futex"}

// Arch is the architecture whose syscall table this build uses.
const Arch = arch

// Number returns the number of a system call on this architecture.
func Number(name string) (uint32, bool) {
	nr, ok := numbers[name]
	return nr, ok
}

// Resolve maps names to numbers. Names this architecture does not have are returned in
// missing (arm64 has no epoll_wait, for instance).
func Resolve(names []string) (nrs map[uint32]string, missing []string) {
	nrs = map[uint32]string{}
	for _, n := range names {
		if nr, ok := numbers[n]; ok {
			nrs[nr] = n
		} else {
			missing = append(missing, n)
		}
	}
	return nrs, missing
}

// Stats are one syscall's counters in one cgroup.
type Stats struct {
	Count, Errors uint64
	Latency       hist.Hist
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Count += o.Count
	s.Errors += o.Errors
	s.Latency.Add(&o.Latency)
}

// maxSyscalls is KPOD_MAX_SYSCALLS in bpf/syscall.bpf.c.
const maxSyscalls = 1024

// Path says which tracepoints the family uses.
type Path string

const (
	PathPerCall   Path = "per-call"   // syscalls:sys_{enter,exit}_<name> of the tracked calls only
	PathEveryCall Path = "every-call" // raw_syscalls sys_enter / sys_exit, every call of the node
)

// eventNames are the system calls whose trace events the kernel names after the function
// that implements them rather than after the call (x86-64 and arm64).
var eventNames = map[string]string{
	"stat": "newstat", "lstat": "newlstat", "fstat": "newfstat", "newfstatat": "newfstatat",
	"uname": "newuname", "sendfile": "sendfile64", "umount2": "umount",
}

// movedHooks tell the exits' per-CPU slots (bpf/syscall.bpf.c) that a task changed cgroups
// or was born: on either path, and also without latency.
var movedHooks = []bpfload.Hook{
	{Tracepoint: "cgroup_attach_task", Group: "cgroup", Prog: "kpod_sysmv"},
	{Tracepoint: "sched_process_fork", Group: "sched", Prog: "kpod_sysfk"},
}

// PerCallSpec is the family's object hooked on the per-call events of names.
func PerCallSpec(names []string) bpfload.Spec {
	return bpfload.Spec{
		Family: "syscall",
		Load:   LoadSyscall,
		Hooks:  append(perCallHooks(names), movedHooks...),
	}
}

// perCallHooks are the enter and exit programs on the per-call events of names.
func perCallHooks(names []string) []bpfload.Hook {
	var enter, exit []string
	for _, n := range names {
		if e, ok := eventNames[n]; ok {
			n = e
		}
		enter, exit = append(enter, "sys_enter_"+n), append(exit, "sys_exit_"+n)
	}
	return []bpfload.Hook{
		{Tracepoints: enter, Group: "syscalls", Prog: "kpod_scen"},
		{Tracepoints: exit, Group: "syscalls", Prog: "kpod_scex"},
	}
}

// EveryCallSpec is the family's object hooked on every system call.
func EveryCallSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "syscall",
		Load:   LoadSyscall,
		Hooks: append([]bpfload.Hook{
			{Tracepoint: "sys_enter", Group: "raw_syscalls", Prog: "kpod_sysin"},
			{Tracepoint: "sys_exit", Group: "raw_syscalls", Prog: "kpod_sysout"},
		}, movedHooks...),
	}
}

// Spec lists every hook the family may load (the per-call ones for the default list), for
// tests that check what is loaded.
func Spec() bpfload.Spec {
	s := EveryCallSpec()
	s.Hooks = append(s.Hooks, perCallHooks(Default)...)
	return s
}

// Collector reads the family's map.
type Collector struct {
	*bpfload.Source[map[string]Stats]
	Path   Path
	Sample uint32 // calls are timed 1/Sample of the time (internal/window); NoLatency: never
	enter  string // the hook prefix of the program that times

	win *window.Schedule // nil when the enter program stays attached (Sample 1) or is never

	mu    sync.Mutex
	shown map[callKey]Stats // the calls and errors of the last read, per cgroup and call (see read)
}

// callKey is a call in a cgroup.
type callKey struct {
	cgid uint64
	nr   uint32
}

// NoLatency as the sample loads the exit programs only: calls and errors are counted,
// nothing is timed, and no system call pays for an enter program (the cheapest way; what
// kpod does when the kpod.syscall.latency histogram is switched off).
const NoLatency = 0

// countProgs are the programs that count; the others only stamp entries.
var countProgs = map[string]bool{"kpod_scex": true, "kpod_sysout": true, "kpod_sysmv": true, "kpod_sysfk": true}

// Start loads the family on the per-call events of the tracked calls, or on every call
// where those cannot attach, and writes the tracked syscall numbers into the kernel's filter
// before any program is attached. Calls are timed 1/sample of the time (1: always;
// NoLatency: never, and the enter programs are not attached).
func Start(tracked map[uint32]string, sample uint32) (*Collector, error) {
	c, err := startPath(PathPerCall, tracked, sample, true)
	if err == nil {
		return c, nil
	}
	c, err2 := startPath(PathEveryCall, tracked, sample, true)
	if err2 != nil {
		return nil, fmt.Errorf("%s: %v; %s: %w", PathPerCall, err, PathEveryCall, err2)
	}
	return c, nil
}

// EnterHook is the hook prefix of the program that times, on path p, where the kernel has
// task storage (Collector.Enter: on the store loaded).
func EnterHook(p Path) string {
	if p == PathPerCall {
		return "kpod_scen"
	}
	return "kpod_sysin"
}

// startPath loads the family on path p; with a sample above 1 the enter program is detached
// and, if windows, attached in the latency windows (tests open and close them themselves).
func startPath(p Path, tracked map[uint32]string, sample uint32, windows bool) (*Collector, error) {
	spec, err := PathSpec(p, tracked, sample)
	if err != nil {
		return nil, err
	}
	c := &Collector{Path: p, Sample: sample}
	for _, h := range spec.Hooks {
		if h.Prog == EnterHook(p) || h.Prog == EnterHook(p)+bpfload.PidSuffix {
			c.enter = h.Prog
		}
	}
	c.Source, err = bpfload.Open(spec, func(bc *bpfload.Collector, live map[uint64]bool) (map[uint64]map[string]Stats, error) {
		vals, err := c.read(live, tracked)
		return vals, errors.Join(err, c.win.Err())
	})
	if err != nil {
		return nil, err
	}
	if sample > 1 {
		if err := c.CloseWindow(); err != nil {
			c.Source.Close()
			return nil, err
		}
		if windows {
			c.win = window.Start(sample, c.OpenWindow, c.CloseWindow)
		}
	}
	return c, nil
}

// OpenWindow opens a latency window: the exits look for stamps again, then the enter
// program is attached.
func (c *Collector) OpenWindow() error {
	if err := SetWindow(c.Obj.Maps[SyscallMapKpodSysWin], true); err != nil {
		return err
	}
	return c.Obj.Attach(c.enter)
}

// CloseWindow closes a latency window: the enter program is detached, then the exits are
// told a new window has closed, after which a task that returns from a call without a
// stamp is known to get none until the next window (bpf/syscall.bpf.c).
func (c *Collector) CloseWindow() error {
	if err := c.Obj.Detach(c.enter); err != nil {
		return err
	}
	return SetWindow(c.Obj.Maps[SyscallMapKpodSysWin], false)
}

// windowIDs numbers the closed windows of every object in this process, so that an id is
// never written twice into one map, whoever closes its windows.
var windowIDs atomic.Uint64

// SetWindow writes the window state the exit programs read (kpod_sys_win): open before the
// enter program is attached; closed, with a new id, after it is detached. For whoever
// attaches the enter program itself (the benchmarks); OpenWindow and CloseWindow use it.
func SetWindow(m *ebpf.Map, open bool) error {
	if m == nil {
		return fmt.Errorf("syscall: no map %s", SyscallMapKpodSysWin)
	}
	closed := uint64(0)
	if !open {
		closed = windowIDs.Add(1)
	}
	if err := m.Update(uint32(winKey), closed, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("syscall: %s: %w", SyscallMapKpodSysWin, err)
	}
	return nil
}

// Enter is the hook prefix of the program that times calls (Obj.Attach, Obj.Detach).
func (c *Collector) Enter() string { return c.enter }

// LatencySample is the sample the family runs with (kpod.collector.latency_sample); 0
// (NoLatency) when nothing is timed.
func (c *Collector) LatencySample() uint32 { return c.Sample }

// StopWindows ends the latency windows with the enter program detached, for tests that open
// and close them themselves (OpenWindow, CloseWindow).
func (c *Collector) StopWindows() {
	c.win.Stop()
}

// Close stops the latency windows, then unloads the family.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	c.win.Stop()
	return c.Source.Close()
}

// PathSpec is the family's object on path p, with the tracked numbers written into the
// kernel's filter and timing on unless sample is NoLatency (then only the exit programs are
// in it), before anything is attached. The windows of a sample above 1 are the loader's.
func PathSpec(p Path, tracked map[uint32]string, sample uint32) (bpfload.Spec, error) {
	if sample > window.MaxSample {
		return bpfload.Spec{}, fmt.Errorf("latency sample 1 in %d: want at most %d", sample, window.MaxSample)
	}
	nrs := trackedNumbers(tracked)
	if len(nrs) > 0 && nrs[len(nrs)-1] >= maxSyscalls {
		return bpfload.Spec{}, fmt.Errorf("syscall number %d is beyond the %d the BPF program can track", nrs[len(nrs)-1], maxSyscalls)
	}
	var cached [cachedCalls]uint32
	copy(cached[:], cachedNumbers(nrs))
	spec := EveryCallSpec()
	if p == PathPerCall {
		names := make([]string, len(nrs))
		for i, nr := range nrs {
			names[i] = tracked[nr]
		}
		spec = PerCallSpec(names)
	}
	if sample == NoLatency {
		var hooks []bpfload.Hook
		for _, h := range spec.Hooks {
			if countProgs[h.Prog] {
				hooks = append(hooks, h)
			}
		}
		spec.Hooks = hooks
	}
	spec.Prepare = func(cs *ebpf.CollectionSpec) error {
		ms := cs.Maps[SyscallMapKpodSysTrack]
		ms.Contents = nil
		for i, nr := range nrs {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: nr, Value: trackValue(i)})
		}
		for name, val := range map[string]any{SyscallVarKpodSysSample: min(sample, 1), SyscallVarKpodSysNr: cached} {
			v, ok := cs.Variables[name]
			if !ok {
				return fmt.Errorf("the object has no %s", name)
			}
			if err := v.Set(val); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	// Without task storage (before 5.11) the stamps go to a hash by thread id, which the
	// exits empty: a thread that dies inside a call leaves its stamp to the LRU.
	return bpfload.TaskStore{TaskMap: SyscallMapKpodSysStart, PidMap: SyscallMapKpodSysPid}.Choose(spec)
}

// Tracked returns the numbers the kernel filter holds, read back from the map.
func (c *Collector) Tracked() ([]uint32, error) {
	var out []uint32
	m := c.Obj.Maps[SyscallMapKpodSysTrack]
	for nr := uint32(0); nr < maxSyscalls; nr++ {
		var v uint8
		if err := m.Lookup(nr, &v); err != nil {
			return nil, err
		}
		if v != 0 {
			out = append(out, nr)
		}
	}
	return out, nil
}

// cachedCalls is KPOD_SYS_CACHED: the tracked calls (the lowest numbers) that the exits count
// in their CPU's slot; the others go straight to kpod_sys.
const cachedCalls = 16

// trackValue is kpod_sys_track's value for the i-th tracked number (ascending): i + 1 for a
// call counted in the slots at index i, KPOD_SYS_UNCACHED for the others.
func trackValue(i int) uint8 {
	if i < cachedCalls {
		return uint8(i + 1)
	}
	return 255
}

// kpod_sys_win's keys (bpf/syscall.bpf.c): KPOD_SYS_WIN, KPOD_SYS_READING.
const (
	winKey     = 0
	readingKey = 1
)

// slotWait is how long a read waits for the CPUs' refills in progress (an exit that looked
// before the read began can be slow to finish where the CPU is a virtual one the host did not
// run for a while).
const slotWait = 2 * time.Second

// testHookMapRead, if set, runs in each try of a read between the map and the slots.
var testHookMapRead func()

// read returns the counters per cgroup id and syscall name: kpod_sys, plus the counts each
// CPU's slot has not added to it yet (bpf/syscall.bpf.c), taken together (snapshot). Should
// CPUs keep refilling their slots for slotWait, the read may be short by some of their counts
// (and says so); so that calls and errors never go down, each is reported as at least what
// the last read reported, and the next read has the count.
func (c *Collector) read(live map[uint64]bool, names map[uint32]string) (map[uint64]map[string]Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var raw map[SyscallSysKey]SyscallSysVal
	var err error
	slots, serr := snapshot(c.Obj, func() error {
		raw, err = bpfload.Dump[SyscallSysKey, SyscallSysVal](c.Collector, SyscallMapKpodSys)
		return nil // what the map gave is used, with its error
	})
	err = errors.Join(err, serr, bpfload.Sweep(c.Collector, SyscallMapKpodSys, raw, live))
	vals := make(map[callKey]Stats, len(raw))
	for k, v := range raw {
		vals[callKey{k.Cgid, k.Nr}] = Stats{Count: v.Count, Errors: v.Errors, Latency: hist.Decode(v.Lat.SumNs, v.Lat.Slots)}
	}
	cached := cachedNumbers(trackedNumbers(names))
	eachPending(slots, len(cached), func(cgid uint64, i int, count, errors uint64) {
		k := callKey{cgid, cached[i]}
		v := vals[k]
		v.Count += count
		v.Errors += errors
		vals[k] = v
	})
	vals = monotonic(vals, c.shown, live)
	c.shown = vals

	out := map[uint64]map[string]Stats{}
	for k, v := range vals {
		name, ok := names[k.nr]
		if !ok {
			name = fmt.Sprintf("nr_%d", k.nr)
		}
		if out[k.cgid] == nil {
			out[k.cgid] = map[string]Stats{}
		}
		out[k.cgid][name] = v
	}
	return out, err
}

// snapshot runs readMap, which reads kpod_sys, and returns the CPUs' slots as they were
// after it, such that no count is in both and none in neither. The exits are told to take no
// place in a slot meanwhile (KPOD_SYS_READING); the slots are taken before and after
// readMap, and all is done again while a CPU is refilling its slot or refilled it in between
// (an exit that looked at the flag before it was set), for up to slotWait. After that, the
// slots of the CPUs still refilling are left out, with an error: their counts are in the next
// read.
func snapshot(obj *bpfload.Object, readMap func() error) (slots []SyscallSysSlot, err error) {
	win := obj.Maps[SyscallMapKpodSysWin]
	if err := win.Update(uint32(readingKey), uint64(1), ebpf.UpdateAny); err != nil {
		return nil, fmt.Errorf("syscall: %s: %w", SyscallMapKpodSysWin, err)
	}
	defer func() {
		if uerr := win.Update(uint32(readingKey), uint64(0), ebpf.UpdateAny); uerr != nil {
			err = errors.Join(err, fmt.Errorf("syscall: %s: %w", SyscallMapKpodSysWin, uerr))
		}
	}()
	var before []SyscallSysSlot
	for deadline := time.Now().Add(slotWait); ; time.Sleep(time.Millisecond) {
		if err := takeSlots(obj, &before); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(before, refilling) {
			if err := readMap(); err != nil {
				return nil, err
			}
			if testHookMapRead != nil {
				testHookMapRead()
			}
			if err := takeSlots(obj, &slots); err != nil {
				return nil, err
			}
			if steady(before, slots) {
				return slots, nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if err := readMap(); err != nil {
		return nil, err
	}
	if err := takeSlots(obj, &slots); err != nil {
		return nil, err
	}
	n := len(slots)
	slots = slices.DeleteFunc(slots, refilling)
	return slots, fmt.Errorf("syscall: CPUs kept refilling their slots for %v (%d of them still at the end, left out): this read may lack counts that the next one has", slotWait, n-len(slots))
}

// takeSlots reads every CPU's slot into s.
func takeSlots(obj *bpfload.Object, s *[]SyscallSysSlot) error {
	if err := obj.Maps[SyscallMapKpodSysSlot].Lookup(uint32(0), s); err != nil {
		return fmt.Errorf("syscall: %s: %w", SyscallMapKpodSysSlot, err)
	}
	return nil
}

// steady says that no CPU refilled its slot between the two takes.
func steady(before, after []SyscallSysSlot) bool {
	for i := range after {
		if refilling(after[i]) || before[i].Begin != after[i].Begin {
			return false
		}
	}
	return true
}

func refilling(s SyscallSysSlot) bool { return s.Done != s.Begin }

// CallStats is what obj, the family's object, has counted of call nr in cgroup cgid: its
// kpod_sys entry and the CPUs' slots. For those who load the object themselves (the
// benchmarks' exactness check).
func CallStats(obj *bpfload.Object, cgid uint64, nr uint32) (Stats, error) {
	var idx uint8
	if err := obj.Maps[SyscallMapKpodSysTrack].Lookup(nr, &idx); err != nil {
		return Stats{}, err
	}
	var st Stats
	slots, err := snapshot(obj, func() error {
		st = Stats{}
		var vals []SyscallSysVal
		err := obj.Maps[SyscallMapKpodSys].Lookup(SyscallSysKey{Cgid: cgid, Nr: nr}, &vals)
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		for _, v := range vals {
			st.Add(&Stats{Count: v.Count, Errors: v.Errors, Latency: hist.Decode(v.Lat.SumNs, v.Lat.Slots)})
		}
		return nil
	})
	if err != nil || idx == 0 || int(idx) > cachedCalls {
		return st, err
	}
	eachPending(slots, int(idx), func(id uint64, i int, count, errors uint64) {
		if id == cgid && i == int(idx)-1 {
			st.Count += count
			st.Errors += errors
		}
	})
	return st, err
}

// eachPending calls f with every count the slots hold for their first n call indexes: the
// cgroup, the index, the calls and their errors.
func eachPending(slots []SyscallSysSlot, n int, f func(cgid uint64, i int, count, errors uint64)) {
	for _, s := range slots {
		for _, w := range s.Way {
			for i := range min(n, cachedCalls) {
				if w.Count[i] != 0 {
					f(w.Cgid, i, w.Count[i], w.Errors[i])
				}
			}
		}
	}
}

// trackedNumbers are the tracked numbers, ascending.
func trackedNumbers(tracked map[uint32]string) []uint32 {
	return slices.Sorted(maps.Keys(tracked))
}

// cachedNumbers are the numbers of the slots' indexes: the lowest of nrs (ascending).
func cachedNumbers(nrs []uint32) []uint32 {
	return nrs[:min(len(nrs), cachedCalls)]
}

// monotonic raises the calls and errors of vals to those last shown where they are lower (a
// count on its way from a slot to the map when it was read), keeps what was last shown of a
// call that vals lacks (its only count was on that way) while its cgroup is live, and returns
// vals.
func monotonic(vals, shown map[callKey]Stats, live map[uint64]bool) map[callKey]Stats {
	for k, p := range shown {
		v, ok := vals[k]
		switch {
		case ok:
			v.Count, v.Errors = max(v.Count, p.Count), max(v.Errors, p.Errors)
			vals[k] = v
		case live[k.cgid] || k.cgid == bpfload.NodeID:
			vals[k] = p
		}
	}
	return vals
}
