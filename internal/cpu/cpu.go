// Package cpu is the "cpu" family: run-queue latency and context switches per cgroup, from
// the sched_switch, sched_wakeup and sched_wakeup_new tracepoints (bpf/sched.bpf.c).
package cpu

import (
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
		Load:   LoadSched,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sched_switch", Group: "sched", Prog: "kpod_sw"},
			{Tracepoint: "sched_wakeup", Group: "sched", Prog: "kpod_wk"},
			{Tracepoint: "sched_wakeup_new", Group: "sched", Prog: "kpod_wkn"},
		},
	}
}

// Collector reads the family's map.
type Collector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// Start loads and attaches the family.
func Start() (*Collector, error) {
	obj, err := bpfload.Load(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj}, nil
}

// Collect returns the counters of every cgroup that has any, and deletes the entries of
// cgroups that are gone (live: ids of the current cgroup tree).
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps["kpod_cpu"]
	raw, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *SchedCpuVal) {
		dst.Switches += src.Switches
		dst.Rq.SumNs += src.Rq.SumNs
		for i := range dst.Rq.Slots {
			dst.Rq.Slots[i] += src.Rq.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Stats, len(raw))
	ids := make([]uint64, 0, len(raw))
	for id, v := range raw {
		out[id] = Stats{Switches: v.Switches, RunQueue: hist.Hist{SumNs: v.Rq.SumNs, Counts: v.Rq.Slots}}
		ids = append(ids, id)
	}
	return out, bpfload.Delete(m, c.sweep.Dead(ids, live))
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
