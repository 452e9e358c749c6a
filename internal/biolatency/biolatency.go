// Package biolatency is the "biolatency" family: block I/O latency per cgroup and disk,
// charged to the cgroup that submitted the I/O (bpf/biolatency.bpf.c).
//
// A request is stamped at block_io_start, in the submitter's context, with the submitter's
// cgroup and its disk; block_rq_complete (irq context) ends it. The latency runs from the
// request's creation to its completion: I/O scheduler queueing, driver and device time.
// Buffered writes are submitted by the flusher threads, so their writeback is charged to the
// root cgroup, not to the pod that dirtied the pages (see the cachestat family for that).
// Needs Linux 6.5+ (block_io_start).
package biolatency

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/hist"
)

// Map names.
const (
	mapHist     = "kpod_biolat"
	mapInFlight = "kpod_bio_start"
)

// Stats are one cgroup's latency histograms per disk (whole-disk device numbers).
type Stats map[cgroupfs.Dev]hist.Hist

// Add merges o into s (histograms of a container's child cgroups) and returns s.
func (s Stats) Add(o Stats) Stats {
	if s == nil {
		s = Stats{}
	}
	for d, h := range o {
		v := s[d]
		v.Add(&h)
		s[d] = v
	}
	return s
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "biolatency",
		Load:   LoadBiolatency,
		Hooks: []bpfload.Hook{
			{Tracepoint: "block_io_start", Group: "block", Prog: "kpod_bios"},
			{Tracepoint: "block_rq_complete", Group: "block", Prog: "kpod_bioc"},
		},
	}
}

// Collector reads the family's map.
type Collector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// Start loads and attaches the family.
func Start() (*Collector, error) {
	obj, err := bpfload.Load(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj}, nil
}

// devOf decodes a kernel dev_t (major << 20 | minor).
func devOf(d uint32) cgroupfs.Dev {
	return cgroupfs.Dev{Major: d >> 20, Minor: d & (1<<20 - 1)}
}

// Collect returns the histograms of every cgroup that submitted I/O, per disk, and deletes
// the entries of cgroups that are gone (live: ids of the current cgroup tree).
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps[mapHist]
	raw, err := bpfload.DumpPerCPU[BiolatencyBioKey](m, func(dst, src *BiolatencyKpodHist) {
		dst.SumNs += src.SumNs
		for i := range dst.Slots {
			dst.Slots[i] += src.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(mapHist, len(raw))
	out := map[uint64]Stats{}
	byCgroup := map[uint64][]BiolatencyBioKey{}
	var ids []uint64
	for k, v := range raw {
		s := out[k.Cgid]
		if s == nil {
			s = Stats{}
			out[k.Cgid] = s
			ids = append(ids, k.Cgid)
		}
		s[devOf(k.Dev)] = hist.Hist{SumNs: v.SumNs, Counts: v.Slots}
		byCgroup[k.Cgid] = append(byCgroup[k.Cgid], k)
	}
	var dead []BiolatencyBioKey
	for _, id := range c.sweep.Dead(ids, live) {
		dead = append(dead, byCgroup[id]...)
	}
	return out, bpfload.Delete(m, dead)
}

// InFlight counts the requests in flight per submitting cgroup id: started, not completed
// yet (or never completed, until their request is reused or the LRU map evicts them). It
// walks the whole in-flight map, so it is meant for diagnostics and tests, not every cycle.
func (c *Collector) InFlight() (map[uint64]int, error) {
	m := c.Obj.Maps[mapInFlight]
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
	c.Obj.NoteEntries(mapInFlight, n)
	return out, nil
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
