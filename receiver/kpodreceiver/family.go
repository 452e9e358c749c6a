package kpodreceiver

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// The contract between the scraper and a metric family. A family is one file,
// family_<name>.go: its catalog row (familyInfo) and the functions that record its values.
// Its collector lives in internal/<name> and returns typed values per cgroup id; only the
// record functions here touch pdata.

// familyInfo is one row of the catalog: a collector, the profiles that include it, the
// metrics it emits, and how to build it.
type familyInfo struct {
	name     string
	profiles []string
	metrics  []string
	// bpf: the family's cumulative series are counted in kpod's BPF maps, which start
	// counting when kpod starts (not when the cgroup was created). A source may also say so
	// at run time (countsInBPF).
	bpf bool
	// options are the keys of collectors.<name> this family takes besides enabled and
	// interval.
	options []string
	// spec is the BPF object the family loads (on some hosts only, for diskio); nil for
	// families that read files only. Tests and benchmarks read it.
	spec  func() bpfload.Spec
	newFn func(name string) family
}

// family is one enabled family as the scraper runs it. collect returns this cycle's values
// as a snapshot; a snapshot is owned by the cycle that asked for it, so a collect that
// overruns the cycle's timeout can finish later without racing with anything.
type family interface {
	start(ctx context.Context, e *env) error
	collect(ctx context.Context, x *podid.Index) (snapshot, error)
	objects() []*bpfload.Object
	// unavailableMetrics: metric name → why this kernel cannot give it (the family runs
	// without it; kpod.metric.unavailable).
	unavailableMetrics() map[string]string
	countsInBPF() bool
	// latencySample is n of a family that times events in windows, 1/n of the time (0: the
	// family has no windows).
	latencySample() uint32
	close() error
}

// sampler is a source that times events in latency windows (internal/window).
type sampler interface{ LatencySample() uint32 }

// snapshot is one collection's values, recorded per container, per pod and for the node.
type snapshot interface {
	recordContainer(r *recorder, c *podid.Container)
	recordPod(r *recorder, p *podid.Pod)
	recordNode(r *recorder)
}

// source is what internal/<name> provides (or, in tests, a fake): typed values per cgroup
// id, and the BPF objects it loaded.
type source[V any] interface {
	Collect(ctx context.Context, x *podid.Index) (map[uint64]V, error)
	Objects() []*bpfload.Object
	Close() error
}

// env is what families need from the host.
type env struct {
	layout   cgroupfs.Layout
	procRoot string
	sysRoot  string
	cfg      *Config
	logger   *zap.Logger
	memstat  *cgroupfs.StatCache // one memory.stat read per cgroup and cycle for memory and pagefaults
	nodeName string
	enabled  map[string]bool // the collectors the configuration turns on
	// l7 is the l7 family's object once it started (the topology family reads its edge
	// map); l7Reason says why there is none.
	l7       *bpfload.Collector
	l7Reason string
	// fakes replace a family's source by name (golden tests fake the BPF maps and cgroup
	// files at this boundary and run everything else for real).
	fakes map[string]any
}

// records says how a family's values become series, per level; a nil level records nothing.
type records[V any] struct {
	container func(r *recorder, c *podid.Container, vals map[uint64]V)
	pod       func(r *recorder, p *podid.Pod, vals map[uint64]V)
	node      func(r *recorder, vals map[uint64]V)
}

// adapt builds a catalog row's constructor: the family opens its source with open and
// records with rec.
func adapt[V any](open func(*env) (source[V], error), rec records[V]) func(string) family {
	return func(name string) family { return &adapter[V]{name: name, open: open, rec: rec} }
}

// adapter is the one family implementation: a source and its record functions.
type adapter[V any] struct {
	name string
	open func(*env) (source[V], error)
	rec  records[V]
	src  source[V]
}

func (a *adapter[V]) start(_ context.Context, e *env) error {
	if f, ok := e.fakes[a.name]; ok {
		a.src = f.(source[V])
		return nil
	}
	src, err := a.open(e) // on error nothing stays loaded
	if err != nil {
		return err
	}
	a.src = src
	return nil
}

func (a *adapter[V]) collect(ctx context.Context, x *podid.Index) (snapshot, error) {
	vals, err := a.src.Collect(ctx, x)
	return snap[V]{rec: &a.rec, vals: vals}, err
}

func (a *adapter[V]) objects() []*bpfload.Object { return a.src.Objects() }

func (a *adapter[V]) unavailableMetrics() map[string]string {
	if p, ok := a.src.(interface{ UnavailableMetrics() map[string]string }); ok {
		return p.UnavailableMetrics()
	}
	return nil
}

func (a *adapter[V]) countsInBPF() bool {
	c, ok := a.src.(interface{ CountsInBPF() bool })
	return ok && c.CountsInBPF()
}

func (a *adapter[V]) latencySample() uint32 {
	if s, ok := a.src.(sampler); ok {
		return s.LatencySample()
	}
	return 0
}

func (a *adapter[V]) close() error {
	if a.src == nil {
		return nil
	}
	return a.src.Close()
}

type snap[V any] struct {
	rec  *records[V]
	vals map[uint64]V
}

func (s snap[V]) recordContainer(r *recorder, c *podid.Container) {
	if s.rec.container != nil {
		s.rec.container(r, c, s.vals)
	}
}

func (s snap[V]) recordPod(r *recorder, p *podid.Pod) {
	if s.rec.pod != nil {
		s.rec.pod(r, p, s.vals)
	}
}

func (s snap[V]) recordNode(r *recorder) {
	if s.rec.node != nil {
		s.rec.node(r, s.vals)
	}
}

// recorder carries what record functions need.
type recorder struct {
	mb      *metadata.MetricsBuilder
	hb      *metadata.HistogramBuilder
	now     pcommon.Timestamp
	devices *cgroupfs.DeviceNames // major:minor → name for system.device
}

// Helpers of the record functions.

// sumOver adds up a family's values over the cgroup ids of one container (its own and any
// child cgroup's; cgroup-file sources only have the container's own).
func sumOver[V any](m map[uint64]V, ids []uint64, add func(dst, src *V)) V {
	var sum V
	for _, id := range ids {
		if v, ok := m[id]; ok {
			add(&sum, &v)
		}
	}
	return sum
}

// mergeOver is sumOver for map-shaped values whose Add merges and returns the result.
func mergeOver[V ~map[K]E, K comparable, E any](m map[uint64]V, ids []uint64, add func(V, V) V) V {
	var sum V
	for _, id := range ids {
		if v, ok := m[id]; ok {
			sum = add(sum, v)
		}
	}
	return sum
}

func histPoint(h *hist.Hist) metadata.HistogramPoint {
	return metadata.HistogramPoint{Bounds: hist.Bounds(), Counts: h.Counts[:], Sum: h.SumSeconds()}
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K { return slices.Sorted(maps.Keys(m)) }

func sortedDevs[V any](m map[cgroupfs.Dev]V) []cgroupfs.Dev {
	return slices.SortedFunc(maps.Keys(m), func(a, b cgroupfs.Dev) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
}
