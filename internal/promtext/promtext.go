// Package promtext reads the Prometheus text exposition format (version 0.0.4) as
// otelcol-kpod's prometheus exporter writes it: the tests that scrape its endpoint (test/e2e,
// test/e2ecluster) and the committed scrape snapshots (examples/prometheus) share it.
package promtext

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Sample is one sample line. Text is the value as written ("+Inf", "1.5e-05"), so that a
// rewritten file carries exactly what the exporter produced; Value is it parsed.
type Sample struct {
	Name   string
	Labels map[string]string
	Text   string
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

// Line is one non-empty line of an exposition: a comment (Comment set) or a sample.
type Line struct {
	N       int    // line number, from 1
	Comment string // the whole line, for "#" lines
	Sample  Sample
}

// Lines parses r line by line and calls f for each comment and sample; a malformed sample
// line is an error naming its line number.
func Lines(r io.Reader, f func(Line) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		l := Line{N: n}
		if strings.HasPrefix(line, "#") {
			l.Comment = line
		} else {
			s, err := ParseSample(line)
			if err != nil {
				return fmt.Errorf("line %d: %v: %q", n, err, line)
			}
			l.Sample = s
		}
		if err := f(l); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Parse returns the samples of r in their order; comments are skipped.
func Parse(r io.Reader) ([]Sample, error) {
	var out []Sample
	err := Lines(r, func(l Line) error {
		if l.Comment == "" {
			out = append(out, l.Sample)
		}
		return nil
	})
	return out, err
}

// ParseSample parses `name[{label="value",...}] value [timestamp]`.
func ParseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
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
	f := strings.Fields(line[i:])
	if len(f) < 1 || len(f) > 2 {
		return s, errors.New("want a value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, fmt.Errorf("value: %v", err)
	}
	s.Text, s.Value = f[0], v
	return s, nil
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

// EscapeLabel escapes a label value for the text format.
func EscapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// LabelString renders {a="x",b="y"} with the labels sorted by name ("" without labels).
func LabelString(labels map[string]string) string {
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
		fmt.Fprintf(&b, `%s="%s"`, k, EscapeLabel(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
