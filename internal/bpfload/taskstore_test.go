package bpfload

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
)

// TestTaskStoreFor: the pid hash renames every program, runs on every rung, adds the hooks
// that empty it and makes only its own map; task storage leaves the hooks alone and makes
// only its map. The family's own Prepare runs after, with its error.
func TestTaskStoreFor(t *testing.T) {
	ts := TaskStore{TaskMap: "task", PidMap: "pid", Free: []Hook{{Tracepoint: "sched_process_free", Prog: "free"}}}
	family := errors.New("family's prepare")
	ran := 0
	spec := Spec{
		Hooks:   []Hook{{Tracepoint: "a", Prog: "x", BTFOnly: true}, {Tracepoint: "b", Prog: "y"}},
		Prepare: func(*ebpf.CollectionSpec) error { ran++; return family },
	}
	for _, c := range []struct {
		task  bool
		hooks []Hook
		kept  string
	}{
		{true, spec.Hooks, "task"},
		{false, []Hook{{Tracepoint: "a", Prog: "xp"}, {Tracepoint: "b", Prog: "yp"}, ts.Free[0]}, "pid"},
	} {
		got := ts.For(spec, c.task)
		if !reflect.DeepEqual(got.Hooks, c.hooks) {
			t.Errorf("task %v: hooks %+v, want %+v", c.task, got.Hooks, c.hooks)
		}
		cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{"task": {}, "pid": {}}}
		if err := got.Prepare(cs); err != family {
			t.Errorf("task %v: prepare returned %v, want the family's", c.task, err)
		}
		if _, ok := cs.Maps[c.kept]; len(cs.Maps) != 1 || !ok {
			t.Errorf("task %v: maps %v, want only %s", c.task, cs.Maps, c.kept)
		}
	}
	if ran != 2 {
		t.Errorf("the family's prepare ran %d times, want 2", ran)
	}
	if spec.Hooks[0].Prog != "x" || !spec.Hooks[0].BTFOnly {
		t.Errorf("For changed the caller's hooks: %+v", spec.Hooks)
	}
}
