//go:build bench

package bench

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// The report's sections on floors, the budget focus, the cost of each family per request
// and the head-to-head groups.

// perOpStats is what a config's programs did per operation of a benchmark in the statistics
// pass: its own stats when it had a pass of its own, else (a family alone) its programs in
// kpod comprehensive's.
func (run *benchRun) perOpStats(config, b string) (runs, nsop float64, ok bool) {
	if st := run.statsOf(config); st != nil {
		return bpfPerOp(st, b, func(string) bool { return true })
	}
	if f, found := strings.CutPrefix(config, "kpod "); found {
		fam := run.kpodProgFamily()
		return bpfPerOp(run.familyStats(fam), b, func(n string) bool { return fam[n] == f })
	}
	return 0, 0, false
}

func statsText(runs, nsop float64, ok bool) string {
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f runs, %s", runs, ns(nsop))
}

// cellText is a median Δ with its 95 % interval and the ratio, ≈ when not significant.
func cellText(r *configResult, b string) string {
	c := cellOf(r, b)
	if c.N == 0 {
		return "–"
	}
	lo, hi := medianCI(r.deltas(b))
	return fmt.Sprintf("%s [%s…%s] ×%.3f%s", signedNs(c.Delta), signedNs(lo), signedNs(hi), c.Ratio, c.sig())
}

// ---- floors ----

type floorRow struct {
	r     *configResult
	bench string
}

func (run *benchRun) floorRows() []floorRow {
	var out []floorRow
	if run.Matrix == nil {
		return nil
	}
	for _, kind := range []string{kindFamily, kindProfile} {
		for _, r := range run.Matrix.Configs {
			if r.Kind != kind {
				continue
			}
			for _, b := range matrixBenches {
				if b == "redis-set" || b == "redis-get" || len(r.Floor[b]) == 0 {
					continue
				}
				out = append(out, floorRow{r, b})
			}
		}
	}
	return out
}

// floorVerdicts counts the (config, benchmark) of the matrix within 1.25× their floor, among
// those where the floor is measurable.
func (run *benchRun) floorVerdicts() (met, judged int, missed []string) {
	for _, fr := range run.floorRows() {
		x, _, _, ok := xFloor(fr.r, fr.bench)
		if !ok {
			continue
		}
		judged++
		if x <= 1.25 {
			met++
		} else {
			missed = append(missed, fmt.Sprintf("%s on %s (%s)", fr.r.Name, fr.bench, xFloorText(fr.r, fr.bench)))
		}
	}
	return
}

func renderFloors(w *mdWriter, run *benchRun) {
	rows := run.floorRows()
	if len(rows) == 0 {
		return
	}
	w.p("## Floors: each family and profile as a multiple of its floor")
	w.p("")
	w.p("From the matrix's blocks (nothing, the config, its floor). The goal (DESIGN.md \"The floor\") is ≤ 1.25×; \"floor ≈ 0\": the hooks")
	w.p("alone cost nothing measurable on that benchmark, so no multiple is given (few blocks: the intervals are wide; the budget focus")
	w.p("below has more).")
	w.p("")
	w.header("config", "benchmark", "blocks", "config Δ/op [95 %]", "floor Δ/op [95 %]", "×floor [95 %]", "≤ 1.25×")
	for _, fr := range rows {
		fv := fr.r.floorView()
		v, _, judged := floorVerdict(fr.r, fr.bench)
		if !judged {
			v = "–"
		}
		w.row(fr.r.Name, fr.bench, fmt.Sprint(len(fr.r.Off[fr.bench])), cellText(fr.r, fr.bench), cellText(fv, fr.bench), xFloorText(fr.r, fr.bench), v)
	}
	w.p("")
}

// ---- coverage ----

