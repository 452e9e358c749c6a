//go:build bench

package bench

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
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
// The counters of a config go one step up: on the same hooks, programs that do the least a
// per-pod family does on an event, in two ways. The hash counter reads the current task's
// cgroup id and adds one to its counter in a per-CPU hash (what kpod's families do). The
// storage counter adds one, atomically, to a counter kept on the task's cgroup itself
// (BPF_MAP_TYPE_CGRP_STORAGE, 6.2+): no id read and no hash, the counter found from the
// cgroup's pointer. Their multiples of the floor say what the least per-pod work costs here.
//
// The timed counter is the least a profile's families can do at all: on the hooks where a
// family's interval starts (timedRole) only the clock read and kept in a slot of an array; where
// one ends, the storage counter and the clock read and kept beside the count; elsewhere the
// storage counter. A profile's budget below this design's cost is out of reach on this machine
// for any design on these hooks.

// counterKind says what a floor's programs do: nothing, or count per cgroup one way.
type counterKind int

const (
	noCounter     counterKind = iota
	hashCounter               // counts[current cgroup id]++ in a per-CPU hash
	cgrpCounter               // the current task's cgroup's storage, atomically incremented
	timedCounter              // cgrpCounter, and the clock kept beside it on timed hooks
	cachedCounter             // a per-CPU count for the task that ran last, flushed to a hash by cgroup id
)

// counterKinds are the counters each profile gets.
var counterKinds = []counterKind{hashCounter, cgrpCounter, timedCounter, cachedCounter}

// A tracepoint's part in the intervals kpod's families time with the clock (softirqs,
// hardirqs, block I/O latency, a syscall's latency in its windows; the cpu family reads the
// kernel's own run-queue times at sched_switch, which the plain storage counter models).
type timedRole int

const (
	untimed    timedRole = iota
	startsTime           // an interval starts: its time is kept
	endsTime             // an interval ends: the time is read and the event counted
)

func roleOf(tracepoint string) timedRole {
	for _, p := range []string{"softirq_entry", "irq_handler_entry", "block_io_start", "block_rq_issue", "block_rq_insert", "sys_enter"} {
		if strings.HasPrefix(tracepoint, p) {
			return startsTime
		}
	}
	for _, p := range []string{"softirq_exit", "irq_handler_exit", "block_rq_complete", "block_io_done"} {
		if strings.HasPrefix(tracepoint, p) {
			return endsTime
		}
	}
	return untimed
}

// String says what a counter does, for the report.
func (k counterKind) String() string {
	switch k {
	case hashCounter:
		return "a per-cgroup counter in a per-CPU hash"
	case cgrpCounter:
		return "a counter in the cgroup's storage"
	case timedCounter:
		return "the storage counter with the clock read where a family times"
	case cachedCounter:
		return "a per-CPU count for the task that ran last"
	}
	return "no counter"
}

// floorProgram is `return 0` as a program of type t on tracepoint, or a counter's body
// (kind): hash: counts[current cgroup id]++ (created at 1 when missing); cgrp: the storage of
// current->cgroups->dfl_cgrp in counts, created at 0, atomically incremented; timed: where an
// interval starts bpf_ktime_get_ns() stored in an array slot of its own (stampInsns), where
// one ends cgrp with the time stored in the storage's second word, elsewhere cgrp. tp_btf
// programs are bound to their tracepoint at load time.
func floorProgram(t ebpf.ProgramType, tracepoint string, c *counterMaps, kind counterKind) (*ebpf.Program, error) {
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	switch kind {
	case hashCounter:
		insns = hashCounterInsns(c.counts)
	case cachedCounter:
		var err error
		if insns, err = cachedCounterInsns(c); err != nil {
			return nil, err
		}
	case cgrpCounter, timedCounter:
		role := untimed
		if kind == timedCounter {
			role = roleOf(tracepoint)
		}
		var err error
		if role == startsTime {
			stamps, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_floor_ts", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
			if err != nil {
				return nil, err
			}
			defer stamps.Close() // the loaded program holds it
			insns = stampInsns(stamps)
		} else if insns, err = cgrpCounterInsns(c.counts, role == endsTime); err != nil {
			return nil, err
		}
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
		spec.AttachType, spec.AttachTo = ebpf.AttachTraceRawTp, tracepoint
	}
	return ebpf.NewProgram(spec)
}

