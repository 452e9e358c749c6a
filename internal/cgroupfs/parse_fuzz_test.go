package cgroupfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/fuzzseed"
)

// The fuzz targets of the cgroup file parsers. Each checks the parser against a small
// independent reading of the format (an oracle written from the kernel's output, not from
// the parser): a file the oracle accepts parses to exactly the oracle's values and survives
// being printed the kernel's way and parsed again; a file it rejects is an error naming the
// file and the first bad line, with no partial result. Seeds: the fixtures, the committed
// corpora in testdata/fuzz, and the real files of this host.

// addCgroupSeeds adds the files named names from the fixture trees and this host's cgroups.
func addCgroupSeeds(f *testing.F, names ...string) {
	for _, root := range []string{fixtureDir, "/sys/fs/cgroup"} {
		for _, b := range fuzzseed.Files(root, 16, names...) {
			f.Add(b)
		}
	}
}

// decimalU64 is the oracle's reading of an unsigned decimal counter: digits only, at most
// 2^64-1 (leading zeros allowed, as strconv does; the kernel never writes them).
func decimalU64(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	t := strings.TrimLeft(s, "0")
	const max = "18446744073709551615"
	if len(t) > len(max) || len(t) == len(max) && t > max {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(t); i++ {
		v = v*10 + uint64(t[i]-'0')
	}
	return v, true
}

// decimalU32 is decimalU64 within 32 bits.
func decimalU32(s string) (uint32, bool) {
	v, ok := decimalU64(s)
	return uint32(v), ok && v <= 1<<32-1
}

// devOracle reads "major:minor" with both numbers within 32 bits.
func devOracle(s string) (Dev, bool) {
	a, b, ok := strings.Cut(s, ":")
	maj, ok1 := decimalU32(a)
	min, ok2 := decimalU32(b)
	return Dev{maj, min}, ok && ok1 && ok2
}

// checkRejected asserts err names path and line bad, and that no partial result came with it.
func checkRejected(t *testing.T, path string, bad int, got any, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("line %d is malformed, but the file parsed to %v", bad, got)
	}
	if where := fmt.Sprintf("%s:%d:", path, bad); !strings.Contains(err.Error(), where) {
		t.Fatalf("error %q does not name %s", err, where)
	}
	if !reflect.ValueOf(got).IsNil() {
		t.Fatalf("partial result %v returned with the error", got)
	}
}

// FuzzParseDev: "major:minor" with two decimal 32-bit numbers, nothing else; a device prints
// back to a string that parses to it; an error quotes the input. KernelDev splits a BPF dev_t
// into a 12-bit major and a 20-bit minor that rebuild it.
func FuzzParseDev(f *testing.F) {
	for _, s := range []string{"8:0", "259:3", "0:0", "4294967295:1", "4294967296:0", "08:1", "8:", ":0", "8:0:1", "-1:0", "+8:0", "8 :0", "1_0:0"} {
		f.Add(s, uint32(8<<20|1))
	}
	if ents, err := os.ReadDir("/sys/dev/block"); err == nil {
		for _, e := range ents {
			f.Add(e.Name(), uint32(0))
		}
	}
	f.Fuzz(func(t *testing.T, s string, kdev uint32) {
		d, err := ParseDev(s)
		want, ok := devOracle(s)
		switch {
		case ok && err != nil:
			t.Fatalf("ParseDev(%q): %v, want %v", s, err, want)
		case !ok && err == nil:
			t.Fatalf("ParseDev(%q) = %v, want an error", s, d)
		case err != nil && !strings.Contains(err.Error(), strconv.Quote(s)):
			t.Fatalf("ParseDev(%q) error %q does not quote the input", s, err)
		case ok && d != want:
			t.Fatalf("ParseDev(%q) = %v, want %v", s, d, want)
		}
		if ok {
			if again, err := ParseDev(d.String()); err != nil || again != d {
				t.Fatalf("ParseDev(%q) = %v, %v; want %v", d.String(), again, err, d)
			}
		}
		k := KernelDev(kdev)
		if k.Major >= 1<<12 || k.Minor >= 1<<20 || k.Major<<20|k.Minor != kdev {
			t.Fatalf("KernelDev(%#x) = %v", kdev, k)
		}
	})
}

