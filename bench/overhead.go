//go:build bench

package bench

import (
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"time"
)

const (
	kindNone     = "none"
	kindFamily   = "kpod family"
	kindProfile  = "kpod profile"
	kindVariant  = "kpod variant"
	kindBpftrace = "bpftrace"
	kindLibbpf   = "libbpf-tools"
)

// isKpod: the config runs kpod programs (and so gets a floor).
func isKpod(kind string) bool {
	return kind == kindFamily || kind == kindProfile || kind == kindVariant
}

// config is one thing attached while the benchmarks run: nothing, kpod (one family or a
// profile, through the receiver; or a variant, through the family loader), or a peer tool.
type config struct {
	Name   string
	Kind   string
	Family string // the kpod family (or the family a peer is the equivalent of)
	kpod   *kpodOptions
	peer   *peerTool
	load   func() (io.Closer, error) // a kpod variant (variants.go)
	// streaming: the tool sends every event to its userspace, so it cannot be adopted (see
	// adopt.go) and is started and stopped around samples instead.
	streaming bool
	noStats   bool   // left out of the statistics pass (its programs are those of configs in it)
	windows   uint32 // a syscall variant's latency sample: its enter hook runs in windows
}

// windowed is the latency sample of the windows in c and the families that run them, 0 if
// none.
func (c *config) windowed() (uint32, []string) {
	if c.kpod != nil {
		return c.kpod.windowed()
	}
	if c.windows > 0 {
		return c.windows, []string{"syscall"}
	}
	return 0, nil
}

// attached is a config started the ordinary way: the receiver started in this process, a
// variant loaded, or the tool running.
type attached struct {
	c      *config
	k      *kpodRun
	p      *peerProc
	v      io.Closer
	took   time.Duration
	progs  map[uint32]progInfo
	maps   map[uint32]mapInfo
	objPID int
}

func (c *config) attach() (*attached, error) {
	a := &attached{c: c, objPID: os.Getpid()}
	// kpod runs in this process, which also holds the programs and maps of the configs
	// adopted before: only what appears now is this config's.
	oldProgs, oldMaps, _ := bpfObjects(a.objPID)
	t0 := time.Now()
	var err error
	switch {
	case c.kpod != nil:
		a.k, err = startKpod(*c.kpod)
	case c.load != nil:
		a.v, err = c.load()
	case c.peer != nil:
		a.p, err = c.peer.start()
		if a.p != nil {
			a.objPID = a.p.pid()
		}
	}
	if err != nil {
		return nil, err
	}
	a.took = time.Since(t0)
	if c.Kind != kindNone {
		a.progs, a.maps, err = bpfObjects(a.objPID)
		if a.objPID == os.Getpid() {
			for id := range oldProgs {
				delete(a.progs, id)
			}
			for id := range oldMaps {
				delete(a.maps, id)
			}
		}
		if err == nil && len(a.progs) == 0 {
			err = fmt.Errorf("%s attached no BPF program", c.Name)
		}
		if err != nil {
			a.detach()
			return nil, err
		}
	}
	return a, nil
}

// objects reads the current state (run counters) of the config's programs.
func (a *attached) objects() map[uint32]progInfo {
	if a.c.Kind == kindNone {
		return nil
	}
	p, _, _ := bpfObjects(a.objPID)
	for id := range p {
		if _, mine := a.progs[id]; !mine {
			delete(p, id)
		}
	}
	return p
}

func (a *attached) detach() {
	if a.k != nil {
		if err := a.k.stop(); err != nil {
			logf("%s: stopping kpod: %v", a.c.Name, err)
		}
	}
	if a.v != nil {
		if err := a.v.Close(); err != nil {
			logf("%s: closing: %v", a.c.Name, err)
		}
	}
	if a.p != nil {
		a.p.stop()
	}
}

// toggle switches a config's BPF programs on and off between samples.
type toggle interface {
	on() error
	off()
}

// restarted is the toggle of a streaming tool: on starts it, off stops it.
type restarted struct {
	c *config
	a *attached
}

func (t *restarted) on() (err error) { t.a, err = t.c.attach(); return err }
func (t *restarted) off() {
	if t.a != nil {
		t.a.detach()
		t.a = nil
	}
}

// control is the A/A control: on and off do nothing.
type control struct{}

func (control) on() error { return nil }
func (control) off()      {}

