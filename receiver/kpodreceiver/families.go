package kpodreceiver

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/biolatency"
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cachestat"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/diskio"
	"github.com/kpod-project/kpod/internal/fsstat"
	"github.com/kpod-project/kpod/internal/irq"
	"github.com/kpod-project/kpod/internal/memcg"
	"github.com/kpod-project/kpod/internal/netdev"
	"github.com/kpod-project/kpod/internal/oom"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/proc"
	"github.com/kpod-project/kpod/internal/syscalls"
	"github.com/kpod-project/kpod/internal/tcp"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// Each family below is a collector handle plus a snapshot type holding one collection's
// typed values. Container snapshots embed noPod, pod snapshots embed noContainer.

type noPod struct{}

func (noPod) recordPod(*recorder, *podid.Pod) {}

type noContainer struct{}

func (noContainer) recordContainer(*recorder, *podid.Container) {}

// noBPF is embedded by families that load no BPF object.
type noBPF struct{}

func (noBPF) objects() []*bpfload.Object { return nil }
func (noBPF) close() error               { return nil }

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

type cpuFamily struct{ c *cpu.Collector }

type cpuSnap struct {
	noPod
	vals map[uint64]cpu.Stats
}

func (f *cpuFamily) start(context.Context, *env) (err error) {
	f.c, err = cpu.Start()
	return err
}

func (f *cpuFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_cpu", len(vals))
	return cpuSnap{vals: vals}, err
}

func (s cpuSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *cpu.Stats) { d.Add(s) })
	r.mb.RecordKpodCPUContextSwitchesDataPoint(r.now, int64(v.Switches))
	if v.RunQueue.Count() > 0 {
		r.hb.RecordKpodCPURunqueueLatency(r.now, histPoint(&v.RunQueue))
	}
}

func (f *cpuFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *cpuFamily) close() error               { return f.c.Close() }

// ---- oom ----

type oomFamily struct{ c *oom.Collector }

type oomSnap struct {
	noPod
	vals map[uint64]uint64
}

func (f *oomFamily) start(context.Context, *env) (err error) {
	f.c, err = oom.Start()
	return err
}

func (f *oomFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_oom", len(vals))
	return oomSnap{vals: vals}, err
}

func (s oomSnap) recordContainer(r *recorder, c *podid.Container) {
	n, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *uint64) { *d += *s })
	r.mb.RecordKpodMemOomKillsDataPoint(r.now, int64(n))
}

func (f *oomFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *oomFamily) close() error               { return f.c.Close() }

// ---- proc ----

type procFamily struct{ c *proc.Collector }

type procSnap struct {
	noPod
	vals map[uint64]proc.Stats
}

func (f *procFamily) start(context.Context, *env) (err error) {
	f.c, err = proc.Start()
	return err
}

func (f *procFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_proc", len(vals))
	return procSnap{vals: vals}, err
}

func (s procSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *proc.Stats) { d.Add(s) })
	r.mb.RecordKpodProcForksDataPoint(r.now, int64(v.Forks))
	r.mb.RecordKpodProcExecsDataPoint(r.now, int64(v.Execs))
	r.mb.RecordKpodProcExitsDataPoint(r.now, int64(v.Exits))
}

func (f *procFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *procFamily) close() error               { return f.c.Close() }

// ---- syscall ----

type syscallFamily struct{ c *syscalls.Collector }

