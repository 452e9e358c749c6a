package kpodreceiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/scraper/scrapererror"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// runner is one enabled family and its bookkeeping.
type runner struct {
	info   familyInfo
	f      family // nil when unavailable
	reason string // why it is unavailable
	every  time.Duration
	last   time.Time
	// busy is set while a collect runs; one cut by the timeout may still be running in a
	// later cycle, which then does not start another.
	busy atomic.Bool

	errors, readErrors, skipped int64
	duration                    time.Duration
	snap                        snapshot // this cycle's values; nil when not collected
}

type kpodScraper struct {
	cfg      *Config
	settings receiver.Settings
	logger   *zap.Logger

	nodeName string
	started  time.Time
	env      *env
	scan     func() (*podid.Index, error) // discovers pods; tests replace it
	scanner  *podid.Scanner               // behind scan unless a test replaced it
	fakes    map[string]any               // sources tests put in place of families' (env.fakes)
	devices  *cgroupfs.DeviceNames
	runners  []*runner
	stats    io.Closer // BPF run-time statistics, when bpf_stats is on

	kube   *kube.Watcher // nil without kubernetes.enabled
	filter kube.Filter

	mb *metadata.MetricsBuilder
	hb *metadata.HistogramBuilder

	// bpfMetrics are the cumulative metrics counted in kpod's own BPF maps (they start
	// when kpod started, not when the cgroup was created).
	bpfMetrics map[string]bool

	cycleDuration    time.Duration
	cycles, timeouts int64
	pods, containers int

	now func() time.Time // the clock; tests replace it
}

func newScraper(cfg *Config, settings receiver.Settings) *kpodScraper {
	return &kpodScraper{cfg: cfg, settings: settings, logger: settings.Logger, now: time.Now}
}

// start discovers the cgroup layout and starts every enabled family. Only a host kpod cannot
// work on at all (no cgroup2) fails the start; a family that cannot start is reported as
// unavailable and the others go on.
func (s *kpodScraper) start(ctx context.Context, _ component.Host) error {
	s.started = s.now()
	procRoot := s.cfg.ProcRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	layout, err := cgroupfs.Discover(procRoot+"/self/mountinfo", s.cfg.CgroupRoot)
	if err != nil {
		return fmt.Errorf("cgroup_root: %w", err)
	}
	s.nodeName = s.cfg.NodeName
	if s.nodeName == "" {
		s.nodeName = os.Getenv("K8S_NODE_NAME")
	}
	if s.nodeName == "" {
		s.nodeName, _ = os.Hostname()
	}
	s.env = &env{layout: layout, procRoot: procRoot, sysRoot: "/sys", cfg: s.cfg, logger: s.logger,
		memstat: &cgroupfs.StatCache{}, fakes: s.fakes, nodeName: s.nodeName,
		l7Reason: "the l7 collector is not enabled (it detects the requests)"}
	s.devices = &cgroupfs.DeviceNames{SysRoot: s.env.sysRoot}
	if s.scan == nil {
		s.scanner = podid.NewScanner(layout.V2, procRoot)
		s.scan = s.scanner.Scan
	}
	s.mb = metadata.NewMetricsBuilder(s.cfg.MetricsBuilderConfig, s.settings, metadata.WithStartTime(pcommon.NewTimestampFromTime(s.started)))
	s.hb = metadata.NewHistogramBuilder(s.cfg.Histograms)

	if s.cfg.Kubernetes.Enabled {
		sel, _ := kube.ParseSelector(s.cfg.Filters.LabelSelector) // validated
		s.filter = kube.Filter{Namespaces: s.cfg.Filters.Namespaces, ExcludeNamespaces: s.cfg.Filters.ExcludeNamespaces, Selector: sel}
		kc := kube.Config{AuthType: s.cfg.Kubernetes.AuthType, KubeConfig: s.cfg.Kubernetes.KubeConfig, NodeName: s.nodeName}
		if s.kube, err = kube.Start(ctx, kc, s.cfg.Kubernetes.SyncTimeout); err != nil {
			return fmt.Errorf("kubernetes: %w", err)
		}
	}
	if s.cfg.BPFStats {
		if s.stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			s.logger.Warn("bpf_stats: cannot enable BPF run-time statistics", zap.Error(err))
		}
	}

	bpfload.SetPreallocCgroups(s.cfg.BPFPreallocCgroups)
	s.bpfMetrics = map[string]bool{}
	s.env.enabled = map[string]bool{}
	for _, name := range s.cfg.enabledFamilies() {
		s.env.enabled[name] = true
	}
	var enabled, unavailable []string
	for _, name := range s.cfg.enabledFamilies() {
		info, _ := familyByName(name)
		r := &runner{info: info, every: s.cfg.Collectors[name].Interval}
		s.runners = append(s.runners, r)
		f := info.newFn(name)
		if err := f.start(ctx, s.env); err != nil {
			r.reason = reasonText(err)
		} else {
			r.f = f
			if info.bpf || f.countsInBPF() {
				for _, m := range info.metrics {
					s.bpfMetrics[m] = true
				}
			}
		}
		if r.f == nil {
			unavailable = append(unavailable, name)
			s.logger.Warn("collector unavailable on this node", zap.String("collector", name), zap.String("reason", r.reason))
		} else {
			enabled = append(enabled, name)
		}
	}
	// Every family has loaded: the kernel BTF they shared is several MiB of resident memory
	// that no collection cycle needs.
	bpfload.ReleaseKernelBTF()
	if idx, err := s.scan(); err == nil && len(idx.Pods) == 0 {
		s.logger.Warn("no pod cgroups under the cgroup root yet; if kpod runs in a cgroup namespace, mount the host's cgroup tree and set cgroup_root to it",
			zap.String("cgroup_root", layout.V2), zap.Int("cgroups", idx.Dirs))
	}
	fields := []zap.Field{zap.String("profile", s.cfg.Profile),
		zap.Strings("collectors", enabled),
		zap.Strings("unavailable", unavailable),
		zap.String("cgroup_root", layout.V2),
		zap.String("cgroup_mode", string(layout.Mode())),
		zap.String("node", s.nodeName)}
	var prealloc uint64
	for _, r := range s.runners {
		if r.f != nil {
			for _, o := range r.f.objects() {
				prealloc += o.Prealloc
			}
		}
	}
	if prealloc > 0 { // the kernel allocated the per-CPU maps in full (before 6.1)
		fields = append(fields, zap.Int("bpf_prealloc_cgroups", bpfload.PreallocCgroups()),
			zap.Uint64("bpf_prealloc_bytes", prealloc))
	}
	s.logger.Info("kpod receiver started", fields...)
	return nil
}

