// Package irq holds the "hardirqs" and "softirqs" families: time spent in hard IRQ handlers
// and in soft IRQ vectors, charged to the cgroup of the task that was interrupted ("IRQ
// time stolen from this pod"). Interrupts that hit the idle task or a kernel thread are
// charged to the node: cgroup id 0 (NodeID) in the results.
//
// Both families come from one source, bpf/irq.bpf.c, built into two objects so that each
// collector loads and costs only its own tracepoints (irq_handler_entry/exit,
// softirq_entry/exit).
package irq

import (
	"fmt"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// NodeID is the key of IRQ time that interrupted the idle task or a kernel thread.
const NodeID = 0

const (
	mapHard = "kpod_hirq"
	mapSoft = "kpod_sirq"
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

// dead drops NodeID from the sweep: it is never a cgroup directory, but always alive.
func dead(s *bpfload.Sweeper, ids []uint64, live map[uint64]bool) []uint64 {
	var seen []uint64
	for _, id := range ids {
		if id != NodeID {
			seen = append(seen, id)
		}
	}
	return s.Dead(seen, live)
}

func addHist(dst *hist.Hist, sum uint64, slots *[hist.Slots]uint64) {
	dst.SumNs += sum
	for i := range dst.Counts {
		dst.Counts[i] += slots[i]
	}
}

// HardStats are one cgroup's hard IRQ counters.
type HardStats struct {
	Count   uint64    // handler runs (one per irqaction of a shared line)
	Latency hist.Hist // handler time
}

// Add adds o into s.
func (s *HardStats) Add(o *HardStats) {
	s.Count += o.Count
	s.Latency.Add(&o.Latency)
}

// HardSpec is the "hardirqs" family's BPF object.
func HardSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "hardirqs",
		Load:   LoadHardirqs,
		Hooks: []bpfload.Hook{
			{Tracepoint: "irq_handler_entry", Group: "irq", Prog: "kpod_hin"},
			{Tracepoint: "irq_handler_exit", Group: "irq", Prog: "kpod_hout"},
		},
	}
}

// HardCollector reads the "hardirqs" family's map.
type HardCollector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// StartHard loads and attaches the "hardirqs" family.
func StartHard() (*HardCollector, error) {
	obj, err := bpfload.Load(HardSpec())
	if err != nil {
		return nil, err
	}
	return &HardCollector{Obj: obj}, nil
}

// Collect returns the hard IRQ counters per interrupted cgroup id (NodeID for idle and
// kernel threads) and deletes the entries of cgroups that are gone.
func (c *HardCollector) Collect(live map[uint64]bool) (map[uint64]HardStats, error) {
	m := c.Obj.Maps[mapHard]
	raw, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *HardirqsHirqVal) {
		dst.Count += src.Count
		dst.Time.SumNs += src.Time.SumNs
		for i := range dst.Time.Slots {
			dst.Time.Slots[i] += src.Time.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(mapHard, len(raw))
	out := make(map[uint64]HardStats, len(raw))
	ids := make([]uint64, 0, len(raw))
	for id, v := range raw {
		s := HardStats{Count: v.Count}
		addHist(&s.Latency, v.Time.SumNs, &v.Time.Slots)
		out[id] = s
		ids = append(ids, id)
	}
	return out, bpfload.Delete(m, dead(&c.sweep, ids, live))
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *HardCollector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}

// SoftStats are one cgroup's soft IRQ time histograms per vector number (see VectorName).
type SoftStats map[uint32]hist.Hist

// Add merges o into s and returns s.
func (s SoftStats) Add(o SoftStats) SoftStats {
	if s == nil {
		s = SoftStats{}
	}
	for v, h := range o {
		x := s[v]
		x.Add(&h)
		s[v] = x
	}
	return s
}

// SoftSpec is the "softirqs" family's BPF object.
func SoftSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "softirqs",
		Load:   LoadSoftirqs,
		Hooks: []bpfload.Hook{
			{Tracepoint: "softirq_entry", Group: "irq", Prog: "kpod_sin"},
			{Tracepoint: "softirq_exit", Group: "irq", Prog: "kpod_sout"},
		},
	}
}

// SoftCollector reads the "softirqs" family's map.
type SoftCollector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// StartSoft loads and attaches the "softirqs" family.
func StartSoft() (*SoftCollector, error) {
	obj, err := bpfload.Load(SoftSpec())
	if err != nil {
		return nil, err
	}
	return &SoftCollector{Obj: obj}, nil
}

// Collect returns the soft IRQ histograms per interrupted cgroup id (NodeID for idle and
// kernel threads, including ksoftirqd) and vector, and deletes the entries of cgroups that
// are gone.
func (c *SoftCollector) Collect(live map[uint64]bool) (map[uint64]SoftStats, error) {
	m := c.Obj.Maps[mapSoft]
	raw, err := bpfload.DumpPerCPU[SoftirqsSirqKey](m, func(dst, src *SoftirqsKpodHist) {
		dst.SumNs += src.SumNs
		for i := range dst.Slots {
			dst.Slots[i] += src.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(mapSoft, len(raw))
	out := map[uint64]SoftStats{}
	byCgroup := map[uint64][]SoftirqsSirqKey{}
	var ids []uint64
	for k, v := range raw {
		s := out[k.Cgid]
		if s == nil {
			s = SoftStats{}
			out[k.Cgid] = s
			ids = append(ids, k.Cgid)
		}
		var h hist.Hist
		addHist(&h, v.SumNs, &v.Slots)
		s[k.Vec] = h
		byCgroup[k.Cgid] = append(byCgroup[k.Cgid], k)
	}
	var gone []SoftirqsSirqKey
	for _, id := range dead(&c.sweep, ids, live) {
		gone = append(gone, byCgroup[id]...)
	}
	return out, bpfload.Delete(m, gone)
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *SoftCollector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
