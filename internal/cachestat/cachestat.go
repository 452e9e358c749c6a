// Package cachestat is the "cachestat" family: page cache activity per cgroup, charged to
// the task that caused it (bpf/cachestat.bpf.c).
//
// Added and dirtied pages come from tracepoints (mm_filemap_add_to_page_cache,
// writeback_dirty_folio) and count pages, also for large folios; dirtied buffers from
// block_dirty_buffer. Accesses (folio_mark_accessed) need a kernel function hook, fentry or
// else a kprobe. Before 5.17 the events pass pages (writeback_dirty_page,
// mark_page_accessed): the page path, one page per event; on kernels that allow neither the family loads without it and
// AccessesUnavailable says why. Without accesses a hit ratio cannot be computed; added pages
// are the misses either way.
package cachestat

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// Path says which objects the kernel's page cache events pass.
type Path string

const (
	PathFolio Path = "folio" // Linux 5.17+: writeback_dirty_folio, folio_mark_accessed
	PathPage  Path = "page"  // before: writeback_dirty_page, mark_page_accessed
)

// The dirtied pages' tracepoint and the accesses' kernel function (optional hook) of each path.
var (
	dirtyEvent     = map[Path]string{PathFolio: "writeback_dirty_folio", PathPage: "writeback_dirty_page"}
	accessFunction = map[Path]string{PathFolio: "folio_mark_accessed", PathPage: "mark_page_accessed"}
)

// Stats are one cgroup's cumulative page cache counters.
type Stats struct {
	Added          uint64 // pages added to the page cache (misses: reads, new data written, readahead)
	Dirtied        uint64 // pages that became dirty
	BuffersDirtied uint64 // mark_buffer_dirty calls
	Accessed       uint64 // folio_mark_accessed (mark_page_accessed before 5.17) calls
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

// Spec is the family's BPF object on the folio path.
func Spec() bpfload.Spec { return PathSpec(PathFolio) }

// PathSpec is the family's BPF object on path p.
func PathSpec(p Path) bpfload.Spec {
	sfx := progSuffix(p)
	return bpfload.Spec{
		Family: "cachestat",
		Load:   LoadCachestat,
		Hooks: []bpfload.Hook{
			{Tracepoint: "mm_filemap_add_to_page_cache", Group: "filemap", Prog: "kpod_cadd" + sfx},
			{Tracepoint: dirtyEvent[p], Group: "writeback", Prog: "kpod_cdirty" + sfx},
			{Tracepoint: "block_dirty_buffer", Group: "block", Prog: "kpod_cbuf"},
			{Function: accessFunction[p], Prog: accessProg(p), Optional: true},
		},
	}
}

// Collector reads the family's map.
type Collector struct {
	*bpfload.Source[Stats]
	Path Path
}

// Start loads and attaches the family on the path the kernel's events allow. It fails only
// if one of the tracepoints cannot be attached; the accesses hook may be missing.
func Start() (*Collector, error) {
	k, err := bpfload.KernelSpec()
	if err != nil {
		return nil, fmt.Errorf("cachestat: %w", err)
	}
	p, err := kernelPath(k)
	if err != nil {
		return nil, fmt.Errorf("cachestat: %w", err)
	}
	s, err := bpfload.Open(PathSpec(p), func(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
		return read(c, live, accessProg(p))
	})
	if err != nil {
		return nil, err
	}
	return &Collector{Source: s, Path: p}, nil
}

// progSuffix ends the names of path p's own programs: p for pages (not bpfload.PidSuffix,
// which also is p: no cachestat program keeps per-task state).
func progSuffix(p Path) string {
	if p == PathPage {
		return "p"
	}
	return ""
}

// accessProg is the program prefix of the accesses hook on path p.
func accessProg(p Path) string { return "kpod_cacc" + progSuffix(p) }

// AccessFunction is the kernel function whose calls are the accesses on the collector's path.
func (c *Collector) AccessFunction() string { return accessFunction[c.Path] }

// AccessesUnavailable is empty when accesses are counted, and otherwise the reason they are
// not: what each rung of the ladder (fentry, kprobe) answered.
func (c *Collector) AccessesUnavailable() string {
	if c == nil || c.Source == nil {
		return "cachestat is not loaded"
	}
	return c.Obj.Missing[accessProg(c.Path)]
}

// UnavailableMetrics names the metrics this kernel cannot give, with the reason.
func (c *Collector) UnavailableMetrics() map[string]string {
	if why := c.AccessesUnavailable(); why != "" {
		return map[string]string{"kpod.mem.cache.accesses": why}
	}
	return nil
}

func read(c *bpfload.Collector, live map[uint64]bool, access string) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, CachestatCacheVal](c, CachestatMapKpodCache, live)
	accessed := c.Obj.Missing[access] == ""
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Added: v.Added, Dirtied: v.Dirtied, BuffersDirtied: v.BuffersDirtied, Accessed: v.Accessed, HasAccessed: accessed}
	}
	return out, err
}

// kernelPath is the path of the kernel's page cache events, from their BTF prototypes:
// writeback_dirty_folio (5.17+) or, before, writeback_dirty_page.
func kernelPath(k *btf.Spec) (Path, error) {
	for _, p := range []Path{PathFolio, PathPage} {
		var td *btf.Typedef
		err := k.TypeByName("btf_trace_"+dirtyEvent[p], &td)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, btf.ErrNotFound) {
			return "", err
		}
	}
	return "", errors.New("the kernel has neither writeback_dirty_folio (5.17+) nor writeback_dirty_page")
}
