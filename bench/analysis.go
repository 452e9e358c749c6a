//go:build bench

package bench

import (
	"fmt"
	"math"
	"os"
	"strings"
	"text/template"
)

// bench/ANALYSIS.md is a text/template executed on the run (renderAnalysis): every number it
// cites is one of the calls below, so that it always says what the run it is appended to
// measured. The calls return text ("–" where the run has no such measurement); those ending
// in Val return a number, for {{if lt ...}} conditions.

type analysis struct{ run *benchRun }

func renderAnalysis(run *benchRun, path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil // no hand-written part
	}
	t, err := template.New("ANALYSIS.md").Funcs(template.FuncMap{
		"lt": func(a, b float64) bool { return a < b },
		"gt": func(a, b float64) bool { return a > b },
	}).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return fmt.Sprintf("(bench/ANALYSIS.md: %v)\n", err), fmt.Errorf("bench/ANALYSIS.md: %w", err)
	}
	var out strings.Builder
	if err := t.Execute(&out, &analysis{run}); err != nil {
		return out.String() + fmt.Sprintf("\n\n(bench/ANALYSIS.md: %v)\n", err), fmt.Errorf("bench/ANALYSIS.md: %w", err)
	}
	return out.String(), nil
}

func (a *analysis) Seed() string { return fmt.Sprint(a.run.Seed) }

// L7Judged and L7Fits: whether the standard profile with l7 was measured, and whether it
// stays within the standard budget (renderL7).
func (a *analysis) L7Judged() bool { _, j := a.run.l7Verdict(); return j }
func (a *analysis) L7Fits() bool   { f, _ := a.run.l7Verdict(); return f }

// L7Exact: the l7 exactness check counted every request of its workloads exactly.
func (a *analysis) L7Exact() bool { return l7Exact(a.run.L7Exact) }

// L7Checked: the run has the l7 exactness check.
func (a *analysis) L7Checked() bool { return len(a.run.L7Exact) > 0 }
func (a *analysis) Commit() string  { return a.run.Machine["commit"] }
func (a *analysis) Date() string    { return a.run.Start.Format("2006-01-02") }

// view finds a member's samples: a group member, a group's floor ("floor of <config>") or
// counter ("counter on the hooks of <config>"), or else the matrix's config.
func (a *analysis) view(group, config string) *configResult {
	if g := a.run.group(group); g != nil {
		for _, m := range g.Members {
			for _, k := range counterKinds {
				if counterOf(m, k) == config { // with the member's floor: its ×floor is the counter's
					return g.counterView(m, k)
				}
			}
		}
		if r := g.view(config); r != nil {
			r.Name = config
			return r
		}
	}
	if group == "matrix" || group == "" {
		if f, ok := strings.CutPrefix(config, "floor of "); ok {
			return a.run.Matrix.byName(f).floorView()
		}
		return a.run.Matrix.byName(config)
	}
	return nil
}

// Delta is a config's median Δ per operation on a benchmark (group "matrix" for the matrix).
func (a *analysis) Delta(group, config, bench string) string {
	return signedNs(cellOf(a.view(group, config), bench).Delta)
}

func (a *analysis) DeltaVal(group, config, bench string) float64 {
	return cellOf(a.view(group, config), bench).Delta
}

// Pct is the median ratio as a signed percentage.
func (a *analysis) Pct(group, config, bench string) string {
	c := cellOf(a.view(group, config), bench)
	if math.IsNaN(c.Ratio) {
		return "–"
	}
	return pct(c.Ratio)
}

func (a *analysis) PctVal(group, config, bench string) float64 {
	return (cellOf(a.view(group, config), bench).Ratio - 1) * 100
}

// PctCI is the median ratio with its 95 % interval, as percentages.
func (a *analysis) PctCI(group, config, bench string) string {
	return ratioCI(a.view(group, config), bench)
}

// PctLo is the lower end of the 95 % interval of the median ratio, as a percentage (NaN when
// not measured).
func (a *analysis) PctLo(group, config, bench string) float64 {
	r := a.view(group, config)
	if r == nil || len(r.On[bench]) == 0 {
		return math.NaN()
	}
	lo, _ := medianCI(r.ratios(bench))
	return (lo - 1) * 100
}

// Ratio is the median ratio, ×1.234.
func (a *analysis) Ratio(group, config, bench string) string {
	c := cellOf(a.view(group, config), bench)
	if math.IsNaN(c.Ratio) {
		return "–"
	}
	return fmt.Sprintf("×%.3f", c.Ratio)
}

func (a *analysis) RatioVal(group, config, bench string) float64 {
	return cellOf(a.view(group, config), bench).Ratio
}

