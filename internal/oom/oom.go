// Package oom is the "oom" family: OOM kills per cgroup, charged to the victim, from the
// oom/mark_victim tracepoint (bpf/oom.bpf.c).
package oom

import "github.com/kpod-project/kpod/internal/bpfload"

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "oom",
		Load:   LoadOom,
		Hooks:  []bpfload.Hook{{Tracepoint: "mark_victim", Group: "oom", Prog: "kpod_oom"}},
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

// Collect returns the OOM kills per victim cgroup id and deletes entries of removed cgroups.
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]uint64, error) {
	m := c.Obj.Maps["kpod_oom"]
	out, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *uint64) { *dst += *src })
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(out))
	for id := range out {
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
