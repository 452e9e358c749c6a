// Package proc is the "proc" family: process forks, execs and exits per cgroup, from the
// sched_process_fork/exec/exit tracepoints (bpf/proc.bpf.c).
package proc

import (
	"github.com/kpod-project/kpod/internal/bpfload"
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

// Start loads and attaches the family.
func Start() (*bpfload.Source[Stats], error) { return bpfload.Open(Spec(), read) }

// Collect returns the counters per cgroup id.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, ProcProcVal](c, ProcMapKpodProc, live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Forks: v.Forks, Execs: v.Execs, Exits: v.Exits}
	}
	return out, err
}
