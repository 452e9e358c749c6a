//go:build bench

package bench

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

type unrunnable struct{ Name, Family, Why string }

// benchRun is everything one `make bench` measured.
type benchRun struct {
	Rounds, FocusRounds int
	Quick               bool
	OutDir              string
	Machine             map[string]string
	Start, End          time.Time
	LoadStart, LoadEnd  string
	Suite               map[string]string
	Overhead            *overheadResult
	Focus               *focusResult
	Stats               []*statsResult
	Scale               []*scalePoint
	Unrunnable          []unrunnable
}

func suiteParams(s *suite) map[string]string {
	return map[string]string{
		"redis":    fmt.Sprintf("redis-benchmark -t set -n %d -c 50, then -t get (server on CPU 0 and client on CPU 1, in two containers of one fake pod)", s.redisN),
		"getppid":  fmt.Sprintf("kbench getppid %d %d", s.getppid[0], s.getppid[1]),
		"pingpong": fmt.Sprintf("kbench pingpong %d %d", s.pingpong[0], s.pingpong[1]),
		"tcp":      fmt.Sprintf("kbench tcp %d %d 4096", s.tcp[0], s.tcp[1]),
		"forkexec": fmt.Sprintf("kbench forkexec %d %d", s.forkexec[0], s.forkexec[1]),
		"dread":    fmt.Sprintf("kbench dread %s %d %d 4096", s.loop.Dev, s.dread[0], s.dread[1]),
	}
}

func sh(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func machineInfo() map[string]string {
	m := map[string]string{}
	m["kernel"] = sh("uname", "-srmv")
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	m["cores"] = fmt.Sprint(runtime.NumCPU())
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.TrimSpace(strings.TrimPrefix(strings.Split(string(b), "\n")[0], "MemTotal:"))
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m["os"] = "Debian " + strings.TrimSpace(string(b))
	}
	m["hypervisor"] = sh("sh", "-c", "dmesg 2>/dev/null | grep -m1 -o 'Hypervisor detected: .*' || systemd-detect-virt 2>/dev/null || echo unknown")
	m["bpftrace"] = sh("bpftrace", "--version")
	m["libbpf-tools"] = sh("dpkg-query", "-W", "-f", "${Version}", "libbpf-tools")
	m["redis"] = sh("sh", "-c", "redis-server --version | cut -d' ' -f3")
	m["go"] = runtime.Version()
	m["gcc"] = sh("sh", "-c", "gcc --version | head -1")
	m["commit"] = sh("git", "rev-parse", "--short=12", "HEAD")
	if st := sh("git", "status", "--porcelain", "--untracked-files=no", "--", "../bpf", "../internal", "../receiver"); st != "" && st != "?" {
		m["commit"] += " (with uncommitted changes in bpf/, internal/ or receiver/)"
	}
	m["bpf_jit"] = sh("sysctl", "-n", "net.core.bpf_jit_enable")
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// ---- statistics ----

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minMax(v []float64) (float64, float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	return lo, hi
}

// ---- report ----

type mdWriter struct{ b strings.Builder }

func (w *mdWriter) p(format string, a ...any) { fmt.Fprintf(&w.b, format+"\n", a...) }

func (w *mdWriter) row(cells ...string) { w.b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }

func (w *mdWriter) header(cells ...string) {
	w.row(cells...)
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
	}
	w.row(seps...)
}

func ns(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100000:
		return fmt.Sprintf("%.0f µs", v/1000)
	case math.Abs(v) >= 10000:
		return fmt.Sprintf("%.1f µs", v/1000)
	default:
		return fmt.Sprintf("%.0f ns", v)
	}
}

func signedNs(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := ns(v)
	if v >= 0 {
		s = "+" + s
	}
	return s
}

// overheadCell summarises a config on a benchmark: median ratio and added ns/op.
type cell struct {
	Ratio, Added, NsOp float64
	Lo, Hi             float64 // range of the per-round ratios
	N                  int
}

func (run *benchRun) baseNs(b string) float64 {
	var v []float64
	for _, s := range run.Overhead.Baselines {
		v = append(v, s[b])
	}
	return median(v)
}

func (run *benchRun) cellOf(r *configResult, b string) cell {
	if r == nil || len(r.Ratios[b]) == 0 {
		return cell{Ratio: math.NaN(), Added: math.NaN(), NsOp: math.NaN()}
	}
	c := cell{Ratio: median(r.Ratios[b]), NsOp: median(r.Samples[b]), N: len(r.Ratios[b])}
	c.Lo, c.Hi = minMax(r.Ratios[b])
	c.Added = (c.Ratio - 1) * run.baseNs(b)
	return c
}

