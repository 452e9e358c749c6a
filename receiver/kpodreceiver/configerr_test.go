package kpodreceiver

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap"
)

// TestConfigKeyErrors: a configuration that does not decode is refused with one line per bad
// key, naming the key's whole path (mapstructure's own message nests a line per struct level
// and names some structs by their Go type).
func TestConfigKeyErrors(t *testing.T) {
	for name, want := range map[string][]string{
		"unknown_key":          {"colection_interval: unknown key"},
		"unknown_metric":       {"metrics.kpod.gpu.utilization: unknown key"},
		"bad_histogram_switch": {"metrics.kpod.syscall.latency.enabled: expected type 'bool', got unconvertible type 'string'"},
		"bad_interval_type":    {"collectors.cpu.interval: time: invalid duration"},
		"old_syscalls_key":     {"syscalls: moved to collectors.syscall.syscalls"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			if err == nil {
				t.Fatal("unmarshal accepted it")
			}
			// What the collector's own decoding adds around it: its introduction, blank
			// lines and the empty name ('') of the receiver's configuration.
			var got []string
			for _, l := range strings.Split(err.Error(), "\n") {
				if l != "" && l != decodingFailed {
					got = append(got, strings.TrimPrefix(l, "'' "))
				}
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("error lines:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
			}
		})
	}
}

// TestConfigKeyErrorsEveryKey: each bad key of one configuration has its own line.
func TestConfigKeyErrorsEveryKey(t *testing.T) {
	conf := confmap.NewFromStringMap(map[string]any{
		"colection_interval": "1s",
		"collectors":         map[string]any{"cpu": map[string]any{"enabled": "maybe", "bogus": 1}},
		"metrics":            map[string]any{"kpod.proc.forks": map[string]any{"enabld": true}},
	})
	err := createDefaultConfig().(*Config).Unmarshal(conf)
	if err == nil {
		t.Fatal("unmarshal accepted it")
	}
	got := strings.Split(err.Error(), "\n")
	sort.Strings(got)
	want := []string{
		"collectors.cpu.bogus: unknown key",
		"collectors.cpu.enabled: expected type 'bool', got unconvertible type 'string'",
		"colection_interval: unknown key",
		"metrics.kpod.proc.forks.enabld: unknown key",
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("error lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
