//go:build e2e

// Package e2e runs the ocb-built collector (_build/otelcol-kpod, `make otelcol`) against
// fake pods on this host and scrapes its Prometheus endpoint over HTTP, as Prometheus would.
//
//	make e2e          (= make otelcol && go test -tags e2e ./test/e2e/...)
//
// The pipeline is examples/collector-local.yaml with its own loopback ports and a 1 s
// collection interval. Needs root and a BTF kernel (fakepod.RequireRoot).
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/promtext"
	"github.com/kpod-project/kpod/internal/testenv"
)

type ports struct{ prom, health, telemetry int }

// writeConfig writes examples/collector-local.yaml with its ports, collection interval and
// profile replaced, into a temporary file (testenv.ExampleConfig).
func writeConfig(t *testing.T, p ports, profile string) string {
	t.Helper()
	return testenv.ExampleConfig(t, testenv.RepoRoot(t, 2), "collector-local.yaml",
		[2]string{"endpoint: 127.0.0.1:9464", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.prom)},
		[2]string{"endpoint: 127.0.0.1:13133", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.health)},
		[2]string{"port: 8888", fmt.Sprintf("port: %d", p.telemetry)},
		[2]string{"collection_interval: 10s", "collection_interval: 1s"},
		[2]string{"profile: standard", "profile: " + profile})
}

type sample = promtext.Sample

var waitFor = testenv.WaitFor

// filter returns the samples called name whose labels include labels.
func filter(ss []sample, name string, labels map[string]string) []sample {
	return promtext.Filter(ss, name, labels)
}

func hasPod(ss []sample, uid string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s.Name, "kpod_") && s.Labels["k8s_pod_uid"] == uid {
			return true
		}
	}
	return false
}

const (
	writtenBytes = "kpod_disk_written_bytes_total"
	unavailable  = "kpod_collector_unavailable"
)

// TestMain removes the workload fakepod builds into a temporary directory it never removes
// (TestCollectorDiskWritesOverPrometheus is its only user here), once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := fakepod.RemoveBuiltWorkload(); err != nil {
		fmt.Fprintln(os.Stderr, "removing the workload:", err)
		code = 1
	}
	os.Exit(code)
}