func renderCoverage(w *mdWriter, run *benchRun) {
	fam := run.kpodProgFamily()
	comp := run.familyStats(fam)
	if comp == nil {
		return
	}
	w.p("## Which benchmark exercises which family")
	w.p("")
	w.p("Program runs per operation of each family's programs (statistics pass, kpod comprehensive; l7, in no profile, alone); `–` below 0.01. A family is paired")
	w.p("in the matrix on the benchmarks where it runs at least 0.05 times per operation.")
	w.p("")
	w.header(append([]string{"family"}, append(statBenches, "paired on")...)...)
	for _, f := range kpodFamilies {
		row := []string{f}
		for _, b := range statBenches {
			runs, _, ok := bpfPerOp(comp, b, func(n string) bool { return fam[n] == f })
			if !ok || runs < 0.01 {
				row = append(row, "–")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f", runs))
		}
		paired := "–"
		if r := run.Matrix.byName("kpod " + f); r != nil {
			var bs []string
			for _, b := range r.Benches {
				if len(r.On[runNames(b)[0]]) > 0 {
					bs = append(bs, b)
				}
			}
			if len(bs) > 0 {
				paired = strings.Join(bs, ", ")
			}
		}
		row = append(row, paired)
		w.row(row...)
	}
	w.p("")
	w.p("oom runs on oomkill only (one program run per kill of a several-millisecond operation: statistics only, no pairs). tcpdrop's")
	w.p("tcprst drops are SYNs without a socket, counted in the node-level bucket (a pod's own socket drops need a lossy path, e.g. a")
	w.p("netfilter drop rule in a pod network namespace, which the benchmark does not set up).")
	w.p("")
}

// ---- budget focus ----

func renderBudgetFocus(w *mdWriter, run *benchRun) {
	g := run.group(groupBudget)
	if g == nil {
		return
	}
	w.p("## Budget focus: the profiles on redis and ping-pong, against nothing and against their floors")
	w.p("")
	grouped := "each member attached once per block for both benchmarks (grouped: comprehensive's per-call syscall events are slow to detach)"
	if !g.Grouped {
		grouped = "each member attached for each benchmark's sample"
	}
	w.p("%d blocks; in each, in a random order: nothing, the A/A control (nothing again), each profile and its floor, and `%s`", g.Blocks, cfgCompExactSirq)
	w.p("(the softirqs family's `latency_sample: 1`: every soft IRQ timed, where the profile's default times those starting in its")
	w.p("250 ms windows, 1/16 of the time); %s; redis", grouped)
	w.p("%d requests per test. Cells: median Δ per operation [95 %% interval] and median ratio; ≈: sign test p ≥ 0.05. \"− floor\" rows", g.Requests)
	w.p("compare the profile with its floor sample of the same block. %s", g.errText())
	w.p("")
	units := []string{"redis-cpu", "redis-set", "redis-get", "pingpong"}
	w.header(append([]string{"config"}, units...)...)
	row := []string{"**detached** (median)"}
	off := &configResult{On: g.Samples["off"], Off: g.Samples["off"]}
	for _, b := range units {
		c := cellOf(off, b)
		if b == "redis-set" || b == "redis-get" {
			row = append(row, fmt.Sprintf("**%.0f req/s**", 1e9/c.Off))
		} else {
			row = append(row, "**"+ns(c.Off)+"**")
		}
	}
	w.row(row...)
	counters := false // a profile's counters were shown
	for _, m := range g.Members {
		rows := []*configResult{g.view(m)}
		if f := g.FloorOf[m]; f != "" {
			fv := g.view(f)
			fv.Name = f
			rows = append(rows, fv, g.vsFloor(m))
		}
		for _, r := range rows {
			row := []string{r.Name}
			for _, b := range units {
				row = append(row, cellText(r, b))
			}
			w.row(row...)
		}
		if g.FloorOf[m] != "" {
			row := []string{m + ": **×floor**"}
			for _, b := range units {
				row = append(row, xFloorText(g.view(m), b))
			}
			w.row(row...)
		}
		for _, k := range counterKinds {
			c := g.counterView(m, k)
			if c == nil {
				continue
			}
			counters = true
			row, xrow := []string{c.Name}, []string{c.Name + ": **×floor**"}
			for _, b := range units {
				row = append(row, cellText(c, b))
				xrow = append(xrow, xFloorText(c, b))
			}
			w.row(row...)
			w.row(xrow...)
		}
	}
	w.p("")
	if counters {
		w.p("\"counter on the hooks of\" a profile: on each of the profile's hooks, a program that only adds one to a counter of the")
		w.p("current task's cgroup in a per-CPU hash (bpf_get_current_cgroup_id, one lookup, an update on a cgroup's first event;")
		w.p("`bench/floor.go`): the least kpod's families do per event. \"counter in cgroup storage\": the same count kept on the")
		w.p("cgroup itself (BPF_MAP_TYPE_CGRP_STORAGE, 6.2+: the cgroup's pointer from the task, one storage lookup, an atomic add;")
		w.p("no id, no hash). \"timed counter in cgroup storage\": that counter, and on the hooks where a family times an interval")
		w.p("with the clock (softirq, hard IRQ, block request, syscall enter events) the clock read and kept beside it: the")
		w.p("least a profile whose families time intervals can do. \"cached counter\": each CPU counts in a per-CPU slot while")
		w.p("the same task (in the same css_set) has the events there, and adds the slot's count to the per-CPU hash by cgroup id")
		w.p("when another task has one (`bench/floor.go`): the cgroup id and the hash are paid once per change of task on a CPU,")
		w.p("not per event, and a cgroup's count is its hash entry plus the slots that hold it. Their ×floor is what the least")
		w.p("per-pod work on those hooks costs on this machine.")
		w.p("")
	}
	w.p("Sign test of each profile against nothing on redis-cpu: %s.", strings.Join(g.signs("redis-cpu"), "; "))
	w.p("")
}

func (g *groupResult) errText() string {
	if g.Error == "" {
		return ""
	}
	return "Not measured: " + strings.TrimSuffix(g.Error, "; ") + "."
}

// signs lists "member p = x (n blocks)" on one benchmark.
func (g *groupResult) signs(b string) []string {
	var out []string
	for _, m := range g.Members {
		c := cellOf(g.view(m), b)
		out = append(out, fmt.Sprintf("%s p = %.2g (%d blocks, %s)", m, c.P, c.N, signedNs(c.Delta)))
	}
	return out
}

// ---- cost of each family per request ----

// famCost is one family's cost per redis request (renderFamilyCost).
type famCost struct {
	Family               string
	Runs, BPF, Hook, Est float64 // per request: program runs, BPF ns; hook ns per run; estimate ns
	HookBench, Alone     string
	HaveHook, InStandard bool
	InComp               bool // in the comprehensive profile (l7 is in none)
}

// familyCosts estimates each family's cost per redis request, largest first.
func (run *benchRun) familyCosts() []famCost {
	fam := run.kpodProgFamily()
	comp := run.familyStats(fam)
	if comp == nil || run.Matrix == nil {
		return nil
	}
	inProfile := func(p string) map[string]bool {
		in := map[string]bool{}
		if r := run.Matrix.byName("kpod " + p); r != nil {
			for _, p := range r.Programs {
				in[fam[p.Name]] = true
			}
		}
		return in
	}
	inStd, inComp := inProfile("standard"), inProfile("comprehensive")
	var rows []famCost
	for _, f := range kpodFamilies {
		runs, bpf, ok := bpfPerOp(comp, "redis", func(n string) bool { return fam[n] == f })
		if !ok || runs < 0.001 {
			continue
		}
		fr := famCost{Family: f, Runs: runs, BPF: bpf, InStandard: inStd[f], InComp: inComp[f], Alone: "not paired on redis"}
		r := run.Matrix.byName("kpod " + f)
		if r != nil && len(r.On["redis-cpu"]) > 0 {
			fr.Alone = cellText(r, "redis-cpu")
		}
		// Hook cost per run: the floor's Δ per run, on the benchmark (not redis) where the floor
		// is measurable and its runs stand out most from the noise (runs per op ÷ the A/A
		// control's spread there).
		best := 0.0
		for _, b := range matrixBenches {
			if strings.HasPrefix(b, "redis") || r == nil || len(r.Floor[b]) == 0 {
				continue
			}
			c := cellOf(r.floorView(), b)
			br, _, ok := bpfPerOp(comp, b, func(n string) bool { return fam[n] == f })
			noise := run.noise(b)
			if !ok || br < 0.05 || c.P >= 0.05 || c.Delta <= 0 || !(noise > 0) {
				continue
			}
			if score := br / noise; score > best {
				best = score
				fr.Hook = c.Delta / br
				fr.HookBench, fr.HaveHook = b, true
			}
		}
		fr.Est = bpf
		if fr.HaveHook {
			fr.Est += runs * fr.Hook
		}
		rows = append(rows, fr)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Est > rows[j].Est })
	return rows
}

