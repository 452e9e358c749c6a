package prometheus_test

import (
	"io"
	"strings"

	"github.com/kpod-project/kpod/internal/promtext"
)

// The Prometheus text exposition format (version 0.0.4), as much of it as kpod's collector
// writes and the snapshot files hold. Used by the snapshot generator (snapshot_test.go) and
// by the checks of the dashboard and rules (queries_test.go).

// sample is one sample line (promtext: Text is the value as written, so that a rewritten file
// carries exactly the values the exporter produced).
type sample = promtext.Sample

// exposition is a parsed scrape: the HELP/TYPE lines of each metric family, and the samples
// in their original order.
type exposition struct {
	Comments map[string][]string // family name -> its "# HELP" / "# TYPE" lines
	Types    map[string]string   // family name -> counter, gauge, histogram, ...
	Families []string            // family names in order of appearance
	Samples  []sample
}

func parseExposition(r io.Reader) (*exposition, error) {
	e := &exposition{Comments: map[string][]string{}, Types: map[string]string{}}
	seen := map[string]bool{}
	addFamily := func(f string) {
		if !seen[f] {
			seen[f] = true
			e.Families = append(e.Families, f)
		}
	}
	err := promtext.Lines(r, func(l promtext.Line) error {
		if l.Comment == "" {
			addFamily(e.familyOf(l.Sample.Name))
			e.Samples = append(e.Samples, l.Sample)
			return nil
		}
		f := strings.Fields(l.Comment)
		if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
			addFamily(f[2])
			e.Comments[f[2]] = append(e.Comments[f[2]], l.Comment)
			if f[1] == "TYPE" && len(f) >= 4 {
				e.Types[f[2]] = f[3]
			}
		}
		return nil // other comments (the snapshot's header) carry no data
	})
	if err != nil {
		return nil, err
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

// seriesKey identifies a series: its name and label set.
func seriesKey(s sample) string { return s.Name + promtext.LabelString(s.Labels) }
