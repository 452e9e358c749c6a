package bpfload

import (
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestPreallocateSizes: every per-CPU hash map keeps cgroups/MaxCgroups of its entries
// (rounded up, at least one); shared hash maps lose BPF_F_NO_PREALLOC but keep their size.
func TestPreallocateSizes(t *testing.T) {
	spec := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{
		"percg":  {Type: ebpf.PerCPUHash, MaxEntries: MaxCgroups, ValueSize: 232, Flags: unix.BPF_F_NO_PREALLOC},
		"x4":     {Type: ebpf.PerCPUHash, MaxEntries: MaxCgroups * 4, ValueSize: 8, Flags: unix.BPF_F_NO_PREALLOC},
		"edges":  {Type: ebpf.PerCPUHash, MaxEntries: 16384, ValueSize: 3, Flags: unix.BPF_F_NO_PREALLOC},
		"tiny":   {Type: ebpf.PerCPUHash, MaxEntries: 2, ValueSize: 8},
		"shared": {Type: ebpf.Hash, MaxEntries: 16384, ValueSize: 1, Flags: unix.BPF_F_NO_PREALLOC},
		"lru":    {Type: ebpf.LRUHash, MaxEntries: 8192, ValueSize: 16},
	}}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	got := preallocate(spec, 1000)
	want := map[string]uint32{"percg": 1000, "x4": 4000, "edges": 1600, "tiny": 1, "shared": 16384, "lru": 8192}
	for name, n := range want {
		ms := spec.Maps[name]
		if ms.MaxEntries != n || ms.Flags&unix.BPF_F_NO_PREALLOC != 0 {
			t.Errorf("%s: %d entries, flags %#x; want %d, preallocated", name, ms.MaxEntries, ms.Flags, n)
		}
	}
	if w := uint64(1000*232+4000*8+1600*8+1*8) * uint64(ncpu); got != w {
		t.Errorf("bytes = %d, want %d", got, w)
	}
}

func TestPreallocCgroupsSetting(t *testing.T) {
	defer SetPreallocCgroups(0)
	for _, c := range []struct{ set, want int }{{0, DefaultPreallocCgroups}, {-3, DefaultPreallocCgroups}, {300, 300}, {MaxCgroups * 2, MaxCgroups}} {
		SetPreallocCgroups(c.set)
		if got := PreallocCgroups(); got != c.want {
			t.Errorf("SetPreallocCgroups(%d): %d, want %d", c.set, got, c.want)
		}
	}
}
