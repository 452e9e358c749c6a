package syscall

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// name is the shape of every system call name in the kernel's tables (lower case; the
// configuration is matched exactly, so "Read" or " read" is not a system call).
var name = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// fallback is the name Collect gives a number it has no name for.
var fallback = regexp.MustCompile(`^nr_[0-9]+$`)

// FuzzResolve: collectors.syscall.syscalls (a list of names) through Number, which validates
// the configuration, and Resolve, which fills the BPF filter. A name is either a system call
// of this architecture, with a number the filter can hold, or reported missing; Resolve keeps
// every known name under its own number (two names never share one, so their counts never
// merge) and adds nothing else; no name can be taken for the nr_<n> of an unnamed number.
func FuzzResolve(f *testing.F) {
	f.Add(strings.Join(Default, ","))
	f.Add("read,READ, read,read,epoll_wait,epoll_pwait,nr_0,,newfstatat,fstatat,_sysctl")
	// The system calls this kernel traces (sys_enter_<name>).
	for _, dir := range []string{"/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		var names []string
		for _, e := range ents {
			if n, ok := strings.CutPrefix(e.Name(), "sys_enter_"); ok {
				names = append(names, n)
			}
		}
		for len(names) > 0 {
			k := min(len(names), 40)
			f.Add(strings.Join(names[:k], ","))
			names = names[k:]
		}
		break
	}
	f.Fuzz(func(t *testing.T, list string) {
		names := strings.Split(list, ",")
		nrs, missing := Resolve(names)
		isMissing := map[string]bool{}
		for _, m := range missing {
			isMissing[m] = true
		}
		byNr := map[uint32]string{}
		var wantMissing []string
		for _, n := range names {
			nr, ok := Number(n)
			if !ok {
				if !isMissing[n] {
					t.Fatalf("%q is not a system call on %s but Resolve did not report it missing", n, Arch)
				}
				wantMissing = append(wantMissing, n)
				continue
			}
			if isMissing[n] {
				t.Fatalf("%q (%d) reported missing", n, nr)
			}
			if !name.MatchString(n) || fallback.MatchString(n) {
				t.Fatalf("Number accepts %q", n)
			}
			if nr >= maxSyscalls {
				t.Fatalf("%s is %d, beyond the %d numbers the BPF filter holds", n, nr, maxSyscalls)
			}
			if other, dup := byNr[nr]; dup && other != n {
				t.Fatalf("%s and %s are both %d", other, n, nr)
			}
			byNr[nr] = n
			if nrs[nr] != n {
				t.Fatalf("Resolve put %q under %d, want %q", nrs[nr], nr, n)
			}
		}
		if len(nrs) != len(byNr) {
			t.Fatalf("Resolve(%q) = %v, want %v", names, nrs, byNr)
		}
		if strings.Join(missing, ",") != strings.Join(wantMissing, ",") || len(missing) != len(wantMissing) {
			t.Fatalf("Resolve(%q) reports %q missing, want %q (in the order given)", names, missing, wantMissing)
		}
	})
}