// FuzzReadUint: a file holding one unsigned number (whitespace around it allowed) reads as
// that number, anything else is an error naming the file.
func FuzzReadUint(f *testing.F) {
	for _, s := range []string{"52441088\n", "0\n", "max\n", "-1\n", "  7 \n", "1 2\n", "18446744073709551616\n", "0x10\n", ""} {
		f.Add([]byte(s))
	}
	addCgroupSeeds(f, "memory.current", "memory.peak", "memory.swap.current", "memory.usage_in_bytes",
		"memory.max_usage_in_bytes", "memory.memsw.usage_in_bytes", "memory.max", "cgroup.max.depth")
	path := filepath.Join(f.TempDir(), "memory.current")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		v, err := ReadUint(path)
		want, ok := decimalU64(string(bytes.TrimSpace(data)))
		switch {
		case ok && (err != nil || v != want):
			t.Fatalf("ReadUint(%q) = %d, %v; want %d", data, v, err, want)
		case !ok && err == nil:
			t.Fatalf("ReadUint(%q) = %d, want an error", data, v)
		case err != nil && !strings.Contains(err.Error(), path):
			t.Fatalf("ReadUint(%q) error %q does not name the file", data, err)
		}
	})
}

// keyedOracle reads a flat keyed file: a line is blank, or a key (no white space), one or
// more spaces, and a decimal value; a key given twice is malformed (which value is right?).
// It returns the values, or the number of the first malformed line.
func keyedOracle(data string) (map[string]uint64, int) {
	out := map[string]uint64{}
	for i, line := range strings.Split(data, "\n") {
		t := strings.TrimSpace(line)
		f := strings.Fields(t)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || t[len(f[0])] != ' ' {
			return nil, i + 1
		}
		v, ok := decimalU64(f[1])
		if _, dup := out[f[0]]; !ok || dup {
			return nil, i + 1
		}
		out[f[0]] = v
	}
	return out, 0
}

// FuzzParseKeyed: memory.stat, cpu.stat and the other flat keyed files.
func FuzzParseKeyed(f *testing.F) {
	for _, s := range []string{"anon 31457280\nfile 18874368\n", "  slab  927744  \n", "anon\t1\n", "anon 1 2\n", "anon -1\n", ""} {
		f.Add([]byte(s))
	}
	addCgroupSeeds(f, "memory.stat", "cpu.stat", "cgroup.stat", "memory.events", "pids.events", "hugetlb.2MB.events")
	const path = "/sys/fs/cgroup/kubepods/pod/ctr/memory.stat"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseKeyed(path, data)
		want, bad := keyedOracle(string(data))
		if bad > 0 {
			checkRejected(t, path, bad, got, err)
			return
		}
		if err != nil {
			t.Fatalf("well-formed file rejected: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseKeyed = %v, want %v", got, want)
		}
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %d\n", k, got[k])
		}
		if again, err := ParseKeyed(path, []byte(b.String())); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("printed back as %q it parses to %v, %v; want %v", b.String(), again, err, got)
		}
	})
}

// ioStatOracle reads io.stat: a line is blank, or a device and key=value fields; the four
// counters kpod reads are decimal and given at most once; other fields are not read (with
// blkcg_debug_stats some are not numbers); a device given twice is malformed. A device line
// without counters is the kernel's way of saying all are zero.
func ioStatOracle(data string) (map[Dev]IOCounters, int) {
	out := map[Dev]IOCounters{}
	for i, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dev, ok := devOracle(f[0])
		if _, dup := out[dev]; !ok || dup {
			return nil, i + 1
		}
		var c IOCounters
		seen := map[string]bool{}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, i + 1
			}
			dst := map[string]*uint64{"rbytes": &c.ReadBytes, "wbytes": &c.WriteBytes, "rios": &c.Reads, "wios": &c.Writes}[k]
			if dst == nil {
				continue
			}
			n, ok := decimalU64(v)
			if !ok || seen[k] {
				return nil, i + 1
			}
			seen[k], *dst = true, n
		}
		out[dev] = c
	}
	return out, 0
}

