// Package pagefaults is the "pagefaults" family: major page faults per container, from
// memory.stat pgmajfault, the kernel's exact count of major faults charged to the cgroup
// (both v1 and v2 keep it).
package pagefaults

import (
	"context"
	"errors"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/podid"
)

// Collector reads major page faults.
type Collector struct {
	collector.NoBPF
	layout cgroupfs.Layout
	cache  *cgroupfs.StatCache
}

// New returns a major-fault collector for the host layout; cache may be shared with the
// memory collector. It fails when no memory controller is mounted.
func New(l cgroupfs.Layout, cache *cgroupfs.StatCache) (*Collector, error) {
	if _, _, ok := l.ControllerDir("memory", ""); !ok {
		return nil, errors.New("no memory cgroup controller is mounted (major faults come from memory.stat)")
	}
	return &Collector{layout: l, cache: cache}, nil
}

// Collect reads pgmajfault of every workload container of x.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]uint64, error) {
	res := c.CollectTargets(ctx, x, collector.Workloads(x))
	return res.Values, res.Err()
}

// CollectTargets reads pgmajfault of targets in one cycle.
func (c *Collector) CollectTargets(ctx context.Context, cycle any, targets []cgroupfs.Target) collector.Result[uint64] {
	// The memory collector walks the targets forwards at the same time; walking them
	// backwards, each of the two reads about half of the shared memory.stat files instead of
	// waiting for the other's read of the same file.
	rev := make([]cgroupfs.Target, len(targets))
	for i, t := range targets {
		rev[len(targets)-1-i] = t
	}
	return collector.ForEach(ctx, c.layout.V2, rev, func(t cgroupfs.Target) (uint64, error) {
		return c.read(cycle, t.Rel)
	})
}

// Read returns one cgroup's major faults.
func Read(l cgroupfs.Layout, rel string) (uint64, error) {
	return (&Collector{layout: l}).read(nil, rel)
}

func (c *Collector) read(cycle any, rel string) (uint64, error) {
	dir, _, ok := c.layout.ControllerDir("memory", rel)
	if !ok {
		return 0, errors.New("no memory controller is mounted")
	}
	stat, err := c.cache.MemoryStat(cycle, dir)
	if err != nil {
		return 0, err
	}
	return cgroupfs.StatKey(stat, dir, "pgmajfault")
}
