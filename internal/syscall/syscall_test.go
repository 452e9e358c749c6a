package syscall

import "testing"

func TestResolve(t *testing.T) {
	nrs, missing := Resolve([]string{"close", "read", "no_such_call"})
	if len(missing) != 1 || missing[0] != "no_such_call" {
		t.Errorf("missing = %v, want [no_such_call]", missing)
	}
	want := map[string]map[string]uint32{
		"amd64": {"close": 3, "read": 0},
		"arm64": {"close": 57, "read": 63},
	}[Arch]
	if len(nrs) != 2 || nrs[want["close"]] != "close" || nrs[want["read"]] != "read" {
		t.Errorf("Resolve on %s = %v, want close=%d read=%d", Arch, nrs, want["close"], want["read"])
	}
}

func TestDefaultListExists(t *testing.T) {
	_, missing := Resolve(Default)
	// arm64 has only epoll_pwait; every other default exists on both architectures.
	for _, m := range missing {
		if !(Arch == "arm64" && m == "epoll_wait") {
			t.Errorf("default syscall %q does not exist on %s", m, Arch)
		}
	}
	for _, nr := range numbers {
		if nr >= maxSyscalls {
			t.Errorf("syscall number %d does not fit the BPF filter (%d entries)", nr, maxSyscalls)
		}
	}
}
