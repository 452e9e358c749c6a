package cgroupfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParseDev(t *testing.T) {
	good := map[string]Dev{"8:0": {8, 0}, "259:3": {259, 3}, "253:17": {253, 17}, "0:0": {0, 0}, "4294967295:1": {4294967295, 1}}
	for s, want := range good {
		got, err := ParseDev(s)
		if err != nil || got != want {
			t.Errorf("ParseDev(%q) = %v, %v; want %v", s, got, err, want)
		}
		if got.String() != s {
			t.Errorf("Dev%v.String() = %q, want %q", got, got.String(), s)
		}
	}
	for _, s := range []string{"", "8", "8:", ":0", "a:0", "8:b", "-1:0", "8:0:1", "4294967296:0", "8 :0"} {
		if d, err := ParseDev(s); err == nil {
			t.Errorf("ParseDev(%q) = %v, want an error", s, d)
		} else if !strings.Contains(err.Error(), s) {
			t.Errorf("ParseDev(%q) error %q does not quote the input", s, err)
		}
	}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadUint(t *testing.T) {
	for content, want := range map[string]uint64{
		"52441088\n":             52441088,
		"0\n":                    0,
		"18446744073709551615\n": 18446744073709551615,
		"  7  \n":                7,
	} {
		p := writeTemp(t, "memory.current", content)
		if got, err := ReadUint(p); err != nil || got != want {
			t.Errorf("ReadUint(%q) = %d, %v; want %d", content, got, err, want)
		}
	}
	for _, content := range []string{"", "\n", "max\n", "-1\n", "1 2\n", "18446744073709551616\n", "12k\n"} {
		p := writeTemp(t, "memory.peak", content)
		got, err := ReadUint(p)
		if err == nil {
			t.Errorf("ReadUint(%q) = %d, want an error", content, got)
			continue
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("ReadUint(%q) error %q does not name the file", content, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "memory.current")
	if _, err := ReadUint(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("ReadUint(missing) error %v, want ErrNotExist naming the file", err)
	}
}

func TestParseKeyed(t *testing.T) {
	const path = "/sys/fs/cgroup/x/memory.stat"
	got, err := ParseKeyed(path, []byte("anon 31457280\nfile 18874368\n\npgmajfault 37\n  slab  927744  \nhierarchical_memsw_limit 9223372036854771712\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"anon": 31457280, "file": 18874368, "pgmajfault": 37, "slab": 927744, "hierarchical_memsw_limit": 9223372036854771712}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseKeyed = %v, want %v", got, want)
	}
	if got, err := ParseKeyed(path, nil); err != nil || len(got) != 0 {
		t.Errorf("ParseKeyed(empty) = %v, %v", got, err)
	}

	bad := []struct{ name, data, where string }{
		{"key without value", "anon 1\nfile\n", path + ":2"},
		{"non-numeric value", "anon 1\nfile lots\n", path + ":2"},
		{"negative value", "anon -1\n", path + ":1"},
		{"two values", "anon 1 2\n", path + ":1"},
		{"overflow", "anon 18446744073709551616\n", path + ":1"},
		{"tab separated", "anon\t1\n", path + ":1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseKeyed(path, []byte(tc.data))
			if err == nil {
				t.Fatalf("no error, got %v", m)
			}
			if m != nil {
				t.Errorf("partial result %v returned with the error", m)
			}
			if !strings.Contains(err.Error(), tc.where) {
				t.Errorf("error %q does not name %s", err, tc.where)
			}
		})
	}
}

func TestParseIOStat(t *testing.T) {
	const path = "/sys/fs/cgroup/x/io.stat"
	tests := []struct {
		name string
		data string
		want map[Dev]IOCounters
	}{
		{"two devices",
			"8:0 rbytes=20480 wbytes=8388608 rios=5 wios=128 dbytes=0 dios=0\n253:1 rbytes=1572864 wbytes=0 rios=48 wios=0 dbytes=4096 dios=1\n",
			map[Dev]IOCounters{{8, 0}: {20480, 8388608, 5, 128}, {253, 1}: {1572864, 0, 48, 0}}},
		{"empty", "", map[Dev]IOCounters{}},
		{"blank lines", "\n8:16 rbytes=1 wbytes=2 rios=3 wios=4\n\n", map[Dev]IOCounters{{8, 16}: {1, 2, 3, 4}}},
		// With blkcg_debug_stats the kernel appends iolatency and iocost fields; some are not
		// numbers ("depth=max"). They are not ours to parse and must not cost the counters.
		{"debug stats",
			"259:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0 use_delay=0 delay_nsec=0 depth=max avg_lat=112 win=100 cost.usage=0 cost.wait=0 cost.indebt=0 cost.indelay=0\n",
			map[Dev]IOCounters{{259, 0}: {4096, 8192, 1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIOStat(path, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseIOStat = %v, want %v", got, tc.want)
			}
		})
	}
	bad := []struct{ name, data, where string }{
		{"bad device", "8:0 rbytes=1\nsda rbytes=1\n", path + ":2"},
		{"field without =", "8:0 rbytes\n", path + ":1"},
		{"non-numeric counter", "8:0 rbytes=1 wbytes=lots\n", path + ":1"},
		{"negative counter", "8:0 rios=-4\n", path + ":1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseIOStat(path, []byte(tc.data))
			if err == nil {
				t.Fatalf("no error, got %v", m)
			}
			if !strings.Contains(err.Error(), tc.where) {
				t.Errorf("error %q does not name %s", err, tc.where)
			}
		})
	}
}

func TestParseBlkioThrottle(t *testing.T) {
	const path = "/sys/fs/cgroup/blkio/x/blkio.throttle.io_service_bytes"
	real := `8:0 Read 4096
8:0 Write 1048576
8:0 Sync 1048576
8:0 Async 4096
8:0 Discard 0
8:0 Total 1052672
253:0 Read 8192
253:0 Write 0
253:0 Sync 0
253:0 Async 8192
253:0 Discard 0
253:0 Total 8192
Total 1060864
`
	got, err := ParseBlkioThrottle(path, []byte(real))
	if err != nil {
		t.Fatal(err)
	}
	want := map[Dev][2]uint64{{8, 0}: {4096, 1048576}, {253, 0}: {8192, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseBlkioThrottle = %v, want %v", got, want)
	}
	// A cgroup that never did I/O has only the total.
	if got, err := ParseBlkioThrottle(path, []byte("Total 0\n")); err != nil || len(got) != 0 {
		t.Errorf("Total-only file: %v, %v", got, err)
	}

	bad := []struct{ name, data, where string }{
		{"missing value", "8:0 Read\n", path + ":1"},
		{"non-numeric value", "8:0 Read 1\n8:0 Write x\n", path + ":2"},
		{"extra field", "8:0 Read 1 2\n", path + ":1"},
		{"bad device", "8:0 Read 1\nsda Read 1\n", path + ":2"},
		{"total with extra field", "Total 1 2\n", path + ":1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseBlkioThrottle(path, []byte(tc.data))
			if err == nil {
				t.Fatalf("no error, got %v", m)
			}
			if !strings.Contains(err.Error(), tc.where) {
				t.Errorf("error %q does not name %s", err, tc.where)
			}
		})
	}
}

func TestWalk(t *testing.T) {
	root := filepath.Join(fixtureDir, "v2-systemd-docker")
	dirs, err := Walk(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 || dirs[0].Rel != "" {
		t.Fatalf("first dir %+v, want the root with Rel \"\"", dirs)
	}
	seen := map[string]bool{}
	n := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != n {
		t.Errorf("Walk listed %d dirs, want %d", len(dirs), n)
	}
	for _, d := range dirs {
		if strings.HasPrefix(d.Rel, "/") {
			t.Errorf("Rel %q has a leading slash", d.Rel)
		}
		if parent := filepath.Dir(d.Rel); d.Rel != "" && parent != "." && !seen[parent] {
			t.Errorf("%q listed before its parent", d.Rel)
		}
		seen[d.Rel] = true
		info, err := os.Stat(filepath.Join(root, d.Rel))
		if err != nil {
			t.Fatal(err)
		}
		if ino := info.Sys().(*syscall.Stat_t).Ino; d.ID != ino {
			t.Errorf("%q: ID %d, want inode %d", d.Rel, d.ID, ino)
		}
		if id, err := Inode(filepath.Join(root, d.Rel)); err != nil || id != d.ID {
			t.Errorf("Inode(%q) = %d, %v; want %d", d.Rel, id, err, d.ID)
		}
	}
	if _, err := Walk(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Walk of a missing root succeeded")
	}
	if _, err := Inode(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Inode of a missing path succeeded")
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	want := bytes.Repeat([]byte("0123456789abcdef"), 3000) // larger than the pooled buffer
	if err := os.WriteFile(small, []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, want, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // pooled buffers are reused: results must not alias them
		b, err := ReadFile(big)
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("big: %d bytes, %v", len(b), err)
		}
		s, err := ReadFile(small)
		if err != nil || string(s) != "42\n" {
			t.Fatalf("small: %q, %v", s, err)
		}
		if !bytes.Equal(b, want) {
			t.Fatal("an earlier result changed after the next read")
		}
	}
	// /proc files report size 0 in stat; they must still read whole.
	if b, err := ReadFile("/proc/self/status"); err != nil || !bytes.Contains(b, []byte("Pid:")) {
		t.Fatalf("/proc/self/status: %q, %v", b, err)
	}
	_, err := ReadFile(filepath.Join(dir, "missing"))
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != filepath.Join(dir, "missing") {
		t.Fatalf("missing file: %v, want a *fs.PathError for ErrNotExist", err)
	}
	if _, err := ReadFile(dir); err == nil {
		t.Fatal("reading a directory: no error")
	}
}

// TestStatCacheSharesOneRead: collectors asking for the same memory.stat in one cycle share
// one read; the next cycle reads again.
func TestStatCacheSharesOneRead(t *testing.T) {
	dir := t.TempDir()
	write := func(v string) {
		if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("file 10\npgmajfault 1\n")
	cache := &StatCache{}
	cycle1, cycle2 := new(int), new(int)
	if m, err := cache.MemoryStat(cycle1, dir); err != nil || m["pgmajfault"] != 1 {
		t.Fatalf("first read: %v, %v", m, err)
	}
	write("file 20\npgmajfault 2\n") // changes after the first read of the cycle
	if m, _ := cache.MemoryStat(cycle1, dir); m["file"] != 10 {
		t.Errorf("same cycle: file = %d, want 10 (the cycle's one read)", m["file"])
	}
	if m, _ := cache.MemoryStat(cycle2, dir); m["file"] != 20 {
		t.Errorf("next cycle: file = %d, want 20 (read again)", m["file"])
	}
	var none *StatCache // nil: reads every time
	if m, _ := none.MemoryStat(cycle2, dir); m["file"] != 20 {
		t.Errorf("nil cache: file = %d", m["file"])
	}
	if _, err := StatKey(map[string]uint64{}, dir, "file"); err == nil || !strings.Contains(err.Error(), `no "file"`) {
		t.Errorf("StatKey of a missing key: %v", err)
	}
	// Only MemoryStatKeys are kept; asking for another is a mistake of the caller's, said so.
	write("file 30\nanon 5\nanon 6\n")
	if m, err := cache.MemoryStat(new(int), dir); err != nil || !reflect.DeepEqual(m, map[string]uint64{"file": 30}) {
		t.Errorf("MemoryStat = %v, %v; want file only (anon, even given twice, is not kept)", m, err)
	}
	if _, err := StatKey(map[string]uint64{"anon": 5}, dir, "anon"); err == nil || !strings.Contains(err.Error(), "not one of MemoryStatKeys") {
		t.Errorf("StatKey of a key not kept: %v", err)
	}
	// A malformed line fails the read, kept key or not.
	write("file 30\nanon x\n")
	if m, err := cache.MemoryStat(new(int), dir); err == nil || !strings.Contains(err.Error(), "memory.stat:2") {
		t.Errorf("MemoryStat of a malformed file = %v, %v; want an error naming line 2", m, err)
	}
}

// BenchmarkParseMemoryStat: a v1 memory.stat of the hybrid fixture (34 keys), parsed whole
// and for MemoryStatKeys (go test -run X -bench ParseMemoryStat ./internal/cgroupfs).
func BenchmarkParseMemoryStat(b *testing.B) {
	path := filepath.Join(fixtureDir, "hybrid-cgroupfs/memory/kubepods/poda91c7e3d-24f5-4b8a-8e06-c3d5f1b2e947/63f1f9fd5166f82fed77535f2940bd43ac5e88abb67071d3572d64c66996af93/memory.stat")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ParseKeyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseKeyed(path, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseKeys", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseKeys(path, data, MemoryStatKeys); err != nil {
				b.Fatal(err)
			}
		}
	})
}
