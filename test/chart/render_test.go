//go:build chart

package chart

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kpod-project/kpod/internal/testenv"
)

func same(t *testing.T, what string, want, got any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s differs (-want +chart):\n%s", what, cmp.Diff(want, got))
	}
}

func TestLint(t *testing.T) {
	for name, values := range map[string]string{
		"defaults":          "",
		"all on":            allOn,
		"kubernetes off":    "kubernetes: {enabled: false}",
		"otlp only":         "prometheus: {enabled: false}\notlp: {enabled: true, endpoint: http://gw:4318/v1/metrics}",
		"comprehensive 10s": "receiver: {profile: comprehensive, collection_interval: 10s, collectors: {syscall: {interval: 60s}}}",
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := helm(t, "lint", "--strict", chartDir(t), "-f", valuesFile(t, values)); err != nil {
				t.Error(err)
			} else if !strings.Contains(out, "0 chart(s) failed") {
				t.Errorf("helm lint: %s", out)
			}
		})
	}
	// values.schema.json: a misspelt or mistyped value fails lint (and install), naming it.
	// (A template's fail, like "nothing would be exported", is only logged by helm lint; it
	// fails helm template and install, see TestExports.)
	for values, msg := range map[string]string{
		"serviceMonitor: {enable: true}":   "additional properties 'enable' not allowed",
		"receiver: {profile: maximal}":     "/receiver/profile",
		"prometheus: {port: \"9464\"}":     "/prometheus/port",
		"clusterNmae: prod":                "additional properties 'clusterNmae' not allowed",
		"grafana: {dashboard: {label: 1}}": "/grafana/dashboard/label",
	} {
		if _, err := helm(t, "lint", "--strict", chartDir(t), "-f", valuesFile(t, values)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("helm lint with %q: %v, want an error naming %q", values, err, msg)
		}
	}
}

