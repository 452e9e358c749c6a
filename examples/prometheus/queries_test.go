// Package prometheus_test checks the Grafana dashboard, the Prometheus rules and the
// deployment examples under examples/ against what kpod really exports: the two scrapes of
// otelcol-kpod in testdata/ (written by snapshot_test.go, `go test -tags snapshot`), or the
// two in $KPOD_SNAPSHOT_DIR (scrape-1.prom and scrape-2.prom) where that is set.
//
//	go test ./examples/prometheus/
//
// promtool (Debian package prometheus) evaluates the queries: the tests that need it skip
// without it, and fail under CI=true. PromQL is read with Prometheus's own parser
// (github.com/prometheus/prometheus/promql/parser).
package prometheus_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// ---- files -----------------------------------------------------------------------------------

// examplesDir is examples/ (go test runs in examples/prometheus).
func examplesDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(dir, "collector-node.yaml")); err != nil {
		t.Fatalf("%s is not the examples directory: %v", dir, err)
	}
	return dir
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{examplesDir(t)}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshalYAML(t *testing.T, b []byte, v any, what string) {
	t.Helper()
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// promtool returns the promtool binary. Without it the test is skipped, except under CI=true.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("promtool is not installed (apt-get install prometheus); CI=true requires it")
	}
	t.Skip("promtool is not installed (apt-get install prometheus): skipping the PromQL checks")
	return ""
}

var (
	snapOnce sync.Once
	snaps    [2]*exposition
	snapErr  error
)

// snapshotEnv names a directory whose scrape-1.prom and scrape-2.prom the tests read instead
// of testdata/'s (test/e2ecluster points it at the two scrapes of its real cluster).
const snapshotEnv = "KPOD_SNAPSHOT_DIR"

// snapshotFile is scrape-<n>.prom of the snapshot the tests check.
func snapshotFile(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(examplesDir(t), "prometheus", "testdata")
	if d := os.Getenv(snapshotEnv); d != "" {
		dir = d
	}
	return filepath.Join(dir, fmt.Sprintf("scrape-%d.prom", n))
}

// snapshots are scrape-1.prom and scrape-2.prom, taken 20 s apart.
func snapshots(t *testing.T) [2]*exposition {
	t.Helper()
	paths := [2]string{snapshotFile(t, 1), snapshotFile(t, 2)}
	snapOnce.Do(func() {
		for i, path := range paths {
			f, err := os.Open(path)
			if err != nil {
				snapErr = err
				return
			}
			snaps[i], err = parseExposition(f)
			f.Close()
			if err != nil {
				snapErr = fmt.Errorf("%s: %w", path, err)
				return
			}
		}
	})
	if snapErr != nil {
		t.Fatal(snapErr)
	}
	return snaps
}

// ---- the rule file -----------------------------------------------------------------------------

type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	unmarshalYAML(t, readFile(t, "prometheus", "kpod-rules.yaml"), &rf, "kpod-rules.yaml")
	return rf
}

// The seed product's 21 alerts, as kpod-rules.yaml names them.
var wantAlerts = []string{
	"KpodHighRunqueueLatency", "KpodTCPRetransmitRatioHigh", "KpodTCPDrops", "KpodSyscallErrorRateHigh",
	"KpodFilesystemAlmostFull", "KpodBPFMapNearlyFull", "KpodBPFMapUpdateErrors", "KpodContainerRestartRateHigh",
	"KpodContainerCrashLooping", "KpodMemoryPressure", "KpodCollectorSkipRateHigh", "KpodCollectorUnavailable",
	"KpodCollectionTimeouts", "KpodCollectionCycleSlow", "KpodOOMKills", "KpodForkBomb", "KpodExecStorm",
	"KpodHighBlockIOLatency", "KpodTargetDown", "KpodCollectorErrors", "KpodCgroupReadErrors",
}

// The seed dashboard's rows, in order.
var wantRows = []string{"CPU", "Network", "L7 (application protocols)", "Service topology", "Disk & filesystem", "Memory & cache", "Process", "Syscalls", "IRQ",
	"BPF internals", "Collection health"}

