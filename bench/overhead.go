//go:build bench

package bench

import (
	"fmt"
	"math/rand"
	"os"
	"sort"
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
}

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

// progDesc describes an attached program.
type progDesc struct {
	Name string
	Type string
}

// configResult is everything measured for one config.
type configResult struct {
	Name, Kind, Family string
	Error              string
	AttachSec          []float64
	Programs           []progDesc
	Maps               []mapInfo
	MapMemlock         uint64
	Samples            map[string][]float64 // ns/op per round
	Ratios             map[string][]float64 // ns/op ÷ mean of the bracketing baselines, per round
	OtherProgs         []int                // BPF programs loaded by others on the host during each sample
}

type overheadResult struct {
	Rounds    int
	Configs   []*configResult
	Baselines []sample
	Took      time.Duration
}

func (o *overheadResult) byName(n string) *configResult {
	for _, c := range o.Configs {
		if c.Name == n {
			return c
		}
	}
	return nil
}

// runOverhead runs interleaved A/B rounds. In every round the configs run in a new random
// order, each followed at once by a baseline (nothing attached): B A B A ... with a baseline
// first. A config's sample is divided by the mean of the two baselines right before and
// right after it. This machine's speed drifts by tens of percent within seconds (steal time
// of the VM's host; see README.md), so only samples taken close together are compared.
func runOverhead(s *suite, configs []*config, rounds int, names []string, rng *rand.Rand) (*overheadResult, error) {
	start := time.Now()
	res := &overheadResult{Rounds: rounds}
	byName := map[string]*configResult{}
	for _, c := range configs {
		r := &configResult{Name: c.Name, Kind: c.Kind, Family: c.Family, Samples: map[string][]float64{}, Ratios: map[string][]float64{}}
		byName[c.Name] = r
		res.Configs = append(res.Configs, r)
	}
	baseline := func() (sample, error) {
		smp, _, err := s.run(names...)
		if err == nil {
			res.Baselines = append(res.Baselines, smp)
		}
		return smp, err
	}
	for round := 0; round < rounds; round++ {
		t0 := time.Now()
		before, err := baseline()
		if err != nil {
			return nil, err
		}
		for _, idx := range rng.Perm(len(configs)) {
			c, r := configs[idx], byName[configs[idx].Name]
			if r.Error != "" {
				continue
			}
			a, err := c.attach()
			if err != nil {
				r.Error = err.Error()
				logf("%s: %s", c.Name, firstLines(err.Error(), 3))
				continue
			}
			r.AttachSec = append(r.AttachSec, a.took.Seconds())
			if r.Programs == nil && c.Kind != kindNone {
				r.Programs, r.Maps, r.MapMemlock = describe(a)
			}
			other := countPrograms() - len(a.progs)
			smp, _, err := s.run(names...)
			a.detach()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			after, err := baseline()
			if err != nil {
				return nil, err
			}
			r.OtherProgs = append(r.OtherProgs, other)
			for _, b := range names {
				r.Samples[b] = append(r.Samples[b], smp[b])
				r.Ratios[b] = append(r.Ratios[b], smp[b]/((before[b]+after[b])/2))
			}
			before = after
		}
		logf("overhead round %d/%d took %v", round+1, rounds, time.Since(t0).Round(time.Second))
	}
	res.Took = time.Since(start)
	return res, nil
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

// focusResult is the A/B of the budgeted profiles on the budgeted benchmarks (redis,
// ping-pong) plus the A/A control, with more rounds than the matrix.
type focusResult struct {
	Rounds   int
	Requests int
	Names    []string
	Configs  []*configResult
	Base     []sample
}

func runFocus(s *suite, configs []*config, names []string, rounds int, rng *rand.Rand) (*focusResult, error) {
	res := &focusResult{Rounds: rounds, Requests: s.redisN, Names: names}
	byName := map[string]*configResult{}
	for _, c := range configs {
		r := &configResult{Name: c.Name, Kind: c.Kind, Samples: map[string][]float64{}, Ratios: map[string][]float64{}}
		byName[c.Name] = r
		res.Configs = append(res.Configs, r)
	}
	base := func() (sample, error) {
		smp, _, err := s.run(names...)
		if err == nil {
			res.Base = append(res.Base, smp)
		}
		return smp, err
	}
	before, err := base()
	if err != nil {
		return nil, err
	}
	for round := 0; round < rounds; round++ {
		for _, idx := range rng.Perm(len(configs)) {
			c, r := configs[idx], byName[configs[idx].Name]
			a, err := c.attach()
			if err != nil {
				r.Error = err.Error()
				continue
			}
			smp, _, err := s.run(names...)
			a.detach()
			if err != nil {
				return nil, err
			}
			after, err := base()
			if err != nil {
				return nil, err
			}
			for _, b := range names {
				r.Samples[b] = append(r.Samples[b], smp[b])
				r.Ratios[b] = append(r.Ratios[b], smp[b]/((before[b]+after[b])/2))
			}
			before = after
		}
	}
	logf("budget focus: %d rounds done", rounds)
	return res, nil
}

// statBenches are the runs of the statistics pass ("redis" is SET and GET together).
var statBenches = []string{"redis", "pingpong", "getppid", "tcp", "forkexec", "dread"}

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

// runStats attaches each config with BPF run-time statistics enabled and runs every
// benchmark once, reading each program's run count and run time before and after. The
// programs also run for the rest of the host (other engineers' builds): a one-second idle
// window before the benchmarks gives each program's background rate, subtracted pro rata.
func runStats(s *suite, configs []*config) []*statsResult {
	var out []*statsResult
	for _, c := range configs {
		r := &statsResult{Name: c.Name, Kind: c.Kind, Family: c.Family, Ops: map[string]float64{}, Progs: map[string]map[string]progStat{}}
		out = append(out, r)
		a, err := c.attach()
		if err != nil {
			r.Error = err.Error()
			logf("stats %s: %s", c.Name, firstLines(err.Error(), 3))
			continue
		}
		p0, t0 := a.objects(), time.Now()
		time.Sleep(time.Second)
		p1, idle := a.objects(), time.Since(t0)
		bgRuns, bgTime := map[uint32]float64{}, map[uint32]float64{}
		for id, p := range p1 {
			bgRuns[id] = float64(p.RunCnt-p0[id].RunCnt) / idle.Seconds()
			bgTime[id] = float64(p.RunTimeNs-p0[id].RunTimeNs) / idle.Seconds()
		}
		for _, b := range statBenches {
			run := []string{b}
			if b == "redis" {
				run = []string{"redis-set"}
			}
			before, t := a.objects(), time.Now()
			if _, _, err := s.run(run...); err != nil {
				r.Error = err.Error()
				break
			}
			after, dt := a.objects(), time.Since(t).Seconds()
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
		a.detach()
		logf("stats %s done", c.Name)
	}
	return out
}
