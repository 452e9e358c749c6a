package bpfload

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestDumpPerCPUBatches: whatever the hint (the last read's entry count: none, far fewer,
// exactly, more), a dump reads every entry of a per-CPU hash once, in batches of the size the
// hint asks for, and sums each key's CPUs.
func TestDumpPerCPUBatches(t *testing.T) {
	fakepod.RequireRoot(t) // a BPF map; under CI=true it fails instead of skipping
	type val struct {
		N    uint64
		Hist [3]uint64
	}
	const entries = 1500 // more than one batch even at maxBatch
	// Kernels before 5.11 charge maps to RLIMIT_MEMLOCK (Load raises it; this test makes its
	// map itself).
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUHash, KeySize: 8, ValueSize: 32, MaxEntries: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k <= entries; k++ {
		per := make([]val, ncpu)
		for c := range per {
			per[c] = val{N: k, Hist: [3]uint64{uint64(c), k * 2, 1}}
		}
		if err := m.Put(k, per); err != nil {
			t.Fatal(err)
		}
	}
	for _, hint := range []int{0, 100, entries, 5000} {
		got, err := dumpPerCPU[uint64, val](m, hint)
		if err != nil {
			t.Fatalf("hint %d: %v", hint, err)
		}
		if len(got) != entries {
			t.Errorf("hint %d: %d entries, want %d", hint, len(got), entries)
		}
		c := uint64(ncpu)
		for k := uint64(1); k <= entries; k++ {
			if want := (val{N: k * c, Hist: [3]uint64{c * (c - 1) / 2, k * 2 * c, c}}); got[k] != want {
				t.Fatalf("hint %d: key %d = %+v, want %+v", hint, k, got[k], want)
			}
		}
	}
}
