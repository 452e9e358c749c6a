// Package cachestat is the "cachestat" family: page cache activity per cgroup, charged to
// the task that caused it (bpf/cachestat.bpf.c).
//
// Added and dirtied pages come from tracepoints (mm_filemap_add_to_page_cache,
// writeback_dirty_folio) and count pages, also for large folios; dirtied buffers from
// block_dirty_buffer. Accesses (folio_mark_accessed) need a kernel function hook, fentry or
// else a kprobe; on kernels that allow neither the family loads without it and
// AccessesUnavailable says why. Without accesses a hit ratio cannot be computed; added pages
// are the misses either way.
package cachestat

import "github.com/kpod-project/kpod/internal/bpfload"

const (
	mapCache   = "kpod_cache"
	progAccess = "kpod_cacc"
)

// Stats are one cgroup's cumulative page cache counters.
type Stats struct {
	Added          uint64 // pages added to the page cache (misses: reads, new data written, readahead)
	Dirtied        uint64 // pages that became dirty
	BuffersDirtied uint64 // mark_buffer_dirty calls
	Accessed       uint64 // folio_mark_accessed calls; always 0 when AccessesUnavailable
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Added += o.Added
	s.Dirtied += o.Dirtied
	s.BuffersDirtied += o.BuffersDirtied
	s.Accessed += o.Accessed
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "cachestat",
		Load:   LoadCachestat,
		Hooks: []bpfload.Hook{
			{Tracepoint: "mm_filemap_add_to_page_cache", Group: "filemap", Prog: "kpod_cadd"},
			{Tracepoint: "writeback_dirty_folio", Group: "writeback", Prog: "kpod_cdirty"},
			{Tracepoint: "block_dirty_buffer", Group: "block", Prog: "kpod_cbuf"},
			{Function: "folio_mark_accessed", Prog: progAccess, Optional: true},
		},
	}
}

// Collector reads the family's map.
type Collector struct {
	Obj   *bpfload.Object
	sweep bpfload.Sweeper
}

// Start loads and attaches the family. It fails only if one of the tracepoints cannot be
// attached; the accesses hook may be missing.
func Start() (*Collector, error) {
	obj, err := bpfload.Load(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj}, nil
}

// AccessesUnavailable is empty when accesses are counted, and otherwise the reason they are
// not: what each rung of the ladder (fentry, kprobe) answered.
func (c *Collector) AccessesUnavailable() string {
	if c == nil || c.Obj == nil {
		return "cachestat is not loaded"
	}
	return c.Obj.Missing[progAccess]
}

// Collect returns the counters of every cgroup that has any, and deletes the entries of
// cgroups that are gone (live: ids of the current cgroup tree).
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps[mapCache]
	raw, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *CachestatCacheVal) {
		dst.Added += src.Added
		dst.Dirtied += src.Dirtied
		dst.BuffersDirtied += src.BuffersDirtied
		dst.Accessed += src.Accessed
	})
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(mapCache, len(raw))
	out := make(map[uint64]Stats, len(raw))
	ids := make([]uint64, 0, len(raw))
	for id, v := range raw {
		out[id] = Stats{Added: v.Added, Dirtied: v.Dirtied, BuffersDirtied: v.BuffersDirtied, Accessed: v.Accessed}
		ids = append(ids, id)
	}
	return out, bpfload.Delete(m, c.sweep.Dead(ids, live))
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
