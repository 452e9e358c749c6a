//go:build e2ecluster

// Package e2ecluster proves kpod where users run it: otelcol-kpod installed with
// `helm install` of charts/kpod as a DaemonSet in a real single-node Kubernetes cluster (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet; see
// scripts/cluster-up.sh), watching real pods, with the k8s_attributes processor
// authenticating with its ServiceAccount token.
//
//	make e2e-cluster   (scripts/e2e-cluster.sh: builds, starts the cluster, imports the images,
//	                    runs this test, always tears everything down)
//
// The test installs the chart as the README's quick start says (`helm install kpod charts/kpod
// --namespace kpod --create-namespace`), with the few values this node needs listed in
// chartValues (and clusterName, ServiceMonitor and PrometheusRule on, against minimal CRDs);
// checks the objects helm created; waits for the DaemonSet's pod (hostNetwork: a node
// agent); starts workload pods on the pod network in namespace e2e (kpod-workload, the
// fakepod harness's static C program, in a busybox-static image): a fork loop, a close(-1)
// loop, an O_DIRECT writer to an ext4 volume on a loop device (hostPath), a memory hog that
// its 64 MiB limit gets OOM-killed, and an idle pod. Each deterministic workload waits at a
// gate (a FIFO on a hostPath) after its start-up, so that the test can take a baseline,
// release it, and require the exact difference. It scrapes the DaemonSet's Prometheus
// endpoint (hostNetwork: 127.0.0.1:9464) and checks per-pod values labelled with the
// namespace, pod and container names k8s_attributes adds; runs a client Deployment against a Service backed by two server pods
// over HTTP and Redis and checks the l7 family's counts on both ends against the client's and
// the servers' own (podnet_test.go); checks every pod's interface series against its network
// namespace's counters; deletes a pod and checks that its BPF map entries (bpftool) and its
// series go away; and saves two scrapes 20 s apart as snapshots for the dashboard and rule
// checks of examples/prometheus.
//
// Needs root and the cluster (KPOD_CLUSTER_STATE), KPOD_E2E_WORKLOAD_IMAGE (imported by
// scripts/e2e-cluster.sh), bpftool, mkfs.ext4, losetup, nsenter, ip, ss, nft, redis-cli.
package e2ecluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/testenv"
)

const (
	metricsURL = "http://127.0.0.1:9464/metrics" // the DaemonSet's prometheus exporter (hostNetwork)
	ns         = "e2e"

	// The collection interval the test sets (chartValues) and the batch processor's
	// timeout of the chart's collector config: a value is on the endpoint at most one
	// interval + timeout after it happened.
	interval     = 10 * time.Second
	batchTimeout = 5 * time.Second
	cycle        = interval + batchTimeout + 2*time.Second

	forks       = 500             // fork loop: processes
	closes      = 100000          // syscall loop: close(-1) calls
	written     = 16 << 20        // O_DIRECT writer: bytes
	writeBlock  = 64 << 10        // per pwrite
	hogLimitMiB = 64              // the memory hog's limit
	hogBytes    = 256 << 20       // what it tries to touch
	expiration  = 3 * time.Minute // the chart's prometheus.metricExpiration
)

// ---- the chart --------------------------------------------------------------------------------

const (
	// The release and namespace of the README's quick start (`helm install kpod charts/kpod
	// --namespace kpod --create-namespace ...`): the chart names its objects after the
	// release, so the DaemonSet, its ServiceAccount and ConfigMap are all "kpod".
	helmRelease = "kpod"
	kpodNS      = "kpod"
	clusterName = "kpod-e2e"
)

// value is one Helm value the test sets, where this node differs from a production one (and
// the image, which a user sets too). Each is logged with its reason.
type value struct {
	key string // dotted path
	val any
	why string
}

func chartValues(t *testing.T) []value {
	image := os.Getenv("KPOD_E2E_IMAGE")
	if image == "" {
		t.Fatal("KPOD_E2E_IMAGE is not set (scripts/e2e-cluster.sh builds and imports otelcol-kpod under that name)")
	}
	repo, tag, ok := strings.Cut(image, ":")
	if !ok {
		t.Fatalf("KPOD_E2E_IMAGE=%s has no tag", image)
	}
	v := []value{
		{"image.repository", repo, "the image scripts/e2e-cluster.sh built and imported into the node's containerd"},
		{"image.tag", tag, "with image.repository"},
		{"hostNetwork", true,
			"kpod is a node agent; on this node the API's kubernetes Service (k8s_attributes) is reachable from the host's network namespace only " +
				"(the apiserver listens on 127.0.0.1, see scripts/cluster-up.sh), and the test scrapes the endpoint at 127.0.0.1:9464; the workload pods use the pod network"},
		{"receiver.profile", "comprehensive",
			"the fork loop and the syscall loop are measured by the proc and syscall families, which only the comprehensive profile loads"},
		{"receiver.collectors.l7.enabled", true,
			"the HTTP and Redis workloads are measured by the l7 family (in no profile) and the service graph's request edges come from it"},
		{"receiver.collectors.syscall.latency_sample", 1,
			"every close of the syscall loop timed, so that its latency observations are exact too (the default, 1 in 16, is checked against its binomial bounds by the receiver's tests)"},
		{"receiver.collection_interval", interval.String(), "a shorter cycle makes the test faster"},
		{"otlp.enabled", true, "there is no OTLP gateway here: the test receives the export itself (the collector is hostNetwork)"},
		{"otlp.endpoint", "http://" + otlpAddr, "with otlp.enabled"},
		{"clusterName", clusterName, "k8s.cluster.name on every series: checked on the Prometheus endpoint and in the OTLP export"},
		{"serviceMonitor.enabled", true, "installed against the minimal CRDs of test/chart/testdata (no Prometheus Operator here): the objects must be created"},
		{"prometheusRule.enabled", true, "as serviceMonitor.enabled"},
	}
	if hybrid() {
		v = append(v, value{"receiver.cgroup_root", "/host/sys/fs/cgroup/unified",
			"this host's cgroups are hybrid (cgroup2 at /sys/fs/cgroup/unified), as the value's comment says"})
	}
	if !capInBoundingSet(unix.CAP_SYS_RESOURCE) {
		var chart map[string]any
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t, 2), "charts", "kpod", "values.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &chart); err != nil {
			t.Fatal(err)
		}
		sc, _ := chart["securityContext"].(map[string]any)
		caps, _ := sc["capabilities"].(map[string]any)
		add, _ := caps["add"].([]any)
		var kept []any
		for _, c := range add {
			if c != "SYS_RESOURCE" {
				kept = append(kept, c)
			}
		}
		if len(kept) != len(add)-1 {
			t.Fatalf("charts/kpod/values.yaml securityContext.capabilities.add = %v: expected SYS_RESOURCE once", add)
		}
		v = append(v, value{"securityContext.capabilities.add", kept,
			"this host's processes run without CAP_SYS_RESOURCE in their bounding set, so runc cannot grant it (the capability is only needed on kernels before 5.11)"})
	}
	return v
}

