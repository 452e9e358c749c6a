// Package proc is the "proc" family: process forks, execs and exits per cgroup, from the
// sched_process_fork/exec/exit tracepoints (bpf/proc.bpf.c).
package proc

import "github.com/kpod-project/kpod/internal/bpfload"

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

// Collect returns the counters per cgroup id and deletes entries of removed cgroups.
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps["kpod_proc"]
	raw, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *ProcProcVal) {
		dst.Forks += src.Forks
		dst.Execs += src.Execs
		dst.Exits += src.Exits
	})
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Stats, len(raw))
	ids := make([]uint64, 0, len(raw))
	for id, v := range raw {
		out[id] = Stats{Forks: v.Forks, Execs: v.Execs, Exits: v.Exits}
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
