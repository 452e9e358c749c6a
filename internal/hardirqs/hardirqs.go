// Package hardirqs is the "hardirqs" family: time spent in hard IRQ handlers, charged to
// the cgroup of the task that was interrupted ("IRQ time stolen from this pod"), from the
// irq_handler_entry/exit tracepoints (bpf/hardirqs.bpf.c). Interrupts that hit the idle task
// or a kernel thread are charged to the node: bpfload.NodeID in the results.
package hardirqs

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// Stats are one cgroup's hard IRQ counters.
type Stats struct {
	Count   uint64    // handler runs (one per irqaction of a shared line)
	Latency hist.Hist // handler time
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Count += o.Count
	s.Latency.Add(&o.Latency)
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "hardirqs",
		Load:   LoadHardirqs,
		Hooks: []bpfload.Hook{
			{Tracepoint: "irq_handler_entry", Group: "irq", Prog: "kpod_hin"},
			{Tracepoint: "irq_handler_exit", Group: "irq", Prog: "kpod_hout"},
		},
	}
}

// Start loads and attaches the family.
func Start() (*bpfload.Source[Stats], error) { return bpfload.Open(Spec(), read) }

// Collect returns the hard IRQ counters per interrupted cgroup id (bpfload.NodeID for idle
// and kernel threads).
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, HardirqsHirqVal](c, HardirqsMapKpodHirq, live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Count: v.Count, Latency: hist.Decode(v.Time.SumNs, v.Time.Slots)}
	}
	return out, err
}