// hybrid reports whether /sys/fs/cgroup is a v1 (hybrid) layout with cgroup2 at unified/.
func hybrid() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		return false
	}
	return unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroup2Root is where this host's cgroup2 hierarchy is mounted.
func cgroup2Root() string {
	if hybrid() {
		return "/sys/fs/cgroup/unified"
	}
	return "/sys/fs/cgroup"
}

func capInBoundingSet(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || n&(1<<uint(c)) != 0
		}
	}
	return true
}

// installCommand is the helm install of the README's quick start, which the test runs.
var installCommand = []string{"install", helmRelease, "charts/kpod", "--namespace", kpodNS, "--create-namespace"}

// helmInstall installs charts/kpod as the README says, with the test's values in a file, and
// returns helm's output. The Prometheus Operator CRDs the ServiceMonitor and PrometheusRule
// need are the minimal ones of test/chart/testdata/crds.yaml.
func helmInstall(t *testing.T, c *cluster) string {
	t.Helper()
	root := testenv.RepoRoot(t, 2)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "helm "+strings.Join(installCommand, " ")) {
		t.Fatalf("README.md no longer says `helm %s`: update the test's installCommand", strings.Join(installCommand, " "))
	}
	values := map[string]any{}
	for _, v := range chartValues(t) {
		m := values
		keys := strings.Split(v.key, ".")
		for _, k := range keys[:len(keys)-1] {
			if _, ok := m[k]; !ok {
				m[k] = map[string]any{}
			}
			m = m[k].(map[string]any)
		}
		m[keys[len(keys)-1]] = v.val
		t.Logf("helm value %s=%v (%s)", v.key, v.val, v.why)
	}
	b, err := json.Marshal(values) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	crds, err := os.ReadFile(filepath.Join(root, "test", "chart", "testdata", "crds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.mustKubectl(t, crds, "apply", "-f", "-")
	c.mustKubectl(t, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com")
	args := append(append([]string{}, installCommand...), "-f", file, "--kubeconfig", c.kubeconfig)
	cmd := exec.Command(c.helmBin, args...)
	cmd.Dir = root
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return fmt.Sprintf("helm %s:\n%s", strings.Join(args, " "), out)
}

// ---- workloads -------------------------------------------------------------------------------

// workload is one pod of namespace e2e with one container.
type workload struct {
	pod, container string
	args           string // kpod-workload's arguments
	gated          bool   // waits at its gate until the test releases it, then sleeps
	memLimitMiB    int
	disk           bool // the ext4 volume at /data
}

var workloads = []*workload{
	{pod: "e2e-fork", container: "forker", args: fmt.Sprintf("fork %d 0", forks), gated: true},
	{pod: "e2e-syscall", container: "syscaller", args: fmt.Sprintf("close %d", closes), gated: true},
	{pod: "e2e-writer", container: "writer", args: fmt.Sprintf("dwrite /data/written %d %d", written, writeBlock), gated: true, disk: true},
	{pod: "e2e-oom", container: "hog", args: fmt.Sprintf("alloc %d", hogBytes), memLimitMiB: hogLimitMiB},
	{pod: "e2e-idle", container: "idle"},
}

// command is the container's command. A gated workload's shell opens the gate FIFO
// read-write (so that opening it never blocks) and the ready file on descriptors 3 and 4 with
// `exec`, so that nothing is opened or closed around the workload; kpod-workload writes one
// byte to fd 4, blocks reading fd 3, and after the test writes a byte there does its work
// and exits; the shell then execs `kpod-workload sleep`. After the gate the container does
// exactly: the workload's system calls, exits and forks, the shell's wait4, and one exec.
func (w *workload) command() []string {
	switch {
	case w.args == "":
		return []string{"/kpod-workload", "sleep"}
	case !w.gated:
		// the hog is the container's largest process: the OOM killer picks it, the shell
		// survives and sleeps, so the container (and its series) stays.
		return []string{"/bin/sh", "-c", "/kpod-workload " + w.args + "; exec /kpod-workload sleep"}
	}
	return []string{"/bin/sh", "-c", fmt.Sprintf(
		"exec 3<>/e2e/%[1]s.gate 4>/e2e/%[1]s.ready; KPOD_GATE_FD=3 KPOD_READY_FD=4 /kpod-workload %[2]s; exec /kpod-workload sleep",
		w.pod, w.args)}
}

func (w *workload) manifest(image, gates, disk string) []byte {
	hp := func(path string) corev1.VolumeSource {
		typ := corev1.HostPathDirectory
		return corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &typ}}
	}
	grace := int64(1)
	c := corev1.Container{
		Name:            w.container,
		Image:           image,
		ImagePullPolicy: corev1.PullNever,
		Command:         w.command(),
	}
	p := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: w.pod, Namespace: ns, Labels: map[string]string{"app": w.pod}},
		Spec: corev1.PodSpec{ // on the pod network: a network namespace and an IP of its own
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: &grace,
		},
	}
	if w.gated {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "gates", MountPath: "/e2e"})
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "gates", VolumeSource: hp(gates)})
	}
	if w.disk {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: hp(disk)})
	}
	if w.memLimitMiB > 0 {
		c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dMi", w.memLimitMiB))}
	}
	p.Spec.Containers = []corev1.Container{c}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return b
}

// ---- the test --------------------------------------------------------------------------------

