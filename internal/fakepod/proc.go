package fakepod

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a workload process running in a fake container.
type Proc struct {
	Cmd    *exec.Cmd
	gate   *os.File
	t      testing.TB
	stdout *bufio.Reader
	out    *os.File // stdout's read end, closed by release
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	// SwitchesAtMove is the process's context-switch count (voluntary + involuntary) when it
	// was moved into its pod, asleep at its gate: every switch after it is the pod's. (A
	// count the workload reads after its gate can already include a preemption in the pod.)
	SwitchesAtMove int64
	// SchedstatAtMove is its /proc/<pid>/schedstat (run ns, run-queue wait ns, switches-in
	// after a wait) at the same moment.
	SchedstatAtMove Schedstat
}

// Schedstat is a task's /proc/<pid>/schedstat: the kernel's own run-queue accounting.
type Schedstat struct{ RunNs, WaitNs, Waits int64 }

// Sub returns s - o.
func (s Schedstat) Sub(o Schedstat) Schedstat {
	return Schedstat{s.RunNs - o.RunNs, s.WaitNs - o.WaitNs, s.Waits - o.Waits}
}

func readSchedstat(pid int) (Schedstat, error) {
	var s Schedstat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return s, err
	}
	if _, err := fmt.Sscanf(string(b), "%d %d %d", &s.RunNs, &s.WaitNs, &s.Waits); err != nil {
		return s, fmt.Errorf("/proc/%d/schedstat %q: %w", pid, b, err)
	}
	return s, nil
}

//go:embed workload/workload.c
var workloadSource []byte

var (
	workloadOnce sync.Once
	workloadPath string
	workloadErr  error
)

// WorkloadBinary builds kpod-workload (a static C program, see workload/workload.c) once per
// test process.
func WorkloadBinary(t testing.TB) string {
	t.Helper()
	workloadOnce.Do(func() {
		// A machine without gcc (the second-kernel VM of scripts/test-kernels.sh) is given a
		// binary built on the host from this same workload.c.
		if p := os.Getenv("KPOD_WORKLOAD_BINARY"); p != "" {
			workloadPath = p
			return
		}
		// One directory per source version, reused by later test runs instead of piling up.
		sum := sha256.Sum256(workloadSource)
		dir := filepath.Join(os.TempDir(), "kpod-workload-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			workloadErr = err
			return
		}
		// The source is embedded, so that the harness works from any directory and with
		// -trimpath builds.
		src := filepath.Join(dir, "workload"+strconv.Itoa(os.Getpid())+".c")
		if workloadErr = os.WriteFile(src, workloadSource, 0o644); workloadErr != nil {
			return
		}
		defer os.Remove(src)
		workloadPath = filepath.Join(dir, "kpod-workload")
		tmp := workloadPath + ".tmp" + strconv.Itoa(os.Getpid()) // test binaries run in parallel
		out, err := exec.Command("gcc", "-static", "-O2", "-pthread", "-o", tmp, src).CombinedOutput()
		if err != nil {
			workloadErr = fmt.Errorf("building %s (needs gcc and libc6-dev): %v\n%s", src, err, out)
			return
		}
		workloadErr = os.Rename(tmp, workloadPath)
	})
	if workloadErr != nil {
		t.Fatal(workloadErr)
	}
	return workloadPath
}

// RemoveBuiltWorkload removes the directory WorkloadBinary built the workload in, if this
// process built one (not the binary KPOD_WORKLOAD_BINARY names): for a package that is its only
// user, from TestMain after all its tests, as the binary is built once per process (-count=2
// runs the tests twice on it).
func RemoveBuiltWorkload() error {
	if workloadPath == "" || os.Getenv("KPOD_WORKLOAD_BINARY") != "" {
		return nil
	}
	return os.RemoveAll(filepath.Dir(workloadPath))
}

