// Package memcg reads a container's memory cgroup: usage, peak, page cache, swap and major
// page faults, from the v2 files (memory.current, memory.peak, memory.stat,
// memory.swap.current) or, on v1 and hybrid hosts, from the v1 memory controller
// (memory.usage_in_bytes, memory.max_usage_in_bytes, memory.stat, memory.memsw.*).
package memcg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
)

// Stats is one container's memory state. A Has* flag is false when the kernel does not
// provide that value for this cgroup (no memory.peak before Linux 5.19, no swap accounting):
// such values are not reported rather than reported as zero.
type Stats struct {
	Usage   uint64
	Peak    uint64
	HasPeak bool
	Cache   uint64
	Swap    uint64
	HasSwap bool
}

// StatCache lets the memory and pagefaults collectors share one read of memory.stat per
// cgroup and collection cycle: in a v1 memory cgroup that read flushes the kernel's
// statistics and costs more (~150 µs here) than the other memory files together. A cycle is
// identified by any comparable value that is new each cycle (the scraper's pod index).
type StatCache struct {
	mu    sync.Mutex
	cycle any
	stats map[string]*statEntry
}

type statEntry struct {
	once sync.Once
	m    map[string]uint64
	err  error
}

func (c *StatCache) get(cycle any, dir string) (map[string]uint64, error) {
	if c == nil {
		return readStat(dir)
	}
	c.mu.Lock()
	if c.cycle != cycle || c.stats == nil {
		c.cycle, c.stats = cycle, map[string]*statEntry{}
	}
	e := c.stats[dir]
	if e == nil {
		e = &statEntry{}
		c.stats[dir] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.m, e.err = readStat(dir) })
	return e.m, e.err
}

// Collector reads memory statistics.
type Collector struct {
	layout cgroupfs.Layout
	cache  *StatCache
}

// New returns a memory collector for the host layout; cache may be shared with NewFaults.
func New(l cgroupfs.Layout, cache *StatCache) *Collector { return &Collector{layout: l, cache: cache} }

// Collect reads the memory statistics of every target in one cycle.
func (c *Collector) Collect(ctx context.Context, cycle any, targets []collector.Target) collector.Result[Stats] {
	return collector.ForEach(ctx, c.layout.V2, targets, func(t collector.Target) (Stats, error) {
		return c.read(cycle, t.Rel)
	})
}

// ReadStats reads one cgroup.
func ReadStats(l cgroupfs.Layout, rel string) (Stats, error) {
	return (&Collector{layout: l}).read(nil, rel)
}

func (c *Collector) read(cycle any, rel string) (Stats, error) {
	dir, v2, ok := c.layout.ControllerDir("memory", rel)
	if !ok {
		return Stats{}, errors.New("no memory controller is mounted")
	}
	stat, err := c.cache.get(cycle, dir)
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	if v2 {
		if s.Usage, err = cgroupfs.ReadUint(filepath.Join(dir, "memory.current")); err != nil {
			return Stats{}, err
		}
		s.Peak, s.HasPeak, err = optionalUint(filepath.Join(dir, "memory.peak"))
		if err != nil {
			return Stats{}, err
		}
		s.Swap, s.HasSwap, err = optionalUint(filepath.Join(dir, "memory.swap.current"))
		if err != nil {
			return Stats{}, err
		}
		if s.Cache, err = need(stat, dir, "file"); err != nil {
			return Stats{}, err
		}
		return s, nil
	}
	if s.Usage, err = cgroupfs.ReadUint(filepath.Join(dir, "memory.usage_in_bytes")); err != nil {
		return Stats{}, err
	}
	if s.Peak, err = cgroupfs.ReadUint(filepath.Join(dir, "memory.max_usage_in_bytes")); err != nil {
		return Stats{}, err
	}
	s.HasPeak = true
	if s.Cache, err = need(stat, dir, "cache"); err != nil {
		return Stats{}, err
	}
	// memory.stat has "swap" only when swap accounting is on; memsw is the same source.
	if v, ok := stat["swap"]; ok {
		s.Swap, s.HasSwap = v, true
	} else if memsw, ok, err := optionalUint(filepath.Join(dir, "memory.memsw.usage_in_bytes")); err != nil {
		return Stats{}, err
	} else if ok && memsw >= s.Usage {
		s.Swap, s.HasSwap = memsw-s.Usage, true
	}
	return s, nil
}

// ReadMajorFaults returns memory.stat pgmajfault: the kernel's exact count of major faults
// charged to the cgroup (both v1 and v2 keep it).
func ReadMajorFaults(l cgroupfs.Layout, rel string) (uint64, error) {
	return (&FaultCollector{layout: l}).read(nil, rel)
}

func (c *FaultCollector) read(cycle any, rel string) (uint64, error) {
	dir, _, ok := c.layout.ControllerDir("memory", rel)
	if !ok {
		return 0, errors.New("no memory controller is mounted")
	}
	stat, err := c.cache.get(cycle, dir)
	if err != nil {
		return 0, err
	}
	return need(stat, dir, "pgmajfault")
}

// FaultCollector reads major page faults.
type FaultCollector struct {
	layout cgroupfs.Layout
	cache  *StatCache
}

// NewFaults returns a major-fault collector for the host layout; cache may be shared with New.
func NewFaults(l cgroupfs.Layout, cache *StatCache) *FaultCollector {
	return &FaultCollector{layout: l, cache: cache}
}

// Collect reads pgmajfault of every target in one cycle.
func (c *FaultCollector) Collect(ctx context.Context, cycle any, targets []collector.Target) collector.Result[uint64] {
	// The memory collector walks the targets forwards at the same time; walking them
	// backwards, each of the two reads about half of the shared memory.stat files instead of
	// waiting for the other's read of the same file.
	rev := make([]collector.Target, len(targets))
	for i, t := range targets {
		rev[len(targets)-1-i] = t
	}
	return collector.ForEach(ctx, c.layout.V2, rev, func(t collector.Target) (uint64, error) {
		return c.read(cycle, t.Rel)
	})
}

func readStat(dir string) (map[string]uint64, error) {
	path := filepath.Join(dir, "memory.stat")
	b, err := cgroupfs.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return cgroupfs.ParseKeyed(path, b)
}

func need(stat map[string]uint64, dir, key string) (uint64, error) {
	v, ok := stat[key]
	if !ok {
		return 0, fmt.Errorf("%s: no %q in memory.stat", dir, key)
	}
	return v, nil
}

// optionalUint reads a file that older kernels or configurations do not have.
func optionalUint(path string) (uint64, bool, error) {
	v, err := cgroupfs.ReadUint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return v, err == nil, err
}
