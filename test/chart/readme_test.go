//go:build chart

package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// seedSettings are every Helm value and kpod.* property of the product kpod replaces (its
// README: "Helm Values", "Key Properties", "OTLP Export", "Per-Collector Intervals",
// "Grafana Dashboard", "Prometheus Operator").
var seedSettings = []string{
	"image.repository", "image.tag", "resources", "config.profile", "config.pollInterval",
	"config.discovery.mode", "config.discovery.kubeletPollInterval", "config.cgroup.root",
	"config.cgroup.procRoot", "config.collectorIntervals.<name>", "config.collectors.<name>",
	"grafana.dashboard.enabled", "grafana.dashboard.label", "serviceMonitor.enabled",
	"prometheusRule.enabled", "otlp.enabled", "otlp.endpoint", "otlp.headers", "otlp.step",
	"kpod.profile", "kpod.poll-interval", "kpod.collection-timeout", "kpod.initial-delay",
	"kpod.node-name", "kpod.cluster-name", "kpod.discovery.mode", "kpod.filter.namespaces",
	"kpod.filter.exclude-namespaces", "kpod.filter.label-selector", "kpod.filter.include-labels",
	"kpod.bpf.enabled", "kpod.otlp.enabled", "kpod.otlp.endpoint", "kpod.otlp.headers",
	"kpod.otlp.step", "kpod.bpf.program-dir", "kpod.syscall.tracked-syscalls",
}

// section returns the README's text from the heading to the next heading of the same level.
func section(t *testing.T, readme, heading string) string {
	t.Helper()
	i := strings.Index(readme, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	rest := readme[i+len(heading)+2:]
	level := heading[:strings.Index(heading, " ")+1]
	if j := strings.Index(rest, "\n"+level); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// tableRows returns the cells of a section's table rows (header and rule excluded).
func tableRows(text string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) > 0 {
		rows = rows[1:] // the header
	}
	return rows
}

var code = regexp.MustCompile("`([^`]+)`")

// valuePath reports whether a dotted path (a trailing ": value" is dropped) exists in the
// chart's values.yaml; receiver.* paths are the receiver's keys, which pass through, and must
// be keys of the README's Configuration table.
func valuePath(t *testing.T, values map[string]any, configKeys map[string]bool, p string) bool {
	p, _, _ = strings.Cut(p, ":")
	p = strings.TrimSpace(p)
	if rest, ok := strings.CutPrefix(p, "receiver."); ok {
		return configKeys[rest] || configKeys[strings.Split(rest, ".")[0]]
	}
	var v any = values
	for _, k := range strings.Split(p, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

// TestReadme: the README's chart values and its table for users of kpod-metrics name values
// the chart has, and the table covers every setting of the seed.
func TestReadme(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var values map[string]any
	vb, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	configKeys := map[string]bool{}
	for _, row := range tableRows(section(t, readme, "## Configuration")) {
		for _, m := range code.FindAllStringSubmatch(row[0], -1) {
			configKeys[m[1]] = true
		}
	}
	if !configKeys["profile"] || !configKeys["collectors.<name>.interval"] {
		t.Fatalf("README Configuration table not found or changed: %v", configKeys)
	}
	configKeys["collectors.<name>.enabled: false"] = true

	helm := section(t, readme, "## Install with Helm")
	compat := section(t, readme, "### Coming from kpod-metrics")
	helm, _, _ = strings.Cut(helm, "\n### Coming from kpod-metrics")

	// The values table: every value named in the first column is a value of the chart.
	n := 0
	for _, row := range tableRows(helm) {
		if len(row) != 3 {
			continue
		}
		first := row[0]
		var last string
		for _, m := range code.FindAllStringSubmatch(first, -1) {
			p := m[1]
			if strings.HasPrefix(p, ".") { // `.port` after `prometheus.enabled`
				p = last[:strings.LastIndex(last, ".")] + p
			}
			last = p
			n++
			if !valuePath(t, values, configKeys, p) {
				t.Errorf("README values table names %q, which charts/kpod/values.yaml does not have", p)
			}
		}
	}
	if n < 20 {
		t.Errorf("README values table: only %d values found", n)
	}

	// The kpod-metrics table covers every seed setting, and its kpod column names values the
	// chart has.
	rows := tableRows(compat)
	var firstCol strings.Builder
	for _, row := range rows {
		if len(row) != 3 {
			t.Errorf("kpod-metrics table row with %d cells: %v", len(row), row)
			continue
		}
		firstCol.WriteString(row[0] + "\n")
		for _, m := range code.FindAllStringSubmatch(row[1], -1) {
			if !valuePath(t, values, configKeys, m[1]) {
				t.Errorf("kpod-metrics table maps %s to %q, which is not a value of the chart", row[0], m[1])
			}
		}
	}
	for _, s := range seedSettings {
		if !strings.Contains(firstCol.String(), "`"+s) {
			t.Errorf("kpod-metrics table has no row for the seed's %s", s)
		}
	}
}
