package cpu

import (
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
)

// TestSchedInfo: the family needs task_struct.sched_info with pcount and run_delay, and
// says which kernel option and which metric key when the kernel lacks them.
func TestSchedInfo(t *testing.T) {
	u64 := &btf.Int{Name: "long long unsigned int", Size: 8}
	info := func(names ...string) *btf.Struct {
		s := &btf.Struct{Name: "sched_info", Size: 8 * uint32(len(names))}
		for i, n := range names {
			s.Members = append(s.Members, btf.Member{Name: n, Type: u64, Offset: btf.Bits(64 * i)})
		}
		return s
	}
	task := func(members ...btf.Member) *btf.Struct {
		return &btf.Struct{Name: "task_struct", Size: 64, Members: members}
	}
	for _, c := range []struct {
		name string
		task *btf.Struct
		ok   bool
	}{
		{"present", task(btf.Member{Name: "pid", Type: u64}, btf.Member{Name: "sched_info", Type: info("pcount", "run_delay", "last_queued")}), true},
		{"behind a typedef", task(btf.Member{Name: "sched_info", Type: &btf.Typedef{Name: "si_t", Type: info("pcount", "run_delay")}}), true},
		{"no sched_info", task(btf.Member{Name: "pid", Type: u64}), false},
		{"no run_delay", task(btf.Member{Name: "sched_info", Type: info("pcount")}), false},
	} {
		err := schedInfo(c.task)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "CONFIG_SCHED_INFO") || !strings.Contains(err.Error(), "kpod.cpu.runqueue.latency")) {
			t.Errorf("%s: error %v, want one naming CONFIG_SCHED_INFO and kpod.cpu.runqueue.latency", c.name, err)
		}
	}
}

// TestShape: the object has the programs of both stores' hooks.
func TestShape(t *testing.T) {
	spec, err := LoadCpu()
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range []bool{true, false} {
		bpftest.CheckShape(t, spec, taskStore(true).For(Spec(), task).Hooks)
	}
}