// TestRuleFiles: 24 recording rules and the 21 alerts, each described; the PrometheusRule
// carries the same groups.
func TestRuleFiles(t *testing.T) {
	rf := loadRules(t)
	var records, alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Record != "":
				records = append(records, r.Record)
			case r.Alert != "":
				alerts = append(alerts, r.Alert)
				if strings.TrimSpace(r.Annotations["description"]) == "" || strings.TrimSpace(r.Annotations["summary"]) == "" {
					t.Errorf("alert %s: annotations.description and .summary are required", r.Alert)
				}
				if r.Labels["severity"] == "" {
					t.Errorf("alert %s: no severity label", r.Alert)
				}
			}
		}
	}
	if len(records) != 24 {
		t.Errorf("%d recording rules, want 24: %v", len(records), records)
	}
	sort.Strings(alerts)
	want := slices.Clone(wantAlerts)
	sort.Strings(want)
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts differ from the seed's %d (-want +got):\n%s", len(want), cmp.Diff(want, alerts))
	}
	// Recording rules cannot have annotations: each is described by the comment above it.
	lines := strings.Split(string(readFile(t, "prometheus", "kpod-rules.yaml")), "\n")
	for i, l := range lines {
		name, ok := strings.CutPrefix(strings.TrimSpace(l), "- record:")
		if !ok {
			continue
		}
		described := false
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			if strings.HasPrefix(strings.TrimSpace(lines[j]), "# description:") {
				described = true
			}
		}
		if !described {
			t.Errorf("recording rule %s (line %d) has no '# description:' comment above it", strings.TrimSpace(name), i+1)
		}
	}

	// examples/kubernetes/prometheusrule.yaml: the same groups in a PrometheusRule.
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec ruleFile `json:"spec"`
	}
	unmarshalYAML(t, readFile(t, "kubernetes", "prometheusrule.yaml"), &pr, "prometheusrule.yaml")
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("prometheusrule.yaml: %s %s %q, want a monitoring.coreos.com/v1 PrometheusRule with a name", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	if diff := cmp.Diff(rf, pr.Spec); diff != "" {
		t.Errorf("prometheusrule.yaml spec.groups differ from kpod-rules.yaml (regenerate it, see its header) (-rules +prometheusrule):\n%s", diff)
	}
}

// ---- the dashboard --------------------------------------------------------------------------------

type dashPanel struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	ID         int             `json:"id"`
	Datasource json.RawMessage `json:"datasource"`
	Panels     []dashPanel     `json:"panels"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		RefID      string          `json:"refId"`
		Datasource json.RawMessage `json:"datasource"`
		Format     string          `json:"format"`
		Instant    bool            `json:"instant"`
	} `json:"targets"`
	Transformations []struct {
		ID      string `json:"id"`
		Options struct {
			RenameByName map[string]string `json:"renameByName"`
		} `json:"options"`
	} `json:"transformations"`
}

type dashboard struct {
	SchemaVersion int         `json:"schemaVersion"`
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Type       string          `json:"type"`
			Name       string          `json:"name"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
			AllValue   string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "grafana", "kpod-dashboard.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("kpod-dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows (collapsed rows hold their panels).
func allPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// query is one PromQL expression of an artifact, and where it comes from.
type query struct {
	origin string
	expr   string
}

