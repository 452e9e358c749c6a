package bpfload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

const batchSize = 1024 // smaller chunks can fail with ENOSPC when a hash bucket is larger

// dumpPerCPU reads every entry of a per-CPU hash map and sums each key's per-CPU values.
func dumpPerCPU[K comparable, V any](m *ebpf.Map) (map[K]V, error) {
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
				addU64(&sum, &vals[i*ncpu+c])
			}
			out[keys[i]] = sum
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return out, nil
		case errors.Is(err, ebpf.ErrNotSupported):
			return dumpIterate[K, V](m, ncpu)
		case err != nil:
			return nil, fmt.Errorf("reading map %s: %w", mapName(m), err)
		}
	}
}

// dumpIterate is the fallback for kernels without batch operations (before 5.6).
func dumpIterate[K comparable, V any](m *ebpf.Map, ncpu int) (map[K]V, error) {
	out := map[K]V{}
	var k K
	vals := make([]V, ncpu)
	it := m.Iterate()
	for it.Next(&k, &vals) {
		var sum V
		for c := range vals {
			addU64(&sum, &vals[c])
		}
		out[k] = sum
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading map %s: %w", mapName(m), err)
	}
	return out, nil
}

func mapName(m *ebpf.Map) string {
	if info, err := m.Info(); err == nil {
		return info.Name
	}
	return m.String()
}
