// Package cpu is the "cpu" family: run-queue latency and context switches per cgroup, from
// the sched_switch tracepoint alone (bpf/cpu.bpf.c): the waits are the kernel's own
// (sched_info, CONFIG_SCHED_INFO), read at each switch-out. The program keeps a task's last
// reading in its task storage (tp_btf only: that needs a trusted BTF pointer to prev), or,
// on kernels without task storage (before 5.11), in a hash by thread id.
package cpu

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// Stats are one cgroup's cumulative scheduler counters.
type Stats struct {
	Switches uint64
	RunQueue hist.Hist // time from being queued to running (the kernel's run_delay)
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.Switches += o.Switches
	s.RunQueue.Add(&o.RunQueue)
}

// Spec is the family's BPF object, for the task storage store.
func Spec() bpfload.Spec {
	return bpfload.Spec{Family: "cpu", Load: LoadCpu, Hooks: []bpfload.Hook{
		{Tracepoint: "sched_switch", Group: "sched", Prog: "kpod_sw", BTFOnly: true},
	}}
}

// taskStore keeps each task's last run-queue reading; without runQueue the hash is
// referenced but never used, so nothing needs emptying.
func taskStore(runQueue bool) bpfload.TaskStore {
	ts := bpfload.TaskStore{TaskMap: CpuMapKpodRqSeen, PidMap: CpuMapKpodRqPid}
	if runQueue {
		// Not at exit: a task switches out once more after it exits.
		ts.Free = []bpfload.Hook{{Tracepoint: "sched_process_free", Group: "sched", Prog: "kpod_rqfree"}}
	}
	return ts
}

// Start loads and attaches the family. Without runQueue (the kpod.cpu.runqueue.latency
// histogram switched off) the program counts switches and reads no task's run-queue
// accounting; with it, a kernel without that accounting fails the family with a reason that
// says so (rather than the verifier's words for a field CO-RE did not find).
func Start(runQueue bool) (*bpfload.Source[Stats], error) {
	s := Spec()
	s.Prepare = func(cs *ebpf.CollectionSpec) error {
		if runQueue {
			k, err := bpfload.KernelSpec()
			if err != nil {
				return err
			}
			var task *btf.Struct
			if err := k.TypeByName("task_struct", &task); err != nil {
				return err
			}
			return schedInfo(task)
		}
		if m, ok := cs.Maps[CpuMapKpodRqPid]; ok {
			m.MaxEntries = 1 // referenced by the program, never used
		}
		v, ok := cs.Variables[CpuVarKpodRqOn]
		if !ok {
			return fmt.Errorf("the object has no %s", CpuVarKpodRqOn)
		}
		return v.Set(uint32(0))
	}
	s, err := taskStore(runQueue).Choose(s)
	if err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	return bpfload.Open(s, read)
}

// Collect returns the counters of every cgroup that has any.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, CpuCpuVal](c, CpuMapKpodCpu, live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{Switches: v.Switches, RunQueue: hist.Decode(v.Rq.SumNs, v.Rq.Slots)}
	}
	return out, err
}

// schedInfo checks that the kernel's task_struct has the run-queue accounting the program
// reads (CONFIG_SCHED_INFO: sched_info.pcount and run_delay).
func schedInfo(task *btf.Struct) error {
	for _, m := range task.Members {
		si, ok := btf.UnderlyingType(m.Type).(*btf.Struct)
		if m.Name != "sched_info" || !ok {
			continue
		}
		found := 0
		for _, f := range si.Members {
			if f.Name == "pcount" || f.Name == "run_delay" {
				found++
			}
		}
		if found == 2 {
			return nil
		}
	}
	return errors.New("the kernel keeps no run-queue accounting per task (task_struct.sched_info: CONFIG_SCHED_INFO is off), " +
		"which kpod.cpu.runqueue.latency reads; switch that metric off to count context switches")
}
