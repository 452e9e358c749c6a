package bpfload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

const batchSize = 1024 // smaller chunks can fail with ENOSPC when a hash bucket is larger

// DumpPerCPU reads every entry of a per-CPU hash map and folds each key's per-CPU values
// into one with add. Entries are never deleted here: the kernel's counters stay cumulative.
func DumpPerCPU[K comparable, V any](m *ebpf.Map, add func(dst *V, src *V)) (map[K]V, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	out := map[K]V{}
	keys := make([]K, batchSize)
	vals := make([]V, batchSize*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			var sum V
			for c := 0; c < ncpu; c++ {
				add(&sum, &vals[i*ncpu+c])
			}
			out[keys[i]] = sum
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return out, nil
		case errors.Is(err, ebpf.ErrNotSupported):
			return dumpIterate[K](m, ncpu, add)
		case err != nil:
			return nil, fmt.Errorf("reading map %s: %w", mapName(m), err)
		}
	}
}

// dumpIterate is the fallback for kernels without batch operations (before 5.6).
func dumpIterate[K comparable, V any](m *ebpf.Map, ncpu int, add func(dst *V, src *V)) (map[K]V, error) {
	out := map[K]V{}
	var k K
	vals := make([]V, ncpu)
	it := m.Iterate()
	for it.Next(&k, &vals) {
		var sum V
		for c := range vals {
			add(&sum, &vals[c])
		}
		out[k] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading map %s: %w", mapName(m), err)
	}
	return out, nil
}

// Delete removes keys (entries of removed cgroups). A key that is already gone is fine.
func Delete[K any](m *ebpf.Map, keys []K) error {
	var errs []error
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil {
		return info.Name
	}
	return m.String()
}

// Sweeper decides which cgroups' map entries to delete. A cgroup id found in a map but not
// in the live cgroup tree is deleted only if it was also missing the cycle before: the tree
// is walked before the maps are read, so a cgroup created in between looks dead once.
type Sweeper struct{ suspects map[uint64]bool }

// Dead returns the ids among seen that are dead now and were dead last time.
func (s *Sweeper) Dead(seen []uint64, live map[uint64]bool) []uint64 {
	var dead []uint64
	next := map[uint64]bool{}
	for _, id := range seen {
		if live[id] {
			continue
		}
		if s.suspects[id] {
			dead = append(dead, id)
		} else {
			next[id] = true
		}
	}
	s.suspects = next
	return dead
}
