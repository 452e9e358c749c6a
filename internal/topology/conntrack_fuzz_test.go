package topology

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// FuzzParseConntrack: any input parses without a panic; what is kept is a NATed connection to
// one of the Services, found again by its own tuple; a table whose lines all parse one by one
// is no error, and each line that does not is named in the error (up to maxCTErrors).
// Seeds: the unit tests' lines and this host's own table.
func FuzzParseConntrack(f *testing.F) {
	f.Add([]byte(ctSample))
	for _, l := range strings.Split(ctSample, "\n") {
		f.Add([]byte(l))
	}
	if b, err := os.ReadFile("/proc/net/nf_conntrack"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tbl, err := parseConntrack(bytes.NewReader(in), ctServices)
		if tbl == nil {
			t.Fatalf("no table (error %v)", err)
		}
		for k, backend := range tbl.exact {
			if !ctServices[k.service] || !backend.IsValid() || backend == k.service {
				t.Errorf("kept %+v → %v", k, backend)
			}
			if got, ok := tbl.lookup(k); k.local.IsValid() && (!ok || got != backend) {
				t.Errorf("lookup %+v: %v %v, want %v", k, got, ok, backend)
			}
		}
		lines := bytes.Split(in, []byte("\n"))
		if len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1] // the scanner yields no empty line after the last newline
		}
		bad := 0
		for _, l := range lines {
			if len(l) > 60<<10 {
				return // longer than the scanner takes: its error, not a line's
			}
			if _, _, err := parseCTLine(l, ctServices); err != nil {
				bad++
			}
		}
		if (bad == 0) != (err == nil) {
			t.Errorf("%d malformed lines, error %v", bad, err)
		}
	})
}