// labelValuesRE matches a Grafana label_values(<series selector>, <label>) variable query.
var labelValuesRE = regexp.MustCompile(`^\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// dashboardQueries are the expressions of every panel and the series selectors of the
// label_values() template variables, as written (with $variables).
func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct{ Query string }
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
			q = obj.Query
		}
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(<kpod series>, <label>)", v.Name, q)
			continue
		}
		qs = append(qs, query{"dashboard variable $" + v.Name, m[1]})
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("dashboard panel %q target %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	return qs
}

// ruleQueries are the recording rules' expressions and the alerts' expressions.
func ruleQueries(rf ruleFile) (records, alerts []query) {
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records = append(records, query{"recording rule " + r.Record, strings.TrimSpace(r.Expr)})
			} else {
				alerts = append(alerts, query{"alert " + r.Alert, strings.TrimSpace(r.Expr)})
			}
		}
	}
	return records, alerts
}

// TestDashboard: an importable dashboard with the seed's rows, a datasource variable, node /
// namespace / pod variables from label_values() on kpod series, and p50/p90/p99 from the
// real buckets on every histogram panel.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 38 {
		t.Errorf("schemaVersion %d, want >= 38", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q: both are needed to import", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		var q string
		_ = json.Unmarshal(v.Query, &q)
		vars[v.Name] = v.Type + " " + q
		if v.Type == "query" && !strings.Contains(string(v.Datasource), "${datasource}") {
			t.Errorf("variable %s does not use the datasource variable: %s", v.Name, v.Datasource)
		}
	}
	if vars["datasource"] != "datasource prometheus" {
		t.Errorf("no Prometheus datasource variable named datasource (got %q)", vars["datasource"])
	}
	for name, label := range map[string]string{"node": "k8s_node_name", "namespace": "k8s_namespace_name", "pod": "k8s_pod_name"} {
		m := labelValuesRE.FindStringSubmatch(strings.TrimPrefix(vars[name], "query "))
		if m == nil || !strings.HasPrefix(strings.TrimSpace(m[1]), "kpod_") || m[2] != label {
			t.Errorf("variable %s = %q, want label_values(kpod_..., %s)", name, vars[name], label)
		}
	}
	var rows []string
	ids := map[int]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") {
			t.Errorf("panel %q: datasource %s, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		var quantiles []string
		for _, tg := range p.Targets {
			if !strings.Contains(string(tg.Datasource), "${datasource}") {
				t.Errorf("panel %q target %s: datasource %s", p.Title, tg.RefID, tg.Datasource)
			}
			m := regexp.MustCompile(`^histogram_quantile\((0\.5|0\.9|0\.99), sum by \(le, [^)]*\) \(rate\(kpod_[a-z0-9_]+_seconds_bucket\{[^}]*\}\[\$__rate_interval\]\)\)\)$`).FindStringSubmatch(tg.Expr)
			if strings.Contains(tg.Expr, "histogram_quantile") {
				if m == nil {
					t.Errorf("panel %q: %q is not histogram_quantile(q, sum by (le, ...) (rate(..._bucket[$__rate_interval])))", p.Title, tg.Expr)
					continue
				}
				quantiles = append(quantiles, m[1])
			}
		}
		if len(quantiles) > 0 && !slices.Equal(quantiles, []string{"0.5", "0.9", "0.99"}) {
			t.Errorf("histogram panel %q shows quantiles %v, want 0.5, 0.9, 0.99", p.Title, quantiles)
		}
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows %q, want the seed's %q", rows, wantRows)
	}
	checkNodeGraph(t, allPanels(d.Panels))
}

// checkNodeGraph: the Service topology row's Node Graph panel gets the frames Grafana's node
// graph reads from Prometheus: an edges table (id, source, target, mainstat) and a nodes table
// (id, mainstat), both instant queries of the service-graph counter, renamed by one organize
// transformation (a frame with a source field is the edges frame).
func checkNodeGraph(t *testing.T, panels []dashPanel) {
	t.Helper()
	var graphs []dashPanel
	for _, p := range panels {
		if p.Type == "nodeGraph" {
			graphs = append(graphs, p)
		}
	}
	if len(graphs) != 1 {
		t.Fatalf("%d nodeGraph panels, want 1", len(graphs))
	}
	g := graphs[0]
	if len(g.Targets) != 2 {
		t.Fatalf("node graph %q: %d queries, want edges and nodes", g.Title, len(g.Targets))
	}
	edges, nodes := g.Targets[0], g.Targets[1]
	for _, tg := range g.Targets {
		if tg.Format != "table" || !tg.Instant || !strings.Contains(tg.Expr, "traces_service_graph_request_total") {
			t.Errorf("node graph target %s: format %q instant %v %q; want an instant table of traces_service_graph_request_total", tg.RefID, tg.Format, tg.Instant, tg.Expr)
		}
	}
	if !strings.Contains(edges.Expr, `"id", " → ", "client", "server")`) || !strings.Contains(nodes.Expr, `"id", "", "server")`) || !strings.Contains(nodes.Expr, `"id", "", "client")`) {
		t.Errorf("node graph: edges %q, nodes %q: want id from client and server (edges), from either end (nodes)", edges.Expr, nodes.Expr)
	}
	want := map[string]string{"client": "source", "server": "target", "Value #" + edges.RefID: "mainstat", "Value #" + nodes.RefID: "mainstat"}
	if len(g.Transformations) != 1 || g.Transformations[0].ID != "organize" || !maps.Equal(g.Transformations[0].Options.RenameByName, want) {
		t.Errorf("node graph transformations %+v, want one organize renaming %v", g.Transformations, want)
	}
}

// ---- PromQL: Prometheus's own parser --------------------------------------------------------

var promql = parser.NewParser(parser.Options{})

// metricNames returns the metric names an expression selects, in order.
func metricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if name == "" && m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name != "" {
				out = append(out, name)
			}
		}
		return nil
	})
	return out, nil
}

// valueParts returns, as written, the operands of an alert's top-level and / or / unless
// (the expression itself where it has none), each without its threshold: the left side of a
// comparison at its top ("x > 0.05" -> "x"), the value the alert compares.
func valueParts(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []string
	var walk func(parser.Expr)
	walk = func(n parser.Expr) {
		if b, ok := n.(*parser.BinaryExpr); ok && b.Op.IsSetOperator() {
			walk(b.LHS)
			walk(b.RHS)
			return
		}
		if b, ok := n.(*parser.BinaryExpr); ok && b.Op.IsComparisonOperator() && !b.ReturnBool {
			n = b.LHS
		}
		pr := n.PositionRange()
		out = append(out, strings.TrimSpace(expr[pr.Start:pr.End]))
	}
	walk(e)
	return out, nil
}

// grafanaVars replaces the dashboard's variables for evaluation against the snapshot: every
// node, namespace and pod, and 1m windows (the snapshot's samples are 20 s apart).
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m", "${__rate_interval}", "1m", "$__range", "1m", "${__range}", "1m", "$__interval", "1m",
	"${node}", ".*", "$node", ".*", "${namespace}", ".*", "$namespace", ".*", "${pod}", ".*", "$pod", ".*",
)

// ---- (a) every metric a query references is in the snapshot ------------------------------------------

func TestMetricNamesInSnapshot(t *testing.T) {
	s := snapshots(t)
	names := s[0].names()
	for n := range s[1].names() {
		names[n] = true
	}
	rf := loadRules(t)
	records, alerts := ruleQueries(rf)
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	all := append(dashboardQueries(t, loadDashboard(t)), append(records, alerts...)...)
	checked := map[string]bool{}
	for _, q := range all {
		// Dashboard queries are parsed with their variables replaced ([$__rate_interval] is
		// no PromQL).
		ms, err := metricNames(grafanaVars.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.origin, q.expr, err)
			continue
		}
		if len(ms) == 0 {
			t.Errorf("%s: no metric name found in %q", q.origin, q.expr)
		}
		for _, m := range ms {
			checked[m] = true
			switch {
			case strings.Contains(m, ":"):
				if !recorded[m] {
					t.Errorf("%s: %s is not a recording rule of kpod-rules.yaml", q.origin, m)
				}
			case !names[m]:
				hint := ""
				if s[1].Types[m] == "histogram" {
					hint = " (a histogram: use its _bucket, _sum or _count series)"
				}
				t.Errorf("%s: metric %s is not in the scrape snapshot%s", q.origin, m, hint)
			case s[1].Types[s[1].familyOf(m)] == "histogram" && !regexp.MustCompile(`_(bucket|sum|count)$`).MatchString(m):
				t.Errorf("%s: %s is a histogram without _bucket/_sum/_count", q.origin, m)
			}
		}
	}
	var list []string
	for m := range checked {
		list = append(list, m)
	}
	sort.Strings(list)
	t.Logf("%d queries reference %d metric names, all in the snapshot: %s", len(all), len(list), strings.Join(list, " "))
}

// ---- (b) promtool check rules / test rules -------------------------------------------------------

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolRules(t *testing.T) {
	dir := filepath.Join(examplesDir(t), "prometheus")
	out := runPromtool(t, dir, "check", "rules", "kpod-rules.yaml")
	t.Logf("promtool check rules: %s", strings.TrimSpace(out))
	out = runPromtool(t, dir, "test", "rules", "kpod-rules_test.yaml")
	t.Logf("promtool test rules: %s", strings.TrimSpace(out))
}

// TestRulesTestSeriesShape: the unit tests' input series have the names and label names of
// real kpod series (so they exercise the rules with what the exporter writes).
func TestRulesTestSeriesShape(t *testing.T) {
	s := snapshots(t)
	shapes := map[string]map[string]bool{} // name -> set of sorted label-name lists
	for _, e := range s {
		for _, smp := range e.Samples {
			keys := make([]string, 0, len(smp.Labels))
			for k := range smp.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if shapes[smp.Name] == nil {
				shapes[smp.Name] = map[string]bool{}
			}
			shapes[smp.Name][strings.Join(keys, ",")] = true
		}
	}
	var tf struct {
		Tests []struct {
			Name        string `json:"name"`
			InputSeries []struct {
				Series string `json:"series"`
			} `json:"input_series"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus", "kpod-rules_test.yaml"), &tf); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tc := range tf.Tests {
		for _, in := range tc.InputSeries {
			// promtool's notation for input series, read as a series selector: its labels as
			// written, also those with an empty value (which a parsed series would not have).
			ms, err := promql.ParseMetricSelector(in.Series)
			if err != nil {
				t.Errorf("%s: %q: %v", tc.Name, in.Series, err)
				continue
			}
			var name string
			var keys []string
			for _, m := range ms {
				switch {
				case m.Type != labels.MatchEqual:
					t.Errorf("%s: %q: %s is not a label of a series", tc.Name, in.Series, m)
				case m.Name == labels.MetricName:
					name = m.Value
				default:
					keys = append(keys, m.Name)
				}
			}
			sort.Strings(keys)
			if shapes[name] == nil {
				t.Errorf("%s: %s is not a metric of the snapshot", tc.Name, name)
			} else if !shapes[name][strings.Join(keys, ",")] {
				t.Errorf("%s: %s has labels %v, which no series of that name in the snapshot has", tc.Name, name, keys)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no input series in kpod-rules_test.yaml")
	}
}

