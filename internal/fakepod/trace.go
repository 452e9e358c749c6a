package fakepod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Trace is a private tracefs instance recording one event with a filter: the kernel's own
// record of a tracepoint, which tests compare kpod's counts with. It is removed when the
// test ends.
type Trace struct {
	dir string
	t   testing.TB
}

var traceSeq int

// NewTrace records event ("group/name") where filter (tracefs filter syntax) holds.
func NewTrace(t testing.TB, event, filter string) *Trace {
	t.Helper()
	RequireRoot(t)
	root := "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(root, "instances")); err != nil {
		t.Fatalf("no tracefs instances: %v", err)
	}
	traceSeq++
	tr := &Trace{dir: filepath.Join(root, "instances", fmt.Sprintf("kpod-%d-%d", os.Getpid(), traceSeq)), t: t}
	if err := os.Mkdir(tr.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(tr.dir); err != nil {
			t.Errorf("removing tracefs instance: %v", err)
		}
	})
	ev := filepath.Join(tr.dir, "events", event)
	tr.write(filepath.Join(tr.dir, "buffer_size_kb"), "8192")
	if filter != "" { // "" records every event
		tr.write(filepath.Join(ev, "filter"), filter)
	}
	tr.write(filepath.Join(ev, "enable"), "1")
	t.Cleanup(func() { tr.write(filepath.Join(ev, "enable"), "0") })
	return tr
}

func (tr *Trace) write(path, v string) {
	tr.t.Helper()
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		tr.t.Fatalf("writing %s: %v", path, err)
	}
}

// Lines returns the recorded events, and fails the test if the ring buffer overran (then
// the record is incomplete).
func (tr *Trace) Lines() []string {
	tr.t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.dir, "trace"))
	if err != nil {
		tr.t.Fatal(err)
	}
	cpus, _ := filepath.Glob(filepath.Join(tr.dir, "per_cpu", "cpu*", "stats"))
	for _, f := range cpus {
		stats, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(stats), "overrun: ") && !strings.Contains(string(stats), "overrun: 0\n") {
			tr.t.Fatalf("tracefs buffer overran (%s): %s", f, stats)
		}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// NewKprobeTrace defines a kprobe event on a kernel function (tracefs kprobe_events, removed
// when the test ends) and records it like NewTrace.
func NewKprobeTrace(t testing.TB, function, filter string) *Trace {
	t.Helper()
	traceSeq++
	group, name := "kpod", fmt.Sprintf("k%d_%d", os.Getpid(), traceSeq)
	def := fmt.Sprintf("p:%s/%s %s\n", group, name, function)
	if err := appendFile("/sys/kernel/tracing/kprobe_events", def); err != nil {
		t.Fatalf("defining kprobe event %q: %v", def, err)
	}
	t.Cleanup(func() {
		if err := appendFile("/sys/kernel/tracing/kprobe_events", fmt.Sprintf("-:%s/%s\n", group, name)); err != nil {
			t.Errorf("removing kprobe event %s/%s: %v", group, name, err)
		}
	})
	return NewTrace(t, group+"/"+name, filter)
}

func appendFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	return errors.Join(err, f.Close())
}

// OverPID1 counts the lines recorded while a thread of PID 1 was the current task (an event
// in an interrupt taken on top of it). On this project's sandbox hosts PID 1 is the sandbox's
// own agent, and no BPF program runs for a tracepoint hit while one of its threads is current:
// not kpod's, not bpftrace's (10 s of softirq_entry: tracefs recorded 25 over its thread 81,
// bpftrace 0), and no recursion miss is counted. So such events are in the kernel's record
// but cannot be in any BPF count. In the test VM PID 1 is the test runner, which BPF sees.
func OverPID1(lines []string) int {
	over, n := OverPID1Line(), 0
	for _, l := range lines {
		if over(l) {
			n++
		}
	}
	return n
}

// OverPID1Line returns OverPID1's test of one line, for a test that needs to know which
// events no BPF program may have seen.
func OverPID1Line() func(line string) bool {
	tids := map[string]bool{}
	if ents, err := os.ReadDir("/proc/1/task"); err == nil {
		for _, e := range ents {
			tids[e.Name()] = true
		}
	}
	return func(l string) bool {
		// "<comm>-<pid> [cpu] flags ts: event: ..." (comm may contain spaces and dashes).
		head, _, ok := strings.Cut(l, " [")
		if !ok {
			return false
		}
		head = strings.TrimSpace(head)
		i := strings.LastIndexByte(head, '-')
		return i >= 0 && tids[head[i+1:]]
	}
}
