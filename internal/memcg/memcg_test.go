package memcg

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
)

const fixtures = "../../testdata/cgroupfs"

// Container cgroups of the fixture trees.
const (
	v2PodA   = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c5a3f2e_1b7d_4c19_9e2a_6f8d1c3b5a70.slice"
	v2PodB   = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice"
	v2PodC   = "kubepods.slice/kubepods-podd3f8a2c1_6b4e_4a09_b7d5_91e0c2f4a863.slice"
	v2SbA    = v2PodA + "/cri-containerd-c5e1748c83322244a289165adef73c68c7c6cca396fdc5266d90377b74795b75.scope"
	v2AppA   = v2PodA + "/cri-containerd-deb43f6f0a91228c0e312ae8dc8a046e8fe30539f912829856968db716bdc481.scope"
	v2SbB    = v2PodB + "/cri-containerd-9e5616a364a8a837301d378899971a9f16a71d2ded9f9ccee5ce32820fa1595f.scope"
	v2AppB   = v2PodB + "/cri-containerd-d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404.scope"
	v2SbC    = v2PodC + "/cri-containerd-9d3b51ab7459e13037801572595c079f713a18b64da1d2eae71b5a65cb1d9160.scope"
	v2AppC   = v2PodC + "/cri-containerd-78e0654d2cfef3ca680523a75edcd89f26056924c70dff7ff346faf7d7e77ee9.scope"
	hySbA    = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/48877a0826f4c3f1479c87d32b739c46716806dd07868b92e9f903d09b2da291"
	hyAppA   = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/7575cbf70158515553323a60a9126437bdbcb00598572642a3efc44fef5868c9"
	hyAppG   = "kubepods/poda91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947/63f1f9fd5166f82fed77535f2940bd43ac5e88abb67071d3572d64c66996af93"
	v2Layout = "v2-systemd-containerd"
)

func v2FixtureLayout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(root, []string{"cpu", "io", "memory", "pids"}, nil)
}

func hybridFixtureLayout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(filepath.Join(root, "unified"), []string{"hugetlb"},
		map[string]string{"memory": filepath.Join(root, "memory"), "blkio": filepath.Join(root, "blkio")})
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Ino
}

func targets(t *testing.T, v2 string, rels ...string) []collector.Target {
	var out []collector.Target
	for _, rel := range rels {
		out = append(out, collector.Target{ID: inode(t, filepath.Join(v2, rel)), Rel: rel})
	}
	return out
}

// copyTree copies a fixture tree to a temporary directory the test may modify.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

var v2Want = map[string]Stats{
	v2SbA:  {Usage: 782336, Peak: 1175552, HasPeak: true, Cache: 45056, Swap: 0, HasSwap: true},
	v2AppA: {Usage: 52441088, Peak: 73400320, HasPeak: true, Cache: 18874368, Swap: 1048576, HasSwap: true},
	v2SbB:  {Usage: 770048, Peak: 1163264, HasPeak: true, Cache: 40960, Swap: 0, HasSwap: true},
	v2AppB: {Usage: 8650752, Peak: 9437184, HasPeak: true, Cache: 3932160, Swap: 0, HasSwap: true},
	// no memory.peak (kernel < 5.19) and no memory.swap.current (no swap accounting)
	v2SbC:  {Usage: 765952, Cache: 40960},
	v2AppC: {Usage: 268435456, Cache: 62914560},
}

var hybridWant = map[string]Stats{
	// neither "swap" in memory.stat nor memory.memsw.*: swap accounting is off
	hySbA: {Usage: 724992, Peak: 1048576, HasPeak: true, Cache: 49152},
	// "swap" in memory.stat
	hyAppA: {Usage: 104857600, Peak: 125829120, HasPeak: true, Cache: 41943040, Swap: 2097152, HasSwap: true},
	// no "swap" in memory.stat: memsw.usage - usage = 213909504 - 209715200
	hyAppG: {Usage: 209715200, Peak: 230686720, HasPeak: true, Cache: 83886080, Swap: 4194304, HasSwap: true},
}