func renderFamilyCost(w *mdWriter, run *benchRun) {
	rows := run.familyCosts()
	if rows == nil {
		return
	}
	w.p("## What each family costs per redis request")
	w.p("")
	w.p("So that the profiles' cost on redis has names. Program runs and BPF time per request: statistics pass of kpod comprehensive")
	w.p("(of the family alone for l7, which is in no profile; the BPF time includes the statistics' own two clock reads per run). **Hook cost per run**: the family's floor Δ divided by")
	w.p("its program runs, on the benchmark (not redis) where the floor is measurable (sign test) and its runs stand out most from")
	w.p("the noise (the matrix; what the kernel spends calling a program there, before the program does anything). **Estimate** =")
	w.p("BPF time + runs × hook cost per request (BPF time alone where no hook cost is measured); it is the best per-family number on")
	w.p("redis, where one family's Δ alone is a fraction of the blocks' noise. **Alone**: the family alone against nothing in the")
	w.p("matrix (few redis blocks: wide intervals).")
	w.p("")
	w.header("family", "profiles", "runs / request", "BPF ns / request", "hook cost per run (benchmark)", "estimate / request", "alone: Δ CPU per request [95 %]")
	var sumStd, sumComp float64
	for _, fr := range rows {
		hook := "– (the floor is not measurable off redis)"
		if fr.HaveHook {
			hook = fmt.Sprintf("%s (%s)", signedNs(fr.Hook), fr.HookBench)
		}
		std := "none (`collectors.l7.enabled`)"
		switch {
		case fr.InStandard:
			std = "standard, comprehensive"
			sumStd += fr.Est
			sumComp += fr.Est
		case fr.InComp:
			std = "comprehensive"
			sumComp += fr.Est
		}
		w.row(fr.Family, std, fmt.Sprintf("%.2f", fr.Runs), ns(fr.BPF), hook, ns(fr.Est), fr.Alone)
	}
	g := run.group(groupBudget)
	meas := func(p string) string {
		r := g.view("kpod " + p)
		if r == nil {
			return "–"
		}
		return cellText(r, "redis-cpu")
	}
	w.row("**sum, standard**", "", "", "", "", "**"+ns(sumStd)+"**", "profile measured (budget focus): "+meas("standard"))
	w.row("**sum, comprehensive**", "", "", "", "", "**"+ns(sumComp)+"**", "profile measured (budget focus): "+meas("comprehensive"))
	w.p("")
}

