package bpfload

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/podid"
)

// NodeID is the cgroup id under which a family counts what no pod owns: interrupts of the
// idle task and of kernel threads, TCP drops of packets without a socket. It is never a
// cgroup directory, so it is never swept. KPOD_NODE_CGID in bpf/include/kpod.h.
const NodeID uint64 = 0

// Collector is the skeleton every eBPF family uses: a loaded, attached Object whose data
// maps are per-CPU hashes keyed by a struct that starts with the u64 cgroup id. Read dumps
// one of them, and deletes the entries of cgroups that are gone.
type Collector struct {
	Obj *Object

	mu     sync.Mutex
	sweeps map[string]*Sweeper // per map
}

// Start loads and attaches a family (see Load).
func Start(s Spec) (*Collector, error) {
	obj, err := Load(s)
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj}, nil
}

// Objects lists the family's loaded object, for kpod's BPF self-monitoring.
func (c *Collector) Objects() []*Object {
	if c == nil || c.Obj == nil {
		return nil
	}
	return []*Object{c.Obj}
}

// Close detaches the programs and frees the maps. It is safe on a collector that never
// started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}

// Source is a family's collector: the skeleton plus the family's read of its maps, with
// the Collect method the receiver calls.
type Source[V any] struct {
	*Collector
	read func(c *Collector, live map[uint64]bool) (map[uint64]V, error)
}

// Open loads and attaches the family of spec; read turns its maps into typed values per
// cgroup id (with Read).
func Open[V any](spec Spec, read func(c *Collector, live map[uint64]bool) (map[uint64]V, error)) (*Source[V], error) {
	c, err := Start(spec)
	if err != nil {
		return nil, err
	}
	return &Source[V]{Collector: c, read: read}, nil
}

// Collect returns the family's values of every cgroup that has any.
func (s *Source[V]) Collect(_ context.Context, x *podid.Index) (map[uint64]V, error) {
	return s.read(s.Collector, x.Live)
}

// Read returns every entry of the per-CPU hash map name with its CPUs summed, notes the
// entry count for kpod.bpf.map.entries, and deletes the entries of cgroups that are not in
// live for the second collection in a row. K must start with the u64 cgroup id; V must be
// made of u64 counters only (fields, arrays, nested structs), which is how every kpod map
// value is declared in C, so summing CPUs is adding u64s.
//
// Entries are never read-and-deleted: the kernel's counters stay cumulative. The returned
// map still holds the entries just deleted; callers report live cgroups only.
func Read[K comparable, V any](c *Collector, name string, live map[uint64]bool) (map[K]V, error) {
	vals, err := Dump[K, V](c, name)
	if err != nil {
		return nil, err
	}
	return vals, Sweep(c, name, vals, live)
}

// Dump is Read without the deletions: for a family that may read a map more than once in a
// collection (Sweep once, after the last).
func Dump[K comparable, V any](c *Collector, name string) (map[K]V, error) {
	m, ok := c.Obj.Maps[name]
	if !ok {
		return nil, fmt.Errorf("%s: no map %s in the object", c.Obj.Family, name)
	}
	if err := checkLayout[K, V](); err != nil {
		return nil, fmt.Errorf("%s: map %s: %w", c.Obj.Family, name, err)
	}
	vals, err := dumpPerCPU[K, V](m, c.Obj.Entries(name))
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries(name, len(vals))
	return vals, nil
}

// Sweep deletes from map name the entries among vals (what Dump returned) of the cgroups that
// are not in live for the second collection in a row; once per collection.
func Sweep[K comparable, V any](c *Collector, name string, vals map[K]V, live map[uint64]bool) error {
	m := c.Obj.Maps[name]
	seen := make(map[uint64][]K, len(vals))
	for k := range vals {
		id := cgroupOf(&k)
		seen[id] = append(seen[id], k)
	}
	c.mu.Lock()
	if c.sweeps == nil {
		c.sweeps = map[string]*Sweeper{}
	}
	s := c.sweeps[name]
	if s == nil {
		s = &Sweeper{}
		c.sweeps[name] = s
	}
	dead := s.Dead(keysOf(seen), live)
	c.mu.Unlock()
	var gone []K
	for _, id := range dead {
		gone = append(gone, seen[id]...)
	}
	return DeleteKeys(m, gone)
}

// cgroupOf reads the u64 cgroup id every key starts with (checked by checkLayout).
func cgroupOf[K any](k *K) uint64 { return *(*uint64)(unsafe.Pointer(k)) }

var layouts sync.Map // [2]reflect.Type → error

// checkLayout verifies once per key and value type what Read relies on.
func checkLayout[K, V any]() error {
	kt, vt := reflect.TypeFor[K](), reflect.TypeFor[V]()
	if err, ok := layouts.Load([2]reflect.Type{kt, vt}); ok {
		return toErr(err)
	}
	var err error
	switch {
	case kt.Kind() == reflect.Uint64:
	case kt.Kind() == reflect.Struct && firstField(kt).Type.Kind() == reflect.Uint64:
	default:
		err = fmt.Errorf("key %v does not start with the u64 cgroup id", kt)
	}
	if err == nil && !onlyU64(vt) {
		err = fmt.Errorf("value %v is not made of u64 counters only", vt)
	}
	layouts.Store([2]reflect.Type{kt, vt}, err)
	return err
}

func toErr(v any) error {
	if v == nil {
		return nil
	}
	return v.(error)
}

// firstField is the first field with a size (bpf2go adds a zero-size structs.HostLayout).
func firstField(t reflect.Type) reflect.StructField {
	for i := range t.NumField() {
		if f := t.Field(i); f.Type.Size() > 0 {
			return f
		}
	}
	return reflect.StructField{Type: reflect.TypeFor[struct{}]()}
}

func onlyU64(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Uint64:
		return true
	case reflect.Array:
		return onlyU64(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.Type.Size() > 0 && !onlyU64(f.Type) {
				return false
			}
		}
		return t.Size()%8 == 0
	}
	return false
}

// addU64 adds src into dst, both values made of u64s only.
func addU64[V any](dst, src *V) {
	n := int(unsafe.Sizeof(*dst) / 8)
	d := unsafe.Slice((*uint64)(unsafe.Pointer(dst)), n)
	s := unsafe.Slice((*uint64)(unsafe.Pointer(src)), n)
	for i := range d {
		d[i] += s[i]
	}
}

// Sweeper decides which cgroups' map entries (or a collector's own per-cgroup state) to
// delete. A cgroup id found in a map but not
// in the live cgroup tree is deleted only if it was also missing the cycle before: the tree
// is walked before the maps are read, so a cgroup created in between looks dead once.
type Sweeper struct{ suspects map[uint64]bool }

func keysOf[T any](m map[uint64]T) []uint64 {
	out := make([]uint64, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	return out
}

// Dead returns the ids among seen that are not live now and were not live the time before;
// NodeID is never dead.
func (s *Sweeper) Dead(seen []uint64, live map[uint64]bool) []uint64 {
	var dead []uint64
	next := map[uint64]bool{}
	for _, id := range seen {
		if id == NodeID || live[id] {
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

// DeleteKeys removes keys from a map (entries of removed cgroups, ...). A key that is already
// gone is fine.
func DeleteKeys[K any](m *ebpf.Map, keys []K) error {
	var errs []error
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
