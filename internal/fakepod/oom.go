package fakepod

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/kpod-project/kpod/internal/cgroupfs"
)

// OOMKills reads the kernel's count of OOM kills in the container's memory cgroup
// (memory.events on v2, memory.oom_control on v1).
func (c *Container) OOMKills(t testing.TB) int {
	t.Helper()
	dir := c.ControllerDir("memory")
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return keyedValue(t, filepath.Join(dir, f), b, "oom_kill")
	}
	t.Fatalf("no memory.events or memory.oom_control in %s", dir)
	return 0
}

// HostOOMKills is the node's count of OOM kills since boot (/proc/vmstat oom_kill, 4.13+):
// every kill of every cgroup, the independent count of what a full map could not store.
func HostOOMKills(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		t.Fatal(err)
	}
	return keyedValue(t, "/proc/vmstat", b, "oom_kill")
}

// OOMKill makes n pods, each limited to 32 MiB and allocating 64 MiB in one container, and
// waits until the kernel has OOM-killed each once. It returns the killed containers.
func OOMKill(t testing.TB, n int) []*Container {
	t.Helper()
	var out []*Container
	for i := 0; i < n; i++ {
		c := New(t, Options{MemoryLimit: 32 << 20}).AddContainer()
		p := c.Start("alloc", strconv.Itoa(64<<20))
		if err := p.Wait(); err == nil || p.Signaled() != syscall.SIGKILL {
			t.Fatalf("pod %d was not OOM-killed: %v", i, err)
		}
		if got := c.OOMKills(t); got != 1 {
			t.Fatalf("pod %d: the kernel counted %d OOM kills in its cgroup, want 1", i, got)
		}
		out = append(out, c)
	}
	return out
}

// keyedValue is the value of key in a flat keyed file.
func keyedValue(t testing.TB, path string, data []byte, key string) int {
	t.Helper()
	m, err := cgroupfs.ParseKeyed(path, data)
	if err != nil {
		t.Fatal(err)
	}
	n, ok := m[key]
	if !ok {
		t.Fatalf("%s has no %s line", path, key)
	}
	return int(n)
}
