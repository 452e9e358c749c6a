//go:build bench

package bench

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestFloorCounters: the counters count exactly the events of the cgroup they run in, and
// nothing for an idle sibling, so that what the focus group measures is the work it names: a
// container makes n getppid calls under each counter attached to sys_exit_getppid. The timed
// counter is built for each role its hooks can have (the role comes from the tracepoint's
// name, not from where a classic tracepoint program is attached): untimed, it counts as the
// storage counter; where an interval ends, it also keeps the time of the last call; where one
// starts, it counts nothing and keeps the time in its own array. Times kept lie between the
// monotonic clock read before and after the calls.
func TestFloorCounters(t *testing.T) {
	fakepod.RequireRoot(t)
	const n = 10000
	type way struct {
		kind counterKind
		as   string // the tracepoint the program is built for (its role)
	}
	ways := []way{{hashCounter, "sys_exit_getppid"}, {cgrpCounter, "sys_exit_getppid"}, {cachedCounter, "sys_exit_getppid"}}
	for _, as := range []string{"sys_exit_getppid", "softirq_exit", "softirq_entry"} {
		ways = append(ways, way{timedCounter, as})
	}
	if len(counterKinds) != 4 {
		t.Fatalf("counter kinds %v: this test knows four", counterKinds)
	}
	for _, w := range ways {
		t.Run(w.kind.String()+" as "+w.as, func(t *testing.T) {
			role := untimed
			if w.kind == timedCounter {
				role = roleOf(w.as)
			}
			m, err := counterMap(w.kind)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// The profiles' other program types load too (the hooks are tp_btf, raw_tp and
			// classic tracepoints).
			for _, pt := range []ebpf.ProgramType{ebpf.Tracing, ebpf.RawTracepoint} {
				p, err := floorProgram(pt, "sched_switch", m, w.kind)
				if err != nil {
					t.Fatalf("%s: %v", pt, err)
				}
				p.Close()
			}
			prog, err := floorProgram(ebpf.TracePoint, w.as, m, w.kind)
			if err != nil {
				t.Fatal(err)
			}
			defer prog.Close()
			l, err := link.Tracepoint("syscalls", "sys_exit_getppid", prog, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			busy := fakepod.New(t, fakepod.Options{}).AddContainer()
			idle := fakepod.New(t, fakepod.Options{}).AddContainer()
			before := monotonic(t)
			busy.Run("getppid", strconv.Itoa(n))
			after := monotonic(t)
			want := uint64(n)
			if role == startsTime {
				want = 0
			}
			for _, c := range []struct {
				ctr  *fakepod.Container
				want uint64
			}{{busy, want}, {idle, 0}} {
				got, last := counted(t, m, w.kind, c.ctr)
				if got != c.want {
					t.Errorf("%s: %d counted, want %d", c.ctr.Rel, got, c.want)
				}
				if role != endsTime || c.want == 0 {
					if last != 0 {
						t.Errorf("%s: a time %d kept, want none", c.ctr.Rel, last)
					}
				} else if last < before || last > after {
					t.Errorf("%s: last call at %d ns, want between %d and %d", c.ctr.Rel, last, before, after)
				}
			}
			if role == startsTime {
				if st := stamp(t, prog); st < before || st > after {
					t.Errorf("time kept %d ns, want between %d and %d", st, before, after)
				}
			}
		})
	}
}

// stamp reads the time a start hook's program keeps in its array.
func stamp(t *testing.T, prog *ebpf.Program) uint64 {
	t.Helper()
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	ids, ok := info.MapIDs()
	if !ok || len(ids) != 1 {
		t.Fatalf("map ids %v (%v), want the program's array only", ids, ok)
	}
	m, err := ebpf.NewMapFromID(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var v uint64
	if err := m.Lookup(uint32(0), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// monotonic is CLOCK_MONOTONIC in ns, bpf_ktime_get_ns()'s clock.
func monotonic(t *testing.T) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Nano())
}

// counted reads a counter's count for a container's cgroup (0 if it has none) and the time
// the timed counter keeps beside it.
func counted(t *testing.T, cm *counterMaps, kind counterKind, c *fakepod.Container) (n, last uint64) {
	t.Helper()
	m := cm.counts
	if kind == hashCounter || kind == cachedCounter {
		var per []uint64
		if err := m.Lookup(c.CgroupID, &per); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			t.Fatal(err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		if kind == cachedCounter { // and what the CPUs' slots hold for it, not yet flushed
			var slots []cacheSlot
			if err := cm.cache.Lookup(uint32(0), &slots); err != nil {
				t.Fatal(err)
			}
			for _, s := range slots {
				if s.Cgid == c.CgroupID {
					sum += s.N
				}
			}
		}
		return sum, 0
	}
	f, err := os.Open(c.V2Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := make([]uint64, m.ValueSize()/8)
	if err := m.Lookup(uint32(f.Fd()), &v); errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0, 0
	} else if err != nil {
		t.Fatal(err)
	}
	if len(v) > 1 {
		last = v[1]
	}
	return v[0], last
}

// TestPrimitivesLoad: the verifier accepts every member of the primitives group, so that a
// run of make bench does not find out after its other groups.
func TestPrimitivesLoad(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, name := range primOrder {
		p, m, err := primProgram(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		p.Close()
		if m != nil {
			m.Close()
		}
	}
}