// ---- (c) every query returns samples on the snapshot -----------------------------------------------

type promSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type promSample struct {
	Labels string  `json:"labels"`
	Value  float64 `json:"value"`
}

type promExprTest struct {
	Expr       string       `json:"expr"`
	EvalTime   string       `json:"eval_time"`
	ExpSamples []promSample `json:"exp_samples"`
}

// snapshotSeries turns the two scrapes into promtool input series: samples at 0 s and 20 s
// ("_" where a series is in only one of them).
func snapshotSeries(t *testing.T) []promSeries {
	t.Helper()
	s := snapshots(t)
	vals := map[string]*[2]string{}
	var keys []string
	for i, e := range s {
		for _, smp := range e.Samples {
			k := seriesKey(smp)
			v, ok := vals[k]
			if !ok {
				v = &[2]string{"_", "_"}
				vals[k] = v
				keys = append(keys, k)
			}
			v[i] = strconv.FormatFloat(smp.Value, 'f', -1, 64)
		}
	}
	out := make([]promSeries, 0, len(keys))
	for _, k := range keys {
		out = append(out, promSeries{Series: k, Values: vals[k][0] + " " + vals[k][1]})
	}
	return out
}

// TestQueriesReturnSamples evaluates, at the second scrape, every dashboard query (variables
// set to match everything, $__rate_interval 1m), every label_values() selector, every
// recording rule and every alert with promtool, on the snapshot's series: each must return at
// least one sample. An alert's condition is evaluated whole (it must evaluate without error;
// on the snapshot most are rightly false) and its value parts, the sides of its top-level
// and/or/unless with the threshold comparison removed, must each return samples, so that
// a wrong name, label or join cannot hide behind a false condition.
func TestQueriesReturnSamples(t *testing.T) {
	bin := promtool(t)
	var tests []promExprTest
	origin := map[string]string{}
	nonEmpty := func(where, expr string) {
		e := "absent(" + expr + ")" // empty when expr has samples
		if _, dup := origin[e]; dup {
			return
		}
		origin[e] = where
		tests = append(tests, promExprTest{Expr: e, EvalTime: "20s", ExpSamples: []promSample{}})
	}
	rf := loadRules(t)
	records, alerts := ruleQueries(rf)
	for _, q := range dashboardQueries(t, loadDashboard(t)) {
		e := grafanaVars.Replace(q.expr)
		if strings.Contains(e, "$") {
			t.Errorf("%s: unreplaced variable in %q", q.origin, e)
			continue
		}
		nonEmpty(q.origin, e)
	}
	for _, q := range records {
		nonEmpty(q.origin, q.expr)
	}
	for _, q := range alerts {
		e := "count(absent(" + q.expr + ")) * 0 or vector(0)" // {} 0 whether or not it fires; fails on errors
		origin[e] = q.origin + " (whole expression)"
		tests = append(tests, promExprTest{Expr: e, EvalTime: "20s", ExpSamples: []promSample{{Labels: "{}", Value: 0}}})
		parts, err := valueParts(q.expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.origin, q.expr, err)
			continue
		}
		for i, part := range parts {
			t.Logf("%s value part %d: %s", q.origin, i+1, oneLine(part))
			nonEmpty(fmt.Sprintf("%s (value part %d: %s)", q.origin, i+1, oneLine(part)), part)
		}
	}
	runOnSnapshot(t, bin, tests, origin)
}

