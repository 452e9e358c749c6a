// Package testenv holds what the tests that run the built collector share: where the
// repository and otelcol-kpod are, the example configs with their values replaced, free
// loopback ports, starting and stopping it, and scraping its Prometheus endpoint.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/promtext"
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

// ExampleConfig writes examples/<name> below root with each {old, new} pair replaced, into
// a temporary file, and returns its path. Each old text must occur exactly once, so that a
// change of the example that a test no longer understands fails loudly.
func ExampleConfig(t testing.TB, root, name string, replace ...[2]string) string {
	t.Helper()
	src := filepath.Join(root, "examples", name)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range replace {
		if n := strings.Count(cfg, r[0]); n != 1 {
			t.Fatalf("%s: expected %q exactly once, found it %d times", src, r[0], n)
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	out := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(out, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// FreePort returns a loopback TCP port that was free a moment ago, for a process the test
// starts next to listen on. It is taken below the kernel's ephemeral range: a port the kernel
// handed out for ":0" is as likely to go to the next outgoing connection before that process
// binds it (a CI run: "address already in use"). No port is returned twice by one test binary.
func FreePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralStart()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		p := 10000 + rand.IntN(lo-10000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatalf("no free loopback port in 10000..%d", lo-1)
	return 0
}

var (
	portMu     sync.Mutex
	portsGiven = map[int]bool{}
)

// ephemeralStart is the first port of net.ipv4.ip_local_port_range (Linux's default 32768).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
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
	return StartCollectorCmd(t, exec.Command(bin, "--config", config), nil)
}

// StartCollectorCmd is StartCollector for a command the test prepared (its environment, a
// wrapper such as capsh that ends by exec'ing the collector, so that the pid is the
// collector's). tap, if not nil, sees each line of stderr first and keeps it out of Output
// by returning false (for runtime traces a test reads, such as GODEBUG=schedtrace).
func StartCollectorCmd(t testing.TB, cmd *exec.Cmd, tap func(line string) (keep bool)) *Collector {
	t.Helper()
	c := &Collector{Cmd: cmd, done: make(chan struct{})}
	c.Cmd.Stdout, c.Cmd.Stderr = &c.out, &c.out
	if tap != nil {
		lw := &lineWriter{tap: tap, next: &c.out}
		c.Cmd.Stderr = lw
		t.Cleanup(lw.flush) // registered first, so it runs after the collector has stopped
	}
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.Cmd.Path, err)
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

// Stop sends SIGTERM and waits up to 15 s for the collector to exit (then kills it), and
// returns how it exited; the cleanup StartCollector registered then has nothing left to do.
func (c *Collector) Stop() error {
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.err
	case <-time.After(15 * time.Second):
		_ = c.Cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("did not stop within 15 s of SIGTERM (killed): %v", c.err)
	}
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

// lineWriter hands each complete line to tap and writes the ones it keeps to next.
type lineWriter struct {
	mu      sync.Mutex
	tap     func(string) bool
	next    io.Writer
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i+1])
		w.partial = w.partial[i+1:]
		if w.tap(strings.TrimSuffix(line, "\n")) {
			_, _ = io.WriteString(w.next, line)
		}
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 && w.tap(string(w.partial)) {
		_, _ = w.next.Write(w.partial)
	}
	w.partial = nil
}

// Scrape fetches and parses a Prometheus endpoint once.
func Scrape(ctx context.Context, url string) ([]promtext.Sample, error) {
	raw, err := promtext.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	return promtext.Parse(bytes.NewReader(raw))
}

// WaitFor scrapes url every 500 ms until ok accepts the samples, and fails the test at the
// deadline (or when the collector exits) with the last scrape's series that show selects.
func WaitFor(t testing.TB, c *Collector, url string, deadline time.Duration, what string, show func(promtext.Sample) bool, ok func([]promtext.Sample) bool) []promtext.Sample {
	t.Helper()
	end := time.Now().Add(deadline)
	var last []promtext.Sample
	var lastErr error
	for {
		if exited, err := c.Exited(); exited {
			t.Fatalf("collector exited (%v) while waiting for %s", err, what)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ss, err := Scrape(ctx, url)
		cancel()
		if err == nil {
			last = ss
			if ok(ss) {
				return ss
			}
		}
		lastErr = err
		if time.Now().After(end) {
			var shown []string
			for _, s := range last {
				if show(s) {
					shown = append(shown, s.String())
				}
			}
			t.Fatalf("no %s on %s within %v (last scrape error: %v); %d relevant series of the last scrape (of %d):\n%s",
				what, url, deadline, lastErr, len(shown), len(last), strings.Join(shown, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
