// Package oom is the "oom" family: OOM kills per cgroup, charged to the victim, from the
// oom/mark_victim tracepoint (bpf/oom.bpf.c).
package oom

import (
	"github.com/kpod-project/kpod/internal/bpfload"
)

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "oom",
		Load:   LoadOom,
		Hooks:  []bpfload.Hook{{Tracepoint: "mark_victim", Group: "oom", Prog: "kpod_oom"}},
	}
}

// Start loads and attaches the family.
func Start() (*bpfload.Source[uint64], error) { return bpfload.Open(Spec(), read) }

// Collect returns the OOM kills per victim cgroup id.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]uint64, error) {
	return bpfload.Read[uint64, uint64](c, OomMapKpodOom, live)
}
