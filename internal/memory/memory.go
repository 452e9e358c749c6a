// Package memory is the "memory" family: a container's memory cgroup usage, peak, page cache
// and swap, from the v2 files (memory.current, memory.peak, memory.stat, memory.swap.current)
// or, on v1 and hybrid hosts, from the v1 memory controller (memory.usage_in_bytes,
// memory.max_usage_in_bytes, memory.stat, memory.memsw.*).
package memory

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
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

// Collector reads memory statistics.
type Collector struct {
	collector.NoBPF
	layout cgroupfs.Layout
	cache  *cgroupfs.StatCache
}

// New returns a memory collector for the host layout; cache may be shared with the
// pagefaults collector. It fails when no memory controller is mounted.
func New(l cgroupfs.Layout, cache *cgroupfs.StatCache) (*Collector, error) {
	if _, _, ok := l.ControllerDir("memory", ""); !ok {
		return nil, errors.New("no memory cgroup controller is mounted")
	}
	return &Collector{layout: l, cache: cache}, nil
}

// Collect reads the memory statistics of every workload container of x.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]Stats, error) {
	res := c.CollectTargets(ctx, x, collector.Workloads(x))
	return res.Values, res.Err()
}

// CollectTargets reads the memory statistics of targets in one cycle.
func (c *Collector) CollectTargets(ctx context.Context, cycle any, targets []cgroupfs.Target) collector.Result[Stats] {
	return collector.ForEach(ctx, c.layout.V2, targets, func(t cgroupfs.Target) (Stats, error) {
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
	stat, err := c.cache.MemoryStat(cycle, dir)
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
		if s.Cache, err = cgroupfs.StatKey(stat, dir, "file"); err != nil {
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
	if s.Cache, err = cgroupfs.StatKey(stat, dir, "cache"); err != nil {
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

// optionalUint reads a file that older kernels or configurations do not have.
func optionalUint(path string) (uint64, bool, error) {
	v, err := cgroupfs.ReadUint(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return v, err == nil, err
}
