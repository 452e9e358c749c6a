//go:build bench

package bench

import (
	"fmt"
	"maps"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

type unrunnable struct{ Name, Family, Why string }

// benchRun is everything one `make bench` measured.
type benchRun struct {
	Rounds, MicroPairs, RedisPairs, FocusPairs            int
	PeerPairs, TCPPairs, SyscallPairs, L7Pairs, PrimPairs int
	Quick                                                 bool
	Seed                                                  int64 // of the shuffles (BENCH_SEED reproduces the order)
	OutDir                                                string
	Machine                                               map[string]string
	Start, End                                            time.Time
	LoadStart, LoadEnd                                    string
	Phases                                                []phaseTime
	BenchTime                                             map[string][2]float64 // benchmark → runs, seconds (wall)
	Suite                                                 map[string]string
	Matrix                                                *matrixResult
	Variants                                              []*configResult // the head-to-head configs (loaded, not in the matrix)
	Exact                                                 []exactCheck    // what each way of counting system calls counted of a known workload
	L7Exact                                               []l7Check       // what the l7 family counted of the l7 group's workloads
	Groups                                                []*groupResult
	Stats                                                 []*statsResult
	Iter                                                  *iterResult
	Scale                                                 []*scalePoint
	Unrunnable                                            []unrunnable
	Experiments                                           []*expResult
}

type phaseTime struct {
	Name      string
	Sec       float64
	BenchSec  float64 // of which running benchmarks
	BenchRuns int
}

const (
	groupBudget  = "budget focus"
	groupTCP     = "tcp head-to-head"
	groupSyscall = "syscall alternatives"
	groupL7      = "l7 cost"
	// cfgStandardL7 is the standard profile with the l7 family enabled on top.
	cfgStandardL7 = "kpod standard + l7"
	// cfgCompExactSirq is the comprehensive profile with every soft IRQ timed (softirqs'
	// latency_sample 1): what its windows save.
	cfgCompExactSirq = "kpod comprehensive, every soft IRQ timed"
	// cfgComprehensive's statistics pass gives the programs of every family in a profile.
	cfgComprehensive = "kpod comprehensive"
)

func (run *benchRun) group(name string) *groupResult {
	for _, g := range run.Groups {
		if g.Name == name {
			return g
		}
	}
	return nil
}

func suiteParams(s *suite) map[string]string {
	return map[string]string{
		"redis":    fmt.Sprintf("redis-benchmark -t set -n %d -c 50, then -t get (server on CPU 0, client on CPU 1, two containers of one fake pod)", s.redisN),
		"redisp":   fmt.Sprintf("redis-benchmark -t set -n %d -c 50 -P %d, then -t get (as redis)", s.redisPN, redisPipeline),
		"http":     fmt.Sprintf("kbench http %d %d", s.http[0], s.http[1]),
		"getppid":  fmt.Sprintf("kbench getppid %d %d", s.getppid[0], s.getppid[1]),
		"pingpong": fmt.Sprintf("kbench pingpong %d %d", s.pingpong[0], s.pingpong[1]),
		"tcp":      fmt.Sprintf("kbench tcp %d %d 4096", s.tcp[0], s.tcp[1]),
		"forkexec": fmt.Sprintf("kbench forkexec %d %d", s.forkexec[0], s.forkexec[1]),
		"dread":    fmt.Sprintf("kbench dread %s %d %d 4096", s.loop.Dev, s.dread[0], s.dread[1]),
		"vdread":   fmt.Sprintf("kbench dread %s %d %d 4096 (%s)", s.disk.Data, s.vdread[0], s.vdread[1], s.disk.FS),
		"bufwrite": fmt.Sprintf("kbench bufwrite %s %d %d (%s)", s.disk.Buf, s.bufwrite[0], s.bufwrite[1], s.disk.FS),
		"tcprst":   fmt.Sprintf("kbench tcprst %d %d", s.tcprst[0], s.tcprst[1]),
		"oomkill":  fmt.Sprintf("kbench oomkill <container limited to %d MiB> %d %d", oomLimit>>20, s.oomkill[0], s.oomkill[1]),
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
	// The established-connection hash the TCP socket iterator walks once per network
	// namespace (shared by all namespaces unless tcp_child_ehash_entries gives each its own).
	m["tcp_ehash"] = sh("sysctl", "-n", "net.ipv4.tcp_ehash_entries")
	m["tcp_child_ehash"] = sh("sysctl", "-n", "net.ipv4.tcp_child_ehash_entries")
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

// medianCI is a distribution-free confidence interval of the median of v (order statistics,
// from the binomial distribution of how many values fall below the median) with coverage at
// least 95 % when there are 6 values or more; with fewer it is the whole range (coverage
// 1 − 2/2^n).
func medianCI(v []float64) (lo, hi float64) {
	n := len(v)
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	// [s[k], s[n-1-k]] covers the median with probability 1 − 2 P(B ≤ k), B ~ Binomial(n,
	// 1/2): k is the largest with P(B ≤ k) ≤ 0.025 (0, the whole range, when there is none).
	k, cum := 0, 0.0
	for i := 0; i < n/2; i++ {
		cum += binom(n, i) / math.Pow(2, float64(n))
		if cum > 0.025 {
			break
		}
		k = i
	}
	return s[k], s[n-1-k]
}

// xFloor is a config's cost as a multiple of its floor's, from blocks that sampled nothing,
// the config and the floor together: median(config − off) / median(floor − off), with a 95 %
// bootstrap interval over blocks (the pairs of differences resampled together; a fixed seed,
// so that a report rendered again says the same). ok is false when the floor's own cost
// cannot be told from zero (sign test p ≥ 0.05, or a median ≤ 0): a multiple of nothing
// means nothing.
func xFloor(r *configResult, b string) (x, lo, hi float64, ok bool) {
	if r == nil || len(r.Floor[b]) == 0 || len(r.Floor[b]) != len(r.Off[b]) || len(r.On[b]) != len(r.Off[b]) {
		return math.NaN(), math.NaN(), math.NaN(), false
	}
	var dc, df []float64
	for i := range r.Off[b] {
		dc = append(dc, r.On[b][i]-r.Off[b][i])
		df = append(df, r.Floor[b][i]-r.Off[b][i])
	}
	mf := median(df)
	if mf <= 0 || signP(df) >= 0.05 {
		return median(dc) / mf, math.NaN(), math.NaN(), false
	}
	x = median(dc) / mf
	rng := rand.New(rand.NewSource(int64(len(dc))*7919 + 1))
	var xs []float64
	n := len(dc)
	c, f := make([]float64, n), make([]float64, n)
	inf := 0
	const draws = 2000
	for k := 0; k < draws; k++ {
		for i := range c {
			j := rng.Intn(n)
			c[i], f[i] = dc[j], df[j]
		}
		m := median(f)
		if m <= 0 {
			inf++
			continue
		}
		xs = append(xs, median(c)/m)
	}
	sort.Float64s(xs)
	pct := func(p float64) float64 {
		// over all draws, the infinite ones (floor ≤ 0) counted as the largest
		i := int(p * draws)
		if i >= len(xs) {
			return math.Inf(1)
		}
		return xs[i]
	}
	return x, pct(0.025), pct(0.975), true
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

// fdText lists descriptor counts by kind, largest first.
func fdText(m map[string]int) string {
	if m == nil {
		return "–"
	}
	kinds := make([]string, 0, len(m))
	total := 0
	for k, n := range m {
		kinds = append(kinds, k)
		total += n
	}
	sort.Slice(kinds, func(i, j int) bool {
		return m[kinds[i]] > m[kinds[j]] || m[kinds[i]] == m[kinds[j]] && kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
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
// measured: the config has samples.
func (r *configResult) measured() bool {
	if r == nil {
		return false
	}
	for _, v := range r.On {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

func (c cell) sig() string {
	if c.P >= 0.05 {
		return " ≈"
	}
	return ""
}

// noise is the A/A control's spread of on−off on a benchmark, as a standard deviation.
func (run *benchRun) noise(b string) float64 {
	r := run.Matrix.byName(aaName)
	if r == nil || len(r.On[b]) == 0 {
		return math.NaN()
	}
	return mad(r.deltas(b))
}

// kpodProgFamily maps kpod program names to their family, from the programs each family
// loaded when it ran alone.
func (run *benchRun) kpodProgFamily() map[string]string {
	out := map[string]string{}
	if run.Matrix == nil {
		return out
	}
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

// familyStats is the statistics of every family's programs: kpod comprehensive's pass, and
// for a family in no profile (l7) its own pass, scaled to comprehensive's operations per
// benchmark run. fam maps program names to families.
func (run *benchRun) familyStats(fam map[string]string) *statsResult {
	comp := run.statsOf(cfgComprehensive)
	if comp == nil {
		return nil
	}
	in := map[string]bool{}
	for _, progs := range comp.Progs {
		for name := range progs {
			in[fam[name]] = true
		}
	}
	out := &statsResult{Name: comp.Name, Kind: comp.Kind, Family: comp.Family, Error: comp.Error, Ops: comp.Ops,
		Progs: map[string]map[string]progStat{}}
	for b, progs := range comp.Progs {
		out.Progs[b] = maps.Clone(progs)
	}
	for _, f := range kpodFamilies {
		own := run.statsOf("kpod " + f)
		if in[f] || own == nil {
			continue
		}
		for b, progs := range own.Progs {
			if out.Progs[b] == nil || own.Ops[b] == 0 {
				continue
			}
			k := comp.Ops[b] / own.Ops[b]
			for name, p := range progs {
				p.Runs, p.RunTimeNs = p.Runs*k, p.RunTimeNs*k
				out.Progs[b][name] = p
			}
		}
	}
	return out
}

// statBench maps a suite benchmark to the statistics-pass run that covered it.
func statBench(b string) string {
	if p, ok := redisPrefix(b); ok {
		return p
	}
	return b
}

// bpfPerOp sums, over the programs for which keep is true, runs per op and ns per op.
func bpfPerOp(s *statsResult, b string, keep func(string) bool) (runsPerOp, nsPerOp float64, ok bool) {
	if s == nil || s.Progs[b] == nil || s.Ops[b] == 0 {
		return 0, 0, false
	}
	// In name order: summed in map order, the floats differ in their last bits from one
	// rendering of the same run to the next, and a rounded cell can change.
	for _, name := range slices.Sorted(maps.Keys(s.Progs[b])) {
		if p := s.Progs[b][name]; keep(name) {
			runsPerOp += p.Runs / s.Ops[b]
			nsPerOp += p.RunTimeNs / s.Ops[b]
		}
	}
	return runsPerOp, nsPerOp, true
}

var matrixBenches = []string{"redis-set", "redis-get", "redis-cpu", "pingpong", "getppid", "tcp", "forkexec", "dread", "vdread", "bufwrite", "tcprst"}

func renderReport(run *benchRun) (string, error) {
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
	w.row("command", fmt.Sprintf("`make bench` → `bench/run.sh` → `go test -tags bench -run '^(TestFloorCounters|TestBench)$' ./bench/` (BENCH_ROUNDS=%d, BENCH_MICRO_PAIRS=%d, BENCH_PEER_PAIRS=%d, BENCH_REDIS_PAIRS=%d, BENCH_FOCUS_PAIRS=%d, BENCH_TCP_PAIRS=%d, BENCH_SYSCALL_PAIRS=%d, BENCH_L7_PAIRS=%d, BENCH_PRIM_PAIRS=%d)",
		run.Rounds, run.MicroPairs, run.PeerPairs, run.RedisPairs, run.FocusPairs, run.TCPPairs, run.SyscallPairs, run.L7Pairs, run.PrimPairs))
	w.row("shuffle seed", fmt.Sprintf("`%d` (`BENCH_SEED=%d` repeats this run's order of configs and of samples in every block)", run.Seed, run.Seed))
	w.row("kpod", "commit "+run.Machine["commit"])
	w.row("kernel", fmt.Sprintf("%s; TCP established hash %s buckets (net.ipv4.tcp_ehash_entries; tcp_child_ehash_entries %s)", run.Machine["kernel"], run.Machine["tcp_ehash"], run.Machine["tcp_child_ehash"]))
	w.row("machine", fmt.Sprintf("%s, %s cores, %s RAM, %s; %s", run.Machine["cpu"], run.Machine["cores"], run.Machine["memory"], run.Machine["os"], run.Machine["hypervisor"]))
	w.row("date", fmt.Sprintf("%s → %s (%s)", run.Start.Format("2006-01-02 15:04:05 MST"), run.End.Format("15:04:05"), run.End.Sub(run.Start).Round(time.Second)))
	var ph []string
	for _, p := range run.Phases {
		ph = append(ph, fmt.Sprintf("%s %s (%d benchmark runs, %s)", p.Name, (time.Duration(p.Sec*1e9)).Round(time.Second), p.BenchRuns,
			(time.Duration(p.BenchSec*1e9)).Round(time.Second)))
	}
	w.row("phases", orNone(ph))
	w.row("load average (1/5/15 min)", fmt.Sprintf("at start **%s**, at end **%s**; CPU steal at start %s (2 vCPUs shared with other engineers' builds and tests)", run.LoadStart, run.LoadEnd, run.Machine["steal"]))
	w.row("tools", fmt.Sprintf("%s; libbpf-tools %s; redis %s; %s; %s", run.Machine["bpftrace"], run.Machine["libbpf-tools"], run.Machine["redis"], run.Machine["go"], run.Machine["gcc"]))
	w.row("how kpod is loaded", "by the receiver: `kpodreceiver.NewFactory().CreateMetrics(...)` + `Start` in the benchmark process with `profile: minimal/standard/comprehensive`, or `profile: custom` + `collectors.<family>.enabled: true` for one family; the variants of the head-to-head groups by the family loader (`bpfload.Load`). Their programs are then adopted (see Method) and attached by the benchmark to the same hooks with the same attach type (the rung the loader took)")
	w.p("")
	renderBudgets(w, run)
	renderMethod(w, run)
	renderMatrix(w, run)
	renderFloors(w, run)
	renderPerEvent(w, run)
	renderCoverage(w, run)
	renderPrograms(w, run)
	renderPeers(w, run)
	renderBudgetFocus(w, run)
	renderL7(w, run)
	renderFamilyCost(w, run)
	renderTCP(w, run)
	renderSyscall(w, run)
	renderPrimitives(w, run)
	renderScale(w, run)
	renderMemory(w, run)
	renderExperiments(w, run)
	// Measured outside make bench (bench/TOPOLOGY.md says by what), kept across its runs.
	if b, err := os.ReadFile("TOPOLOGY.md"); err == nil {
		w.p("")
		w.b.Write(b)
	}
	analysis, err := renderAnalysis(run, "ANALYSIS.md")
	w.p("")
	w.b.WriteString(analysis)
	return w.b.String(), err
}

// ---- budgets ----

func (run *benchRun) scaleAt(n int) *scalePoint {
	for _, p := range run.Scale {
		if p.Pods == n {
			return p
		}
	}
	return nil
}

func loss(ratio float64) float64 { return (1 - 1/ratio) * 100 }

// pct is a median ratio as a signed percentage.
func pct(ratio float64) string { return fmt.Sprintf("%+.1f %%", (ratio-1)*100) }

// ratioCI is the median of the per-block ratios with its 95 % interval, as percentages.
func ratioCI(r *configResult, b string) string {
	if r == nil || len(r.On[b]) == 0 {
		return "–"
	}
	lo, hi := medianCI(r.ratios(b))
	return fmt.Sprintf("%s [%+.1f…%+.1f]", pct(median(r.ratios(b))), (lo-1)*100, (hi-1)*100)
}

// xFloorText formats xFloor.
func xFloorText(r *configResult, b string) string {
	x, lo, hi, ok := xFloor(r, b)
	if !ok {
		switch {
		case math.IsNaN(x):
			return "–"
		case len(r.Floor[b]) < 6:
			return fmt.Sprintf("– (%d blocks: too few to tell the floor from zero)", len(r.Floor[b]))
		}
		return "floor ≈ 0"
	}
	up := fmt.Sprintf("%.2f", hi)
	if math.IsInf(hi, 1) {
		up = "∞"
	}
	return fmt.Sprintf("×%.2f [%.2f…%s]", x, lo, up)
}

// floorVerdict: ≤ 1.25× the floor; "not judged" when the floor is not measurable there.
func floorVerdict(r *configResult, b string) (string, bool, bool) {
	x, _, _, ok := xFloor(r, b)
	if !ok {
		return "not judged (the floor's cost is not distinguishable from zero here)", false, false
	}
	return verdict(x <= 1.25), x <= 1.25, true
}

func renderBudgets(w *mdWriter, run *benchRun) {
	w.p("## Budgets")
	w.p("")
	w.p("DESIGN.md \"Performance budgets\" and issue 12. redis: CPU time per request (server + client) is the measure (throughput is the")
	w.p("same cost with more noise; a saturated single-threaded server loses about that much throughput), from the budget focus's")
	w.p("blocks; **×floor** = (config − nothing) / (floor − nothing) from the same blocks, where the floor is empty programs on the")
	w.p("config's own hooks. Brackets: 95 %% intervals (medians: order statistics; ×floor: bootstrap over blocks).")
	w.p("")
	w.header("budget", "measured", "verdict")
	g := run.group(groupBudget)
	aa := g.view(aaName)
	for _, b := range []struct {
		profile string
		limit   float64
		source  string
	}{{"standard", 2, "DESIGN.md, issue 12"}, {"comprehensive", 8, "issue 12: half of the +16.2 % of the run of 2026-11-29"}, {"comprehensive", 5, "DESIGN.md"}} {
		f := g.view("kpod " + b.profile)
		name := fmt.Sprintf("redis, %s: ≤ +%.0f %% CPU per request (%s)", b.profile, b.limit, b.source)
		if f == nil || len(f.On["redis-cpu"]) == 0 {
			w.row(name, "not measured", "–")
			continue
		}
		cpu, set, get := cellOf(f, "redis-cpu"), cellOf(f, "redis-set"), cellOf(f, "redis-get")
		w.row(name, fmt.Sprintf("**%s** %s per request, sign test p = %.2g over %d blocks (A/A control %s); throughput loss SET %.1f %%, GET %.1f %%",
			ratioCI(f, "redis-cpu"), signedNs(cpu.Delta), cpu.P, cpu.N, ratioCI(aa, "redis-cpu"), loss(set.Ratio), loss(get.Ratio)),
			verdict((cpu.Ratio-1)*100 <= b.limit))
	}
	for _, p := range []string{"standard", "comprehensive"} {
		f := g.view("kpod " + p)
		name := fmt.Sprintf("redis, %s: ≤ 1.25× its floor", p)
		if f == nil || len(f.Floor["redis-cpu"]) == 0 {
			w.row(name, "not measured", "–")
			continue
		}
		fv := g.view("floor of kpod " + p)
		v, _, _ := floorVerdict(f, "redis-cpu")
		least := ""
		for _, k := range counterKinds {
			if c := g.counterView("kpod "+p, k); c != nil {
				least += fmt.Sprintf("; %s on the same hooks adds %s, %s", k, signedNs(cellOf(c, "redis-cpu").Delta), xFloorText(c, "redis-cpu"))
			}
		}
		w.row(name, fmt.Sprintf("**%s**: the config adds %s per request, its floor %s (p = %.2g)%s", xFloorText(f, "redis-cpu"),
			signedNs(cellOf(f, "redis-cpu").Delta), signedNs(cellOf(fv, "redis-cpu").Delta), cellOf(fv, "redis-cpu").P, least), v)
	}
	if l7 := run.group(groupL7); l7 != nil {
		f := l7.view(cfgStandardL7)
		for _, b := range l7BudgetUnits {
			name := fmt.Sprintf("redis%s, standard + l7: ≤ +2 %% CPU per request (whether l7 can join standard; section \"The l7 family\")", map[bool]string{true: " pipelined"}[b == "redisp-cpu"])
			c := cellOf(f, b)
			if c.N == 0 {
				w.row(name, "not measured", "–")
				continue
			}
			w.row(name, fmt.Sprintf("**%s** %s per request, sign test p = %.2g over %d blocks (A/A control %s); l7 alone %s, ×floor %s",
				ratioCI(f, b), signedNs(c.Delta), c.P, c.N, ratioCI(l7.view(aaName), b), ratioCI(l7.view("kpod l7"), b), xFloorText(l7.view("kpod l7"), b)),
				verdict(withinPct(c.Ratio, 2)))
		}
	}
	if f := g.view("kpod standard"); f != nil && len(f.On["pingpong"]) > 0 {
		c, a := cellOf(f, "pingpong"), cellOf(aa, "pingpong")
		v, _, _ := floorVerdict(f, "pingpong")
		w.row("standard ≤ 10 % on ping-pong (DESIGN.md)", fmt.Sprintf("**×%.3f** (%s per round trip, %d blocks, 95 %% interval %s; A/A control ×%.3f); ×floor %s (%s)",
			c.Ratio, signedNs(c.Delta), c.N, ratioCI(f, "pingpong"), a.Ratio, xFloorText(f, "pingpong"), strings.Trim(v, "*")), verdict(c.Ratio <= 1.10))
	}
	met, judged, missed := run.floorVerdicts()
	fv := verdict(met == judged)
	if judged == 0 {
		fv = "–"
	}
	w.row("each family and profile ≤ 1.25× its floor (matrix, every benchmark where the floor is measurable)",
		fmt.Sprintf("%d of %d (config, benchmark) met; missed: %s (table \"Floors\")", met, judged, orNone(missed)), fv)
	pmet, total, pmissed := run.peerVerdicts()
	w.row("each family no costlier per event than its bpftrace / libbpf-tools equivalent (same benchmark)",
		fmt.Sprintf("%d of %d (family, peer, benchmark) comparisons met; missed: %s (table \"Peers\")", pmet, total, orNone(pmissed)),
		verdict(pmet == total && total > 0))
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
	for _, b := range append(append([]benchmark(nil), benchmarks...), statsOnly...) {
		cmd := run.Suite[b.Name]
		if p, ok := redisPrefix(b.Name); ok {
			cmd = run.Suite[p]
		}
		if cmd == "" {
			cmd = "not run"
		}
		w.row(b.Name, b.Op, "`"+cmd+"`", b.Events)
	}
	w.p("")
	w.p("kbench runs N operations per inner round, R short inner rounds, and reports the **minimum over inner rounds** of ns/op (the")
	w.p("round least disturbed by other load). redis-benchmark reports requests/s (ns/op = 1e9 / rps); redis-cpu is the CPU time of")
	w.p("redis-server (its threads' schedstat) plus redis-benchmark (rusage) per request. oomkill is in the statistics pass only (one")
	w.p("kill takes milliseconds: the program runs it causes are far below the noise of a pair).")
	w.p("")
	w.p("**Adopted programs.** This VM's speed drifts by 20–40 %% within seconds (host steal), so a sample is only compared with one")
	w.p("taken right next to it. Each config is first started the ordinary way — the kpod receiver's `Start` (which loads the family")
	w.p("objects, walks the attach ladder and attaches), the family loader for the head-to-head variants, `bpftrace script.bt`, or the")
	w.p("libbpf-tools binary — and then **adopted**: the benchmark opens the same programs by id (from `bpftool perf show`), stops the")
	w.p("original (its links go; programs and maps stay alive through the benchmark's descriptors) and from then on attaches them itself,")
	w.p("to the same hooks with the same attach type (tp_btf / raw_tp links, or perf-event tracepoints for classic tracepoints: kpod's")
	w.p("per-call syscall events, bpftrace). What adoption leaves out is the original's userspace (the receiver's scrapes: measured")
	w.p("separately below; the tcp family's socket iterator, which runs per collection: measured per run below). Tools that stream every")
	w.p("event to userspace through a perf buffer (execsnoop, exitsnoop, tcplife) are not adopted but started and stopped around samples")
	w.p("(\"restarted\").")
	w.p("")
	w.p("**Floors.** For every kpod config the benchmark also builds its floor: for each of the config's programs an empty program")
	w.p("(`r0 = 0; exit`) of the same type, attached to the same hooks in the same way (`bench/floor.go`). Its cost is what calling a BPF")
	w.p("program on those hooks costs on this machine, which no program on them can go below; **×floor** = (config − nothing) / (floor")
	w.p("− nothing). Where the floor's own cost cannot be told from zero (sign test p ≥ 0.05), a multiple of it means nothing and is")
	w.p("not given (\"floor ≈ 0\").")
	w.p("")
	w.p("**Blocks.** A block samples nothing, the config and (kpod) its floor — or every member of a group — once each, in a random")
	w.p("order (with only a config and nothing: alternately which goes first). Samples of one benchmark in a block are taken back to")
	w.p("back, each config attached just for its sample; for configs whose attaching and detaching is slow (perf-event tracepoints wait")
	w.p("for RCU grace periods when detached: 30–50 ms each here; restarted tools) a block attaches each config once and runs all its")
	w.p("benchmarks (**grouped**), so its samples of one benchmark are a few hundred ms apart instead of a few ms. Ratio = on / off, Δ =")
	w.p("on − off, per block; tables show **medians over blocks**, ≈ marks a Δ the sign test over the blocks cannot tell from zero")
	w.p("(p ≥ 0.05), and brackets are 95 %% intervals of the median (order statistics; with fewer than 6 blocks, the whole range).")
	w.p("The order of configs in every round and of samples in every block comes from one pseudo-random generator seeded with the")
	w.p("shuffle seed above.")
	w.p("")
	if m != nil {
		w.p("The matrix: %d configs × %d rounds (new random order each round) × %d blocks per micro-benchmark for kpod configs (twice", len(m.Configs), m.Rounds, m.MicroPairs)
		w.p("as many for the control, %d for the peers) and %d redis blocks per round, each config on the benchmarks where its programs", m.PeerPairs, m.RedisPairs)
		w.p("run (≥ 0.05 runs per operation in the statistics pass; the control and the profiles on all); it took %s. The **A/A", m.Took.Round(time.Second))
		w.p("control** goes through the same steps with nothing to attach: its spread is the noise floor.")
		w.p("")
	}
	w.p("**Per-program cost** comes from the kernel's BPF run-time statistics (`ebpf.EnableStats(BPF_STATS_RUN_TIME)`; run_time_ns /")
	w.p("run_cnt of each program), in a separate pass with the config attached and every benchmark run once (statistics add two clock")
	w.p("reads per program run, so they are off during the blocks). The programs also run for everything else on the host; %.1f s idle", statsIdle.Seconds())
	w.p("windows before and after the benchmarks give each program's background rate (the lower of the two), subtracted pro rata")
	w.p("from runs/op and ns/op (on a busy host, programs on node-wide hooks — system calls, context switches — get a background that")
	w.p("varies, and their runs/op with it). ns/run is the raw mean.")
	w.p("")
	hooks, samples := map[string]int{}, 0
	with := 0
	if m != nil {
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
	}
	var list []string
	for k, v := range hooks {
		list = append(list, fmt.Sprintf("%s (%d hooks)", k, v))
	}
	sort.Strings(list)
	w.p("**Other BPF users on the host.** Before %d of %d config rounds other processes had BPF programs attached to tracepoints: %s.", with, samples, orNone(list))
	w.p("They run in every sample of a block, so they do not bias Δ ns/op; they do inflate the \"off\" time a ratio is divided by.")
	w.p("")
}

// ---- matrix ----

func renderMatrix(w *mdWriter, run *benchRun) {
	m := run.Matrix
	if m == nil {
		return
	}
	w.p("## Kernel overhead: ratio with / without and added ns per operation")
	w.p("")
	w.p("Cell: median ratio × (median Δ per operation) over the config's blocks; ≈: not distinguishable from zero (sign test); · : not")
	w.p("measured (the config's programs do not run there). For redis the ratio is of ns per request, so throughput loss = 1 − 1/ratio.")
	w.p("")
	w.header(append([]string{"config", "blocks", "method"}, matrixBenches...)...)
	row := []string{"**detached ns/op** (median of the A/A control)", "", ""}
	aa := m.byName(aaName)
	for _, b := range matrixBenches {
		row = append(row, "**"+ns(cellOf(aa, b).Off)+"**")
	}
	w.row(row...)
	for _, kind := range []string{kindNone, kindFamily, kindProfile, kindBpftrace, kindLibbpf} {
		for _, r := range m.Configs {
			if r.Kind != kind {
				continue
			}
			n := 0
			for _, v := range r.On {
				n = max(n, len(v))
			}
			if n == 0 {
				why := "not measured: its programs run on none of the paired benchmarks (statistics pass)"
				if r.Error != "" {
					why = "failed: " + firstLines(r.Error, 1)
				}
				w.row(append([]string{r.Name, "0", r.Method, why}, make([]string, len(matrixBenches)-1)...)...)
				continue
			}
			method := r.Method
			if r.Grouped {
				method += ", grouped"
			}
			row := []string{r.Name, fmt.Sprint(n), method}
			for _, b := range matrixBenches {
				c := cellOf(r, b)
				if c.N == 0 {
					row = append(row, "·")
					continue
				}
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
	w.p("Quartiles of the per-block ratios of the control and the profiles, to judge the spread:")
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
	fam := run.kpodProgFamily()
	comp := run.familyStats(fam)
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
	fam := run.kpodProgFamily()
	comp := run.familyStats(fam)
	var out []peerCmp
	for _, f := range kpodFamilies {
		kr := run.Matrix.byName("kpod " + f)
		if !kr.measured() {
			continue
		}
		for _, pr := range run.Matrix.Configs {
			if pr.Family != f || (pr.Kind != kindBpftrace && pr.Kind != kindLibbpf) || !pr.measured() {
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
				if len(kr.On[b]) == 0 || len(pr.On[b]) == 0 {
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

// ---- scale ----

func renderScale(w *mdWriter, run *benchRun) {
	w.p("## Userspace cost vs number of pods")
	w.p("")
	w.p("N fake pods, one container each with one sleeping process in a network namespace of its own (as a pod's sandbox holds one), created in one prefix in every cgroup hierarchy (kubelet layout).")
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
	w.header("pods", "VmRSS max", "VmHWM", "RSS anonymous / file-backed (smaps_rollup)", "of which the otelcol-kpod binary's mappings", "Go heap alloc / runtime total (otelcol_process_runtime_*)", "receiver live heap in-process (after GC, with minus without)", "open descriptors of otelcol-kpod")
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
			mib(p.OtelBinRSS), rt, fmt.Sprintf("%.1f MiB", float64(p.HeapDelta)/(1<<20)), fdText(p.OtelFDs))
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
	all := append(append([]*configResult(nil), run.Matrix.Configs...), run.Variants...)
	for _, kind := range []string{kindProfile, kindFamily, kindVariant, kindBpftrace, kindLibbpf} {
		for _, r := range all {
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