// pauseBinary is the workload binary under the name "pause", like a pod sandbox's process.
func pauseBinary(t testing.TB) string {
	p := filepath.Join(filepath.Dir(WorkloadBinary(t)), "pause")
	if _, err := os.Stat(p); err != nil {
		b, err := os.ReadFile(WorkloadBinary(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// Start runs kpod-workload with args in the container and returns once the process is in
// the container's cgroups (in every hierarchy) and released from its gate.
func (c *Container) Start(args ...string) *Proc {
	c.Pod.t.Helper()
	p := c.start(WorkloadBinary(c.Pod.t), args...)
	p.Go()
	return p
}

// Prepare starts kpod-workload with args in the container and leaves it at its gate, in the
// pod: Go starts it (several workloads can then start at the same moment).
func (c *Container) Prepare(args ...string) *Proc {
	c.Pod.t.Helper()
	return c.start(WorkloadBinary(c.Pod.t), args...)
}

// Run runs kpod-workload with args in the container and waits for it to exit successfully.
func (c *Container) Run(args ...string) {
	c.Pod.t.Helper()
	p := c.Start(args...)
	if err := p.Wait(); err != nil {
		c.Pod.t.Fatalf("workload %v: %v\n%s", args, err, p.stderr.String())
	}
}

func (c *Container) start(bin string, args ...string) *Proc {
	t := c.Pod.t
	t.Helper()
	gateR, gateW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()

	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{gateR, readyW} // fds 3 and 4
	env := append(os.Environ(), "KPOD_GATE_FD=3", "KPOD_READY_FD=4")
	env = append(env, c.Env...)
	var ns []string
	if c.Pod.NetNS != nil {
		ns = append(ns, c.Pod.NetNS.Path)
	}
	ns = append(ns, c.SetNS...)
	if len(ns) > 0 {
		env = append(env, "KPOD_SETNS="+strings.Join(ns, ":"))
	}
	cmd.Env = env
	// Our own pipe rather than StdoutPipe: cmd.Wait (run in the background) would close
	// StdoutPipe's read end when the process exits, losing output not read yet.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = outW
	// outR is closed with the pod (or container): Pod.cleanup, Remove.
	p := &Proc{Cmd: cmd, t: t, stdout: bufio.NewReader(outR), out: outR, done: make(chan struct{})}
	cmd.Stderr = &p.stderr
	err = cmd.Start()
	gateR.Close() // the child holds its own copies
	t.Cleanup(func() { gateW.Close() })
	readyW.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	go func() { p.err = cmd.Wait(); close(p.done) }()

	// Wait until the workload sits at its gate, then move it and open the gate.
	buf := make([]byte, 1)
	if _, err := readyR.Read(buf); err != nil {
		t.Fatalf("workload %v did not reach its gate: %v\n%s", args, err, p.stderr.String())
	}
	// The ready byte is written just before the gate's read(2): move the process only once it
	// sleeps there, or a busy host can run the move first and the switch-out of that read
	// is charged to the pod.
	if err := waitSleeping(cmd.Process.Pid); err != nil {
		t.Fatalf("workload %v at its gate: %v", args, err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, root := range c.Pod.roots() {
		if err := os.WriteFile(filepath.Join(root, c.Rel, "cgroup.procs"), []byte(pid), 0); err != nil {
			t.Fatalf("moving workload into %s: %v", root, err)
		}
	}
	if _, p.SwitchesAtMove, err = procSwitches(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if p.SchedstatAtMove, err = readSchedstat(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if c.AtGate != nil {
		c.AtGate(cmd.Process.Pid)
	}
	p.gate = gateW
	return p
}

// Go opens the gate of a workload started with Prepare.
func (p *Proc) Go() {
	p.t.Helper()
	_, err := p.gate.Write([]byte{'x'})
	p.gate.Close()
	if err != nil {
		p.t.Fatalf("opening gate: %v", err)
	}
}

// Wait waits for the process to exit.
func (p *Proc) Wait() error {
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("workload %v did not exit within 2 minutes", p.Cmd.Args)
	}
	// Drain stdout so nothing blocks; the goroutine already reaped the process.
	_, _ = io.Copy(io.Discard, p.stdout)
	return p.err
}

// WaitReady waits for the workload to print "ready" (alloc, sleep).
func (p *Proc) WaitReady() {
	p.t.Helper()
	line, err := p.stdout.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		p.t.Fatalf("workload %v: expected ready, got %q (%v)\n%s", p.Cmd.Args, line, err, p.stderr.String())
	}
}

// ReadLine returns the next line the workload printed.
func (p *Proc) ReadLine() string {
	p.t.Helper()
	line, err := p.stdout.ReadString('\n')
	if err != nil {
		p.t.Fatalf("workload %v: reading its output: %v\n%s", p.Cmd.Args, err, p.stderr.String())
	}
	return strings.TrimSpace(line)
}

// Exited reports whether the process has exited, and with which status.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signaled returns the signal that killed the process, or 0.
func (p *Proc) Signaled() syscall.Signal {
	if p.Cmd.ProcessState == nil {
		return 0
	}
	if ws, ok := p.Cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

func (p *Proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// release closes the harness's end of the process's stdout (the process is gone).
func (p *Proc) release() { _ = p.out.Close() }

// PID is the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Spinners starts one pod per CPU in cpus whose container spins ms milliseconds pinned to
// that CPU; wait waits for all of them and returns the wall time from their start.
func Spinners(t testing.TB, ms int, cpus ...int) (ctrs []*Container, wait func() time.Duration) {
	t.Helper()
	for _, cpu := range cpus {
		c := New(t, Options{}).AddContainer()
		c.Env = []string{"KPOD_CPU=" + strconv.Itoa(cpu)}
		ctrs = append(ctrs, c)
	}
	var procs []*Proc
	for _, c := range ctrs {
		procs = append(procs, c.Prepare("spin", strconv.Itoa(ms)))
	}
	start := time.Now()
	for _, p := range procs {
		p.Go()
	}
	return ctrs, func() time.Duration {
		for _, p := range procs {
			if err := p.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
}

// ParkedSwitches returns the context switches (voluntary + involuntary) of process pid from
// /proc/<pid>/status once it is parked.
func ParkedSwitches(t testing.TB, pid int) int64 {
	t.Helper()
	return parked(t, pid, func() (int64, error) {
		_, n, err := procSwitches(pid)
		return n, err
	})
}

// ParkedSchedstat returns /proc/<pid>/schedstat of process pid once it is parked.
func ParkedSchedstat(t testing.TB, pid int) Schedstat {
	t.Helper()
	return parked(t, pid, func() (Schedstat, error) { return readSchedstat(pid) })
}

// parked returns read() once process pid is parked: asleep, with the same value twice 20 ms
// apart.
func parked[T comparable](t testing.TB, pid int, read func() (T, error)) T {
	t.Helper()
	sample := func() (bool, T) {
		state, _, err1 := procSwitches(pid)
		v, err2 := read()
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		return strings.HasPrefix(state, "S"), v
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		asleep1, v1 := sample()
		time.Sleep(20 * time.Millisecond)
		asleep2, v2 := sample()
		if asleep1 && asleep2 && v1 == v2 {
			return v2
		}
	}
	t.Fatalf("process %d did not park", pid)
	var zero T
	return zero
}

// Exec runs a real program (a server, a client) in the container, in the pod's namespaces,
// from its first instruction: kpod-workload joins the pod, waits at its gate and execs it.
func (c *Container) Exec(prog string, args ...string) *Proc {
	c.Pod.t.Helper()
	return c.Start(append([]string{"run", prog}, args...)...)
}

// Output waits for a program started with Exec and returns its standard output; the test
// fails if it exits non-zero.
func (p *Proc) Output() string {
	p.t.Helper()
	out, _ := io.ReadAll(p.stdout)
	if err := p.Wait(); err != nil {
		p.t.Fatalf("%v: %v\n%s", p.Cmd.Args, err, p.stderr.String())
	}
	return string(out)
}

// procSwitches reads the state and the context switches (voluntary + involuntary) of pid.
func procSwitches(pid int) (state string, n int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			state = v
		case "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches":
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", 0, fmt.Errorf("/proc/%d/status %s: %q", pid, k, v)
			}
			n += x
		}
	}
	return state, n, nil
}

// waitSleeping waits until process pid is in an interruptible sleep (state S).
func waitSleeping(pid int) error {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ")".
		i := bytes.LastIndexByte(b, ')')
		if i >= 0 && i+2 < len(b) && b[i+2] == 'S' {
			return nil
		}
	}
	return fmt.Errorf("not sleeping after 10 s")
}
