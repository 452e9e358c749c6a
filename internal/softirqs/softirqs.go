// Package softirqs is the "softirqs" family: time spent in soft IRQ vectors, charged to the
// cgroup of the task that was interrupted, from the softirq_entry/exit tracepoints
// (bpf/softirqs.bpf.c). Soft IRQs of the idle task and of kernel threads (ksoftirqd
// included) are charged to the node: bpfload.NodeID in the results.
package softirqs

import (
	"fmt"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
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

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "softirqs",
		Load:   LoadSoftirqs,
		Hooks: []bpfload.Hook{
			{Tracepoint: "softirq_entry", Group: "irq", Prog: "kpod_sin"},
			{Tracepoint: "softirq_exit", Group: "irq", Prog: "kpod_sout"},
		},
	}
}

// Start loads and attaches the family.
func Start() (*bpfload.Source[Stats], error) { return bpfload.Open(Spec(), read) }

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
