package bpfload

import (
	"sync"

	"github.com/cilium/ebpf"
)

var (
	brokenMu sync.Mutex
	broken   = map[string]bool{}
)

// noSuchTracepoint is what BreakForTest points hooks at.
const noSuchTracepoint = "kpod_no_such_tracepoint"

// BreakForTest makes every hook of family point at a tracepoint that does not exist, as on
// a kernel without it, until the returned function is called. Tests use it to prove that a
// family that cannot load disables only itself.
func BreakForTest(family string) (restore func()) {
	brokenMu.Lock()
	broken[family] = true
	brokenMu.Unlock()
	return func() {
		brokenMu.Lock()
		delete(broken, family)
		brokenMu.Unlock()
	}
}

func brokenHooks(family string, spec *ebpf.CollectionSpec, hooks []Hook) []Hook {
	brokenMu.Lock()
	defer brokenMu.Unlock()
	if !broken[family] {
		return hooks
	}
	out := make([]Hook, len(hooks))
	for i, h := range hooks {
		switch {
		case h.Function != "":
			h.Function = noSuchTracepoint
		case len(h.Tracepoints) > 0:
			h.Tracepoints = []string{noSuchTracepoint}
		case h.Iter != "":
			h.Iter = noSuchTracepoint
		default:
			h.Tracepoint = noSuchTracepoint
		}
		for _, suffix := range []string{"_b", "_f", "_i"} {
			if ps, ok := spec.Programs[h.Prog+suffix]; ok {
				ps.AttachTo = noSuchTracepoint
			}
		}
		out[i] = h
	}
	return out
}

var maxEntries = map[[2]string]uint32{}

// ShrinkMapForTest gives a family's map only n entries until the returned function is
// called, so that tests can fill it and watch failed updates being counted.
func ShrinkMapForTest(family, mapName string, n uint32) (restore func()) {
	brokenMu.Lock()
	maxEntries[[2]string{family, mapName}] = n
	brokenMu.Unlock()
	return func() {
		brokenMu.Lock()
		delete(maxEntries, [2]string{family, mapName})
		brokenMu.Unlock()
	}
}

func shrinkMaps(family string, spec *ebpf.CollectionSpec) {
	brokenMu.Lock()
	defer brokenMu.Unlock()
	for k, n := range maxEntries {
		if ms, ok := spec.Maps[k[1]]; ok && k[0] == family {
			ms.MaxEntries = n
		}
	}
}

var forcedRungs []string

var forcePrealloc bool

var forceNoTaskStorage bool

// ForceNoTaskStorageForTest makes TaskStorage report false, as on a kernel before 5.11,
// until the returned function is called.
func ForceNoTaskStorageForTest() (restore func()) {
	brokenMu.Lock()
	forceNoTaskStorage = true
	brokenMu.Unlock()
	return func() {
		brokenMu.Lock()
		forceNoTaskStorage = false
		brokenMu.Unlock()
	}
}

// ForcePreallocForTest makes Load preallocate hash maps and size the per-CPU ones by
// PreallocCgroups, as on a kernel before 6.1, until the returned function is called.
func ForcePreallocForTest() (restore func()) {
	brokenMu.Lock()
	forcePrealloc = true
	brokenMu.Unlock()
	return func() {
		brokenMu.Lock()
		forcePrealloc = false
		brokenMu.Unlock()
	}
}

// ForceRungForTest makes Load attach every hook on the given rungs of its ladder only, in
// the order given (for example "raw_tp"; or "tracepoint", "tp_btf" for the classic
// tracepoint where a hook has one and tp_btf elsewhere), as on a kernel that lacks the
// others, until the returned function is called. A hook whose ladder has none of them is
// not restricted. Tests use it to prove each rung loads and counts the same.
func ForceRungForTest(rungs ...string) (restore func()) {
	brokenMu.Lock()
	forcedRungs = append([]string(nil), rungs...)
	brokenMu.Unlock()
	return func() {
		brokenMu.Lock()
		forcedRungs = nil
		brokenMu.Unlock()
	}
}

// allowedRungs filters a hook's ladder by ForceRungForTest.
func allowedRungs(ladder [][2]string) [][2]string {
	brokenMu.Lock()
	defer brokenMu.Unlock()
	var out [][2]string
	for _, f := range forcedRungs {
		for _, r := range ladder {
			if r[1] == f {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return ladder
	}
	return out
}
