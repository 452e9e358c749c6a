package syscall

import (
	"reflect"
	"testing"

	"github.com/kpod-project/kpod/internal/hist"
)

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

// TestMonotonic: a read short of what the read before showed (a count between a CPU's slot
// and the map as it was read) shows the earlier calls and errors; a higher one shows its own;
// the latency histogram is the read's; calls the earlier read did not have are as read; a call
// the read lacks altogether (its only count was between the slot and the map) is shown as
// before while its cgroup is live, and no more once it is gone.
func TestMonotonic(t *testing.T) {
	a, b, c, gone, missing := callKey{1, 3}, callKey{1, 4}, callKey{2, 3}, callKey{9, 9}, callKey{2, 5}
	var lat hist.Hist
	lat.Record(1500)
	shown := map[callKey]Stats{a: {Count: 10, Errors: 4}, b: {Count: 5, Errors: 5}, gone: {Count: 1}, missing: {Count: 7, Errors: 1, Latency: lat}}
	vals := map[callKey]Stats{a: {Count: 7, Errors: 6, Latency: lat}, b: {Count: 8, Errors: 2}, c: {Count: 3, Errors: 1}}
	got := monotonic(vals, shown, map[uint64]bool{1: true, 2: true})
	want := map[callKey]Stats{a: {Count: 10, Errors: 6, Latency: lat}, b: {Count: 8, Errors: 5}, c: {Count: 3, Errors: 1}, missing: {Count: 7, Errors: 1, Latency: lat}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("monotonic = %+v, want %+v", got, want)
	}
}
