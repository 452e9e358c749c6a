// Package bpftest holds what the families' real-kernel tests share: running a family on a
// chosen rung of the attach ladder, and logging what its programs cost.
package bpftest

import (
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// Rungs are the tracepoint rungs the real-kernel tests run each family on: tp_btf (what
// the loader picks on a BTF kernel) and raw_tp, forced with OnRung, so that the fallback is
// proved to load, attach and count the same.
var Rungs = []string{"tp_btf", "raw_tp"}

// OnRung returns s changed so that only programs of rung (and kernel function hooks) load:
// for raw_tp the tp_btf programs are removed from the spec before loading.
func OnRung(s bpfload.Spec, rung string) bpfload.Spec {
	if rung == "tp_btf" {
		return s
	}
	load := s.Load
	s.Load = func() (*ebpf.CollectionSpec, error) {
		cs, err := load()
		if err != nil {
			return nil, err
		}
		for name := range cs.Programs {
			if strings.HasSuffix(name, "_b") {
				delete(cs.Programs, name)
			}
		}
		return cs, nil
	}
	return s
}

// CheckRung fails the test unless every tracepoint program of o attached as rung.
func CheckRung(t *testing.T, o *bpfload.Object, rung string) {
	t.Helper()
	for _, p := range o.Programs {
		if p.Kind != rung && p.Kind != "fentry" && p.Kind != "kprobe" {
			t.Errorf("%s attached as %s, want %s", p.Name, p.Kind, rung)
		}
	}
}

// EnableStats turns on the kernel's BPF run-time statistics for the test; the returned
// function logs each program's runs and mean cost (which includes the two clock reads the
// statistics add).
func EnableStats(t *testing.T) func(...*bpfload.Object) {
	t.Helper()
	st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Logf("no BPF stats: %v", err)
		return func(...*bpfload.Object) {}
	}
	t.Cleanup(func() { st.Close() })
	return func(objs ...*bpfload.Object) {
		for _, o := range objs {
			for _, p := range o.Programs {
				s, err := p.Prog.Stats()
				if err != nil || s.RunCount == 0 && s.RecursionMisses == 0 {
					continue
				}
				t.Logf("%s %-14s %9d runs %8v per run, %d recursion misses", o.Family, p.Name, s.RunCount,
					s.Runtime/time.Duration(max(s.RunCount, 1)), s.RecursionMisses)
			}
		}
	}
}
