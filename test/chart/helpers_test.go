//go:build chart || kube

// Package chart tests the Helm chart charts/kpod and the raw manifests of examples/kubernetes:
//
//	make chart   (go test -tags chart): helm lint, helm template with many value sets checked
//	             against examples/ (DaemonSet, RBAC, collector config, rules, dashboard),
//	             every rendered collector config run through `otelcol-kpod validate`, and
//	             otelcol-kpod started with the chart's config to prove that clusterName
//	             reaches every exported series (root).
//	make kube    (go test -tags kube -run TestKube): the rendered chart and the raw manifests
//	             sent to a real kube-apiserver as a server-side dry run.
//
// Helm is built from the Go module proxy (scripts/k8s-build.sh helm, pinned in tools/k8s/helm)
// and found through $KPOD_HELM, else in the binary directory of scripts/k8s-build.sh. Without
// it the tests skip, and fail under CI=true.
package chart

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/testenv"
)

const (
	release   = "kpod"
	namespace = "kpod"
)

// allOn turns on every optional object and export of the chart.
const allOn = `
clusterName: prod-eu-1
otlp:
  enabled: true
  endpoint: http://otel-gateway.observability.svc.cluster.local:4318
  headers: {api-key: "${env:OTLP_API_KEY}"}
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
prometheusRule:
  enabled: true
  labels: {release: kube-prometheus-stack}
`

func root(t *testing.T) string { return testenv.RepoRoot(t, 2) }

func chartDir(t *testing.T) string { return filepath.Join(root(t), "charts", "kpod") }

// need skips the test (fails it under CI=true) when something it needs is missing.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	fakepod.Unmet(t, fmt.Sprintf(format, args...))
}

// k8sBin is the binary directory of scripts/k8s-build.sh ($KPOD_K8S_BIN or its default).
func k8sBin(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KPOD_K8S_BIN"); d != "" {
		return d
	}
	out, err := exec.Command(filepath.Join(root(t), "scripts", "k8s-build.sh"), "--bin-dir").Output()
	if err != nil {
		t.Fatalf("scripts/k8s-build.sh --bin-dir: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func helmBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("KPOD_HELM")
	if bin == "" {
		bin = filepath.Join(k8sBin(t), "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		need(t, "helm is missing (%v): make chart builds it (scripts/k8s-build.sh helm)", err)
	}
	return bin
}

// helm runs helm with its cache, config and data directories in a temporary directory (the
// tests never touch ~/.cache/helm) and returns its standard output, or the error with its
// standard error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v: %s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// valuesFile writes values (YAML) into a file for helm's -f.
func valuesFile(t *testing.T, values string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(p, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// templateRaw is `helm template kpod charts/kpod -n kpod -f <values>`.
func templateRaw(t *testing.T, values string, args ...string) (string, error) {
	t.Helper()
	a := []string{"template", release, chartDir(t), "--namespace", namespace, "-f", valuesFile(t, values)}
	return helm(t, append(a, args...)...)
}

// rendered is the output of helm template, parsed.
type rendered struct {
	raw  string
	docs []map[string]any
}

func render(t *testing.T, values string, args ...string) *rendered {
	t.Helper()
	out, err := templateRaw(t, values, args...)
	if err != nil {
		t.Fatal(err)
	}
	return &rendered{raw: out, docs: yamlDocs(t, []byte(out))}
}

// object is the one object of kind (and name, if not empty); nil if there is none.
func (r *rendered) object(t *testing.T, kind, name string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, d := range r.docs {
		if d["kind"] == kind && (name == "" || get(d, "metadata", "name") == name) {
			found = append(found, d)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d objects of kind %s named %q", len(found), kind, name)
	}
	if len(found) == 0 {
		return nil
	}
	return found[0]
}

func (r *rendered) must(t *testing.T, kind, name string) map[string]any {
	t.Helper()
	o := r.object(t, kind, name)
	if o == nil {
		t.Fatalf("helm template rendered no %s %q; kinds: %v", kind, name, r.kinds())
	}
	return o
}

func (r *rendered) kinds() []string {
	var k []string
	for _, d := range r.docs {
		k = append(k, fmt.Sprint(d["kind"], "/", get(d, "metadata", "name")))
	}
	return k
}

// collectorConfig is the parsed collector config of the chart's ConfigMap.
func (r *rendered) collectorConfig(t *testing.T) map[string]any {
	t.Helper()
	cm := r.must(t, "ConfigMap", release)
	s, ok := get(cm, "data", "collector.yaml").(string)
	if !ok {
		t.Fatalf("ConfigMap %s has no data.collector.yaml", release)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(s), &cfg); err != nil {
		t.Fatalf("collector.yaml does not parse: %v\n%s", err, s)
	}
	return cfg
}

// yamlDocs parses every document of a multi-document YAML stream.
func yamlDocs(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []map[string]any
	for {
		doc, err := r.Read()
		if err != nil {
			break
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func readYAML(t *testing.T, rel string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return yamlDocs(t, b)
}

// get walks maps (string keys) and lists (int indexes); nil where the path ends.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}
