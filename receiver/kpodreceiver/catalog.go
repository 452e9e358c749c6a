package kpodreceiver

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
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

// bpfCounted is implemented by families whose cumulative series are counted in kpod's BPF
// maps, which start counting when kpod starts.
type bpfCounted interface{ bpfMetrics() []string }

// env is what families need from the host.
type env struct {
	layout   cgroupfs.Layout
	procRoot string
	sysRoot  string
	syscalls []string
	logger   *zap.Logger
}

// familyInfo is one row of the catalog: a collector, the profiles that include it, and its
// constructor (nil while this build has no implementation).
type familyInfo struct {
	name     string
	row      string // the seed's profile table row
	profiles []string
	newFn    func() family
}

var (
	all3     = []string{ProfileMinimal, ProfileStandard, ProfileComprehensive}
	stdComp  = []string{ProfileStandard, ProfileComprehensive}
	compOnly = []string{ProfileComprehensive}
)

// catalog is the profile table; the README's table is this one.
var catalog = []familyInfo{
	{name: "cpu", row: "CPU scheduling (eBPF)", profiles: all3, newFn: func() family { return &cpuFamily{} }},
	{name: "tcp", row: "Network TCP (eBPF)", profiles: stdComp, newFn: func() family { return &tcpFamily{} }},
	{name: "tcpdrop", row: "TCP drops (eBPF)", profiles: stdComp, newFn: func() family { return &tcpFamily{drops: true} }},
	{name: "oom", row: "Memory OOM (eBPF)", profiles: all3, newFn: func() family { return &oomFamily{} }},
	{name: "pagefaults", row: "Memory page faults (cgroup)", profiles: stdComp, newFn: func() family { return &faultsFamily{} }},
	{name: "biolatency", row: "Block I/O latency (eBPF)", profiles: stdComp, newFn: func() family { return &bioFamily{} }},
	{name: "cachestat", row: "Page cache stats (eBPF)", profiles: stdComp, newFn: func() family { return &cacheFamily{} }},
	{name: "hardirqs", row: "Hardware IRQ latency (eBPF)", profiles: compOnly, newFn: func() family { return &hardIRQFamily{} }},
	{name: "softirqs", row: "Software IRQ latency (eBPF)", profiles: compOnly, newFn: func() family { return &softIRQFamily{} }},
	{name: "proc", row: "Process exec/fork/exit (eBPF)", profiles: compOnly, newFn: func() family { return &procFamily{} }},
	{name: "syscall", row: "Syscall tracing (eBPF)", profiles: compOnly, newFn: func() family { return &syscallFamily{} }},
	{name: "diskio", row: "Disk I/O (cgroup, eBPF where cgroup files cannot count)", profiles: all3, newFn: func() family { return &diskFamily{} }},
	{name: "iface", row: "Interface network (pod netns)", profiles: stdComp, newFn: func() family { return &ifaceFamily{} }},
	{name: "filesystem", row: "Filesystem (container mounts)", profiles: stdComp, newFn: func() family { return &fsFamily{} }},
	{name: "memory", row: "Memory cgroup", profiles: all3, newFn: func() family { return &memFamily{} }},
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