// P is the sign test of the config against nothing, "p = 0.003".
func (a *analysis) P(group, config, bench string) string {
	c := cellOf(a.view(group, config), bench)
	return fmt.Sprintf("p = %.2g, %d blocks", c.P, c.N)
}

// PVal is the sign test's p of the config against nothing.
func (a *analysis) PVal(group, config, bench string) float64 {
	return cellOf(a.view(group, config), bench).P
}

// AA is the name of the A/A control (nothing against nothing) in the groups that have one.
func (a *analysis) AA() string { return aaName }

// Off is the median detached ns/op.
func (a *analysis) Off(group, bench string) string {
	if g := a.run.group(group); g != nil {
		return ns(median(g.Samples["off"][bench]))
	}
	return ns(cellOf(a.run.Matrix.byName(aaName), bench).Off)
}

// XFloor is the config's multiple of its floor.
func (a *analysis) XFloor(group, config, bench string) string {
	return xFloorText(a.view(group, config), bench)
}

func (a *analysis) XFloorVal(group, config, bench string) float64 {
	x, _, _, ok := xFloor(a.view(group, config), bench)
	if !ok {
		return math.NaN()
	}
	return x
}

// XFloorLo is the lower end of the 95 % interval of the config's multiple of its floor.
func (a *analysis) XFloorLo(group, config, bench string) float64 {
	_, lo, _, ok := xFloor(a.view(group, config), bench)
	if !ok {
		return math.NaN()
	}
	return lo
}

// FloorMeasurable: the config's floor is distinguishable from zero on bench (×floor is given).
func (a *analysis) FloorMeasurable(group, config, bench string) bool {
	_, _, _, ok := xFloor(a.view(group, config), bench)
	return ok
}

// Exact is what a way of counting system calls counted in the exactness check: "10000 of
// 10000 calls, 10000 of 10000 errors".
func (a *analysis) Exact(way string) string {
	for _, e := range a.run.Exact {
		if e.Way == way {
			if e.Error != "" {
				return "failed (" + firstLines(e.Error, 1) + ")"
			}
			return fmt.Sprintf("%d of %d calls, %d of %d errors", e.Counted, e.Calls, e.Errors, e.Calls)
		}
	}
	return "–"
}

// AllExact: every way counted every call and error of the exactness check.
func (a *analysis) AllExact() bool {
	for _, e := range a.run.Exact {
		if e.Error != "" || e.Counted != uint64(e.Calls) || e.Errors != uint64(e.Calls) {
			return false
		}
	}
	return len(a.run.Exact) > 0
}

// Diff compares two members of a group block by block: median of a − b, with the sign test.
// Has says whether config was measured in group.
func (a *analysis) Has(group, config string) bool {
	g := a.run.group(group)
	return g != nil && g.Samples[config] != nil
}

func (a *analysis) Diff(group, x, y, bench string) string {
	g := a.run.group(group)
	if g == nil || g.Samples[x] == nil || g.Samples[y] == nil {
		return "–"
	}
	d := &configResult{On: g.Samples[x], Off: g.Samples[y]}
	c := cellOf(d, bench)
	return fmt.Sprintf("%s (sign test p = %.2g over %d blocks)", signedNs(c.Delta), c.P, c.N)
}

// DiffP is the sign test's p of x against y in the same blocks (NaN if not measured).
func (a *analysis) DiffP(group, x, y, bench string) float64 {
	g := a.run.group(group)
	if g == nil || g.Samples[x] == nil || g.Samples[y] == nil {
		return math.NaN()
	}
	return cellOf(&configResult{On: g.Samples[x], Off: g.Samples[y]}, bench).P
}

func (a *analysis) DiffVal(group, x, y, bench string) float64 {
	g := a.run.group(group)
	if g == nil {
		return math.NaN()
	}
	return cellOf(&configResult{On: g.Samples[x], Off: g.Samples[y]}, bench).Delta
}

// Runs and BPF are a config's program runs and BPF time per operation (statistics pass).
func (a *analysis) Runs(config, bench string) string {
	r, _, ok := a.run.perOpStats(config, bench)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", r)
}

func (a *analysis) BPF(config, bench string) string {
	_, n, ok := a.run.perOpStats(config, bench)
	if !ok {
		return "–"
	}
	return ns(n)
}

// ProgNs is one program's ns per run in kpod comprehensive's statistics.
func (a *analysis) ProgNs(prog, bench string) string {
	st := a.run.familyStats(a.run.kpodProgFamily())
	if st == nil || st.Progs[bench] == nil {
		return "–"
	}
	p := st.Progs[bench][prog]
	if p.RawRuns == 0 {
		return "–"
	}
	return ns(float64(p.RawTimeNs) / float64(p.RawRuns))
}