func hashCounterInsns(counts *ebpf.Map) asm.Instructions {
	key := func(r asm.Register, off int16) asm.Instructions {
		return asm.Instructions{asm.Mov.Reg(r, asm.RFP), asm.Add.Imm(r, int32(off))}
	}
	insns := asm.Instructions{
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
	return append(insns,
		asm.Mov.Imm(asm.R4, int32(ebpf.UpdateNoExist)),
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	)
}

// cgrpCounterInsns: the task's cgroup through BTF pointers (task_struct.cgroups, then
// css_set.dfl_cgrp: offsets from the kernel's BTF; the verifier checks the loads against it).
// clock: the time is read first (kept in r6 across the calls) and stored after the count.
func cgrpCounterInsns(counts *ebpf.Map, clock bool) (asm.Instructions, error) {
	cgroups, err := kernelFieldOffset("task_struct", "cgroups")
	if err != nil {
		return nil, err
	}
	dfl, err := kernelFieldOffset("css_set", "dfl_cgrp")
	if err != nil {
		return nil, err
	}
	var insns asm.Instructions
	if clock {
		insns = asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Mov.Reg(asm.R6, asm.R0)}
	}
	insns = append(insns,
		asm.FnGetCurrentTaskBtf.Call(),
		asm.LoadMem(asm.R2, asm.R0, cgroups, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "out"),
		asm.LoadMem(asm.R2, asm.R2, dfl, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "out"),
		asm.LoadMapPtr(asm.R1, counts.FD()),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 1), // BPF_LOCAL_STORAGE_GET_F_CREATE
		asm.FnCgrpStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
	)
	if clock {
		insns = append(insns, asm.StoreMem(asm.R0, 8, asm.R6, asm.DWord))
	}
	return append(insns,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	), nil
}

// cachedCounterInsns: each CPU counts in its slot (c.cache) while the same task, in the same
// css_set, runs there; when another task (or the same one moved to other cgroups) has an event,
// the slot's count is added to counts[its cgroup id] and the slot starts over for the new task.
// The cgroup id and the hash are paid once per change of task on a CPU, not per event. The
// count of a cgroup is its hash entry plus the slots that hold it. (A design for the families
// would also bump a generation when a task is freed, so that a new task at the old address is
// not taken for it: one more load and compare per event, not modelled.)
func cachedCounterInsns(c *counterMaps) (asm.Instructions, error) {
	cgroups, err := kernelFieldOffset("task_struct", "cgroups")
	if err != nil {
		return nil, err
	}
	insns := asm.Instructions{
		asm.FnGetCurrentTaskBtf.Call(),
		asm.Mov.Reg(asm.R6, asm.R0),
		asm.LoadMem(asm.R8, asm.R6, cgroups, asm.DWord),
	}
	insns = append(insns, slotZero(c.cache)...)
	return append(insns,
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R1, asm.R7, 0, asm.DWord),
		asm.JNE.Reg(asm.R1, asm.R6, "miss"),
		asm.LoadMem(asm.R1, asm.R7, 8, asm.DWord),
		asm.JNE.Reg(asm.R1, asm.R8, "miss"),
		asm.LoadMem(asm.R1, asm.R7, 24, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
		asm.Ja.Label("out"),
		// Another task: flush the slot's count into the hash.
		asm.LoadMem(asm.R1, asm.R7, 24, asm.DWord).WithSymbol("miss"),
		asm.JEq.Imm(asm.R1, 0, "fill"),
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, 16, asm.DWord),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, c.counts.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "new"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.LoadMem(asm.R2, asm.RFP, -16, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Ja.Label("fill"),
		asm.LoadMapPtr(asm.R1, c.counts.FD()).WithSymbol("new"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, int32(ebpf.UpdateNoExist)),
		asm.FnMapUpdateElem.Call(),
		// The slot starts over for this task.
		asm.StoreMem(asm.R7, 0, asm.R6, asm.DWord).WithSymbol("fill"),
		asm.StoreMem(asm.R7, 8, asm.R8, asm.DWord),
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(asm.R7, 16, asm.R0, asm.DWord),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreMem(asm.R7, 24, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	), nil
}

// slotZero looks up slot 0 of the array m (per-CPU or not) into r0, and jumps to "out" if it
// is missing; r1–r5 are clobbered, the key is at fp-4.
func slotZero(m *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
	}
}