// ---- tcp ----

func renderTCP(w *mdWriter, run *benchRun) {
	g := run.group(groupTCP)
	if g == nil {
		return
	}
	w.p("## tcp: per socket (default) against per segment (the old path), same blocks")
	w.p("")
	w.p("%d blocks of: nothing, the per-socket path (`inet_sock_set_state` only; bytes and retransmits are read from the sockets by an", g.Blocks)
	w.p("iterator at collection time, below), its floor, the per-segment path (`sock_send_length`, `sock_recv_length`, `inet_sock_set_state`,")
	w.p("`tcp_retransmit_skb`, `tcp_probe`), its floor; redis %d requests per test. \"per segment − per socket\" compares the two paths'", g.Requests)
	w.p("samples of the same block. %s", g.errText())
	w.p("")
	units := []string{"redis-cpu", "redis-set", "redis-get", "tcp", "tcprst"}
	w.header(append([]string{"config", "program runs, BPF time per op (redis / tcp)"}, units...)...)
	for _, m := range g.Members {
		r1, n1, ok1 := run.perOpStats(m, "redis")
		r2, n2, ok2 := run.perOpStats(m, "tcp")
		rows := []*configResult{g.view(m)}
		if f := g.FloorOf[m]; f != "" {
			fv := g.view(f)
			fv.Name = f
			rows = append(rows, fv)
		}
		for i, r := range rows {
			st := ""
			if i == 0 {
				st = statsText(r1, n1, ok1) + " / " + statsText(r2, n2, ok2)
			}
			row := []string{r.Name, st}
			for _, b := range units {
				row = append(row, cellText(r, b))
			}
			w.row(row...)
		}
		row := []string{m + ": **×floor**", ""}
		for _, b := range units {
			row = append(row, xFloorText(g.view(m), b))
		}
		w.row(row...)
	}
	if len(g.Members) == 2 && g.Samples[g.Members[0]] != nil && g.Samples[g.Members[1]] != nil {
		d := &configResult{On: g.Samples[g.Members[1]], Off: g.Samples[g.Members[0]]}
		row := []string{"**per segment − per socket**", ""}
		for _, b := range units {
			c := cellOf(d, b)
			row = append(row, fmt.Sprintf("%s (p = %.2g)", cellText(d, b), c.P))
		}
		w.row(row...)
	}
	w.p("")
	it := run.Iter
	if it == nil {
		return
	}
	w.p("**The per-socket path's cost per collection**: its iterator (`iter/tcp`, `kpod_titer`) run in the host's network namespace with N")
	w.p("loopback connections held open by `kbench conns N` in a fake pod (2N established sockets, plus the host's own), then its walk of")
	w.p("the sockets it knows (`kpod_twalk`, run with `BPF_PROG_TEST_RUN`: every namespace at once). The receiver runs the walk once per")
	w.p("collection, the iterator once in each new pod network namespace (in every one at each collection where the walk cannot load).")
	w.p("The iterator's first run adds each socket to the family's table of known sockets; the later ones are the steady state.")
	w.p("Program runs = sockets visited (every TCP socket of the namespace, listeners and minisockets — the benchmarks' TIME_WAIT ones —")
	w.p("included); per added record: the time over the first row's, per record more. The walk visits every slot of its table")
	w.p("(65,536) and reads each socket in it.")
	w.p("")
	if it.Error != "" {
		w.p("Error: %s", firstLines(it.Error, 2))
		w.p("")
	}
	w.header("connections", "records written", "program runs per iterator run", "first run", "later runs: median (min–max)", "per added record", "BPF ns per program run", "walk: entries met", "walk: median (min–max)")
	var base *iterPoint
	for _, p := range it.Points {
		lo, hi := minMax(p.Runs)
		per := "–"
		if base == nil {
			base = p
		} else if p.Records > base.Records {
			per = ns(1e9 * (median(p.Runs) - median(base.Runs)) / float64(p.Records-base.Records))
		}
		walk := "not measured"
		if p.WalkError != "" {
			walk += ": " + firstLines(p.WalkError, 1)
		} else if len(p.Walks) > 0 {
			wlo, whi := minMax(p.Walks)
			walk = fmt.Sprintf("%s (%s–%s)", ms(median(p.Walks)), ms(wlo), ms(whi))
		}
		w.row(fmt.Sprint(p.Conns), fmt.Sprint(p.Records), fmt.Sprintf("%.0f", p.ProgRuns), ms(p.First), fmt.Sprintf("%s (%s–%s)", ms(median(p.Runs)), ms(lo), ms(hi)),
			per, ns(p.ProgNsRun), fmt.Sprint(p.WalkMet), walk)
	}
	w.p("")
	if len(it.Empty) == 0 {
		return
	}
	w.p("The same iterator in a new network namespace that holds no socket (a pod with none), %d runs each: it still walks the", len(it.Empty[0].Runs))
	w.p("established hash, shared by all namespaces unless the namespace was created with `net.ipv4.tcp_child_ehash_entries` set")
	w.p("(6.1+; set on the host while the namespace is created, then restored). A walk of the shared hash passes over every socket")
	w.p("in it, other namespaces' included: the host's (its sockstat before the runs: `inuse` live sockets, `tw` TIME_WAIT ones, here")
	w.p("mostly the benchmarks' closed connections) are in the table.")
	w.p("")
	w.header("namespace's established hash", "host's TCP sockets then (sockstat)", "run: median (min–max)")
	for _, p := range it.Empty {
		name := fmt.Sprintf("shared (%s buckets)", run.Machine["tcp_ehash"])
		if p.ChildEhash > 0 {
			name = fmt.Sprintf("its own (`tcp_child_ehash_entries=%d`)", p.ChildEhash)
		}
		host := "–"
		if p.HostTCP != "" {
			host = "`" + p.HostTCP + "`"
		}
		if p.Error != "" {
			w.row(name, host, "not measured: "+firstLines(p.Error, 1))
			continue
		}
		lo, hi := minMax(p.Runs)
		w.row(name, host, fmt.Sprintf("%s (%s–%s)", ns(1e9*median(p.Runs)), ns(1e9*lo), ns(1e9*hi)))
	}
	w.p("")
}