// syscallSnap holds per cgroup id, per syscall name, the counters.
type syscallSnap struct {
	noPod
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

func (f *syscallFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	raw, err := f.c.Collect(x.Live)
	f.c.Obj.NoteEntries("kpod_sys", len(raw))
	vals := map[uint64]map[string]syscalls.Stats{}
	for k, v := range raw {
		m := vals[k.CgroupID]
		if m == nil {
			m = map[string]syscalls.Stats{}
			vals[k.CgroupID] = m
		}
		m[k.Syscall] = v
	}
	return syscallSnap{vals: vals}, err
}

func (s syscallSnap) recordContainer(r *recorder, c *podid.Container) {
	sum := map[string]*syscalls.Stats{}
	for _, id := range c.CgroupIDs {
		for name, v := range s.vals[id] {
			if sum[name] == nil {
				sum[name] = &syscalls.Stats{}
			}
			sum[name].Add(&v)
		}
	}
	for _, name := range sortedKeys(sum) {
		v := sum[name]
		r.mb.RecordKpodSyscallCountDataPoint(r.now, int64(v.Count), name)
		r.mb.RecordKpodSyscallErrorsDataPoint(r.now, int64(v.Errors), name)
		r.hb.RecordKpodSyscallLatency(r.now, histPoint(&v.Latency), name)
	}
}

func (f *syscallFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *syscallFamily) close() error               { return f.c.Close() }

// ---- diskio ----

type diskFamily struct {
	files *diskio.FileCollector
	bpf   *diskio.BPFCollector
	names *diskio.DeviceNames
}

// diskSnap holds per-device counters per cgroup id: the container's own id for file
// sources, every cgroup with I/O for the BPF source (summed over a container's cgroups).
type diskSnap struct {
	noPod
	vals  map[uint64]diskio.Stats
	bpf   bool
	names *diskio.DeviceNames
}

func (f *diskFamily) start(_ context.Context, e *env) error {
	f.names = &diskio.DeviceNames{SysRoot: e.sysRoot}
	files, ferr := diskio.NewFileCollector(e.layout)
	if ferr == nil && files.Source() == diskio.SourceIOStat {
		f.files = files
		return nil
	}
	// No v2 io controller: the v1 blkio.throttle counters stay near zero on recent kernels
	// unless a throttle limit was ever set, so count bios in the kernel instead.
	b, berr := diskio.StartBPF()
	if berr == nil {
		f.bpf = b
		return nil
	}
	if ferr != nil {
		return fmt.Errorf("no usable source: %v; %v", ferr, berr)
	}
	e.logger.Warn("diskio: BPF source unavailable, falling back to v1 blkio.throttle files, which "+
		"recent kernels keep near zero unless a throttle limit was set on the device", zap.Error(berr))
	f.files = files
	return nil
}

func (f *diskFamily) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
	if f.bpf != nil {
		vals, err := f.bpf.Collect(x.Live)
		f.bpf.Obj.NoteEntries("kpod_dio", len(vals))
		return diskSnap{vals: vals, bpf: true, names: f.names}, err
	}
	res := f.files.Collect(ctx, workloads(x))
	return diskSnap{vals: res.Values, names: f.names}, readErrors(res.Errs)
}

func (s diskSnap) recordContainer(r *recorder, c *podid.Container) {
	v := s.vals[c.CgroupID]
	if s.bpf {
		v, _ = sumOver(s.vals, c.CgroupIDs, func(d, s *diskio.Stats) { *d = d.Add(*s) })
	}
	for _, d := range sortedDevs(v) {
		io, name := v[d], s.names.Name(d)
		r.mb.RecordKpodDiskReadBytesDataPoint(r.now, int64(io.ReadBytes), name)
		r.mb.RecordKpodDiskWrittenBytesDataPoint(r.now, int64(io.WriteBytes), name)
		r.mb.RecordKpodDiskReadsDataPoint(r.now, int64(io.Reads), name)
		r.mb.RecordKpodDiskWritesDataPoint(r.now, int64(io.Writes), name)
	}
}

// countsInBPF: on hosts without a v2 io controller the counters are kpod's own.
func (f *diskFamily) countsInBPF() bool { return f.bpf != nil }

func (f *diskFamily) objects() []*bpfload.Object {
	if f.bpf != nil {
		return []*bpfload.Object{f.bpf.Obj}
	}
	return nil
}

func (f *diskFamily) close() error { return f.bpf.Close() }

// ---- memory ----

type memFamily struct {
	noBPF
	c *memcg.Collector
}

type memSnap struct {
	noPod
	vals map[uint64]memcg.Stats
}

func (f *memFamily) start(_ context.Context, e *env) error {
	if _, _, ok := e.layout.ControllerDir("memory", ""); !ok {
		return errors.New("no memory cgroup controller is mounted")
	}
	f.c = memcg.New(e.layout, e.memstat)
	return nil
}

