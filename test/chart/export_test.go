//go:build chart

package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/promtext"
	"github.com/kpod-project/kpod/internal/testenv"
)

// lockedBuffer collects a process's output (written by exec's copy goroutines).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClusterNameExported runs otelcol-kpod on this host with the collector config the chart
// renders (the host's paths and free loopback ports instead of the container's, no API
// server) next to a fake pod, and scrapes its Prometheus endpoint: with clusterName every
// series, the fake pod's container series and the node-level ones alike, carries
// k8s_cluster_name; without it none does.
func TestClusterNameExported(t *testing.T) {
	bin := testenv.CollectorBinary(t, root(t))
	fakepod.RequireRoot(t)
	cgroup2 := fakepod.HostLayout(t).V2
	pod := fakepod.New(t, fakepod.Options{})
	ctr := pod.AddContainer()
	ctr.Start("sleep").WaitReady()

	for _, cluster := range []string{"kpod-test-cluster", ""} {
		t.Run(fmt.Sprintf("clusterName=%q", cluster), func(t *testing.T) {
			prom, health, telemetry := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
			cfg := render(t, fmt.Sprintf(`
clusterName: %q
kubernetes: {enabled: false}
prometheus: {port: %d}
receiver: {profile: minimal, collection_interval: 1s, proc_root: /proc, cgroup_root: %q}
config:
  extensions: {health_check: {endpoint: "127.0.0.1:%d"}}
  service: {telemetry: {metrics: {readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]}}}
`, cluster, prom, cgroup2, health, telemetry)).collectorConfig(t)
			b, err := json.Marshal(cfg) // JSON is YAML
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "collector.yaml")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out := &lockedBuffer{}
			cmd := exec.Command(bin, "--config", path)
			cmd.Env = append(os.Environ(), "K8S_NODE_NAME=chart-test-node")
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(15 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
				if t.Failed() {
					s := out.String()
					if len(s) > 8<<10 {
						s = s[len(s)-8<<10:]
					}
					t.Logf("collector output (last 8 KiB):\n%s", s)
				}
			})

			url := fmt.Sprintf("http://127.0.0.1:%d/metrics", prom)
			var samples []promtext.Sample
			deadline := time.Now().Add(90 * time.Second)
			for {
				select {
				case <-done:
					t.Fatal("otelcol-kpod exited")
				default:
				}
				raw, err := promtext.Fetch(context.Background(), url)
				if err == nil {
					samples, err = promtext.Parse(bytes.NewReader(raw))
				}
				if err == nil && hasContainer(samples, pod.UID, ctr.ID) && hasNodeSeries(samples) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no series of the fake pod's container and the node on %s after 90 s (%v, %d samples)", url, err, len(samples))
				}
				time.Sleep(time.Second)
			}
			var wrong []string
			for _, s := range samples {
				if got, ok := s.Labels["k8s_cluster_name"]; got != cluster || (cluster == "" && ok) {
					wrong = append(wrong, s.String())
				}
			}
			if len(wrong) > 0 {
				t.Errorf("%d of %d series do not have k8s_cluster_name=%q, e.g.:\n%s", len(wrong), len(samples), cluster, strings.Join(wrong[:min(5, len(wrong))], "\n"))
			}
			if cluster == "" {
				t.Logf("%d series, of the fake pod's container and the node, none with k8s_cluster_name", len(samples))
			} else {
				t.Logf("%d series, of the fake pod's container and the node, all with k8s_cluster_name=%q", len(samples), cluster)
			}
		})
	}
}

func hasContainer(ss []promtext.Sample, uid, id string) bool {
	for _, s := range ss {
		if s.Labels["k8s_pod_uid"] == uid && s.Labels["container_id"] == id && strings.HasPrefix(s.Name, "kpod_") {
			return true
		}
	}
	return false
}

// hasNodeSeries: kpod's own node-level series (no pod).
func hasNodeSeries(ss []promtext.Sample) bool {
	for _, s := range ss {
		if s.Name == "kpod_collection_cycle_duration_seconds" && s.Labels["k8s_pod_uid"] == "" {
			return true
		}
	}
	return false
}
