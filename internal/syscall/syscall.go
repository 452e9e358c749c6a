// Package syscall is the "syscall" family: calls, errors and latency of a configurable set
// of system calls per cgroup, from the sys_enter/sys_exit tracepoints (bpf/syscall.bpf.c).
package syscall

import (
	"errors"
	"fmt"
	"sort"

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

// PerCallSpec is the family's object hooked on the per-call events of names.
func PerCallSpec(names []string) bpfload.Spec {
	var enter, exit []string
	for _, n := range names {
		if e, ok := eventNames[n]; ok {
			n = e
		}
		enter, exit = append(enter, "sys_enter_"+n), append(exit, "sys_exit_"+n)
	}
	return bpfload.Spec{
		Family: "syscall",
		Load:   LoadSyscall,
		Hooks: []bpfload.Hook{
			{Tracepoints: enter, Group: "syscalls", Prog: "kpod_scen"},
			{Tracepoints: exit, Group: "syscalls", Prog: "kpod_scex"},
		},
	}
}

// EveryCallSpec is the family's object hooked on every system call.
func EveryCallSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "syscall",
		Load:   LoadSyscall,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sys_enter", Group: "raw_syscalls", Prog: "kpod_sysin"},
			{Tracepoint: "sys_exit", Group: "raw_syscalls", Prog: "kpod_sysout"},
		},
	}
}

// Spec lists every hook the family may load (the per-call ones for the default list), for
// tests that check what is loaded.
func Spec() bpfload.Spec {
	s := EveryCallSpec()
	s.Hooks = append(s.Hooks, PerCallSpec(Default).Hooks...)
	return s
}

// Collector reads the family's map.
type Collector struct {
	*bpfload.Source[map[string]Stats]
	Path   Path
	Sample uint32 // calls are timed 1/Sample of the time (internal/window); NoLatency: never
	enter  string // the hook prefix of the program that times

	win *window.Schedule // nil when the enter program stays attached (Sample 1) or is never
}

// NoLatency as the sample loads the exit programs only: calls and errors are counted,
// nothing is timed, and no system call pays for an enter program (the cheapest way; what
// kpod does when the kpod.syscall.latency histogram is switched off).
const NoLatency = 0

// exitProgs are the programs that count; the others only stamp entries.
var exitProgs = map[string]bool{"kpod_scex": true, "kpod_sysout": true}

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
		vals, err := read(bc, live, tracked)
		return vals, errors.Join(err, c.win.Err())
	})
	if err != nil {
		return nil, err
	}
	if sample > 1 {
		if err := c.Obj.Detach(c.enter); err != nil {
			c.Source.Close()
			return nil, err
		}
		if windows {
			c.win = window.Start(sample, func() error { return c.Obj.Attach(c.enter) }, func() error { return c.Obj.Detach(c.enter) })
		}
	}
	return c, nil
}

// Enter is the hook prefix of the program that times calls (Obj.Attach, Obj.Detach).
func (c *Collector) Enter() string { return c.enter }

// LatencySample is the sample the family runs with (kpod.collector.latency_sample); 0
// (NoLatency) when nothing is timed.
func (c *Collector) LatencySample() uint32 { return c.Sample }

// StopWindows ends the latency windows with the enter program detached, for tests that open
// and close them themselves (Obj.Attach and Obj.Detach of EnterHook(Path)).
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
	nrs := make([]uint32, 0, len(tracked))
	for nr := range tracked {
		if nr >= maxSyscalls {
			return bpfload.Spec{}, fmt.Errorf("syscall number %d is beyond the %d the BPF program can track", nr, maxSyscalls)
		}
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
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
			if exitProgs[h.Prog] {
				hooks = append(hooks, h)
			}
		}
		spec.Hooks = hooks
	}
	spec.Prepare = func(cs *ebpf.CollectionSpec) error {
		ms := cs.Maps[SyscallMapKpodSysTrack]
		ms.Contents = nil
		for _, nr := range nrs {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: nr, Value: uint8(1)})
		}
		v, ok := cs.Variables[SyscallVarKpodSysSample]
		if !ok {
			return fmt.Errorf("the object has no %s", SyscallVarKpodSysSample)
		}
		return v.Set(min(sample, 1))
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

// read returns the counters per cgroup id and syscall name.
func read(c *bpfload.Collector, live map[uint64]bool, names map[uint32]string) (map[uint64]map[string]Stats, error) {
	raw, err := bpfload.Read[SyscallSysKey, SyscallSysVal](c, SyscallMapKpodSys, live)
	out := map[uint64]map[string]Stats{}
	for k, v := range raw {
		name, ok := names[k.Nr]
		if !ok {
			name = fmt.Sprintf("nr_%d", k.Nr)
		}
		if out[k.Cgid] == nil {
			out[k.Cgid] = map[string]Stats{}
		}
		out[k.Cgid][name] = Stats{Count: v.Count, Errors: v.Errors, Latency: hist.Decode(v.Lat.SumNs, v.Lat.Slots)}
	}
	return out, err
}