// ---- syscall ----

// syscallPaths describes the members of the syscall group.
var syscallPaths = map[string][3]string{
	"kpod syscall":  {"per call: `syscalls:sys_exit_<name>` of the tracked calls counts; `sys_enter_<name>` stamps every call it sees and is attached in 250 ms windows, 1/16 of the time (the default)", "exact", "sampled: the calls entering in the windows"},
	varSysExact:     {"per call, as the default; `sys_enter_<name>` attached all the time, every call stamped", "exact", "exact"},
	varSysEveryCall: {"every call: `raw_syscalls` `sys_enter` + `sys_exit` (tp_btf; the fallback), `sys_enter` in the windows", "exact", "sampled: the calls entering in the windows"},
	varSysExitOnly:  {"per call: `sys_exit_<name>` only (what kpod loads with the `kpod.syscall.latency` histogram switched off; what the default costs outside its windows)", "exact", "none"},
	varSysEveryExit: {"every call: `raw_syscalls` `sys_exit` only (tp_btf), filtered by the tracked list", "exact", "none"},
}

func renderSyscall(w *mdWriter, run *benchRun) {
	g := run.group(groupSyscall)
	if g == nil {
		return
	}
	w.p("## syscall: ways to count the tracked calls, same blocks")
	w.p("")
	w.p("%d blocks of: nothing, each way and its floor (empty programs on the same events); redis %d requests per test. The tracked", g.Blocks, g.Requests)
	w.p("calls are the family's default list (`%s`); getppid is a call outside it (what every system call of the", strings.Join(trackedNames(), ", "))
	w.p("node pays), ping-pong's read and write are in it. Every way is the family's own object (`bpf/syscall.bpf.c`), loaded with")
	w.p("`latency_sample` set or, for the exit-only ways, with only the exit program attached; the windowed ways' enter program is attached")
	w.p("and detached by the benchmark on the family's own schedule (`window.Schedule`: 250 ms at a random point of every 4 s) while")
	w.p("the way is on. %s", g.errText())
	w.p("")
	units := []string{"redis-cpu", "getppid", "pingpong"}
	w.header(append([]string{"way", "hooks", "calls, errors", "latency", "program runs, BPF time per request (statistics)"}, units...)...)
	for _, m := range g.Members {
		d := syscallPaths[m]
		r, n, ok := run.perOpStats(m, "redis")
		row := []string{m, d[0], d[1], d[2], statsText(r, n, ok)}
		for _, b := range units {
			row = append(row, cellText(g.view(m), b))
		}
		w.row(row...)
		if f := g.FloorOf[m]; f != "" {
			row := []string{"  floor of it", "", "", "", ""}
			for _, b := range units {
				row = append(row, cellText(g.view(f), b))
			}
			w.row(row...)
			row = []string{"  **×floor**", "", "", "", ""}
			for _, b := range units {
				row = append(row, xFloorText(g.view(m), b))
			}
			w.row(row...)
		}
	}
	w.p("")
	best, bestLat := g.cheapest("redis-cpu", func(string) bool { return true }), g.cheapest("redis-cpu", func(m string) bool { return syscallPaths[m][2] != "none" })
	if best != "" {
		w.p("**Cheapest on redis (median Δ CPU per request) that keeps calls and errors exact**: %s. **Cheapest that also keeps a latency", best)
		w.p("histogram** (exact or sampled): %s. Each against the default (per call, timed in windows 1/16 of the time), same blocks: %s.", bestLat, strings.Join(g.against("kpod syscall", "redis-cpu"), "; "))
		w.p("")
	}
	if len(run.Exact) > 0 {
		w.p("**Exactness check** (before the measurements): each way loaded alone with the family loader; `kbench badclose` makes 1,000")
		w.p("and then 1,000 + %d `close(-1)` calls (each failing with EBADF) from one fake container; the object's entry for that", run.Exact[0].Calls)
		w.p("container and `close` is read after each; the second run's count less the first run's must be exactly that many (kbench's")
		w.p("own few successful closes while it joins the container cancel out). Latencies: those the second run recorded, with the")
		w.p("enter program attached throughout (the windowed ways' windows are the loader's timing, not the program's).")
		w.p("")
		w.header("way", "calls counted", "errors counted", "latencies recorded")
		for _, e := range run.Exact {
			if e.Error != "" {
				w.row(e.Way, "failed: "+firstLines(e.Error, 1), "", "")
				continue
			}
			lat := fmt.Sprint(e.Lats)
			if e.Lats > 0 && e.LatOf > 0 {
				lat = fmt.Sprintf("%d of %d calls (1 in %.1f)", e.Lats, e.LatOf, float64(e.LatOf)/float64(e.Lats))
			}
			w.row(e.Way, fmt.Sprintf("%d of %d", e.Counted, e.Calls), fmt.Sprintf("%d of %d", e.Errors, e.Calls), lat)
		}
		w.p("")
	}
	w.p("**Sampled latency.** The enter program is attached for 250 ms at a random point of every 4 s and stamps every call that")
	w.p("enters while it is; the exit, always attached, adds the latency of a stamped call whenever it returns. Whether a call is")
	w.p("timed depends on when it enters, not on how long it takes, so the histogram is that of the calls entering in the windows (for")
	w.p("a workload alike over the range of a query, that of all its calls). Calls and errors are counted at every exit, so they stay")
	w.p("exact; a call's entry and exit are in the same task, and the exit adds a latency only if its own entry was stamped.")
	w.p("")
}

