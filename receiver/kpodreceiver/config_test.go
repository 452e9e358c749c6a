package kpodreceiver

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// loadConfig unmarshals the named configuration of testdata/config.yaml over the defaults,
// as the collector does, without validating it.
func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	id := component.NewIDWithName(metadata.Type, name).String()
	if !cm.IsSet(id) {
		t.Fatalf("testdata/config.yaml has no %s", id)
	}
	sub, err := cm.Sub(id)
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	return cfg, sub.Unmarshal(cfg)
}

func boolp(b bool) *bool { return &b }

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	if cfg.CollectionInterval != 30*time.Second {
		t.Errorf("collection_interval = %v, want 30s", cfg.CollectionInterval)
	}
	if cfg.Profile != ProfileStandard {
		t.Errorf("profile = %q, want standard", cfg.Profile)
	}
	if cfg.ProcRoot != "/proc" || cfg.CgroupRoot != "" || cfg.BPFStats || cfg.BPFPreallocCgroups != 1024 {
		t.Errorf("proc_root %q, cgroup_root %q, bpf_stats %v, bpf_prealloc_cgroups %d", cfg.ProcRoot, cfg.CgroupRoot, cfg.BPFStats, cfg.BPFPreallocCgroups)
	}
	if !cfg.Histograms.KpodCPURunqueueLatency.Enabled || !cfg.Histograms.KpodSyscallLatency.Enabled {
		t.Errorf("histograms off by default: %+v", cfg.Histograms)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Errorf("default config invalid: %v", err)
	}

	// An empty section leaves every default in place.
	loaded, err := loadConfig(t, "defaults")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, cfg) {
		t.Errorf("kpod/defaults =\n %+v\nwant the defaults\n %+v", loaded, cfg)
	}
}

