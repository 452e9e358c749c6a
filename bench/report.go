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
	Rounds, MicroPairs, RedisPairs, FocusPairs int
	Quick                                      bool
	OutDir                                     string
	Machine                                    map[string]string
	Start, End                                 time.Time
	LoadStart, LoadEnd                         string
	Suite                                      map[string]string
	Matrix                                     *matrixResult
	Focus                                      *focusResult
	Stats                                      []*statsResult
	Scale                                      []*scalePoint
	Unrunnable                                 []unrunnable
	Experiments                                []*expResult
}

func suiteParams(s *suite) map[string]string {
	return map[string]string{
		"redis":    fmt.Sprintf("redis-benchmark -t set -n %d -c 50, then -t get (server on CPU 0, client on CPU 1, two containers of one fake pod)", s.redisN),
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
	m["hypervisor"] = sh("sh", "-c", "dmesg 2>/dev/null | grep -m1 -o 'Hypervisor detected: .*' || (grep -qw hypervisor /proc/cpuinfo && echo 'virtual machine (cpuinfo: hypervisor)') || echo 'no hypervisor flag'")
	m["bpftrace"] = sh("bpftrace", "--version")
	m["libbpf-tools"] = sh("dpkg-query", "-W", "-f", "${Version}", "libbpf-tools")
	m["redis"] = sh("sh", "-c", "redis-server --version | cut -d' ' -f3")
	m["go"] = runtime.Version()
	m["gcc"] = sh("sh", "-c", "gcc --version | head -1")
	m["commit"] = sh("git", "rev-parse", "--short=12", "HEAD")
	if st := sh("git", "status", "--porcelain", "--untracked-files=no", "--", "../bpf", "../internal", "../receiver"); st != "" && st != "?" {
		m["commit"] += " (with uncommitted changes in bpf/, internal/ or receiver/)"
	}
	m["steal"] = stealPercent()
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

// stealPercent samples /proc/stat for a second: the share of CPU time the hypervisor took.
func stealPercent() string {
	read := func() (steal, total float64) {
		b, _ := os.ReadFile("/proc/stat")
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			var x float64
			fmt.Sscan(v, &x)
			total += x
			if i == 7 {
				steal = x
			}
		}
		return
	}
	s0, t0 := read()
	time.Sleep(time.Second)
	s1, t1 := read()
	if t1 == t0 {
		return "?"
	}
	return fmt.Sprintf("%.1f %%", 100*(s1-s0)/(t1-t0))
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

// quartiles returns the 25th and 75th percentiles.
func quartiles(v []float64) (float64, float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	q := func(p float64) float64 {
		x := p * float64(len(s)-1)
		i := int(x)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		return s[i] + (x-float64(i))*(s[i+1]-s[i])
	}
	return q(0.25), q(0.75)
}

// signP is the two-sided sign-test p-value of paired differences d (zeros dropped): how
// likely so lopsided a split of signs is if on and off cost the same.
func signP(d []float64) float64 {
	n, k := 0, 0
	for _, x := range d {
		if x != 0 {
			n++
			if x > 0 {
				k++
			}
		}
	}
	if n == 0 {
		return 1
	}
	k = max(k, n-k)
	p := 0.0
	for i := k; i <= n; i++ {
		p += binom(n, i)
	}
	return math.Min(1, 2*p/math.Pow(2, float64(n)))
}

func binom(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// mad is the median absolute deviation scaled to a standard deviation (1.4826 × MAD).
func mad(v []float64) float64 {
	m := median(v)
	var dev []float64
	for _, x := range v {
		dev = append(dev, math.Abs(x-m))
	}
	return 1.4826 * median(dev)
}

// ---- formatting ----

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

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}

// ---- cells ----

// cell summarises a config on a benchmark over its pairs.
type cell struct {
	Ratio, Delta float64 // medians of on/off and on−off
	Off          float64 // median of the "off" samples
	Q1, Q3       float64 // quartiles of the ratios
	P            float64 // sign test
	N            int
}

func cellOf(r *configResult, b string) cell {
	if r == nil || len(r.On[b]) == 0 {
		return cell{Ratio: math.NaN(), Delta: math.NaN(), Off: math.NaN(), P: 1}
	}
	c := cell{Ratio: median(r.ratios(b)), Delta: median(r.deltas(b)), Off: median(r.Off[b]), N: len(r.On[b]), P: signP(r.deltas(b))}
	c.Q1, c.Q3 = quartiles(r.ratios(b))
	return c
}

// sig marks a difference the sign test cannot tell from nothing (p ≥ 0.05).
func (c cell) sig() string {
	if c.P >= 0.05 {
		return " ≈"
	}
	return ""
}

// noise is the A/A control's spread of on−off on a benchmark, as a standard deviation.
func (run *benchRun) noise(b string) float64 {
	r := run.Matrix.byName("none (A/A control)")
	if r == nil || len(r.On[b]) == 0 {
		return math.NaN()
	}
	return mad(r.deltas(b))
}

// kpodProgFamily maps kpod program names to their family, from the programs each family
// loaded when it ran alone.
func (run *benchRun) kpodProgFamily() map[string]string {
	out := map[string]string{}
	for _, r := range run.Matrix.Configs {
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

// statBench maps a suite benchmark to the statistics-pass run that covered it.
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

var matrixBenches = []string{"redis-set", "redis-get", "redis-cpu", "pingpong", "getppid", "tcp", "forkexec", "dread"}

func renderReport(run *benchRun) string {
	w := &mdWriter{}
	w.p("# kpod benchmarks")
	w.p("")
	w.p("Written by `make bench` (code and method: [bench/](bench/README.md)); every number below comes from the run described")
	w.p("here, and re-running overwrites this file. Raw results (JSON), CPU and heap profiles and collector logs: `%s` on the machine.", run.OutDir)
	if run.Quick {
		w.p("")
		w.p("**BENCH_QUICK run: a subset of configs, few pairs. Not for conclusions.**")
	}
	w.p("")
	w.header("", "")
	w.row("command", fmt.Sprintf("`make bench` → `bench/run.sh` → `go test -tags bench -run TestBench ./bench/` (BENCH_ROUNDS=%d, BENCH_MICRO_PAIRS=%d, BENCH_REDIS_PAIRS=%d, BENCH_FOCUS_PAIRS=%d)",
		run.Rounds, run.MicroPairs, run.RedisPairs, run.FocusPairs))
	w.row("kpod", "commit "+run.Machine["commit"])
	w.row("kernel", run.Machine["kernel"])
	w.row("machine", fmt.Sprintf("%s, %s cores, %s RAM, %s; %s", run.Machine["cpu"], run.Machine["cores"], run.Machine["memory"], run.Machine["os"], run.Machine["hypervisor"]))
	w.row("date", fmt.Sprintf("%s → %s (%s)", run.Start.Format("2006-01-02 15:04:05 MST"), run.End.Format("15:04:05"), run.End.Sub(run.Start).Round(time.Second)))
	w.row("load average (1/5/15 min)", fmt.Sprintf("at start **%s**, at end **%s**; CPU steal at start %s (2 vCPUs shared with other engineers' builds and tests)", run.LoadStart, run.LoadEnd, run.Machine["steal"]))
	w.row("tools", fmt.Sprintf("%s; libbpf-tools %s; redis %s; %s; %s", run.Machine["bpftrace"], run.Machine["libbpf-tools"], run.Machine["redis"], run.Machine["go"], run.Machine["gcc"]))
	w.row("how kpod is loaded", "by the receiver: `kpodreceiver.NewFactory().CreateMetrics(...)` + `Start` in the benchmark process with `profile: minimal/standard/comprehensive`, or `profile: custom` + `collectors.<family>.enabled: true` for one family. Its programs are then adopted (see Method) and attached by the benchmark to the same tracepoints with the same attach type (tp_btf, the rung the receiver took)")
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
	renderExperiments(w, run)
	// Measured outside make bench (bench/TOPOLOGY.md says by what), kept across its runs.
	if b, err := os.ReadFile("TOPOLOGY.md"); err == nil {
		w.p("")
		w.b.Write(b)
	}
	if b, err := os.ReadFile("ANALYSIS.md"); err == nil {
		w.p("")
		w.b.Write(b)
	}
	return w.b.String()
}

// ---- budgets ----

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

func (run *benchRun) scaleAt(n int) *scalePoint {
	for _, p := range run.Scale {
		if p.Pods == n {
			return p
		}
	}
	return nil
}

func loss(ratio float64) float64 { return (1 - 1/ratio) * 100 }

func renderBudgets(w *mdWriter, run *benchRun) {
	w.p("## Budgets (DESIGN.md \"Performance budgets\")")
	w.p("")
	w.p("redis: the verdict takes the larger of the throughput loss (the budget's measure; ±10–20 %% per pair on this loaded VM) and")
	w.p("the increase of CPU time per request (the same cost measured with a few %% of noise: a saturated single-threaded server loses")
	w.p("that much throughput). Medians over the budget-focus pairs.")
	w.p("")
	w.header("budget", "measured", "verdict")
	aa := run.focusOf("none (A/A control)")
	for _, b := range []struct {
		profile string
		limit   float64
	}{{"standard", 2}, {"comprehensive", 5}} {
		f := run.focusOf("kpod " + b.profile)
		name := fmt.Sprintf("redis, %s: ≤ %.0f %% throughput loss", b.profile, b.limit)
		if f == nil || len(f.On["redis-set"]) == 0 {
			w.row(name, "not measured", "–")
			continue
		}
		set, get, cpu := cellOf(f, "redis-set"), cellOf(f, "redis-get"), cellOf(f, "redis-cpu")
		aset, aget, acpu := cellOf(aa, "redis-set"), cellOf(aa, "redis-get"), cellOf(aa, "redis-cpu")
		m := run.Matrix.byName("kpod " + b.profile)
		worst := math.Max(math.Max(loss(set.Ratio), loss(get.Ratio)), (cpu.Ratio-1)*100)
		w.row(name, fmt.Sprintf("throughput loss SET **%.1f %%**, GET **%.1f %%**; CPU per request **%+.1f %%** (quartiles %+.1f…%+.1f %%) — medians of %d pairs; the A/A control gives %.1f %%, %.1f %%, %+.1f %%. Matrix (%d pairs): SET %.1f %%, GET %.1f %%, CPU %+.1f %%",
			loss(set.Ratio), loss(get.Ratio), (cpu.Ratio-1)*100, (cpu.Q1-1)*100, (cpu.Q3-1)*100, set.N, loss(aset.Ratio), loss(aget.Ratio), (acpu.Ratio-1)*100,
			cellOf(m, "redis-set").N, loss(cellOf(m, "redis-set").Ratio), loss(cellOf(m, "redis-get").Ratio), (cellOf(m, "redis-cpu").Ratio-1)*100),
			verdict(worst <= b.limit))
	}
	if f := run.focusOf("kpod standard"); f != nil && len(f.On["pingpong"]) > 0 {
		c, a := cellOf(f, "pingpong"), cellOf(aa, "pingpong")
		w.row("standard ≤ 10 % on ping-pong", fmt.Sprintf("**×%.3f** (%s per round trip; median of %d pairs, quartiles %.3f–%.3f; A/A control ×%.3f); matrix ×%.3f",
			c.Ratio, signedNs(c.Delta), c.N, c.Q1, c.Q3, a.Ratio, cellOf(run.Matrix.byName("kpod standard"), "pingpong").Ratio), verdict(c.Ratio <= 1.10))
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
		name := fmt.Sprintf("collection cycle ≤ %.0f ms at %d pods", c.limit*1000, c.pods)
		if p == nil || len(p.Cycles) == 0 {
			w.row(name, "not measured", "–")
			continue
		}
		m, otel := median(p.Cycles), median(p.OtelCycles)
		w.row(name, fmt.Sprintf("**%s** in-process (median of %d cycles), %s in otelcol-kpod (median of %d)", ms(m), len(p.Cycles), ms(otel), len(p.OtelCycles)),
			verdict(m <= c.limit && (math.IsNaN(otel) || otel <= c.limit)))
	}
	if p := run.scaleAt(110); p != nil && len(p.OtelRSS) > 0 {
		var hi uint64
		for _, r := range p.OtelRSS {
			hi = max(hi, r)
		}
		w.row("collector RSS ≤ 80 MiB at 110 pods", fmt.Sprintf("otelcol-kpod (kpod standard + prometheus exporter): VmRSS max **%s** over %d samples, VmHWM %s; %s of it is the binary's own file-backed pages",
			mib(hi), len(p.OtelRSS), mib(p.OtelHWM), mib(p.OtelBinRSS)), verdict(hi <= 80<<20))
	} else {
		w.row("collector RSS ≤ 80 MiB at 110 pods", "not measured (BENCH_OTELCOL unset or otelcol-kpod failed)", "–")
	}
	w.p("")
}

// ---- method ----

func renderMethod(w *mdWriter, run *benchRun) {
	m := run.Matrix
	w.p("## Method")
	w.p("")
	w.p("**Benchmarks**, all inside fake pods (cgroups laid out like the kubelet's cgroupfs driver, `<prefix>/kubepods/besteffort/pod<uid>/<container>`,")
	w.p("in the v2 tree and every v1 hierarchy); `kbench` is `bench/kbench/kbench.c`, a static C program built at bench time:")
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
	w.p("kbench runs N operations per inner round, R short inner rounds, and reports the **minimum over inner rounds** of ns/op (the")
	w.p("round least disturbed by other load). redis-benchmark reports requests/s (ns/op = 1e9 / rps); redis-cpu is the CPU time of")
	w.p("redis-server (its threads' schedstat) plus redis-benchmark (rusage) per request.")
	w.p("")
	w.p("**Adopted programs, close pairs.** This VM's speed drifts by 20–40 %% within seconds (host steal), so a sample is only compared")
	w.p("with one taken right next to it. Each config is first started the ordinary way — the kpod receiver's `Start` (which loads the")
	w.p("family objects, walks the attach ladder and attaches), `bpftrace script.bt`, or the libbpf-tools binary — and then **adopted**:")
	w.p("the benchmark opens the same programs by id (from `bpftool perf show`), stops the original (its links go; programs and maps stay")
	w.p("alive through the benchmark's descriptors) and from then on attaches them itself, to the same tracepoints with the same attach")
	w.p("type (tp_btf / raw_tp links, or perf-event tracepoints for bpftrace), in well under a millisecond for kpod. A **pair** is one sample")
	w.p("with the programs attached and one without, back to back (every other pair starts with the detached one). Ratio = on / off,")
	w.p("Δ = on − off, per pair; tables show **medians over pairs**. What adoption leaves out is the original's userspace (the receiver's")
	w.p("30 s scrapes: measured separately below; a tool reading its maps at exit). Tools that stream every event to userspace through a")
	w.p("perf buffer (execsnoop, exitsnoop, tcplife) are not adopted but started and stopped around whole-suite samples (\"restarted\").")
	w.p("")
	w.p("The matrix: %d configs × %d rounds (new random order each round) × %d pairs per micro-benchmark and %d redis pairs per round; it", len(m.Configs), m.Rounds, m.MicroPairs, m.RedisPairs)
	w.p("took %s. The **A/A control** goes through the same steps with nothing to attach: its spread is the noise floor. A Δ marked ≈", m.Took.Round(time.Second))
	w.p("is one the sign test over its pairs cannot tell from zero (p ≥ 0.05).")
	w.p("")
	w.p("**Per-program cost** comes from the kernel's BPF run-time statistics (`ebpf.EnableStats(BPF_STATS_RUN_TIME)`; run_time_ns /")
	w.p("run_cnt of each program), in a separate pass with the config attached and every benchmark run once (statistics add two clock")
	w.p("reads per program run, so they are off during the pairs). The programs also run for everything else on the host; a 1 s idle")
	w.p("window first gives each program's background rate, subtracted pro rata from runs/op and ns/op. ns/run is the raw mean.")
	w.p("")
	hooks, samples := map[string]int{}, 0
	with := 0
	for _, c := range m.Configs {
		for _, f := range c.Foreign {
			samples++
			if len(f) > 0 {
				with++
			}
			for k, v := range f {
				hooks[k] = max(hooks[k], v)
			}
		}
	}
	var list []string
	for k, v := range hooks {
		list = append(list, fmt.Sprintf("%s (%d hooks)", k, v))
	}
	sort.Strings(list)
	w.p("**Other BPF users on the host.** Before %d of %d config rounds other processes had BPF programs attached to tracepoints: %s.", with, samples, orNone(list))
	w.p("They run in both samples of a pair, so they do not bias Δ ns/op; they do inflate the \"off\" time a ratio is divided by.")
	w.p("")
}

// ---- matrix ----

func renderMatrix(w *mdWriter, run *benchRun) {
	m := run.Matrix
	w.p("## Kernel overhead: ratio with / without and added ns per operation")
	w.p("")
	w.p("Cell: median ratio × (median Δ per operation) over the config's pairs; ≈: not distinguishable from zero (sign test). For redis")
	w.p("the ratio is of ns per request, so throughput loss = 1 − 1/ratio.")
	w.p("")
	w.header(append([]string{"config", "pairs", "method"}, matrixBenches...)...)
	row := []string{"**detached ns/op** (median of the A/A control)", "", ""}
	aa := m.byName("none (A/A control)")
	for _, b := range matrixBenches {
		row = append(row, "**"+ns(cellOf(aa, b).Off)+"**")
	}
	w.row(row...)
	for _, kind := range []string{kindNone, kindFamily, kindProfile, kindBpftrace, kindLibbpf} {
		for _, r := range m.Configs {
			if r.Kind != kind {
				continue
			}
			if len(r.On["getppid"]) == 0 {
				w.row(r.Name, "0", r.Method, "failed: "+firstLines(r.Error, 1), "", "", "", "", "", "", "")
				continue
			}
			row := []string{r.Name, fmt.Sprint(len(r.On["getppid"])), r.Method}
			for _, b := range matrixBenches {
				c := cellOf(r, b)
				row = append(row, fmt.Sprintf("×%.3f (%s%s)", c.Ratio, signedNs(c.Delta), c.sig()))
			}
			w.row(row...)
			if r.Error != "" {
				w.p("")
				w.p("(%s stopped early: %s)", r.Name, firstLines(r.Error, 1))
				w.p("")
			}
		}
	}
	w.p("")
	w.p("Quartiles of the per-pair ratios of the control and the profiles, to judge the spread:")
	w.p("")
	w.header(append([]string{"config"}, matrixBenches...)...)
	for _, r := range m.Configs {
		if r.Kind != kindNone && r.Kind != kindProfile {
			continue
		}
		row := []string{r.Name}
		for _, b := range matrixBenches {
			c := cellOf(r, b)
			row = append(row, fmt.Sprintf("%.3f–%.3f", c.Q1, c.Q3))
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
	w.p("For each family alone, on each benchmark where its programs run (≥ 0.1 runs per operation in the statistics pass): program runs")
	w.p("per operation; Δ ns per operation (pairs); **Δ per program run** = Δ ns/op ÷ runs/op, i.e. the cost of one event including the")
	w.p("tracepoint dispatch and cache effects; and the programs' own ns per run (BPF statistics). Rows with ≈ are within the noise.")
	w.p("")
	w.header("family", "benchmark", "runs/op", "Δ ns/op (pairs)", "Δ per program run", "BPF ns/run (stats)", "BPF ns/op (stats)")
	for _, f := range kpodFamilies {
		r := run.Matrix.byName("kpod " + f)
		if r == nil {
			continue
		}
		for _, b := range matrixBenches {
			runs, nsop, ok := bpfPerOp(comp, statBench(b), func(n string) bool { return fam[n] == f })
			if !ok || runs < 0.1 {
				continue
			}
			c := cellOf(r, b)
			w.row(f, b, fmt.Sprintf("%.2f", runs), signedNs(c.Delta)+c.sig(), signedNs(c.Delta/runs)+c.sig(), ns(nsop/runs), ns(nsop))
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
	w.p("(`_b`: tp_btf, the first rung of the attach ladder, taken on this kernel for every hook).")
	w.p("")
	w.header(append([]string{"program", "family"}, statBenches...)...)
	var progs []string
	for _, b := range statBenches {
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
		for _, b := range statBenches {
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
	w.p("Recursion misses (program runs the kernel skipped) during these runs: %d.", misses)
	w.p("")
}

// ---- peers ----

type peerCmp struct {
	Family, Bench, Peer string
	Kpod, PeerC         cell
	KpodBPF, PeerBPF    float64 // BPF statistics, ns/op
	Noise               float64 // two standard errors of the difference of the two medians, ns/op
	Verdict             string
	Met                 bool
}

// seMedian is the standard error of the median of a config's Δs (1.2533 σ / √n, σ from the
// median absolute deviation).
func seMedian(r *configResult, b string) float64 {
	d := r.deltas(b)
	if len(d) == 0 {
		return math.NaN()
	}
	return 1.2533 * mad(d) / math.Sqrt(float64(len(d)))
}

// peerComparisons compares each kpod family with each of its peers on every benchmark where
// the family's programs run at least once per 10 operations (redis by CPU per request: its
// throughput is too noisy for a per-family comparison). Met when kpod's median Δ is not above
// the peer's; "met (≈)" when above it by less than two standard errors of the difference.
func (run *benchRun) peerComparisons() []peerCmp {
	comp := run.statsOf("kpod comprehensive")
	fam := run.kpodProgFamily()
	var out []peerCmp
	for _, f := range kpodFamilies {
		kr := run.Matrix.byName("kpod " + f)
		if kr == nil || len(kr.On["getppid"]) == 0 {
			continue
		}
		for _, pr := range run.Matrix.Configs {
			if pr.Family != f || (pr.Kind != kindBpftrace && pr.Kind != kindLibbpf) || len(pr.On["getppid"]) == 0 {
				continue
			}
			ps := run.statsOf(pr.Name)
			for _, b := range matrixBenches {
				if b == "redis-set" || b == "redis-get" {
					continue
				}
				runs, kbpf, ok := bpfPerOp(comp, statBench(b), func(n string) bool { return fam[n] == f })
				if !ok || runs < 0.1 {
					continue
				}
				_, pbpf, _ := bpfPerOp(ps, statBench(b), func(string) bool { return true })
				c := peerCmp{Family: f, Bench: b, Peer: pr.Name, Kpod: cellOf(kr, b), PeerC: cellOf(pr, b), KpodBPF: kbpf, PeerBPF: pbpf,
					Noise: 2 * math.Hypot(seMedian(kr, b), seMedian(pr, b))}
				switch d := c.Kpod.Delta - c.PeerC.Delta; {
				case d <= 0:
					c.Verdict, c.Met = "**met**", true
				case d <= c.Noise:
					c.Verdict, c.Met = "**met** (≈, within noise)", true
				default:
					c.Verdict = "**missed**"
				}
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
			missed = append(missed, fmt.Sprintf("%s vs %s on %s (%s vs %s)", c.Family, c.Peer, c.Bench, signedNs(c.Kpod.Delta), signedNs(c.PeerC.Delta)))
		}
	}
	return
}

func renderPeers(w *mdWriter, run *benchRun) {
	w.p("## Peers: kpod family vs its bpftrace / libbpf-tools equivalent, same benchmark")
	w.p("")
	w.p("On every benchmark where the family's programs run at least once per 10 operations; redis by CPU time per request (its")
	w.p("throughput is too noisy per family: see the budget focus). Δ ns/op: median over pairs (wall clock: includes the tracepoint dispatch,")
	w.p("which for the classic tracepoints bpftrace uses costs more outside the program than tp_btf). BPF ns/op: program time only, from")
	w.p("the statistics pass (it includes the statistics' own two clock reads per run). **Met** when kpod's Δ ≤ the peer's; **met (≈)**")
	w.p("when above it by less than the noise: two standard errors of the difference of the two medians (from each config's own spread).")
	w.p("")
	w.header("family", "benchmark", "peer", "kpod Δ ns/op", "peer Δ ns/op", "noise ±", "kpod BPF ns/op", "peer BPF ns/op", "verdict")
	for _, c := range run.peerComparisons() {
		w.row(c.Family, c.Bench, c.Peer, signedNs(c.Kpod.Delta)+c.Kpod.sig(), signedNs(c.PeerC.Delta)+c.PeerC.sig(), ns(c.Noise), ns(c.KpodBPF), ns(c.PeerBPF), c.Verdict)
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
		for _, c := range run.Matrix.Configs {
			if c.Family == f && (c.Kind == kindBpftrace || c.Kind == kindLibbpf) {
				has = true
			}
		}
		if !has {
			noPeer = append(noPeer, f)
		}
	}
	if len(noPeer) > 0 {
		w.p("Families without a peer here: %s (`oom/mark_victim` fires on none of the benchmarks; libbpf-tools oomkill needs kprobes).", strings.Join(noPeer, ", "))
		w.p("")
	}
}

// ---- focus ----

func renderFocus(w *mdWriter, run *benchRun) {
	f := run.Focus
	if f == nil {
		return
	}
	w.p("## Budget focus: standard and comprehensive on redis and ping-pong")
	w.p("")
	w.p("The A/A control, standard and comprehensive, %d pairs each per benchmark (in rounds of 2, configs in random order); redis %d", f.Pairs, f.Requests)
	w.p("requests per test. Cells: median ratio (quartiles) and median Δ; for redis SET/GET the throughput loss = 1 − 1/ratio.")
	w.p("")
	names := []string{"redis-set", "redis-get", "redis-cpu", "pingpong", "getppid"}
	w.header(append([]string{"config"}, names...)...)
	aa := run.focusOf("none (A/A control)")
	row := []string{"**detached** (median)"}
	for _, b := range names {
		c := cellOf(aa, b)
		if b == "redis-set" || b == "redis-get" {
			row = append(row, fmt.Sprintf("**%.0f req/s**", 1e9/c.Off))
		} else {
			row = append(row, "**"+ns(c.Off)+"**")
		}
	}
	w.row(row...)
	for _, r := range f.Configs {
		row := []string{r.Name}
		for _, b := range names {
			c := cellOf(r, b)
			s := fmt.Sprintf("×%.3f (%.3f–%.3f) %s%s", c.Ratio, c.Q1, c.Q3, signedNs(c.Delta), c.sig())
			if b == "redis-set" || b == "redis-get" {
				s += fmt.Sprintf("; loss %.1f %%", loss(c.Ratio))
			}
			row = append(row, s)
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
		w.p("Growth: %.1f µs of cycle per added pod (in-process, %d → %d pods).", per*1e6, first.Pods, last.Pods)
		if mid := run.Scale[len(run.Scale)/2]; len(mid.Cycles) > 0 && mid != first && mid != last {
			pred := median(first.Cycles) + per*float64(mid.Pods-first.Pods)
			w.p("A straight line through the %d- and %d-pod points predicts %s at %d pods; measured: %s.", first.Pods, last.Pods, ms(pred), mid.Pods, ms(median(mid.Cycles)))
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
			w.p("Live heap of the benchmark process with the receiver running at %d pods, every 4 KiB of allocation sampled, after three", p.Pods)
			w.p("cycles of a second receiver started for this (`go tool pprof -sample_index=inuse_space -top %s`; the rest of the", p.HeapProfile)
			w.p("process — BTF of the kernel, the harness — is in it too):")
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
		for _, r := range run.Matrix.Configs {
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

// ---- experiments ----

func renderExperiments(w *mdWriter, run *benchRun) {
	if len(run.Experiments) == 0 {
		return
	}
	w.p("## Experiments: changes this report proposes, measured")
	w.p("")
	w.p("Each is measured against what kpod does today on the benchmark where it matters; nothing in bpf/, internal/ or receiver/ is")
	w.p("changed (a kernel variant is the committed object with a map type or the set of attached programs changed at load time).")
	w.p("Kernel experiments: triplets of samples back to back (nothing, today, proposed; random order), medians over triplets; then")
	w.p("BPF statistics of one run of each.")
	w.p("")
	for _, e := range run.Experiments {
		w.p("**%s** — %s.", e.Name, e.Change)
		w.p("")
		if e.Error != "" {
			w.p("Failed: %s", firstLines(e.Error, 2))
			w.p("")
			continue
		}
		if e.Table != nil {
			if strings.HasPrefix(e.Name, "userspace") {
				w.header("variant", "memory + pagefaults per container per cycle (best of 7 passes over "+fmt.Sprint(e.N)+" containers)", "what is read")
			} else {
				w.header("variant", "VmRSS max", "of which", "otelcol cycle")
			}
			for _, row := range e.Table {
				w.row(row...)
			}
			w.p("")
			continue
		}
		sig := ""
		if e.P >= 0.05 {
			sig = " (≈: the sign test cannot tell it from zero)"
		}
		w.header("", e.Bench)
		w.row("added by today's ("+e.A+")", signedNs(e.AddedA)+" per op")
		w.row("added by the proposed ("+e.B+")", signedNs(e.AddedB)+" per op")
		w.row("proposed − today, back to back", fmt.Sprintf("%s per op, ratio ×%.3f, %d triplets, sign test p = %.3f%s", signedNs(e.BvsA), e.RatioBA, e.N, e.P, sig))
		var names []string
		for n := range e.StatsA {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a, b := e.StatsA[n], e.StatsB[n]
			if a.RawRuns == 0 && b.RawRuns == 0 {
				continue
			}
			w.row("BPF statistics "+n, fmt.Sprintf("today %s/run (%.2f runs/op), proposed %s/run (%.2f runs/op)",
				ns(float64(a.RawTimeNs)/math.Max(1, float64(a.RawRuns))), float64(a.RawRuns)/e.Ops,
				ns(float64(b.RawTimeNs)/math.Max(1, float64(b.RawRuns))), float64(b.RawRuns)/e.Ops))
		}
		w.p("")
	}
}