// runOnSnapshot runs promtool test rules with these expression tests on the snapshot's
// series (at 0 s and 20 s), and names the failing ones by their origin.
func runOnSnapshot(t *testing.T, bin string, tests []promExprTest, origin map[string]string) {
	t.Helper()
	series := snapshotSeries(t)
	file := map[string]any{
		"rule_files":          []string{},
		"evaluation_interval": "20s",
		"tests": []map[string]any{{
			"name":             "kpod queries on the scrape snapshot",
			"interval":         "20s",
			"input_series":     series,
			"promql_expr_test": tests,
		}},
	}
	b, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "snapshot_queries_test.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "test", "rules", path).CombinedOutput()
	if err != nil {
		var failed []string
		for e, where := range origin {
			if bytes.Contains(out, []byte(strconv.Quote(e))) {
				failed = append(failed, where+": "+oneLine(e))
			}
		}
		sort.Strings(failed)
		t.Errorf("promtool test rules on the snapshot: %v; %d queries failed:\n  %s\npromtool output (first 8 KiB):\n%s",
			err, len(failed), strings.Join(failed, "\n  "), head8k(out))
		return
	}
	t.Logf("%d queries evaluated on %d snapshot series: all as expected", len(tests), len(series))
}

// snapshotPods maps the snapshot's pod roles (tcp-client, oom, idle, ...) to their pod names,
// from the header snapshot_test.go writes.
func snapshotPods(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(snapshotFile(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#\s+(pod-[0-9a-f]{8})\s+(\S+)\s`).FindAllStringSubmatch(string(b), -1) {
		out[m[2]] = m[1]
	}
	return out
}

// TestAlertsOnSnapshot: on the real scrapes, the alerts whose conditions the snapshot's
// workloads were built to meet are true for those pods (no for: duration is applied), and
// no alert is true for the idle pod.
//
//	tcp-client  KpodTCPRetransmitRatioHigh  nft drops 10 % of its data segments
//	tcp-server  KpodTCPDrops                the same drops, netfilter_drop on the receiving socket
//	syscalls    KpodSyscallErrorRateHigh    thousands of close(-1) a second, all EBADF
//	oom         KpodOOMKills                the holder container OOM-killed between the scrapes
func TestAlertsOnSnapshot(t *testing.T) {
	bin := promtool(t)
	pods := snapshotPods(t)
	for _, role := range []string{"tcp-client", "tcp-server", "syscalls", "oom", "idle"} {
		if pods[role] == "" {
			t.Fatalf("the snapshot's header names no %s pod", role)
		}
	}
	exprs := map[string]string{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				exprs[r.Alert] = strings.TrimSpace(r.Expr)
			}
		}
	}
	onPod := func(expr, pod string) string {
		return fmt.Sprintf(`(%s) and on (k8s_pod_name) label_replace(vector(1), "k8s_pod_name", %q, "", "")`, expr, pod)
	}
	var tests []promExprTest
	origin := map[string]string{}
	for alert, role := range map[string]string{
		"KpodTCPRetransmitRatioHigh": "tcp-client", "KpodTCPDrops": "tcp-server",
		"KpodSyscallErrorRateHigh": "syscalls", "KpodOOMKills": "oom",
	} {
		e := "absent(" + onPod(exprs[alert], pods[role]) + ")"
		origin[e] = fmt.Sprintf("%s must be true for %s (%s)", alert, role, pods[role])
		tests = append(tests, promExprTest{Expr: e, EvalTime: "20s", ExpSamples: []promSample{}})
	}
	for _, alert := range wantAlerts {
		if !strings.Contains(exprs[alert], "k8s_pod_name") {
			continue // node-level
		}
		e := onPod(exprs[alert], pods["idle"])
		origin[e] = fmt.Sprintf("%s must not be true for the idle pod (%s)", alert, pods["idle"])
		tests = append(tests, promExprTest{Expr: e, EvalTime: "20s", ExpSamples: []promSample{}})
	}
	runOnSnapshot(t, bin, tests, origin)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func head8k(b []byte) string {
	if len(b) > 8<<10 {
		return string(b[:8<<10]) + "\n..."
	}
	return string(b)
}

