//go:build bench

package bench

import (
	"fmt"
	"io"
	"math/rand"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The primitives group prices the steps a family's program is made of, one at a time, on one
// hook: the classic tracepoint syscalls:sys_exit_getppid (the kind the syscall family's
// per-call events are), with kbench getppid in a fake pod's container calling it. Each member
// is a program that does one thing; its Δ per call against nothing, less the empty program's
// (its floor, sampled in the same block), is what that step costs on this machine. The
// counters are floor.go's, whose exactness TestFloorCounters proves. Where the floors and the
// counters on the profiles' hooks say how far the least per-pod work is above the floor, this
// says which step of it costs what.

const groupPrim = "primitives"

// primHook is the hook every primitive is attached to.
var primHook = [2]string{"syscalls", "sys_exit_getppid"}

// The members, in display order; primEmpty is every other member's floor.
const (
	primEmpty   = "empty program (r0 = 0)"
	primGlobal  = "one global counter (an array slot, no cgroup)"
	primCgid    = "bpf_get_current_cgroup_id()"
	primClock   = "bpf_ktime_get_ns()"
	primHash    = "per-cgroup counter in a per-CPU hash"
	primStorage = "counter in the cgroup's storage"
	primLoads   = "the cgroup id through BTF pointers"
	primTaskSt  = "a task storage lookup"
	primLast    = "a per-CPU slot for the last task"
)

var primWhat = map[string]string{
	primEmpty:   "nothing: the cost of calling a program on the hook (the floor)",
	primGlobal:  "one memory write the program always finds: the least a program that records anything does",
	primCgid:    "reads the current task's cgroup id (task → css_set → cgroup → kernfs node)",
	primClock:   "reads the clock once (what every duration needs twice: at its start and at its end)",
	primHash:    "the hash counter of the floors: cgroup id, one per-CPU hash lookup, an add",
	primStorage: "the storage counter of the floors: the cgroup's pointer, one storage lookup, an atomic add",
	primLoads:   "the same id as bpf_get_current_cgroup_id(), read with four loads through the task's BTF pointers instead of a helper call",
	primTaskSt:  "the current task's element in a task storage map, found (created on its first call): what the syscall family's exit does to find a call's stamp",
	primLast:    "bpf_get_current_task(), a per-CPU array slot, a compare with the task kept there and an add: what finding a count costs when it is cached per CPU for the task that ran last",
}

var primOrder = []string{primEmpty, primGlobal, primCgid, primLoads, primClock, primHash, primStorage, primTaskSt, primLast}

// primToggle attaches one program to primHook.
type primToggle struct {
	prog *ebpf.Program
	l    link.Link
}

func (p *primToggle) on() (err error) {
	p.l, err = link.Tracepoint(primHook[0], primHook[1], p.prog, nil)
	return err
}

func (p *primToggle) off() {
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
}

// primProgram builds a primitive as a classic tracepoint program; the map it counts in, if any,
// is returned for closing. The empty program and the counters are floor.go's own.
func primProgram(name string) (*ebpf.Program, io.Closer, error) {
	var body asm.Instructions // the step, before `return 0`
	switch name {
	case primEmpty:
		p, err := floorProgram(ebpf.TracePoint, "", nil, noCounter)
		return p, nil, err
	case primHash, primStorage:
		kind := hashCounter
		if name == primStorage {
			kind = cgrpCounter
		}
		m, err := counterMap(kind)
		if err != nil {
			return nil, nil, err
		}
		p, err := floorProgram(ebpf.TracePoint, "", m, kind)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		return p, m, nil
	case primCgid:
		body = asm.Instructions{asm.FnGetCurrentCgroupId.Call(), asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord)}
	case primClock:
		body = asm.Instructions{asm.FnKtimeGetNs.Call(), asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord)}
	case primLoads:
		var offs [4]int16
		for i, f := range [][2]string{{"task_struct", "cgroups"}, {"css_set", "dfl_cgrp"}, {"cgroup", "kn"}, {"kernfs_node", "id"}} {
			o, err := kernelFieldOffset(f[0], f[1])
			if err != nil {
				return nil, nil, err
			}
			offs[i] = o
		}
		body = asm.Instructions{asm.FnGetCurrentTaskBtf.Call()}
		for _, o := range offs[:3] {
			body = append(body, asm.LoadMem(asm.R0, asm.R0, o, asm.DWord), asm.JEq.Imm(asm.R0, 0, "out"))
		}
		body = append(body,
			asm.LoadMem(asm.R0, asm.R0, offs[3], asm.DWord),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		)
	case primTaskSt:
		m, err := localStorage("kpod_prim_task", ebpf.TaskStorage, 1)
		if err != nil {
			return nil, nil, err
		}
		return primWithMap(m, asm.Instructions{
			asm.FnGetCurrentTaskBtf.Call(),
			asm.Mov.Reg(asm.R2, asm.R0),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Imm(asm.R3, 0),
			asm.Mov.Imm(asm.R4, 1), // BPF_LOCAL_STORAGE_GET_F_CREATE
			asm.FnTaskStorageGet.Call(),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		})
	case primLast:
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_prim_last", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 16, MaxEntries: 1})
		if err != nil {
			return nil, nil, err
		}
		body = asm.Instructions{asm.FnGetCurrentTask.Call(), asm.Mov.Reg(asm.R6, asm.R0)}
		body = append(body, slotZero(m)...)
		return primWithMap(m, append(body,
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.JNE.Reg(asm.R1, asm.R6, "other"),
			asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
			asm.Ja.Label("out"),
			asm.StoreMem(asm.R0, 0, asm.R6, asm.DWord).WithSymbol("other"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		))
	case primGlobal:
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_prim_glob", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
		if err != nil {
			return nil, nil, err
		}
		return primWithMap(m, asm.Instructions{
			asm.LoadMapValue(asm.R1, m.FD(), 0),
			asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
			asm.Add.Imm(asm.R2, 1),
			asm.StoreMem(asm.R1, 0, asm.R2, asm.DWord),
		})
	default:
		return nil, nil, fmt.Errorf("no primitive %q", name)
	}
	p, err := primLoad(body)
	return p, nil, err
}

