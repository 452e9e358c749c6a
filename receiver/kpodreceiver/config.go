package kpodreceiver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/window"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// Config is the kpod receiver's configuration.
type Config struct {
	scraperhelper.ControllerConfig `mapstructure:",squash"`
	metadata.MetricsBuilderConfig  `mapstructure:",squash"`
	// Histograms are switched with the same metrics::<name>::enabled keys as the generated
	// metrics; Unmarshal moves them here.
	Histograms metadata.HistogramsConfig `mapstructure:"-"`

	// Profile picks the collectors: minimal, standard, comprehensive or custom.
	Profile string `mapstructure:"profile"`
	// Collectors switches collectors on or off on top of the profile and sets their intervals.
	Collectors map[string]CollectorConfig `mapstructure:"collectors"`
	// CgroupRoot is the cgroup2 mount; empty means discovered from /proc/self/mountinfo.
	CgroupRoot string `mapstructure:"cgroup_root"`
	// ProcRoot is the host's /proc (kpod must see the host's processes: hostPID).
	ProcRoot string `mapstructure:"proc_root"`
	// NodeName becomes k8s.node.name; default $K8S_NODE_NAME, then the host name.
	NodeName string `mapstructure:"node_name"`
	// Kubernetes connects to the API server for namespaces, labels and restart counts. It is
	// optional: attribution needs only the cgroup tree.
	Kubernetes KubernetesConfig `mapstructure:"kubernetes"`
	// Filters decide which pods are reported at all (they need kubernetes.enabled).
	Filters FilterConfig `mapstructure:"filters"`
	// BPFStats turns on the kernel's BPF run-time statistics (kernel.bpf_stats_enabled) while
	// kpod runs, for kpod.bpf.program.run.*. It costs two clock reads per program run, for
	// every BPF program on the node, so it is off by default.
	BPFStats bool `mapstructure:"bpf_stats"`
	// BPFPreallocCgroups is how many cgroups the per-CPU data maps hold on kernels before 6.1,
	// which allocate them in full at load, for every possible CPU (from 6.1 they grow with the
	// cgroups seen, up to 10240). A full map loses updates, counted in
	// kpod.bpf.map.update.errors.
	BPFPreallocCgroups int `mapstructure:"bpf_prealloc_cgroups"`
}

// KubernetesConfig says how to reach the API server.
type KubernetesConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// AuthType is serviceAccount (in the cluster) or kubeConfig.
	AuthType string `mapstructure:"auth_type"`
	// KubeConfig is the kubeconfig file for auth_type kubeConfig ($KUBECONFIG, then
	// ~/.kube/config, when empty).
	KubeConfig string `mapstructure:"kubeconfig"`
	// SyncTimeout bounds the wait for the first list of the node's pods at startup.
	SyncTimeout time.Duration `mapstructure:"sync_timeout"`
}

// FilterConfig selects the reported pods. Filtered pods produce no series at all.
type FilterConfig struct {
	Namespaces        []string `mapstructure:"namespaces"` // empty: all
	ExcludeNamespaces []string `mapstructure:"exclude_namespaces"`
	LabelSelector     string   `mapstructure:"label_selector"`
}

var defaultExcludeNamespaces = []string{"kube-system", "kube-public"}

// CollectorConfig are the settings of collectors.<name>. Enabled and Interval apply to
// every collector; the other keys belong to one family each (familyInfo.options).
type CollectorConfig struct {
	// Enabled overrides the profile: true turns a collector on, false off.
	Enabled *bool `mapstructure:"enabled"`
	// Interval, if set, collects this family only every Interval (a multiple of
	// collection_interval is best); cycles in between are counted as skipped.
	Interval time.Duration `mapstructure:"interval"`
	// Syscalls (syscall only) are the system calls tracked; empty means syscall.Default.
	Syscalls []string `mapstructure:"syscalls"`
	// LatencySample (syscall, softirqs) times the events that start in 1/LatencySample of
	// the time (1: every one); 0 means window.DefaultSample. The syscall family counts calls
	// and errors at every exit either way.
	LatencySample int `mapstructure:"latency_sample"`
	// MaxEdges (topology only) caps the client → server pairs a node reports; 0 means
	// topology.DefaultMaxEdges.
	MaxEdges int `mapstructure:"max_edges"`
	// View (topology only) serves the node's graph as JSON over HTTP.
	View *ViewConfig `mapstructure:"view"`
}

