//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/receiver/kpodreceiver"
)

// kpodFamilies are the collectors that load BPF programs (diskio only where no cgroup v2 io
// controller counts disk I/O, as on this hybrid host), from the receiver's catalog.
var kpodFamilies = kpodreceiver.BPFCollectors()

var profiles = []string{"minimal", "standard", "comprehensive"}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestBench is `make bench`: kernel overhead (kpod families and profiles against nothing, against
// their floors and against bpftrace and libbpf-tools peers) in close blocks of samples, the
// budget focus and the head-to-head groups (tcp paths, syscall alternatives), per-program BPF
// statistics, the tcp iterator's cost per collection, userspace cost against the number of
// pods, and BENCHMARKS.md. It asserts nothing about timings.
func TestBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the benchmarks need root (BPF, cgroups, loop devices)")
	}
	quick := os.Getenv("BENCH_QUICK") != ""
	def := func(full, q int) int {
		if quick {
			return q
		}
		return full
	}
	run := &benchRun{
		Rounds:       envInt("BENCH_ROUNDS", def(2, 1)),
		MicroPairs:   envInt("BENCH_MICRO_PAIRS", def(3, 1)),
		PeerPairs:    envInt("BENCH_PEER_PAIRS", def(2, 1)),
		RedisPairs:   envInt("BENCH_REDIS_PAIRS", def(1, 1)),
		FocusPairs:   envInt("BENCH_FOCUS_PAIRS", def(24, 2)),
		TCPPairs:     envInt("BENCH_TCP_PAIRS", def(16, 2)),
		SyscallPairs: envInt("BENCH_SYSCALL_PAIRS", def(12, 2)),
		L7Pairs:      envInt("BENCH_L7_PAIRS", def(12, 2)),
		PrimPairs:    envInt("BENCH_PRIM_PAIRS", def(40, 4)),
		Quick:        quick,
		Seed:         time.Now().UnixNano(),
	}
	if v, err := strconv.ParseInt(os.Getenv("BENCH_SEED"), 10, 64); err == nil {
		run.Seed = v
	}
	rng := rand.New(rand.NewSource(run.Seed))
	run.Machine = machineInfo()
	run.Start = time.Now()
	run.LoadStart = loadAvg()
	var s *suite
	var spent0 float64
	var runs0 int
	phase := func(name string, t0 time.Time) {
		p := phaseTime{Name: name, Sec: time.Since(t0).Seconds()}
		if s != nil {
			sec, n := s.spent()
			p.BenchSec, p.BenchRuns = sec-spent0, n-runs0
			spent0, runs0 = sec, n
		}
		run.Phases = append(run.Phases, p)
		logf("phase %s: %.0f s (%d benchmark runs, %.0f s of them)", name, p.Sec, p.BenchRuns, p.BenchSec)
	}
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
	// Registered first, so it runs last: everything recorded has been undone by then.
	onCleanup(func() {
		_ = os.Remove(filepath.Join(stateDir, "pids"))
		_ = os.Remove(filepath.Join(stateDir, "loops"))
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		logf("%v: cleaning up", s)
		cleanup()
		// The scale phase's pods and processes are not in cleanups; they are recorded.
		if err := cleanStale(); err != nil {
			logf("cleanup: %v", err)
		}
		os.Exit(130)
	}()

	if err := cleanStale(); err != nil {
		t.Fatalf("removing an earlier run's leftovers: %v", err)
	}
	t0 := time.Now()

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
	disk, err := newDiskFiles(16)
	if err != nil {
		t.Fatal(err)
	}
	onCleanup(func() {
		if err := disk.close(); err != nil {
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
	benchPod, err := pods.addPod(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := benchPod.Containers[1].limitMemory(oomLimit); err != nil {
		t.Fatalf("limiting the oomkill container's memory: %v", err)
	}
	redisPod, err := pods.addPod(2)
	if err != nil {
		t.Fatal(err)
	}
	s = &suite{
		kbench: kbench, bench: benchPod.Containers[0], oom: benchPod.Containers[1], client: redisPod.Containers[1], loop: loop, disk: disk,
		// Short inner rounds, many of them: the minimum is a round no other process disturbed.
		redisN:   5000,
		redisPN:  40000,
		http:     [2]int{100, 50},
		getppid:  [2]int{2000, 25},
		pingpong: [2]int{100, 50},
		tcp:      [2]int{200, 20},
		forkexec: [2]int{5, 20},
		dread:    [2]int{20, 50},
		vdread:   [2]int{20, 30},
		bufwrite: [2]int{256, 20},
		tcprst:   [2]int{50, 40},
		oomkill:  [2]int{2, 2},
	}
	if err := s.startRedis(redisPod.Containers[0]); err != nil {
		t.Fatal(err)
	}
	onCleanup(s.stopRedis)
	run.Suite = suiteParams(s)
	if _, _, err := s.run(); err != nil { // warm-up: page cache, redis keys, binaries
		t.Fatal(err)
	}
	spent0, runs0 = s.spent()

	// The configs: the A/A control, each family, each profile, the variants of the
	// head-to-head groups, the peers.
	configs := []*config{{Name: aaName, Kind: kindNone}}
	families := kpodFamilies
	if run.Quick {
		families = []string{"cpu", "tcp", "tcpdrop", "cachestat", "hardirqs", "syscall", "l7"}
	}
	for _, f := range families {
		configs = append(configs, &config{Name: "kpod " + f, Kind: kindFamily, Family: f,
			kpod: &kpodOptions{Profile: "custom", Collectors: []string{f}, Delay: time.Second}})
	}
	for _, p := range profiles {
		configs = append(configs, &config{Name: "kpod " + p, Kind: kindProfile, Family: p,
			kpod: &kpodOptions{Profile: p, Delay: time.Second}})
	}
	// The standard profile with the l7 family added: whether l7 can join standard (l7 group).
	configs = append(configs, &config{Name: cfgStandardL7, Kind: kindVariant, Family: "standard", noStats: true,
		kpod: &kpodOptions{Profile: "standard", Collectors: []string{"l7"}, Delay: time.Second}})
	configs = append(configs, &config{Name: cfgCompExactSirq, Kind: kindVariant, Family: "comprehensive", noStats: true,
		kpod: &kpodOptions{Profile: "comprehensive", ExactSoftirqs: true, Delay: time.Second}})
	configs = append(configs, variantConfigs()...)
	run.Exact = checkExact(kbench, s.bench, 10000)
	run.L7Exact = checkL7(s, redisPod.Containers[0], 100, 20, 16000)
	for _, c := range run.L7Exact {
		logf("l7 exactness check: %s: %s: %d of %d %s", c.Workload, c.Key, c.Got, c.Want, c.Error)
	}
	var peers []peerTool
	peers = append(peers, bpftracePeers(peerDir)...)
	peers = append(peers, libbpfPeers()...)
	if run.Quick {
		peers = []peerTool{bpftracePeers(peerDir)[0], libbpfPeers()[0], libbpfPeers()[5]}
	}
	for i := range peers {
		p := &peers[i]
		kind := kindBpftrace
		if strings.HasPrefix(p.Name, "libbpf") {
			kind = kindLibbpf
		}
		configs = append(configs, &config{Name: p.Name, Kind: kind, Family: p.Family, peer: p, streaming: p.Streaming})
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
	phase("setup", t0)

	t0 = time.Now()
	logf("loading and adopting %d configs", len(configs))
	entries := prepare(configs)
	onCleanup(func() {
		for _, e := range entries {
			if e.ad != nil {
				e.ad.close()
			}
			if e.floor != nil {
				e.floor.close()
			}
			for _, c := range e.counters {
				c.close()
			}
		}
	})
	for _, e := range entries {
		if e.cfg.Kind == kindVariant {
			run.Variants = append(run.Variants, e.res)
		}
	}
	phase("loading and adopting", t0)

	// Per-program statistics first: they say which benchmarks each family's programs run on.
	t0 = time.Now()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enabling BPF statistics: %v", err)
	}
	// The profiles, variants and peers; a family alone only if it is in no profile (l7): the
	// others' programs are in kpod comprehensive's pass.
	inComp := map[string]bool{}
	for _, e := range entries {
		if e.cfg.Name == cfgComprehensive {
			for _, p := range e.res.Programs {
				inComp[p.Name] = true
			}
		}
	}
	var statEntries []*entry
	for _, e := range entries {
		alone := e.cfg.Kind == kindFamily && len(e.res.Programs) > 0 && !inComp[e.res.Programs[0].Name]
		if (e.cfg.Kind == kindProfile || e.cfg.Kind == kindVariant || e.cfg.peer != nil || alone) && !e.cfg.noStats {
			statEntries = append(statEntries, e)
		}
	}
	run.Stats = runStats(s, statEntries)
	stats.Close()
	writeJSON(filepath.Join(outDir, "stats.json"), run.Stats)
	phase("BPF statistics", t0)

	t0 = time.Now()
	fam := map[string]string{}
	for _, e := range entries {
		if e.cfg.Kind == kindFamily {
			for _, p := range e.res.Programs {
				fam[p.Name] = e.cfg.Family
			}
		}
	}
	relevantBenches(entries, run.familyStats(fam), fam)
	run.Matrix, err = runMatrix(s, entries, run.Rounds, run.MicroPairs, run.PeerPairs, run.RedisPairs, rng)
	if err != nil {
		t.Fatal(err)
	}
	writeJSON(filepath.Join(outDir, "matrix.json"), run.Matrix)
	phase("matrix", t0)

	for _, g := range []groupSpec{
		{name: groupBudget, purpose: "the budgeted profiles on redis and ping-pong, against nothing, the A/A control and their floors; comprehensive with every soft IRQ timed",
			members: []string{"kpod standard", "kpod comprehensive", cfgCompExactSirq}, aa: true, floors: true, floorsOf: []string{"kpod standard", "kpod comprehensive"}, counters: true, units: []string{"redis", "pingpong"}, blocks: run.FocusPairs, requests: 10000},
		{name: groupTCP, purpose: "the tcp family's per-socket path (default) against its per-segment path (fallback), each with its floor",
			members: []string{"kpod tcp", varTCPSegment}, floors: true, units: []string{"redis", "tcp", "tcprst"}, blocks: run.TCPPairs, requests: 10000},
		{name: groupSyscall, purpose: "ways to count the tracked system calls, each with its floor: per call or on every call; entry and exit, or exit only (with or without sampled latency)",
			members: []string{"kpod syscall", varSysExact, varSysEveryCall, varSysExitOnly, varSysEveryExit}, floors: true, units: []string{"redis", "getppid", "pingpong"}, blocks: run.SyscallPairs, requests: 5000},
		{name: groupL7, purpose: "the l7 family alone (with its floor: empty programs on the same syscalls:sys_enter/exit_* tracepoints), the standard profile and the standard profile with l7, on redis (plain and pipelined) and HTTP keep-alive",
			members: []string{"kpod l7", "kpod standard", cfgStandardL7}, aa: true, floors: true, floorsOf: []string{"kpod l7"}, units: []string{"redis", "redisp", "http"}, blocks: run.L7Pairs, requests: 10000},
	} {
		t0 = time.Now()
		run.Groups = append(run.Groups, runGroup(s, entries, g, rng))
		phase("group: "+g.name, t0)
	}
	t0 = time.Now()
	run.Groups = append(run.Groups, runPrimitives(s, run.PrimPairs, rng))
	phase("group: "+groupPrim, t0)
	writeJSON(filepath.Join(outDir, "groups.json"), run.Groups)

	t0 = time.Now()
	iterCounts := []int{0, 1000, 5000} // 5000 connections: 10,000 sockets (the descriptor limit here is 20,000)
	if run.Quick {
		iterCounts = []int{0, 1000}
	}
	run.Iter = runIterCost(kbench, s.bench, iterCounts, 7)
	phase("tcp iterator", t0)

	if os.Getenv("BENCH_EXPERIMENTS") != "0" {
		t0 = time.Now()
		run.Experiments = runExperiments(s, kbench, os.Getenv("BENCH_OTELCOL"), outDir, rng)
		writeJSON(filepath.Join(outDir, "experiments.json"), run.Experiments)
		phase("experiments", t0)
	}

	// The kernel benchmarks' pods go before the scale test creates its own.
	cleanup()

	t0 = time.Now()
	counts := []int{10, 110, 1000}
	if run.Quick {
		counts = []int{10, 110}
	}
	run.Scale = runScale(counts, scaleOptions{
		kbench: kbench, otelcol: os.Getenv("BENCH_OTELCOL"), outDir: outDir,
		cycles: 8, otelSamples: 5, profileAt: counts[len(counts)-1],
	})
	writeJSON(filepath.Join(outDir, "scale.json"), run.Scale)
	phase("userspace scale", t0)

	run.End = time.Now()
	run.LoadEnd = loadAvg()
	run.BenchTime = map[string][2]float64{}
	for b, sec := range s.timeSpent {
		run.BenchTime[b] = [2]float64{float64(s.timeRuns[b]), sec}
	}
	writeJSON(filepath.Join(outDir, "run.json"), run)
	md, err := renderReport(run)
	if err != nil {
		t.Error(err) // the report is still written, with the error where ANALYSIS.md would be
	}
	if err := os.WriteFile(report, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	logf("wrote %s (raw results and profiles in %s), %v in all", report, outDir, run.End.Sub(run.Start).Round(time.Second))
}

// oomLimit is the memory limit of the oomkill benchmark's container.
const oomLimit = 16 << 20

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " / ")
}

// TestRender rewrites BENCHMARKS.md from the run.json of an earlier run (BENCH_RENDER_FROM),
// measuring nothing: for changes to the report's layout or to ANALYSIS.md.
func TestRender(t *testing.T) {
	from := os.Getenv("BENCH_RENDER_FROM")
	if from == "" {
		t.Skip("BENCH_RENDER_FROM (a run.json) not set")
	}
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	run := &benchRun{}
	if err := json.Unmarshal(b, run); err != nil {
		t.Fatal(err)
	}
	report := os.Getenv("BENCH_REPORT")
	if report == "" {
		report = "../BENCHMARKS.md"
	}
	md, err := renderReport(run)
	if err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(report, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestScale runs only the userspace-cost phase (no report), for trying a change to the
// collection cycle: BENCH_PODS (comma-separated, default 110,1000) pods, in-process cycles
// only unless BENCH_OTELCOL is set; BENCH_CYCLES in-process cycles (default 8, as make bench),
// a CPU profile of them at BENCH_PROFILE_AT pods. Prints median cycle and per-collector durations.
func TestScale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	counts := []int{110, 1000}
	if s := os.Getenv("BENCH_PODS"); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("BENCH_PODS: %v", err)
			}
			counts = append(counts, n)
		}
	}
	if err := cleanStale(); err != nil {
		t.Fatal(err)
	}
	outDir := os.Getenv("BENCH_OUT")
	if outDir == "" {
		outDir = t.TempDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kbench := filepath.Join(outDir, "kbench")
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", kbench, "kbench/kbench.c").CombinedOutput(); err != nil {
		t.Fatalf("building kbench: %v\n%s", err, out)
	}
	for _, p := range runScale(counts, scaleOptions{kbench: kbench, otelcol: os.Getenv("BENCH_OTELCOL"), outDir: outDir, cycles: envInt("BENCH_CYCLES", 8), otelSamples: 5, profileAt: envInt("BENCH_PROFILE_AT", 0)}) {
		if p.Error != "" {
			t.Errorf("%d pods: %s", p.Pods, p.Error)
			continue
		}
		line := fmt.Sprintf("%d pods: cycle median %.1f ms;", p.Pods, 1e3*median(p.Cycles))
		names := make([]string, 0, len(p.Collectors))
		for c := range p.Collectors {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			line += fmt.Sprintf(" %s %.1f", c, 1e3*median(p.Collectors[c]))
		}
		t.Log(line)
		if len(p.OtelRSS) > 0 {
			t.Logf("%d pods: otelcol-kpod VmRSS max %.1f MiB, binary's pages %.1f MiB, cycle median %.1f ms",
				p.Pods, float64(slices.Max(p.OtelRSS))/(1<<20), float64(p.OtelBinRSS)/(1<<20), 1e3*median(p.OtelCycles))
		}
	}
}
