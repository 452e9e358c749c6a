package iface

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/fuzzseed"
)

// devValidName is the kernel's rule for an interface name (net/core/dev.c dev_valid_name): 1 to
// 15 bytes, not "." or "..", no '/', ':' or white space (the kernel's isspace, which counts
// the Latin-1 no-break space 0xa0).
func devValidName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0xa0:
			return false
		}
	}
	return true
}

// decimal reads an unsigned decimal 64-bit counter.
func decimal(s string) (uint64, bool) {
	t := strings.TrimLeft(s, "0")
	const max = "18446744073709551615"
	if s == "" || strings.Trim(s, "0123456789") != "" || len(t) > len(max) || len(t) == len(max) && t > max {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(t); i++ {
		v = v*10 + uint64(t[i]-'0')
	}
	return v, true
}

// netDevOracle reads /proc/net/dev as the kernel writes it (net/core/net-procfs.c): the
// "Receive" header line, the " face |bytes ..." header line, then one line per interface:
// its name, ':', 16 decimal counters. Returns the interfaces (loopback included), whether the
// headers are there, and the first malformed line (an interface listed twice is malformed:
// which counters are right?).
func netDevOracle(data string) (Stats, bool, int) {
	lines := strings.Split(data, "\n")
	if len(lines) < 2 || !strings.Contains(lines[0], "Receive") || !strings.Contains(lines[1], "face") {
		return nil, false, 0
	}
	out := Stats{}
	for i, line := range lines[2:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if _, dup := out[name]; !ok || !devValidName(name) || dup || len(f) != 16 {
			return nil, true, i + 3
		}
		var v [16]uint64
		for j, s := range f {
			if v[j], ok = decimal(s); !ok {
				return nil, true, i + 3
			}
		}
		out[name] = Counters{RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrops: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrops: v[11]}
	}
	return out, true, 0
}

// render writes stats the way the kernel does.
func render(s Stats) string {
	var b strings.Builder
	b.WriteString("Inter-|   Receive                                                |  Transmit\n")
	b.WriteString(" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n")
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := s[n]
		fmt.Fprintf(&b, "%6s: %7d %7d %4d %4d %4d %5d %10d %9d %8d %7d %4d %4d %4d %5d %7d %10d\n", n,
			c.RxBytes, c.RxPackets, c.RxErrors, c.RxDrops, 0, 0, 0, 0,
			c.TxBytes, c.TxPackets, c.TxErrors, c.TxDrops, 0, 0, 0, 0)
	}
	return b.String()
}

// FuzzParse: /proc/<pid>/net/dev. A file the oracle accepts parses to its interfaces except
// loopback, which written back the kernel's way parse to themselves; any other file is an
// error naming the file (and the first bad line when the headers are there). Every
// interface name kpod reports is one the kernel could have given.
func FuzzParse(f *testing.F) {
	f.Add([]byte(podNetDev))
	for _, b := range fuzzseed.Proc("/proc", "net/dev", 8) {
		f.Add(b)
	}
	const path = "/proc/4242/net/dev"
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Parse(path, data)
		want, headers, bad := netDevOracle(string(data))
		switch {
		case !headers || bad > 0:
			where := path
			if bad > 0 {
				where = fmt.Sprintf("%s:%d:", path, bad)
			}
			if err == nil || got != nil || !strings.Contains(err.Error(), where) {
				t.Fatalf("Parse = %v, %v; want an error naming %s", got, err, where)
			}
			return
		case err != nil:
			t.Fatalf("well-formed file rejected: %v", err)
		}
		delete(want, "lo")
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse = %v, want %v", got, want)
		}
		text := render(got)
		if again, err := Parse(path, []byte(text)); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("written back as %q it parses to %v, %v; want %v", text, again, err, got)
		}
	})
}

// TestParseFuzzFindings: a file with only its first header line ("Receive\n") read as a pod
// without interfaces, and one whose second header line was an interface lost that interface
// silently: both header lines must be there.
func TestParseFuzzFindings(t *testing.T) {
	const path = "/proc/4242/net/dev"
	lines := strings.Split(podNetDev, "\n")
	for _, data := range []string{
		"Receive\n",
		lines[0] + "\n" + lines[3] + "\n" + lines[4] + "\n",
	} {
		if got, err := Parse(path, []byte(data)); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Parse(%q) = %v, %v; want an error naming %s", data, got, err, path)
		}
	}
}

// TestParseNameFuzzFindings: an interface line without a name (": 1 2 ...") was reported as
// an interface named "", a name with a space in it as that name, and an interface listed
// twice kept the second line's counters: no kernel writes these.
func TestParseNameFuzzFindings(t *testing.T) {
	const path = "/proc/4242/net/dev"
	header := strings.Join(strings.Split(podNetDev, "\n")[:2], "\n") + "\n"
	const counters = ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
	for _, lines := range []string{
		counters,
		"  " + counters,
		"Receive\nface\n:0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0",
		"et h0" + counters,
		"eth0\xa0" + counters,
		"a/b" + counters,
		".." + counters,
		"a23456789012345x" + counters,
		"eth0" + counters + "eth0" + counters,
	} {
		data := lines
		if !strings.HasPrefix(lines, "Receive") {
			data = header + lines
		}
		got, err := Parse(path, []byte(data))
		if err == nil || !strings.Contains(err.Error(), path+":") {
			t.Errorf("Parse(%q) = %v, %v; want an error naming the line", data, got, err)
		}
	}
	// The longest name the kernel allows, and names with characters it does allow.
	for _, name := range []string{"a23456789012345", "eth0.100", "br-5f3e", "veth@x", "wlp2s0é"} {
		got, err := Parse(path, []byte(header+"  "+name+counters))
		if err != nil || len(got) != 1 || got[name].RxBytes != 1 {
			t.Errorf("interface %q: %v, %v", name, got, err)
		}
	}
}
