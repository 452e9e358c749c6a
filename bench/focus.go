//go:build bench

package bench

import (
	"math/rand"
	"slices"
	"time"
)

// A group is a set of configs compared in the same blocks, on the benchmarks that matter
// for the comparison, with more blocks than the matrix: the budget focus (the profiles on
// redis and ping-pong, against nothing and against their floors), the tcp head-to-head (per
// socket vs per segment) and the syscall alternatives. In every block each member and its
// floor and "off" are sampled once, in a random order.
type groupResult struct {
	Name     string
	Purpose  string
	Units    []string // pair units ("redis" = redis-set, redis-get, redis-cpu)
	Blocks   int      // blocks asked for
	Grouped  bool
	Members  []string          // the configs, in display order
	FloorOf  map[string]string // member → the name of its floor's samples
	Samples  blockSamples      // by config name; a member's counters are counterOf(member, kind)
	Requests int               // redis requests per test
	Error    string
	Took     time.Duration
}

// view is one member's samples as a configResult against "off" (with its floor, if any).
func (g *groupResult) view(member string) *configResult {
	if g == nil || g.Samples[member] == nil {
		return nil
	}
	r := &configResult{Name: member, On: g.Samples[member], Off: g.Samples["off"]}
	if f := g.FloorOf[member]; f != "" {
		r.Floor = g.Samples[f]
	}
	return r
}

// counterView is a member's counter of kind k against "off", with the member's floor (its
// ×floor is what the least per-pod work on those hooks costs); nil if it was not sampled.
func (g *groupResult) counterView(member string, k counterKind) *configResult {
	c := counterOf(member, k)
	if g.Samples[c] == nil {
		return nil
	}
	return &configResult{Name: c, On: g.Samples[c], Off: g.Samples["off"], Floor: g.Samples[g.FloorOf[member]]}
}

// counterOf names a counter of a config.
func counterOf(config string, k counterKind) string {
	switch k {
	case cgrpCounter:
		return "counter in cgroup storage on the hooks of " + config
	case timedCounter:
		return "timed counter in cgroup storage on the hooks of " + config
	case cachedCounter:
		return "cached counter on the hooks of " + config
	}
	return "counter on the hooks of " + config
}

// vsFloor is a member's samples against its floor's (the member's cost above the floor).
func (g *groupResult) vsFloor(member string) *configResult {
	f := g.FloorOf[member]
	if g == nil || f == "" || g.Samples[member] == nil || g.Samples[f] == nil {
		return nil
	}
	return &configResult{Name: member + " − floor", On: g.Samples[member], Off: g.Samples[f]}
}

// groupSpec is a group to run: members by config name; with floors, each member's floor
// is a member too.
type groupSpec struct {
	name, purpose string
	members       []string
	aa            bool // add the A/A control (a second "nothing" sample per block)
	floors        bool
	floorsOf      []string // with floors: only these members' floors (nil: every member's)
	counters      bool     // with floors: the members' counters too (the profiles have them)
	units         []string
	blocks        int
	requests      int
}

const aaName = "none (A/A control)"

func runGroup(s *suite, entries []*entry, g groupSpec, rng *rand.Rand) *groupResult {
	t0 := time.Now()
	res := &groupResult{Name: g.name, Purpose: g.purpose, Units: g.units, Blocks: g.blocks, FloorOf: map[string]string{}, Samples: blockSamples{}, Requests: g.requests}
	byName := map[string]*entry{}
	for _, e := range entries {
		byName[e.cfg.Name] = e
	}
	var vs []variant
	grouped := false
	if g.aa {
		vs = append(vs, variant{aaName, control{}})
		res.Members = append(res.Members, aaName)
	}
	for _, m := range g.members {
		e := byName[m]
		if e == nil || e.t == nil || e.res.Error != "" {
			msg := "not loaded"
			if e != nil && e.res.Error != "" {
				msg = firstLines(e.res.Error, 1)
			}
			res.Error += m + ": " + msg + "; "
			continue
		}
		vs = append(vs, variant{m, e.t})
		res.Members = append(res.Members, m)
		grouped = grouped || e.grouped()
		if g.floors && e.floor != nil && (g.floorsOf == nil || slices.Contains(g.floorsOf, m)) {
			f := "floor of " + m
			vs = append(vs, variant{f, e.floor})
			res.FloorOf[m] = f
			if g.counters {
				for _, c := range e.counters {
					vs = append(vs, variant{c.Name, c})
				}
			}
		}
	}
	res.Grouped = grouped
	if len(vs) == 0 {
		return res
	}
	old := s.redisN
	if g.requests > 0 {
		s.redisN = g.requests
	}
	res.Requests = s.redisN
	flip := 0
	if err := runBlocks(s, vs, g.units, func(string) int { return g.blocks }, grouped, rng, &flip, res.Samples); err != nil {
		res.Error += err.Error()
		logf("%s: %s", g.name, firstLines(err.Error(), 3))
	}
	s.redisN = old
	res.Took = time.Since(t0)
	logf("%s: %d blocks of %d variants in %v", g.name, g.blocks, len(vs)+1, res.Took.Round(time.Second))
	return res
}
