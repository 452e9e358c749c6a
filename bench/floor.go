//go:build bench

package bench

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The floor of a config: what its hooks cost with programs that do nothing. For every program
// the config attached, an empty program (r0 = 0; exit) of the same program type, attached to
// the same hooks in the same way — tp_btf to the same BTF tracepoints, raw_tp by name, a
// classic tracepoint program to the same tracefs events (all of them, for one program that
// serves many, like the per-call syscall events). What remains is the price of the kernel
// calling a BPF program there on this machine (the tracepoint's static branch and dispatch,
// the BPF trampoline or perf-event path, the recursion guard, RCU), which no program on these
// hooks can go below. A design that needs fewer hooks has a lower floor.
//
// The counter of a config goes one step up: on the same hooks, programs that do the least a
// per-pod family does on an event — read the current task's cgroup id and add one to its
// counter in a per-CPU hash. Its multiple of the floor is the best any per-pod design on
// these hooks can reach on this machine: what reading a cgroup and a map costs here.

// floorProgram is `return 0` as a program of type t, or with counts the counter's body:
// counts[current cgroup id]++ (created at 1 when missing). tp_btf programs are bound to
// their tracepoint at load time.
func floorProgram(t ebpf.ProgramType, btfTracepoint string, counts *ebpf.Map) (*ebpf.Program, error) {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	if counts != nil {
		key := func(r asm.Register, off int16) asm.Instructions {
			return asm.Instructions{asm.Mov.Reg(r, asm.RFP), asm.Add.Imm(r, int32(off))}
		}
		insns = asm.Instructions{
			asm.FnGetCurrentCgroupId.Call(),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
			asm.LoadMapPtr(asm.R1, counts.FD()),
		}
		insns = append(insns, key(asm.R2, -8)...)
		insns = append(insns,
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "new"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
			asm.Mov.Imm(asm.R1, 1).WithSymbol("new"),
			asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, counts.FD()),
		)
		insns = append(insns, key(asm.R2, -8)...)
		insns = append(insns, key(asm.R3, -16)...)
		insns = append(insns,
			asm.Mov.Imm(asm.R4, int32(ebpf.UpdateNoExist)),
			asm.FnMapUpdateElem.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		)
	}
	spec := &ebpf.ProgramSpec{
		Name:         "kpod_floor",
		Type:         t,
		License:      "GPL",
		Instructions: insns,
	}
	if t == ebpf.Tracing {
		// A tracing program found through `bpftool perf show` is a tp_btf one (fentry links
		// are not perf attachments and are not adopted).
		spec.AttachType, spec.AttachTo = ebpf.AttachTraceRawTp, btfTracepoint
	}
	return ebpf.NewProgram(spec)
}

// newFloor builds the floor of an adopted config (counter: its counter instead); its on and
// off attach and detach the programs exactly as the config's own.
func newFloor(name string, of *adopted, counter bool) (*adopted, error) {
	f := &adopted{Name: name, Hooks: append([]hookRef(nil), of.Hooks...), progs: map[uint32]*ebpf.Program{}, floor: true, windows: of.windows}
	if counter {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_floor_cnt", Type: ebpf.PerCPUHash, KeySize: 8, ValueSize: 8,
			MaxEntries: 10240, Flags: unix.BPF_F_NO_PREALLOC})
		if err != nil {
			return nil, fmt.Errorf("%s: counter map: %w", name, err)
		}
		f.counts = m
	}
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
		p, err := floorProgram(orig.Type(), h.Tracepoint, f.counts)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("%s: %s program for %s: %w", name, orig.Type(), h.Tracepoint, err)
		}
		f.progs[h.ProgID] = p
	}
	return f, nil
}