func TestReadStatsFixtures(t *testing.T) {
	v2root := filepath.Join(fixtures, v2Layout)
	for rel, want := range v2Want {
		got, err := ReadStats(v2FixtureLayout(v2root), rel)
		if err != nil {
			t.Errorf("v2 %s: %v", filepath.Base(rel), err)
		} else if got != want {
			t.Errorf("v2 %s = %+v, want %+v", filepath.Base(rel), got, want)
		}
	}
	hyroot := filepath.Join(fixtures, "hybrid-cgroupfs")
	for rel, want := range hybridWant {
		got, err := ReadStats(hybridFixtureLayout(hyroot), rel)
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
		{"v2", v2FixtureLayout(filepath.Join(fixtures, v2Layout)), v2Want},
		{"hybrid", hybridFixtureLayout(filepath.Join(fixtures, "hybrid-cgroupfs")), hybridWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rels []string
			for rel := range tc.want {
				rels = append(rels, rel)
			}
			ts := targets(t, tc.layout.V2, rels...)
			// a container that went away after discovery: skipped without an error
			ts = append(ts, collector.Target{ID: 1, Rel: "kubepods/gone"})
			res := New(tc.layout, nil).Collect(context.Background(), nil, ts)
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
		return func(t *testing.T, dir string) { write(t, filepath.Join(dir, name), content) }
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
				root := copyTree(t, filepath.Join(fixtures, "hybrid-cgroupfs"))
				l, rel = hybridFixtureLayout(root), hyAppG // no "swap" in its memory.stat: memsw is read
				dir = filepath.Join(root, "memory", rel)
			} else {
				root := copyTree(t, filepath.Join(fixtures, v2Layout))
				l, rel = v2FixtureLayout(root), v2AppA
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
			other := v2SbA
			if tc.hybrid {
				other = hySbA
			}
			ts := targets(t, l.V2, rel, other)
			res := New(l, nil).Collect(context.Background(), nil, ts)
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
	root := copyTree(t, filepath.Join(fixtures, "hybrid-cgroupfs"))
	l := hybridFixtureLayout(root)
	mem := func(rel, name string) string { return filepath.Join(root, "memory", rel, name) }

	// memory.stat "swap" wins over memsw when both exist.
	write(t, mem(hyAppA, "memory.memsw.usage_in_bytes"), "999999999\n")
	if s, err := ReadStats(l, hyAppA); err != nil || !s.HasSwap || s.Swap != 2097152 {
		t.Errorf("stat swap and memsw: %+v, %v; want swap 2097152 from memory.stat", s, err)
	}
	// memsw below usage (read at a different moment): no swap value rather than a wrapped one.
	write(t, mem(hyAppG, "memory.memsw.usage_in_bytes"), "209715199\n")
	if s, err := ReadStats(l, hyAppG); err != nil || s.HasSwap || s.Swap != 0 {
		t.Errorf("memsw < usage: %+v, %v; want no swap", s, err)
	}
	// memsw equal to usage: swap is a real 0.
	write(t, mem(hyAppG, "memory.memsw.usage_in_bytes"), "209715200\n")
	if s, err := ReadStats(l, hyAppG); err != nil || !s.HasSwap || s.Swap != 0 {
		t.Errorf("memsw == usage: %+v, %v; want swap 0", s, err)
	}
}

func TestNoMemoryController(t *testing.T) {
	l := cgroupfs.FixtureLayout(filepath.Join(fixtures, v2Layout), []string{"cpu", "io"}, map[string]string{"blkio": "/x"})
	if _, err := ReadStats(l, v2AppA); err == nil || !strings.Contains(err.Error(), "no memory controller") {
		t.Errorf("ReadStats err = %v", err)
	}
	if _, err := ReadMajorFaults(l, v2AppA); err == nil || !strings.Contains(err.Error(), "no memory controller") {
		t.Errorf("ReadMajorFaults err = %v", err)
	}
}

func TestMajorFaults(t *testing.T) {
	v2 := v2FixtureLayout(filepath.Join(fixtures, v2Layout))
	hy := hybridFixtureLayout(filepath.Join(fixtures, "hybrid-cgroupfs"))
	for _, tc := range []struct {
		l    cgroupfs.Layout
		rel  string
		want uint64
	}{
		{v2, v2AppA, 37}, {v2, v2AppB, 2}, {v2, v2AppC, 412}, {v2, v2SbA, 0},
		{hy, hyAppA, 112}, {hy, hyAppG, 9}, {hy, hySbA, 0},
	} {
		if got, err := ReadMajorFaults(tc.l, tc.rel); err != nil || got != tc.want {
			t.Errorf("ReadMajorFaults(%s) = %d, %v; want %d", filepath.Base(tc.rel), got, err, tc.want)
		}
	}

	ts := targets(t, v2.V2, v2AppA, v2AppC)
	res := NewFaults(v2, nil).Collect(context.Background(), nil, ts)
	if res.Err() != nil || res.Values[ts[0].ID] != 37 || res.Values[ts[1].ID] != 412 || len(res.Values) != 2 {
		t.Errorf("FaultCollector = %v, %v", res.Values, res.Err())
	}

	root := copyTree(t, filepath.Join(fixtures, v2Layout))
	l := v2FixtureLayout(root)
	write(t, filepath.Join(root, v2AppA, "memory.stat"), "anon 1\nfile 2\n")
	if _, err := ReadMajorFaults(l, v2AppA); err == nil || !strings.Contains(err.Error(), `no "pgmajfault"`) {
		t.Errorf("missing pgmajfault: err = %v", err)
	}
	write(t, filepath.Join(root, v2AppA, "memory.stat"), "pgmajfault many\n")
	if _, err := ReadMajorFaults(l, v2AppA); err == nil || !strings.Contains(err.Error(), filepath.Join(root, v2AppA, "memory.stat")) {
		t.Errorf("malformed pgmajfault: err = %v", err)
	}
	if err := os.Remove(filepath.Join(root, v2AppA, "memory.stat")); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMajorFaults(l, v2AppA); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing memory.stat: err = %v", err)
	}
}

// TestStatCacheSharesOneRead: the memory and pagefaults collectors read memory.stat once per
// cgroup and cycle between them, and again in the next cycle.
func TestStatCacheSharesOneRead(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pod")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, v string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory.stat", "file 10\npgmajfault 1\n")
	write("memory.current", "100\n")
	l := cgroupfs.FixtureLayout(root, []string{"memory"}, nil)
	cache := &StatCache{}
	ts := []collector.Target{{ID: 1, Rel: "pod"}}
	cycle1, cycle2 := new(int), new(int)
	if got := NewFaults(l, cache).Collect(context.Background(), cycle1, ts).Values[1]; got != 1 {
		t.Fatalf("faults = %d, want 1", got)
	}
	write("memory.stat", "file 20\npgmajfault 2\n") // changes after the first read of the cycle
	if got := New(l, cache).Collect(context.Background(), cycle1, ts).Values[1].Cache; got != 10 {
		t.Errorf("same cycle: cache = %d, want 10 (the cycle's one read)", got)
	}
	if got := New(l, cache).Collect(context.Background(), cycle2, ts).Values[1].Cache; got != 20 {
		t.Errorf("next cycle: cache = %d, want 20 (read again)", got)
	}
}
