// Command gen writes the deployment files that are derived from other files of the
// repository, so that each rule, dashboard panel and collector setting has one source:
//
//	examples/prometheus/kpod-rules.yaml  ─► examples/kubernetes/prometheusrule.yaml (groups under spec:)
//	                                     ─► charts/kpod/files/kpod-rules.yaml       (groups, for the chart's PrometheusRule)
//	examples/grafana/kpod-dashboard.json ─► charts/kpod/files/kpod-dashboard.json   (byte for byte, for the chart's ConfigMap)
//	examples/collector-node.yaml         ─► examples/kubernetes/configmap.yaml      (data.collector.yaml)
//
// Helm's .Files.Get reads only files inside the chart, hence the copies in charts/kpod/files.
// The transformation is textual (comments are kept, nothing is re-ordered), so the output is
// deterministic. Run by go generate from examples/ (gen.go); `make check-generate` fails when
// a committed file differs from what this writes.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// generatedBy is the header line every written file (but the JSON) carries.
const generatedBy = "Written by make generate (examples/gen) from %s; do not edit it: make check-generate fails when it is out of date."

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "examples/gen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	read := func(rel string) ([]byte, error) { return os.ReadFile(filepath.Join(root, rel)) }
	rules, err := read("examples/prometheus/kpod-rules.yaml")
	if err != nil {
		return err
	}
	groups, err := groupsOf(rules)
	if err != nil {
		return fmt.Errorf("examples/prometheus/kpod-rules.yaml: %w", err)
	}
	dashboard, err := read("examples/grafana/kpod-dashboard.json")
	if err != nil {
		return err
	}
	node, err := read("examples/collector-node.yaml")
	if err != nil {
		return err
	}
	files := []struct {
		rel  string
		body []byte
	}{
		{"examples/kubernetes/prometheusrule.yaml", prometheusRule(groups)},
		{"charts/kpod/files/kpod-rules.yaml", chartRules(groups)},
		{"charts/kpod/files/kpod-dashboard.json", dashboard},
		{"examples/kubernetes/configmap.yaml", configMap(node)},
	}
	for _, f := range files {
		if err := writeIfChanged(filepath.Join(root, f.rel), f.body); err != nil {
			return err
		}
	}
	return nil
}

// groupsOf returns the rule file from its top-level `groups:` line to the end.
func groupsOf(rules []byte) ([]byte, error) {
	var at []int
	for i, line := range bytes.SplitAfter(rules, []byte("\n")) {
		if strings.TrimRight(string(line), " \r\n") == "groups:" {
			at = append(at, i)
		}
	}
	if len(at) != 1 {
		return nil, fmt.Errorf("want exactly one top-level `groups:` line, found %d", len(at))
	}
	lines := bytes.SplitAfter(rules, []byte("\n"))
	out := bytes.Join(lines[at[0]:], nil)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, nil
}

// indent prefixes every non-blank line with n spaces; blank lines become empty.
func indent(b []byte, n int) []byte {
	var out bytes.Buffer
	pad := strings.Repeat(" ", n)
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		if strings.TrimSpace(line) == "" {
			out.WriteString("\n")
			continue
		}
		out.WriteString(pad + line)
	}
	return out.Bytes()
}

func comment(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			b.WriteString("#\n")
		} else {
			b.WriteString("# " + l + "\n")
		}
	}
	return b.String()
}

func prometheusRule(groups []byte) []byte {
	var b bytes.Buffer
	b.WriteString(comment(
		fmt.Sprintf(generatedBy, "examples/prometheus/kpod-rules.yaml"),
		"",
		"The groups of kpod-rules.yaml (recording rules and alerts for kpod) as a Prometheus Operator",
		"PrometheusRule. The Prometheus resource picks rules by its ruleSelector / ruleNamespaceSelector:",
		"add the label it expects (kube-prometheus-stack: release: <its release name>). The chart",
		"charts/kpod installs the same rules with prometheusRule.enabled=true.",
	))
	b.WriteString(`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: kpod
  namespace: kpod
  labels:
    app.kubernetes.io/name: kpod
spec:
`)
	b.Write(indent(groups, 2))
	return b.Bytes()
}

func chartRules(groups []byte) []byte {
	var b bytes.Buffer
	b.WriteString(comment(
		fmt.Sprintf(generatedBy, "examples/prometheus/kpod-rules.yaml"),
		"Its rule groups, for the chart's templates/prometheusrule.yaml.",
	))
	b.Write(groups)
	return b.Bytes()
}

func configMap(node []byte) []byte {
	var b bytes.Buffer
	b.WriteString(comment(
		fmt.Sprintf(generatedBy, "examples/collector-node.yaml"),
		"That file verbatim, as the collector config of daemonset.yaml.",
	))
	b.WriteString(`apiVersion: v1
kind: ConfigMap
metadata:
  name: otelcol-kpod
  namespace: kpod
  labels:
    app.kubernetes.io/name: kpod
data:
  collector.yaml: |
`)
	b.Write(indent(node, 4))
	return b.Bytes()
}

// writeIfChanged leaves a file that already has the content alone (its modification time too,
// which make's dependencies look at).
func writeIfChanged(path string, body []byte) error {
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, body) {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, body, 0o644)
}