// ---- deployment examples: Helm values, OpenTelemetryCollector -----------------------------------------

// yamlDocs parses every document of a multi-document YAML file.
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
			t.Fatal(err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

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

// without drops the list items whose name is in names.
func without(list any, names ...string) []any {
	var out []any
	for _, it := range list.([]any) {
		if n, _ := get(it, "name").(string); !slices.Contains(names, n) {
			out = append(out, it)
		}
	}
	return out
}

func same(t *testing.T, what string, want, got any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s differs from examples/kubernetes (-kubernetes +here):\n%s", what, cmp.Diff(want, got))
	}
}

// validateConfig runs `otelcol-kpod validate` on a collector config taken from an example,
// with the container paths pointed at this host's (as test/e2e's TestNodeConfigValidates).
func validateConfig(t *testing.T, what string, cfg any) {
	t.Helper()
	bin := filepath.Join(filepath.Dir(examplesDir(t)), "_build", "otelcol-kpod")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (make otelcol); CI=true requires it", bin)
		}
		t.Skipf("%s is missing (make otelcol): not validating the collector configs", bin)
	}
	b, err := json.Marshal(cfg) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, `"proc_root":"/host/proc"`) != 1 {
		t.Fatalf("%s: expected proc_root: /host/proc once", what)
	}
	s = strings.Replace(s, `"proc_root":"/host/proc"`, `"proc_root":"/proc"`, 1)
	path := filepath.Join(t.TempDir(), "collector.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", path)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=validate-node", "OTLP_ENDPOINT=http://127.0.0.1:4318", "KPOD_CGROUP_ROOT=/sys/fs/cgroup", "KPOD_CLUSTER_NAME=validate-cluster")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: otelcol-kpod validate: %v\n%s", what, err, out)
	}
}