func (f *memFamily) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
	res := f.c.Collect(ctx, x, workloads(x))
	return memSnap{vals: res.Values}, readErrors(res.Errs)
}

func (s memSnap) recordContainer(r *recorder, c *podid.Container) {
	v, ok := s.vals[c.CgroupID]
	if !ok {
		return
	}
	r.mb.RecordKpodMemCgroupUsageBytesDataPoint(r.now, int64(v.Usage))
	r.mb.RecordKpodMemCgroupCacheBytesDataPoint(r.now, int64(v.Cache))
	if v.HasPeak {
		r.mb.RecordKpodMemCgroupPeakBytesDataPoint(r.now, int64(v.Peak))
	}
	if v.HasSwap {
		r.mb.RecordKpodMemCgroupSwapBytesDataPoint(r.now, int64(v.Swap))
	}
}

// ---- pagefaults ----

type faultsFamily struct {
	noBPF
	c *memcg.FaultCollector
}

type faultsSnap struct {
	noPod
	vals map[uint64]uint64
}

func (f *faultsFamily) start(_ context.Context, e *env) error {
	if _, _, ok := e.layout.ControllerDir("memory", ""); !ok {
		return errors.New("no memory cgroup controller is mounted (major faults come from memory.stat)")
	}
	f.c = memcg.NewFaults(e.layout, e.memstat)
	return nil
}

func (f *faultsFamily) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
	res := f.c.Collect(ctx, x, workloads(x))
	return faultsSnap{vals: res.Values}, readErrors(res.Errs)
}

func (s faultsSnap) recordContainer(r *recorder, c *podid.Container) {
	if n, ok := s.vals[c.CgroupID]; ok {
		r.mb.RecordKpodMemMajorPageFaultsDataPoint(r.now, int64(n))
	}
}

// ---- iface ----

type ifaceFamily struct {
	noBPF
	c *netdev.Collector
}

// ifaceSnap holds interface counters per pod cgroup id (one network namespace per pod).
type ifaceSnap struct {
	noContainer
	vals map[uint64]netdev.Stats
}

func (f *ifaceFamily) start(_ context.Context, e *env) error {
	f.c = netdev.New(e.procRoot, e.layout.V2)
	return nil
}

func (f *ifaceFamily) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
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
	return ifaceSnap{vals: res.Values}, readErrors(res.Errs)
}

func (s ifaceSnap) recordPod(r *recorder, p *podid.Pod) {
	v := s.vals[p.CgroupID]
	for _, name := range sortedKeys(v) {
		c := v[name]
		r.mb.RecordKpodNetIfaceRxBytesDataPoint(r.now, int64(c.RxBytes), name)
		r.mb.RecordKpodNetIfaceTxBytesDataPoint(r.now, int64(c.TxBytes), name)
		r.mb.RecordKpodNetIfaceRxPacketsDataPoint(r.now, int64(c.RxPackets), name)
		r.mb.RecordKpodNetIfaceTxPacketsDataPoint(r.now, int64(c.TxPackets), name)
		r.mb.RecordKpodNetIfaceRxErrorsDataPoint(r.now, int64(c.RxErrors), name)
		r.mb.RecordKpodNetIfaceTxErrorsDataPoint(r.now, int64(c.TxErrors), name)
		r.mb.RecordKpodNetIfaceRxDropsDataPoint(r.now, int64(c.RxDrops), name)
		r.mb.RecordKpodNetIfaceTxDropsDataPoint(r.now, int64(c.TxDrops), name)
	}
}

// ---- filesystem ----

type fsFamily struct {
	noBPF
	c *fsstat.Collector
}

type fsSnap struct {
	noPod
	vals map[uint64]fsstat.Stats
}

func (f *fsFamily) start(_ context.Context, e *env) error {
	f.c = fsstat.New(e.procRoot, e.layout.V2)
	return nil
}

func (f *fsFamily) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
	res := f.c.Collect(ctx, workloads(x))
	return fsSnap{vals: res.Values}, readErrors(res.Errs)
}