func (s *kpodScraper) shutdown(context.Context) error {
	var errs []error
	for _, r := range s.runners {
		if r.f != nil {
			errs = append(errs, r.f.close())
		}
	}
	s.runners = nil
	if s.scanner != nil {
		s.scanner.Close()
	}
	cgroupfs.CloseAll()
	if s.kube != nil {
		s.kube.Stop()
	}
	if s.stats != nil {
		errs = append(errs, s.stats.Close())
	}
	return errors.Join(errs...)
}

// scrape runs one collection cycle: discover pods, run the families that are due (in
// parallel, each in its own goroutine), emit one ResourceMetrics per container (and per pod
// for pod-level series) plus the node's self-monitoring. A failing family yields a partial
// scrape error and a family still running when the cycle's timeout expires is cut; the
// others' data is kept either way.
func (s *kpodScraper) scrape(ctx context.Context) (pmetric.Metrics, error) {
	begin := s.now()
	started := time.Now()
	s.cycles++
	idx, err := s.scan()
	if err != nil {
		for _, r := range s.runners {
			r.snap = nil
		}
		s.recordNode(pcommon.NewTimestampFromTime(begin))
		return s.mb.Emit(), fmt.Errorf("discovering pods in %s: %w", s.env.layout.V2, err)
	}
	pods := s.filterPods(idx)
	s.pods, s.containers = len(idx.Pods), 0
	for _, c := range idx.Containers() {
		if !c.Sandbox {
			s.containers++
		}
	}

	var errs scrapererror.ScrapeErrors
	type result struct {
		r    *runner
		snap snapshot
		err  error
		took time.Duration
	}
	var due []*runner
	for _, r := range s.runners {
		r.snap = nil
		switch {
		case r.f == nil:
		case r.every > 0 && !r.last.IsZero() && begin.Sub(r.last) < r.every-s.cfg.CollectionInterval/2:
			r.skipped++
		case r.busy.Load():
			errs.AddPartial(1, fmt.Errorf("%s: its previous collection has not finished", r.info.name))
		default:
			due = append(due, r)
		}
	}
	results := make(chan result, len(due)) // buffered: a collect cut by the timeout never blocks
	for _, r := range due {
		r.busy.Store(true)
		r.last = begin
		go func(r *runner) {
			t0 := time.Now()
			snap, err := r.f.collect(ctx, idx)
			// Not busy before the result is handed over: the cycle may end, and the next
			// begin, as soon as it is received (a CI run: the next cycle found it busy).
			r.busy.Store(false)
			results <- result{r, snap, err, time.Since(t0)}
		}(r)
	}
	done := map[*runner]bool{}
wait:
	for len(done) < len(due) {
		select {
		case res := <-results:
			done[res.r] = true
			res.r.snap, res.r.duration = res.snap, res.took
			if res.err != nil {
				res.r.errors++
				var re collector.ReadErrors
				if errors.As(res.err, &re) {
					res.r.readErrors += int64(len(re))
				}
				errs.AddPartial(1, fmt.Errorf("%s: %w", res.r.info.name, res.err))
			}
		case <-ctx.Done():
			break wait
		}
	}
	if len(done) < len(due) {
		s.timeouts++
		for _, r := range due {
			if !done[r] {
				r.errors++
				errs.AddPartial(1, fmt.Errorf("%s: cut by the collection timeout: %w", r.info.name, ctx.Err()))
			}
		}
	}

	now := pcommon.NewTimestampFromTime(begin)
	s.emit(idx, pods, now)
	cgroupfs.CloseUnread() // the files of cgroups gone, or of families not due
	s.cycleDuration = time.Since(started)
	s.recordNode(now)
	return s.mb.Emit(), errs.Combine()
}

