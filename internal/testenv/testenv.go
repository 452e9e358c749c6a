// Package testenv holds what the tests that run the built collector share: where the
// repository and otelcol-kpod are, free loopback ports, and starting and stopping it.
package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot is the repository root, found from the working directory: `go test` runs a test
// binary in its package's source directory (runtime.Caller cannot be used, as the Makefile
// builds with -trimpath, which makes source paths module-relative). depth is how many
// directories below the root the package is.
func RepoRoot(t testing.TB, depth int) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for i := 0; i < depth; i++ {
		root = filepath.Dir(root)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/kpod-project/kpod\n") {
		t.Fatalf("%s is not the kpod repository root (run the test with go test from the repository)", root)
	}
	return root
}

// CollectorBinary is _build/otelcol-kpod below root; the test fails (not skips) without it.
func CollectorBinary(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(root, "_build", "otelcol-kpod")
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable: run make otelcol (%v)", bin, err)
	}
	return bin
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Collector is an otelcol-kpod process started by StartCollector.
type Collector struct {
	Cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error // exit status, valid once done is closed
}

// StartCollector starts bin --config config and stops it when the test ends: SIGTERM, then,
// if it has not exited 15 s later, a test error and SIGKILL. A failed test's log gets the
// last 8 KiB of the collector's output.
func StartCollector(t testing.TB, bin, config string) *Collector {
	t.Helper()
	c := &Collector{done: make(chan struct{})}
	c.Cmd = exec.Command(bin, "--config", config)
	c.Cmd.Stdout, c.Cmd.Stderr = &c.out, &c.out
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() { c.err = c.Cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			t.Errorf("collector did not stop within 15 s of SIGTERM; killing it")
			_ = c.Cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("collector output (last 8 KiB):\n%s", Tail(c.Output(), 8<<10))
		}
	})
	return c
}

// Done is closed when the collector has exited.
func (c *Collector) Done() <-chan struct{} { return c.done }

// Exited reports whether the collector has exited, and how.
func (c *Collector) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Output is what the collector has written to stdout and stderr so far.
func (c *Collector) Output() string { return c.out.String() }

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// syncBuffer collects a process's output (written by exec's copy goroutines).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
