//go:build bench

package bench

import (
	"strings"
	"testing"
)

// l7Run is a run whose l7 group has "standard + l7" at the given ratios to nothing on redis
// and pipelined redis (12 blocks, every block the same ratio).
func l7Run(redis, redisp float64) *benchRun {
	off, on := map[string][]float64{}, map[string][]float64{}
	for i := 0; i < 12; i++ {
		off["redis-cpu"] = append(off["redis-cpu"], 1000)
		off["redisp-cpu"] = append(off["redisp-cpu"], 100)
		on["redis-cpu"] = append(on["redis-cpu"], 1000*redis)
		on["redisp-cpu"] = append(on["redisp-cpu"], 100*redisp)
	}
	g := &groupResult{Name: groupL7, Members: []string{cfgStandardL7}, FloorOf: map[string]string{}, Samples: blockSamples{"off": off, cfgStandardL7: on}}
	return &benchRun{Groups: []*groupResult{g}}
}

func TestL7Verdict(t *testing.T) {
	for _, c := range []struct {
		redis, redisp float64
		fits          bool
	}{
		{1.015, 1.019, true},
		{1.02, 1.0, true}, // the budget is ≤ +2 %
		{1.025, 1.0, false},
		{1.0, 1.03, false}, // pipelined counts too
	} {
		fits, judged := l7Run(c.redis, c.redisp).l7Verdict()
		if !judged || fits != c.fits {
			t.Errorf("redis ×%.3f, pipelined ×%.3f: fits %v judged %v, want fits %v", c.redis, c.redisp, fits, judged, c.fits)
		}
	}
	if _, judged := (&benchRun{}).l7Verdict(); judged {
		t.Error("a run without the l7 group is judged")
	}
	// The section says it in words, with the numbers of the run.
	w := &mdWriter{}
	renderL7(w, l7Run(1.03, 1.0))
	if s := w.b.String(); !strings.Contains(s, "**l7 does not fit the standard profile's budget**") || !strings.Contains(s, "+3.0 %") {
		t.Errorf("section:\n%s", s)
	}
}

func TestL7Exact(t *testing.T) {
	ok := []l7Check{{Want: 5, Got: 5}, {Want: 7, Got: 7}}
	if !l7Exact(ok) {
		t.Error("exact counts not exact")
	}
	if l7Exact(nil) || l7Exact([]l7Check{{Want: 5, Got: 4}}) || l7Exact([]l7Check{{Want: 0, Got: 0, Error: "load failed"}}) {
		t.Error("no check, a miscount or an error counted as exact")
	}
}
