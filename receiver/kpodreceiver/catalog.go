package kpodreceiver

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/memcg"
	"github.com/kpod-project/kpod/internal/podid"
)

// family adapts one collector (internal/<family>) to the scraper. collect returns this
// cycle's typed values as a snapshot; only the snapshot's record methods touch pdata. A
// snapshot is owned by the cycle that asked for it, so a collect that overruns the cycle's
// timeout can finish later without racing with anything.
type family interface {
	start(ctx context.Context, e *env) error
	collect(ctx context.Context, x *podid.Index) (snapshot, error)
	objects() []*bpfload.Object
	close() error
}

// snapshot is one collection's values, recorded per resource.
type snapshot interface {
	recordContainer(r *recorder, c *podid.Container)
	recordPod(r *recorder, p *podid.Pod)
}

// nodeSnapshot is implemented by snapshots with node-level series (IRQ time taken from the
// idle task and kernel threads).
type nodeSnapshot interface{ recordNode(r *recorder) }

// partial is implemented by families that run without some of their metrics on this kernel:
// metric name → why it is unavailable (kpod.metric.unavailable).
type partial interface{ unavailableMetrics() map[string]string }

// countsInBPF is implemented by families whose counters live in kpod's BPF maps on some
// hosts only (diskio); familyInfo.bpf covers the others.
type countsInBPF interface{ countsInBPF() bool }

// env is what families need from the host.
type env struct {
	layout   cgroupfs.Layout
	procRoot string
	sysRoot  string
	syscalls []string
	logger   *zap.Logger
	memstat  *memcg.StatCache // one memory.stat read per cgroup and cycle for memory and pagefaults
}

// familyInfo is one row of the catalog: a collector, the profiles that include it, the
// metrics it emits, and its constructor.
type familyInfo struct {
	name     string
	row      string // the seed's profile table row
	profiles []string
	metrics  []string
	// bpf: the family's cumulative series are counted in kpod's BPF maps, which start
	// counting when kpod starts (not when the cgroup was created).
	bpf   bool
	newFn func() family
}

var (
	all3     = []string{ProfileMinimal, ProfileStandard, ProfileComprehensive}
	stdComp  = []string{ProfileStandard, ProfileComprehensive}
	compOnly = []string{ProfileComprehensive}
)

// catalog is the profile table; the README's table is checked against it.
var catalog = []familyInfo{
	{name: "cpu", bpf: true, row: "CPU scheduling (eBPF)", profiles: all3, newFn: func() family { return &cpuFamily{} },
		metrics: []string{"kpod.cpu.context.switches", "kpod.cpu.runqueue.latency"}},
	{name: "tcp", bpf: true, row: "Network TCP (eBPF)", profiles: stdComp, newFn: func() family { return &tcpFamily{} },
		metrics: []string{"kpod.net.tcp.bytes.sent", "kpod.net.tcp.bytes.received", "kpod.net.tcp.connections", "kpod.net.tcp.retransmits", "kpod.net.tcp.rtt"}},
	{name: "tcpdrop", bpf: true, row: "TCP drops (eBPF)", profiles: stdComp, newFn: func() family { return &tcpFamily{drops: true} },
		metrics: []string{"kpod.net.tcp.drops"}},
	{name: "oom", bpf: true, row: "Memory OOM (eBPF)", profiles: all3, newFn: func() family { return &oomFamily{} },
		metrics: []string{"kpod.mem.oom.kills"}},
	{name: "pagefaults", row: "Memory page faults (cgroup)", profiles: stdComp, newFn: func() family { return &faultsFamily{} },
		metrics: []string{"kpod.mem.major.page.faults"}},
	{name: "biolatency", bpf: true, row: "Block I/O latency (eBPF)", profiles: stdComp, newFn: func() family { return &bioFamily{} },
		metrics: []string{"kpod.disk.io.latency"}},
	{name: "cachestat", bpf: true, row: "Page cache stats (eBPF)", profiles: stdComp, newFn: func() family { return &cacheFamily{} },
		metrics: []string{"kpod.mem.cache.accesses", "kpod.mem.cache.additions", "kpod.mem.cache.dirtied", "kpod.mem.cache.buf.dirtied"}},
	{name: "hardirqs", bpf: true, row: "Hardware IRQ latency (eBPF)", profiles: compOnly, newFn: func() family { return &hardIRQFamily{} },
		metrics: []string{"kpod.irq.hw.count", "kpod.irq.hw.latency"}},
	{name: "softirqs", bpf: true, row: "Software IRQ latency (eBPF)", profiles: compOnly, newFn: func() family { return &softIRQFamily{} },
		metrics: []string{"kpod.irq.sw.latency"}},
	{name: "proc", bpf: true, row: "Process exec/fork/exit (eBPF)", profiles: compOnly, newFn: func() family { return &procFamily{} },
		metrics: []string{"kpod.proc.forks", "kpod.proc.execs", "kpod.proc.exits"}},
	{name: "syscall", bpf: true, row: "Syscall tracing (eBPF)", profiles: compOnly, newFn: func() family { return &syscallFamily{} },
		metrics: []string{"kpod.syscall.count", "kpod.syscall.errors", "kpod.syscall.latency"}},
	{name: "diskio", row: "Disk I/O (cgroup, eBPF where cgroup files cannot count)", profiles: all3, newFn: func() family { return &diskFamily{} },
		metrics: []string{"kpod.disk.read.bytes", "kpod.disk.written.bytes", "kpod.disk.reads", "kpod.disk.writes"}},
	{name: "iface", row: "Interface network (pod netns)", profiles: stdComp, newFn: func() family { return &ifaceFamily{} },
		metrics: []string{"kpod.net.iface.rx.bytes", "kpod.net.iface.tx.bytes", "kpod.net.iface.rx.packets", "kpod.net.iface.tx.packets",
			"kpod.net.iface.rx.errors", "kpod.net.iface.tx.errors", "kpod.net.iface.rx.drops", "kpod.net.iface.tx.drops"}},
	{name: "filesystem", row: "Filesystem (container mounts)", profiles: stdComp, newFn: func() family { return &fsFamily{} },
		metrics: []string{"kpod.fs.capacity.bytes", "kpod.fs.usage.bytes", "kpod.fs.available.bytes"}},
	{name: "memory", row: "Memory cgroup", profiles: all3, newFn: func() family { return &memFamily{} },
		metrics: []string{"kpod.mem.cgroup.usage.bytes", "kpod.mem.cgroup.peak.bytes", "kpod.mem.cgroup.cache.bytes", "kpod.mem.cgroup.swap.bytes"}},
}

func familyByName(name string) (familyInfo, bool) {
	for _, f := range catalog {
		if f.name == name {
			return f, true
		}
	}
	return familyInfo{}, false
}

func familyNames() []string {
	out := make([]string, len(catalog))
	for i, f := range catalog {
		out[i] = f.name
	}
	return out
}

// errNotImplemented is the reason reported for a catalog family this build does not have.
var errNotImplemented = errors.New("not implemented in this version of kpod")