// FuzzParseIOStat: cgroup v2 io.stat.
func FuzzParseIOStat(f *testing.F) {
	for _, s := range []string{
		"8:0 rbytes=20480 wbytes=8388608 rios=5 wios=128 dbytes=0 dios=0\n253:1 rbytes=1572864 wbytes=0 rios=48 wios=0 dbytes=4096 dios=1\n",
		"259:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0 use_delay=0 delay_nsec=0 depth=max avg_lat=112 win=100 cost.usage=0\n",
		"8:0 \n", "8:0 rios=-4\n", "sda rbytes=1\n",
	} {
		f.Add([]byte(s))
	}
	addCgroupSeeds(f, "io.stat")
	const path = "/sys/fs/cgroup/kubepods/pod/ctr/io.stat"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseIOStat(path, data)
		want, bad := ioStatOracle(string(data))
		if bad > 0 {
			checkRejected(t, path, bad, got, err)
			return
		}
		if err != nil {
			t.Fatalf("well-formed file rejected: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseIOStat = %v, want %v", got, want)
		}
		var b strings.Builder
		for d, c := range got {
			fmt.Fprintf(&b, "%s rbytes=%d wbytes=%d rios=%d wios=%d dbytes=0 dios=0\n", d, c.ReadBytes, c.WriteBytes, c.Reads, c.Writes)
		}
		if again, err := ParseIOStat(path, []byte(b.String())); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("printed back as %q it parses to %v, %v; want %v", b.String(), again, err, got)
		}
	})
}

// blkioOracle reads a v1 blkio.throttle.io_service_bytes / io_serviced file: per device the
// lines "MAJ:MIN Op N" (Op: Read, Write, Sync, Async, Discard, Total — the kernel prints
// every one, so a device without a Read and a Write line is malformed, as is an operation
// given twice), and a last "Total N".
func blkioOracle(data string) (map[Dev][2]uint64, int) {
	out := map[Dev][2]uint64{}
	first := map[Dev]int{}
	seen := map[Dev]map[string]bool{}
	for i, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) == 2 && f[0] == "Total":
			if _, ok := decimalU64(f[1]); !ok {
				return nil, i + 1
			}
			continue
		case len(f) != 3:
			return nil, i + 1
		}
		dev, ok1 := devOracle(f[0])
		n, ok2 := decimalU64(f[2])
		if !ok1 || !ok2 || seen[dev][f[1]] {
			return nil, i + 1
		}
		if seen[dev] == nil {
			seen[dev], first[dev] = map[string]bool{}, i+1
		}
		seen[dev][f[1]] = true
		v := out[dev]
		switch f[1] {
		case "Read":
			v[0] = n
		case "Write":
			v[1] = n
		}
		out[dev] = v
	}
	bad := 0
	for d, ops := range seen {
		if (!ops["Read"] || !ops["Write"]) && (bad == 0 || first[d] < bad) {
			bad = first[d]
		}
	}
	if bad > 0 {
		return nil, bad
	}
	return out, 0
}

// FuzzParseBlkioThrottle: v1 blkio.throttle.io_service_bytes and io_serviced.
func FuzzParseBlkioThrottle(f *testing.F) {
	for _, s := range []string{
		"8:0 Read 4096\n8:0 Write 1048576\n8:0 Sync 1048576\n8:0 Async 4096\n8:0 Discard 0\n8:0 Total 1052672\nTotal 1052672\n",
		"Total 0\n", "8:0 Read\n",
	} {
		f.Add([]byte(s))
	}
	addCgroupSeeds(f, "blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced",
		"blkio.throttle.io_service_bytes_recursive", "blkio.throttle.io_serviced_recursive")
	const path = "/sys/fs/cgroup/blkio/kubepods/pod/ctr/blkio.throttle.io_serviced"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseBlkioThrottle(path, data)
		want, bad := blkioOracle(string(data))
		if bad > 0 {
			checkRejected(t, path, bad, got, err)
			return
		}
		if err != nil {
			t.Fatalf("well-formed file rejected: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseBlkioThrottle = %v, want %v", got, want)
		}
		var b strings.Builder
		var total uint64
		for d, v := range got {
			fmt.Fprintf(&b, "%s Read %d\n%s Write %d\n%s Sync 0\n%s Async 0\n%s Discard 0\n%s Total %d\n", d, v[0], d, v[1], d, d, d, d, v[0]+v[1])
			total += v[0] + v[1]
		}
		fmt.Fprintf(&b, "Total %d\n", total)
		if again, err := ParseBlkioThrottle(path, []byte(b.String())); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("printed back as %q it parses to %v, %v; want %v", b.String(), again, err, got)
		}
	})
}

// TestParseKeyedFuzzFindings: inputs the fuzzer found accepted with a wrong value. A key with
// white space in it ("anon\t1", a tab where the space belongs) and a key given twice (the
// second value silently replaced the first) are malformed lines.
func TestParseKeyedFuzzFindings(t *testing.T) {
	const path = "/sys/fs/cgroup/x/memory.stat"
	for _, tc := range []struct{ data, where string }{
		{"anon\t1 2\n", path + ":1"},
		{"anon\v1 2\n", path + ":1"},
		{"anon\u00a01 2\n", path + ":1"},
		{"e 0\ne 0", path + ":2"},
		{"file 1\nanon 2\nfile 3\n", path + ":3"},
	} {
		m, err := ParseKeyed(path, []byte(tc.data))
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.where) {
			t.Errorf("ParseKeyed(%q) = %v, %v; want an error naming %s", tc.data, m, err, tc.where)
		}
	}
}