// entry is a config with its toggle, its floor and its results.
type entry struct {
	cfg      *config
	t        toggle
	ad       *adopted   // when adopted
	floor    *adopted   // kpod configs: empty programs on the same hooks (floor.go)
	counters []*adopted // the profiles: per-cgroup counters on the same hooks (floor.go)
	res      *configResult
}

// grouped: switching the config (or its floor) on and off is slow (perf-event tracepoints
// wait for RCU grace periods when detached; streaming tools are restarted), so a block
// attaches each variant once for all of its benchmarks instead of once per benchmark.
func (e *entry) grouped() bool {
	_, slow := e.t.(*restarted)
	return slow || e.res.ToggleMs > slowToggleMs || e.res.FloorToggleMs > slowToggleMs
}

// slowToggleMs: on+off above this makes an entry's blocks grouped (tp_btf and raw_tp links
// take about a millisecond here; one perf-event tracepoint 30-50 ms).
const slowToggleMs = 20

// configResult is everything measured for one config.
type configResult struct {
	Name, Kind, Family string
	Method             string // adopted, restarted, control
	Error              string
	LoadSec            float64 // how long the receiver or the tool took to load and attach
	Hooks              []hookRef
	Programs           []progDesc
	Maps               []mapInfo
	MapMemlock         uint64
	ToggleMs           float64 // one on + off of the adopted programs
	FloorToggleMs      float64
	FloorError         string
	CounterError       string   // the profiles' counters that could not be built
	Benches            []string // the pair units it was measured on (see relevantBenches)
	Grouped            bool     // all of them per attachment (see entry.grouped)
	// Samples, ns/op, aligned by index: with the config on, with nothing attached, and (kpod
	// configs) with the floor on, taken in one block in random order.
	On, Off, Floor map[string][]float64
	Foreign        []map[string]int // other processes' BPF hooks, sampled before each round's blocks
}

type progDesc struct {
	Name string
	Type string
}

func (r *configResult) ratios(b string) []float64 {
	var out []float64
	for i := range r.On[b] {
		out = append(out, r.On[b][i]/r.Off[b][i])
	}
	return out
}

func (r *configResult) deltas(b string) []float64 {
	var out []float64
	for i := range r.On[b] {
		out = append(out, r.On[b][i]-r.Off[b][i])
	}
	return out
}

// floorView is the floor's samples as a result of their own (floor on vs off).
func (r *configResult) floorView() *configResult {
	if r == nil || len(r.Floor) == 0 {
		return nil
	}
	return &configResult{Name: "floor of " + r.Name, Kind: r.Kind, Family: r.Family, On: r.Floor, Off: r.Off}
}

func newResult(c *config) *configResult {
	return &configResult{Name: c.Name, Kind: c.Kind, Family: c.Family, On: map[string][]float64{}, Off: map[string][]float64{}, Floor: map[string][]float64{}}
}

// timeToggle switches t on and off once and returns how long that took, in ms.
func timeToggle(t toggle) (float64, error) {
	t0 := time.Now()
	if err := t.on(); err != nil {
		return 0, err
	}
	t.off()
	return float64(time.Since(t0).Microseconds()) / 1000, nil
}

// prepare builds the toggle of every config: the A/A control, adopted programs (kpod configs
// with their floor), or a restarted streaming tool (started once here to describe its
// programs and maps).
func prepare(configs []*config) []*entry {
	var out []*entry
	for _, c := range configs {
		e := &entry{cfg: c, res: newResult(c)}
		out = append(out, e)
		switch {
		case c.Kind == kindNone:
			e.t, e.res.Method = control{}, "control"
		case c.streaming:
			e.res.Method = "restarted"
			a, err := c.attach()
			if err != nil {
				e.res.Error = err.Error()
				break
			}
			e.res.LoadSec = a.took.Seconds()
			e.res.Programs, e.res.Maps, e.res.MapMemlock = describe(a)
			e.res.Hooks, _ = hooksOf(a.objPID)
			a.detach()
			e.t = &restarted{c: c}
		default:
			e.res.Method = "adopted"
			ad, a, err := adopt(c)
			if err != nil {
				e.res.Error = err.Error()
				logf("%s: %s", c.Name, firstLines(err.Error(), 3))
				break
			}
			e.res.LoadSec = a.took.Seconds()
			e.res.Programs, e.res.Maps, e.res.MapMemlock = describe(a)
			e.res.Hooks = ad.Hooks
			e.ad, e.t = ad, ad
			if e.res.ToggleMs, err = timeToggle(ad); err != nil {
				e.res.Error = err.Error()
				logf("%s: %s", c.Name, firstLines(err.Error(), 3))
				break
			}
			if isKpod(c.Kind) {
				f, err := newFloor("floor of "+c.Name, ad, noCounter)
				if err == nil {
					e.res.FloorToggleMs, err = timeToggle(f)
				}
				if err != nil {
					e.res.FloorError = err.Error()
					logf("%s", firstLines(err.Error(), 3))
					if f != nil {
						f.close()
					}
					break
				}
				e.floor = f
				if c.Kind == kindProfile {
					for _, k := range counterKinds {
						ct, err := newFloor(counterOf(c.Name, k), ad, k)
						if err != nil { // the storage counter needs 6.2: the hash one is measured alone
							e.res.CounterError += err.Error() + "; "
							logf("%s", firstLines(err.Error(), 3))
							continue
						}
						e.counters = append(e.counters, ct)
					}
				}
			}
		}
	}
	return out
}

