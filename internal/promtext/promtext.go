// Package promtext reads the Prometheus text exposition format as otelcol-kpod's prometheus
// exporter writes it, with the Prometheus client libraries' own parser
// (github.com/prometheus/common/expfmt, the package that exporter writes it with), and gives
// the tests that scrape its endpoint (test/e2e, test/e2ecluster, bench) and read the committed
// scrape snapshots (examples/prometheus) its samples one per line of the format.
package promtext

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one sample line of the format: a counter, gauge or untyped value, or one
// _bucket, _sum or _count line of a histogram (or summary).
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// String renders the sample with its labels sorted, leaving out the otel_scope_* labels every
// kpod series carries (they only make failure messages longer).
func (s Sample) String() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		if !strings.HasPrefix(k, "otel_scope_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, s.Labels[k])
	}
	fmt.Fprintf(&b, "} %g", s.Value)
	return b.String()
}

// Families parses r (text format 0.0.4; comments other than HELP and TYPE are ignored) and
// returns its metric families sorted by name, which is the order the exporter writes them
// in. Metric names must be classic ones ([a-zA-Z_:][a-zA-Z0-9_:]*), as the exporter's are. A
// malformed line is an error naming its line number.
func Families(r io.Reader) ([]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, nil
}

// Parse returns the samples of r, family by family in name order, each family's in the order
// they were written.
func Parse(r io.Reader) ([]Sample, error) {
	fams, err := Families(r)
	if err != nil {
		return nil, err
	}
	var out []Sample
	for _, mf := range fams {
		out = append(out, Samples(mf)...)
	}
	return out, nil
}

// Samples are the sample lines of one family as the text format writes them: a histogram's
// buckets (with the +Inf one), _sum and _count; a summary's quantiles, _sum and _count.
func Samples(mf *dto.MetricFamily) []Sample {
	name := mf.GetName()
	var out []Sample
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		with := func(k, v string) map[string]string {
			l := make(map[string]string, len(labels)+1)
			for lk, lv := range labels {
				l[lk] = lv
			}
			l[k] = v
			return l
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			out = append(out, Sample{name, labels, m.GetCounter().GetValue()})
		case dto.MetricType_GAUGE:
			out = append(out, Sample{name, labels, m.GetGauge().GetValue()})
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			inf := false
			for _, b := range h.GetBucket() {
				inf = inf || math.IsInf(b.GetUpperBound(), +1)
				out = append(out, Sample{name + "_bucket", with(model.BucketLabel, FormatFloat(b.GetUpperBound())), float64(b.GetCumulativeCount())})
			}
			if !inf {
				out = append(out, Sample{name + "_bucket", with(model.BucketLabel, "+Inf"), float64(h.GetSampleCount())})
			}
			out = append(out, Sample{name + "_sum", labels, h.GetSampleSum()}, Sample{name + "_count", labels, float64(h.GetSampleCount())})
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				out = append(out, Sample{name, with(model.QuantileLabel, FormatFloat(q.GetQuantile())), q.GetValue()})
			}
			out = append(out, Sample{name + "_sum", labels, sm.GetSampleSum()}, Sample{name + "_count", labels, float64(sm.GetSampleCount())})
		default:
			out = append(out, Sample{name, labels, m.GetUntyped().GetValue()})
		}
	}
	return out
}

// Filter returns the samples called name whose labels include every label of want.
func Filter(ss []Sample, name string, want map[string]string) []Sample {
	var out []Sample
next:
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		for k, v := range want {
			if s.Labels[k] != v {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// FormatFloat writes a value as the text format does ("+Inf", "1e-06", "0.5").
func FormatFloat(f float64) string {
	switch {
	case f == 0:
		return "0" // also -0
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Fetch GETs a /metrics endpoint once, asking for the text format as Prometheus does, and
// returns the body.
func Fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return raw, nil
}