// filterPods applies the namespace and label filters: pods they exclude are removed from
// the index, so no family reports anything for them. Pods the API does not know yet are held
// back while the watch is synced (counters are cumulative, so nothing is lost); the returned
// map holds what the API says of the pods that stay.
func (s *kpodScraper) filterPods(idx *podid.Index) map[string]*kube.Pod {
	if s.kube == nil {
		return nil
	}
	known := map[string]*kube.Pod{}
	kept := idx.Pods[:0]
	for _, p := range idx.Pods {
		info, ok := s.kube.Pod(p.UID)
		switch {
		case ok && s.filter.Allows(info):
			known[p.UID] = info
			kept = append(kept, p)
		case !ok && !s.kube.Synced():
			kept = append(kept, p)
		}
	}
	idx.Pods = kept
	return known
}

// podLevelContainer names the container of pod-level resources, as the kubelet's "POD": no
// container can have that name (names are lowercase DNS labels). Without it, k8s_attributes
// gives a resource without container.id the name of the pod's only container with a status:
// always for a one-container pod, and for a while as a two-container pod starts (a CI run:
// one pod's interface counters as two series, with and without container "redis").
const podLevelContainer = "POD"

// emit records what the families collected in this cycle, one resource per container and
// one per pod (pod-level series such as the pod's network interfaces).
func (s *kpodScraper) emit(idx *podid.Index, pods map[string]*kube.Pod, now pcommon.Timestamp) {
	rec := &recorder{mb: s.mb, hb: s.hb, now: now, devices: s.devices}
	for _, p := range idx.Pods {
		info := pods[p.UID]
		for _, c := range p.Containers {
			if c.Sandbox {
				continue
			}
			if info != nil {
				if n, ok := info.Restarts[c.ID]; ok {
					s.mb.RecordKpodContainerRestartsDataPoint(now, int64(n))
				}
			}
			for _, r := range s.runners {
				if r.snap != nil {
					r.snap.recordContainer(rec, c)
				}
			}
			rb := s.mb.NewResourceBuilder()
			rb.SetK8sPodUID(p.UID)
			rb.SetContainerID(c.ID)
			rb.SetK8sNodeName(s.nodeName)
			s.mb.EmitForResource(metadata.WithResource(rb.Emit()), s.hb.Emit(), metadata.WithCumulativeStart(s.startOf(c.Created)))
		}
		for _, r := range s.runners {
			if r.snap != nil {
				r.snap.recordPod(rec, p)
			}
		}
		rb := s.mb.NewResourceBuilder()
		rb.SetK8sPodUID(p.UID)
		rb.SetK8sContainerName(podLevelContainer)
		rb.SetK8sNodeName(s.nodeName)
		s.mb.EmitForResource(metadata.WithResource(rb.Emit()), s.hb.Emit(), metadata.WithCumulativeStart(s.startOf(p.Created)))
	}
}

