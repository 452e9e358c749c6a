// Package oom is the "oom" family: OOM kills per cgroup, charged to the victim (bpf/oom.bpf.c):
// from the oom/mark_victim tracepoint where it passes the victim's task (6.8+, and stable
// kernels that took that change), else from the kernel function mark_oom_victim(), which
// fires it (fentry, else kprobe).
package oom

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload"
)

// Path says where the victim comes from.
type Path string

const (
	PathTracepoint Path = "mark_victim"     // the tracepoint's task argument
	PathFunction   Path = "mark_oom_victim" // the kernel function's, where the tracepoint passes a pid
)

// TracepointSpec is the family's object where oom/mark_victim passes the victim's task.
func TracepointSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "oom",
		Load:   LoadOom,
		Hooks:  []bpfload.Hook{{Tracepoint: "mark_victim", Group: "oom", Prog: "kpod_oom"}},
	}
}

// FunctionSpec is the family's object where it passes only the victim's pid.
func FunctionSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "oom",
		Load:   LoadOom,
		Hooks:  []bpfload.Hook{{Function: "mark_oom_victim", Prog: "kpod_oomv"}},
	}
}

// Spec lists every hook the family may load (both paths), for tests that check what is
// loaded.
func Spec() bpfload.Spec {
	s := TracepointSpec()
	s.Hooks = append(s.Hooks, FunctionSpec().Hooks...)
	return s
}

var (
	forcedMu   sync.Mutex
	forcedPath Path
)

// ForcePathForTest makes Start take path p (on a kernel whose tracepoint passes the task, the
// function path can be tested too); the returned func undoes it.
func ForcePathForTest(p Path) (restore func()) {
	forcedMu.Lock()
	forcedPath = p
	forcedMu.Unlock()
	return func() {
		forcedMu.Lock()
		forcedPath = ""
		forcedMu.Unlock()
	}
}

// Collector reads the family.
type Collector struct {
	*bpfload.Source[uint64]
	Path Path
}

// Start loads and attaches the family on the path the kernel's tracepoint allows.
func Start() (*Collector, error) {
	p, err := kernelPath()
	if err != nil {
		return nil, fmt.Errorf("oom: %w", err)
	}
	spec := TracepointSpec()
	if p == PathFunction {
		spec = FunctionSpec()
	}
	s, err := bpfload.Open(spec, read)
	if err != nil {
		if p == PathFunction {
			return nil, fmt.Errorf("oom/mark_victim passes the victim's pid only on this kernel, so the family hooks mark_oom_victim() (fentry or kprobe): %w", err)
		}
		return nil, err
	}
	return &Collector{Source: s, Path: p}, nil
}

// kernelPath is the forced path, else the one the kernel's tracepoint allows.
func kernelPath() (Path, error) {
	forcedMu.Lock()
	p := forcedPath
	forcedMu.Unlock()
	if p != "" {
		return p, nil
	}
	k, err := bpfload.KernelSpec()
	if err != nil {
		return "", err
	}
	task, err := victimTask(k)
	if err != nil {
		return "", err
	}
	if task {
		return PathTracepoint, nil
	}
	return PathFunction, nil
}

// victimTask reports whether the kernel's mark_victim tracepoint passes the victim's task
// (its prototype, btf_trace_mark_victim: the argument after the context is a pointer to
// struct task_struct) rather than its pid.
func victimTask(k *btf.Spec) (bool, error) {
	var td *btf.Typedef
	if err := k.TypeByName("btf_trace_mark_victim", &td); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return false, errors.New("the kernel has no oom/mark_victim tracepoint")
		}
		return false, err
	}
	ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
	if !ok {
		return false, fmt.Errorf("btf_trace_mark_victim is %v, not a function pointer", td.Type)
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok || len(proto.Params) < 2 {
		return false, fmt.Errorf("btf_trace_mark_victim points to %v, not a prototype with an argument", ptr.Target)
	}
	arg, ok := btf.UnderlyingType(proto.Params[1].Type).(*btf.Pointer)
	if !ok {
		return false, nil
	}
	task, ok := btf.UnderlyingType(arg.Target).(*btf.Struct)
	return ok && task.Name == "task_struct", nil
}

// read returns the OOM kills per victim cgroup id.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]uint64, error) {
	return bpfload.Read[uint64, uint64](c, OomMapKpodOom, live)
}
