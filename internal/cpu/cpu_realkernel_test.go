package cpu

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealPidHashFreed: the hash by thread id (kernels without task storage; forced here) has
// an entry for a task once it has switched out, and none once the task is freed, so that it
// holds the node's live threads and a reused id starts afresh — on each rung.
func TestRealPidHashFreed(t *testing.T) {
	fakepod.RequireRoot(t)
	t.Cleanup(bpfload.ForceNoTaskStorageForTest())
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) {
			bpftest.On(t, rung)
			src, err := Start(true)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if _, ok := src.Obj.Maps[CpuMapKpodRqSeen]; ok {
				t.Errorf("the task storage map was made for the pid hash store")
			}
			m := src.Obj.Maps[CpuMapKpodRqPid]
			if info, err := m.Info(); err == nil {
				memlock, _ := info.Memlock()
				t.Logf("%s: %d entries, flags %#x, memlock %d B", CpuMapKpodRqPid, info.MaxEntries, info.Flags, memlock)
			}
			const n = 10
			var cmds []*exec.Cmd
			defer func() {
				for _, c := range cmds {
					c.Process.Kill()
					c.Wait()
				}
			}()
			for range n {
				c := exec.Command("sleep", "60")
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, c)
			}
			has := func(pid int) bool {
				var v CpuRqSeenPid
				return m.Lookup(uint32(pid), &v) == nil
			}
			// until polls cond for up to d: what the kernel does next is waited for, not a time.
			until := func(d time.Duration, cond func() bool) bool {
				for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						return false
					}
				}
				return true
			}
			// Asleep (state S), each switches out: the positive control. A task shows S from
			// before it reaches schedule(), so the entry may come a moment later (the 5.10
			// VM's emulated CPUs once took longer than /proc's read).
			for _, c := range cmds {
				waitSleeping(t, c.Process.Pid)
				if pid := c.Process.Pid; !until(5*time.Second, func() bool { return has(pid) }) {
					t.Errorf("sleeping pid %d has no entry", pid)
				}
			}
			for _, c := range cmds {
				c.Process.Kill()
				c.Wait()
			}
			// Reaped: freed after an RCU grace period.
			left := n
			until(10*time.Second, func() bool {
				left = 0
				for _, c := range cmds {
					if has(c.Process.Pid) {
						left++
					}
				}
				return left == 0
			})
			if left > 0 {
				t.Errorf("%d of %d freed tasks still have an entry", left, n)
			}
			lost, err := src.Obj.UpdateErrors()
			if err != nil {
				t.Fatal(err)
			}
			if lost[CpuMapKpodRqPid] != 0 {
				t.Errorf("%d readings not kept", lost[CpuMapKpodRqPid])
			}
			if _, ok := lost[CpuMapKpodRqSeen]; ok {
				t.Errorf("update errors reported for %s, which was not made", CpuMapKpodRqSeen)
			}
		})
	}
}

// waitSleeping waits until process pid is asleep in the kernel (state S in /proc/<pid>/stat).
func waitSleeping(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the command name's closing parenthesis.
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'S' {
			return
		}
	}
	t.Fatalf("pid %d did not go to sleep", pid)
}