// Cheapest is the member of a group with the lowest median Δ on bench.
func (a *analysis) Cheapest(group, bench string) string {
	g := a.run.group(group)
	if g == nil {
		return "–"
	}
	return g.cheapest(bench, func(string) bool { return true })
}

// Iter is the iterator's median run at n connections; IterRecord per record.
func (a *analysis) Iter(n int) string {
	if p := a.iterPoint(n); p != nil {
		return ms(median(p.Runs))
	}
	return "–"
}

// IterRecord is the iterator's time per record added by n connections (over the first point).
func (a *analysis) IterRecord(n int) string {
	p := a.iterPoint(n)
	if p == nil || a.run.Iter == nil || len(a.run.Iter.Points) == 0 {
		return "–"
	}
	base := a.run.Iter.Points[0]
	if p.Records <= base.Records {
		return "–"
	}
	return ns(1e9 * (median(p.Runs) - median(base.Runs)) / float64(p.Records-base.Records))
}

// Walk is the walk of the known sockets' median run at n connections.
func (a *analysis) Walk(n int) string {
	if p := a.iterPoint(n); p != nil && len(p.Walks) > 0 {
		return ms(median(p.Walks))
	}
	return "–"
}

// IterEmpty is the iterator's median run in a new namespace with no sockets: childEhash 0
// with the shared established hash, else with a hash of its own of that size.
func (a *analysis) IterEmpty(childEhash int) string {
	if a.run.Iter != nil {
		for _, p := range a.run.Iter.Empty {
			if p.ChildEhash == childEhash && len(p.Runs) > 0 {
				return ns(1e9 * median(p.Runs))
			}
		}
	}
	return "–"
}

func (a *analysis) iterPoint(n int) *iterPoint {
	if a.run.Iter == nil {
		return nil
	}
	for _, p := range a.run.Iter.Points {
		if p.Conns == n {
			return p
		}
	}
	return nil
}

// Cycle, OtelCycle: median collection cycle at n pods; RSS, BinRSS, Anon: otelcol-kpod memory.
func (a *analysis) Cycle(n int) string {
	if p := a.run.scaleAt(n); p != nil {
		return ms(median(p.Cycles))
	}
	return "–"
}

func (a *analysis) CycleVal(n int) float64 {
	if p := a.run.scaleAt(n); p != nil {
		return 1e3 * median(p.Cycles)
	}
	return math.NaN()
}

// CollectorMs is the median duration of one collector at n pods.
func (a *analysis) CollectorMs(name string, n int) string {
	if p := a.run.scaleAt(n); p != nil && len(p.Collectors[name]) > 0 {
		return ms(median(p.Collectors[name]))
	}
	return "–"
}

// TCPEhash is the size of the established-connection hash on the machine of the run.
func (a *analysis) TCPEhash() string { return a.run.Machine["tcp_ehash"] }

func (a *analysis) OtelCycle(n int) string {
	if p := a.run.scaleAt(n); p != nil {
		return ms(median(p.OtelCycles))
	}
	return "–"
}

func (a *analysis) OtelCycleVal(n int) float64 {
	if p := a.run.scaleAt(n); p != nil {
		return 1e3 * median(p.OtelCycles)
	}
	return math.NaN()
}

func (a *analysis) RSS(n int) string {
	if p := a.run.scaleAt(n); p != nil && len(p.OtelRSS) > 0 {
		var hi uint64
		for _, r := range p.OtelRSS {
			hi = max(hi, r)
		}
		return mib(hi)
	}
	return "–"
}

func (a *analysis) BinRSS(n int) string {
	if p := a.run.scaleAt(n); p != nil && p.OtelBinRSS > 0 {
		return mib(p.OtelBinRSS)
	}
	return "–"
}

// Exp is a cell of an experiment's table (row by its first cell), or of a triplet
// experiment: "BvsA", "P", "AddedA", "AddedB".
func (a *analysis) Exp(name, row string, col int) string {
	for _, e := range a.run.Experiments {
		if !strings.HasPrefix(e.Name, name) {
			continue
		}
		switch row {
		case "BvsA":
			return signedNs(e.BvsA)
		case "P":
			return fmt.Sprintf("p = %.2g", e.P)
		case "AddedA":
			return signedNs(e.AddedA)
		case "AddedB":
			return signedNs(e.AddedB)
		}
		for _, r := range e.Table {
			if len(r) > col && strings.HasPrefix(r[0], row) {
				return r[col]
			}
		}
	}
	return "–"
}

