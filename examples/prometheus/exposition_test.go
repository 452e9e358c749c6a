package prometheus_test

import (
	"io"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/kpod-project/kpod/internal/promtext"
)

// A scrape in the Prometheus text exposition format, as kpod's collector writes it and the
// snapshot files hold, read with the Prometheus client libraries' parser (promtext, expfmt).
// Used by the snapshot generator (snapshot_test.go) and by the checks of the dashboard and
// rules (queries_test.go).

// sample is one sample line.
type sample = promtext.Sample

// exposition is a parsed scrape: its metric families (HELP, TYPE and metrics) and every
// sample line.
type exposition struct {
	Families []*dto.MetricFamily // in name order, the order the exporter writes them in
	Types    map[string]string   // family name -> counter, gauge, histogram, ...
	Samples  []sample            // family by family
}

func parseExposition(r io.Reader) (*exposition, error) {
	fams, err := promtext.Families(r)
	if err != nil {
		return nil, err
	}
	e := &exposition{Families: fams, Types: map[string]string{}}
	for _, mf := range fams {
		e.Types[mf.GetName()] = strings.ToLower(mf.GetType().String())
		e.Samples = append(e.Samples, promtext.Samples(mf)...)
	}
	return e, nil
}

// familyOf maps a sample name to its family: a histogram's _bucket/_sum/_count series
// belong to the histogram.
func (e *exposition) familyOf(name string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok && e.Types[base] == "histogram" {
			return base
		}
	}
	return name
}

// names is the set of sample names (with _bucket/_sum/_count for histograms).
func (e *exposition) names() map[string]bool {
	out := map[string]bool{}
	for _, s := range e.Samples {
		out[s.Name] = true
	}
	return out
}

// seriesKey identifies a series in PromQL's notation (promtool's input series): its name and
// its labels, sorted, with quoted values.
func seriesKey(s sample) string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(s.Name)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(s.Labels[k]))
	}
	if len(keys) > 0 {
		b.WriteByte('}')
	}
	return b.String()
}
