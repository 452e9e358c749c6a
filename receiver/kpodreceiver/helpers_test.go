package kpodreceiver

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// customConfig enables exactly the named collectors.
func customConfig(collectors ...string) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Profile = ProfileCustom
	cfg.NodeName = "test-node"
	cfg.Collectors = map[string]CollectorConfig{}
	on := true
	for _, c := range collectors {
		cfg.Collectors[c] = CollectorConfig{Enabled: &on}
	}
	return cfg
}

// startScraper starts a scraper and stops it when the test ends.
func startScraper(t *testing.T, cfg *Config) *kpodScraper {
	t.Helper()
	s := newScraper(cfg, receivertest.NewNopSettings(metadata.Type))
	if err := s.start(context.Background(), nil); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// scrape runs one cycle and fails the test on any error.
func scrape(t *testing.T, s *kpodScraper) pmetric.Metrics {
	t.Helper()
	md, err := s.scrape(context.Background())
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return md
}

// resourceOf finds the ResourceMetrics of a container (cid != "") or of a pod (cid == "");
// when there is none it returns an empty one (ok false) that holds no metric.
func resourceOf(md pmetric.Metrics, podUID, cid string) (pmetric.ResourceMetrics, bool) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		a := rm.Resource().Attributes()
		uid, _ := a.Get("k8s.pod.uid")
		c, hasC := a.Get("container.id")
		if uid.Str() == podUID && (cid == "" && !hasC || hasC && c.Str() == cid) {
			return rm, true
		}
	}
	return pmetric.NewResourceMetrics(), false
}

// metricOf finds a metric by name in a resource.
func metricOf(rm pmetric.ResourceMetrics, name string) (pmetric.Metric, bool) {
	for i := 0; i < rm.ScopeMetrics().Len(); i++ {
		ms := rm.ScopeMetrics().At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			if ms.At(j).Name() == name {
				return ms.At(j), true
			}
		}
	}
	return pmetric.Metric{}, false
}

// point finds the number data point of a metric whose attributes include attrs.
func point(rm pmetric.ResourceMetrics, name string, attrs map[string]string) (pmetric.NumberDataPoint, bool) {
	m, ok := metricOf(rm, name)
	if !ok {
		return pmetric.NewNumberDataPoint(), false
	}
	var dps pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeSum:
		dps = m.Sum().DataPoints()
	case pmetric.MetricTypeGauge:
		dps = m.Gauge().DataPoints()
	default:
		return pmetric.NewNumberDataPoint(), false
	}
	for i := 0; i < dps.Len(); i++ {
		if hasAttrs(dps.At(i).Attributes(), attrs) {
			return dps.At(i), true
		}
	}
	return pmetric.NewNumberDataPoint(), false
}

// histogramOf finds the histogram data point of a metric whose attributes include attrs.
func histogramOf(rm pmetric.ResourceMetrics, name string, attrs map[string]string) (pmetric.HistogramDataPoint, bool) {
	m, ok := metricOf(rm, name)
	if !ok || m.Type() != pmetric.MetricTypeHistogram {
		return pmetric.NewHistogramDataPoint(), false
	}
	for i := 0; i < m.Histogram().DataPoints().Len(); i++ {
		dp := m.Histogram().DataPoints().At(i)
		if hasAttrs(dp.Attributes(), attrs) {
			return dp, true
		}
	}
	return pmetric.NewHistogramDataPoint(), false
}

func hasAttrs(a pcommon.Map, want map[string]string) bool {
	for k, v := range want {
		got, ok := a.Get(k)
		if !ok || got.Str() != v {
			return false
		}
	}
	return true
}

// intValue returns a data point's value, failing the test if it is missing.
func intValue(t *testing.T, rm pmetric.ResourceMetrics, name string, attrs map[string]string) int64 {
	t.Helper()
	dp, ok := point(rm, name, attrs)
	if !ok {
		t.Fatalf("no %s%v in resource %v", name, attrs, rm.Resource().Attributes().AsRaw())
	}
	return dp.IntValue()
}

// dumpMetrics logs every data point, to see what a failing test got.
func dumpMetrics(t *testing.T, md pmetric.Metrics) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		t.Logf("resource %v", rm.Resource().Attributes().AsRaw())
		ms := rm.ScopeMetrics().At(0).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			switch m.Type() {
			case pmetric.MetricTypeSum:
				for k := 0; k < m.Sum().DataPoints().Len(); k++ {
					dp := m.Sum().DataPoints().At(k)
					t.Logf("  %s %v = %d", m.Name(), dp.Attributes().AsRaw(), dp.IntValue())
				}
			case pmetric.MetricTypeGauge:
				for k := 0; k < m.Gauge().DataPoints().Len(); k++ {
					dp := m.Gauge().DataPoints().At(k)
					t.Logf("  %s %v = %d / %g", m.Name(), dp.Attributes().AsRaw(), dp.IntValue(), dp.DoubleValue())
				}
			case pmetric.MetricTypeHistogram:
				for k := 0; k < m.Histogram().DataPoints().Len(); k++ {
					dp := m.Histogram().DataPoints().At(k)
					t.Logf("  %s %v count=%d sum=%g", m.Name(), dp.Attributes().AsRaw(), dp.Count(), dp.Sum())
				}
			}
		}
	}
}

// unavailableHere returns the families this kernel cannot run, known independently of kpod,
// with the reason each must give, and the series of an idle container each would have had.
func unavailableHere(t *testing.T) (reasons map[string]string, idleSeries map[string]int) {
	t.Helper()
	reasons, idleSeries = map[string]string{}, map[string]int{}
	if !bpftest.HasBPFLoop(t) { // before 5.17
		reasons["l7"], idleSeries["l7"] = bpftest.LoopReason, 0
	}
	return reasons, idleSeries
}

// checkUnavailable: family runner r is unavailable, with the reason this kernel's lack of
// something must give (reasons, from unavailableHere); a family that could run fails.
func checkUnavailable(t *testing.T, r *runner, reasons map[string]string) {
	t.Helper()
	why, ok := reasons[r.info.name]
	switch {
	case !ok:
		t.Errorf("%s is unavailable: %s", r.info.name, r.reason)
	case r.f != nil || !strings.Contains(r.reason, why):
		t.Errorf("%s: available %v, reason %q; want unavailable, as this kernel has %s", r.info.name, r.f != nil, r.reason, why)
	}
}