// TestCollectorDiskWritesOverPrometheus: a fake pod writes a known number of bytes with
// O_DIRECT to a loop device; the collector must report them for that pod's container and
// device, within 1 %, and nothing for an idle sibling pod.
func TestCollectorDiskWritesOverPrometheus(t *testing.T) {
	bin := testenv.CollectorBinary(t, testenv.RepoRoot(t, 2))
	fakepod.RequireRoot(t)

	const (
		total = 16 << 20 // bytes written by the workload
		bs    = 64 << 10 // per O_DIRECT write
	)
	dev := fakepod.NewLoopDevice(t, 32)
	writer := fakepod.New(t, fakepod.Options{QoS: podid.Burstable})
	wc := writer.AddContainer()
	idle := fakepod.New(t, fakepod.Options{})
	ic := idle.AddContainer()
	ic.Start("sleep").WaitReady()

	p := ports{prom: testenv.FreePort(t), health: testenv.FreePort(t), telemetry: testenv.FreePort(t)}
	cfg := writeConfig(t, p, "standard")
	c := testenv.StartCollector(t, bin, cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", p.prom)

	// The BPF programs count from the moment they are attached: wait for kpod's first
	// cycle (which follows the receiver's start) and for both pods before writing.
	ours := func(s sample) bool {
		uid := s.Labels["k8s_pod_uid"]
		return s.Name == unavailable || strings.HasPrefix(s.Name, "kpod_disk_") && (uid == writer.UID || uid == idle.UID)
	}
	waitFor(t, c, url, 90*time.Second, "first kpod cycle with both fake pods", ours, func(ss []sample) bool {
		return len(filter(ss, unavailable, nil)) > 0 && hasPod(ss, writer.UID) && hasPod(ss, idle.UID)
	})

	wc.Run("dwrite", dev.Path, strconv.Itoa(total), strconv.Itoa(bs))

	want := map[string]string{"k8s_pod_uid": writer.UID, "container_id": wc.ID, "system_device": dev.Name}
	ss := waitFor(t, c, url, 60*time.Second, fmt.Sprintf("%s >= 99%% of %d for %v", writtenBytes, total, want), ours, func(ss []sample) bool {
		got := filter(ss, writtenBytes, want)
		return len(got) == 1 && got[0].Value >= 0.99*total
	})

	// A cycle that read the map while the last writes were in flight may show a partial
	// count: take the value again after two more cycles (1 s each, plus the batch timeout),
	// which also catches counts that keep growing after the writer exited.
	first := filter(ss, writtenBytes, want)[0].Value
	time.Sleep(3 * time.Second)
	ss = waitFor(t, c, url, 30*time.Second, "a second scrape with the writer's series", ours, func(ss []sample) bool {
		return len(filter(ss, writtenBytes, want)) == 1
	})
	got := filter(ss, writtenBytes, want)[0]
	t.Logf("%s (first seen %.0f)", got, first)
	if diff := got.Value - total; diff > 0.01*total || diff < -0.01*total {
		t.Errorf("%s = %.0f, want %d ± 1%%", writtenBytes, got.Value, total)
	}
	if got.Labels["k8s_pod_uid"] != writer.UID || got.Labels["container_id"] != wc.ID {
		t.Errorf("series labels k8s_pod_uid=%q container_id=%q, want %q %q",
			got.Labels["k8s_pod_uid"], got.Labels["container_id"], writer.UID, wc.ID)
	}
	// The only series with bytes written to this device is the writer's container.
	for _, s := range filter(ss, writtenBytes, map[string]string{"system_device": dev.Name}) {
		if s.Value > 0 && (s.Labels["k8s_pod_uid"] != writer.UID || s.Labels["container_id"] != wc.ID) {
			t.Errorf("bytes written to %s charged to another cgroup: %s", dev.Name, s)
		}
	}
	// The idle pod is reported, and has written nothing to the device.
	if !hasPod(ss, idle.UID) {
		t.Errorf("idle pod %s has no kpod series", idle.UID)
	}
	for _, s := range filter(ss, writtenBytes, map[string]string{"k8s_pod_uid": idle.UID, "system_device": dev.Name}) {
		if s.Value != 0 {
			t.Errorf("idle pod wrote to %s: %s", dev.Name, s)
		}
	}
	// Self-monitoring: one kpod_collector_unavailable series per configured collector.
	un := filter(ss, unavailable, nil)
	if len(un) == 0 {
		t.Errorf("no %s series", unavailable)
	}
	for _, s := range un {
		if s.Labels["collector"] == "" {
			t.Errorf("%s without a collector label: %s", unavailable, s)
		}
		if s.Labels["collector"] == "diskio" && s.Value != 0 {
			t.Errorf("diskio collector unavailable: %s", s)
		}
	}
}

// TestCollectorRejectsBogusProfile: an invalid receiver config must stop the collector at
// startup with a non-zero exit and an error that names the bad key.
func TestCollectorRejectsBogusProfile(t *testing.T) {
	bin := testenv.CollectorBinary(t, testenv.RepoRoot(t, 2))
	p := ports{prom: testenv.FreePort(t), health: testenv.FreePort(t), telemetry: testenv.FreePort(t)}
	cfg := writeConfig(t, p, "bogus")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", cfg)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("collector still running after 60 s with profile: bogus\n%s", testenv.Tail(string(out), 8<<10))
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("want a non-zero exit, got %v\n%s", err, testenv.Tail(string(out), 8<<10))
	}
	if !strings.Contains(string(out), "profile") || !strings.Contains(string(out), "bogus") {
		t.Errorf("error output does not name the profile key and value:\n%s", testenv.Tail(string(out), 8<<10))
	}
	t.Logf("exit code %d; output:\n%s", exit.ExitCode(), testenv.Tail(string(out), 2<<10))
}

// TestConfigMapMatchesCollectorNode: the ConfigMap of the Kubernetes example must carry
// examples/collector-node.yaml verbatim (configmap.yaml is written by make generate, examples/gen).
func TestConfigMapMatchesCollectorNode(t *testing.T) {
	root := testenv.RepoRoot(t, 2)
	node, err := os.ReadFile(filepath.Join(root, "examples", "collector-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := os.ReadFile(filepath.Join(root, "examples", "kubernetes", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const key = "\n  collector.yaml: |\n"
	i := strings.Index(string(cm), key)
	if i < 0 {
		t.Fatalf("configmap.yaml has no %q block", strings.TrimSpace(key))
	}
	var embedded strings.Builder
	for _, line := range strings.SplitAfter(string(cm)[i+len(key):], "\n") {
		if line == "" {
			continue
		}
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "    ") {
			break // end of the block scalar
		}
		embedded.WriteString(strings.TrimPrefix(line, "    "))
	}
	if embedded.String() != string(node) {
		t.Errorf("examples/kubernetes/configmap.yaml does not embed examples/collector-node.yaml verbatim; regenerate it")
	}
}

// TestNodeConfigValidates runs `otelcol-kpod validate` on examples/collector-node.yaml,
// with the container paths (/host/proc, /host/sys/fs/cgroup) pointed at this host's.
func TestNodeConfigValidates(t *testing.T) {
	bin := testenv.CollectorBinary(t, testenv.RepoRoot(t, 2))
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t, 2), "examples", "collector-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	if strings.Count(cfg, "proc_root: /host/proc") != 1 {
		t.Fatal("collector-node.yaml: expected proc_root: /host/proc once")
	}
	cfg = strings.Replace(cfg, "proc_root: /host/proc", "proc_root: /proc", 1)
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "validate", "--config", path)
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=e2e-node", "OTLP_ENDPOINT=http://127.0.0.1:4318",
		"KPOD_CGROUP_ROOT=/sys/fs/cgroup", "KPOD_CLUSTER_NAME=e2e-cluster")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("otelcol-kpod validate: %v\n%s", err, out)
	}
}
