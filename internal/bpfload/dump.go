package bpfload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// maxBatch is the most entries one batch read asks for. The kernel answers ENOSPC when a single
// hash bucket holds more entries than asked for; buckets hold about one entry each (the kernel
// rounds the bucket count up to max_entries), so any batch of a few dozen is enough, and the
// dump restarts at maxBatch if one ever is not.
const maxBatch = 1024

// dumpPerCPU reads every entry of a per-CPU hash map and sums each key's per-CPU values. hint
// is how many entries the map held at the last read: the buffers are sized for a quarter more
// (at least 64, at most maxBatch per batch) instead of maxBatch each time, which for a latency
// histogram map was 0.5 MiB of garbage per collection and map whatever the node ran.
func dumpPerCPU[K comparable, V any](m *ebpf.Map, hint int) (map[K]V, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	batch := 64
	for batch < hint+hint/4 && batch < maxBatch {
		batch *= 2
	}
	out := make(map[K]V, hint)
	keys := make([]K, batch)
	vals := make([]V, batch*ncpu)
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
		case errors.Is(err, unix.ENOSPC) && batch < maxBatch:
			return dumpPerCPU[K, V](m, maxBatch)
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
