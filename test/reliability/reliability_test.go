//go:build reliability

// Package reliability proves that otelcol-kpod keeps working, loses nothing it does not count
// and needs no more rights than it declares when the node is not quiet (issue 15). Every test
// runs the ocb-built collector (_build/otelcol-kpod) as a process, the way a node runs it:
//
//   - TestSoak: fake pods created and deleted in batches while the collector runs the
//     comprehensive profile at a 1 s cycle; BPF map entries, RSS, Go heap, goroutines, open
//     fds and series measured every KPOD_SOAK_REPORT_EVERY pod cycles and asserted flat.
//   - TestRestarts: a Prometheus server scrapes the collector across a collector restart and
//     a container restart; counters go down only with a new start time, never spike.
//   - TestLeastPrivilege: the collector as a non-root user with exactly the DaemonSet's
//     capabilities, then with each of them dropped in turn.
//   - TestBackpressure: the OTLP endpoint down for KPOD_OUTAGE, then back.
//   - TestBadConfigs: malformed configurations refused at startup, one line naming the key.
//
// make reliability (part of make test) runs the short versions; make soak the long ones. The
// figures are in RELIABILITY.md. Build tag reliability: go test ./... does not run them, and
// scripts/test-kernels.sh (tag e2e) does not take them into its VM.
package reliability

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/promtext"
	"github.com/kpod-project/kpod/internal/testenv"
)

// repoRoot is the repository root (this package is two directories below it).
func repoRoot(t testing.TB) string { return testenv.RepoRoot(t, 2) }

type sample = promtext.Sample

// envInt reads a positive integer knob from the environment.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envDuration reads a positive duration knob from the environment.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// ports are a collector's loopback endpoints: Prometheus exporter, health check, telemetry.
type ports struct{ prom, health, telemetry int }

func freePorts(t testing.TB) ports {
	return ports{prom: testenv.FreePort(t), health: testenv.FreePort(t), telemetry: testenv.FreePort(t)}
}

// localConfig is examples/collector-local.yaml with its own ports, a 1 s cycle, the
// comprehensive profile with the l7 family (every collector there is) and the exporter's
// metric_expiration set to expiration; extra replacements follow.
// comprehensiveL7 replaces an example's "profile: standard" (a receiver key, four spaces in):
// the comprehensive profile and the one family in no profile.
const comprehensiveL7 = "profile: comprehensive\n    collectors: {l7: {enabled: true}}"

func localConfig(t testing.TB, p ports, expiration string, extra ...[2]string) string {
	t.Helper()
	repl := append([][2]string{
		{"endpoint: 127.0.0.1:9464", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.prom)},
		{"endpoint: 127.0.0.1:13133", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.health)},
		{"port: 8888", fmt.Sprintf("port: %d", p.telemetry)},
		{"collection_interval: 10s", "collection_interval: 1s"},
		{"profile: standard", comprehensiveL7},
		{"metric_expiration: 2m", "metric_expiration: " + expiration},
	}, extra...)
	return testenv.ExampleConfig(t, repoRoot(t), "collector-local.yaml", repl...)
}

func (p ports) metricsURL() string   { return fmt.Sprintf("http://127.0.0.1:%d/metrics", p.prom) }
func (p ports) telemetryURL() string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", p.telemetry) }

// scrape fetches url once, failing the test on error.
func scrape(t testing.TB, url string) []sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ss, err := testenv.Scrape(ctx, url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return ss
}

// sum adds the values of the samples called name whose labels include want.
func sum(ss []sample, name string, want map[string]string) float64 {
	var v float64
	for _, s := range promtext.Filter(ss, name, want) {
		v += s.Value
	}
	return v
}

// firstCycle waits until the collector has run two cycles (its BPF programs are attached
// and the exporter has kpod's self-monitoring).
func firstCycle(t testing.TB, c *testenv.Collector, p ports) {
	t.Helper()
	testenv.WaitFor(t, c, p.metricsURL(), 90*time.Second, "two kpod cycles",
		func(s sample) bool { return strings.HasPrefix(s.Name, "kpod_collect") },
		func(ss []sample) bool { return sum(ss, "kpod_collection_cycles_total", nil) >= 2 })
}

// procStatus is what the kernel says of a process: resident memory, open file descriptors,
// threads, user ids and capability sets.
type procStatus struct {
	RSS     uint64         // bytes (VmRSS)
	FDs     int            // entries of /proc/<pid>/fd still open when looked at
	Kept    int            // of them, what kpod keeps open per cgroup and pod: cgroup files and directories, pidfds
	Others  map[string]int // the rest by kind (fdKind), to name what a growth of them is
	Threads int
	Fields  map[string]string // every "Key:\tvalue" line of /proc/<pid>/status
}

func readProcStatus(pid int) (procStatus, error) {
	var st procStatus
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	st.Fields = map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		st.Fields[k] = v
		switch k {
		case "VmRSS":
			kb, err := strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
			if err != nil {
				return st, fmt.Errorf("VmRSS %q: %v", v, err)
			}
			st.RSS = kb << 10
		case "Threads":
			st.Threads, _ = strconv.Atoi(v)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.Others = map[string]int{}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Closed since the listing: a file opened for one read (past the kept budget)
			// during a collection. A CI run counted 58 of them as open at one row.
			continue
		case err != nil:
			st.Others["readlink: "+err.Error()]++
		case strings.HasPrefix(target, "/sys/fs/cgroup/") || target == "anon_inode:[pidfd]":
			st.Kept++
		default:
			st.Others[fdKind(target)]++
		}
		st.FDs++
	}
	return st, nil
}