func describe(a *attached) ([]progDesc, []mapInfo, uint64) {
	var progs []progDesc
	for _, p := range a.progs {
		progs = append(progs, progDesc{Name: p.Name, Type: p.Type})
	}
	sort.Slice(progs, func(i, j int) bool { return progs[i].Name < progs[j].Name })
	var maps []mapInfo
	for _, m := range a.maps {
		maps = append(maps, m)
	}
	sort.Slice(maps, func(i, j int) bool { return maps[i].Name < maps[j].Name })
	return progs, maps, sumMemlock(a.maps)
}

// pairBenches are the units of a pair: "redis" runs SET, GET and records CPU per request.
var pairBenches = []string{"redis", "pingpong", "getppid", "tcp", "forkexec", "dread", "vdread", "bufwrite", "tcprst"}

func runNames(b string) []string {
	if b == "redis" || b == "redisp" {
		return []string{b + "-set"} // fills <b>-set, <b>-get and <b>-cpu
	}
	return []string{b}
}

// variant is one thing a block attaches: a config, its floor, another config.
type variant struct {
	name string
	t    toggle
}

// blockSamples holds ns/op by variant name ("off": nothing attached) and benchmark, one
// sample per block, aligned by index.
type blockSamples map[string]map[string][]float64

func (bs blockSamples) add(name string, smp sample) {
	if bs[name] == nil {
		bs[name] = map[string][]float64{}
	}
	for b, v := range smp {
		bs[name][b] = append(bs[name][b], v)
	}
}

// runBlocks takes blocks: in each, every variant and "off" (nothing attached) is sampled
// once, in a random order (with one variant: on and off alternate which goes first), so
// that each variant's sample has an "off" sample of the same block next to it. Block k
// covers the pair units b with k < n(b). Per-benchmark blocks attach each variant for one
// benchmark at a time (samples of one benchmark milliseconds apart); grouped blocks attach
// each variant once and run all the block's benchmarks (for slow toggles). A block whose
// samples are not all taken is dropped whole.
func runBlocks(s *suite, vs []variant, units []string, n func(string) int, grouped bool, rng *rand.Rand, flip *int, out blockSamples) error {
	maxN := 0
	for _, u := range units {
		maxN = max(maxN, n(u))
	}
	order := func() []int {
		if len(vs) == 1 {
			*flip++
			if *flip%2 == 0 {
				return []int{0, 1}
			}
			return []int{1, 0}
		}
		return rng.Perm(len(vs) + 1)
	}
	// one runs the units with variant i attached (i == len(vs): nothing) into blk.
	one := func(i int, units []string, blk blockSamples) error {
		var names []string
		for _, u := range units {
			names = append(names, runNames(u)...)
		}
		name := "off"
		if i < len(vs) {
			name = vs[i].name
			if err := vs[i].t.on(); err != nil {
				return err
			}
		}
		smp, _, err := s.run(names...)
		if i < len(vs) {
			vs[i].t.off()
		}
		if err != nil {
			return err
		}
		blk.add(name, smp)
		return nil
	}
	for k := 0; k < maxN; k++ {
		var bk []string
		for _, u := range units {
			if k < n(u) {
				bk = append(bk, u)
			}
		}
		blk := blockSamples{}
		if grouped {
			for _, i := range order() {
				if err := one(i, bk, blk); err != nil {
					return err
				}
			}
		} else {
			for _, u := range bk {
				for _, i := range order() {
					if err := one(i, []string{u}, blk); err != nil {
						return err
					}
				}
			}
		}
		for name, m := range blk {
			for b, v := range m {
				if out[name] == nil {
					out[name] = map[string][]float64{}
				}
				out[name][b] = append(out[name][b], v...)
			}
		}
	}
	return nil
}

