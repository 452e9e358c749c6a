//go:build bench

package bench

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestFloorCounters: both counters count exactly the events of the cgroup they run in, and
// nothing for an idle sibling, so that what the focus group measures is the work it names:
// a container makes n getppid calls under each counter attached to sys_exit_getppid.
func TestFloorCounters(t *testing.T) {
	fakepod.RequireRoot(t)
	const n = 10000
	for _, kind := range counterKinds {
		t.Run(kind.String(), func(t *testing.T) {
			m, err := counterMap(kind)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			// The profiles' other program types load too (the hooks are tp_btf, raw_tp and
			// classic tracepoints).
			for _, pt := range []ebpf.ProgramType{ebpf.Tracing, ebpf.RawTracepoint} {
				p, err := floorProgram(pt, "sched_switch", m, kind)
				if err != nil {
					t.Fatalf("%s: %v", pt, err)
				}
				p.Close()
			}
			prog, err := floorProgram(ebpf.TracePoint, "", m, kind)
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
			busy.Run("getppid", strconv.Itoa(n))
			for _, c := range []struct {
				ctr  *fakepod.Container
				want uint64
			}{{busy, n}, {idle, 0}} {
				if got := counted(t, m, kind, c.ctr); got != c.want {
					t.Errorf("%s: %d counted, want %d", c.ctr.Rel, got, c.want)
				}
			}
		})
	}
}

// counted reads a counter's count for a container's cgroup (0 if it has none).
func counted(t *testing.T, m *ebpf.Map, kind counterKind, c *fakepod.Container) uint64 {
	t.Helper()
	if kind == hashCounter {
		var per []uint64
		if err := m.Lookup(c.CgroupID, &per); errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0
		} else if err != nil {
			t.Fatal(err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum
	}
	f, err := os.Open(c.V2Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var v uint64
	if err := m.Lookup(uint32(f.Fd()), &v); errors.Is(err, ebpf.ErrKeyNotExist) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return v
}
