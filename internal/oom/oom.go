// Package oom is the "oom" family: OOM kills per cgroup, charged to the victim, from the
// oom/mark_victim tracepoint (bpf/oom.bpf.c).
package oom

import (
	"context"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/podid"
)

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "oom",
		Load:   LoadOom,
		Hooks:  []bpfload.Hook{{Tracepoint: "mark_victim", Group: "oom", Prog: "kpod_oom"}},
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

// Collect returns the OOM kills per victim cgroup id.
func (c *Collector) Collect(_ context.Context, x *podid.Index) (map[uint64]uint64, error) {
	return bpfload.Read[uint64, uint64](c.Collector, OomMapKpodOom, x.Live)
}
