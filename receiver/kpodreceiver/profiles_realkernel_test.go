package kpodreceiver

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealProfiles: each profile loads exactly its families' programs into the kernel (read
// back from this process's BPF file descriptors, not from the config), emits only its
// families' metrics, and an idle container has the number of series the README documents.
func TestRealProfiles(t *testing.T) {
	fakepod.RequireRoot(t)
	cannot, lacks := unavailableHere(t)
	for _, profile := range []string{ProfileMinimal, ProfileStandard, ProfileComprehensive} {
		t.Run(profile, func(t *testing.T) {
			pod := fakepod.New(t, fakepod.Options{})
			ctr := pod.AddContainer()
			cfg := createDefaultConfig().(*Config)
			cfg.Profile = profile
			cfg.NodeName = "test-node"
			s := startScraper(t, cfg)
			ctr.Start("sleep").WaitReady()

			// Exactly the programs of the profile's families are loaded: those their objects
			// hold (a family with several paths loads one), and no other of this process.
			loaded := ownPrograms(t)
			enabled := map[string]bool{}
			want := map[string]bool{}
			for _, f := range catalog {
				enabled[f.name] = slices.Contains(f.profiles, profile)
			}
			for _, r := range s.runners {
				if !enabled[r.info.name] {
					t.Errorf("%s: runs %s, which is not in the profile", profile, r.info.name)
				}
				if _, ok := cannot[r.info.name]; ok || r.f == nil {
					checkUnavailable(t, r, cannot)
					continue
				}
				for _, o := range r.f.objects() {
					for _, p := range o.Programs {
						want[p.Name] = true
					}
				}
			}
			if !maps.Equal(loaded, want) {
				t.Errorf("%s: loaded programs %v, want those of the profile's families %v", profile, slices.Sorted(maps.Keys(loaded)), slices.Sorted(maps.Keys(want)))
			}

			md := scrape(t, s)
			failDump(t, md)
			allowed := map[string]bool{}
			for _, f := range catalog {
				if enabled[f.name] {
					for _, m := range f.metrics {
						allowed[m] = true
					}
				}
			}
			rm, ok := resourceOf(md, pod.UID, ctr.ID)
			if !ok {
				t.Fatal("no resource for the idle container")
			}
			names, series, histograms := seriesOf(rm)
			for _, n := range names {
				if !allowed[n] {
					t.Errorf("%s: emits %s, which none of its collectors documents", profile, n)
				}
			}
			// IRQ histograms appear only if an interrupt happened to hit the container's
			// few instants on a CPU; everything else an idle container has is fixed.
			irqHists := 0
			for _, n := range histograms {
				if strings.HasPrefix(n, "kpod.irq.") {
					irqHists++
				}
			}
			wantSeries := idleSeries[profile] + irqHists*histogramSeries
			for f, n := range lacks {
				if enabled[f] {
					wantSeries -= n
				}
			}
			if _, ok := readMemory(t, ctr)["peak"]; !ok {
				wantSeries-- // no memory.peak (cgroup v2 before 5.19)
			}
			if series != wantSeries {
				t.Errorf("%s: idle container has %d series (%d IRQ histograms), README documents %d + %d per IRQ histogram; metrics: %v",
					profile, series, irqHists, idleSeries[profile], histogramSeries, names)
			}
			t.Logf("%s: %d series for an idle container (%d IRQ histograms)", profile, series, irqHists)
		})
	}
}

// histogramSeries is what one histogram data point costs in Prometheus: a _bucket per
// bound plus +Inf, _sum and _count.
const histogramSeries = 26 + 1 + 2

// idleSeries is the README's count of series of an idle container (one process that woke
// up once, wrote one line and sleeps; no I/O, no network namespace of its own, no mounts).
var idleSeries = map[string]int{
	// cpu: switches + run-queue histogram (the one wakeup); oom; memory: usage, peak, cache, swap
	ProfileMinimal: 1 + histogramSeries + 1 + 4,
	// + major faults; tcp: bytes sent/received, connections active/passive, retransmits;
	// cachestat: additions, dirtied, buffers dirtied (accesses: unavailable here)
	ProfileStandard: 1 + histogramSeries + 1 + 4 + 1 + 5 + 3,
	// + proc: forks, execs, exits; syscall: read (the wakeup) and write (the line), each
	// count + errors + latency histogram; hardirqs: count
	ProfileComprehensive: 1 + histogramSeries + 1 + 4 + 1 + 5 + 3 + 3 + 2*(2+histogramSeries) + 1,
}

// seriesOf counts the Prometheus series of a resource's metrics.
func seriesOf(rm pmetric.ResourceMetrics) (names []string, series int, histograms []string) {
	ms := rm.ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		m := ms.At(i)
		names = append(names, m.Name())
		switch m.Type() {
		case pmetric.MetricTypeSum:
			series += m.Sum().DataPoints().Len()
		case pmetric.MetricTypeGauge:
			series += m.Gauge().DataPoints().Len()
		case pmetric.MetricTypeHistogram:
			for j := 0; j < m.Histogram().DataPoints().Len(); j++ {
				series += m.Histogram().DataPoints().At(j).BucketCounts().Len() + 2
				histograms = append(histograms, m.Name())
			}
		}
	}
	sort.Strings(names)
	return names, series, histograms
}

// ownPrograms returns the names of the BPF programs this process holds open (through
// program or link file descriptors), read from /proc/self/fdinfo.
func ownPrograms(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	entries, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			v, ok := strings.CutPrefix(line, "prog_id:")
			if !ok {
				continue
			}
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil {
				continue
			}
			p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
			if err != nil {
				continue
			}
			if info, err := p.Info(); err == nil {
				out[info.Name] = true
			}
			p.Close()
		}
	}
	return out
}