func trackedNames() []string { n, _ := trackedSyscalls(); return n }

// cheapest is the member (with keep) of lowest median Δ on b.
func (g *groupResult) cheapest(b string, keep func(string) bool) string {
	best, bv := "", math.Inf(1)
	for _, m := range g.Members {
		c := cellOf(g.view(m), b)
		if keep(m) && c.N > 0 && c.Delta < bv {
			best, bv = m, c.Delta
		}
	}
	if best == "" {
		return "–"
	}
	return fmt.Sprintf("%s (%s)", best, signedNs(bv))
}

// against compares every other member with base on b, block by block.
func (g *groupResult) against(base, b string) []string {
	var out []string
	for _, m := range g.Members {
		if m == base || g.Samples[m] == nil || g.Samples[base] == nil {
			continue
		}
		d := &configResult{On: g.Samples[m], Off: g.Samples[base]}
		c := cellOf(d, b)
		out = append(out, fmt.Sprintf("%s %s (p = %.2g)", m, signedNs(c.Delta), c.P))
	}
	return out
}

// ---- the l7 family ----

// l7Units are the benchmarks of the l7 group, in display order.
var l7Units = []string{"redis-cpu", "redis-set", "redis-get", "redisp-cpu", "redisp-set", "redisp-get", "http"}