func TestKpodDaemonSet(t *testing.T) {
	fakepod.RequireRoot(t) // and take turns with other real-kernel tests (BPF attach/detach)
	c := loadCluster(t)
	image := os.Getenv("KPOD_E2E_WORKLOAD_IMAGE")
	if image == "" {
		t.Fatal("KPOD_E2E_WORKLOAD_IMAGE is not set (scripts/e2e-cluster.sh builds and imports it)")
	}
	bpftool, err := exec.LookPath("bpftool")
	if err != nil {
		t.Fatal("bpftool is needed (apt-get install bpftool)")
	}
	work := os.Getenv("KPOD_E2E_WORK")
	if work == "" {
		work = t.TempDir()
	}

	// ---- install kpod with helm (charts/kpod) ------------------------------------------------
	sink := startOTLPSink(t)
	t.Cleanup(func() {
		if t.Failed() {
			diagnose(t, c)
		}
	})
	start := time.Now()
	t.Log(helmInstall(t, c))
	c.mustKubectl(t, nil, "-n", kpodNS, "rollout", "status", "daemonset/"+helmRelease, "--timeout=180s")
	dsPods := c.listPods(t, kpodNS, "app.kubernetes.io/name=kpod")
	if len(dsPods) != 1 || !podReady(&dsPods[0]) {
		t.Fatalf("want one Ready DaemonSet pod, got %d", len(dsPods))
	}
	ds := &dsPods[0]
	t.Logf("DaemonSet pod %s Ready on node %s %v after helm install (created by the DaemonSet controller, placed by the scheduler)",
		ds.Name, ds.Spec.NodeName, time.Since(start).Round(time.Second))
	checkServiceAccountToken(t, ds)
	checkInstalledObjects(t, c)
	snapDir := os.Getenv("KPOD_E2E_SNAPSHOT_DIR")
	if snapDir == "" {
		snapDir = t.TempDir()
	}
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The collector's log, for after the cluster is gone.
		p := filepath.Join(snapDir, "otelcol-kpod.log")
		if err := os.WriteFile(p, []byte(c.podLog(ds, "otelcol-kpod", 4<<20)), 0o644); err == nil {
			t.Logf("collector log saved in %s", p)
		}
	})

	// The collector labels its own container with the names k8s_attributes found: that needs
	// the API, reached through the ServiceAccount token and the kubernetes Service.
	var first *scrape
	own := map[string]string{"k8s_namespace_name": kpodNS, "k8s_pod_name": ds.Name, "k8s_container_name": "otelcol-kpod"}
	eventually(t, 3*time.Minute, 2*time.Second, "the collector's own container series, enriched by k8s_attributes", func() error {
		s, err := get(context.Background(), metricsURL)
		if err != nil {
			return err
		}
		if len(s.find("kpod_cpu_context_switches_total", own)) == 0 {
			return fmt.Errorf("no kpod_cpu_context_switches_total%v among %d samples", own, len(s.Samples))
		}
		first = s
		return nil
	})
	t.Logf("first enriched scrape %v after helm install: %d samples; %s", time.Since(start).Round(time.Second), len(first.Samples), lostUpdates(first))
	checkUnavailable(t, first)
	checkClusterName(t, first)

	// ---- workloads -------------------------------------------------------------------------
	gates := filepath.Join(work, "gates")
	if err := os.MkdirAll(gates, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, w := range workloads {
		if w.gated {
			_ = os.Remove(filepath.Join(gates, w.pod+".gate"))
			_ = os.Remove(filepath.Join(gates, w.pod+".ready"))
			if err := unix.Mkfifo(filepath.Join(gates, w.pod+".gate"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	disk, dev := newDisk(t, work)
	c.mustKubectl(t, nil, "create", "namespace", ns)
	t.Cleanup(func() {
		// Before the volume is unmounted and the loop device detached (cleanups run last first).
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := c.kubectl(ctx, nil, "delete", "namespace", ns, "--wait=true", "--timeout=90s"); err != nil {
			t.Errorf("deleting namespace %s: %v", ns, err)
		}
	})
	for _, w := range workloads {
		c.mustKubectl(t, w.manifest(image, gates, disk), "create", "-f", "-")
	}
	pods := map[string]*corev1.Pod{}
	eventually(t, 2*time.Minute, time.Second, "workload pods Running", func() error {
		for _, w := range workloads {
			p := c.getPod(t, ns, w.pod)
			if p.Status.Phase != corev1.PodRunning || containerID(p, w.container) == "" {
				return fmt.Errorf("pod %s is %s", w.pod, p.Status.Phase)
			}
			pods[w.pod] = p
		}
		return nil
	})
	for _, w := range workloads {
		p := pods[w.pod]
		t.Logf("pod %s/%s uid %s container %s id %.12s qos %s", ns, p.Name, p.UID, w.container, containerID(p, w.container), p.Status.QOSClass)
	}
	eventually(t, time.Minute, 200*time.Millisecond, "gated workloads at their gates", func() error {
		for _, w := range workloads {
			if !w.gated {
				continue
			}
			st, err := os.Stat(filepath.Join(gates, w.pod+".ready"))
			if err != nil || st.Size() < 1 {
				return fmt.Errorf("%s not at its gate yet", w.pod)
			}
		}
		return nil
	})

	// ---- baseline: every workload container reported, enriched, and quiet ----------------
	key := func(w *workload) map[string]string {
		return map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": w.pod, "k8s_container_name": w.container}
	}
	// measured are the counters compared before and after the gate.
	type measure struct {
		name  string
		extra []string // label name and value
	}
	measured := []measure{
		{name: "kpod_proc_forks_total"},
		{name: "kpod_proc_exits_total"},
		{name: "kpod_proc_execs_total"},
		{name: "kpod_syscall_count_total", extra: []string{"syscall", "close"}},
		{name: "kpod_syscall_errors_total", extra: []string{"syscall", "close"}},
		{name: "kpod_syscall_latency_seconds_count", extra: []string{"syscall", "close"}},
	}
	snapshotValues := func(s *scrape) map[string]float64 {
		m := map[string]float64{}
		for _, w := range workloads {
			for _, mm := range measured {
				v, _ := s.value(t, mm.name, merge(key(w), mm.extra...))
				m[w.pod+"/"+mm.name+strings.Join(mm.extra, "=")] = v
			}
		}
		return m
	}
	time.Sleep(cycle) // the cycle after the gates were reached
	var base *scrape
	eventually(t, 3*time.Minute, time.Second, "a quiet baseline (two scrapes a cycle apart with the same counters)", func() error {
		a, err := get(context.Background(), metricsURL)
		if err != nil {
			return err
		}
		for _, w := range workloads {
			if len(a.find("kpod_proc_forks_total", key(w))) != 1 {
				return fmt.Errorf("no kpod_proc_forks_total%v yet", key(w))
			}
		}
		time.Sleep(interval + time.Second)
		b, err := get(context.Background(), metricsURL)
		if err != nil {
			return err
		}
		va, vb := snapshotValues(a), snapshotValues(b)
		for k, v := range va {
			if vb[k] != v {
				return fmt.Errorf("%s moved from %g to %g", k, v, vb[k])
			}
		}
		base = b
		return nil
	})
	checkIdentity(t, base, pods)
	t.Logf("baseline: %s", lostUpdates(base))

	// ---- release the gates -----------------------------------------------------------------
	released := time.Now()
	for _, w := range workloads {
		if !w.gated {
			continue
		}
		f, err := os.OpenFile(filepath.Join(gates, w.pod+".gate"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatalf("opening %s's gate: %v", w.pod, err)
		}
		if _, err := f.Write([]byte{'g'}); err != nil {
			t.Fatalf("releasing %s: %v", w.pod, err)
		}
		f.Close()
	}
	fork, sys, writer, hog, idle := workloads[0], workloads[1], workloads[2], workloads[3], workloads[4]
	delta := func(s *scrape, w *workload, name string, extra ...string) float64 {
		v, _ := s.value(t, name, merge(key(w), extra...))
		b, _ := base.value(t, name, merge(key(w), extra...))
		return v - b
	}
	diskKey := merge(key(writer), "system_device", dev)
	eventually(t, 2*time.Minute, 2*time.Second, "the workloads' counts on the endpoint", func() error {
		s, err := get(context.Background(), metricsURL)
		if err != nil {
			return err
		}
		v, _ := s.value(t, "kpod_disk_written_bytes_total", diskKey)
		switch {
		case delta(s, fork, "kpod_proc_forks_total") < forks:
			return fmt.Errorf("forks %g", delta(s, fork, "kpod_proc_forks_total"))
		case delta(s, sys, "kpod_syscall_count_total", "syscall", "close") < closes:
			return fmt.Errorf("close calls %g", delta(s, sys, "kpod_syscall_count_total", "syscall", "close"))
		case v < 0.99*written:
			return fmt.Errorf("written bytes %g", v)
		}
		return nil
	})
	t.Logf("workload counts on the endpoint %v after the gates opened", time.Since(released).Round(time.Second))
	// One more cycle: a cycle that read the maps while the work was in flight may show part
	// of it, and nothing may keep counting after the work is done.
	time.Sleep(cycle)
	final, err := get(context.Background(), metricsURL)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("no lost BPF updates while the workloads ran", func(t *testing.T) {
		// kpod counts map updates that failed in the kernel; one in the measured window
		// would make an exact count a matter of luck.
		t.Logf("final: %s", lostUpdates(final))
		for _, s := range final.find("kpod_bpf_map_update_errors_total", nil) {
			if b := base.find(s.Name, s.Labels); s.Value != firstValue(b) {
				t.Errorf("%s: %g updates lost while the workloads ran (was %g)", s.Labels["map"], s.Value-firstValue(b), firstValue(b))
			}
		}
	})
	t.Run("fork loop", func(t *testing.T) {
		exact(t, "forks", delta(final, fork, "kpod_proc_forks_total"), forks)
		exact(t, "exits (the children and the workload)", delta(final, fork, "kpod_proc_exits_total"), forks+1)
		exact(t, "execs (the shell's exec of the sleeper)", delta(final, fork, "kpod_proc_execs_total"), 1)
		exact(t, "close calls", delta(final, fork, "kpod_syscall_count_total", "syscall", "close"), 0)
	})
	t.Run("OTLP export agrees with the Prometheus endpoint", func(t *testing.T) {
		want, ok := final.value(t, "kpod_proc_forks_total", key(fork))
		if !ok {
			t.Fatal("no kpod_proc_forks_total for the fork loop")
		}
		eventually(t, 2*cycle, time.Second, "kpod.proc.forks of the fork loop over OTLP", func() error {
			got, ok := sink.value("kpod.proc.forks", ns, fork.pod, fork.container)
			if n, bad := sink.stats(); !ok || got != want {
				return fmt.Errorf("OTLP: %g (received: %v; %d requests, bad: %v), Prometheus %g", got, ok, n, bad, want)
			}
			return nil
		})
		if n, bad := sink.stats(); len(bad) > 0 {
			t.Errorf("%d of %d OTLP requests could not be read: %v", len(bad), n, bad)
		}
		t.Logf("kpod.proc.forks of %s/%s over OTLP/HTTP (gzip, with k8s_attributes' names): %g, as on the Prometheus endpoint", ns, fork.pod, want)
		// clusterName: k8s.cluster.name on every resource exported.
		names := sink.clusterNames()
		if len(names) != 1 || names[clusterName] == 0 {
			t.Errorf("OTLP resources by k8s.cluster.name: %v, want all %q", names, clusterName)
		}
		t.Logf("OTLP resources by k8s.cluster.name: %v", names)
	})
	t.Run("syscall loop", func(t *testing.T) {
		exact(t, "close calls", delta(final, sys, "kpod_syscall_count_total", "syscall", "close"), closes)
		exact(t, "close errors (EBADF)", delta(final, sys, "kpod_syscall_errors_total", "syscall", "close"), closes)
		exact(t, "close latency observations", delta(final, sys, "kpod_syscall_latency_seconds_count", "syscall", "close"), closes)
		exact(t, "forks", delta(final, sys, "kpod_proc_forks_total"), 0)
		exact(t, "exits", delta(final, sys, "kpod_proc_exits_total"), 1)
	})
	t.Run("O_DIRECT writer", func(t *testing.T) {
		v, ok := final.value(t, "kpod_disk_written_bytes_total", diskKey)
		if !ok {
			t.Fatalf("no kpod_disk_written_bytes_total%v", diskKey)
		}
		// Exact: O_DIRECT data goes to the device in the writer's own bios, one per pwrite;
		// ext4's metadata goes through its journal thread and writeback, charged elsewhere.
		exact(t, "bytes written to "+dev, v, written)
		if n, ok := final.value(t, "kpod_disk_writes_total", diskKey); !ok {
			t.Errorf("no kpod_disk_writes_total%v", diskKey)
		} else {
			exact(t, "writes to "+dev, n, written/writeBlock)
		}
		for _, s := range final.find("kpod_disk_written_bytes_total", map[string]string{"system_device": dev}) {
			if s.Value > 0 && s.Labels["k8s_pod_name"] != writer.pod {
				t.Errorf("bytes written to %s charged to another container: %s", dev, s)
			}
		}
		// /data is the host's mount of the volume, seen through the pod's mount namespace.
		var st unix.Statfs_t
		if err := unix.Statfs(disk, &st); err != nil {
			t.Fatal(err)
		}
		v, ok = final.value(t, "kpod_fs_capacity_bytes", merge(key(writer), "system_filesystem_mountpoint", "/data"))
		if !ok {
			t.Fatalf("no kpod_fs_capacity_bytes for the writer's /data volume")
		}
		exact(t, "capacity of the writer's /data", v, float64(st.Blocks*uint64(st.Frsize)))
	})
	t.Run("memory hog", func(t *testing.T) {
		v, ok := final.value(t, "kpod_mem_oom_kills_total", key(hog))
		if !ok {
			t.Fatalf("no kpod_mem_oom_kills_total%v", key(hog))
		}
		exact(t, "OOM kills of the hog's container", v, 1)
		for _, s := range final.find("kpod_mem_oom_kills_total", nil) {
			if s.Value != 0 && s.Labels["k8s_container_name"] != hog.container {
				t.Errorf("OOM kill charged to another container: %s", s)
			}
		}
		peak, ok := final.value(t, "kpod_mem_cgroup_peak_bytes", key(hog))
		limit := float64(hogLimitMiB << 20)
		if !ok || peak > limit || peak < 0.9*limit {
			t.Errorf("kpod_mem_cgroup_peak_bytes of the hog = %g (present %v), want within 90-100 %% of its %d MiB limit", peak, ok, hogLimitMiB)
		}
		p := c.getPod(t, ns, hog.pod)
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("the hog's pod is %s; the shell should have survived the OOM kill of its child", p.Status.Phase)
		}
	})
	t.Run("idle pod", func(t *testing.T) {
		// Nothing of the others' activity, and no counter of its own moved while they worked.
		for _, name := range []string{"kpod_proc_forks_total", "kpod_proc_exits_total", "kpod_mem_oom_kills_total"} {
			if v, ok := final.value(t, name, key(idle)); !ok {
				t.Errorf("idle pod has no %s (zeros are real: it must be reported)", name)
			} else if name == "kpod_mem_oom_kills_total" && v != 0 {
				t.Errorf("idle pod %s = %g", name, v)
			}
		}
		if v, _ := final.value(t, "kpod_syscall_errors_total", merge(key(idle), "syscall", "close")); v != 0 {
			t.Errorf("idle pod has close errors: %g", v)
		}
		if len(final.find("kpod_disk_written_bytes_total", merge(key(idle), "system_device", dev))) != 0 {
			t.Errorf("idle pod has written bytes on %s", dev)
		}
		moved := 0
		for _, s := range final.pod(ns, idle.pod) {
			if !isCounter(s.Name) {
				continue
			}
			b := base.find(s.Name, s.Labels)
			if len(b) == 1 && b[0].Value != s.Value {
				t.Errorf("idle pod: %s moved from %g while the others worked", s, b[0].Value)
				moved++
			} else if len(b) == 0 && s.Value != 0 {
				t.Errorf("idle pod: %s appeared while the others worked", s)
				moved++
			}
		}
		if moved == 0 {
			t.Logf("idle pod: none of its %d counter series moved", len(final.pod(ns, idle.pod)))
		}
	})
	t.Run("no cross-charging", func(t *testing.T) {
		for _, s := range final.find("kpod_proc_forks_total", nil) {
			if s.Labels["k8s_pod_name"] == fork.pod {
				continue
			}
			if b := base.find(s.Name, s.Labels); len(b) == 1 && s.Value-b[0].Value >= forks {
				t.Errorf("the fork loop charged to another container: %s (was %g)", s, b[0].Value)
			}
		}
		for _, s := range final.find("kpod_syscall_errors_total", map[string]string{"syscall": "close"}) {
			if s.Labels["k8s_pod_name"] == sys.pod {
				continue
			}
			if b := base.find(s.Name, s.Labels); s.Value-firstValue(b) >= closes/2 {
				t.Errorf("the close loop charged to another container: %s", s)
			}
		}
	})

	// ---- the pod network: a client Deployment, a Service, two server pods ------------------
	var netPods []*corev1.Pod
	t.Run("Service traffic: HTTP and Redis through a ClusterIP", func(t *testing.T) {
		netPods = testServiceTraffic(t, c, image, gates)
	})
	t.Run("interface counters of the pods' network namespaces", func(t *testing.T) {
		var all []*corev1.Pod
		for _, w := range workloads {
			all = append(all, pods[w.pod])
		}
		testIfaceExact(t, append(all, netPods...))
	})

	// ---- TCP drops no pod's socket owns ---------------------------------------------------
	// Before the snapshots, so that the node-level drop series is in both of them.
	t.Run("TCP drops without a socket (node)", func(t *testing.T) {
		testNodeDrops(t)
	})

	// ---- snapshots for the dashboard and rule checks --------------------------------------
	snaps := takeSnapshots(t, snapDir, ds)

	// ---- a pod deleted mid-run -------------------------------------------------------------
	deleted := c.getPod(t, ns, sys.pod)
	t.Run("deleted pod", func(t *testing.T) {
		testDeletedPod(t, c, bpftool, ds, deleted, sys)
	})

	t.Run("dashboard and rules on the snapshots", func(t *testing.T) {
		checkQueries(t, filepath.Dir(snaps[0]))
	})

	t.Run("deleted pod's series expire", func(t *testing.T) {
		// The prometheus exporter keeps a series until metric_expiration after its last
		// update (the chart's prometheus.metricExpiration: 3m).
		start := time.Now()
		eventually(t, expiration+2*cycle, 5*time.Second, "no series of the deleted pod on the endpoint", func() error {
			s, err := get(context.Background(), metricsURL)
			if err != nil {
				return err
			}
			var left []string
			for _, x := range s.Samples {
				if x.Labels["k8s_pod_uid"] == string(deleted.UID) || x.Labels["k8s_pod_name"] == sys.pod {
					left = append(left, x.String())
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("%d series left, e.g. %s", len(left), left[0])
			}
			for _, w := range workloads {
				if w != sys && len(s.pod(ns, w.pod)) == 0 {
					return fmt.Errorf("the series of %s are gone too", w.pod)
				}
			}
			return nil
		})
		t.Logf("the deleted pod's series left the endpoint %v after this check began (metric_expiration %v)", time.Since(start).Round(time.Second), expiration)
	})
}

func exact(t *testing.T, what string, got float64, want float64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: %g, want exactly %g", what, got, want)
	} else {
		t.Logf("%s: %g (exact)", what, got)
	}
}

func firstValue(ss []sample) float64 {
	if len(ss) == 0 {
		return 0
	}
	return ss[0].Value
}

// lostUpdates summarizes kpod_bpf_map_update_errors_total and the maps' fill.
func lostUpdates(s *scrape) string {
	var parts []string
	for _, x := range s.find("kpod_bpf_map_update_errors_total", nil) {
		if x.Value == 0 {
			continue
		}
		m := x.Labels["map"]
		e := firstValue(s.find("kpod_bpf_map_entries", map[string]string{"map": m}))
		c := firstValue(s.find("kpod_bpf_map_capacity", map[string]string{"map": m}))
		parts = append(parts, fmt.Sprintf("%s %g (entries %g of %g)", m, x.Value, e, c))
	}
	if len(parts) == 0 {
		return "no BPF map update lost"
	}
	sort.Strings(parts)
	return "BPF map updates lost (kpod_bpf_map_update_errors_total): " + strings.Join(parts, ", ")
}

// isCounter: counters and histogram parts (which only grow).
func isCounter(name string) bool {
	return strings.HasSuffix(name, "_total") || strings.HasSuffix(name, "_bucket") ||
		strings.HasSuffix(name, "_count") || strings.HasSuffix(name, "_sum")
}

// newDisk makes an ext4 volume on a loop device (fakepod.NewExt4: 4 KiB blocks, no lazy
// init, so no background writes to the device while the test counts), mounted in work/disk
// for the writer's hostPath; returns the mount point and the device name (loopN).
// Unmounted and detached when the test ends.
func newDisk(t *testing.T, work string) (string, string) {
	t.Helper()
	e := fakepod.NewExt4(t, 64, fakepod.Ext4Options{Dir: filepath.Join(work, "disk")})
	return e.Dir, e.Dev.Name
}

// checkServiceAccountToken: the DaemonSet's pod runs as its ServiceAccount with a projected
// token (the ServiceAccount admission plugin and the token controllers are running).
func checkServiceAccountToken(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if p.Spec.ServiceAccountName != helmRelease {
		t.Errorf("DaemonSet pod runs as ServiceAccount %q, want the chart's %s", p.Spec.ServiceAccountName, helmRelease)
	}
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				t.Logf("DaemonSet pod has the projected ServiceAccount token volume %s", v.Name)
				return
			}
		}
	}
	t.Errorf("DaemonSet pod has no projected ServiceAccount token volume: k8s_attributes (auth_type serviceAccount) cannot authenticate")
}

// checkClusterName: the chart's clusterName is the label k8s_cluster_name of every series.
func checkClusterName(t *testing.T, s *scrape) {
	t.Helper()
	var without []string
	for _, x := range s.Samples {
		if x.Labels["k8s_cluster_name"] != clusterName && len(without) < 5 {
			without = append(without, x.String())
		}
	}
	if len(without) > 0 || len(s.Samples) == 0 {
		t.Errorf("series without k8s_cluster_name=%q (of %d samples), e.g.:\n%s", clusterName, len(s.Samples), strings.Join(without, "\n"))
	} else {
		t.Logf("all %d samples carry k8s_cluster_name=%q", len(s.Samples), clusterName)
	}
}

// checkInstalledObjects: helm install created every object of the chart that the test's
// values turn on, the dashboard and rules with their content.
func checkInstalledObjects(t *testing.T, c *cluster) {
	t.Helper()
	out := c.mustKubectl(t, nil, "-n", kpodNS, "get", "serviceaccount,configmap,service,daemonset,servicemonitor,prometheusrule",
		"-l", "app.kubernetes.io/instance="+helmRelease, "-o", "name")
	got := strings.Fields(string(out))
	sort.Strings(got)
	want := []string{"configmap/" + helmRelease, "configmap/" + helmRelease + "-dashboard", "daemonset.apps/" + helmRelease,
		"prometheusrule.monitoring.coreos.com/" + helmRelease, "service/" + helmRelease,
		"serviceaccount/" + helmRelease, "servicemonitor.monitoring.coreos.com/" + helmRelease}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("objects of release %s in namespace %s: %v, want %v", helmRelease, kpodNS, got, want)
	}
	for _, o := range []string{"clusterrole/" + helmRelease, "clusterrolebinding/" + helmRelease} {
		c.mustKubectl(t, nil, "get", o)
	}
	groups := c.mustKubectl(t, nil, "-n", kpodNS, "get", "prometheusrule", helmRelease, "-o", "jsonpath={.spec.groups[*].name}")
	dash := c.mustKubectl(t, nil, "-n", kpodNS, "get", "configmap", helmRelease+"-dashboard", "-o", "jsonpath={.metadata.labels.grafana_dashboard} {.data.kpod-dashboard\\.json}")
	label, body, _ := strings.Cut(string(dash), " ")
	if label != "1" || !json.Valid([]byte(body)) || !strings.Contains(body, `"kpod_`) {
		t.Errorf("dashboard ConfigMap: label grafana_dashboard=%q, %d bytes of JSON (valid %v)", label, len(body), json.Valid([]byte(body)))
	}
	t.Logf("installed: %v, cluster-wide ClusterRole and binding; PrometheusRule groups: %s; dashboard %d bytes", got, groups, len(body))
}