// primWithMap loads body as primLoad does; the program and m are returned, or m is closed.
func primWithMap(m *ebpf.Map, body asm.Instructions) (*ebpf.Program, io.Closer, error) {
	p, err := primLoad(body)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return p, m, nil
}

// primLoad loads body followed by `return 0` as a classic tracepoint program.
func primLoad(body asm.Instructions) (*ebpf.Program, error) {
	insns := append(body, asm.Mov.Imm(asm.R0, 0), asm.Return())
	return ebpf.NewProgram(&ebpf.ProgramSpec{Name: "kpod_prim", Type: ebpf.TracePoint, License: "GPL", Instructions: insns})
}

// runPrimitives samples every primitive and nothing on getppid in blocks (random order in each).
func runPrimitives(s *suite, blocks int, rng *rand.Rand) *groupResult {
	t0 := time.Now()
	res := &groupResult{Name: groupPrim, Purpose: "the steps of a program, one at a time, on one classic tracepoint",
		Units: []string{"getppid"}, Blocks: blocks, FloorOf: map[string]string{}, Samples: blockSamples{}}
	var vs []variant
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, name := range primOrder {
		p, m, err := primProgram(name)
		if err != nil {
			res.Error += fmt.Sprintf("%s: %v; ", name, err)
			continue
		}
		closers = append(closers, p)
		if m != nil {
			closers = append(closers, m)
		}
		vs = append(vs, variant{name, &primToggle{prog: p}})
		res.Members = append(res.Members, name)
		if name != primEmpty {
			res.FloorOf[name] = primEmpty
		}
	}
	flip := 0
	if err := runBlocks(s, vs, res.Units, func(string) int { return blocks }, true, rng, &flip, res.Samples); err != nil {
		res.Error += err.Error()
	}
	res.Took = time.Since(t0)
	logf("%s: %d blocks of %d variants in %v", groupPrim, blocks, len(vs)+1, res.Took.Round(time.Second))
	return res
}
