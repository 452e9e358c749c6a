//go:build bench

package bench

import (
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"time"
)

const (
	kindNone     = "none"
	kindFamily   = "kpod family"
	kindProfile  = "kpod profile"
	kindBpftrace = "bpftrace"
	kindLibbpf   = "libbpf-tools"
)

// config is one thing attached while the benchmarks run: nothing, kpod (one family or a
// profile, through the receiver), or a peer tool.
type config struct {
	Name   string
	Kind   string
	Family string // the kpod family (or the family a peer is the equivalent of)
	kpod   *kpodOptions
	peer   *peerTool
	// streaming: the tool sends every event to its userspace, so it cannot be adopted (see
	// adopt.go) and is started and stopped around samples instead.
	streaming bool
}

// attached is a config started the ordinary way: the receiver started in this process, or
// the tool running.
type attached struct {
	c      *config
	k      *kpodRun
	p      *peerProc
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

// entry is a config of the matrix with its toggle and results.
type entry struct {
	cfg *config
	t   toggle
	ad  *adopted // when adopted
	res *configResult
}

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
	On, Off            map[string][]float64 // ns/op of each pair's sample with and without
	Foreign            []map[string]int     // other processes' BPF hooks, sampled before each round's pairs
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

func newResult(c *config) *configResult {
	return &configResult{Name: c.Name, Kind: c.Kind, Family: c.Family, On: map[string][]float64{}, Off: map[string][]float64{}}
}

// prepare builds the toggle of every config: the A/A control, adopted programs, or a
// restarted streaming tool (started once here to describe its programs and maps).
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
var pairBenches = []string{"redis", "pingpong", "getppid", "tcp", "forkexec", "dread"}

func runNames(b string) []string {
	if strings.HasPrefix(b, "redis") {
		return []string{"redis-set"} // fills redis-set, redis-get and redis-cpu
	}
	return []string{b}
}

// pairs takes n pairs of samples of the benchmarks in group, one with the config on and one
// off, right after each other; every other pair starts with the "off" sample, so that a
// drift within a pair favours neither side.
func pairs(s *suite, e *entry, group []string, n int, flip *int) error {
	var names []string
	for _, b := range group {
		names = append(names, runNames(b)...)
	}
	for k := 0; k < n; k++ {
		var on, off sample
		var err error
		runOn := func() error {
			if err := e.t.on(); err != nil {
				return err
			}
			on, _, err = s.run(names...)
			e.t.off()
			return err
		}
		if *flip%2 == 0 {
			if err = runOn(); err == nil {
				off, _, err = s.run(names...)
			}
		} else {
			if off, _, err = s.run(names...); err == nil {
				err = runOn()
			}
		}
		*flip++
		if err != nil {
			return err
		}
		for b := range on {
			e.res.On[b] = append(e.res.On[b], on[b])
			e.res.Off[b] = append(e.res.Off[b], off[b])
		}
	}
	return nil
}

type matrixResult struct {
	Rounds, MicroPairs, RedisPairs int
	Configs                        []*configResult
	Took                           time.Duration
}

func (m *matrixResult) byName(n string) *configResult {
	for _, c := range m.Configs {
		if c.Name == n {
			return c
		}
	}
	return nil
}

// runMatrix measures every config on every benchmark: rounds × (microPairs pairs of each
// micro-benchmark, redisPairs pairs of redis), configs in a new random order each round.
// Adopted configs pair each benchmark on its own (on and off samples milliseconds apart);
// restarted ones pair the whole suite (their start and stop take about a second).
func runMatrix(s *suite, entries []*entry, rounds, microPairs, redisPairs int, rng *rand.Rand) (*matrixResult, error) {
	start := time.Now()
	res := &matrixResult{Rounds: rounds, MicroPairs: microPairs, RedisPairs: redisPairs}
	for _, e := range entries {
		res.Configs = append(res.Configs, e.res)
	}
	flip := 0
	for round := 0; round < rounds; round++ {
		t0 := time.Now()
		for _, idx := range rng.Perm(len(entries)) {
			e := entries[idx]
			if e.t == nil || e.res.Error != "" {
				continue
			}
			e.res.Foreign = append(e.res.Foreign, foreignHooks())
			if _, slow := e.t.(*restarted); slow {
				if err := pairs(s, e, pairBenches, max(1, microPairs/2), &flip); err != nil {
					e.res.Error = err.Error()
					logf("%s: %s", e.cfg.Name, firstLines(err.Error(), 3))
				}
				continue
			}
			for _, b := range pairBenches {
				n := microPairs
				if b == "redis" {
					n = redisPairs
				}
				if e.cfg.Kind == kindNone {
					n *= 3 // the control's spread is what every other config is judged against
				}
				if err := pairs(s, e, []string{b}, n, &flip); err != nil {
					e.res.Error = err.Error()
					logf("%s: %s", e.cfg.Name, firstLines(err.Error(), 3))
					break
				}
			}
		}
		logf("matrix round %d/%d took %v", round+1, rounds, time.Since(t0).Round(time.Second))
	}
	res.Took = time.Since(start)
	return res, nil
}

// focusResult is the A/B of the budgeted profiles on the budgeted benchmarks (redis,
// ping-pong) and getppid, plus the A/A control, with more pairs than the matrix.
type focusResult struct {
	Pairs    int
	Requests int
	Configs  []*configResult
}

func runFocus(s *suite, entries []*entry, pairsPerBench int, rng *rand.Rand) *focusResult {
	res := &focusResult{Pairs: pairsPerBench, Requests: s.redisN}
	var es []*entry
	for _, e := range entries {
		fe := &entry{cfg: e.cfg, t: e.t, ad: e.ad, res: newResult(e.cfg)}
		fe.res.Hooks, fe.res.Method = e.res.Hooks, e.res.Method
		es = append(es, fe)
		res.Configs = append(res.Configs, fe.res)
	}
	flip := 0
	for k := 0; k < pairsPerBench; k += 2 {
		for _, idx := range rng.Perm(len(es)) {
			e := es[idx]
			if e.t == nil {
				continue
			}
			for _, b := range []string{"redis", "pingpong", "getppid"} {
				if err := pairs(s, e, []string{b}, 2, &flip); err != nil {
					e.res.Error = err.Error()
				}
			}
		}
	}
	logf("budget focus: %d pairs per benchmark done", pairsPerBench)
	return res
}

// statBenches are the runs of the statistics pass ("redis" is SET and GET together).
var statBenches = pairBenches

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

// runStats switches each config on with BPF run-time statistics enabled and runs every
// benchmark once, reading each program's run count and run time before and after. The
// programs also run for the rest of the host (other engineers' builds): a one-second idle
// window before the benchmarks gives each program's background rate, subtracted pro rata.
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
		p0, t0 := read(), time.Now()
		time.Sleep(time.Second)
		p1, idle := read(), time.Since(t0)
		bgRuns, bgTime := map[uint32]float64{}, map[uint32]float64{}
		for id, p := range p1 {
			bgRuns[id] = float64(p.RunCnt-p0[id].RunCnt) / idle.Seconds()
			bgTime[id] = float64(p.RunTimeNs-p0[id].RunTimeNs) / idle.Seconds()
		}
		for _, b := range statBenches {
			before, t := read(), time.Now()
			if _, _, err := s.run(runNames(b)...); err != nil {
				r.Error = err.Error()
				break
			}
			after, dt := read(), time.Since(t).Seconds()
			r.Ops[b] = s.ops(b)
			m := map[string]progStat{}
			for id, p := range after {
				q := before[id]
				st := progStat{RawRuns: p.RunCnt - q.RunCnt, RawTimeNs: p.RunTimeNs - q.RunTimeNs, Misses: p.Misses - q.Misses}
				st.Runs = max(0, float64(st.RawRuns)-bgRuns[id]*dt)
				st.RunTimeNs = max(0, float64(st.RawTimeNs)-bgTime[id]*dt)
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