func TestLoadConfig(t *testing.T) {
	t.Run("custom", func(t *testing.T) {
		cfg, err := loadConfig(t, "custom")
		if err != nil {
			t.Fatal(err)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if cfg.Profile != ProfileCustom || cfg.CollectionInterval != 15*time.Second || cfg.InitialDelay != 2*time.Second ||
			cfg.Timeout != 10*time.Second || cfg.NodeName != "node-a" || cfg.ProcRoot != "/proc" || !cfg.BPFStats || cfg.BPFPreallocCgroups != 300 {
			t.Errorf("scalars: %+v", cfg)
		}
		want := map[string]CollectorConfig{
			"memory":  {Enabled: boolp(true)},
			"diskio":  {Enabled: boolp(true), Interval: time.Minute},
			"syscall": {Enabled: boolp(true), Interval: 30 * time.Second, Syscalls: []string{"read", "write", "futex"}, LatencySample: 4},
			"cpu":     {Enabled: boolp(false)},
		}
		if !reflect.DeepEqual(cfg.Collectors, want) {
			t.Errorf("collectors = %v, want %v", cfg.Collectors, want)
		}
		if got, want := cfg.enabledFamilies(), []string{"syscall", "diskio", "memory"}; !reflect.DeepEqual(got, want) {
			t.Errorf("enabled = %v, want %v", got, want)
		}
	})
	t.Run("per-collector intervals", func(t *testing.T) {
		cfg, err := loadConfig(t, "intervals")
		if err != nil {
			t.Fatal(err)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if cfg.Collectors["syscall"].Interval != time.Minute || cfg.Collectors["syscall"].Enabled != nil {
			t.Errorf("syscall = %+v, want interval 1m and the profile's switch", cfg.Collectors["syscall"])
		}
		if cfg.Collectors["hardirqs"].Interval != 30*time.Second {
			t.Errorf("hardirqs = %+v", cfg.Collectors["hardirqs"])
		}
		got := cfg.enabledFamilies()
		if len(got) != len(catalog)-2 || contains(got, "softirqs") || contains(got, "l7") || !contains(got, "syscall") {
			t.Errorf("comprehensive (every family but l7) minus softirqs: %v", got)
		}
	})
	t.Run("histogram switched off", func(t *testing.T) {
		cfg, err := loadConfig(t, "histogram_off")
		if err != nil {
			t.Fatal(err)
		}
		if err := confmap.Validate(cfg); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if cfg.Histograms.KpodCPURunqueueLatency.Enabled {
			t.Error("kpod.cpu.runqueue.latency still enabled")
		}
		if !cfg.Histograms.KpodSyscallLatency.Enabled {
			t.Error("kpod.syscall.latency was switched off too")
		}
		// the generated metrics in the same map are still honoured
		if cfg.Metrics.KpodMemCgroupSwapBytes.Enabled {
			t.Error("kpod.mem.cgroup.swap.bytes still enabled")
		}
		if !cfg.Metrics.KpodDiskReads.Enabled {
			t.Error("kpod.disk.reads switched off by a neighbour")
		}
	})
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestConfigValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		want []string // every string must be in the error
	}{
		{"unknown_profile", []string{"profile:", `"maximal"`}},
		{"negative_interval", []string{"collectors.cpu.interval", "negative"}},
		{"short_interval", []string{"collectors.syscall.interval", "shorter than collection_interval"}},
		{"unknown_collector", []string{"collectors:", `"gpu"`}},
		{"missing_cgroup_root", []string{"cgroup_root:", "/nonexistent/kpod-test/cgroup"}},
		{"proc_root_file", []string{"proc_root:", "not a directory"}},
		{"unknown_syscall", []string{"collectors.syscall.syscalls:", `"frobnicate"`}},
		{"option_of_other_family", []string{"collectors.cpu.syscalls:", "no such option"}},
		{"topology_view_no_port", []string{"collectors.topology.view.endpoint:", "missing port"}},
		{"topology_view_bad_port", []string{"collectors.topology.view.endpoint:", `bad port "http"`}},
		{"topology_negative_max_edges", []string{"collectors.topology.max_edges:", "-1"}},
		{"syscall_negative_latency_sample", []string{"collectors.syscall.latency_sample:", "want 1 (every call timed) to 1048576", "got -2"}},
		{"syscall_latency_sample_too_big", []string{"collectors.syscall.latency_sample:", "got 2000000"}},
		{"softirqs_negative_latency_sample", []string{"collectors.softirqs.latency_sample:", "want 1 (every soft IRQ timed) to 1048576", "got -1"}},
		{"prealloc_zero", []string{"bpf_prealloc_cgroups:", "between 1 and 10240", "got 0"}},
		{"prealloc_too_many", []string{"bpf_prealloc_cgroups:", "got 20000"}},
		{"empty_custom", []string{"profile: custom enables no collector"}},
		{"custom_all_off", []string{"profile: custom enables no collector"}},
		// Refused by the embedded scraperhelper.ControllerConfig (not by Config.Validate, so
		// that the collector prints one line naming the key, not two).
		{"zero_collection_interval", []string{`"collection_interval": requires positive value`}},
		{"negative_timeout", []string{`"timeout": requires positive value`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(t, tc.name)
			if err != nil {
				t.Fatalf("unmarshal: %v (the value is valid YAML for the struct; Validate must reject it)", err)
			}
			err = confmap.Validate(cfg)
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// Validate itself (not only the generated parts) rejects it, but for what the
			// embedded controller config refuses (one error per key).
			own := cfg.Validate()
			if controller := strings.Contains(tc.want[0], "requires positive value"); own == nil && !controller {
				t.Error("Config.Validate accepted it")
			} else if own != nil && controller {
				t.Errorf("Config.Validate repeats the controller config's error: %v", own)
			}
		})
	}
}

func TestConfigValidateReportsEveryError(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Profile = "maximal"
	cfg.CgroupRoot = "/nonexistent/kpod-test"
	cfg.Collectors = map[string]CollectorConfig{"gpu": {}, "cpu": {Interval: -time.Second}, "syscall": {Syscalls: []string{"frobnicate"}}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"profile:", "cgroup_root:", "collectors.syscall.syscalls:", `"gpu"`, "collectors.cpu.interval"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func TestConfigUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		want string
	}{
		{"unknown_key", "colection_interval"},
		{"unknown_metric", "kpod.gpu.utilization"},
		{"bad_histogram_switch", "kpod.syscall.latency"},
		{"bad_interval_type", "interval"},
		{"old_syscalls_key", "moved to collectors.syscall.syscalls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(t, tc.name)
			if err == nil {
				t.Fatal("unmarshal accepted it")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// The profile table of the product kpod replaces (README "Profiles") plus the memory cgroup
// row and topology (its "service dependency graph"), in catalog order. l7 (the seed's "L7
// protocol detection", not a row of its table) is in none: collectors.l7.enabled.
var seedProfiles = map[string][]string{
	ProfileMinimal: {"cpu", "oom", "diskio", "memory"},
	ProfileStandard: {"cpu", "tcp", "tcpdrop", "oom", "pagefaults", "biolatency", "cachestat",
		"diskio", "iface", "filesystem", "memory"},
	ProfileComprehensive: {"cpu", "tcp", "tcpdrop", "oom", "pagefaults", "biolatency", "cachestat",
		"hardirqs", "softirqs", "proc", "syscall", "diskio", "iface", "filesystem", "memory", "topology"},
	ProfileCustom: nil,
}

func TestEnabledFamiliesProfiles(t *testing.T) {
	for profile, want := range seedProfiles {
		cfg := createDefaultConfig().(*Config)
		cfg.Profile = profile
		if got := cfg.enabledFamilies(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v\nwant %v", profile, got, want)
		}
	}
	// standard ⊂ comprehensive adds exactly hardirqs, softirqs, proc, syscall, topology
	std := map[string]bool{}
	for _, f := range seedProfiles[ProfileStandard] {
		std[f] = true
	}
	var added []string
	for _, f := range seedProfiles[ProfileComprehensive] {
		if !std[f] {
			added = append(added, f)
		}
	}
	if want := []string{"hardirqs", "softirqs", "proc", "syscall", "topology"}; !reflect.DeepEqual(added, want) {
		t.Errorf("comprehensive adds %v, want %v", added, want)
	}
	if len(seedProfiles[ProfileComprehensive])+1 != len(catalog) {
		t.Errorf("comprehensive has %d collectors, the catalog %d: every one but l7", len(seedProfiles[ProfileComprehensive]), len(catalog))
	}
}

func TestEnabledFamiliesSwitches(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Profile = ProfileMinimal
	cfg.Collectors = map[string]CollectorConfig{
		"syscall": {Enabled: boolp(true)},  // on, though not in minimal
		"oom":     {Enabled: boolp(false)}, // off, though in minimal
		"memory":  {Interval: time.Minute}, // an interval alone keeps the profile's choice
		"iface":   {Interval: time.Minute}, // same: stays off
	}
	want := []string{"cpu", "syscall", "diskio", "memory"}
	if got := cfg.enabledFamilies(); !reflect.DeepEqual(got, want) {
		t.Errorf("minimal + switches = %v, want %v", got, want)
	}

	cfg = customConfig("filesystem", "cpu")
	if got, want := cfg.enabledFamilies(), []string{"cpu", "filesystem"}; !reflect.DeepEqual(got, want) {
		t.Errorf("custom = %v, want %v", got, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("custom with two collectors: %v", err)
	}
}
