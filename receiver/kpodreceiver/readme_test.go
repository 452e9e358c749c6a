package kpodreceiver

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// TestREADMEMatchesCatalog keeps the README's profile table, metric tables and series counts
// equal to the implementation.
func TestREADMEMatchesCatalog(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9]+)` \\| (.*) \\| (yes|-) \\| (yes|-) \\| (yes|-) \\|$")
	rows := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(readme, -1) {
		rows[m[1]] = m[2:]
	}
	for _, f := range catalog {
		r, ok := rows[f.name]
		if !ok {
			t.Errorf("README profile table has no row for collector %s", f.name)
			continue
		}
		for i, p := range []string{ProfileMinimal, ProfileStandard, ProfileComprehensive} {
			if want := slices.Contains(f.profiles, p); (r[i+1] == "yes") != want {
				t.Errorf("README says %s is %q in %s; the catalog says %v", f.name, r[i+1], p, want)
			}
		}
		for _, m := range f.metrics {
			if !strings.Contains(r[0], "`"+m+"`") && !strings.HasPrefix(m, "kpod.net.iface.") {
				t.Errorf("README profile row of %s does not list %s", f.name, m)
			}
		}
	}
	// Every metric kpod can emit is documented with its Prometheus name.
	var all []string
	for _, h := range metadata.Histograms {
		all = append(all, h.Name)
	}
	for _, m := range generatedMetricNames(t) {
		all = append(all, m)
	}
	for _, m := range all {
		if !strings.Contains(readme, "`"+m+"`") && !strings.Contains(readme, "`"+ifaceGroup(m)+"`") {
			t.Errorf("README does not document %s", m)
		}
	}
	for p, n := range idleSeries {
		if !regexp.MustCompile("\\| " + p + " \\| \\*\\*" + strconv.Itoa(n) + "\\*\\*").MatchString(readme) {
			t.Errorf("README does not give %d series per idle container for %s", n, p)
		}
	}
}

// ifaceGroup abbreviates kpod.net.iface.rx.bytes as the README does: kpod.net.iface.{rx,tx}.bytes.
func ifaceGroup(m string) string {
	for _, d := range []string{"rx", "tx"} {
		if rest, ok := strings.CutPrefix(m, "kpod.net.iface."+d+"."); ok {
			return "kpod.net.iface.{rx,tx}." + rest
		}
	}
	return m
}

// generatedMetricNames reads the metric names of metadata.yaml.
func generatedMetricNames(t *testing.T) []string {
	b, err := os.ReadFile("metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, metrics, _ := strings.Cut(string(b), "\nmetrics:\n")
	var out []string
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "  kpod.") && strings.HasSuffix(line, ":") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(line), ":"))
		}
	}
	if len(out) < 40 {
		t.Fatalf("read only %d metrics from metadata.yaml", len(out))
	}
	return out
}