type matrixResult struct {
	Rounds, MicroPairs, PeerPairs, RedisPairs int
	Configs                                   []*configResult
	Took                                      time.Duration
}

func (m *matrixResult) byName(n string) *configResult {
	if m == nil {
		return nil
	}
	for _, c := range m.Configs {
		if c.Name == n {
			return c
		}
	}
	return nil
}

// relevantBenches sets the pair units each config is measured on: every one for the control
// and the profiles; for a family (and its peers) those where its programs ran at least 0.05
// times per operation in the statistics pass (kpod comprehensive), so that no time goes to
// pairs that can only measure noise.
func relevantBenches(entries []*entry, comp *statsResult, fam map[string]string) {
	for _, e := range entries {
		c := e.cfg
		switch c.Kind {
		case kindNone, kindProfile:
			e.res.Benches = pairBenches
			continue
		case kindVariant:
			continue // measured in the head-to-head groups only
		}
		e.res.Benches = nil
		known := false
		for _, f := range fam {
			known = known || f == c.Family
		}
		if !known { // no statistics of its programs: everywhere
			e.res.Benches = pairBenches
			continue
		}
		for _, b := range pairBenches {
			runs, _, ok := bpfPerOp(comp, b, func(n string) bool { return fam[n] == c.Family })
			if !ok || runs >= 0.05 {
				e.res.Benches = append(e.res.Benches, b)
			}
		}
	}
}

// runMatrix measures every config on its benchmarks: rounds × (microPairs blocks of each
// micro-benchmark for kpod configs, twice as many for the A/A control, peerPairs for the
// peers; redisPairs of redis), configs in a new random order each round. A kpod config's
// block is a triplet: nothing, the config, its floor (6 blocks are the fewest with which the
// sign test can tell the floor from zero).
func runMatrix(s *suite, entries []*entry, rounds, microPairs, peerPairs, redisPairs int, rng *rand.Rand) (*matrixResult, error) {
	start := time.Now()
	res := &matrixResult{Rounds: rounds, MicroPairs: microPairs, PeerPairs: peerPairs, RedisPairs: redisPairs}
	for _, e := range entries {
		if e.cfg.Kind != kindVariant {
			res.Configs = append(res.Configs, e.res)
		}
	}
	flip := 0
	for round := 0; round < rounds; round++ {
		t0 := time.Now()
		for _, idx := range rng.Perm(len(entries)) {
			e := entries[idx]
			if e.t == nil || e.res.Error != "" || len(e.res.Benches) == 0 {
				continue
			}
			e.res.Foreign = append(e.res.Foreign, foreignHooks())
			vs := []variant{{"on", e.t}}
			if e.floor != nil {
				vs = append(vs, variant{"floor", e.floor})
			}
			_, slow := e.t.(*restarted)
			n := func(u string) int {
				k := microPairs
				if e.cfg.peer != nil {
					k = peerPairs
				}
				if u == "redis" {
					k = redisPairs
				}
				switch {
				case e.cfg.Kind == kindNone:
					k *= 2 // the control's spread is what every other config is judged against
				case slow:
					k = max(1, k/2)
				}
				return k
			}
			e.res.Grouped = e.grouped()
			bs := blockSamples{}
			err := runBlocks(s, vs, e.res.Benches, n, e.res.Grouped, rng, &flip, bs)
			for b, v := range bs["off"] {
				e.res.Off[b] = append(e.res.Off[b], v...)
				e.res.On[b] = append(e.res.On[b], bs["on"][b]...)
				e.res.Floor[b] = append(e.res.Floor[b], bs["floor"][b]...)
			}
			if err != nil {
				e.res.Error = err.Error()
				logf("%s: %s", e.cfg.Name, firstLines(err.Error(), 3))
			}
		}
		logf("matrix round %d/%d took %v", round+1, rounds, time.Since(t0).Round(time.Second))
	}
	res.Took = time.Since(start)
	return res, nil
}

