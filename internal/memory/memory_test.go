package memory

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	. "github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"
)

var v2Want = map[string]Stats{
	V2SbA:  {Usage: 782336, Peak: 1175552, HasPeak: true, Cache: 45056, Swap: 0, HasSwap: true},
	V2AppA: {Usage: 52441088, Peak: 73400320, HasPeak: true, Cache: 18874368, Swap: 1048576, HasSwap: true},
	V2SbB:  {Usage: 770048, Peak: 1163264, HasPeak: true, Cache: 40960, Swap: 0, HasSwap: true},
	V2AppB: {Usage: 8650752, Peak: 9437184, HasPeak: true, Cache: 3932160, Swap: 0, HasSwap: true},
	// no memory.peak (kernel < 5.19) and no memory.swap.current (no swap accounting)
	V2SbC:  {Usage: 765952, Cache: 40960},
	V2AppC: {Usage: 268435456, Cache: 62914560},
}

var hybridWant = map[string]Stats{
	// neither "swap" in memory.stat nor memory.memsw.*: swap accounting is off
	HySbA: {Usage: 724992, Peak: 1048576, HasPeak: true, Cache: 49152},
	// "swap" in memory.stat
	HyAppA: {Usage: 104857600, Peak: 125829120, HasPeak: true, Cache: 41943040, Swap: 2097152, HasSwap: true},
	// no "swap" in memory.stat: memsw.usage - usage = 213909504 - 209715200
	HyAppG: {Usage: 209715200, Peak: 230686720, HasPeak: true, Cache: 83886080, Swap: 4194304, HasSwap: true},
}

func TestReadStatsFixtures(t *testing.T) {
	v2root := filepath.Join(Fixtures, V2Tree)
	for rel, want := range v2Want {
		got, err := ReadStats(V2Layout(v2root), rel)
		if err != nil {
			t.Errorf("v2 %s: %v", filepath.Base(rel), err)
		} else if got != want {
			t.Errorf("v2 %s = %+v, want %+v", filepath.Base(rel), got, want)
		}
	}
	hyroot := filepath.Join(Fixtures, HybridTree)
	for rel, want := range hybridWant {
		got, err := ReadStats(HybridLayout(hyroot), rel)
		if err != nil {
			t.Errorf("hybrid %s: %v", filepath.Base(rel), err)
		} else if got != want {
			t.Errorf("hybrid %s = %+v, want %+v", filepath.Base(rel), got, want)
		}
	}
}

func TestCollect(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout cgroupfs.Layout
		want   map[string]Stats
	}{
		{"v2", V2Layout(filepath.Join(Fixtures, V2Tree)), v2Want},
		{"hybrid", HybridLayout(filepath.Join(Fixtures, HybridTree)), hybridWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rels []string
			for rel := range tc.want {
				rels = append(rels, rel)
			}
			ts := Targets(t, tc.layout.V2, rels...)
			// a container that went away after discovery: skipped without an error
			ts = append(ts, cgroupfs.Target{ID: 1, Rel: "kubepods/gone"})
			res := mustNew(t, tc.layout).CollectTargets(context.Background(), nil, ts)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if len(res.Values) != len(tc.want) {
				t.Errorf("%d values, want %d", len(res.Values), len(tc.want))
			}
			for _, tg := range ts[:len(rels)] {
				if got := res.Values[tg.ID]; got != tc.want[tg.Rel] {
					t.Errorf("%s = %+v, want %+v", filepath.Base(tg.Rel), got, tc.want[tg.Rel])
				}
			}
		})
	}
}

