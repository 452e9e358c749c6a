package promtext

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
)

const exposition = `# a comment that is neither HELP nor TYPE
# HELP kpod_x_total x
# TYPE kpod_x_total counter
kpod_x_total{a="1",b="q\"uote\\slash\nnl"} 42
kpod_x_total{a="2",b=""} 0
# TYPE kpod_h_seconds histogram
kpod_h_seconds_bucket{c="x",le="1e-06"} 1
kpod_h_seconds_bucket{c="x",le="2e-06"} 3
kpod_h_seconds_bucket{c="x",le="+Inf"} 4
kpod_h_seconds_sum{c="x"} 2.5e-06
kpod_h_seconds_count{c="x"} 4
kpod_y 1.5e-05 1700000000000
kpod_z +Inf
`

func TestParse(t *testing.T) {
	ss, err := Parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	// Families in name order, each family's samples as written, a histogram as its lines.
	want := []Sample{
		{"kpod_h_seconds_bucket", map[string]string{"c": "x", "le": "1e-06"}, 1},
		{"kpod_h_seconds_bucket", map[string]string{"c": "x", "le": "2e-06"}, 3},
		{"kpod_h_seconds_bucket", map[string]string{"c": "x", "le": "+Inf"}, 4},
		{"kpod_h_seconds_sum", map[string]string{"c": "x"}, 2.5e-06},
		{"kpod_h_seconds_count", map[string]string{"c": "x"}, 4},
		{"kpod_x_total", map[string]string{"a": "1", "b": "q\"uote\\slash\nnl"}, 42},
		{"kpod_x_total", map[string]string{"a": "2", "b": ""}, 0},
		{"kpod_y", map[string]string{}, 1.5e-05},
		{"kpod_z", map[string]string{}, math.Inf(1)},
	}
	if diff := cmp.Diff(want, ss); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
	if got := Filter(ss, "kpod_x_total", map[string]string{"a": "2"}); len(got) != 1 || got[0].Labels["b"] != "" || got[0].Value != 0 {
		t.Errorf("Filter a=2: %v", got)
	}
	if got := Filter(ss, "kpod_h_seconds_bucket", map[string]string{"c": "x"}); len(got) != 3 {
		t.Errorf("Filter buckets of c=x: %v", got)
	}
	if got := Filter(ss, "kpod_x_total", map[string]string{"a": "3"}); len(got) != 0 {
		t.Errorf("Filter a=3: %v", got)
	}
	if got := ss[5].String(); got != `kpod_x_total{a="1",b="q\"uote\\slash\nnl"} 42` {
		t.Errorf("String: %s", got)
	}
}

// TestReencode: the families, written again with expfmt's encoder (what the exporter uses),
// are the input less its other comments, with a TYPE line for every family (the exporter
// writes one for each): what the snapshot generator relies on to rewrite a scrape without
// changing a value.
func TestReencode(t *testing.T) {
	fams, err := Families(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, mf := range fams {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	want := `# TYPE kpod_h_seconds histogram
kpod_h_seconds_bucket{c="x",le="1e-06"} 1
kpod_h_seconds_bucket{c="x",le="2e-06"} 3
kpod_h_seconds_bucket{c="x",le="+Inf"} 4
kpod_h_seconds_sum{c="x"} 2.5e-06
kpod_h_seconds_count{c="x"} 4
# HELP kpod_x_total x
# TYPE kpod_x_total counter
kpod_x_total{a="1",b="q\"uote\\slash\nnl"} 42
kpod_x_total{a="2",b=""} 0
# TYPE kpod_y untyped
kpod_y 1.5e-05 1700000000000
# TYPE kpod_z untyped
kpod_z +Inf
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("re-encoded (-want +got):\n%s", diff)
	}
}

func TestFormatFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{{0, "0"}, {math.Copysign(0, -1), "0"}, {1, "1"}, {-1, "-1"}, {1e-06, "1e-06"}, {33.554432, "33.554432"},
		{24200, "24200"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"}} {
		if got := FormatFloat(c.f); got != c.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", c.f, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, line := range []string{
		`{a="1"} 1`, `x{a="1" 1`, `x{a=1} 1`, `x{a="1} 1`, `x{a} 1`, `x`, `x 1 2 3`, `x{a="1"} notanumber`,
		`x-y 1`, `# TYPE ok gauge`,
	} {
		if _, err := Parse(strings.NewReader("ok 1\n" + line + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error naming line 2", line, err)
		}
	}
}