// l7BudgetUnits are the workloads the standard profile's budget (≤ +2 % CPU per redis request)
// is judged on for "standard + l7": redis, plain and pipelined.
var l7BudgetUnits = []string{"redis-cpu", "redisp-cpu"}

// l7Verdict says whether the standard profile with the l7 family stays within the standard
// budget (+2 % CPU per redis request, median over blocks against nothing) on every unit of
// l7BudgetUnits; judged is false when the group did not measure it.
func (run *benchRun) l7Verdict() (fits, judged bool) {
	g := run.group(groupL7)
	v := g.view(cfgStandardL7)
	if v == nil {
		return false, false
	}
	fits = true
	for _, b := range l7BudgetUnits {
		c := cellOf(v, b)
		if c.N == 0 {
			return false, false
		}
		fits = fits && withinPct(c.Ratio, 2)
	}
	return fits, true
}

// withinPct: a median ratio is at most +limit % (to rounding: a ratio of exactly 1.02 is
// within +2 %).
func withinPct(ratio, limit float64) bool { return (ratio-1)*100 <= limit+1e-9 }

// l7Increment is "standard + l7" against "standard" in the same blocks: what adding l7 to the
// standard profile costs.
func (g *groupResult) l7Increment() *configResult {
	if g == nil || g.Samples[cfgStandardL7] == nil || g.Samples["kpod standard"] == nil {
		return nil
	}
	return &configResult{Name: cfgStandardL7 + " − kpod standard", On: g.Samples[cfgStandardL7], Off: g.Samples["kpod standard"]}
}

func renderL7(w *mdWriter, run *benchRun) {
	g := run.group(groupL7)
	if g == nil {
		return
	}
	w.p("## The l7 family: its cost on redis (plain and pipelined) and HTTP keep-alive, and whether it fits the standard budget")
	w.p("")
	w.p("%d blocks; in each, in a random order: nothing, the A/A control, `kpod l7` (the family alone, `profile: custom`), its floor", g.Blocks)
	w.p("(empty programs on the same %s), `kpod standard`, and `%s` (`profile: standard` +", l7HookText(run), cfgStandardL7)
	w.p("`collectors.l7.enabled: true`); each member attached once per block for all the benchmarks (grouped: the per-call syscall")
	w.p("tracepoints are slow to detach). redis %d requests per test, pipelined redis (`-P %d`) %s; http: `%s`. Cells: median Δ per", g.Requests, redisPipeline, pipelinedN(run), run.Suite["http"])
	w.p("operation [95 %% interval] and median ratio; ≈: sign test p ≥ 0.05. \"%s − kpod standard\" compares the two in the same", cfgStandardL7)
	w.p("block: what adding l7 to the standard profile costs. %s", g.errText())
	w.p("")
	w.header(append([]string{"config"}, l7Units...)...)
	row := []string{"**detached** (median)"}
	off := &configResult{On: g.Samples["off"], Off: g.Samples["off"]}
	for _, b := range l7Units {
		c := cellOf(off, b)
		if strings.HasSuffix(b, "-set") || strings.HasSuffix(b, "-get") {
			row = append(row, fmt.Sprintf("**%.0f req/s**", 1e9/c.Off))
		} else {
			row = append(row, "**"+ns(c.Off)+"**")
		}
	}
	w.row(row...)
	var rows []*configResult
	for _, m := range g.Members {
		rows = append(rows, g.view(m))
		if f := g.FloorOf[m]; f != "" {
			fv := g.view(f)
			fv.Name = f
			rows = append(rows, fv, g.vsFloor(m))
		}
	}
	if inc := g.l7Increment(); inc != nil {
		rows = append(rows, inc)
	}
	for _, r := range rows {
		row := []string{r.Name}
		for _, b := range l7Units {
			row = append(row, cellText(r, b))
		}
		w.row(row...)
	}
	if g.FloorOf["kpod l7"] != "" {
		row := []string{"kpod l7: **×floor**"}
		for _, b := range l7Units {
			row = append(row, xFloorText(g.view("kpod l7"), b))
		}
		w.row(row...)
	}
	w.p("")
	if len(run.L7Exact) > 0 {
		w.p("**Exactness check** (before the measurements): the l7 family loaded alone (`internal/l7.Start`, as the receiver loads it)")
		w.p("while the group's workloads run once with known sizes; what it counted in each container's entry against what the workload")
		w.p("did (each request once on each end, in the container that made it). %s", map[bool]string{true: "**Every count is exact.**", false: "**Not every count is exact.**"}[l7Exact(run.L7Exact)])
		w.p("")
		w.header("workload", "protocol role method status", "requests made", "counted")
		for _, c := range run.L7Exact {
			got := fmt.Sprint(c.Got)
			if c.Error != "" {
				got = "failed: " + firstLines(c.Error, 1)
			}
			w.row("`"+c.Workload+"`", c.Key, fmt.Sprint(c.Want), got)
		}
		w.p("")
	}
	var st []string
	for _, b := range []string{"redis", "redisp", "http"} {
		r, n, ok := run.perOpStats("kpod l7", b)
		if ok {
			st = append(st, fmt.Sprintf("%s %.2f runs, %s of BPF per request", b, r, ns(n)))
		}
	}
	w.p("The l7 family's programs (statistics pass of the family alone; tail-called parsers are counted in the program that calls them): %s.", orNone(st))
	w.p("Sign test against nothing on redis-cpu: %s.", strings.Join(g.signs("redis-cpu"), "; "))
	w.p("")
	fits, judged := run.l7Verdict()
	switch {
	case !judged:
		w.p("**Whether l7 fits the standard budget: not judged** (the group did not measure `%s`).", cfgStandardL7)
	case fits:
		w.p("**l7 fits the standard profile's budget**: `%s` costs %s CPU per redis request and %s pipelined (budget +2 %% on each; medians", cfgStandardL7, ratioCI(g.view(cfgStandardL7), "redis-cpu"), ratioCI(g.view(cfgStandardL7), "redisp-cpu"))
		w.p("over blocks against nothing, 95 %% intervals in brackets).")
	default:
		w.p("**l7 does not fit the standard profile's budget**: `%s` costs %s CPU per redis request and %s pipelined (budget +2 %% on", cfgStandardL7, ratioCI(g.view(cfgStandardL7), "redis-cpu"), ratioCI(g.view(cfgStandardL7), "redisp-cpu"))
		w.p("each; medians over blocks against nothing, 95 %% intervals in brackets): it stays in no profile (`collectors.l7.enabled`).")
	}
	w.p("")
}

