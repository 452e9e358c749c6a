// Package cpu is the "cpu" family: run-queue latency and context switches per cgroup, from
// the sched_switch, sched_wakeup and sched_wakeup_new tracepoints (bpf/cpu.bpf.c), as tp_btf
// programs only: the wait is kept in the task storage of tasks that are not current, which
// needs trusted BTF pointers.
package cpu

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// Stats are one cgroup's cumulative scheduler counters.
type Stats struct {
	Switches uint64
	RunQueue hist.Hist // time from becoming runnable to running
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Switches += o.Switches
	s.RunQueue.Add(&o.RunQueue)
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "cpu",
		Load:   LoadCpu,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sched_switch", Group: "sched", Prog: "kpod_sw", BTFOnly: true},
			{Tracepoint: "sched_wakeup", Group: "sched", Prog: "kpod_wk", BTFOnly: true},
			{Tracepoint: "sched_wakeup_new", Group: "sched", Prog: "kpod_wkn", BTFOnly: true},
		},
	}
}

// Start loads and attaches the family. Without runQueue (the kpod.cpu.runqueue.latency
// histogram switched off) only sched_switch is hooked and only switches are counted: the
// wakeup hooks, on the scheduler's hottest path, are not attached at all.
func Start(runQueue bool) (*bpfload.Source[Stats], error) {
	s := Spec()
	if !runQueue {
		s.Hooks = slices.DeleteFunc(s.Hooks, func(h bpfload.Hook) bool { return h.Prog != "kpod_sw" })
		s.Prepare = func(cs *ebpf.CollectionSpec) error {
			v, ok := cs.Variables[CpuVarKpodRqOn]
			if !ok {
				return fmt.Errorf("the object has no %s", CpuVarKpodRqOn)
			}
			return v.Set(uint32(0))
		}
	}
	return bpfload.Open(s, read)
}

// Collect returns the counters of every cgroup that has any.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, CpuCpuVal](c, CpuMapKpodCpu, live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Switches: v.Switches, RunQueue: hist.Decode(v.Rq.SumNs, v.Rq.Slots)}
	}
	return out, err
}
