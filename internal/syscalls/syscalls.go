// Package syscalls is the "syscall" family: calls, errors and latency of a configurable set
// of system calls per cgroup, from the sys_enter/sys_exit tracepoints (bpf/syscall.bpf.c).
package syscalls

import (
	"fmt"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// Default is the tracked list when none is configured.
var Default = []string{"read", "write", "openat", "close", "connect", "accept4", "sendto", "recvfrom", "epoll_wait", "futex"}

// Arch is the architecture whose syscall table this build uses.
const Arch = arch

// Number returns the number of a system call on this architecture.
func Number(name string) (uint32, bool) {
	nr, ok := numbers[name]
	return nr, ok
}

// Resolve maps names to numbers. Names this architecture does not have are returned in
// missing (arm64 has no epoll_wait, for instance).
func Resolve(names []string) (nrs map[uint32]string, missing []string) {
	nrs = map[uint32]string{}
	for _, n := range names {
		if nr, ok := numbers[n]; ok {
			nrs[nr] = n
		} else {
			missing = append(missing, n)
		}
	}
	return nrs, missing
}

// Stats are one syscall's counters in one cgroup.
type Stats struct {
	Count, Errors uint64
	Latency       hist.Hist
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Count += o.Count
	s.Errors += o.Errors
	s.Latency.Add(&o.Latency)
}

// maxSyscalls is KPOD_MAX_SYSCALLS in bpf/syscall.bpf.c.
const maxSyscalls = 1024

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "syscall",
		Load:   LoadSyscall,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sys_enter", Group: "raw_syscalls", Prog: "kpod_sysin"},
			{Tracepoint: "sys_exit", Group: "raw_syscalls", Prog: "kpod_sysout"},
		},
	}
}

// Collector reads the family's map.
type Collector struct {
	Obj   *bpfload.Object
	names map[uint32]string
	sweep bpfload.Sweeper
}

// Start loads the family and writes the tracked syscall numbers into the kernel's filter
// before any program is attached.
func Start(tracked map[uint32]string) (*Collector, error) {
	for nr := range tracked {
		if nr >= maxSyscalls {
			return nil, fmt.Errorf("syscall number %d is beyond the %d the BPF program can track", nr, maxSyscalls)
		}
	}
	spec := Spec()
	spec.Prepare = func(cs *ebpf.CollectionSpec) error {
		ms := cs.Maps["kpod_sys_track"]
		ms.Contents = nil
		nrs := make([]uint32, 0, len(tracked))
		for nr := range tracked {
			nrs = append(nrs, nr)
		}
		sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })
		for _, nr := range nrs {
			ms.Contents = append(ms.Contents, ebpf.MapKV{Key: nr, Value: uint8(1)})
		}
		return nil
	}
	obj, err := bpfload.Load(spec)
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj, names: tracked}, nil
}

// Key identifies one syscall of one cgroup.
type Key struct {
	CgroupID uint64
	Syscall  string
}

// Tracked returns the numbers the kernel filter holds, read back from the map.
func (c *Collector) Tracked() ([]uint32, error) {
	var out []uint32
	m := c.Obj.Maps["kpod_sys_track"]
	for nr := uint32(0); nr < maxSyscalls; nr++ {
		var v uint8
		if err := m.Lookup(nr, &v); err != nil {
			return nil, err
		}
		if v != 0 {
			out = append(out, nr)
		}
	}
	return out, nil
}

// Collect returns the counters per cgroup and syscall, and deletes entries of removed cgroups.
func (c *Collector) Collect(live map[uint64]bool) (map[Key]Stats, error) {
	m := c.Obj.Maps["kpod_sys"]
	raw, err := bpfload.DumpPerCPU[SyscallSysKey](m, func(dst, src *SyscallSysVal) {
		dst.Count += src.Count
		dst.Errors += src.Errors
		dst.Lat.SumNs += src.Lat.SumNs
		for i := range dst.Lat.Slots {
			dst.Lat.Slots[i] += src.Lat.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[Key]Stats, len(raw))
	byCgroup := map[uint64][]SyscallSysKey{}
	ids := make([]uint64, 0, len(raw))
	for k, v := range raw {
		name, ok := c.names[k.Nr]
		if !ok {
			name = fmt.Sprintf("nr_%d", k.Nr)
		}
		out[Key{k.Cgid, name}] = Stats{Count: v.Count, Errors: v.Errors, Latency: hist.Hist{SumNs: v.Lat.SumNs, Counts: v.Lat.Slots}}
		if _, seen := byCgroup[k.Cgid]; !seen {
			ids = append(ids, k.Cgid)
		}
		byCgroup[k.Cgid] = append(byCgroup[k.Cgid], k)
	}
	var dead []SyscallSysKey
	for _, id := range c.sweep.Dead(ids, live) {
		dead = append(dead, byCgroup[id]...)
	}
	return out, bpfload.Delete(m, dead)
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
