package prometheus_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// The Prometheus text exposition format (version 0.0.4), as much of it as kpod's collector
// writes and the snapshot files hold. Used by the snapshot generator (snapshot_test.go) and
// by the checks of the dashboard and rules (queries_test.go).

// sample is one sample line. Value is kept as written (e.g. "+Inf", "1.5e-05"), so that a
// rewritten file carries exactly the values the exporter produced.
type sample struct {
	Name   string
	Labels map[string]string
	Value  string
}

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
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
				addFamily(f[2])
				e.Comments[f[2]] = append(e.Comments[f[2]], line)
				if f[1] == "TYPE" && len(f) >= 4 {
					e.Types[f[2]] = f[3]
				}
			}
			continue // other comments (the snapshot's header) carry no data
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %q", n, err, line)
		}
		addFamily(e.familyOf(s.Name))
		e.Samples = append(e.Samples, s)
	}
	return e, sc.Err()
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

func parseSample(line string) (sample, error) {
	s := sample{Labels: map[string]string{}}
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	s.Name = line[:i]
	if s.Name == "" {
		return s, errors.New("no metric name")
	}
	if i < len(line) && line[i] == '{' {
		i++
		for {
			for i < len(line) && (line[i] == ' ' || line[i] == ',') {
				i++
			}
			if i >= len(line) {
				return s, errors.New("unterminated label set")
			}
			if line[i] == '}' {
				i++
				break
			}
			eq := strings.IndexByte(line[i:], '=')
			if eq < 0 {
				return s, errors.New("label without '='")
			}
			name := strings.TrimSpace(line[i : i+eq])
			i += eq + 1
			if i >= len(line) || line[i] != '"' {
				return s, fmt.Errorf("label %s: value is not quoted", name)
			}
			i++
			var v strings.Builder
			closed := false
			for i < len(line) {
				c := line[i]
				i++
				if c == '"' {
					closed = true
					break
				}
				if c == '\\' && i < len(line) {
					switch e := line[i]; e {
					case 'n':
						v.WriteByte('\n')
					default: // \\ and \"
						v.WriteByte(e)
					}
					i++
					continue
				}
				v.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("label %s: unterminated value", name)
			}
			s.Labels[name] = v.String()
		}
	}
	fields := strings.Fields(line[i:])
	if len(fields) < 1 || len(fields) > 2 {
		return s, errors.New("want a value and an optional timestamp")
	}
	s.Value = fields[0]
	return s, nil
}

// escapeLabel escapes a label value for the text format.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// labelString renders {a="x",b="y"} with the labels sorted by name ("" without labels).
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%s="%s"`, k, escapeLabel(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// seriesKey identifies a series: its name and label set.
func (s sample) seriesKey() string { return s.Name + labelString(s.Labels) }
