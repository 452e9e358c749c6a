//go:build bench

package bench

import (
	"fmt"
	"io"
	"os/exec"
	"sort"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/tcp"
	"github.com/kpod-project/kpod/internal/window"
)

// Variants are kpod families loaded on a path the receiver does not take on this kernel (tcp
// per segment, syscall on every call: the fallbacks), or with some of their hooks or settings
// changed (the syscall family's ways to count). They are loaded with the family loader
// (bpfload.Load, the attach ladder included) instead of through the receiver, then adopted
// like every other config. Nothing in bpf/, internal/ or receiver/ changes.

const (
	varTCPSegment   = "kpod tcp, per segment (old path)"
	varSysEveryCall = "kpod syscall, every call (raw_syscalls)"
	varSysExact     = "kpod syscall, every call timed (latency_sample: 1)"
	varSysExitOnly  = "syscall variant: per call, exit only, no latency"
	varSysEveryExit = "syscall variant: every call, exit only (raw_syscalls sys_exit), no latency"
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

func loadSpec(s bpfload.Spec) func() (io.Closer, error) {
	return func() (io.Closer, error) {
		o, err := bpfload.Load(s)
		if err != nil {
			return nil, err
		}
		return o, nil
	}
}

// syscallVariant loads the syscall family's object for the default tracked list on path p,
// one call in sample timed (syscall.NoLatency: the exit programs only).
func syscallVariant(name string, p syscall.Path, sample uint32) *config {
	tracked, _ := syscall.Resolve(syscall.Default)
	c := &config{Name: name, Kind: kindVariant, Family: "syscall"}
	if sample > 1 {
		c.windows = sample // PathSpec times every call the enter program sees; the windows are the loader's
	}
	spec, err := syscall.PathSpec(p, tracked, sample)
	if err != nil {
		c.load = func() (io.Closer, error) { return nil, err }
		return c
	}
	c.load = loadSpec(spec)
	return c
}

// variantConfigs are the configs of the head-to-head comparisons (tcp, syscall).
func variantConfigs() []*config {
	def := uint32(window.DefaultSample)
	return []*config{
		{Name: varTCPSegment, Kind: kindVariant, Family: "tcp", load: loadSpec(tcp.SegmentSpec())},
		syscallVariant(varSysEveryCall, syscall.PathEveryCall, def),
		syscallVariant(varSysExact, syscall.PathPerCall, 1),
		syscallVariant(varSysExitOnly, syscall.PathPerCall, syscall.NoLatency),
		syscallVariant(varSysEveryExit, syscall.PathEveryCall, syscall.NoLatency),
	}
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

// checkExact loads each way of counting system calls with the family loader (the default
// per-call path as the receiver loads it, the variants), makes n failing close calls in
// container c, and reads what the object counted for c and close.
func checkExact(kbench string, c *benchContainer, n int) []exactCheck {
	closeNr, _ := syscall.Number("close")
	def := syscallVariant("kpod syscall", syscall.PathPerCall, window.DefaultSample)
	out := []exactCheck{countClose(kbench, c, def.Name, def.load, closeNr, n)}
	for _, vc := range variantConfigs() {
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
		st, err := syscall.CallStats(obj, c.CgroupID, closeNr)
		if err != nil {
			r.Error = fmt.Sprintf("the container's close calls: %v", err)
			return r
		}
		got[i].Counted, got[i].Errors, got[i].Lats = st.Count, st.Errors, st.Latency.Count()
	}
	// got is cumulative: the second run alone counted got[1] − got[0]; less the first run's.
	r.Counted = got[1].Counted - 2*got[0].Counted
	r.Errors = got[1].Errors - 2*got[0].Errors
	r.Lats = got[1].Lats - got[0].Lats // the second run's (sampled: not a difference of two samples)
	r.LatOf = got[1].Counted - got[0].Counted
	return r
}