func TestReadStatsErrors(t *testing.T) {
	type mutate func(t *testing.T, dir string)
	rm := func(name string) mutate {
		return func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	set := func(name, content string) mutate {
		return func(t *testing.T, dir string) { Write(t, filepath.Join(dir, name), content) }
	}
	tests := []struct {
		name   string
		hybrid bool
		change mutate
		file   string // the error must name this file (or directory)
		want   string // and contain this
	}{
		{"v2 malformed memory.stat", false, set("memory.stat", "anon 1\nfile\n"), "memory.stat", ":2"},
		{"v2 non-numeric memory.stat", false, set("memory.stat", "anon 1\nfile 12x\n"), "memory.stat", "file"},
		{"v2 memory.stat without file", false, set("memory.stat", "anon 1\npgmajfault 3\n"), "", `no "file"`},
		{"v2 memory.stat missing", false, rm("memory.stat"), "memory.stat", "no such file"},
		{"v2 memory.current malformed", false, set("memory.current", "lots\n"), "memory.current", "not a number"},
		{"v2 memory.current missing", false, rm("memory.current"), "memory.current", "no such file"},
		{"v2 memory.peak malformed", false, set("memory.peak", "\n"), "memory.peak", "not a number"},
		{"v2 memory.swap.current malformed", false, set("memory.swap.current", "max\n"), "memory.swap.current", "not a number"},
		{"v1 memory.stat malformed", true, set("memory.stat", "cache 1\nrss two\n"), "memory.stat", ":2"},
		{"v1 memory.stat without cache", true, set("memory.stat", "rss 1\nswap 0\n"), "", `no "cache"`},
		{"v1 usage missing", true, rm("memory.usage_in_bytes"), "memory.usage_in_bytes", "no such file"},
		{"v1 max usage malformed", true, set("memory.max_usage_in_bytes", "-1\n"), "memory.max_usage_in_bytes", "not a number"},
		{"v1 memsw malformed", true, set("memory.memsw.usage_in_bytes", "x\n"), "memory.memsw.usage_in_bytes", "not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l cgroupfs.Layout
			var dir, rel string
			if tc.hybrid {
				root := CopyTree(t, filepath.Join(Fixtures, HybridTree))
				l, rel = HybridLayout(root), HyAppG // no "swap" in its memory.stat: memsw is read
				dir = filepath.Join(root, "memory", rel)
			} else {
				root := CopyTree(t, filepath.Join(Fixtures, V2Tree))
				l, rel = V2Layout(root), V2AppA
				dir = filepath.Join(root, rel)
			}
			tc.change(t, dir)
			s, err := ReadStats(l, rel)
			if err == nil {
				t.Fatalf("no error, got %+v", s)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to name %s and say %q", err, filepath.Join(dir, tc.file), tc.want)
			}
			// Through the collector, the error is reported (the cgroup is still there) and the
			// other containers keep their values.
			other := V2SbA
			if tc.hybrid {
				other = HySbA
			}
			ts := Targets(t, l.V2, rel, other)
			res := mustNew(t, l).CollectTargets(context.Background(), nil, ts)
			if len(res.Errs) != 1 {
				t.Errorf("Collect errors %v, want exactly one", res.Errs)
			}
			if _, ok := res.Values[ts[0].ID]; ok {
				t.Error("failing container has a value")
			}
			if _, ok := res.Values[ts[1].ID]; !ok {
				t.Error("healthy container lost its value")
			}
		})
	}
}

func TestSwapSources(t *testing.T) {
	root := CopyTree(t, filepath.Join(Fixtures, HybridTree))
	l := HybridLayout(root)
	mem := func(rel, name string) string { return filepath.Join(root, "memory", rel, name) }

	// memory.stat "swap" wins over memsw when both exist.
	Write(t, mem(HyAppA, "memory.memsw.usage_in_bytes"), "999999999\n")
	if s, err := ReadStats(l, HyAppA); err != nil || !s.HasSwap || s.Swap != 2097152 {
		t.Errorf("stat swap and memsw: %+v, %v; want swap 2097152 from memory.stat", s, err)
	}
	// memsw below usage (read at a different moment): no swap value rather than a wrapped one.
	Write(t, mem(HyAppG, "memory.memsw.usage_in_bytes"), "209715199\n")
	if s, err := ReadStats(l, HyAppG); err != nil || s.HasSwap || s.Swap != 0 {
		t.Errorf("memsw < usage: %+v, %v; want no swap", s, err)
	}
	// memsw equal to usage: swap is a real 0.
	Write(t, mem(HyAppG, "memory.memsw.usage_in_bytes"), "209715200\n")
	if s, err := ReadStats(l, HyAppG); err != nil || !s.HasSwap || s.Swap != 0 {
		t.Errorf("memsw == usage: %+v, %v; want swap 0", s, err)
	}
}

func TestNoMemoryController(t *testing.T) {
	l := cgroupfs.FixtureLayout(filepath.Join(Fixtures, V2Tree), []string{"cpu", "io"}, map[string]string{"blkio": "/x"})
	if _, err := ReadStats(l, V2AppA); err == nil || !strings.Contains(err.Error(), "no memory controller") {
		t.Errorf("ReadStats err = %v", err)
	}
	if _, err := New(l, nil); err == nil || !strings.Contains(err.Error(), "no memory cgroup controller") {
		t.Errorf("New err = %v", err)
	}
}

func mustNew(t *testing.T, l cgroupfs.Layout) *Collector {
	t.Helper()
	c, err := New(l, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
