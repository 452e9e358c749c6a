package bpfload_test

import (
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestMaxCgroups: MaxCgroups is KPOD_MAX_CGROUPS, the size of a per-cgroup data map.
func TestMaxCgroups(t *testing.T) {
	spec, err := cpu.LoadCpu()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps["kpod_cpu"].MaxEntries; got != bpfload.MaxCgroups {
		t.Errorf("kpod_cpu holds %d entries, bpfload.MaxCgroups is %d", got, bpfload.MaxCgroups)
	}
}

// TestRealPrealloc: on a kernel that allocates hash maps in full (forced here: this host is
// 6.1+, where they grow on demand), the cpu family's per-CPU map holds
// bpf_prealloc_cgroups/MaxCgroups of its entries, and the kernel's own accounting of the map
// (memlock, from its fdinfo) has the values of every entry on every possible CPU in it. (6.4+
// counts what a map really holds: 263,040 B for the on-demand map here; 6.1 counts max_entries
// of every hash map as if full: 4.8 MB for the same map.)
func TestRealPrealloc(t *testing.T) {
	fakepod.RequireRoot(t)
	spec, err := cpu.LoadCpu()
	if err != nil {
		t.Fatal(err)
	}
	value := uint64(spec.Maps["kpod_cpu"].ValueSize+7) &^ 7
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	load := func() (uint64, *ebpf.MapInfo) {
		t.Helper()
		src, err := cpu.Start(true)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		obj := src.Objects()[0]
		info, err := obj.Maps["kpod_cpu"].Info()
		if err != nil {
			t.Fatal(err)
		}
		return obj.Prealloc, info
	}

	prealloc, info := load()
	if bpftest.KernelAtLeast(t, 6, 1) {
		onDemand, _ := info.Memlock()
		t.Logf("on demand: %d entries, flags %#x, memlock %d", info.MaxEntries, info.Flags, onDemand)
		if prealloc != 0 || info.MaxEntries != bpfload.MaxCgroups || info.Flags&unix.BPF_F_NO_PREALLOC == 0 {
			t.Errorf("on demand: prealloc %d, %d entries, flags %#x; want 0, %d, BPF_F_NO_PREALLOC", prealloc, info.MaxEntries, info.Flags, bpfload.MaxCgroups)
		}
	} else if info.MaxEntries != uint32(bpfload.DefaultPreallocCgroups) || info.Flags&unix.BPF_F_NO_PREALLOC != 0 {
		// Unforced, as on the kernels it is for.
		t.Errorf("before 6.1: %d entries, flags %#x; want %d, preallocated", info.MaxEntries, info.Flags, bpfload.DefaultPreallocCgroups)
	}

	defer bpfload.ForcePreallocForTest()()
	defer bpfload.SetPreallocCgroups(0)
	for _, n := range []int{300, bpfload.DefaultPreallocCgroups} {
		bpfload.SetPreallocCgroups(n)
		prealloc, info := load()
		memlock, _ := info.Memlock()
		t.Logf("preallocated for %d cgroups: %d entries, flags %#x, memlock %d, values %d", n, info.MaxEntries, info.Flags, memlock, prealloc)
		if info.MaxEntries != uint32(n) || info.Flags&unix.BPF_F_NO_PREALLOC != 0 {
			t.Errorf("%d cgroups: %d entries, flags %#x; want %d, preallocated", n, info.MaxEntries, info.Flags, n)
		}
		if want := uint64(n) * value * uint64(ncpu); prealloc != want {
			t.Errorf("%d cgroups: Prealloc = %d, want %d entries × %d B × %d CPUs = %d", n, prealloc, n, value, ncpu, want)
		}
		// The rest of memlock is the table: an element header per entry (under 128 B with an
		// 8-byte key), a bucket per entry rounded up to a power of two (16 B), per-CPU locks.
		if over := int64(memlock) - int64(prealloc); over < 0 || over > int64(n)*(128+2*16)+int64(ncpu)*64+4096 {
			t.Errorf("%d cgroups: memlock %d, values %d: the table's overhead %d is not that of %d entries", n, memlock, prealloc, over, n)
		}
	}
}
