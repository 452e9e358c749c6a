// Package proc is the "proc" family: process forks, execs and exits per cgroup, from the
// sched_process_fork/exec/exit tracepoints (bpf/proc.bpf.c).
package proc

import (
	"context"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/podid"
)

// Stats are one cgroup's cumulative process counters.
type Stats struct {
	Forks, Execs, Exits uint64
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Forks += o.Forks
	s.Execs += o.Execs
	s.Exits += o.Exits
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "proc",
		Load:   LoadProc,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sched_process_fork", Group: "sched", Prog: "kpod_fork"},
			{Tracepoint: "sched_process_exec", Group: "sched", Prog: "kpod_exec"},
			{Tracepoint: "sched_process_exit", Group: "sched", Prog: "kpod_exit"},
		},
	}
}

// Collector reads the family's map.
type Collector struct{ *bpfload.Collector }

// Start loads and attaches the family.
func Start() (*Collector, error) {
	c, err := bpfload.Start(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{c}, nil
}

// Collect returns the counters per cgroup id.
func (c *Collector) Collect(_ context.Context, x *podid.Index) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, ProcProcVal](c.Collector, ProcMapKpodProc, x.Live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Forks: v.Forks, Execs: v.Execs, Exits: v.Exits}
	}
	return out, err
}