func (s fsSnap) recordContainer(r *recorder, c *podid.Container) {
	v := s.vals[c.CgroupID]
	for _, mp := range sortedKeys(v) {
		u := v[mp]
		r.mb.RecordKpodFsCapacityBytesDataPoint(r.now, int64(u.Capacity), mp)
		r.mb.RecordKpodFsUsageBytesDataPoint(r.now, int64(u.Used), mp)
		r.mb.RecordKpodFsAvailableBytesDataPoint(r.now, int64(u.Available), mp)
	}
}

// ---- tcp and tcpdrop ----

type tcpFamily struct {
	c     *tcp.Collector
	drops bool // the "tcpdrop" family: only Drops is filled
}

type tcpSnap struct {
	noPod
	vals  map[uint64]tcp.Stats
	drops bool
}

func (f *tcpFamily) start(context.Context, *env) (err error) {
	if f.drops {
		f.c, err = tcp.StartDrops()
	} else {
		f.c, err = tcp.Start()
	}
	return err
}

func (f *tcpFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	return tcpSnap{vals: vals, drops: f.drops}, err
}

func (s tcpSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *tcp.Stats) { d.Add(s) })
	s.record(r, v)
}

// recordNode reports drops no pod owns (packets without a socket, kernel sockets).
func (s tcpSnap) recordNode(r *recorder) {
	if s.drops {
		s.record(r, s.vals[tcp.NodeCgroup])
	}
}

func (s tcpSnap) record(r *recorder, v tcp.Stats) {
	if s.drops {
		for _, reason := range sortedKeys(v.Drops) {
			r.mb.RecordKpodNetTCPDropsDataPoint(r.now, int64(v.Drops[reason]), reason)
		}
		return
	}
	r.mb.RecordKpodNetTCPBytesSentDataPoint(r.now, int64(v.BytesSent))
	r.mb.RecordKpodNetTCPBytesReceivedDataPoint(r.now, int64(v.BytesReceived))
	r.mb.RecordKpodNetTCPConnectionsDataPoint(r.now, int64(v.ConnsActive), metadata.AttributeDirectionActive)
	r.mb.RecordKpodNetTCPConnectionsDataPoint(r.now, int64(v.ConnsPassive), metadata.AttributeDirectionPassive)
	r.mb.RecordKpodNetTCPRetransmitsDataPoint(r.now, int64(v.Retransmits))
	if v.RTT.Count() > 0 {
		r.hb.RecordKpodNetTCPRtt(r.now, histPoint(&v.RTT))
	}
}

func (f *tcpFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *tcpFamily) close() error               { return f.c.Close() }

// ---- biolatency ----

type bioFamily struct {
	c     *biolatency.Collector
	names *diskio.DeviceNames
}

type bioSnap struct {
	noPod
	vals  map[uint64]biolatency.Stats
	names *diskio.DeviceNames
}

func (f *bioFamily) start(_ context.Context, e *env) (err error) {
	f.names = &diskio.DeviceNames{SysRoot: e.sysRoot}
	f.c, err = biolatency.Start()
	return err
}

func (f *bioFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	return bioSnap{vals: vals, names: f.names}, err
}

func (s bioSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *biolatency.Stats) { *d = d.Add(*s) })
	for _, dev := range sortedDevs(v) {
		h := v[dev]
		r.hb.RecordKpodDiskIoLatency(r.now, histPoint(&h), s.names.Name(dev))
	}
}

func (f *bioFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *bioFamily) close() error               { return f.c.Close() }

// ---- cachestat ----

type cacheFamily struct{ c *cachestat.Collector }

type cacheSnap struct {
	noPod
	vals     map[uint64]cachestat.Stats
	accesses bool // folio_mark_accessed could be hooked
}

func (f *cacheFamily) start(_ context.Context, e *env) (err error) {
	f.c, err = cachestat.Start()
	if err == nil && f.c.AccessesUnavailable() != "" {
		e.logger.Warn("cachestat: kpod.mem.cache.accesses is unavailable on this kernel", zap.String("reason", f.c.AccessesUnavailable()))
	}
	return err
}

