// Package softirqs is the "softirqs" family: time spent in soft IRQ vectors, charged to the
// cgroup of the task that was interrupted, from the softirq_entry/exit tracepoints
// (bpf/softirqs.bpf.c). Soft IRQs of the idle task and of kernel threads (ksoftirqd
// included) are charged to the node: bpfload.NodeID in the results.
//
// Soft IRQs are timed in windows (internal/window): with a sample n > 1 both programs are
// attached 1/n of the time, so that the soft IRQs outside the windows cost nothing. On a
// loopback service they are the comprehensive profile's costliest events, about two per
// request with two programs and two clock reads each (bench/, "What each family costs per
// redis request").
package softirqs

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/window"
)

// Vectors are the soft IRQ vector names, indexed by vector number (HI_SOFTIRQ = 0 ...
// RCU_SOFTIRQ = 9), as the kernel's softirq_to_name and /proc/softirqs (lower case) have them.
var Vectors = [...]string{"hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched", "hrtimer", "rcu"}

// VectorName returns the name of soft IRQ vector v, or "vec<v>" for a vector this table
// does not know (a newer kernel).
func VectorName(v uint32) string {
	if int(v) < len(Vectors) {
		return Vectors[v]
	}
	return fmt.Sprintf("vec%d", v)
}

// Stats are one cgroup's soft IRQ time histograms per vector name.
type Stats = hist.ByKey[string]

// EntryProg and ExitProg are the hook prefixes of the family's two programs, which the
// windows attach and detach.
const EntryProg, ExitProg = "kpod_sin", "kpod_sout"

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "softirqs",
		Load:   LoadSoftirqs,
		Hooks: []bpfload.Hook{
			{Tracepoint: "softirq_entry", Group: "irq", Prog: EntryProg},
			{Tracepoint: "softirq_exit", Group: "irq", Prog: ExitProg},
		},
	}
}

// Collector reads the family's map and runs its windows.
type Collector struct {
	*bpfload.Source[Stats]
	Sample uint32           // soft IRQs are timed 1/Sample of the time
	win    *window.Schedule // nil with Sample 1: always attached
}

// Start loads the family and times the soft IRQs that start in 1/sample of the time (1:
// every one).
func Start(sample uint32) (*Collector, error) {
	if sample < 1 || sample > window.MaxSample {
		return nil, fmt.Errorf("latency sample 1 in %d: want 1 to %d", sample, window.MaxSample)
	}
	c := &Collector{Sample: sample}
	var err error
	c.Source, err = bpfload.Open(Spec(), func(bc *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
		vals, err := read(bc, live)
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
		c.win = window.Start(sample, c.OpenWindow, c.CloseWindow)
	}
	return c, nil
}

// LatencySample is the sample the family runs with (kpod.collector.latency_sample).
func (c *Collector) LatencySample() uint32 { return c.Sample }

// StopWindows ends the windows with the programs detached, for tests that open and close
// them themselves (OpenWindow, CloseWindow).
func (c *Collector) StopWindows() {
	c.win.Stop()
}

// OpenWindow attaches the exit program, then the entry: the exits of soft IRQs that began
// before the entry was attached find no stamp and are not counted.
func (c *Collector) OpenWindow() error {
	if err := c.Obj.Attach(ExitProg); err != nil {
		return err
	}
	return c.Obj.Attach(EntryProg)
}

// CloseWindow detaches the entry program, then the exit, then clears every CPU's stamp: a
// soft IRQ that entered before the entry was detached and was still running when the exit
// was left its stamp, which the next window's first exit on that CPU would take for its own.
func (c *Collector) CloseWindow() error {
	if err := c.Obj.Detach(EntryProg); err != nil {
		return err
	}
	if err := c.Obj.Detach(ExitProg); err != nil {
		return err
	}
	m := c.Obj.Maps[SoftirqsMapKpodSirqTs]
	if m == nil {
		return fmt.Errorf("no map %s in the object", SoftirqsMapKpodSirqTs)
	}
	zero := make([]uint64, ebpf.MustPossibleCPU())
	if err := m.Update(uint32(0), zero, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("clearing the soft IRQ stamps: %w", err)
	}
	return nil
}

// Close stops the windows, then unloads the family.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	c.win.Stop()
	return c.Source.Close()
}

// Collect returns the soft IRQ histograms per interrupted cgroup id (bpfload.NodeID for the
// node) and vector.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[SoftirqsSirqKey, SoftirqsKpodHist](c, SoftirqsMapKpodSirq, live)
	out := map[uint64]Stats{}
	for k, v := range raw {
		if out[k.Cgid] == nil {
			out[k.Cgid] = Stats{}
		}
		out[k.Cgid][VectorName(k.Vec)] = hist.Decode(v.SumNs, v.Slots)
	}
	return out, err
}
