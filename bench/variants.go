//go:build bench

package bench

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/tcp"
)

// Variants are kpod families loaded on a path the receiver does not take on this kernel (tcp
// per segment, syscall on every call: the fallbacks), and bench-only variants compiled from
// bench/variants/*.bpf.c at bench time. They are loaded with the family loader
// (bpfload.Load, the attach ladder included) instead of through the receiver, then adopted
// like every other config. Nothing in bpf/, internal/ or receiver/ changes.

const (
	varTCPSegment     = "kpod tcp, per segment (old path)"
	varSysEveryCall   = "kpod syscall, every call (raw_syscalls)"
	varSysExitSampled = "syscall variant: per call, counted at exit, latency 1 call in 16"
	varSysExitOnly    = "syscall variant: per call, counted at exit, no latency"
	varSysEveryExit   = "syscall variant: every call, counted at exit (tp_btf sys_exit), no latency"
	// sampleShift is kpod_sample_shift of bench/variants/syscall_exit.bpf.c: 1 call in 16.
	sampleShift = 4
)

// trackedSyscalls are the default tracked calls that exist here, with their numbers, in the
// order the family loads them.
func trackedSyscalls() (names []string, nrs []uint32) {
	tracked, _ := syscall.Resolve(syscall.Default)
	for nr := range tracked {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
	for _, nr := range nrs {
		names = append(names, tracked[nr])
	}
	return names, nrs
}

// fillTrack writes the tracked numbers into the object's kpod_sys_track filter, as
// internal/syscall does before it attaches.
func fillTrack(nrs []uint32) func(*ebpf.CollectionSpec) error {
	return func(cs *ebpf.CollectionSpec) error {
		ms, ok := cs.Maps["kpod_sys_track"]
		if !ok {
			return fmt.Errorf("no kpod_sys_track map")
		}
		ms.Contents = nil
		for _, nr := range nrs {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: nr, Value: uint8(1)})
		}
		return nil
	}
}

func loadSpec(s bpfload.Spec) func() (io.Closer, error) {
	return func() (io.Closer, error) {
		o, err := bpfload.Load(s)
		if err != nil {
			return nil, err
		}
		return o, nil
	}
}

// compileVariants builds bench/variants/*.bpf.c into dir with clang-19 (as `make generate`
// builds bpf/, from the same headers).
func compileVariants(dir string) (map[string]string, error) {
	out := map[string]string{}
	srcs, _ := filepath.Glob("variants/*.bpf.c")
	for _, src := range srcs {
		obj := filepath.Join(dir, filepath.Base(src[:len(src)-len(".c")])+".o")
		if b, err := exec.Command("clang-19", "-O2", "-g", "-target", "bpfel", "-D__TARGET_ARCH_x86", "-I../bpf/include", "-mcpu=v3",
			"-Wall", "-Werror", "-c", src, "-o", obj).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("clang-19 %s: %v: %s", src, err, b)
		}
		out[filepath.Base(src)] = obj
	}
	return out, nil
}

