package diskio

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	. "github.com/kpod-project/kpod/internal/cgroupfs/cgroupfstest"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

type ctr = cgroupfs.IOCounters
type dev = cgroupfs.Dev

func mk(major, minor uint32) dev { return dev{Major: major, Minor: minor} }

var v2Want = map[string]Stats{
	V2SbA:  {mk(8, 0): ctr{ReadBytes: 45056, Reads: 3}},
	V2AppA: {mk(8, 0): ctr{ReadBytes: 20480, WriteBytes: 8388608, Reads: 5, Writes: 128}, mk(253, 1): ctr{ReadBytes: 1572864, Reads: 48}},
	V2SbB:  {mk(8, 0): ctr{ReadBytes: 40960, Reads: 2}},
	V2AppB: {mk(8, 0): ctr{ReadBytes: 3932160, WriteBytes: 65536, Reads: 61, Writes: 4}},
	V2SbC:  {mk(8, 0): ctr{ReadBytes: 40960, Reads: 2}},
	V2AppC: {mk(253, 1): ctr{ReadBytes: 104857600, WriteBytes: 52428800, Reads: 3200, Writes: 1600}},
}

var hybridWant = map[string]Stats{
	HySbA:  {mk(8, 0): ctr{ReadBytes: 49152, Reads: 4}},
	HyAppA: {mk(8, 0): ctr{ReadBytes: 4096, WriteBytes: 1048576, Reads: 1, Writes: 256}, mk(253, 0): ctr{ReadBytes: 8192, Reads: 2}},
	// a device listed with zeros is a device the container touched: kept
	HyAppG: {mk(8, 16): ctr{}, mk(259, 0): ctr{ReadBytes: 67108864, WriteBytes: 33554432, Reads: 512, Writes: 1024}},
}

func keys(m map[string]Stats) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFileCollector(t *testing.T) {
	tests := []struct {
		name   string
		layout cgroupfs.Layout
		source Source
		want   map[string]Stats
	}{
		{"io.stat", V2Layout(filepath.Join(Fixtures, V2Tree)), SourceIOStat, v2Want},
		{"blkio.throttle", HybridLayout(filepath.Join(Fixtures, HybridTree)), SourceBlkio, hybridWant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewFileCollector(tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			if c.Source() != tc.source {
				t.Errorf("Source = %s, want %s", c.Source(), tc.source)
			}
			rels := keys(tc.want)
			ts := Targets(t, tc.layout.V2, rels...)
			ts = append(ts, cgroupfs.Target{ID: 42, Rel: "kubepods/removed-after-discovery"})
			res := c.CollectTargets(context.Background(), ts)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if len(res.Values) != len(rels) {
				t.Errorf("%d values, want %d", len(res.Values), len(rels))
			}
			for _, tg := range ts[:len(rels)] {
				if got := res.Values[tg.ID]; !reflect.DeepEqual(got, tc.want[tg.Rel]) {
					t.Errorf("%s = %v, want %v", filepath.Base(tg.Rel), got, tc.want[tg.Rel])
				}
			}
		})
	}
}

func TestNewFileCollectorNoSource(t *testing.T) {
	l := cgroupfs.FixtureLayout("/x", []string{"memory", "cpu"}, map[string]string{"memory": "/y"})
	if c, err := NewFileCollector(l); err == nil {
		t.Errorf("got a collector (%s) without io or blkio", c.Source())
	}
}

func TestFileCollectorErrors(t *testing.T) {
	tests := []struct {
		name   string
		hybrid bool
		file   string
		data   string // "" removes the file
		want   string
	}{
		{"io.stat malformed", false, "io.stat", "8:0 rbytes=1 wbytes=x\n", "io.stat:1"},
		{"io.stat bad device", false, "io.stat", "vda rbytes=1\n", "io.stat:1"},
		{"io.stat missing", false, "io.stat", "", "io.stat"},
		{"io_service_bytes malformed", true, "blkio.throttle.io_service_bytes", "8:0 Read\n", "io_service_bytes:1"},
		{"io_serviced malformed", true, "blkio.throttle.io_serviced", "8:0 Read 1\n8:0 Write w\n", "io_serviced:2"},
		{"io_serviced missing", true, "blkio.throttle.io_serviced", "", "io_serviced"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var l cgroupfs.Layout
			var bad, good, path string
			if tc.hybrid {
				root := CopyTree(t, filepath.Join(Fixtures, HybridTree))
				l, bad, good = HybridLayout(root), HyAppA, HySbA
				path = filepath.Join(root, "blkio", bad, tc.file)
			} else {
				root := CopyTree(t, filepath.Join(Fixtures, V2Tree))
				l, bad, good = V2Layout(root), V2AppA, V2SbA
				path = filepath.Join(root, bad, tc.file)
			}
			var err error
			if tc.data == "" {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, []byte(tc.data), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewFileCollector(l)
			if err != nil {
				t.Fatal(err)
			}
			ts := Targets(t, l.V2, []string{bad, good}...)
			res := c.CollectTargets(context.Background(), ts)
			if len(res.Errs) != 1 {
				t.Fatalf("errors %v, want one", res.Errs)
			}
			if msg := res.Errs[0].Error(); !strings.Contains(msg, filepath.Dir(path)) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not name %s", msg, tc.want)
			}
			if _, ok := res.Values[ts[0].ID]; ok {
				t.Error("failing container has a value")
			}
			if len(res.Values[ts[1].ID]) == 0 {
				t.Error("healthy container lost its value")
			}
		})
	}
}

func TestStatsAdd(t *testing.T) {
	a := Stats{mk(8, 0): ctr{ReadBytes: 1, WriteBytes: 2, Reads: 3, Writes: 4}}
	b := Stats{mk(8, 0): ctr{ReadBytes: 10, WriteBytes: 20, Reads: 30, Writes: 40}, mk(259, 1): ctr{ReadBytes: 5, Writes: 1}}
	got := a.Add(b)
	want := Stats{mk(8, 0): ctr{ReadBytes: 11, WriteBytes: 22, Reads: 33, Writes: 44}, mk(259, 1): ctr{ReadBytes: 5, Writes: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Add = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(b, Stats{mk(8, 0): ctr{ReadBytes: 10, WriteBytes: 20, Reads: 30, Writes: 40}, mk(259, 1): ctr{ReadBytes: 5, Writes: 1}}) {
		t.Errorf("Add modified its argument: %v", b)
	}

	var none Stats
	got = none.Add(b)
	if !reflect.DeepEqual(got, b) {
		t.Errorf("nil.Add = %v, want %v", got, b)
	}
	got[mk(8, 0)] = ctr{}
	if b[mk(8, 0)].ReadBytes != 10 {
		t.Error("nil.Add returned its argument instead of a copy")
	}
	if got := (Stats{}).Add(nil); got == nil || len(got) != 0 {
		t.Errorf("empty.Add(nil) = %v", got)
	}
}