// startOf gives the start time of a cumulative series of a cgroup created at created:
// counters the kernel keeps per cgroup start with the cgroup, counters in kpod's BPF maps
// start with kpod, whichever is later.
func (s *kpodScraper) startOf(created time.Time) func(string) pcommon.Timestamp {
	kernel := pcommon.NewTimestampFromTime(created)
	bpf := kernel
	if s.started.After(created) {
		bpf = pcommon.NewTimestampFromTime(s.started)
	}
	return func(metric string) pcommon.Timestamp {
		if s.bpfMetrics[metric] {
			return bpf
		}
		return kernel
	}
}

// recordNode emits kpod's own health on a node-level resource.
func (s *kpodScraper) recordNode(now pcommon.Timestamp) {
	mb := s.mb
	mb.RecordKpodCollectionCycleDurationDataPoint(now, s.cycleDuration.Seconds())
	mb.RecordKpodCollectionCyclesDataPoint(now, s.cycles)
	mb.RecordKpodCollectionTimeoutsDataPoint(now, s.timeouts)
	mb.RecordKpodDiscoveryPodsDataPoint(now, int64(s.pods))
	mb.RecordKpodDiscoveryContainersDataPoint(now, int64(s.containers))
	for _, r := range s.runners {
		name := r.info.name
		if r.f == nil {
			mb.RecordKpodCollectorUnavailableDataPoint(now, 1, name, r.reason)
			continue
		}
		mb.RecordKpodCollectorUnavailableDataPoint(now, 0, name, "")
		missing := r.f.unavailableMetrics()
		for _, m := range sortedKeys(missing) {
			mb.RecordKpodMetricUnavailableDataPoint(now, 1, m, missing[m])
		}
		if r.snap != nil {
			r.snap.recordNode(&recorder{mb: mb, hb: s.hb, now: now, devices: s.devices})
		}
		mb.RecordKpodCollectorDurationDataPoint(now, r.duration.Seconds(), name)
		mb.RecordKpodCollectorErrorsDataPoint(now, r.errors, name)
		mb.RecordKpodCollectorSkippedDataPoint(now, r.skipped, name)
		if n := r.f.latencySample(); n > 0 {
			mb.RecordKpodCollectorLatencySampleDataPoint(now, int64(n), name)
		}
		mb.RecordKpodCgroupReadErrorsDataPoint(now, r.readErrors, name)
		for _, obj := range r.f.objects() {
			s.recordBPF(now, obj)
		}
	}
	s.emitNodeResource()
}

// emitNodeResource emits what was recorded for the node-level resource; its cumulative
// series start when kpod started.
func (s *kpodScraper) emitNodeResource() {
	rb := s.mb.NewResourceBuilder()
	rb.SetK8sNodeName(s.nodeName)
	start := pcommon.NewTimestampFromTime(s.started)
	s.mb.EmitForResource(metadata.WithResource(rb.Emit()), s.hb.Emit(),
		metadata.WithCumulativeStart(func(string) pcommon.Timestamp { return start }))
}

func (s *kpodScraper) recordBPF(now pcommon.Timestamp, obj *bpfload.Object) {
	mb := s.mb
	for _, m := range obj.MapStats() {
		mb.RecordKpodBpfMapCapacityDataPoint(now, int64(m.Capacity), m.Name)
		if m.Entries >= 0 {
			mb.RecordKpodBpfMapEntriesDataPoint(now, int64(m.Entries), m.Name)
		}
	}
	if lost, err := obj.UpdateErrors(); err == nil {
		for _, n := range sortedKeys(lost) {
			mb.RecordKpodBpfMapUpdateErrorsDataPoint(now, int64(lost[n]), n)
		}
	}
	for _, p := range obj.Programs {
		mb.RecordKpodBpfProgramLoadDurationDataPoint(now, p.LoadDuration.Seconds(), p.Name)
		if s.stats == nil {
			continue
		}
		if st, err := p.Prog.Stats(); err == nil {
			mb.RecordKpodBpfProgramRunTimeDataPoint(now, st.Runtime.Seconds(), p.Name)
			mb.RecordKpodBpfProgramRunCountDataPoint(now, int64(st.RunCount), p.Name)
		}
	}
}

// reasonText keeps unavailable reasons to one line.
func reasonText(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
