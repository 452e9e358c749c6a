package promtext

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in := `# HELP kpod_x_total x
# TYPE kpod_x_total counter
kpod_x_total{a="1",b="q\"uote\\slash\nnl"} 42
kpod_y 1.5e-05 1700000000000
kpod_h_bucket{le="+Inf"} +Inf
`
	ss, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 3 {
		t.Fatalf("%d samples, want 3", len(ss))
	}
	if s := ss[0]; s.Name != "kpod_x_total" || s.Value != 42 || s.Labels["a"] != "1" || s.Labels["b"] != "q\"uote\\slash\nnl" {
		t.Errorf("first sample: %+v", s)
	}
	if s := ss[1]; s.Text != "1.5e-05" || s.Value != 1.5e-05 || len(s.Labels) != 0 {
		t.Errorf("second sample: %+v", s)
	}
	if s := ss[2]; !math.IsInf(s.Value, 1) || s.Text != "+Inf" {
		t.Errorf("third sample: %+v", s)
	}
	if got := ss[0].Name + LabelString(ss[0].Labels); got != `kpod_x_total{a="1",b="q\"uote\\slash\nnl"}` {
		t.Errorf("LabelString round trip: %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{
		`{a="1"} 1`, `x{a="1" 1`, `x{a=1} 1`, `x{a="1} 1`, `x{a} 1`, `x`, `x 1 2 3`, `x{a="1"} notanumber`,
	} {
		if _, err := Parse(strings.NewReader("ok 1\n" + line + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error naming line 2", line, err)
		}
	}
}