func (f *cacheFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	return cacheSnap{vals: vals, accesses: f.c.AccessesUnavailable() == ""}, err
}

func (s cacheSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *cachestat.Stats) { d.Add(s) })
	r.mb.RecordKpodMemCacheAdditionsDataPoint(r.now, int64(v.Added))
	r.mb.RecordKpodMemCacheDirtiedDataPoint(r.now, int64(v.Dirtied))
	r.mb.RecordKpodMemCacheBufDirtiedDataPoint(r.now, int64(v.BuffersDirtied))
	if s.accesses {
		r.mb.RecordKpodMemCacheAccessesDataPoint(r.now, int64(v.Accessed))
	}
}

func (f *cacheFamily) unavailableMetrics() map[string]string {
	if why := f.c.AccessesUnavailable(); why != "" {
		return map[string]string{"kpod.mem.cache.accesses": why}
	}
	return nil
}

func (f *cacheFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *cacheFamily) close() error               { return f.c.Close() }

// ---- hardirqs ----

type hardIRQFamily struct{ c *irq.HardCollector }

// hardIRQSnap holds IRQ time per interrupted cgroup; irq.NodeID holds the time taken from
// the idle task and kernel threads, reported on the node resource.
type hardIRQSnap struct {
	noPod
	vals map[uint64]irq.HardStats
}

func (f *hardIRQFamily) start(context.Context, *env) (err error) {
	f.c, err = irq.StartHard()
	return err
}

func (f *hardIRQFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	return hardIRQSnap{vals: vals}, err
}

func (s hardIRQSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *irq.HardStats) { d.Add(s) })
	s.record(r, v)
}

func (s hardIRQSnap) recordNode(r *recorder) { s.record(r, s.vals[irq.NodeID]) }

func (s hardIRQSnap) record(r *recorder, v irq.HardStats) {
	r.mb.RecordKpodIrqHwCountDataPoint(r.now, int64(v.Count))
	if v.Latency.Count() > 0 {
		r.hb.RecordKpodIrqHwLatency(r.now, histPoint(&v.Latency))
	}
}

func (f *hardIRQFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *hardIRQFamily) close() error               { return f.c.Close() }

// ---- softirqs ----

type softIRQFamily struct{ c *irq.SoftCollector }

type softIRQSnap struct {
	noPod
	vals map[uint64]irq.SoftStats
}

func (f *softIRQFamily) start(context.Context, *env) (err error) {
	f.c, err = irq.StartSoft()
	return err
}

func (f *softIRQFamily) collect(_ context.Context, x *podid.Index) (snapshot, error) {
	vals, err := f.c.Collect(x.Live)
	return softIRQSnap{vals: vals}, err
}

func (s softIRQSnap) recordContainer(r *recorder, c *podid.Container) {
	v, _ := sumOver(s.vals, c.CgroupIDs, func(d, s *irq.SoftStats) { *d = d.Add(*s) })
	s.record(r, v)
}

func (s softIRQSnap) recordNode(r *recorder) { s.record(r, s.vals[irq.NodeID]) }

func (s softIRQSnap) record(r *recorder, v irq.SoftStats) {
	vecs := make([]uint32, 0, len(v))
	for vec := range v {
		vecs = append(vecs, vec)
	}
	sort.Slice(vecs, func(i, j int) bool { return vecs[i] < vecs[j] })
	for _, vec := range vecs {
		h := v[vec]
		r.hb.RecordKpodIrqSwLatency(r.now, histPoint(&h), irq.VectorName(vec))
	}
}

func (f *softIRQFamily) objects() []*bpfload.Object { return []*bpfload.Object{f.c.Obj} }
func (f *softIRQFamily) close() error               { return f.c.Close() }

func sortedDevs[V any](m map[cgroupfs.Dev]V) []cgroupfs.Dev {
	devs := make([]cgroupfs.Dev, 0, len(m))
	for d := range m {
		devs = append(devs, d)
	}
	sort.Slice(devs, func(i, j int) bool {
		return devs[i].Major < devs[j].Major || devs[i].Major == devs[j].Major && devs[i].Minor < devs[j].Minor
	})
	return devs
}

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
