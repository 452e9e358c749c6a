// Package bpftest holds what the families' real-kernel tests share: running a family on a
// chosen rung of the attach ladder, and logging what its programs cost.
package bpftest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// Rungs are the tracepoint rungs the real-kernel tests run each family on: tp_btf (what
// the loader picks on a BTF kernel) and raw_tp, forced with On, so that the fallback is
// proved to load, attach and count the same.
var Rungs = []string{"tp_btf", "raw_tp"}

// On makes every family loaded during the test attach on rung only (kernel function hooks
// keep their own ladder).
func On(t *testing.T, rung string) {
	t.Helper()
	t.Cleanup(bpfload.ForceRungForTest(rung))
}

// CheckRung fails the test unless every tracepoint program of o attached as rung.
func CheckRung(t *testing.T, o *bpfload.Object, rung string) {
	t.Helper()
	for _, p := range o.Programs {
		if p.Kind != rung && p.Kind != "fentry" && p.Kind != "kprobe" && p.Kind != "iter" && p.Kind != "tail" && p.Kind != "run" {
			t.Errorf("%s attached as %s, want %s", p.Name, p.Kind, rung)
		}
	}
}

// EnableStats turns on the kernel's BPF run-time statistics for the test; the returned
// function logs each program's runs and mean cost (which includes the two clock reads the
// statistics add).
func EnableStats(t *testing.T) func(...*bpfload.Object) {
	t.Helper()
	st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Logf("no BPF stats: %v", err)
		return func(...*bpfload.Object) {}
	}
	t.Cleanup(func() { st.Close() })
	return func(objs ...*bpfload.Object) {
		for _, o := range objs {
			for _, p := range o.Programs {
				s, err := p.Prog.Stats()
				if err != nil || s.RunCount == 0 && s.RecursionMisses == 0 {
					continue
				}
				t.Logf("%s %-14s %9d runs %8v per run, %d recursion misses", o.Family, p.Name, s.RunCount,
					s.Runtime/time.Duration(max(s.RunCount, 1)), s.RecursionMisses)
			}
		}
	}
}

// CheckShape checks a committed object without loading it: each hook has a program for every
// rung of its ladder that kpod ships (tp_btf and raw_tp for tracepoints, fentry and kprobe
// for kernel functions; classic tracepoint programs are optional), and every program and map
// name (other than data sections) starts with kpod_ and fits the kernel's 15 characters.
func CheckShape(t *testing.T, spec *ebpf.CollectionSpec, hooks []bpfload.Hook) {
	t.Helper()
	for _, h := range hooks {
		sfx := []string{"_b", "_r"}
		switch {
		case h.Function != "":
			sfx = []string{"_f", "_k"}
		case h.Iter != "":
			sfx = []string{"_i"}
		case h.Run:
			sfx = []string{"_run"}
		case h.BTFOnly:
			sfx = []string{"_b"}
		}
		for _, s := range sfx {
			if _, ok := spec.Programs[h.Prog+s]; !ok {
				t.Errorf("hook %s%s: no program %s%s", h.Tracepoint, h.Function, h.Prog, s)
			}
		}
	}
	for name := range spec.Programs {
		if !strings.HasPrefix(name, "kpod_") || len(name) > 15 {
			t.Errorf("program name %q: want kpod_ prefix and at most 15 characters", name)
		}
	}
	for name := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata, .bss: the object's data sections
		}
		if !strings.HasPrefix(name, "kpod_") || len(name) > 15 {
			t.Errorf("map name %q: want kpod_ prefix and at most 15 characters", name)
		}
	}
}

// HasTracepoint reports whether the running kernel has the tracepoint group/name, from
// tracefs (independently of the loader), so that a test knows which path or rung a family
// must take on this kernel.
func HasTracepoint(t *testing.T, group, name string) bool {
	t.Helper()
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		t.Fatalf("tracefs is not mounted at /sys/kernel/tracing: %v", err)
	}
	_, err := os.Stat(filepath.Join("/sys/kernel/tracing/events", group, name))
	return err == nil
}

// HasKprobes reports whether the kernel can trace kernel functions with kprobes (tracefs
// kprobe_events), independently of the loader.
func HasKprobes(t *testing.T) bool {
	t.Helper()
	_, err := os.Stat("/sys/kernel/tracing/kprobe_events")
	return err == nil
}

// HasTracepointField reports whether the tracepoint group/name records field (its tracefs
// format), which tells which prototype the kernel has.
func HasTracepointField(t *testing.T, group, name, field string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/kernel/tracing/events", group, name, "format"))
	if err != nil {
		return false
	}
	return strings.Contains(string(b), " "+field+";")
}

// KnownSocketWalks reports whether the kernel can run the tcp and topology families' walks of
// known sockets (bpf_for_each_map_elem in a raw_tp program, 5.13+), as the kernel's own
// answer, independent of kpod's programs: nil if it can.
func KnownSocketWalks() error {
	return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnForEachMapElem)
}

// HasTaskStorage reports whether the kernel has BPF task storage (5.11+), by cilium/ebpf's
// probe, independently of kpod's programs.
func HasTaskStorage(t *testing.T) bool {
	t.Helper()
	err := features.HaveMapType(ebpf.TaskStorage)
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatalf("probing for task storage: %v", err)
	}
	return err == nil
}

// KernelAtLeast reports whether the running kernel's release (uname) is at least
// major.minor, for tests whose expected result changes with the kernel.
func KernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	rel := unix.ByteSliceToString(u.Release[:])
	if _, err := fmt.Sscanf(rel, "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", rel, err)
	}
	return ma > major || ma == major && mi >= minor
}

// LoopReason is what the l7 family says on a kernel without the bpf_loop helper.
const LoopReason = "no bpf_loop helper (Linux 5.17+)"

// HasBPFLoop reports whether the kernel has the bpf_loop helper (5.17+), by cilium/ebpf's
// probe, independently of kpod's programs.
func HasBPFLoop(t *testing.T) bool {
	t.Helper()
	err := features.HaveProgramHelper(ebpf.TracePoint, asm.FnLoop)
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatalf("probing for bpf_loop: %v", err)
	}
	return err == nil
}