// fdKind names a descriptor's target without what differs between two of a kind: "socket",
// "pipe", "anon_inode:[bpf-map]" (or [perf_event], ...), a path with its numbers as "N"
// ("/proc/N/net/dev").
func fdKind(target string) string {
	if kind, _, ok := strings.Cut(target, ":["); ok && kind != "anon_inode" {
		return kind
	}
	return digits.ReplaceAllString(target, "N")
}

var digits = regexp.MustCompile(`[0-9]+`)

// goroutineTrace counts the goroutines of a Go process started with
// GODEBUG=schedtrace=<ms>,scheddetail=1: the runtime then writes, every <ms>, a "SCHED" line
// followed by one line per P, M and G; a G line is "  G<id>: status=<n>(<wait reason>) ...".
// Goroutines that are not idle (0) or dead (6) are what runtime.NumGoroutine counts. Use tap
// as the collector's stderr tap: it takes these lines out of the collector's output.
type goroutineTrace struct {
	mu      sync.Mutex
	counted int // in the dump being read
	last    int // of the last complete dump; -1 before one
	dumps   int
}

const goroutineTraceEnv = "GODEBUG=schedtrace=5000,scheddetail=1"

func newGoroutineTrace() *goroutineTrace { return &goroutineTrace{last: -1} }

func (g *goroutineTrace) tap(line string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case strings.HasPrefix(line, "SCHED "):
		if g.dumps > 0 {
			g.last = g.counted
		}
		g.dumps++
		g.counted = 0
		return false
	case strings.HasPrefix(line, "  G"):
		_, rest, ok := strings.Cut(line, "status=")
		if ok && !strings.HasPrefix(rest, "0(") && !strings.HasPrefix(rest, "6(") {
			g.counted++
		}
		return false
	case strings.HasPrefix(line, "  P"), strings.HasPrefix(line, "  M"):
		return false
	}
	return true
}

// dumpsSeen is the number of dumps begun.
func (g *goroutineTrace) dumpsSeen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dumps
}

// goroutines is the count of the last complete dump (-1 before the second dump began).
func (g *goroutineTrace) goroutines() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}

// bpfMap is one BPF map a process holds, read from the kernel (not from the process).
type bpfMap struct {
	ID         ebpf.MapID
	Name       string
	Type       ebpf.MapType
	MaxEntries uint32
	Entries    int      // -1 where the kernel cannot list keys (task storage, arrays)
	CgroupIDs  []uint64 // the first 8 bytes of each key (kpod's data maps start with the cgroup id)
}

// processMaps lists the BPF maps process pid holds file descriptors of (map_id in
// /proc/<pid>/fdinfo) and counts the keys of each hash map by walking them with the
// kernel's get_next_key, as bpftool map dump does.
func processMaps(pid int) ([]bpfMap, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[uint64]bool{}
	var out []bpfMap
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed since
		}
		for _, line := range strings.Split(string(b), "\n") {
			v, ok := strings.CutPrefix(line, "map_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || seen[id] {
				continue
			}
			seen[id] = true
			m, err := readMap(ebpf.MapID(id))
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func readMap(id ebpf.MapID) (bpfMap, error) {
	m, err := ebpf.NewMapFromID(id)
	if err != nil {
		return bpfMap{}, fmt.Errorf("map %d: %w", id, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		return bpfMap{}, fmt.Errorf("map %d: %w", id, err)
	}
	out := bpfMap{ID: id, Name: info.Name, Type: info.Type, MaxEntries: info.MaxEntries, Entries: -1}
	switch info.Type {
	case ebpf.Hash, ebpf.PerCPUHash, ebpf.LRUHash, ebpf.LRUCPUHash:
	default:
		return out, nil
	}
	// A key deleted while the walk stands on it (kpod sweeps concurrently) makes the kernel
	// restart at the first key: walk again, a few times.
	for try := 0; try < 5; try++ {
		out.Entries, out.CgroupIDs = 0, out.CgroupIDs[:0]
		key := make([]byte, info.KeySize)
		err := m.NextKey(nil, &key)
		for err == nil && out.Entries <= int(info.MaxEntries) {
			out.Entries++
			if len(key) >= 8 {
				out.CgroupIDs = append(out.CgroupIDs, binary.NativeEndian.Uint64(key))
			}
			prev := append([]byte(nil), key...)
			err = m.NextKey(prev, &key)
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return out, nil
		case err != nil:
			return out, fmt.Errorf("map %s: next key: %w", info.Name, err)
		}
	}
	return out, fmt.Errorf("map %s: walk restarted 5 times (keys deleted while walking)", info.Name)
}

// kpodCommand is otelcol-kpod --config cfg with env added to this process's environment.
func kpodCommand(bin, cfg string, env ...string) *exec.Cmd {
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// warnings returns up to n lines of the collector's log at level warn or error.
func warnings(out string, n int) []string {
	var w []string
	for _, line := range strings.Split(out, "\n") {
		if len(w) < n && (strings.Contains(line, "\twarn\t") || strings.Contains(line, "\terror\t")) {
			w = append(w, line)
		}
	}
	return w
}