// TestParseIOStatFuzzFindings: a device line or a counter given twice silently replaced the
// first value; either could be the wrong one, so the file is malformed.
func TestParseIOStatFuzzFindings(t *testing.T) {
	const path = "/sys/fs/cgroup/x/io.stat"
	for _, tc := range []struct{ data, where string }{
		{"8:0 rbytes=1\n8:0 rbytes=2\n", path + ":2"},
		{"8:0 rbytes=1 wbytes=0 rios=1 wios=0\n008:00 rbytes=2\n", path + ":2"},
		{"00000000:0000000000 wios=0 wios=00", path + ":1"},
		{"8:0 rbytes=1 rbytes=2\n", path + ":1"},
	} {
		m, err := ParseIOStat(path, []byte(tc.data))
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.where) {
			t.Errorf("ParseIOStat(%q) = %v, %v; want an error naming %s", tc.data, m, err, tc.where)
		}
	}
	// Fields kpod does not read may repeat (they are not ours to judge).
	if _, err := ParseIOStat(path, []byte("8:0 rbytes=1 dbytes=0 dbytes=0 depth=max depth=max\n")); err != nil {
		t.Errorf("repeated unread fields: %v", err)
	}
}

// TestParseBlkioThrottleFuzzFindings: accepted malformed files. A device whose Read or Write
// line is missing or misspelt read as a device with 0 bytes; an operation given twice
// silently replaced the first value; a non-numeric final Total passed unnoticed.
func TestParseBlkioThrottleFuzzFindings(t *testing.T) {
	const path = "/sys/fs/cgroup/blkio/x/blkio.throttle.io_service_bytes"
	for _, tc := range []struct{ data, where string }{
		{"8:0 Raed 1\n8:0 Write 2\n", path + ":1"},
		{"8:0 Read 1\n8:0 Write 2\n8:16 Sync 0\n8:16 Total 0\n", path + ":3"},
		{"8:0 read 1\n8:0 write 1\n", path + ":1"},
		{"8:0 Read 1\n8:0 Read 2\n8:0 Write 0\n", path + ":2"},
		{"Total A", path + ":1"},
		{"8:0 Read 1\n8:0 Write 1\nTotal -2\n", path + ":3"},
	} {
		m, err := ParseBlkioThrottle(path, []byte(tc.data))
		if err == nil || m != nil || !strings.Contains(err.Error(), tc.where) {
			t.Errorf("ParseBlkioThrottle(%q) = %v, %v; want an error naming %s", tc.data, m, err, tc.where)
		}
	}
}

// FuzzParseKeys: ParseKeys agrees with ParseKeyed on every file, keeping its keys only; it
// accepts what ParseKeyed rejects only for a key it does not keep given twice.
func FuzzParseKeys(f *testing.F) {
	for _, s := range []string{"anon 1\nfile 2\nanon 3\n", "file 1\nfile 2\n", "cache 1\nx\n", "pgmajfault 7\n"} {
		f.Add([]byte(s))
	}
	addCgroupSeeds(f, "memory.stat")
	const path = "/sys/fs/cgroup/kubepods/pod/ctr/memory.stat"
	keys := []string{"cache", "file", "swap", "pgmajfault"}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseKeys(path, data, keys)
		all, allErr := ParseKeyed(path, data)
		switch {
		case err != nil && allErr != nil:
			return
		case err != nil:
			t.Fatalf("ParseKeys rejected what ParseKeyed read as %v: %v", all, err)
		case allErr != nil:
			dup := regexp.MustCompile(`:\d+: (".*") given twice$`).FindStringSubmatch(allErr.Error())
			var key string
			if dup != nil {
				key, _ = strconv.Unquote(dup[1])
			}
			if dup == nil || slices.Contains(keys, key) {
				t.Fatalf("ParseKeys accepted (%v) what ParseKeyed rejected: %v", got, allErr)
			}
			return
		}
		want := map[string]uint64{}
		for _, k := range keys {
			if v, ok := all[k]; ok {
				want[k] = v
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ParseKeys = %v, ParseKeyed's keys %v", got, want)
		}
	})
}