// variantConfigs are the configs of the head-to-head comparisons (tcp, syscall).
// compileErr, if set, is reported as the error of the compiled variants.
func variantConfigs(objs map[string]string, compileErr error) []*config {
	names, nrs := trackedSyscalls()
	every := syscall.EveryCallSpec()
	every.Prepare = fillTrack(nrs)
	out := []*config{
		{Name: varTCPSegment, Kind: kindVariant, Family: "tcp", load: loadSpec(tcp.SegmentSpec())},
		{Name: varSysEveryCall, Kind: kindVariant, Family: "syscall", load: loadSpec(every)},
	}
	// The per-call events of the tracked calls, named as the family names them.
	var enter, exit []string
	for _, h := range syscall.PerCallSpec(names).Hooks {
		switch h.Prog {
		case "kpod_scen":
			enter = h.Tracepoints
		case "kpod_scex":
			exit = h.Tracepoints
		}
	}
	variant := func(name string, hooks ...bpfload.Hook) *config {
		c := &config{Name: name, Kind: kindVariant, Family: "syscall"}
		obj, ok := objs["syscall_exit.bpf.c"]
		if !ok {
			c.load = func() (io.Closer, error) {
				return nil, fmt.Errorf("bench/variants/syscall_exit.bpf.c not compiled: %v", compileErr)
			}
			return c
		}
		c.load = loadSpec(bpfload.Spec{Family: "syscall", Hooks: hooks, Prepare: fillTrack(nrs),
			Load: func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(obj) }})
		return c
	}
	enterHook := bpfload.Hook{Tracepoints: enter, Group: "syscalls", Prog: "kpod_xen"}
	exitHook := bpfload.Hook{Tracepoints: exit, Group: "syscalls", Prog: "kpod_xex"}
	out = append(out,
		variant(varSysExitSampled, enterHook, exitHook),
		variant(varSysExitOnly, exitHook),
		variant(varSysEveryExit, bpfload.Hook{Tracepoint: "sys_exit", Group: "raw_syscalls", Prog: "kpod_xall", BTFOnly: true}),
	)
	return out
}

// exactCheck is what one way of counting system calls counted of a known workload: calls
// calls of close(-1) from one container, each failing with EBADF.
type exactCheck struct {
	Way                   string
	Calls                 int
	Counted, Errors, Lats uint64 // in the container's entry for close
	LatOf                 uint64 // calls of the run whose latencies Lats are
	Error                 string
}

// checkExact loads each way of counting system calls with the family loader (the per-call
// and every-call paths of internal/syscall, the bench variants), makes n failing close calls
// in container c, and reads what the object counted for c and close.
func checkExact(kbench string, c *benchContainer, objs map[string]string, compileErr error, n int) []exactCheck {
	names, nrs := trackedSyscalls()
	closeNr, _ := syscall.Number("close")
	perCall := syscall.PerCallSpec(names)
	perCall.Prepare = fillTrack(nrs)
	out := []exactCheck{countClose(kbench, c, "kpod syscall", loadSpec(perCall), closeNr, n)}
	for _, vc := range variantConfigs(objs, compileErr) {
		if vc.Family == "syscall" {
			out = append(out, countClose(kbench, c, vc.Name, vc.load, closeNr, n))
		}
	}
	return out
}

func countClose(kbench string, c *benchContainer, way string, load func() (io.Closer, error), closeNr uint32, n int) exactCheck {
	r := exactCheck{Way: way, Calls: n}
	cl, err := load()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cl.Close()
	obj, ok := cl.(*bpfload.Object)
	if !ok {
		r.Error = "not a bpfload object"
		return r
	}
	// Two runs, of 1000 and of 1000 + n calls: the difference of what each counted is n, and
	// the few successful closes of kbench itself while it joins the container cancel out.
	var got [2]exactCheck
	for i, calls := range []int{1000, 1000 + n} {
		cmd := exec.Command(kbench, "badclose", fmt.Sprint(calls))
		cmd.Env = c.env()
		if b, err := cmd.CombinedOutput(); err != nil {
			r.Error = fmt.Sprintf("kbench badclose: %v: %s", err, b)
			return r
		}
		var vals []syscall.SyscallSysVal
		key := syscall.SyscallSysKey{Cgid: c.CgroupID, Nr: closeNr}
		if err := obj.Maps["kpod_sys"].Lookup(&key, &vals); err != nil {
			r.Error = fmt.Sprintf("no entry for the container's close calls: %v", err)
			return r
		}
		for _, v := range vals {
			got[i].Counted += v.Count
			got[i].Errors += v.Errors
			for _, x := range v.Lat.Slots {
				got[i].Lats += x
			}
		}
	}
	// got is cumulative: the second run alone counted got[1] − got[0]; less the first run's.
	r.Counted = got[1].Counted - 2*got[0].Counted
	r.Errors = got[1].Errors - 2*got[0].Errors
	r.Lats = got[1].Lats - got[0].Lats // the second run's (sampled: not a difference of two samples)
	r.LatOf = got[1].Counted - got[0].Counted
	return r
}
