//go:build reliability

package reliability

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/testenv"
)

// otlpSink is an OTLP/HTTP receiver the test can take down and bring back on the same
// address. It counts the data points it accepted (as the collector's own telemetry counts
// them: pmetric's DataPointCount) and when they were measured.
type otlpSink struct {
	addr string

	mu       sync.Mutex
	srv      *http.Server
	points   int64
	requests int
	bad      []string
	oldest   time.Time // of the data points received since the last mark
	newest   time.Time
	// series, if not nil, collects every sum and histogram point received by series
	// (otlpSeriesKey), in the order received.
	series map[string][]otlpPoint
}

// otlpPoint is one cumulative data point: when it was measured, since when it counts, and
// its value (a histogram's count).
type otlpPoint struct {
	T, Start time.Time
	V        float64
}

func (s *otlpSink) up(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if l, err = net.Listen("tcp4", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("OTLP sink on %s: %v", s.addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve)}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l)
}

// down closes the listener and every connection: the exporter's next request is refused.
func (s *otlpSink) down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (s *otlpSink) serve(w http.ResponseWriter, r *http.Request) {
	md, err := testenv.ReadOTLPMetrics(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.points += int64(md.DataPointCount())
	if s.series != nil {
		recordSeries(md, s.series)
	}
	forEachTimestamp(md, func(ts pcommon.Timestamp) {
		at := ts.AsTime()
		if s.oldest.IsZero() || at.Before(s.oldest) {
			s.oldest = at
		}
		if at.After(s.newest) {
			s.newest = at
		}
	})
	testenv.WriteOTLPResponse(w)
}

// mark returns the points received so far and the time range of those received since the
// last mark.
func (s *otlpSink) mark() (points int64, oldest, newest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	points, oldest, newest = s.points, s.oldest, s.newest
	s.oldest, s.newest = time.Time{}, time.Time{}
	return points, oldest, newest
}

// recordSeries appends every sum and histogram point of md to its series.
func recordSeries(md pmetric.Metrics, series map[string][]otlpPoint) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes()
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				stem := strings.ReplaceAll(m.Name(), ".", "_")
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for d := 0; d < m.Sum().DataPoints().Len(); d++ {
						dp := m.Sum().DataPoints().At(d)
						v := float64(dp.IntValue())
						if dp.ValueType() == pmetric.NumberDataPointValueTypeDouble {
							v = dp.DoubleValue()
						}
						key := otlpSeriesKey(stem, res, dp.Attributes())
						series[key] = append(series[key], otlpPoint{dp.Timestamp().AsTime(), dp.StartTimestamp().AsTime(), v})
					}
				case pmetric.MetricTypeHistogram:
					for d := 0; d < m.Histogram().DataPoints().Len(); d++ {
						dp := m.Histogram().DataPoints().At(d)
						key := otlpSeriesKey(stem, res, dp.Attributes())
						series[key] = append(series[key], otlpPoint{dp.Timestamp().AsTime(), dp.StartTimestamp().AsTime(), float64(dp.Count())})
					}
				}
			}
		}
	}
}

// otlpSeriesKey names a series as its Prometheus labels would: the metric name with _ for .
// (before the exporter's unit and type suffixes), then the resource's and the point's
// attributes with _ for ., sorted.
func otlpSeriesKey(stem string, res, attrs pcommon.Map) string {
	labels := map[string]string{}
	for _, m := range []pcommon.Map{res, attrs} {
		m.Range(func(k string, v pcommon.Value) bool {
			labels[strings.ReplaceAll(k, ".", "_")] = v.AsString()
			return true
		})
	}
	return stem + "{" + seriesKey(labels)
}

func forEachTimestamp(md pmetric.Metrics, f func(pcommon.Timestamp)) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeSum:
					for d := 0; d < m.Sum().DataPoints().Len(); d++ {
						f(m.Sum().DataPoints().At(d).Timestamp())
					}
				case pmetric.MetricTypeGauge:
					for d := 0; d < m.Gauge().DataPoints().Len(); d++ {
						f(m.Gauge().DataPoints().At(d).Timestamp())
					}
				case pmetric.MetricTypeHistogram:
					for d := 0; d < m.Histogram().DataPoints().Len(); d++ {
						f(m.Histogram().DataPoints().At(d).Timestamp())
					}
				}
			}
		}
	}
}

const (
	// backpressureLimit is the container memory limit of examples/kubernetes/daemonset.yaml,
	// set on the collector's own cgroup here; memory_limiter's limit_percentage: 80 of
	// collector-node.yaml makes its hard limit 80 % of it.
	backpressureLimit = 256 << 20
	backpressurePods  = 100
)