// ExpRSSSaving is how much lower an RSS experiment row's VmRSS is than the defaults'.
func (a *analysis) ExpRSSSaving(row string) string {
	var def, x float64
	for _, e := range a.run.Experiments {
		if !strings.HasPrefix(e.Name, "collector RSS") {
			continue
		}
		for _, r := range e.Table {
			var v float64
			if _, err := fmt.Sscanf(r[1], "%f MiB", &v); err != nil {
				continue
			}
			if r[0] == "defaults" {
				def = v
			}
			if strings.HasPrefix(r[0], row) {
				x = v
			}
		}
	}
	if def == 0 || x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", def-x)
}

// PeersMet, FloorsMet: "met of total".
func (a *analysis) PeersMet() string {
	m, t, _ := a.run.peerVerdicts()
	return fmt.Sprintf("%d of %d", m, t)
}

func (a *analysis) FloorsMet() string {
	m, t, _ := a.run.floorVerdicts()
	return fmt.Sprintf("%d of %d", m, t)
}

// FloorsMissed lists the (config, benchmark) above 1.25× their floor.
func (a *analysis) FloorsMissed() string {
	_, _, missed := a.run.floorVerdicts()
	return orNone(missed)
}

// DeltaPer is a config's median Δ divided by per (per program run, say).
func (a *analysis) DeltaPer(group, config, bench string, per float64) string {
	return signedNs(cellOf(a.view(group, config), bench).Delta / per)
}

// Fam is one field of a family's cost per redis request: "est", "runs", "bpf", "hook", or
// "rank" (1 = the costliest of the comprehensive profile's families).
func (a *analysis) Fam(family, field string) string {
	rank := 0
	for _, f := range a.run.familyCosts() {
		if f.InComp {
			rank++
		}
		if f.Family != family {
			continue
		}
		switch field {
		case "est":
			return ns(f.Est)
		case "runs":
			return fmt.Sprintf("%.2f", f.Runs)
		case "bpf":
			return ns(f.BPF)
		case "hook":
			if !f.HaveHook {
				return "–"
			}
			return signedNs(f.Hook)
		case "rank":
			return fmt.Sprint(rank)
		}
	}
	return "–"
}

// TopFamilies names the n costliest families of the comprehensive profile per redis request
// with their estimates.
func (a *analysis) TopFamilies(n int) string {
	var out []string
	for _, f := range a.run.familyCosts() {
		if len(out) == n {
			break
		}
		if f.InComp {
			out = append(out, fmt.Sprintf("%s (%s)", f.Family, ns(f.Est)))
		}
	}
	return orNone(out)
}

// primKeys name the primitives group's members in ANALYSIS.md.
var primKeys = map[string]string{"empty": primEmpty, "global": primGlobal, "cgid": primCgid, "clock": primClock, "hash": primHash,
	"storage": primStorage, "loads": primLoads, "taskst": primTaskSt, "last": primLast}

// Step is a primitive's cost above the empty program in the same blocks, with its sign test.
func (a *analysis) Step(key string) string {
	return a.Diff(groupPrim, primKeys[key], primEmpty, "getppid")
}

// StepX is a primitive's multiple of the empty program's cost; StepXLo the low end of its interval.
func (a *analysis) StepX(key string) string { return a.XFloor(groupPrim, primKeys[key], "getppid") }
func (a *analysis) StepXLo(key string) float64 {
	return a.XFloorLo(groupPrim, primKeys[key], "getppid")
}

// StepXVal is a primitive's median multiple of the empty program's cost; StepVsP the sign test
// of one primitive against another in the same blocks, StepVs their difference.
func (a *analysis) StepXVal(key string) float64 {
	return a.XFloorVal(groupPrim, primKeys[key], "getppid")
}
func (a *analysis) StepVs(x, y string) string {
	return a.Diff(groupPrim, primKeys[x], primKeys[y], "getppid")
}
func (a *analysis) StepVsP(x, y string) float64 {
	return a.DiffP(groupPrim, primKeys[x], primKeys[y], "getppid")
}
func (a *analysis) StepVsVal(x, y string) float64 {
	return a.DiffVal(groupPrim, primKeys[x], primKeys[y], "getppid")
}
func (a *analysis) StepMeasured(key string) bool {
	g := a.run.group(groupPrim)
	return g != nil && g.Samples[primKeys[key]] != nil
}
func (a *analysis) HookCost() string   { return a.Delta(groupPrim, primEmpty, "getppid") }
func (a *analysis) PrimMeasured() bool { return a.StepMeasured("empty") }
