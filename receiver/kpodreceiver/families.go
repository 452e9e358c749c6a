package kpodreceiver

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/diskio"
	"github.com/kpod-project/kpod/internal/fsstat"
	"github.com/kpod-project/kpod/internal/memcg"
	"github.com/kpod-project/kpod/internal/netdev"
	"github.com/kpod-project/kpod/internal/oom"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/proc"
	"github.com/kpod-project/kpod/internal/syscalls"
)

// bpfCounted is implemented by families whose cumulative series are counted in kpod's BPF
// maps, which start counting when kpod starts.
type bpfCounted interface{ bpfMetrics() []string }

// family adapts one collector (internal/<family>, which returns typed values per cgroup id)
// to the scraper: collect fills the family's values for this cycle, the record methods turn
// them into data points for one resource, reset drops them after the cycle so that a
// skipped cycle re-emits nothing.
type family interface {
	start(ctx context.Context, e *env) error
	collect(ctx context.Context, x *podid.Index) error
	recordContainer(r *recorder, c *podid.Container)
	recordPod(r *recorder, p *podid.Pod)
	reset()
	objects() []*bpfload.Object
	close() error
}

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
	bpf      bool // whether its counters are kept by kpod's BPF maps (start = kpod start)
	newFn    func() family
}

var (
	all3     = []string{ProfileMinimal, ProfileStandard, ProfileComprehensive}
	stdComp  = []string{ProfileStandard, ProfileComprehensive}
	compOnly = []string{ProfileComprehensive}
)

