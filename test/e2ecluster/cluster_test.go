//go:build e2ecluster

package e2ecluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ---- the cluster of scripts/cluster-up.sh ---------------------------------------------------

// cluster is what the test needs of the running cluster: read from $KPOD_CLUSTER_STATE/env.
type cluster struct {
	state      string
	kubeconfig string
	cacheDir   string
	kubectlBin string
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

// sample is one sample line of the text exposition format.
type sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

func (s sample) String() string {
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

// scrape is one scrape: the raw body (kept for the snapshots) and its samples.
type scrape struct {
	At      time.Time
	Raw     []byte
	Samples []sample
}

// get fetches the endpoint once, as Prometheus does (text format 0.0.4).
func get(ctx context.Context, url string) (*scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	at := time.Now()
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
	ss, err := parseExposition(raw)
	if err != nil {
		return nil, err
	}
	return &scrape{At: at, Raw: raw, Samples: ss}, nil
}

func parseExposition(raw []byte) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %q", n, err, line)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, errors.New("no metric name or value")
	}
	s.Name = line[:i]
	if line[i] == '{' {
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
			if eq < 0 || i+eq+1 >= len(line) || line[i+eq+1] != '"' {
				return s, errors.New("bad label")
			}
			name := strings.TrimSpace(line[i : i+eq])
			i += eq + 2
			var v strings.Builder
			closed := false
			for i < len(line) {
				ch := line[i]
				i++
				if ch == '"' {
					closed = true
					break
				}
				if ch == '\\' && i < len(line) {
					if line[i] == 'n' {
						v.WriteByte('\n')
					} else {
						v.WriteByte(line[i])
					}
					i++
					continue
				}
				v.WriteByte(ch)
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
		return s, err
	}
	s.Value = v
	return s, nil
}

// find returns the samples called name whose labels include want.
func (s *scrape) find(name string, want map[string]string) []sample {
	var out []sample
next:
	for _, x := range s.Samples {
		if x.Name != name {
			continue
		}
		for k, v := range want {
			if x.Labels[k] != v {
				continue next
			}
		}
		out = append(out, x)
	}
	return out
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