// statBenches are the runs of the statistics pass ("redis" is SET and GET together).
// redisp and http are paired in the l7 group only.
var statBenches = append(append([]string(nil), pairBenches...), "redisp", "http", "oomkill")

// progStat is one program's activity during one benchmark run (BPF statistics on).
type progStat struct {
	Runs      float64 // program runs during the benchmark, background rate subtracted
	RunTimeNs float64 // ns spent in the program, background subtracted
	RawRuns   uint64  // runs without the background correction
	RawTimeNs uint64
	Misses    uint64
}

// statsResult holds, per benchmark, what each program of a config did.
type statsResult struct {
	Name, Kind, Family string
	Error              string
	Ops                map[string]float64             // operations per benchmark run
	Progs              map[string]map[string]progStat // benchmark → program name → stats
}

// statsIdle is the window that gives each program's background rate.
const statsIdle = 500 * time.Millisecond

// runStats switches each config on with BPF run-time statistics enabled and runs every
// benchmark once, reading each program's run count and run time before and after. The
// programs also run for the rest of the host (other engineers' builds): half-second idle
// windows before and after the benchmarks give each program's background rate (the lower of
// the two), subtracted pro rata.
func runStats(s *suite, entries []*entry) []*statsResult {
	var out []*statsResult
	for _, e := range entries {
		c := e.cfg
		if e.t == nil || c.Kind == kindNone || e.res.Error != "" {
			continue
		}
		r := &statsResult{Name: c.Name, Kind: c.Kind, Family: c.Family, Ops: map[string]float64{}, Progs: map[string]map[string]progStat{}}
		out = append(out, r)
		var read func() map[uint32]progInfo
		if e.ad != nil {
			if err := e.ad.on(); err != nil {
				r.Error = err.Error()
				continue
			}
			read = e.ad.programs
		} else {
			a, err := c.attach()
			if err != nil {
				r.Error = err.Error()
				logf("stats %s: %s", c.Name, firstLines(err.Error(), 3))
				continue
			}
			read = a.objects
			e.t.(*restarted).a = a
		}
		// The background rate of each program: the lower of an idle window before the
		// benchmarks and one after them (a burst of other load in one window does not make
		// the benchmarks' own runs vanish).
		idleRate := func() (runs, ns map[uint32]float64) {
			p0, t0 := read(), time.Now()
			time.Sleep(statsIdle)
			p1, idle := read(), time.Since(t0).Seconds()
			runs, ns = map[uint32]float64{}, map[uint32]float64{}
			for id, p := range p1 {
				runs[id] = float64(p.RunCnt-p0[id].RunCnt) / idle
				ns[id] = float64(p.RunTimeNs-p0[id].RunTimeNs) / idle
			}
			return runs, ns
		}
		bgRuns, bgTime := idleRate()
		type rawStat struct {
			before, after map[uint32]progInfo
			dt            float64
		}
		raws := map[string]rawStat{}
		for _, b := range statBenches {
			before, t := read(), time.Now()
			if _, _, err := s.run(runNames(b)...); err != nil {
				r.Error = err.Error()
				break
			}
			raws[b] = rawStat{before, read(), time.Since(t).Seconds()}
			r.Ops[b] = s.ops(b)
		}
		postRuns, postTime := idleRate()
		for id := range bgRuns {
			bgRuns[id], bgTime[id] = min(bgRuns[id], postRuns[id]), min(bgTime[id], postTime[id])
		}
		for b, raw := range raws {
			m := map[string]progStat{}
			for id, p := range raw.after {
				q := raw.before[id]
				st := progStat{RawRuns: p.RunCnt - q.RunCnt, RawTimeNs: p.RunTimeNs - q.RunTimeNs, Misses: p.Misses - q.Misses}
				st.Runs = max(0, float64(st.RawRuns)-bgRuns[id]*raw.dt)
				st.RunTimeNs = max(0, float64(st.RawTimeNs)-bgTime[id]*raw.dt)
				prev := m[p.Name] // programs with the same name (bpftrace): add up
				prev.Runs += st.Runs
				prev.RunTimeNs += st.RunTimeNs
				prev.RawRuns += st.RawRuns
				prev.RawTimeNs += st.RawTimeNs
				prev.Misses += st.Misses
				m[p.Name] = prev
			}
			r.Progs[b] = m
		}
		e.t.off()
	}
	logf("BPF statistics pass done")
	return out
}
