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

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// progAccess is the program prefix of the optional accesses hook.
const progAccess = "kpod_cacc"

// Stats are one cgroup's cumulative page cache counters.
type Stats struct {
	Added          uint64 // pages added to the page cache (misses: reads, new data written, readahead)
	Dirtied        uint64 // pages that became dirty
	BuffersDirtied uint64 // mark_buffer_dirty calls
	Accessed       uint64 // folio_mark_accessed calls
	HasAccessed    bool   // false when AccessesUnavailable: Accessed is not counted
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Added += o.Added
	s.Dirtied += o.Dirtied
	s.BuffersDirtied += o.BuffersDirtied
	s.Accessed += o.Accessed
	s.HasAccessed = s.HasAccessed || o.HasAccessed
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
type Collector struct{ *bpfload.Source[Stats] }

// Start loads and attaches the family. It fails only if one of the tracepoints cannot be
// attached; the accesses hook may be missing.
func Start() (*Collector, error) {
	spec := Spec()
	spec.Prepare = func(*ebpf.CollectionSpec) error {
		k, err := bpfload.KernelSpec()
		if err != nil {
			return err
		}
		return hasFolios(k)
	}
	s, err := bpfload.Open(spec, read)
	if err != nil {
		return nil, err
	}
	return &Collector{s}, nil
}

// AccessesUnavailable is empty when accesses are counted, and otherwise the reason they are
// not: what each rung of the ladder (fentry, kprobe) answered.
func (c *Collector) AccessesUnavailable() string {
	if c == nil || c.Source == nil {
		return "cachestat is not loaded"
	}
	return c.Obj.Missing[progAccess]
}

// UnavailableMetrics names the metrics this kernel cannot give, with the reason.
func (c *Collector) UnavailableMetrics() map[string]string {
	if why := c.AccessesUnavailable(); why != "" {
		return map[string]string{"kpod.mem.cache.accesses": why}
	}
	return nil
}

func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, CachestatCacheVal](c, CachestatMapKpodCache, live)
	accessed := c.Obj.Missing[progAccess] == ""
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Added: v.Added, Dirtied: v.Dirtied, BuffersDirtied: v.BuffersDirtied, Accessed: v.Accessed, HasAccessed: accessed}
	}
	return out, err
}

// hasFolios checks that the kernel has page cache folios: the family's tracepoints pass one
// (before 5.17 they passed a struct page, and mm_filemap_add_to_page_cache's program would
// fail with the verifier's words for a field CO-RE did not find).
func hasFolios(k *btf.Spec) error {
	var folio *btf.Struct
	err := k.TypeByName("folio", &folio)
	if errors.Is(err, btf.ErrNotFound) {
		return errors.New("the kernel has no page cache folios (struct folio), which the page cache tracepoints this family hooks pass since Linux 5.17")
	}
	if err != nil {
		return fmt.Errorf("reading struct folio from the kernel's BTF: %w", err)
	}
	return nil
}
