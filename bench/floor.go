//go:build bench

package bench

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The floor of a config: what its hooks cost with programs that do nothing. For every program
// the config attached, an empty program (r0 = 0; exit) of the same program type, attached to
// the same hooks in the same way — tp_btf to the same BTF tracepoints, raw_tp by name, a
// classic tracepoint program to the same tracefs events (all of them, for one program that
// serves many, like the per-call syscall events). What remains is the price of the kernel
// calling a BPF program there on this machine (the tracepoint's static branch and dispatch,
// the BPF trampoline or perf-event path, the recursion guard, RCU), which no program on these
// hooks can go below. A design that needs fewer hooks has a lower floor.

// emptyProgram is `return 0` as a program of type t; tp_btf programs are bound to their
// tracepoint at load time.
func emptyProgram(t ebpf.ProgramType, btfTracepoint string) (*ebpf.Program, error) {
	spec := &ebpf.ProgramSpec{
		Name:         "kpod_floor",
		Type:         t,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	}
	if t == ebpf.Tracing {
		// A tracing program found through `bpftool perf show` is a tp_btf one (fentry links
		// are not perf attachments and are not adopted).
		spec.AttachType, spec.AttachTo = ebpf.AttachTraceRawTp, btfTracepoint
	}
	return ebpf.NewProgram(spec)
}

// newFloor builds the floor of an adopted config; its on and off attach and detach the empty
// programs exactly as the config's own.
func newFloor(name string, of *adopted) (*adopted, error) {
	f := &adopted{Name: name, Hooks: append([]hookRef(nil), of.Hooks...), progs: map[uint32]*ebpf.Program{}, floor: true, windows: of.windows}
	for i, h := range f.Hooks {
		f.Hooks[i].ProgName = "kpod_floor"
		if _, ok := f.progs[h.ProgID]; ok {
			continue
		}
		orig, ok := of.progs[h.ProgID]
		if !ok {
			f.close()
			return nil, fmt.Errorf("%s: program %d of %s not adopted", name, h.ProgID, h.Tracepoint)
		}
		p, err := emptyProgram(orig.Type(), h.Tracepoint)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("%s: empty %s program for %s: %w", name, orig.Type(), h.Tracepoint, err)
		}
		f.progs[h.ProgID] = p
	}
	return f, nil
}