// checkUnavailable logs the families this node cannot run (kpod_collector_unavailable 1).
func checkUnavailable(t *testing.T, s *scrape) {
	t.Helper()
	var off []string
	for _, x := range s.find("kpod_collector_unavailable", nil) {
		if x.Value != 0 {
			off = append(off, x.Labels["collector"]+": "+x.Labels["reason"])
		}
	}
	for _, want := range []string{"proc", "syscall", "oom", "diskio", "memory"} {
		for _, o := range off {
			if strings.HasPrefix(o, want+":") {
				t.Fatalf("collector %s is unavailable in the DaemonSet: %s", want, o)
			}
		}
	}
	if len(off) > 0 {
		t.Logf("collectors unavailable on this node: %s", strings.Join(off, "; "))
	}
}

// checkIdentity: the series of each workload carry the pod's UID and the container's id as
// the API reports them, and the pod label k8s_attributes extracts.
func checkIdentity(t *testing.T, s *scrape, pods map[string]*corev1.Pod) {
	t.Helper()
	for _, w := range workloads {
		p := pods[w.pod]
		series := s.find("kpod_proc_forks_total", map[string]string{"k8s_namespace_name": ns, "k8s_pod_name": w.pod, "k8s_container_name": w.container})
		if len(series) != 1 {
			t.Errorf("%s/%s: want one kpod_proc_forks_total series, got %d", w.pod, w.container, len(series))
			continue
		}
		l := series[0].Labels
		want := map[string]string{
			"k8s_pod_uid":       string(p.UID),
			"container_id":      containerID(p, w.container),
			"k8s_node_name":     p.Spec.NodeName,
			"k8s_pod_label_app": w.pod, // k8s_attributes' default tag k8s.pod.label.<key>
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s/%s: label %s=%q, want %q", w.pod, w.container, k, l[k], v)
			}
		}
	}
}