// stampInsns keeps the time in slot 0 of the array stamps.
func stampInsns(stamps *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Mov.Reg(asm.R6, asm.R0)}
	insns = append(insns, slotZero(stamps)...)
	return append(insns,
		asm.StoreMem(asm.R0, 0, asm.R6, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
}

// kernelFieldOffset is the byte offset of a member of a kernel struct, from the kernel's BTF.
func kernelFieldOffset(typ, member string) (int16, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, err
	}
	var st *btf.Struct
	if err := spec.TypeByName(typ, &st); err != nil {
		return 0, fmt.Errorf("kernel BTF: struct %s: %w", typ, err)
	}
	for _, m := range st.Members {
		if m.Name == member {
			return int16(m.Offset.Bytes()), nil
		}
	}
	return 0, fmt.Errorf("kernel BTF: struct %s has no member %s", typ, member)
}

// counterMaps are the maps a counter counts in: counts by cgroup (a per-CPU hash by id, or
// the cgroups' storage), and for the cached counter each CPU's slot (cacheSlot).
type counterMaps struct{ counts, cache *ebpf.Map }

func (c *counterMaps) Close() error {
	if c.cache != nil {
		c.cache.Close()
	}
	return c.counts.Close()
}

// cacheSlot is a CPU's slot of the cached counter: the task that ran last and its css_set
// (task_struct.cgroups) when its count started, its cgroup id, and its count not yet flushed.
type cacheSlot struct{ Task, Cset, Cgid, N uint64 }

// counterMap makes the maps a counter of kind counts in.
func counterMap(kind counterKind) (*counterMaps, error) {
	if kind == hashCounter || kind == cachedCounter {
		counts, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_floor_cnt", Type: ebpf.PerCPUHash, KeySize: 8, ValueSize: 8,
			MaxEntries: 10240, Flags: unix.BPF_F_NO_PREALLOC})
		if err != nil {
			return nil, err
		}
		if kind == hashCounter {
			return &counterMaps{counts: counts}, nil
		}
		cache, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kpod_floor_last", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 32, MaxEntries: 1})
		if err != nil {
			counts.Close()
			return nil, err
		}
		return &counterMaps{counts: counts, cache: cache}, nil
	}
	words := uint32(1) // the count; the timed counter's second word is the last time read
	if kind == timedCounter {
		words = 2
	}
	m, err := localStorage("kpod_floor_cgrp", ebpf.CgroupStorage, words)
	if err != nil {
		return nil, err
	}
	return &counterMaps{counts: m}, nil
}

// localStorage is a local storage map (cgroup, task) of words u64 per owner; such maps need
// their key and value in BTF.
func localStorage(name string, t ebpf.MapType, words uint32) (*ebpf.Map, error) {
	u64 := &btf.Int{Name: "unsigned long long", Size: 8}
	return ebpf.NewMap(&ebpf.MapSpec{Name: name, Type: t, KeySize: 4, ValueSize: 8 * words,
		Flags: unix.BPF_F_NO_PREALLOC, Key: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Value: &btf.Array{Type: u64, Index: &btf.Int{Name: "int", Size: 4}, Nelems: words}})
}

// newFloor builds the floor of an adopted config (or one of its counters instead); its on
// and off attach and detach the programs exactly as the config's own.
func newFloor(name string, of *adopted, kind counterKind) (*adopted, error) {
	f := &adopted{Name: name, Hooks: append([]hookRef(nil), of.Hooks...), progs: map[uint32]*ebpf.Program{}, floor: true, windows: of.windows}
	if kind != noCounter {
		m, err := counterMap(kind)
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
		p, err := floorProgram(orig.Type(), h.Tracepoint, f.counts, kind)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("%s: %s program for %s: %w", name, orig.Type(), h.Tracepoint, err)
		}
		f.progs[h.ProgID] = p
	}
	return f, nil
}
