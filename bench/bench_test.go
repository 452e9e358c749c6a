//go:build bench

package bench

import (
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// kpodFamilies are the collectors that load BPF programs (README "Profiles"; diskio only
// where no cgroup v2 io controller counts disk I/O, as on this hybrid host).
var kpodFamilies = []string{"cpu", "tcp", "tcpdrop", "oom", "biolatency", "cachestat", "hardirqs", "softirqs", "proc", "syscall", "diskio"}

var profiles = []string{"minimal", "standard", "comprehensive"}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBench is `make bench`: kernel overhead (kpod families and profiles, bpftrace and
// libbpf-tools peers) as interleaved A/B ratios, per-program BPF statistics, userspace cost
// against the number of pods, and BENCHMARKS.md. It asserts nothing about timings.
func TestBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the benchmarks need root (BPF, cgroups, loop devices)")
	}
	runtime.MemProfileRate = 4096 // a precise heap profile of the receiver
	run := &benchRun{
		Rounds:      envInt("BENCH_ROUNDS", 3),
		FocusRounds: envInt("BENCH_FOCUS_ROUNDS", 8),
		Quick:       os.Getenv("BENCH_QUICK") != "",
	}
	run.Machine = machineInfo()
	run.Start = time.Now()
	run.LoadStart = loadAvg()
	outDir := os.Getenv("BENCH_OUT")
	if outDir == "" {
		outDir = "/tmp/kpod-bench"
	}
	run.OutDir = outDir
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	report := os.Getenv("BENCH_REPORT")
	if report == "" {
		report = "../BENCHMARKS.md"
	}
	peerDir, _ := filepath.Abs("peers")
	if run.Quick {
		run.Rounds, run.FocusRounds = 1, 1
	}

	// Everything this run creates is undone by cleanup, also on SIGINT/SIGTERM.
	var (
		cleanMu  sync.Mutex
		cleanups []func()
	)
	onCleanup := func(f func()) { cleanMu.Lock(); cleanups = append(cleanups, f); cleanMu.Unlock() }
	cleanup := func() {
		cleanMu.Lock()
		defer cleanMu.Unlock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		cleanups = nil
	}
	defer cleanup()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		logf("%v: cleaning up", s)
		cleanup()
		os.Exit(130)
	}()

	if err := cleanStale(); err != nil {
		t.Fatalf("removing an earlier run's leftovers: %v", err)
	}

	kbench := filepath.Join(outDir, "kbench")
	if out, err := exec.Command("gcc", "-static", "-O2", "-Wall", "-o", kbench, "kbench/kbench.c").CombinedOutput(); err != nil {
		t.Fatalf("building kbench: %v\n%s", err, out)
	}

	loop, err := newLoopDevice(64)
	if err != nil {
		t.Fatal(err)
	}
	onCleanup(func() {
		if err := loop.close(); err != nil {
			t.Error(err)
		}
	})
	pods, err := newPodSet()
	if err != nil {
		t.Fatal(err)
	}
	onCleanup(func() {
		if err := pods.close(); err != nil {
			t.Error(err)
		}
	})
	benchPod, err := pods.addPod(1)
	if err != nil {
		t.Fatal(err)
	}
	redisPod, err := pods.addPod(2)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{
		kbench: kbench, bench: benchPod.Containers[0], client: redisPod.Containers[1], loop: loop,
		// Short inner rounds, many of them: the minimum is a round no other process disturbed.
		redisN:   5000,
		getppid:  [2]int{2000, 50},
		pingpong: [2]int{100, 100},
		tcp:      [2]int{200, 50},
		forkexec: [2]int{5, 40},
		dread:    [2]int{20, 50},
	}
	if err := s.startRedis(redisPod.Containers[0]); err != nil {
		t.Fatal(err)
	}
	onCleanup(s.stopRedis)
	run.Suite = suiteParams(s)
	if _, _, err := s.run(); err != nil { // warm-up: page cache, redis keys, binaries
		t.Fatal(err)
	}

	// The configs of the kernel-overhead matrix.
	configs := []*config{{Name: "none (A/A control)", Kind: kindNone}}
	families := kpodFamilies
	if run.Quick {
		families = []string{"cpu", "syscall"}
	}
	for _, f := range families {
		configs = append(configs, &config{Name: "kpod " + f, Kind: kindFamily, Family: f,
			kpod: &kpodOptions{Profile: "custom", Collectors: []string{f}, Delay: time.Second}})
	}
	for _, p := range profiles {
		configs = append(configs, &config{Name: "kpod " + p, Kind: kindProfile, Family: p,
			kpod: &kpodOptions{Profile: p, Delay: time.Second}})
	}
	var peers []peerTool
	peers = append(peers, bpftracePeers(peerDir)...)
	peers = append(peers, libbpfPeers()...)
	if run.Quick {
		peers = []peerTool{bpftracePeers(peerDir)[0], libbpfPeers()[0]}
	}
	for i := range peers {
		p := &peers[i]
		kind := kindBpftrace
		if strings.HasPrefix(p.Name, "libbpf") {
			kind = kindLibbpf
		}
		configs = append(configs, &config{Name: p.Name, Kind: kind, Family: p.Family, peer: p})
	}
	for _, p := range notRunnablePeers() {
		c := &config{Name: p.Name, Kind: kindLibbpf, Family: p.Family, peer: &p}
		a, err := c.attach()
		if err == nil {
			a.detach()
			run.Unrunnable = append(run.Unrunnable, unrunnable{p.Name, p.Family, "attached (unexpectedly): not benchmarked"})
			continue
		}
		run.Unrunnable = append(run.Unrunnable, unrunnable{p.Name, p.Family, firstLines(err.Error(), 3)})
	}

	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	logf("kernel overhead: %d configs × %d rounds", len(configs), run.Rounds)
	run.Overhead, err = runOverhead(s, configs, run.Rounds, benchNames(), rng)
	if err != nil {
		t.Fatal(err)
	}
	writeJSON(filepath.Join(outDir, "overhead.json"), run.Overhead)

	var focus []*config
	for _, c := range configs {
		if c.Kind == kindNone || c.Name == "kpod standard" || c.Name == "kpod comprehensive" {
			focus = append(focus, c)
		}
	}
	s.redisN = 10000
	run.Focus, err = runFocus(s, focus, []string{"redis-set", "redis-get", "redis-cpu", "pingpong", "getppid"}, run.FocusRounds, rng)
	if err != nil {
		t.Fatal(err)
	}
	s.redisN = 5000
	writeJSON(filepath.Join(outDir, "focus.json"), run.Focus)

	// Per-program statistics: kpod comprehensive (every BPF family) and every peer.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enabling BPF statistics: %v", err)
	}
	var statConfigs []*config
	for _, c := range configs {
		if c.Name == "kpod comprehensive" || c.peer != nil {
			if r := run.Overhead.byName(c.Name); r == nil || r.Error == "" {
				statConfigs = append(statConfigs, c)
			}
		}
	}
	run.Stats = runStats(s, statConfigs)
	stats.Close()
	writeJSON(filepath.Join(outDir, "stats.json"), run.Stats)

	// The kernel benchmarks' pods go before the scale test creates its own.
	cleanup()

	counts := []int{10, 110, 1000}
	if run.Quick {
		counts = []int{10, 110}
	}
	run.Scale = runScale(counts, scaleOptions{
		kbench: kbench, otelcol: os.Getenv("BENCH_OTELCOL"), outDir: outDir,
		cycles: 8, otelSamples: 5, profileAt: counts[len(counts)-1],
	})
	writeJSON(filepath.Join(outDir, "scale.json"), run.Scale)

	run.End = time.Now()
	run.LoadEnd = loadAvg()
	md := renderReport(run)
	if err := os.WriteFile(report, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	logf("wrote %s (raw results and profiles in %s), %v in all", report, outDir, run.End.Sub(run.Start).Round(time.Second))
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " / ")
}