// diagnose logs what helps to understand a failure: pods, events, the collector's log.
func diagnose(t *testing.T, c *cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
	} {
		out, err := c.kubectl(ctx, nil, args...)
		t.Logf("kubectl %s (%v):\n%s", strings.Join(args, " "), err, out)
	}
	var l corev1.PodList
	if out, err := c.kubectl(ctx, nil, "-n", kpodNS, "get", "pods", "-o", "json"); err == nil && json.Unmarshal(out, &l) == nil {
		for i := range l.Items {
			t.Logf("log of %s/otelcol-kpod (last 12 KiB):\n%s", l.Items[i].Name, c.podLog(&l.Items[i], "otelcol-kpod", 12<<10))
		}
	}
}

// ---- deletion ----------------------------------------------------------------------------------

// testDeletedPod deletes a workload pod and checks that kpod drops its BPF map entries: no
// key of any of the DaemonSet collector's maps holds the cgroup id of the pod's container or
// sandbox any more (bpftool on the maps the collector holds open).
func testDeletedPod(t *testing.T, c *cluster, bpftool string, ds, p *corev1.Pod, w *workload) {
	pid := collectorPID(t, ds)
	ids := podCgroupIDs(t, p)
	if len(ids) < 2 {
		t.Fatalf("pod %s: want the cgroups of its sandbox and container, found %v", p.Name, ids)
	}
	before := mapKeysOf(t, bpftool, pid, ids)
	total := 0
	for m, n := range before {
		total += n
		t.Logf("before deletion: %d entries of %s hold the pod's cgroups", n, m)
	}
	if before["kpod_sys"] == 0 || before["kpod_proc"] == 0 {
		t.Fatalf("the syscall and proc maps hold no entry of pod %s's cgroups %v before it is deleted: %v", p.Name, ids, before)
	}
	s, err := get(context.Background(), metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	entries := func(s *scrape, m string) float64 {
		v, _ := s.value(t, "kpod_bpf_map_entries", map[string]string{"map": m})
		return v
	}
	sysBefore := entries(s, "kpod_sys")

	start := time.Now()
	c.mustKubectl(t, nil, "-n", ns, "delete", "pod", p.Name, "--wait=true", "--timeout=90s")
	t.Logf("pod %s deleted in %v", p.Name, time.Since(start).Round(100*time.Millisecond))
	eventually(t, 3*cycle, time.Second, "the BPF map entries of the deleted pod's cgroups removed", func() error {
		left := mapKeysOf(t, bpftool, pid, ids)
		for m, n := range left {
			if n > 0 {
				return fmt.Errorf("%s still holds %d entries of the pod's cgroups", m, n)
			}
		}
		return nil
	})
	t.Logf("no BPF map entry of the deleted pod's cgroups left %v after the deletion", time.Since(start).Round(time.Second))
	// kpod_bpf_map_entries counts every cgroup of the node (other tests on this host create
	// and remove theirs meanwhile), so its change is only shown; the keys above are the check.
	time.Sleep(cycle)
	if s, err := get(context.Background(), metricsURL); err == nil {
		t.Logf("kpod_bpf_map_entries{map=kpod_sys}: %g before the deletion, %g a cycle after it (the pod had %d)",
			sysBefore, entries(s, "kpod_sys"), before["kpod_sys"])
	}
}

// collectorPID is the host pid of the DaemonSet's otelcol-kpod process.
func collectorPID(t *testing.T, ds *corev1.Pod) int {
	t.Helper()
	id := containerID(ds, "otelcol-kpod")
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), id) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); filepath.Base(exe) == "otelcol-kpod" {
			return pid
		}
	}
	t.Fatalf("no otelcol-kpod process in container %.12s", id)
	return 0
}