// TestBackpressure: otelcol-kpod with examples/collector-node.yaml (memory_limiter, batch,
// otlp_http with its sending queue; the API-dependent parts left out), the comprehensive
// profile and the l7 family at a 1 s cycle over 100 pods, in a memory cgroup limited like the DaemonSet's
// container (256 MiB), exporting to an OTLP sink that goes down for KPOD_OUTAGE (20 s in
// make test, 5 minutes in make soak) and comes back. Sampled every second: RSS stays under
// memory_limiter's limit and the process lives. Afterwards exports resume, with data measured
// during the outage and after it, and every data point the receiver accepted was delivered,
// counted as failed or refused, or is still in the pipeline.
func TestBackpressure(t *testing.T) {
	bin := testenv.CollectorBinary(t, repoRoot(t))
	fakepod.RequireRoot(t)
	outage := envDuration(t, "KPOD_OUTAGE", 20*time.Second)
	p := freePorts(t)
	sink := &otlpSink{addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	sink.up(t)
	t.Cleanup(sink.down)

	layout := fakepod.HostLayout(t)
	cfg := testenv.ExampleConfig(t, repoRoot(t), "collector-node.yaml",
		[2]string{"profile: standard", comprehensiveL7},
		[2]string{"collection_interval: 30s", "collection_interval: 1s"},
		[2]string{"proc_root: /host/proc", "proc_root: /proc"},
		[2]string{"    kubernetes:\n      enabled: true", "    kubernetes:\n      enabled: false"},
		[2]string{"processors: [memory_limiter, k8s_attributes, resource, batch]", "processors: [memory_limiter, resource, batch]"},
		[2]string{"endpoint: 0.0.0.0:9464", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.prom)},
		[2]string{"endpoint: 0.0.0.0:13133", fmt.Sprintf("endpoint: 127.0.0.1:%d", p.health)},
		[2]string{"host: 0.0.0.0\n                port: 8888", fmt.Sprintf("host: 127.0.0.1\n                port: %d", p.telemetry)})
	for i := 0; i < backpressurePods; i++ {
		fakepod.New(t, fakepod.Options{}).AddContainer().Start("sleep").WaitReady()
	}

	// The collector runs in a pod of its own with the DaemonSet's memory limit, which
	// memory_limiter reads from its cgroup at start: a shell joins the cgroups, then execs it.
	own := fakepod.New(t, fakepod.Options{MemoryLimit: backpressureLimit})
	ctr := own.AddContainer()
	var join []string
	for _, root := range fakepod.CgroupRoots(layout) {
		join = append(join, "echo $$ > "+filepath.Join(root, ctr.Rel, "cgroup.procs"))
	}
	cmd := exec.Command("/bin/sh", "-c", strings.Join(join, " && ")+` && exec "$0" --config "$1"`, bin, cfg)
	gomemlimit := daemonSetEnv(t, "GOMEMLIMIT")
	cmd.Env = append(os.Environ(), "K8S_NODE_NAME=backpressure-node", "OTLP_ENDPOINT=http://"+sink.addr,
		"KPOD_CGROUP_ROOT="+layout.V2, "KPOD_CLUSTER_NAME=backpressure-cluster", "GOMEMLIMIT="+gomemlimit)
	k := testenv.StartCollectorCmd(t, cmd, nil)
	pid := k.Cmd.Process.Pid
	firstCycle(t, k, p)
	limit := uint64(backpressureLimit) * 80 / 100 // limit_percentage: 80

	var rssMax uint64
	var heapMax float64
	watch := func(d time.Duration, phase string) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
			if exited, err := k.Exited(); exited {
				t.Fatalf("collector exited %s: %v (RSS max %.1f MiB, heap max %.1f MiB, %d OOM kills in its cgroup)",
					phase, err, float64(rssMax)/(1<<20), heapMax/(1<<20), ctr.OOMKills(t))
			}
			ctx, cancel := contextTimeout(5 * time.Second)
			if tel, err := testenv.Scrape(ctx, p.telemetryURL()); err == nil {
				heapMax = max(heapMax, sum(tel, "otelcol_process_runtime_heap_alloc_bytes", nil))
			}
			cancel()
			st, err := readProcStatus(pid)
			if err != nil {
				t.Fatalf("collector %s: %v", phase, err)
			}
			rssMax = max(rssMax, st.RSS)
			if st.RSS >= limit {
				t.Errorf("%s: RSS %.1f MiB reached memory_limiter's limit %.1f MiB", phase, float64(st.RSS)/(1<<20), float64(limit)/(1<<20))
			}
		}
	}
	watch(10*time.Second, "before the outage")
	before, _, _ := sink.mark()
	if before == 0 {
		t.Fatalf("the sink received nothing before the outage")
	}

	sink.down()
	downAt := time.Now()
	watch(outage, "during the outage")
	duringTel := scrape(t, p.telemetryURL())
	sink.up(t)
	upAt := time.Now()
	t.Logf("sink down %v..%v (%v)", downAt.Format("15:04:05"), upAt.Format("15:04:05"), upAt.Sub(downAt).Round(time.Second))

	// Exports resume: the exporter retries with a backoff of up to 30 s (retry_on_failure's
	// default max_interval), then drains its queue; wait for the queue to be empty and for
	// data measured after the sink came back.
	var tel []sample
	var resumed, oldestAfter time.Time // oldest: of the points received after the return
	for deadline := time.Now().Add(outage + 3*time.Minute); ; {
		watch(2*time.Second, "after the outage")
		tel = scrape(t, p.telemetryURL())
		_, oldest, newest := sink.mark()
		if !oldest.IsZero() && (oldestAfter.IsZero() || oldest.Before(oldestAfter)) {
			oldestAfter = oldest
		}
		if resumed.IsZero() && newest.After(upAt) {
			resumed = time.Now()
		}
		if !resumed.IsZero() && queueSize(tel) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exports did not resume within %v of the sink's return (queue size %v, newest point received %v)",
				outage+3*time.Minute, queueSize(tel), newest)
		}
	}
	t.Logf("exports resumed %v after the sink came back; the oldest point delivered since was measured %v after it went down",
		resumed.Sub(upAt).Round(time.Second), oldestAfter.Sub(downAt).Round(time.Second))
	// What the queue held through the outage is delivered: points measured while the sink was
	// down (the queue keeps the oldest requests and refuses new ones when full).
	if !oldestAfter.Before(upAt) || oldestAfter.Before(downAt.Add(-10*time.Second)) {
		t.Errorf("the oldest point delivered after the outage was measured at %v; want one from the outage (%v..%v)",
			oldestAfter.Format("15:04:05"), downAt.Format("15:04:05"), upAt.Format("15:04:05"))
	}

	received, _, _ := sink.mark()
	accepted := telemetry(tel, "otelcol_receiver_accepted_metric_points", "")
	refused := telemetry(tel, "otelcol_receiver_refused_metric_points", "")
	sent := telemetry(tel, "otelcol_exporter_sent_metric_points", "otlp_http")
	failed := telemetry(tel, "otelcol_exporter_send_failed_metric_points", "otlp_http")
	enqueueFailed := telemetry(tel, "otelcol_exporter_enqueue_failed_metric_points", "otlp_http")
	lostDuring := telemetry(duringTel, "otelcol_exporter_send_failed_metric_points", "otlp_http") +
		telemetry(duringTel, "otelcol_exporter_enqueue_failed_metric_points", "otlp_http")
	residue := accepted - float64(received) - failed - enqueueFailed
	t.Logf("points: accepted by the receiver %v, refused %v; received by the sink %v (before the outage %d; exporter counts %v sent); send failed %v, enqueue failed %v (%v at the end of the outage); residue %v; RSS max %.1f MiB (limit %.1f MiB), Go heap max %.1f MiB (GOMEMLIMIT %s), cgroup memory.peak %s",
		accepted, refused, received, before, sent, failed, enqueueFailed, lostDuring, residue, float64(rssMax)/(1<<20), float64(limit)/(1<<20),
		heapMax/(1<<20), gomemlimit, memoryPeak(ctr))
	// The residue is what is still in the pipeline: the batch processor's buffer (up to
	// send_batch_size, 4096, plus one cycle) and requests in flight; both are bounded by two
	// batches. Anything beyond is data lost without being counted.
	if residue < 0 || residue > 2*4096+float64(backpressurePods)*50 {
		t.Errorf("accepted %v − received %v − send failed %v − enqueue failed %v = %v points unaccounted for",
			accepted, received, failed, enqueueFailed, residue)
	}
	if float64(received) < sent {
		t.Errorf("the exporter counts %v points sent, the sink received %d", sent, received)
	}
	if n, bad := sink.requests, sink.bad; len(bad) > 0 {
		t.Errorf("%d of %d requests were not OTLP metrics: %v", len(bad), n, bad[0])
	}
	if st := ctr.OOMKills(t); st != 0 {
		t.Errorf("the collector's cgroup counts %d OOM kills", st)
	}
}

// memoryPeak is the kernel's highest charge of the container's memory cgroup (v2
// memory.peak, v1 memory.max_usage_in_bytes), in MiB, or what kept it from being read.
func memoryPeak(c *fakepod.Container) string {
	var errs []string
	for _, f := range []string{"memory.peak", "memory.max_usage_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(c.ControllerDir("memory"), f))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Sprintf("%s: %q", f, b)
		}
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return strings.Join(errs, "; ")
}

// queueSize is otlp_http's sending queue length (requests) in the collector's telemetry.
func queueSize(tel []sample) float64 {
	return telemetry(tel, "otelcol_exporter_queue_size", "otlp_http")
}

// telemetry sums a metric of the collector's own telemetry, for one exporter if given.
func telemetry(tel []sample, name, exporter string) float64 {
	var want map[string]string
	if exporter != "" {
		want = map[string]string{"exporter": exporter}
	}
	return sum(tel, name, want)
}