func TestDeploymentExamples(t *testing.T) {
	var node map[string]any
	unmarshalYAML(t, readFile(t, "collector-node.yaml"), &node, "collector-node.yaml")
	ds := yamlDocs(t, readFile(t, "kubernetes", "daemonset.yaml"))[0]
	pod := get(ds, "spec", "template", "spec")
	ctr := get(pod, "containers", 0)
	var clusterRole any
	for _, d := range yamlDocs(t, readFile(t, "kubernetes", "rbac.yaml")) {
		if d["kind"] == "ClusterRole" {
			clusterRole = d
		}
	}

	t.Run("helm", func(t *testing.T) {
		raw := readFile(t, "helm", "values.yaml")
		if bytes.Contains(raw, []byte("{{")) {
			t.Errorf("values.yaml contains {{: the chart passes the config through Helm's tpl")
		}
		var v map[string]any
		unmarshalYAML(t, raw, &v, "helm/values.yaml")
		if v["mode"] != "daemonset" || v["hostPID"] != true {
			t.Errorf("mode %v hostPID %v, want daemonset and true", v["mode"], v["hostPID"])
		}
		if img := fmt.Sprint(get(v, "image", "repository"), ":", get(v, "image", "tag")); img != get(ctr, "image") {
			t.Errorf("image %s, want %s", img, get(ctr, "image"))
		}
		if cmdName := "/" + fmt.Sprint(get(v, "command", "name")); cmdName != get(ctr, "command", 0) {
			t.Errorf("command /%v, want %v", get(v, "command", "name"), get(ctr, "command", 0))
		}
		same(t, "alternateConfig (vs collector-node.yaml)", any(node), v["alternateConfig"])
		same(t, "securityContext", get(ctr, "securityContext"), v["securityContext"])
		same(t, "extraVolumes", any(without(get(pod, "volumes"), "config")), v["extraVolumes"])
		same(t, "extraVolumeMounts", any(without(get(ctr, "volumeMounts"), "config")), v["extraVolumeMounts"])
		same(t, "extraEnvs", get(ctr, "env"), v["extraEnvs"])
		same(t, "resources", get(ctr, "resources"), v["resources"])
		same(t, "tolerations", get(pod, "tolerations"), v["tolerations"])
		same(t, "priorityClassName", get(pod, "priorityClassName"), v["priorityClassName"])
		same(t, "clusterRole.rules", get(clusterRole, "rules"), get(v, "clusterRole", "rules"))
		same(t, "podAnnotations", get(ds, "spec", "template", "metadata", "annotations"), v["podAnnotations"])
		if fmt.Sprint(get(v, "ports", "kpod-metrics", "containerPort")) != "9464" || get(v, "ports", "kpod-metrics", "enabled") != true {
			t.Errorf("ports.kpod-metrics: %v, want 9464 enabled", get(v, "ports", "kpod-metrics"))
		}
		for _, p := range []string{"otlp", "otlp-http", "jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin"} {
			if get(v, "ports", p, "enabled") != false {
				t.Errorf("ports.%s is not disabled (otelcol-kpod has no such receiver)", p)
			}
		}
		validateConfig(t, "helm values alternateConfig", v["alternateConfig"])
	})

	t.Run("operator", func(t *testing.T) {
		docs := yamlDocs(t, readFile(t, "kubernetes", "opentelemetrycollector.yaml"))
		if len(docs) != 1 {
			t.Fatalf("%d documents, want 1", len(docs))
		}
		o := docs[0]
		spec := o["spec"]
		if o["apiVersion"] != "opentelemetry.io/v1beta1" || o["kind"] != "OpenTelemetryCollector" || get(spec, "mode") != "daemonset" {
			t.Errorf("%v %v mode %v, want opentelemetry.io/v1beta1 OpenTelemetryCollector in daemonset mode", o["apiVersion"], o["kind"], get(spec, "mode"))
		}
		if get(spec, "hostPID") != true {
			t.Errorf("spec.hostPID is not true")
		}
		same(t, "image", get(ctr, "image"), get(spec, "image"))
		same(t, "spec.config (vs collector-node.yaml)", any(node), get(spec, "config"))
		same(t, "serviceAccount", get(pod, "serviceAccountName"), get(spec, "serviceAccount"))
		same(t, "securityContext", get(ctr, "securityContext"), get(spec, "securityContext"))
		same(t, "volumes", any(without(get(pod, "volumes"), "config")), get(spec, "volumes"))
		same(t, "volumeMounts", any(without(get(ctr, "volumeMounts"), "config")), get(spec, "volumeMounts"))
		same(t, "env", get(ctr, "env"), get(spec, "env"))
		same(t, "resources", get(ctr, "resources"), get(spec, "resources"))
		same(t, "tolerations", get(pod, "tolerations"), get(spec, "tolerations"))
		same(t, "priorityClassName", get(pod, "priorityClassName"), get(spec, "priorityClassName"))
		same(t, "podAnnotations", get(ds, "spec", "template", "metadata", "annotations"), get(spec, "podAnnotations"))
		validateConfig(t, "OpenTelemetryCollector spec.config", get(spec, "config"))
	})
}