// podCgroupIDs are the cgroup2 ids (directory inodes) of a pod's sandbox and containers.
func podCgroupIDs(t *testing.T, p *corev1.Pod) map[uint64]string {
	t.Helper()
	root := cgroup2Root()
	var dirs []string
	for _, pat := range []string{"kubepods/*/pod%s/*", "kubepods/pod%s/*"} {
		m, _ := filepath.Glob(filepath.Join(root, fmt.Sprintf(pat, p.UID)))
		dirs = append(dirs, m...)
	}
	ids := map[uint64]string{}
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		ids[st.Ino] = strings.TrimPrefix(d, root)
	}
	return ids
}

// processMaps are the ids of the BPF maps a process holds open (fdinfo map_id of its
// anon_inode:bpf-map descriptors).
func processMaps(t *testing.T, pid int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l != "anon_inode:bpf-map" {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "map_id:"); ok {
				if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					ids = append(ids, id)
				}
			}
		}
	}
	return ids
}

// mapKeysOf counts, per BPF map of the process pid whose name starts with kpod_, the entries
// whose key starts with (is keyed by) one of the cgroup ids.
func mapKeysOf(t *testing.T, bpftool string, pid int, ids map[uint64]string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	found := 0
	for _, mapID := range processMaps(t, pid) {
		out, err := exec.Command(bpftool, "-j", "map", "show", "id", strconv.Itoa(mapID)).Output()
		if err != nil {
			continue // closed meanwhile
		}
		var m struct {
			ID      int    `json:"id"`
			Name    string `json:"name"`
			KeySize int    `json:"bytes_key"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("bpftool map show id %d: %v", mapID, err)
		}
		if !strings.HasPrefix(m.Name, "kpod_") || m.KeySize < 8 {
			continue
		}
		found++
		out, err = exec.Command(bpftool, "-j", "map", "dump", "id", strconv.Itoa(m.ID)).Output()
		if err != nil {
			t.Fatalf("bpftool map dump id %d (%s): %v", m.ID, m.Name, err)
		}
		var entries []struct {
			Key []string `json:"key"`
		}
		if err := json.Unmarshal(out, &entries); err != nil {
			t.Fatalf("bpftool map dump id %d (%s): %v", m.ID, m.Name, err)
		}
		n := 0
		for _, e := range entries {
			if len(e.Key) < 8 {
				continue
			}
			var id uint64
			for i := 7; i >= 0; i-- { // little endian
				b, err := strconv.ParseUint(strings.TrimPrefix(e.Key[i], "0x"), 16, 8)
				if err != nil {
					t.Fatalf("bpftool key byte %q: %v", e.Key[i], err)
				}
				id = id<<8 | b
			}
			if _, ok := ids[id]; ok {
				n++
			}
		}
		counts[m.Name] += n
	}
	if found == 0 {
		t.Fatalf("the collector (pid %d) holds no kpod_* BPF map with a cgroup key", pid)
	}
	return counts
}

// testNodeDrops connects to a closed port on 127.0.0.1 in the host's network namespace: each SYN
// is answered with a RST and dropped with reason no_socket, which kpod charges to the node
// (no pod's socket owns it). The node bucket is shared with every other TCP packet to a
// closed port on this machine outside the pods (this cluster sends none meanwhile: the pods'
// traffic is over, on the pod network, to open ports; but other programs on a shared host
// may, in network namespaces of their own), so the rise must be the exact count plus at most
// a small allowance; a window in which it rose by more than that is repeated (up to 5 times).
func testNodeDrops(t *testing.T) {
	const conns, others, attempts = 20, 10, 5
	want := map[string]string{"reason": "no_socket"}
	nodeValue := func(s *scrape) float64 {
		v := 0.0
		for _, x := range s.find("kpod_net_tcp_drops_total", want) {
			if x.Labels["k8s_pod_uid"] == "" {
				v += x.Value
			}
		}
		return v
	}
	for attempt := 1; ; attempt++ {
		before, err := get(context.Background(), metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // now closed: connects get a RST
		for i := 0; i < conns; i++ {
			c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
			if err == nil {
				c.Close()
				t.Fatalf("%s accepted a connection; want it closed", addr)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("connect to closed %s: %v, want connection refused", addr, err)
			}
		}
		base := nodeValue(before)
		var got float64
		eventually(t, 2*cycle, time.Second, "node-level no_socket drops", func() error {
			s, err := get(context.Background(), metricsURL)
			if err != nil {
				return err
			}
			if got = nodeValue(s) - base; got < conns {
				return fmt.Errorf("kpod_net_tcp_drops_total{reason=no_socket} of the node rose by %g, want %d", got, conns)
			}
			return nil
		})
		if got <= conns+others {
			t.Logf("%d refused connects: node-level no_socket drops +%g (attempt %d)", conns, got, attempt)
			return
		}
		if attempt == attempts {
			t.Fatalf("node-level no_socket drops rose by %g for %d refused connects in each of %d attempts; want at most %d more", got, conns, attempts, others)
		}
		t.Logf("attempt %d: node-level no_socket drops rose by %g for %d refused connects: other traffic to closed ports on this machine, again", attempt, got, conns)
	}
}

// ---- snapshots -----------------------------------------------------------------------------------

// takeSnapshots saves two scrapes 20 s apart, as the snapshot generator of
// examples/prometheus does, with a header saying where they come from.
func takeSnapshots(t *testing.T, dir string, ds *corev1.Pod) [2]string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths [2]string
	var u unix.Utsname
	_ = unix.Uname(&u)
	release := unix.ByteSliceToString(u.Release[:])
	for i := range paths {
		if i > 0 {
			time.Sleep(20 * time.Second)
		}
		s, err := get(context.Background(), metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		seen := map[string]bool{}
		for _, x := range s.Samples {
			if p := x.Labels["k8s_pod_name"]; p != "" && !seen[p] {
				seen[p] = true
				names = append(names, x.Labels["k8s_namespace_name"]+"/"+p)
			}
		}
		sort.Strings(names)
		header := fmt.Sprintf("# kpod scrape snapshot %d of 2: the DaemonSet otelcol-kpod (%s) of a real single-node cluster, scraped twice 20s apart.\n"+
			"# Written by test/e2ecluster (make e2e-cluster) at %s; helm install of charts/kpod with profile comprehensive, collection_interval %v;\n"+
			"# Linux %s. Labels k8s_namespace_name, k8s_pod_name, k8s_container_name, k8s_pod_label_* are k8s_attributes'.\n"+
			"# Pods: %s\n", i+1, ds.Name, s.At.UTC().Format(time.RFC3339), interval, release, strings.Join(names, " "))
		paths[i] = filepath.Join(dir, fmt.Sprintf("scrape-%d.prom", i+1))
		if err := os.WriteFile(paths[i], append([]byte(header), s.Raw...), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("snapshot %s: %d samples", paths[i], len(s.Samples))
	}
	return paths
}