// TestDefaultsMatchExamples: the chart's defaults are examples/kubernetes/ (DaemonSet, RBAC)
// and examples/collector-node.yaml, so that what the README and the example tests say about
// one holds for the other.
func TestDefaultsMatchExamples(t *testing.T) {
	r := render(t, "")
	var kinds []string
	for _, d := range r.docs {
		kinds = append(kinds, d["kind"].(string)+"/"+get(d, "metadata", "name").(string))
		if ns := get(d, "metadata", "namespace"); ns != nil && ns != namespace {
			t.Errorf("%s/%s in namespace %v, want the release's %s", d["kind"], get(d, "metadata", "name"), ns, namespace)
		}
	}
	slices.Sort(kinds)
	same(t, "objects", []string{"ClusterRole/kpod", "ClusterRoleBinding/kpod", "ConfigMap/kpod", "ConfigMap/kpod-dashboard",
		"DaemonSet/kpod", "Service/kpod", "ServiceAccount/kpod"}, kinds)

	ex := readYAML(t, "examples/kubernetes/daemonset.yaml")[0]
	exPod := get(ex, "spec", "template", "spec")
	exCtr := get(exPod, "containers", 0)
	ds := r.must(t, "DaemonSet", release)
	pod := get(ds, "spec", "template", "spec")
	ctr := get(pod, "containers", 0)
	for _, k := range []string{"hostPID", "hostNetwork", "priorityClassName", "terminationGracePeriodSeconds", "tolerations"} {
		same(t, "pod "+k, get(exPod, k), get(pod, k))
	}
	same(t, "updateStrategy", get(ex, "spec", "updateStrategy"), get(ds, "spec", "updateStrategy"))
	for _, k := range []string{"name", "image", "imagePullPolicy", "command", "args", "resources", "securityContext", "livenessProbe", "readinessProbe", "volumeMounts"} {
		same(t, "container "+k, get(exCtr, k), get(ctr, k))
	}
	// The example sets OTLP_ENDPOINT, KPOD_CGROUP_ROOT and KPOD_CLUSTER_NAME for its config;
	// the chart writes those values into the config itself.
	same(t, "env K8S_NODE_NAME", get(exCtr, "env", 0), get(ctr, "env", 0))
	var exMemLimit any
	for _, e := range get(exCtr, "env").([]any) {
		if e.(map[string]any)["name"] == "GOMEMLIMIT" {
			exMemLimit = e
		}
	}
	same(t, "env GOMEMLIMIT", exMemLimit, get(ctr, "env", 1))
	if n := len(get(ctr, "env").([]any)); n != 2 {
		t.Errorf("%d env entries, want only K8S_NODE_NAME and GOMEMLIMIT", n)
	}
	annotations := get(ds, "spec", "template", "metadata", "annotations").(map[string]any)
	if _, ok := annotations["checksum/config"]; !ok {
		t.Error("no checksum/config pod annotation")
	}
	delete(annotations, "checksum/config")
	same(t, "pod annotations", get(ex, "spec", "template", "metadata", "annotations"), any(annotations))
	vols := get(pod, "volumes").([]any)
	same(t, "config volume", map[string]any{"name": "config", "configMap": map[string]any{"name": release}}, vols[0])
	same(t, "host volumes", get(exPod, "volumes").([]any)[1:], vols[1:])

	// RBAC: the example's rules, bound to the ServiceAccount the pods run as.
	var exRole map[string]any
	for _, d := range readYAML(t, "examples/kubernetes/rbac.yaml") {
		if d["kind"] == "ClusterRole" {
			exRole = d
		}
	}
	same(t, "ClusterRole rules", get(exRole, "rules"), get(r.must(t, "ClusterRole", release), "rules"))
	sa := get(r.must(t, "ServiceAccount", release), "metadata", "name")
	same(t, "serviceAccountName", sa, get(pod, "serviceAccountName"))
	same(t, "binding subject", map[string]any{"kind": "ServiceAccount", "name": sa, "namespace": namespace},
		get(r.must(t, "ClusterRoleBinding", release), "subjects", 0))
	if get(pod, "automountServiceAccountToken") != true {
		t.Error("automountServiceAccountToken is not true with kubernetes.enabled")
	}

	// The selector picks the pod template's labels, and the Service selects the same pods.
	sel := get(ds, "spec", "selector", "matchLabels").(map[string]any)
	labels := get(ds, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range sel {
		if labels[k] != v {
			t.Errorf("selector %s=%v does not match the pod template's labels %v", k, v, labels)
		}
	}
	same(t, "Service selector", any(sel), get(r.must(t, "Service", release), "spec", "selector"))
	if labels["app.kubernetes.io/name"] != "kpod" {
		t.Errorf("pod label app.kubernetes.io/name=%v, want kpod (as the example's)", labels["app.kubernetes.io/name"])
	}

	// The collector config: collector-node.yaml, when the values say what its environment
	// variables say.
	var node map[string]any
	b, err := os.ReadFile(filepath.Join(root(t), "examples", "collector-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &node); err != nil {
		t.Fatal(err)
	}
	asExample := render(t, `
clusterName: "${env:KPOD_CLUSTER_NAME}"
otlp: {enabled: true, endpoint: "${env:OTLP_ENDPOINT}"}
receiver: {cgroup_root: "${env:KPOD_CGROUP_ROOT:-/host/sys/fs/cgroup}"}
`)
	same(t, "collector config with the example's environment (vs examples/collector-node.yaml)", any(node), any(asExample.collectorConfig(t)))

	// By default: no OTLP export, no cluster name.
	cfg := r.collectorConfig(t)
	same(t, "default exporters", []any{"prometheus"}, get(cfg, "service", "pipelines", "metrics", "exporters"))
	same(t, "default processors", []any{"memory_limiter", "k8s_attributes", "batch"}, get(cfg, "service", "pipelines", "metrics", "processors"))
	if get(cfg, "processors", "resource") != nil || get(cfg, "exporters", "otlp_http") != nil {
		t.Errorf("default config has a resource processor or an otlp_http exporter")
	}
}

// TestRulesAndDashboard: the PrometheusRule and the dashboard ConfigMap carry exactly
// examples/prometheus/kpod-rules.yaml's groups and examples/grafana/kpod-dashboard.json.
func TestRulesAndDashboard(t *testing.T) {
	r := render(t, allOn)
	pr := r.must(t, "PrometheusRule", release)
	same(t, "PrometheusRule apiVersion", "monitoring.coreos.com/v1", pr["apiVersion"])
	same(t, "spec.groups (vs examples/prometheus/kpod-rules.yaml)", get(readYAML(t, "examples/prometheus/kpod-rules.yaml")[0], "groups"), get(pr, "spec", "groups"))
	same(t, "spec (vs examples/kubernetes/prometheusrule.yaml)", get(readYAML(t, "examples/kubernetes/prometheusrule.yaml")[0], "spec"), get(pr, "spec"))
	same(t, "PrometheusRule label release", "kube-prometheus-stack", get(pr, "metadata", "labels", "release"))
	if n := len(get(pr, "spec", "groups").([]any)); n < 2 {
		t.Errorf("%d rule groups", n)
	}
	// The alert templates reach Prometheus as they are (Helm must not evaluate them).
	if !strings.Contains(r.raw, "{{ $labels.k8s_pod_name }}") {
		t.Error("the alerts' {{ $labels.k8s_pod_name }} templates are not in the rendered PrometheusRule")
	}

	dash, err := os.ReadFile(filepath.Join(root(t), "examples", "grafana", "kpod-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	cm := r.must(t, "ConfigMap", release+"-dashboard")
	if got := get(cm, "data", "kpod-dashboard.json"); got != strings.TrimSuffix(string(dash), "\n") {
		t.Errorf("dashboard ConfigMap data differs from examples/grafana/kpod-dashboard.json (%d vs %d bytes)", len(got.(string)), len(dash))
	}
	same(t, "dashboard sidecar label", "1", get(cm, "metadata", "labels", "grafana_dashboard"))

	// The sidecar's label, its namespace and folder annotation are values.
	cm = render(t, "grafana: {dashboard: {labelKey: my_dashboards, label: kpod, namespace: monitoring, annotations: {grafana_folder: Kernel}}}").must(t, "ConfigMap", release+"-dashboard")
	same(t, "custom sidecar label", "kpod", get(cm, "metadata", "labels", "my_dashboards"))
	same(t, "dashboard namespace", "monitoring", get(cm, "metadata", "namespace"))
	same(t, "dashboard annotations", map[string]any{"grafana_folder": "Kernel"}, get(cm, "metadata", "annotations"))
	if o := render(t, "grafana: {dashboard: {enabled: false}}").object(t, "ConfigMap", release+"-dashboard"); o != nil {
		t.Error("grafana.dashboard.enabled=false still renders the dashboard ConfigMap")
	}
}

func TestServiceMonitor(t *testing.T) {
	r := render(t, allOn)
	sm := r.must(t, "ServiceMonitor", release)
	svc := r.must(t, "Service", release)
	svcLabels := get(svc, "metadata", "labels").(map[string]any)
	for k, v := range get(sm, "spec", "selector", "matchLabels").(map[string]any) {
		if svcLabels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%v, the Service has %v", k, v, svcLabels[k])
		}
	}
	same(t, "namespaceSelector", []any{namespace}, get(sm, "spec", "namespaceSelector", "matchNames"))
	ep := get(sm, "spec", "endpoints", 0)
	same(t, "endpoint", map[string]any{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}, ep)
	same(t, "ServiceMonitor label release", "kube-prometheus-stack", get(sm, "metadata", "labels", "release"))
	// The Service's metrics port targets the container's, which is the exporter's.
	same(t, "Service ports", []any{
		map[string]any{"name": "metrics", "port": int64(9464), "targetPort": "metrics"},
		map[string]any{"name": "telemetry", "port": int64(8888), "targetPort": "telemetry"},
	}, get(svc, "spec", "ports"))
	same(t, "clusterIP", "None", get(svc, "spec", "clusterIP"))
	ctr := get(r.must(t, "DaemonSet", release), "spec", "template", "spec", "containers", 0)
	same(t, "container metrics port", map[string]any{"name": "metrics", "containerPort": int64(9464)}, get(ctr, "ports", 0))
	same(t, "exporter endpoint", "0.0.0.0:9464", get(r.collectorConfig(t), "exporters", "prometheus", "endpoint"))

	r = render(t, "prometheus: {port: 9999}\nserviceMonitor: {enabled: true, interval: 15s, metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: kpod_syscall_.*}]}")
	same(t, "exporter endpoint on port 9999", "0.0.0.0:9999", get(r.collectorConfig(t), "exporters", "prometheus", "endpoint"))
	same(t, "Service metrics port 9999", int64(9999), get(r.must(t, "Service", release), "spec", "ports", 0, "port"))
	ep = get(r.must(t, "ServiceMonitor", release), "spec", "endpoints", 0)
	same(t, "interval", "15s", get(ep, "interval"))
	same(t, "metricRelabelings", "drop", get(ep, "metricRelabelings", 0, "action"))

	if render(t, "service: {enabled: false}").object(t, "Service", release) != nil {
		t.Error("service.enabled=false still renders the Service")
	}
	if o := render(t, ""); o.object(t, "ServiceMonitor", "") != nil || o.object(t, "PrometheusRule", "") != nil {
		t.Error("ServiceMonitor or PrometheusRule rendered by default (they need the Prometheus Operator's CRDs)")
	}
}

func TestKubernetesDisabled(t *testing.T) {
	r := render(t, "kubernetes: {enabled: false}")
	for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		if r.object(t, k, "") != nil {
			t.Errorf("kubernetes.enabled=false still renders a %s", k)
		}
	}
	pod := get(r.must(t, "DaemonSet", release), "spec", "template", "spec")
	same(t, "serviceAccountName", "default", get(pod, "serviceAccountName"))
	same(t, "automountServiceAccountToken", false, get(pod, "automountServiceAccountToken"))
	cfg := r.collectorConfig(t)
	same(t, "processors", []any{"memory_limiter", "batch"}, get(cfg, "service", "pipelines", "metrics", "processors"))
	if get(cfg, "processors", "k8s_attributes") != nil {
		t.Error("k8s_attributes configured without API access")
	}
	same(t, "receiver kubernetes.enabled", false, get(cfg, "receivers", "kpod", "kubernetes", "enabled"))
}

func TestExports(t *testing.T) {
	cfg := render(t, allOn).collectorConfig(t)
	same(t, "resource processor", map[string]any{"attributes": []any{map[string]any{"key": "k8s.cluster.name", "value": "prod-eu-1", "action": "upsert"}}},
		get(cfg, "processors", "resource"))
	same(t, "processors", []any{"memory_limiter", "k8s_attributes", "resource", "batch"}, get(cfg, "service", "pipelines", "metrics", "processors"))
	same(t, "exporters", []any{"prometheus", "otlp_http"}, get(cfg, "service", "pipelines", "metrics", "exporters"))
	same(t, "otlp_http", map[string]any{
		"endpoint":         "http://otel-gateway.observability.svc.cluster.local:4318",
		"headers":          map[string]any{"api-key": "${env:OTLP_API_KEY}"},
		"compression":      "gzip",
		"sending_queue":    map[string]any{"enabled": true, "sizer": "items", "queue_size": int64(50000)},
		"retry_on_failure": map[string]any{"enabled": true},
	}, get(cfg, "exporters", "otlp_http"))
	// The seed's OTLP endpoint is a full URL ending in /v1/metrics: used as it is.
	r := render(t, "prometheus: {enabled: false}\notlp: {enabled: true, endpoint: http://otel-collector:4318/v1/metrics}")
	cfg = r.collectorConfig(t)
	same(t, "metrics_endpoint", "http://otel-collector:4318/v1/metrics", get(cfg, "exporters", "otlp_http", "metrics_endpoint"))
	if get(cfg, "exporters", "otlp_http", "endpoint") != nil || get(cfg, "exporters", "prometheus") != nil {
		t.Error("otlp_http has an endpoint besides metrics_endpoint, or prometheus is configured while disabled")
	}
	same(t, "exporters without prometheus", []any{"otlp_http"}, get(cfg, "service", "pipelines", "metrics", "exporters"))
	for _, p := range get(r.must(t, "DaemonSet", release), "spec", "template", "spec", "containers", 0, "ports").([]any) {
		if get(p, "name") == "metrics" {
			t.Error("container declares the metrics port without the Prometheus exporter")
		}
	}
	// A name with YAML in it stays a string.
	same(t, "quoted cluster name", "yes: no", get(render(t, `clusterName: "yes: no"`).collectorConfig(t), "processors", "resource", "attributes", 0, "value"))

	for values, msg := range map[string]string{
		"prometheus: {enabled: false}": "nothing would be exported",
		"otlp: {enabled: true}":        "otlp.enabled needs otlp.endpoint",
		"prometheus: {enabled: false}\nserviceMonitor: {enabled: true}\notlp: {enabled: true, endpoint: http://x:4318}": "serviceMonitor.enabled needs prometheus.enabled",
	} {
		if _, err := templateRaw(t, values); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("values %q: %v, want an error saying %q", values, err, msg)
		}
	}
}

// TestReceiverPassthrough: receiver values reach receivers.kpod as they are, over what the
// chart sets, so any receiver key (present or future) is a value.
func TestReceiverPassthrough(t *testing.T) {
	r := render(t, `
receiver:
  profile: comprehensive
  collection_interval: 10s
  initial_delay: 5s
  bpf_stats: true
  proc_root: /proc
  collectors:
    syscall: {enabled: true, interval: 60s, syscalls: [read, futex]}
    softirqs: {enabled: false}
  filters:
    namespaces: [shop]
    label_selector: "app=web,tier!=cache"
  kubernetes: {sync_timeout: 1m}
  metrics:
    kpod.syscall.latency: {enabled: false}
`)
	same(t, "receivers.kpod", map[string]any{
		"node_name":           "${env:K8S_NODE_NAME}",
		"proc_root":           "/proc",
		"cgroup_root":         "/host/sys/fs/cgroup",
		"profile":             "comprehensive",
		"collection_interval": "10s",
		"initial_delay":       "5s",
		"bpf_stats":           true,
		"collectors": map[string]any{
			"syscall":  map[string]any{"enabled": true, "interval": "60s", "syscalls": []any{"read", "futex"}},
			"softirqs": map[string]any{"enabled": false},
		},
		"filters":    map[string]any{"namespaces": []any{"shop"}, "label_selector": "app=web,tier!=cache"},
		"kubernetes": map[string]any{"enabled": true, "sync_timeout": "1m"},
		"metrics":    map[string]any{"kpod.syscall.latency": map[string]any{"enabled": false}},
	}, get(r.collectorConfig(t), "receivers", "kpod"))

	// config is merged last: a debug exporter added to the pipeline.
	cfg := render(t, "config: {exporters: {debug: {verbosity: basic}}, service: {pipelines: {metrics: {exporters: [prometheus, debug]}}}}").collectorConfig(t)
	same(t, "merged exporter", map[string]any{"verbosity": "basic"}, get(cfg, "exporters", "debug"))
	same(t, "merged pipeline exporters", []any{"prometheus", "debug"}, get(cfg, "service", "pipelines", "metrics", "exporters"))
	same(t, "pipeline processors kept", []any{"memory_limiter", "k8s_attributes", "batch"}, get(cfg, "service", "pipelines", "metrics", "processors"))

	// A changed config changes the checksum annotation, so the pods roll.
	sum := func(values string) any {
		return get(render(t, values).must(t, "DaemonSet", release), "spec", "template", "metadata", "annotations", "checksum/config")
	}
	if a, b := sum(""), sum("receiver: {profile: minimal}"); a == b {
		t.Errorf("checksum/config %v did not change with the profile", a)
	}
}

func TestNames(t *testing.T) {
	for rel, want := range map[string]string{"kpod": "kpod", "kpod-metrics": "kpod-metrics", "monitoring": "monitoring-kpod"} {
		out, err := helm(t, "template", rel, chartDir(t), "--namespace", "x")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range yamlDocs(t, []byte(out)) {
			name := get(d, "metadata", "name").(string)
			if name != want && name != want+"-dashboard" {
				t.Errorf("release %s: %s named %s, want %s", rel, d["kind"], name, want)
			}
		}
	}
}

// TestConfigsValidate runs `otelcol-kpod validate` on the collector config of several value
// sets, with the container's paths pointed at this host's (as examples/prometheus does).
func TestConfigsValidate(t *testing.T) {
	bin := testenv.CollectorBinary(t, root(t))
	validate := func(t *testing.T, values string) (string, error) {
		cfg := render(t, values).collectorConfig(t)
		kp := get(cfg, "receivers", "kpod").(map[string]any)
		if kp["proc_root"] == "/host/proc" {
			kp["proc_root"] = "/proc"
		}
		if kp["cgroup_root"] == "/host/sys/fs/cgroup" {
			kp["cgroup_root"] = "/sys/fs/cgroup"
		}
		b, err := json.Marshal(cfg) // JSON is YAML
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "collector.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "validate", "--config", path)
		cmd.Env = append(os.Environ(), "K8S_NODE_NAME=validate-node", "OTLP_API_KEY=secret")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for name, values := range map[string]string{
		"defaults":       "",
		"all on":         allOn,
		"kubernetes off": "kubernetes: {enabled: false}",
		"otlp only":      "prometheus: {enabled: false}\notlp: {enabled: true, endpoint: http://gw:4318/v1/metrics}",
		"custom":         "receiver: {profile: custom, collection_interval: 10s, collectors: {memory: {enabled: true}, syscall: {enabled: true, interval: 60s, syscalls: [read, futex]}}, filters: {namespaces: [shop], label_selector: app=web}}",
	} {
		t.Run(name, func(t *testing.T) {
			if out, err := validate(t, values); err != nil {
				t.Errorf("otelcol-kpod validate: %v\n%s", err, out)
			}
		})
	}
	// A misspelt receiver key passes through the chart and is refused by the collector.
	out, err := validate(t, "receiver: {colection_interval: 10s}")
	if err == nil || !strings.Contains(out, "colection_interval") {
		t.Errorf("a misspelt receiver key validated (%v):\n%s", err, out)
	}
}

// TestTopologyRBAC: when the receiver runs the topology collector, the ClusterRole also lists
// and watches Services and EndpointSlices (examples/kubernetes/rbac-topology.yaml's rules
// after rbac.yaml's); otherwise it has rbac.yaml's rules only.
func TestTopologyRBAC(t *testing.T) {
	var base, topo []any
	for _, d := range readYAML(t, "examples/kubernetes/rbac.yaml") {
		if d["kind"] == "ClusterRole" {
			base = get(d, "rules").([]any)
		}
	}
	for _, d := range readYAML(t, "examples/kubernetes/rbac-topology.yaml") {
		if d["kind"] == "ClusterRole" {
			topo = get(d, "rules").([]any)
		}
	}
	if len(base) == 0 || len(topo) != 2 {
		t.Fatalf("example rules: %v, %v", base, topo)
	}
	with := append(slices.Clone(base), topo...)
	for values, want := range map[string][]any{
		"":                                   base,
		"receiver: {profile: comprehensive}": with,
		"receiver: {profile: comprehensive, collectors: {topology: {enabled: false}}}":              base,
		"receiver: {profile: standard, collectors: {topology: {enabled: true}}}":                    with,
		"receiver: {profile: custom, collectors: {topology: {enabled: true}, l7: {enabled: true}}}": with,
	} {
		r := render(t, values)
		same(t, "ClusterRole rules with "+values, want, get(r.must(t, "ClusterRole", release), "rules"))
	}
}
