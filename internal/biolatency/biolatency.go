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

// Stats are one cgroup's latency histograms per disk (whole-disk device numbers).
type Stats = hist.ByKey[cgroupfs.Dev]

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

// Start loads and attaches the family.
func Start() (*bpfload.Source[Stats], error) { return bpfload.Open(Spec(), read) }

// Collect returns the histograms of every cgroup that submitted I/O, per disk.
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

// InFlight counts the requests in flight per submitting cgroup id: started, not completed
// yet (or never completed, until their request is reused or the LRU map evicts them). It
// walks the whole in-flight map, so it is meant for diagnostics and tests, not every cycle.
func InFlight(c *bpfload.Collector) (map[uint64]int, error) {
	m := c.Obj.Maps[BiolatencyMapKpodBioStart]
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
	c.Obj.NoteEntries(BiolatencyMapKpodBioStart, n)
	return out, nil
}
