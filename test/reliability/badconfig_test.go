//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/testenv"
)

// badConfigs are receiver configurations otelcol-kpod must refuse at startup. key is the
// key's path as the error line names it; msg is the rest of what that line must say.
var badConfigs = []struct {
	name, yaml, key, msg string
}{
	{"duration not a duration", "collection_interval: soon", "collection_interval", "invalid duration"},
	{"duration a list", "collection_interval: [1s]", "collection_interval", "expected type 'time.Duration'"},
	{"zero interval", "collection_interval: 0s", `"collection_interval"`, "requires positive value"},
	{"negative interval", "collection_interval: -5s", `"collection_interval"`, "requires positive value"},
	{"negative timeout", "timeout: -1s", `"timeout"`, "requires positive value"},
	{"negative initial delay", "initial_delay: -1s", "initial_delay", "must not be negative"},
	{"unknown profile", "profile: maximal", "profile", `unknown profile "maximal"`},
	{"profile a list", "profile: [standard]", "profile", "expected type 'string'"},
	{"custom profile enables nothing", "profile: custom", "profile", "custom enables no collector"},
	{"unknown collector", "collectors: {gpu: {enabled: true}}", "collectors", `unknown collector "gpu"`},
	{"collectors a number", "collectors: 3", "collectors", "expected type 'map[string]kpodreceiver.CollectorConfig'"},
	{"enabled not a bool", "collectors: {cpu: {enabled: maybe}}", "collectors.cpu.enabled", "expected type 'bool'"},
	{"unknown collector key", "collectors: {cpu: {bogus: 1}}", "collectors.cpu.bogus", "unknown key"},
	{"option of another collector", "collectors: {cpu: {syscalls: [read]}}", "collectors.cpu.syscalls", "the cpu collector has no such option"},
	{"negative collector interval", "collectors: {cpu: {interval: -10s}}", "collectors.cpu.interval", "must not be negative"},
	{"interval below the collection interval", "collection_interval: 10s\n    collectors: {syscall: {interval: 5s}}", "collectors.syscall.interval", "shorter than collection_interval 10s"},
	{"unknown syscall", "collectors: {syscall: {syscalls: [read, frobnicate]}}", "collectors.syscall.syscalls", `"frobnicate" is not a system call`},
	{"syscall latency sample of zero calls", "collectors: {syscall: {latency_sample: -1}}", "collectors.syscall.latency_sample", "want 1 (every call timed) to 1048576, got -1"},
	{"soft IRQ latency sample too big", "collectors: {softirqs: {latency_sample: 2000000}}", "collectors.softirqs.latency_sample", "want 1 (every soft IRQ timed) to 1048576, got 2000000"},
	{"syscalls at the old place", "syscalls: [read]", "syscalls", "moved to collectors.syscall.syscalls"},
	{"unknown key", "colection_interval: 10s", "colection_interval", "unknown key"},
	{"unknown metric", "metrics: {kpod.gpu.utilization: {enabled: false}}", "metrics.kpod.gpu.utilization", "unknown key"},
	{"metric switch not a bool", "metrics: {kpod.proc.forks: {enabled: x}}", "metrics.kpod.proc.forks.enabled", "expected type 'bool'"},
	{"histogram switch not a bool", "metrics: {kpod.syscall.latency: {enabled: sometimes}}", "metrics.kpod.syscall.latency.enabled", "expected type 'bool'"},
	{"unknown resource attribute", "resource_attributes: {k8s.pod.nam: {enabled: true}}", "resource_attributes.k8s.pod.nam", "unknown key"},
	{"missing cgroup root", "cgroup_root: /nonexistent/kpod", "cgroup_root", "no such file or directory"},
	{"proc root a file", "proc_root: /etc/hostname", "proc_root", "is not a directory"},
	{"bpf_stats not a bool", `bpf_stats: "yes please"`, "bpf_stats", "expected type 'bool'"},
	{"node name a list", "node_name: [a, b]", "node_name", "expected type 'string'"},
	{"filters without the API", "filters: {namespaces: [default]}", "filters", "need kubernetes.enabled"},
	{"bad label selector", "kubernetes: {enabled: true}\n    filters: {label_selector: \"app in (\"}", "filters.label_selector", "unable to parse requirement"},
	{"unknown auth type", "kubernetes: {enabled: true, auth_type: token}", "kubernetes.auth_type", `unknown auth type "token"`},
	{"zero sync timeout", "kubernetes: {enabled: true, sync_timeout: 0s}", "kubernetes.sync_timeout", "must be positive"},
}

// badConfigTemplate is a whole collector configuration around the receiver's keys. Its own
// telemetry is off, so that a configuration wrongly accepted starts without taking a port.
const badConfigTemplate = `receivers:
  kpod:
    %s
exporters:
  debug: {}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    metrics:
      receivers: [kpod]
      exporters: [debug]
`

// TestBadConfigs runs otelcol-kpod --config <file> for each bad configuration: it must exit
// non-zero within 30 s (it never starts), and exactly one line of its output may name the
// key, saying what is wrong with it. Needs no root.
func TestBadConfigs(t *testing.T) {
	bin := testenv.CollectorBinary(t, repoRoot(t))
	dir := t.TempDir()
	for i, tc := range badConfigs {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad%02d.yaml", i))
			if err := os.WriteFile(path, []byte(fmt.Sprintf(badConfigTemplate, tc.yaml)), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "--config", path)
			cmd.WaitDelay = 5 * time.Second
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("still running after 30 s: the configuration was accepted\n%s", testenv.Tail(string(out), 4<<10))
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("want a non-zero exit, got %v\n%s", err, out)
			}
			var naming []string
			for _, line := range strings.Split(string(out), "\n") {
				if containsKey(line, tc.key) {
					naming = append(naming, line)
				}
			}
			if len(naming) != 1 {
				t.Fatalf("%d lines name %s, want exactly 1; output:\n%s", len(naming), tc.key, out)
			}
			if !strings.Contains(naming[0], tc.msg) {
				t.Errorf("the line naming %s does not say %q:\n%s", tc.key, tc.msg, naming[0])
			}
			t.Logf("exit %d: %s", exit.ExitCode(), strings.TrimSpace(naming[0]))
		})
	}
}

// containsKey reports whether line names key as a whole key path: not as the prefix of a
// longer one ("collectors" in "collectors.cpu.enabled") nor the end of one.
func containsKey(line, key string) bool {
	for i := 0; ; {
		j := strings.Index(line[i:], key)
		if j < 0 {
			return false
		}
		j += i
		end := j + len(key)
		before := j == 0 || !keyChar(line[j-1])
		after := end == len(line) || !keyChar(line[end]) && line[end] != '.'
		if before && after {
			return true
		}
		i = j + 1
	}
}

func keyChar(c byte) bool {
	return c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