// noise is the A/A control's largest deviation from 1 on a benchmark.
func (run *benchRun) noise(b string) float64 {
	r := run.Overhead.byName("none (A/A control)")
	if r == nil || len(r.Ratios[b]) == 0 {
		return math.NaN()
	}
	lo, hi := minMax(r.Ratios[b])
	return math.Max(1-lo, hi-1)
}

// kpodProgFamily maps kpod program names to their family, from the programs each family
// attached when it ran alone.
func (run *benchRun) kpodProgFamily() map[string]string {
	out := map[string]string{}
	for _, r := range run.Overhead.Configs {
		if r.Kind == kindFamily {
			for _, p := range r.Programs {
				out[p.Name] = r.Family
			}
		}
	}
	return out
}

func (run *benchRun) statsOf(name string) *statsResult {
	for _, s := range run.Stats {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// statBench maps a suite benchmark to the stats-phase run that covered it.
func statBench(b string) string {
	if strings.HasPrefix(b, "redis") {
		return "redis"
	}
	return b
}

// bpfPerOp sums, over the programs for which keep is true, runs per op and ns per op.
func bpfPerOp(s *statsResult, b string, keep func(string) bool) (runsPerOp, nsPerOp float64, ok bool) {
	if s == nil || s.Progs[b] == nil || s.Ops[b] == 0 {
		return 0, 0, false
	}
	for name, p := range s.Progs[b] {
		if keep(name) {
			runsPerOp += p.Runs / s.Ops[b]
			nsPerOp += p.RunTimeNs / s.Ops[b]
		}
	}
	return runsPerOp, nsPerOp, true
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func ms(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", v*1000)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func renderReport(run *benchRun) string {
	w := &mdWriter{}
	o := run.Overhead
	w.p("# kpod benchmarks")
	w.p("")
	w.p("Written by `make bench` (code in [bench/](bench/), method below); every number comes from the run described")
	w.p("here. Re-running overwrites this file. Raw results (JSON), CPU profiles and collector logs of the run: `%s`.", run.OutDir)
	if run.Quick {
		w.p("")
		w.p("**BENCH_QUICK run: a subset of configs, one round. Not for conclusions.**")
	}
	w.p("")
	w.header("", "")
	w.row("command", fmt.Sprintf("`make bench` → `bench/run.sh` → `go test -tags bench -run TestBench ./bench/` (BENCH_ROUNDS=%d, BENCH_FOCUS_ROUNDS=%d)", run.Rounds, run.FocusRounds))
	w.row("kpod", "commit "+run.Machine["commit"])
	w.row("kernel", run.Machine["kernel"])
	w.row("machine", fmt.Sprintf("%s, %s cores, %s RAM, %s, %s", run.Machine["cpu"], run.Machine["cores"], run.Machine["memory"], run.Machine["os"], run.Machine["hypervisor"]))
	w.row("date", fmt.Sprintf("%s → %s (%s)", run.Start.Format("2006-01-02 15:04:05 MST"), run.End.Format("15:04:05"), run.End.Sub(run.Start).Round(time.Second)))
	w.row("load average (1/5/15 min)", fmt.Sprintf("at start **%s**, at end **%s** (2 cores: other engineers' builds and tests were running)", run.LoadStart, run.LoadEnd))
	w.row("tools", fmt.Sprintf("%s; libbpf-tools %s; redis %s; %s; %s", run.Machine["bpftrace"], run.Machine["libbpf-tools"], run.Machine["redis"], run.Machine["go"], run.Machine["gcc"]))
	w.row("how kpod is loaded", "through the receiver: `kpodreceiver.NewFactory().CreateMetrics(...)` + `Start` in the benchmark process, with `profile: minimal/standard/comprehensive`, or `profile: custom` + `collectors.<family>.enabled: true` for one family; collection_interval 30 s (default), initial_delay 1 s, bpf_stats off")
	w.p("")

	renderBudgets(w, run)
	renderMethod(w, run)
	renderMatrix(w, run)
	renderPerEvent(w, run)
	renderPrograms(w, run)
	renderPeers(w, run)
	renderFocus(w, run)
	renderScale(w, run)
	renderMemory(w, run)
	if b, err := os.ReadFile("ANALYSIS.md"); err == nil {
		w.p("")
		w.b.Write(b)
	}
	_ = o
	return w.b.String()
}

// ---- budgets ----

type budgetLine struct {
	Budget, Measured string
	Met              bool
	Known            bool
}

func (run *benchRun) focusLoss(profile string) (set, get float64, ok bool) {
	c := run.focusOf("kpod " + profile)
	if c == nil || len(c.Ratios["redis-set"]) == 0 {
		return 0, 0, false
	}
	return 1 - 1/median(c.Ratios["redis-set"]), 1 - 1/median(c.Ratios["redis-get"]), true
}

// focusCPU is the median increase of CPU time per request in the budget focus.
func (run *benchRun) focusCPU(profile string) float64 {
	c := run.focusOf("kpod " + profile)
	if c == nil || len(c.Ratios["redis-cpu"]) == 0 {
		return math.NaN()
	}
	return median(c.Ratios["redis-cpu"]) - 1
}

func (run *benchRun) scaleAt(n int) *scalePoint {
	for _, p := range run.Scale {
		if p.Pods == n {
			return p
		}
	}
	return nil
}

func renderBudgets(w *mdWriter, run *benchRun) {
	w.p("## Budgets (DESIGN.md \"Performance budgets\")")
	w.p("")
	w.header("budget", "measured", "verdict")
	for _, b := range []struct {
		profile string
		limit   float64
	}{{"standard", 0.02}, {"comprehensive", 0.05}} {
		set, get, ok := run.focusLoss(b.profile)
		if !ok {
			w.row(fmt.Sprintf("redis, %s: ≤ %.0f %% throughput loss", b.profile, b.limit*100), "not measured", "–")
			continue
		}
		mSet := run.cellOf(run.Overhead.byName("kpod "+b.profile), "redis-set")
		mGet := run.cellOf(run.Overhead.byName("kpod "+b.profile), "redis-get")
		cpu := run.focusCPU(b.profile)
		w.row(fmt.Sprintf("redis, %s: ≤ %.0f %% throughput loss", b.profile, b.limit*100),
			fmt.Sprintf("SET %.1f %%, GET %.1f %% (budget focus, median of %d pairs; A/A control ±%.1f %% / ±%.1f %%); CPU per request %+.1f %% (A/A ±%.1f %%); matrix (%d pairs): SET %.1f %%, GET %.1f %%",
				set*100, get*100, run.Focus.Rounds, run.focusNoise("redis-set")*100, run.focusNoise("redis-get")*100, cpu*100, run.focusNoise("redis-cpu")*100,
				run.Overhead.Rounds, (1-1/mSet.Ratio)*100, (1-1/mGet.Ratio)*100),
			verdict(set <= b.limit && get <= b.limit))
	}
	if c := run.focusOf("kpod standard"); c != nil && len(c.Ratios["pingpong"]) > 0 {
		m := median(c.Ratios["pingpong"])
		lo, hi := minMax(c.Ratios["pingpong"])
		pp := run.cellOf(run.Overhead.byName("kpod standard"), "pingpong")
		w.row("standard ≤ 10 % on ping-pong", fmt.Sprintf("×%.3f (budget focus, median of %d pairs, range %.3f–%.3f; A/A control ±%.1f %%); matrix ×%.3f",
			m, len(c.Ratios["pingpong"]), lo, hi, run.focusNoise("pingpong")*100, pp.Ratio), verdict(m <= 1.10))
	}
	met, total, missed := run.peerVerdicts()
	w.row("each family no costlier per event than its bpftrace / libbpf-tools equivalent (same benchmark)",
		fmt.Sprintf("%d of %d (family, peer, benchmark) comparisons met; missed: %s (table \"Peers\")", met, total, orNone(missed)),
		verdict(met == total && total > 0))
	for _, c := range []struct {
		pods  int
		limit float64
	}{{110, 0.010}, {1000, 0.100}} {
		p := run.scaleAt(c.pods)
		if p == nil || len(p.Cycles) == 0 {
			w.row(fmt.Sprintf("collection cycle ≤ %.0f ms at %d pods", c.limit*1000, c.pods), "not measured", "–")
			continue
		}
		m := median(p.Cycles)
		otel := median(p.OtelCycles)
		w.row(fmt.Sprintf("collection cycle ≤ %.0f ms at %d pods", c.limit*1000, c.pods),
			fmt.Sprintf("%s in-process (median of %d cycles), %s in otelcol-kpod (median of %d)", ms(m), len(p.Cycles), ms(otel), len(p.OtelCycles)),
			verdict(m <= c.limit && (math.IsNaN(otel) || otel <= c.limit)))
	}
	if p := run.scaleAt(110); p != nil && len(p.OtelRSS) > 0 {
		var hi uint64
		for _, r := range p.OtelRSS {
			hi = max(hi, r)
		}
		w.row("collector RSS ≤ 80 MiB at 110 pods", fmt.Sprintf("otelcol-kpod (kpod standard + prometheus exporter): VmRSS max %s over %d samples, VmHWM %s", mib(hi), len(p.OtelRSS), mib(p.OtelHWM)),
			verdict(hi <= 80<<20))
	} else {
		w.row("collector RSS ≤ 80 MiB at 110 pods", "not measured (BENCH_OTELCOL unset or otelcol-kpod failed)", "–")
	}
	w.p("")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

// ---- method ----

func renderMethod(w *mdWriter, run *benchRun) {
	o := run.Overhead
	w.p("## Method")
	w.p("")
	w.p("**Benchmarks** (all inside fake pods: cgroups laid out like the kubelet's cgroupfs driver, `<prefix>/kubepods/besteffort/pod<uid>/<container>`, in the v2 tree and every v1 hierarchy; `bench/kbench.c` is a static C program built at bench time):")
	w.p("")
	w.header("benchmark", "one operation", "command", "kernel events per operation")
	for _, b := range benchmarks {
		cmd := run.Suite[b.Name]
		if strings.HasPrefix(b.Name, "redis") {
			cmd = run.Suite["redis"]
		}
		w.row(b.Name, b.Op, "`"+cmd+"`", b.Events)
	}
	w.p("")
	w.p("kbench runs N operations per inner round, R inner rounds, and reports the **minimum over inner rounds** of ns/op")
	w.p("(the sample least disturbed by the other load). redis-benchmark reports requests/s; ns/op = 1e9 / rps.")
	w.p("")
	w.p("**Interleaved A/B.** %d configs (nothing, each kpod family alone, each profile, each peer) × %d rounds. In each round", len(o.Configs), o.Rounds)
	w.p("the configs run in a new random order; a baseline (nothing attached) runs first, after every third config and last.")
	w.p("A config's **ratio** is its ns/op divided by the mean of the two baselines that bracket it; the table shows the median ratio over")
	w.p("rounds, and **Δ ns/op = (ratio − 1) × baseline ns/op** (baseline = median of all %d baseline runs). The *none (A/A control)* row", len(o.Baselines))
	w.p("is a config that attaches nothing: its spread is the noise floor of this run. Attaching and detaching happen between samples,")
	w.p("never during one. The overhead matrix took %s.", o.Took.Round(time.Second))
	w.p("")
	w.p("**Per-program cost** comes from BPF run-time statistics (`ebpf.EnableStats(BPF_STATS_RUN_TIME)`, read as `run_time_ns` / `run_cnt`")
	w.p("from `/proc/<pid>/fdinfo` of the process holding the programs), in a separate pass (statistics add two clock reads per program run,")
	w.p("so they are off during the A/B rounds). The programs also run for everything else on the host; a 1 s idle window before the benchmarks")
	w.p("gives each program's background rate, subtracted pro rata from the run counts (runs/op) and run times (ns/op). ns/run is the raw mean.")
	w.p("")
	w.p("**Peers**: bpftrace scripts in `bench/peers/*.bt` (classic tracepoints, the same hooks and per-cgroup aggregation as the kpod family)")
	w.p("and Debian's libbpf-tools, started as separate processes; they count as attached when their first output line appeared and the")
	w.p("number of BPF programs they hold stopped growing. **Userspace**: see \"Userspace cost vs number of pods\".")
	w.p("")
	var busy int
	for _, c := range o.Configs {
		for _, n := range c.OtherProgs {
			if n > 0 {
				busy++
			}
		}
	}
	total := 0
	for _, c := range o.Configs {
		total += len(c.OtherProgs)
	}
	w.p("Other engineers' tests load kpod's programs on this host too: in %d of %d config samples another process had BPF programs loaded", busy, total)
	w.p("(they add cost to baseline and config alike, only when they overlap one and not the other do they distort a ratio).")
	w.p("")
}

// ---- kernel overhead matrix ----

func renderMatrix(w *mdWriter, run *benchRun) {
	o := run.Overhead
	names := benchNames()
	w.p("## Kernel overhead: ratio to no BPF (median of %d rounds) and added ns per operation", o.Rounds)
	w.p("")
	w.p("Each cell: ratio × (Δ per op). For redis the ratio is of ns per request, so throughput loss = 1 − 1/ratio.")
	w.p("")
	head := []string{"config"}
	head = append(head, names...)
	w.header(head...)
	row := []string{"**baseline ns/op** (median)"}
	for _, b := range names {
		row = append(row, "**"+ns(run.baseNs(b))+"**")
	}
	w.row(row...)
	for _, kind := range []string{kindNone, kindFamily, kindProfile, kindBpftrace, kindLibbpf} {
		for _, r := range o.Configs {
			if r.Kind != kind {
				continue
			}
			row := []string{r.Name}
			if r.Error != "" && len(r.Ratios[names[0]]) == 0 {
				row = append(row, "failed: "+firstLines(r.Error, 1))
				for range names[1:] {
					row = append(row, "")
				}
				w.row(row...)
				continue
			}
			for _, b := range names {
				c := run.cellOf(r, b)
				row = append(row, fmt.Sprintf("×%.3f (%s)", c.Ratio, signedNs(c.Added)))
			}
			w.row(row...)
		}
	}
	w.p("")
	w.p("Ratio ranges over rounds (min–max), for judging the noise:")
	w.p("")
	w.header(head...)
	for _, r := range o.Configs {
		if r.Kind != kindNone && r.Kind != kindProfile {
			continue
		}
		row := []string{r.Name}
		for _, b := range names {
			c := run.cellOf(r, b)
			row = append(row, fmt.Sprintf("%.3f–%.3f", c.Lo, c.Hi))
		}
		w.row(row...)
	}
	w.p("")
}

// ---- added ns per event ----

func renderPerEvent(w *mdWriter, run *benchRun) {
	comp := run.statsOf("kpod comprehensive")
	fam := run.kpodProgFamily()
	w.p("## kpod families: added ns per event")
	w.p("")
	w.p("For each family, on each benchmark where its programs run (≥ 0.01 runs per operation, from the BPF statistics pass with")
	w.p("kpod comprehensive): program runs per operation, added ns per operation (A/B), **added ns per program run** (= Δ ns/op ÷ runs/op,")
	w.p("i.e. per event, including the tracepoint dispatch) and the programs' own ns per run (BPF statistics). Δ within the A/A noise")
	w.p("of that benchmark is marked ≈.")
	w.p("")
	w.header("family", "benchmark", "runs/op", "Δ ns/op (A/B)", "Δ ns per run", "BPF ns/run (stats)", "BPF ns/op (stats)")
	for _, f := range kpodFamilies {
		r := run.Overhead.byName("kpod " + f)
		if r == nil {
			continue
		}
		for _, b := range benchNames() {
			runs, nsop, ok := bpfPerOp(comp, statBench(b), func(n string) bool { return fam[n] == f })
			if !ok || runs < 0.01 {
				continue
			}
			c := run.cellOf(r, b)
			mark := ""
			if math.Abs(c.Ratio-1) <= run.noise(b) {
				mark = " ≈"
			}
			w.row(f, b, fmt.Sprintf("%.2f", runs), signedNs(c.Added)+mark, signedNs(c.Added/runs)+mark, ns(nsop/runs), ns(nsop))
		}
	}
	w.p("")
}

// ---- per program ----

func renderPrograms(w *mdWriter, run *benchRun) {
	comp := run.statsOf("kpod comprehensive")
	if comp == nil {
		return
	}
	fam := run.kpodProgFamily()
	w.p("## Per-program BPF statistics (kpod comprehensive)")
	w.p("")
	if comp.Error != "" {
		w.p("Error: %s", comp.Error)
		w.p("")
	}
	w.p("ns per run (runs per operation) on each benchmark; `–` where the program did not run for the benchmark. Names are the kernel's")
	w.p("(`_b` tp_btf, `_r` raw_tp, `_t` classic tracepoint: the rung of the attach ladder that was taken).")
	w.p("")
	bs := []string{"redis", "pingpong", "getppid", "tcp", "forkexec", "dread"}
	w.header(append([]string{"program", "family"}, bs...)...)
	var progs []string
	for _, b := range bs {
		for n := range comp.Progs[b] {
			if !contains(progs, n) {
				progs = append(progs, n)
			}
		}
	}
	sort.Slice(progs, func(i, j int) bool {
		if fam[progs[i]] != fam[progs[j]] {
			return fam[progs[i]] < fam[progs[j]]
		}
		return progs[i] < progs[j]
	})
	var misses uint64
	for _, n := range progs {
		row := []string{n, fam[n]}
		for _, b := range bs {
			p := comp.Progs[b][n]
			misses += p.Misses
			if p.RawRuns == 0 || p.Runs/comp.Ops[b] < 0.001 {
				row = append(row, "–")
				continue
			}
			row = append(row, fmt.Sprintf("%s (%.2f)", ns(float64(p.RawTimeNs)/float64(p.RawRuns)), p.Runs/comp.Ops[b]))
		}
		w.row(row...)
	}
	w.p("")
	w.p("Recursion misses (program runs skipped by the kernel) during these runs: %d.", misses)
	w.p("")
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// ---- peers ----

type peerCmp struct {
	Family, Bench, Peer string
	KpodAdded, PeerAdded float64 // A/B Δ ns/op
	KpodBPF, PeerBPF     float64 // BPF stats ns/op
	Noise                float64 // ns/op
	Met                  bool
}

// peerComparisons compares each kpod family with each of its peers on every benchmark where
// the family's programs run. Met: the family's BPF ns/op is not above the peer's, and its A/B
// Δ is not above the peer's by more than the A/A noise.
func (run *benchRun) peerComparisons() []peerCmp {
	comp := run.statsOf("kpod comprehensive")
	fam := run.kpodProgFamily()
	var out []peerCmp
	for _, f := range kpodFamilies {
		kr := run.Overhead.byName("kpod " + f)
		if kr == nil {
			continue
		}
		for _, pr := range run.Overhead.Configs {
			if pr.Family != f || (pr.Kind != kindBpftrace && pr.Kind != kindLibbpf) || len(pr.Ratios["getppid"]) == 0 {
				continue
			}
			ps := run.statsOf(pr.Name)
			for _, b := range benchNames() {
				runs, kbpf, ok := bpfPerOp(comp, statBench(b), func(n string) bool { return fam[n] == f })
				if !ok || runs < 0.01 {
					continue
				}
				_, pbpf, _ := bpfPerOp(ps, statBench(b), func(string) bool { return true })
				kc, pc := run.cellOf(kr, b), run.cellOf(pr, b)
				c := peerCmp{Family: f, Bench: b, Peer: pr.Name, KpodAdded: kc.Added, PeerAdded: pc.Added, KpodBPF: kbpf, PeerBPF: pbpf,
					Noise: run.noise(b) * run.baseNs(b)}
				c.Met = kbpf <= pbpf && kc.Added <= pc.Added+c.Noise
				out = append(out, c)
			}
		}
	}
	return out
}

func (run *benchRun) peerVerdicts() (met, total int, missed []string) {
	for _, c := range run.peerComparisons() {
		total++
		if c.Met {
			met++
		} else {
			missed = append(missed, fmt.Sprintf("%s vs %s on %s", c.Family, c.Peer, c.Bench))
		}
	}
	return
}

func renderPeers(w *mdWriter, run *benchRun) {
	w.p("## Peers: kpod family vs its bpftrace / libbpf-tools equivalent, same benchmark")
	w.p("")
	w.p("On every benchmark where the family's programs run. Δ ns/op from the A/B matrix (wall clock, includes tracepoint dispatch: classic")
	w.p("tracepoints, which bpftrace uses, cost extra outside the program); BPF ns/op from the statistics pass (program time only, per")
	w.p("benchmark operation, background subtracted). **Met** when kpod's BPF ns/op ≤ the peer's and kpod's Δ ≤ the peer's Δ + the A/A")
	w.p("noise of the benchmark (given as ± ns/op).")
	w.p("")
	w.header("family", "benchmark", "peer", "kpod Δ ns/op", "peer Δ ns/op", "noise ±", "kpod BPF ns/op", "peer BPF ns/op", "verdict")
	for _, c := range run.peerComparisons() {
		w.row(c.Family, c.Bench, c.Peer, signedNs(c.KpodAdded), signedNs(c.PeerAdded), ns(c.Noise), ns(c.KpodBPF), ns(c.PeerBPF), verdict(c.Met))
	}
	w.p("")
	if len(run.Unrunnable) > 0 {
		w.p("Not runnable on this kernel (no kprobes, fentry refused), so not compared:")
		w.p("")
		for _, u := range run.Unrunnable {
			w.p("- `%s` (%s): %s", u.Name, u.Family, u.Why)
		}
		w.p("")
	}
	var noPeer []string
	for _, f := range kpodFamilies {
		has := false
		for _, c := range run.Overhead.Configs {
			if c.Family == f && (c.Kind == kindBpftrace || c.Kind == kindLibbpf) {
				has = true
			}
		}
		if !has {
			noPeer = append(noPeer, f)
		}
	}
	if len(noPeer) > 0 {
		w.p("Families with no peer run here: %s (`oom/mark_victim` fires on none of the benchmarks; the libbpf-tools oomkill needs kprobes).", strings.Join(noPeer, ", "))
		w.p("")
	}
}

// ---- redis focus ----

func (run *benchRun) focusOf(name string) *configResult {
	if run.Focus == nil {
		return nil
	}
	for _, c := range run.Focus.Configs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// focusNoise is the largest deviation from 1 of the A/A control in the focus phase.
func (run *benchRun) focusNoise(b string) float64 {
	c := run.focusOf("none (A/A control)")
	if c == nil || len(c.Ratios[b]) == 0 {
		return math.NaN()
	}
	lo, hi := minMax(c.Ratios[b])
	return math.Max(1-lo, hi-1)
}

func renderFocus(w *mdWriter, run *benchRun) {
	f := run.Focus
	if f == nil {
		return
	}
	w.p("## Budget focus: standard and comprehensive on redis and ping-pong, more pairs")
	w.p("")
	w.p("%d rounds; in each, the A/A control, standard and comprehensive in random order, each followed by a baseline and compared with", f.Rounds)
	w.p("the baselines right before and after it; redis %d requests per test. For redis, throughput loss = 1 − 1/ratio of ns per", f.Requests)
	w.p("request; redis-cpu is redis-server + redis-benchmark CPU time per request (the budget is throughput; CPU per request is the less")
	w.p("noisy view of the same cost while the server is saturated). Cells: median over pairs, then every pair's ratio.")
	w.p("")
	head := []string{"config"}
	base := []string{"**baseline** (median)"}
	for _, b := range f.Names {
		head = append(head, b)
		var v []float64
		for _, s := range f.Base {
			v = append(v, s[b])
		}
		if strings.HasPrefix(b, "redis-") && b != "redis-cpu" {
			base = append(base, fmt.Sprintf("**%.0f req/s**", 1e9/median(v)))
		} else {
			base = append(base, "**"+ns(median(v))+"**")
		}
	}
	w.header(head...)
	w.row(base...)
	for _, c := range f.Configs {
		if c.Error != "" {
			w.row(c.Name, "failed: "+firstLines(c.Error, 1))
			continue
		}
		row := []string{c.Name}
		for _, b := range f.Names {
			var per []string
			for _, r := range c.Ratios[b] {
				per = append(per, fmt.Sprintf("%.3f", r))
			}
			m := median(c.Ratios[b])
			head := fmt.Sprintf("×%.3f", m)
			if b == "redis-set" || b == "redis-get" {
				head += fmt.Sprintf(" (loss %.1f %%)", (1-1/m)*100)
			}
			row = append(row, fmt.Sprintf("**%s**<br>%s", head, strings.Join(per, " ")))
		}
		w.row(row...)
	}
	w.p("")
}

// ---- scale ----

func renderScale(w *mdWriter, run *benchRun) {
	w.p("## Userspace cost vs number of pods")
	w.p("")
	w.p("N fake pods, one container each with one sleeping process, created in one prefix in every cgroup hierarchy (kubelet layout).")
	w.p("**In-process**: the receiver (standard profile, 1 s interval) runs in the benchmark process; cycle = `kpod.collection.cycle.duration`")
	w.p("of each scrape after a warm-up one. **otelcol-kpod**: `_build/otelcol-kpod` with kpod (standard, 2 s interval) → prometheus exporter;")
	w.p("its `/metrics` is fetched every 2 s (like Prometheus would) and VmRSS read from /proc each time.")
	w.p("")
	w.header("pods", "create / remove", "cycle in-process: median (min–max)", "data points per scrape", "cycle in otelcol-kpod: median (min–max)", "otelcol RSS max / VmHWM", "/metrics samples, GET time")
	var first, last *scalePoint
	for _, p := range run.Scale {
		if p.Error != "" && len(p.Cycles) == 0 {
			w.row(fmt.Sprint(p.Pods), "failed: "+firstLines(p.Error, 1), "", "", "", "", "")
			continue
		}
		if first == nil {
			first = p
		}
		last = p
		lo, hi := minMax(p.Cycles)
		olo, ohi := minMax(p.OtelCycles)
		var rss uint64
		for _, r := range p.OtelRSS {
			rss = max(rss, r)
		}
		pts := []float64{}
		for _, x := range p.Points {
			pts = append(pts, float64(x))
		}
		otel := "–"
		if len(p.OtelCycles) > 0 {
			otel = fmt.Sprintf("%s (%s–%s)", ms(median(p.OtelCycles)), ms(olo), ms(ohi))
		}
		mem := "–"
		if rss > 0 {
			mem = fmt.Sprintf("%s / %s", mib(rss), mib(p.OtelHWM))
		}
		prom := "–"
		if p.OtelSeries > 0 {
			prom = fmt.Sprintf("%d, %s", p.OtelSeries, ms(median(p.OtelScrapeSec)))
		}
		w.row(fmt.Sprint(p.Pods), fmt.Sprintf("%.2f s / %.2f s", p.CreateSec, p.CleanupSec),
			fmt.Sprintf("%s (%s–%s)", ms(median(p.Cycles)), ms(lo), ms(hi)), fmt.Sprintf("%.0f", median(pts)), otel, mem, prom)
		if p.Error != "" {
			w.p("")
			w.p("(%d pods: %s)", p.Pods, p.Error)
		}
	}
	w.p("")
	if first != nil && last != nil && last.Pods > first.Pods {
		per := (median(last.Cycles) - median(first.Cycles)) / float64(last.Pods-first.Pods)
		w.p("Growth: %.1f µs of cycle per added pod (in-process, %d → %d pods); the cycle grows linearly with pods if the %d-pod point", per*1e6, first.Pods, last.Pods, run.Scale[len(run.Scale)/2].Pods)
		if mid := run.Scale[len(run.Scale)/2]; len(mid.Cycles) > 0 {
			pred := median(first.Cycles) + per*float64(mid.Pods-first.Pods)
			w.p("lies on the line: predicted %s, measured %s.", ms(pred), ms(median(mid.Cycles)))
		}
		w.p("")
	}
	w.p("Memory of otelcol-kpod (at the last sample) and of the receiver alone:")
	w.p("")
	w.header("pods", "VmRSS max", "VmHWM", "RSS anonymous / file-backed (smaps_rollup)", "of which the otelcol-kpod binary's mappings", "Go heap alloc / runtime total (otelcol_process_runtime_*)", "receiver live heap in-process (after GC, with minus without)")
	for _, p := range run.Scale {
		var rss uint64
		for _, r := range p.OtelRSS {
			rss = max(rss, r)
		}
		rt := "–"
		if p.OtelRuntime != nil {
			rt = fmt.Sprintf("%s / %s", mib(uint64(p.OtelRuntime["otelcol_process_runtime_heap_alloc_bytes"])), mib(uint64(p.OtelRuntime["otelcol_process_runtime_total_sys_memory_bytes"])))
		}
		w.row(fmt.Sprint(p.Pods), mib(rss), mib(p.OtelHWM), fmt.Sprintf("%s / %s", mib(p.OtelAnon), mib(p.OtelRssTotal-min(p.OtelAnon, p.OtelRssTotal))),
			mib(p.OtelBinRSS), rt, fmt.Sprintf("%.1f MiB", float64(p.HeapDelta)/(1<<20)))
	}
	w.p("")
	// Per-collector durations.
	var cols []string
	for _, p := range run.Scale {
		for c := range p.Collectors {
			if !contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}
	sort.Strings(cols)
	if len(cols) > 0 {
		w.p("Per-collector duration (`kpod.collector.duration`, median; collectors run in parallel goroutines, so they do not add up to the cycle):")
		w.p("")
		head := []string{"collector"}
		for _, p := range run.Scale {
			head = append(head, fmt.Sprintf("%d pods", p.Pods))
		}
		w.header(head...)
		for _, c := range cols {
			row := []string{c}
			for _, p := range run.Scale {
				row = append(row, ms(median(p.Collectors[c])))
			}
			w.row(row...)
		}
		w.p("")
	}
	for _, p := range run.Scale {
		if p.HeapTop != "" {
			w.p("Live heap of the benchmark process with the receiver running at %d pods (`go tool pprof -sample_index=inuse_space -top %s`):", p.Pods, p.HeapProfile)
			w.p("")
			w.p("```")
			w.p("%s", strings.TrimSpace(p.HeapTop))
			w.p("```")
			w.p("")
		}
		if p.Syscalls != "" {
			w.p("System calls of otelcol-kpod over %.0f collection cycles at %d pods (`syscount -p <pid> -d 10 -L`, after the measurements above;", p.SyscallCycles, p.Pods)
			w.p("TIME is the total in-kernel time of each call; divide COUNT by %.0f for calls per cycle):", p.SyscallCycles*float64(p.Pods))
			w.p("")
			w.p("```")
			w.p("%s", strings.TrimSpace(p.Syscalls))
			w.p("```")
			w.p("")
		}
		if p.ProfileTop != "" {
			w.p("CPU profile of the in-process cycles at %d pods (`go tool pprof -top %s`, first 30 nodes; the process also runs", p.Pods, p.Profile)
			w.p("the scraper's pdata building and the consumer):")
			w.p("")
			w.p("```")
			w.p("%s", strings.TrimSpace(p.ProfileTop))
			w.p("```")
			w.p("")
		}
	}
}

// ---- memory ----

func renderMemory(w *mdWriter, run *benchRun) {
	w.p("## BPF map memory (memlock, as `bpftool map show` reports it)")
	w.p("")
	w.p("Read from `/proc/<pid>/fdinfo` of the process holding the maps right after attaching; possible CPUs %s (per-CPU maps scale with their number).", sh("sh", "-c", "cat /sys/devices/system/cpu/possible"))
	w.p("")
	w.header("config", "maps", "memlock", "largest maps")
	for _, kind := range []string{kindProfile, kindFamily, kindBpftrace, kindLibbpf} {
		for _, r := range run.Overhead.Configs {
			if r.Kind != kind || len(r.Maps) == 0 {
				continue
			}
			ms := append([]mapInfo(nil), r.Maps...)
			sort.Slice(ms, func(i, j int) bool { return ms[i].Memlock > ms[j].Memlock })
			var big []string
			for i := 0; i < len(ms) && i < 3; i++ {
				big = append(big, fmt.Sprintf("%s (%s, %d entries) %s", ms[i].Name, mapTypeName(ms[i].Type), ms[i].MaxEntries, mib(ms[i].Memlock)))
			}
			w.row(r.Name, fmt.Sprint(len(r.Maps)), mib(r.MapMemlock), strings.Join(big, "; "))
		}
	}
	w.p("")
}

func mapTypeName(t string) string {
	names := map[string]string{"1": "hash", "2": "array", "5": "percpu_hash", "6": "percpu_array", "9": "lru_hash", "10": "lru_percpu_hash",
		"27": "ringbuf", "29": "task_storage", "4": "perf_event_array"}
	if n, ok := names[t]; ok {
		return n
	}
	return "type " + t
}