// ViewConfig is collectors.topology.view: the JSON view of the node's topology.
type ViewConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Endpoint is host:port; default localhost:9465 (only this node's processes, or
	// kubectl port-forward, can reach it).
	Endpoint string `mapstructure:"endpoint"`
}

// DefaultViewEndpoint is where the topology view listens unless told otherwise.
const DefaultViewEndpoint = "localhost:9465"

// optionSet lists the family-specific keys of c that are set.
func (c CollectorConfig) optionSet() []string {
	var out []string
	if c.Syscalls != nil {
		out = append(out, "syscalls")
	}
	if c.LatencySample != 0 {
		out = append(out, "latency_sample")
	}
	if c.MaxEdges != 0 {
		out = append(out, "max_edges")
	}
	if c.View != nil {
		out = append(out, "view")
	}
	return out
}

const (
	ProfileMinimal       = "minimal"
	ProfileStandard      = "standard"
	ProfileComprehensive = "comprehensive"
	ProfileCustom        = "custom"
)

var profileNames = []string{ProfileMinimal, ProfileStandard, ProfileComprehensive, ProfileCustom}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal takes the histogram switches out of metrics:: before the generated config sees
// them (it rejects unknown metric names).
func (cfg *Config) Unmarshal(conf *confmap.Conf) error {
	raw := conf.ToStringMap()
	if _, ok := raw["syscalls"]; ok {
		return errors.New("syscalls: moved to collectors.syscall.syscalls")
	}
	if metrics, ok := raw["metrics"].(map[string]any); ok {
		hists := map[string]any{}
		for _, h := range metadata.Histograms {
			if v, found := metrics[h.Name]; found {
				hists[h.Name] = v
				delete(metrics, h.Name)
			}
		}
		if err := confmap.NewFromStringMap(hists).Unmarshal(&cfg.Histograms); err != nil {
			return keyErrors("metrics", err)
		}
	}
	type config Config // without this method, so the rest unmarshals normally
	return keyErrors("", confmap.NewFromStringMap(raw).Unmarshal((*config)(cfg)))
}

