package bpfload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// PidSuffix ends the names of the programs that keep per-task state in a hash by thread id
// instead of BPF task storage.
const PidSuffix = "p"

// TaskStore is where a family keeps state per task: its task storage map TaskMap where the
// kernel has task storage (Linux 5.11+), else PidMap, a hash by thread id that the programs
// named <Prog>p use, with the Free hooks that empty it as tasks go.
type TaskStore struct {
	TaskMap, PidMap string
	Free            []Hook
}

// Choose returns spec for the store this kernel has (TaskStorage).
func (ts TaskStore) Choose(spec Spec) (Spec, error) {
	task, err := TaskStorage()
	if err != nil {
		return Spec{}, err
	}
	return ts.For(spec, task), nil
}

// For returns spec for task storage (task) or the pid hash. Only that store's map is made:
// the other's type may not exist on the kernel. The hash's programs run on every rung, as
// a hook is BTFOnly for bpf_task_storage_get on a task argument, which they do not call.
func (ts TaskStore) For(spec Spec, task bool) Spec {
	unused := ts.PidMap
	if !task {
		unused = ts.TaskMap
		hooks := make([]Hook, 0, len(spec.Hooks)+len(ts.Free))
		for _, h := range spec.Hooks {
			h.Prog += PidSuffix
			h.BTFOnly = false
			hooks = append(hooks, h)
		}
		spec.Hooks = append(hooks, ts.Free...)
	}
	prepare := spec.Prepare
	spec.Prepare = func(cs *ebpf.CollectionSpec) error {
		delete(cs.Maps, unused)
		if prepare == nil {
			return nil
		}
		return prepare(cs)
	}
	return spec
}

// TaskStorage reports whether families can keep per-task state in BPF task storage (Linux
// 5.11+), by cilium/ebpf's probe; false while a test forces the kernels without it. Those
// that can do without (cpu, syscall) keep it in a hash by thread id instead.
func TaskStorage() (bool, error) {
	brokenMu.Lock()
	forced := forceNoTaskStorage
	brokenMu.Unlock()
	if forced {
		return false, nil
	}
	err := features.HaveMapType(ebpf.TaskStorage)
	if errors.Is(err, ebpf.ErrNotSupported) {
		return false, nil
	}
	if err != nil && (errors.Is(err, unix.EPERM) || lacksCap(unix.CAP_BPF)) {
		return false, fmt.Errorf("probing for task storage: %w (needs %s)", err, needsBPF)
	}
	if err != nil {
		return false, fmt.Errorf("probing for task storage: %w", err)
	}
	return true, nil
}
