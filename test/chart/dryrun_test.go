//go:build kube

package chart

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kubectl runs kubectl against the test API server ($KPOD_TEST_KUBECONFIG).
type kubectl struct {
	bin, kubeconfig, cache string
}

func newKubectl(t *testing.T) *kubectl {
	t.Helper()
	kc := os.Getenv("KPOD_TEST_KUBECONFIG")
	if kc == "" {
		need(t, "KPOD_TEST_KUBECONFIG is not set (make kube starts an API server and sets it)")
	}
	bin := filepath.Join(k8sBin(t), "kubectl")
	if _, err := os.Stat(bin); err != nil {
		need(t, "kubectl is missing: %v", err)
	}
	return &kubectl{bin: bin, kubeconfig: kc, cache: t.TempDir()}
}

func (k *kubectl) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cache}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), err
}

// dryRun sends manifests to the API server with `kubectl apply --dry-run=server` (admission,
// defaulting, schema and strict field validation, nothing stored) and checks that every
// object was accepted.
func (k *kubectl) dryRun(t *testing.T, what string, manifests []byte) {
	t.Helper()
	out, err := k.run(manifests, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	want := len(yamlDocs(t, manifests))
	got := len(regexp.MustCompile(`(?m) (created|configured|unchanged) \(server dry run\)$`).FindAllString(out, -1))
	if got != want || want == 0 {
		t.Errorf("%s: %d of %d objects accepted:\n%s", what, got, want, out)
	}
	t.Logf("%s: %d objects accepted by the API server (server dry run)", what, got)
}

func readFiles(t *testing.T, rels ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, rel := range rels {
		c, err := os.ReadFile(filepath.Join(root(t), rel))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(c)
	}
	return b.Bytes()
}

// TestKubeDryRun: the raw manifests of examples/kubernetes and the chart rendered with
// several value sets are valid for a real kube-apiserver (v1.37, `make kube`), with the
// Prometheus Operator and OpenTelemetry Operator resources checked against the minimal
// CRDs of testdata/crds.yaml.
func TestKubeDryRun(t *testing.T) {
	k := newKubectl(t)
	crds := readFiles(t, "test/chart/testdata/crds.yaml")
	if out, err := k.run(crds, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("CRDs:\n%s", out)
	}
	if _, err := k.run(nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com", "crd/opentelemetrycollectors.opentelemetry.io"); err != nil {
		t.Fatal(err)
	}
	// Namespaced dry runs need the namespace: the raw namespace.yaml is dry-run first, then
	// created (it is also the chart's release namespace).
	ns := readFiles(t, "examples/kubernetes/namespace.yaml")
	k.dryRun(t, "examples/kubernetes/namespace.yaml", ns)
	if _, err := k.run(ns, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = k.run(nil, "delete", "namespace", namespace, "--wait=false") })
	// The discovery cache of kubectl can miss CRDs created a moment ago.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := k.run(nil, "api-resources", "--api-group=monitoring.coreos.com", "-o", "name")
		if err == nil && strings.Contains(out, "prometheusrules") && strings.Contains(out, "servicemonitors") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRDs are not served: %v %s", err, out)
		}
		time.Sleep(time.Second)
	}

	k.dryRun(t, "examples/kubernetes (rbac, configmap, daemonset)", readFiles(t,
		"examples/kubernetes/rbac.yaml", "examples/kubernetes/configmap.yaml", "examples/kubernetes/daemonset.yaml"))
	k.dryRun(t, "examples/kubernetes/prometheusrule.yaml", readFiles(t, "examples/kubernetes/prometheusrule.yaml"))
	k.dryRun(t, "examples/kubernetes/opentelemetrycollector.yaml", readFiles(t, "examples/kubernetes/opentelemetrycollector.yaml"))

	for name, values := range map[string]string{
		"defaults":       "",
		"all on":         allOn,
		"kubernetes off": "kubernetes: {enabled: false}\nserviceMonitor: {enabled: true}",
		"test cluster":   "hostNetwork: true\ndnsPolicy: ClusterFirstWithHostNet\nreceiver: {profile: comprehensive, collection_interval: 10s, cgroup_root: /host/sys/fs/cgroup/unified}",
	} {
		out, err := templateRaw(t, values)
		if err != nil {
			t.Fatal(err)
		}
		k.dryRun(t, "helm template ("+name+")", []byte(out))
	}

	// The dry run is strict: a misspelt field and a rule without an expression are refused.
	out, err := templateRaw(t, allOn)
	if err != nil {
		t.Fatal(err)
	}
	for what, r := range map[string][2]string{
		"a misspelt DaemonSet field": {"      hostPID: true\n", "      hostPid: true\n"},
		"a rule without expr":        {"        expr: ", "        exp: "},
	} {
		if !strings.Contains(out, r[0]) {
			t.Fatalf("rendered chart has no %q", r[0])
		}
		bad := strings.Replace(out, r[0], r[1], 1)
		if o, err := k.run([]byte(bad), "apply", "--dry-run=server", "--validate=strict", "-f", "-"); err == nil {
			t.Errorf("%s was accepted:\n%s", what, o)
		} else {
			t.Logf("%s refused, as it must be: %v", what, err)
		}
	}
}