// Validate reports every bad value, each naming its key.
func (cfg *Config) Validate() error {
	var errs []error
	// collection_interval <= 0 and a negative timeout are refused by the embedded
	// scraperhelper.ControllerConfig's own validation, which the collector runs too; checking
	// them here again would print a second line naming the same key.
	if cfg.InitialDelay < 0 {
		errs = append(errs, fmt.Errorf("initial_delay: must not be negative, got %v", cfg.InitialDelay))
	}
	if cfg.BPFPreallocCgroups < 1 || cfg.BPFPreallocCgroups > bpfload.MaxCgroups {
		errs = append(errs, fmt.Errorf("bpf_prealloc_cgroups: must be between 1 and %d, got %d", bpfload.MaxCgroups, cfg.BPFPreallocCgroups))
	}
	if !slices.Contains(profileNames, cfg.Profile) {
		errs = append(errs, fmt.Errorf("profile: unknown profile %q (want one of %s)", cfg.Profile, strings.Join(profileNames, ", ")))
	}
	names := make([]string, 0, len(cfg.Collectors))
	for name := range cfg.Collectors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cc := cfg.Collectors[name]
		if _, ok := familyByName(name); !ok {
			errs = append(errs, fmt.Errorf("collectors: unknown collector %q (known: %s)", name, strings.Join(familyNames(), ", ")))
			continue
		}
		info, _ := familyByName(name)
		for _, opt := range cc.optionSet() {
			if !slices.Contains(info.options, opt) {
				errs = append(errs, fmt.Errorf("collectors.%s.%s: the %s collector has no such option", name, opt, name))
			}
		}
		if cc.Interval < 0 {
			errs = append(errs, fmt.Errorf("collectors.%s.interval: must not be negative, got %v", name, cc.Interval))
		} else if cc.Interval > 0 && cc.Interval < cfg.CollectionInterval {
			errs = append(errs, fmt.Errorf("collectors.%s.interval: %v is shorter than collection_interval %v", name, cc.Interval, cfg.CollectionInterval))
		}
	}
	if cfg.Profile == ProfileCustom && len(cfg.enabledFamilies()) == 0 {
		errs = append(errs, errors.New("profile: custom enables no collector (set collectors.<name>.enabled: true)"))
	}
	for key, dir := range map[string]string{"cgroup_root": cfg.CgroupRoot, "proc_root": cfg.ProcRoot} {
		if dir == "" {
			continue
		}
		if st, err := os.Stat(dir); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		} else if !st.IsDir() {
			errs = append(errs, fmt.Errorf("%s: %s is not a directory", key, dir))
		}
	}
	if cfg.Kubernetes.Enabled {
		if a := cfg.Kubernetes.AuthType; a != kube.AuthServiceAccount && a != kube.AuthKubeConfig {
			errs = append(errs, fmt.Errorf("kubernetes.auth_type: unknown auth type %q (want %s or %s)", a, kube.AuthServiceAccount, kube.AuthKubeConfig))
		}
		if cfg.Kubernetes.SyncTimeout <= 0 {
			errs = append(errs, fmt.Errorf("kubernetes.sync_timeout: must be positive, got %v", cfg.Kubernetes.SyncTimeout))
		}
	} else {
		f := cfg.Filters
		if len(f.Namespaces) > 0 || f.LabelSelector != "" || !slices.Equal(f.ExcludeNamespaces, defaultExcludeNamespaces) {
			errs = append(errs, errors.New("filters: need kubernetes.enabled: true (namespaces and labels come from the API server)"))
		}
	}
	if _, err := kube.ParseSelector(cfg.Filters.LabelSelector); err != nil {
		errs = append(errs, fmt.Errorf("filters.label_selector: %w", err))
	}
	if t := cfg.Collectors["topology"]; t.MaxEdges < 0 {
		errs = append(errs, fmt.Errorf("collectors.topology.max_edges: must not be negative, got %d", t.MaxEdges))
	}
	if v := cfg.Collectors["topology"].View; v != nil && v.Enabled && v.Endpoint != "" {
		if _, port, err := net.SplitHostPort(v.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("collectors.topology.view.endpoint: %w", err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("collectors.topology.view.endpoint: bad port %q", port))
		}
	}
	for _, f := range []struct{ name, event string }{{"syscall", "call"}, {"softirqs", "soft IRQ"}} {
		if n := cfg.Collectors[f.name].LatencySample; n < 0 || n > window.MaxSample {
			errs = append(errs, fmt.Errorf("collectors.%s.latency_sample: want 1 (every %s timed) to %d, got %d", f.name, f.event, window.MaxSample, n))
		}
	}
	for _, s := range cfg.Collectors["syscall"].Syscalls {
		if _, ok := syscall.Number(s); !ok {
			errs = append(errs, fmt.Errorf("collectors.syscall.syscalls: %q is not a system call on %s", s, syscall.Arch))
		}
	}
	return errors.Join(errs...)
}

// enabledFamilies are the collectors the profile and the switches turn on, in catalog order.
func (cfg *Config) enabledFamilies() []string {
	var out []string
	for _, f := range catalog {
		on := slices.Contains(f.profiles, cfg.Profile)
		if cc, ok := cfg.Collectors[f.name]; ok && cc.Enabled != nil {
			on = *cc.Enabled
		}
		if on {
			out = append(out, f.name)
		}
	}
	return out
}
