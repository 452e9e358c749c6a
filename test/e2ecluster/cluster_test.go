//go:build e2ecluster

package e2ecluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kpod-project/kpod/internal/promtext"
)

// ---- the cluster of scripts/cluster-up.sh ---------------------------------------------------

// cluster is what the test needs of the running cluster: read from $KPOD_CLUSTER_STATE/env.
type cluster struct {
	state      string
	kubeconfig string
	cacheDir   string
	kubectlBin string
	helmBin    string
	node       string
}

func loadCluster(t *testing.T) *cluster {
	t.Helper()
	state := os.Getenv("KPOD_CLUSTER_STATE")
	if state == "" {
		t.Fatal("KPOD_CLUSTER_STATE is not set: run make e2e-cluster (scripts/e2e-cluster.sh), which starts the cluster for this test")
	}
	b, err := os.ReadFile(filepath.Join(state, "env"))
	if err != nil {
		t.Fatalf("no cluster in %s (scripts/cluster-up.sh writes env): %v", state, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "export ") {
			continue
		}
		kv := strings.TrimPrefix(line, "export ")
		if i := strings.Index(kv, " #"); i >= 0 {
			kv = kv[:i]
		}
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			env[k] = v
		}
	}
	c := &cluster{
		state:      state,
		kubeconfig: env["KUBECONFIG"],
		cacheDir:   env["KUBECACHEDIR"],
		kubectlBin: filepath.Join(env["KPOD_K8S_BIN"], "kubectl"),
		helmBin:    filepath.Join(env["KPOD_K8S_BIN"], "helm"),
		node:       env["K8S_NODE_NAME"],
	}
	if c.kubeconfig == "" || c.node == "" || env["KPOD_K8S_BIN"] == "" {
		t.Fatalf("%s/env lacks KUBECONFIG, K8S_NODE_NAME or KPOD_K8S_BIN: is it a full cluster (not --control-plane-only)?", state)
	}
	return c
}

// kubectl runs kubectl against the cluster and returns its standard output.
func (c *cluster) kubectl(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig, "--cache-dir", c.cacheDir}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// mustKubectl is kubectl with a 2-minute timeout that fails the test on error.
func (c *cluster) mustKubectl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := c.kubectl(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (c *cluster) getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := json.Unmarshal(c.mustKubectl(t, nil, "-n", ns, "get", "pod", name, "-o", "json"), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func (c *cluster) listPods(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	var l corev1.PodList
	if err := json.Unmarshal(c.mustKubectl(t, nil, "-n", ns, "get", "pods", "-l", selector, "-o", "json"), &l); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// podLog returns the last bytes of a container's log file, as the kubelet writes it
// ($STATE/kubelet/pod-logs; `kubectl logs` cannot reach this kubelet, see cluster-up.sh).
func (c *cluster) podLog(p *corev1.Pod, container string, max int) string {
	dir := filepath.Join(c.state, "kubelet", "pod-logs", fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID), container)
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", filepath.Base(f), data)
	}
	s := b.String()
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return s
}

// containerID returns the runtime's id of a pod's container ("containerd://<id>" → "<id>").
func containerID(p *corev1.Pod, name string) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			_, id, _ := strings.Cut(s.ContainerID, "://")
			return id
		}
	}
	return ""
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// eventually polls f every interval until it returns nil or the deadline passes, then fails
// the test with f's last error.
func eventually(t *testing.T, deadline, interval time.Duration, what string, f func() error) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v: %v", what, deadline, err)
		}
		time.Sleep(interval)
	}
}

// ---- the Prometheus endpoint -------------------------------------------------------------------

type sample = promtext.Sample

// scrape is one scrape: the raw body (kept for the snapshots) and its samples.
type scrape struct {
	At      time.Time
	Raw     []byte
	Samples []sample
}

// get fetches the endpoint once, as Prometheus does (text format 0.0.4).
func get(ctx context.Context, url string) (*scrape, error) {
	at := time.Now()
	raw, err := promtext.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	ss, err := promtext.Parse(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &scrape{At: at, Raw: raw, Samples: ss}, nil
}

// find returns the samples called name whose labels include want.
func (s *scrape) find(name string, want map[string]string) []sample {
	return promtext.Filter(s.Samples, name, want)
}

// value is the single sample called name with labels want; ok is false when there is none.
// More than one is an error of the test's label set.
func (s *scrape) value(t *testing.T, name string, want map[string]string) (float64, bool) {
	t.Helper()
	got := s.find(name, want)
	switch len(got) {
	case 0:
		return 0, false
	case 1:
		return got[0].Value, true
	}
	var lines []string
	for _, g := range got {
		lines = append(lines, g.String())
	}
	t.Fatalf("%s%v matches %d series, want one:\n%s", name, want, len(got), strings.Join(lines, "\n"))
	return 0, false
}

// pod returns the series of a pod (by the labels k8s_attributes adds).
func (s *scrape) pod(ns, name string) []sample {
	var out []sample
	for _, x := range s.Samples {
		if x.Labels["k8s_namespace_name"] == ns && x.Labels["k8s_pod_name"] == name {
			out = append(out, x)
		}
	}
	return out
}

func labelsOf(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func merge(a map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range labelsOf(kv...) {
		m[k] = v
	}
	return m
}