// l7HookText names the l7 config's hooks ("20 syscalls:sys_enter/exit_* tracepoints").
func l7HookText(run *benchRun) string {
	r := run.Matrix.byName("kpod l7")
	if r == nil || len(r.Hooks) == 0 {
		return "syscalls:sys_enter_*/sys_exit_* tracepoints"
	}
	return fmt.Sprintf("%d syscalls:sys_enter_*/sys_exit_* tracepoints", len(r.Hooks))
}

func pipelinedN(run *benchRun) string {
	if c := run.Suite["redisp"]; c != "" {
		return "`" + c + "`"
	}
	return "–"
}

// ---- primitives ----

// renderPrimitives is the report's table of the primitives group.
func renderPrimitives(w *mdWriter, run *benchRun) {
	g := run.group(groupPrim)
	if g == nil {
		return
	}
	w.p("## What each step of a program costs here: primitives on one hook, same blocks")
	w.p("")
	w.p("%d blocks of: nothing and one program at a time on `%s:%s`, a classic tracepoint like the syscall family's", g.Blocks, primHook[0], primHook[1])
	w.p("per-call events, with `kbench getppid` (%s per call detached) in a fake pod's container; each program does one", ns(median(g.Samples["off"]["getppid"])))
	w.p("thing (`bench/primitives.go`). **Above the empty program**: its sample less the empty program's of the same block")
	w.p("(median, sign test), the step's own cost; **×floor**: its Δ as a multiple of the empty program's, as for the configs.")
	w.p("Every call enters the kernel anew, so the memory a step touches is as cold as it gets after a system call here; in")
	w.p("the middle of a longer kernel path some of it may already be at hand. %s", g.errText())
	w.p("")
	w.header("program", "what it does", "Δ per getppid call", "above the empty program", "×floor")
	for _, m := range g.Members {
		above, x := "–", "–"
		if d := g.vsFloor(m); d != nil {
			above = fmt.Sprintf("%s, p = %.2g", cellText(d, "getppid"), cellOf(d, "getppid").P)
			x = xFloorText(g.view(m), "getppid")
		}
		w.row(m, primWhat[m], cellText(g.view(m), "getppid"), above, x)
	}
	w.p("")
}
