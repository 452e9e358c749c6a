// Package biolatency is the "biolatency" family: block I/O latency per cgroup and disk,
// charged to the cgroup that submitted the I/O (bpf/biolatency.bpf.c).
//
// A request is stamped at block_io_start, in the submitter's context, with the submitter's
// cgroup and its disk; block_rq_complete (irq context) ends it. The latency runs from the
// request's creation to its completion: I/O scheduler queueing, driver and device time.
// Buffered writes are submitted by the flusher threads, so their writeback is charged to the
// root cgroup, not to the pod that dirtied the pages (see the cachestat family for that).
// Kernels before 6.5 have no block_io_start: there the submitter and the start time are taken
// at block_bio_queue from the request's first bio (PathBioQueue).
package biolatency

import (
	"fmt"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/hist"
)

// Stats are one cgroup's latency histograms per disk (whole-disk device numbers).
type Stats = hist.ByKey[cgroupfs.Dev]

// Path says where a request's submitter and start time come from.
type Path string

const (
	PathIOStart  Path = "block_io_start"  // the request, at block_io_start (6.5+)
	PathBioQueue Path = "block_bio_queue" // its first bio, at block_bio_queue (before 6.5)
)

// StartSpec is the family's object on kernels with block_io_start.
func StartSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "biolatency",
		Load:   LoadBiolatency,
		Hooks: []bpfload.Hook{
			{Tracepoint: "block_io_start", Group: "block", Prog: "kpod_bios"},
			{Tracepoint: "block_rq_complete", Group: "block", Prog: "kpod_bioc"},
		},
	}
}

// QueueSpec is the family's object on kernels without block_io_start.
func QueueSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "biolatency",
		Load:   LoadBiolatency,
		Hooks: []bpfload.Hook{
			{Tracepoint: "block_bio_queue", Group: "block", Prog: "kpod_bioq"},
			{Tracepoint: "block_rq_complete", Group: "block", Prog: "kpod_bioqc"},
		},
	}
}

// Spec lists every hook the family may load (both paths), for tests that check what is
// loaded.
func Spec() bpfload.Spec {
	s := StartSpec()
	s.Hooks = append(s.Hooks, QueueSpec().Hooks...)
	return s
}

// Collector reads the family.
type Collector struct {
	*bpfload.Source[Stats]
	Path Path
}

// Start loads the block_io_start path, or the block_bio_queue path where that cannot load.
func Start() (*Collector, error) {
	c, err := startPath(PathIOStart)
	if err == nil {
		return c, nil
	}
	c, err2 := startPath(PathBioQueue)
	if err2 != nil {
		return nil, fmt.Errorf("%s: %v; %s: %w", PathIOStart, err, PathBioQueue, err2)
	}
	return c, nil
}

func startPath(p Path) (*Collector, error) {
	spec := StartSpec()
	if p == PathBioQueue {
		spec = QueueSpec()
	}
	s, err := bpfload.Open(spec, read)
	if err != nil {
		return nil, err
	}
	return &Collector{Source: s, Path: p}, nil
}

func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[BiolatencyBioKey, BiolatencyKpodHist](c, BiolatencyMapKpodBiolat, live)
	out := map[uint64]Stats{}
	for k, v := range raw {
		if out[k.Cgid] == nil {
			out[k.Cgid] = Stats{}
		}
		out[k.Cgid][cgroupfs.KernelDev(k.Dev)] = hist.Decode(v.SumNs, v.Slots)
	}
	return out, err
}

// InFlight counts the requests (bios, on the block_bio_queue path) in flight per submitting
// cgroup id: started, not completed yet (or never completed, until their request is reused
// or the LRU map evicts them). It walks the whole in-flight map, so it is meant for
// diagnostics and tests, not every cycle.
func (c *Collector) InFlight() (map[uint64]int, error) {
	name := BiolatencyMapKpodBioStart
	if c.Path == PathBioQueue {
		name = BiolatencyMapKpodBioQ
	}
	m := c.Obj.Maps[name]
	out := map[uint64]int{}
	var (
		rq uint64
		s  BiolatencyBioStart
		n  int
	)
	it := m.Iterate()
	for it.Next(&rq, &s) {
		out[s.Cgid]++
		n++
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(name, n)
	return out, nil
}