// catalog is the profile table; the README's table is this one.
var catalog = []familyInfo{
	{name: "cpu", row: "CPU scheduling (eBPF)", profiles: all3, bpf: true, newFn: func() family { return &cpuFamily{} }},
	{name: "tcp", row: "Network TCP (eBPF)", profiles: stdComp, bpf: true},
	{name: "tcpdrop", row: "TCP drops (eBPF)", profiles: stdComp, bpf: true},
	{name: "oom", row: "Memory OOM (eBPF)", profiles: all3, bpf: true, newFn: func() family { return &oomFamily{} }},
	{name: "pagefaults", row: "Memory page faults (cgroup)", profiles: stdComp, newFn: func() family { return &faultsFamily{} }},
	{name: "biolatency", row: "Block I/O latency (eBPF)", profiles: stdComp, bpf: true},
	{name: "cachestat", row: "Page cache stats (eBPF)", profiles: stdComp, bpf: true},
	{name: "hardirqs", row: "Hardware IRQ latency (eBPF)", profiles: compOnly, bpf: true},
	{name: "softirqs", row: "Software IRQ latency (eBPF)", profiles: compOnly, bpf: true},
	{name: "proc", row: "Process exec/fork/exit (eBPF)", profiles: compOnly, bpf: true, newFn: func() family { return &procFamily{} }},
	{name: "syscall", row: "Syscall tracing (eBPF)", profiles: compOnly, bpf: true, newFn: func() family { return &syscallFamily{} }},
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

// base gives families the methods they do not need.
type base struct{}

func (base) recordContainer(*recorder, *podid.Container) {}
func (base) recordPod(*recorder, *podid.Pod)             {}
func (base) objects() []*bpfload.Object                  { return nil }
func (base) close() error                                { return nil }

// workloads are the containers whose metrics are reported: every container but sandboxes.
func workloads(x *podid.Index) []collector.Target {
	var out []collector.Target
	for _, c := range x.Containers() {
		if !c.Sandbox {
			out = append(out, collector.Target{ID: c.CgroupID, Rel: c.Rel})
		}
	}
	return out
}

// sumOver adds up a BPF family's values over the cgroup ids of one container (its own and
// any child cgroup's).
func sumOver[V any](m map[uint64]V, ids []uint64, add func(dst, src *V)) (V, bool) {
	var sum V
	found := false
	for _, id := range ids {
		if v, ok := m[id]; ok {
			add(&sum, &v)
			found = true
		}
	}
	return sum, found
}

// ---- cpu ----

type cpuFamily struct {
	base
	c    *cpu.Collector
	vals map[uint64]cpu.Stats
}

func (f *cpuFamily) start(context.Context, *env) (err error) {
	f.c, err = cpu.Start()
	return err
}

func (f *cpuFamily) collect(_ context.Context, x *podid.Index) (err error) {
	f.vals, err = f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_cpu", len(f.vals))
	return err
}

func (f *cpuFamily) recordContainer(r *recorder, c *podid.Container) {
	if f.vals == nil {
		return
	}
	s, _ := sumOver(f.vals, c.CgroupIDs, func(d, s *cpu.Stats) { d.Add(s) })
	r.mb.RecordKpodCPUContextSwitchesDataPoint(r.now, int64(s.Switches))
	if s.RunQueue.Count() > 0 {
		r.hb.RecordKpodCPURunqueueLatency(r.now, histPoint(&s.RunQueue))
	}
}

func (f *cpuFamily) bpfMetrics() []string {
	return []string{"kpod.cpu.context.switches", "kpod.cpu.runqueue.latency"}
}
func (f *cpuFamily) reset()                     { f.vals = nil }
func (f *cpuFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *cpuFamily) close() error               { return f.c.Close() }

// ---- oom ----

type oomFamily struct {
	base
	c    *oom.Collector
	vals map[uint64]uint64
}

func (f *oomFamily) start(context.Context, *env) (err error) {
	f.c, err = oom.Start()
	return err
}

func (f *oomFamily) collect(_ context.Context, x *podid.Index) (err error) {
	f.vals, err = f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_oom", len(f.vals))
	return err
}

func (f *oomFamily) recordContainer(r *recorder, c *podid.Container) {
	if f.vals == nil {
		return
	}
	n, _ := sumOver(f.vals, c.CgroupIDs, func(d, s *uint64) { *d += *s })
	r.mb.RecordKpodMemOomKillsDataPoint(r.now, int64(n))
}

func (f *oomFamily) bpfMetrics() []string       { return []string{"kpod.mem.oom.kills"} }
func (f *oomFamily) reset()                     { f.vals = nil }
func (f *oomFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *oomFamily) close() error               { return f.c.Close() }

// ---- proc ----

type procFamily struct {
	base
	c    *proc.Collector
	vals map[uint64]proc.Stats
}

func (f *procFamily) start(context.Context, *env) (err error) {
	f.c, err = proc.Start()
	return err
}

func (f *procFamily) collect(_ context.Context, x *podid.Index) (err error) {
	f.vals, err = f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_proc", len(f.vals))
	return err
}

func (f *procFamily) recordContainer(r *recorder, c *podid.Container) {
	if f.vals == nil {
		return
	}
	s, _ := sumOver(f.vals, c.CgroupIDs, func(d, s *proc.Stats) { d.Add(s) })
	r.mb.RecordKpodProcForksDataPoint(r.now, int64(s.Forks))
	r.mb.RecordKpodProcExecsDataPoint(r.now, int64(s.Execs))
	r.mb.RecordKpodProcExitsDataPoint(r.now, int64(s.Exits))
}

func (f *procFamily) bpfMetrics() []string {
	return []string{"kpod.proc.forks", "kpod.proc.execs", "kpod.proc.exits"}
}
func (f *procFamily) reset()                     { f.vals = nil }
func (f *procFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *procFamily) close() error               { return f.c.Close() }

// ---- syscall ----

type syscallFamily struct {
	base
	c *syscalls.Collector
	// per cgroup id, per syscall name
	vals map[uint64]map[string]syscalls.Stats
}

func (f *syscallFamily) start(_ context.Context, e *env) (err error) {
	tracked, missing := syscalls.Resolve(e.syscalls)
	if len(missing) > 0 {
		e.logger.Info("syscall collector: these system calls do not exist on this architecture and are not tracked",
			zap.Strings("syscalls", missing), zap.String("arch", syscalls.Arch))
	}
	f.c, err = syscalls.Start(tracked)
	return err
}

func (f *syscallFamily) collect(_ context.Context, x *podid.Index) error {
	raw, err := f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_sys", len(raw))
	f.vals = map[uint64]map[string]syscalls.Stats{}
	for k, v := range raw {
		m := f.vals[k.CgroupID]
		if m == nil {
			m = map[string]syscalls.Stats{}
			f.vals[k.CgroupID] = m
		}
		m[k.Syscall] = v
	}
	return err
}

func (f *syscallFamily) recordContainer(r *recorder, c *podid.Container) {
	sum := map[string]*syscalls.Stats{}
	for _, id := range c.CgroupIDs {
		for name, v := range f.vals[id] {
			if sum[name] == nil {
				sum[name] = &syscalls.Stats{}
			}
			sum[name].Add(&v)
		}
	}
	for _, name := range sortedKeys(sum) {
		s := sum[name]
		r.mb.RecordKpodSyscallCountDataPoint(r.now, int64(s.Count), name)
		r.mb.RecordKpodSyscallErrorsDataPoint(r.now, int64(s.Errors), name)
		r.hb.RecordKpodSyscallLatency(r.now, histPoint(&s.Latency), name)
	}
}

func (f *syscallFamily) bpfMetrics() []string {
	return []string{"kpod.syscall.count", "kpod.syscall.errors", "kpod.syscall.latency"}
}
func (f *syscallFamily) reset()                     { f.vals = nil }
func (f *syscallFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *syscallFamily) close() error               { return f.c.Close() }

// ---- diskio ----

type diskFamily struct {
	base
	files  *diskio.FileCollector
	bpf    *diskio.BPFCollector
	source diskio.Source
	names  *diskio.DeviceNames
	vals   map[uint64]diskio.Stats
}

func (f *diskFamily) start(_ context.Context, e *env) error {
	f.names = &diskio.DeviceNames{SysRoot: e.sysRoot}
	files, ferr := diskio.NewFileCollector(e.layout)
	if ferr == nil && files.Source() == diskio.SourceIOStat {
		f.files, f.source = files, diskio.SourceIOStat
		return nil
	}
	// No v2 io controller: the v1 blkio.throttle counters stay near zero on recent kernels
	// unless a throttle limit was ever set, so count bios in the kernel instead.
	b, berr := diskio.StartBPF()
	if berr == nil {
		f.bpf, f.source = b, diskio.SourceBPF
		return nil
	}
	if ferr != nil {
		return fmt.Errorf("no usable source: %v; %v", ferr, berr)
	}
	e.logger.Warn("diskio: BPF source unavailable, falling back to v1 blkio.throttle files, which "+
		"recent kernels keep near zero unless a throttle limit was set on the device", zap.Error(berr))
	f.files, f.source = files, diskio.SourceBlkio
	return nil
}

func (f *diskFamily) collect(ctx context.Context, x *podid.Index) error {
	if f.bpf != nil {
		var err error
		f.vals, err = f.bpf.Collect(x.Live)
		f.bpf.Obj.NoteEntries("kpod_dio", len(f.vals))
		return err
	}
	res := f.files.Collect(ctx, workloads(x))
	f.vals = res.Values
	return readErrors(res.Errs)
}

func (f *diskFamily) recordContainer(r *recorder, c *podid.Container) {
	var s diskio.Stats
	if f.bpf != nil {
		s, _ = sumOver(f.vals, c.CgroupIDs, func(d, s *diskio.Stats) { *d = d.Add(*s) })
	} else {
		s = f.vals[c.CgroupID]
	}
	devs := make([]cgroupfs.Dev, 0, len(s))
	for d := range s {
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool {
		return devs[i].Major < devs[j].Major || devs[i].Major == devs[j].Major && devs[i].Minor < devs[j].Minor
	})
	for _, d := range devs {
		v, name := s[d], f.names.Name(d)
		r.mb.RecordKpodDiskReadBytesDataPoint(r.now, int64(v.ReadBytes), name)
		r.mb.RecordKpodDiskWrittenBytesDataPoint(r.now, int64(v.WriteBytes), name)
		r.mb.RecordKpodDiskReadsDataPoint(r.now, int64(v.Reads), name)
		r.mb.RecordKpodDiskWritesDataPoint(r.now, int64(v.Writes), name)
	}
}

func (f *diskFamily) reset() { f.vals = nil }

func (f *diskFamily) bpfMetrics() []string {
	if f.bpf == nil {
		return nil
	}
	return []string{"kpod.disk.read.bytes", "kpod.disk.written.bytes", "kpod.disk.reads", "kpod.disk.writes"}
}

func (f *diskFamily) objects() []*bpfload.Object {
	if f.bpf != nil {
		return []*bpfload.Object{f.bpf.Obj}
	}
	return nil
}

func (f *diskFamily) close() error {
	if f.bpf != nil {
		return f.bpf.Close()
	}
	return nil
}

// ---- memory ----

type memFamily struct {
	base
	c    *memcg.Collector
	vals map[uint64]memcg.Stats
}

func (f *memFamily) start(_ context.Context, e *env) error {
	if _, _, ok := e.layout.ControllerDir("memory", ""); !ok {
		return errors.New("no memory cgroup controller is mounted")
	}
	f.c = memcg.New(e.layout)
	return nil
}

func (f *memFamily) collect(ctx context.Context, x *podid.Index) error {
	res := f.c.Collect(ctx, workloads(x))
	f.vals = res.Values
	return readErrors(res.Errs)
}

func (f *memFamily) recordContainer(r *recorder, c *podid.Container) {
	s, ok := f.vals[c.CgroupID]
	if !ok {
		return
	}
	r.mb.RecordKpodMemCgroupUsageBytesDataPoint(r.now, int64(s.Usage))
	r.mb.RecordKpodMemCgroupCacheBytesDataPoint(r.now, int64(s.Cache))
	if s.HasPeak {
		r.mb.RecordKpodMemCgroupPeakBytesDataPoint(r.now, int64(s.Peak))
	}
	if s.HasSwap {
		r.mb.RecordKpodMemCgroupSwapBytesDataPoint(r.now, int64(s.Swap))
	}
}

func (f *memFamily) reset() { f.vals = nil }

// ---- pagefaults ----

type faultsFamily struct {
	base
	c    *memcg.FaultCollector
	vals map[uint64]uint64
}

func (f *faultsFamily) start(_ context.Context, e *env) error {
	if _, _, ok := e.layout.ControllerDir("memory", ""); !ok {
		return errors.New("no memory cgroup controller is mounted (major faults come from memory.stat)")
	}
	f.c = memcg.NewFaults(e.layout)
	return nil
}

func (f *faultsFamily) collect(ctx context.Context, x *podid.Index) error {
	res := f.c.Collect(ctx, workloads(x))
	f.vals = res.Values
	return readErrors(res.Errs)
}

func (f *faultsFamily) recordContainer(r *recorder, c *podid.Container) {
	if n, ok := f.vals[c.CgroupID]; ok {
		r.mb.RecordKpodMemMajorPageFaultsDataPoint(r.now, int64(n))
	}
}

func (f *faultsFamily) reset() { f.vals = nil }

// ---- iface ----

type ifaceFamily struct {
	base
	c    *netdev.Collector
	vals map[uint64]netdev.Stats
}

func (f *ifaceFamily) start(_ context.Context, e *env) error {
	f.c = netdev.New(e.procRoot, e.layout.V2)
	return nil
}

func (f *ifaceFamily) collect(ctx context.Context, x *podid.Index) error {
	var pods []netdev.PodTarget
	for _, p := range x.Pods {
		t := netdev.PodTarget{ID: p.CgroupID, Rel: p.Rel}
		for _, c := range p.Containers { // the sandbox holds the namespace: look there first
			if c.Sandbox {
				t.ContainerRels = append([]string{c.Rel}, t.ContainerRels...)
			} else {
				t.ContainerRels = append(t.ContainerRels, c.Rel)
			}
		}
		pods = append(pods, t)
	}
	res := f.c.Collect(ctx, pods)
	f.vals = res.Values
	return readErrors(res.Errs)
}

func (f *ifaceFamily) recordPod(r *recorder, p *podid.Pod) {
	s := f.vals[p.CgroupID]
	for _, name := range sortedKeys(s) {
		v := s[name]
		r.mb.RecordKpodNetIfaceRxBytesDataPoint(r.now, int64(v.RxBytes), name)
		r.mb.RecordKpodNetIfaceTxBytesDataPoint(r.now, int64(v.TxBytes), name)
		r.mb.RecordKpodNetIfaceRxPacketsDataPoint(r.now, int64(v.RxPackets), name)
		r.mb.RecordKpodNetIfaceTxPacketsDataPoint(r.now, int64(v.TxPackets), name)
		r.mb.RecordKpodNetIfaceRxErrorsDataPoint(r.now, int64(v.RxErrors), name)
		r.mb.RecordKpodNetIfaceTxErrorsDataPoint(r.now, int64(v.TxErrors), name)
		r.mb.RecordKpodNetIfaceRxDropsDataPoint(r.now, int64(v.RxDrops), name)
		r.mb.RecordKpodNetIfaceTxDropsDataPoint(r.now, int64(v.TxDrops), name)
	}
}

func (f *ifaceFamily) reset() { f.vals = nil }

// ---- filesystem ----

type fsFamily struct {
	base
	c    *fsstat.Collector
	vals map[uint64]fsstat.Stats
}

func (f *fsFamily) start(_ context.Context, e *env) error {
	f.c = fsstat.New(e.procRoot, e.layout.V2)
	return nil
}

func (f *fsFamily) collect(ctx context.Context, x *podid.Index) error {
	res := f.c.Collect(ctx, workloads(x))
	f.vals = res.Values
	return readErrors(res.Errs)
}

func (f *fsFamily) recordContainer(r *recorder, c *podid.Container) {
	s := f.vals[c.CgroupID]
	for _, mp := range sortedKeys(s) {
		u := s[mp]
		r.mb.RecordKpodFsCapacityBytesDataPoint(r.now, int64(u.Capacity), mp)
		r.mb.RecordKpodFsUsageBytesDataPoint(r.now, int64(u.Used), mp)
		r.mb.RecordKpodFsAvailableBytesDataPoint(r.now, int64(u.Available), mp)
	}
}

func (f *fsFamily) reset() { f.vals = nil }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readErrors marks errors as cgroup/proc file read errors (counted in kpod.cgroup.read.errors).
func readErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &fileErrors{errs: errs}
}

type fileErrors struct{ errs []error }

func (e *fileErrors) Error() string   { return errors.Join(e.errs...).Error() }
func (e *fileErrors) Unwrap() []error { return e.errs }
