package diskio

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/collector"
)

const fixtures = "../../testdata/cgroupfs"

const (
	v2PodA = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0c5a3f2e_1b7d_4c19_9e2a_6f8d1c3b5a70.slice"
	v2PodB = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod7e41b9d0_53a2_4f6e_8c1d_2b9a0e4f7c13.slice"
	v2PodC = "kubepods.slice/kubepods-podd3f8a2c1_6b4e_4a09_b7d5_91e0c2f4a863.slice"
	v2SbA  = v2PodA + "/cri-containerd-c5e1748c83322244a289165adef73c68c7c6cca396fdc5266d90377b74795b75.scope"
	v2AppA = v2PodA + "/cri-containerd-deb43f6f0a91228c0e312ae8dc8a046e8fe30539f912829856968db716bdc481.scope"
	v2SbB  = v2PodB + "/cri-containerd-9e5616a364a8a837301d378899971a9f16a71d2ded9f9ccee5ce32820fa1595f.scope"
	v2AppB = v2PodB + "/cri-containerd-d36e10ff75e90c25debb66426b0ec69d1766914e5b9ae47cb41a5383b14f1404.scope"
	v2SbC  = v2PodC + "/cri-containerd-9d3b51ab7459e13037801572595c079f713a18b64da1d2eae71b5a65cb1d9160.scope"
	v2AppC = v2PodC + "/cri-containerd-78e0654d2cfef3ca680523a75edcd89f26056924c70dff7ff346faf7d7e77ee9.scope"
	hySbA  = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/48877a0826f4c3f1479c87d32b739c46716806dd07868b92e9f903d09b2da291"
	hyAppA = "kubepods/burstable/pod5b2e8c4f-0a1d-4e3b-9f6c-7d8e2a1b4c05/7575cbf70158515553323a60a9126437bdbcb00598572642a3efc44fef5868c9"
	hyAppG = "kubepods/poda91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947/63f1f9fd5166f82fed77535f2940bd43ac5e88abb67071d3572d64c66996af93"
)

type ctr = cgroupfs.IOCounters
type dev = cgroupfs.Dev

func mk(major, minor uint32) dev { return dev{Major: major, Minor: minor} }

var v2Want = map[string]Stats{
	v2SbA:  {mk(8, 0): ctr{ReadBytes: 45056, Reads: 3}},
	v2AppA: {mk(8, 0): ctr{ReadBytes: 20480, WriteBytes: 8388608, Reads: 5, Writes: 128}, mk(253, 1): ctr{ReadBytes: 1572864, Reads: 48}},
	v2SbB:  {mk(8, 0): ctr{ReadBytes: 40960, Reads: 2}},
	v2AppB: {mk(8, 0): ctr{ReadBytes: 3932160, WriteBytes: 65536, Reads: 61, Writes: 4}},
	v2SbC:  {mk(8, 0): ctr{ReadBytes: 40960, Reads: 2}},
	v2AppC: {mk(253, 1): ctr{ReadBytes: 104857600, WriteBytes: 52428800, Reads: 3200, Writes: 1600}},
}

var hybridWant = map[string]Stats{
	hySbA:  {mk(8, 0): ctr{ReadBytes: 49152, Reads: 4}},
	hyAppA: {mk(8, 0): ctr{ReadBytes: 4096, WriteBytes: 1048576, Reads: 1, Writes: 256}, mk(253, 0): ctr{ReadBytes: 8192, Reads: 2}},
	// a device listed with zeros is a device the container touched: kept
	hyAppG: {mk(8, 16): ctr{}, mk(259, 0): ctr{ReadBytes: 67108864, WriteBytes: 33554432, Reads: 512, Writes: 1024}},
}

func v2FixtureLayout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(root, []string{"cpu", "io", "memory", "pids"}, nil)
}

func hybridFixtureLayout(root string) cgroupfs.Layout {
	return cgroupfs.FixtureLayout(filepath.Join(root, "unified"), []string{"hugetlb"},
		map[string]string{"memory": filepath.Join(root, "memory"), "blkio": filepath.Join(root, "blkio")})
}

func targetsOf(t *testing.T, v2 string, rels []string) []collector.Target {
	t.Helper()
	var out []collector.Target
	for _, rel := range rels {
		info, err := os.Stat(filepath.Join(v2, rel))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, collector.Target{ID: info.Sys().(*syscall.Stat_t).Ino, Rel: rel})
	}
	return out
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
		{"io.stat", v2FixtureLayout(filepath.Join(fixtures, "v2-systemd-containerd")), SourceIOStat, v2Want},
		{"blkio.throttle", hybridFixtureLayout(filepath.Join(fixtures, "hybrid-cgroupfs")), SourceBlkio, hybridWant},
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
			ts := targetsOf(t, tc.layout.V2, rels)
			ts = append(ts, collector.Target{ID: 42, Rel: "kubepods/removed-after-discovery"})
			res := c.Collect(context.Background(), ts)
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
				root := copyTree(t, filepath.Join(fixtures, "hybrid-cgroupfs"))
				l, bad, good = hybridFixtureLayout(root), hyAppA, hySbA
				path = filepath.Join(root, "blkio", bad, tc.file)
			} else {
				root := copyTree(t, filepath.Join(fixtures, "v2-systemd-containerd"))
				l, bad, good = v2FixtureLayout(root), v2AppA, v2SbA
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
			ts := targetsOf(t, l.V2, []string{bad, good})
			res := c.Collect(context.Background(), ts)
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

func TestDeviceNames(t *testing.T) {
	sys := t.TempDir()
	block := filepath.Join(sys, "dev", "block")
	if err := os.MkdirAll(block, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(d, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(block, d)); err != nil {
			t.Fatal(err)
		}
	}
	link("254:0", "../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda")
	link("254:1", "../../devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1")
	link("7:3", "../../devices/virtual/block/loop3")

	n := &DeviceNames{SysRoot: sys}
	for d, want := range map[dev]string{mk(254, 0): "vda", mk(254, 1): "vda1", mk(7, 3): "loop3", mk(259, 7): "259:7"} {
		if got := n.Name(d); got != want {
			t.Errorf("Name(%v) = %q, want %q", d, got, want)
		}
	}
	// The fallback is not remembered: a device that appears later gets its name.
	link("259:7", "../../devices/pci0000:00/0000:00:06.0/nvme/nvme0/nvme0n1")
	if got := n.Name(mk(259, 7)); got != "nvme0n1" {
		t.Errorf("Name after the device appeared = %q, want nvme0n1", got)
	}
	// Names found are remembered.
	if err := os.Remove(filepath.Join(block, "254:0")); err != nil {
		t.Fatal(err)
	}
	if got := n.Name(mk(254, 0)); got != "vda" {
		t.Errorf("cached Name = %q, want vda", got)
	}
	// Safe for concurrent use (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := n.Name(mk(7, 3)); got != "loop3" {
				t.Errorf("concurrent Name = %q", got)
			}
		}()
	}
	wg.Wait()
	// The zero value works (relative to a directory without dev/block).
	var z DeviceNames
	if got := z.Name(mk(8, 0)); got != "8:0" {
		t.Errorf("zero DeviceNames: %q", got)
	}
}
