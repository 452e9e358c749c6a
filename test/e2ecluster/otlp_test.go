//go:build e2ecluster

package e2ecluster

import (
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// otlpAddr is where the test receives the DaemonSet's OTLP/HTTP export: the collector runs
// with hostNetwork, so 127.0.0.1 is this host (chartValues sets otlp.endpoint to it).
const otlpAddr = "127.0.0.1:14318"

// otlpSink is an OTLP/HTTP metrics receiver: it keeps the last value of every sum data point
// it was sent, by metric name and the resource's pod and container names, and counts the
// resources it received by their k8s.cluster.name ("" for none).
type otlpSink struct {
	mu       sync.Mutex
	requests int
	bad      []string
	last     map[string]float64
	clusters map[string]int
}

func startOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{last: map[string]float64{}, clusters: map[string]int{}}
	l, err := net.Listen("tcp4", otlpAddr)
	if err != nil {
		t.Fatalf("OTLP sink: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serve)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *otlpSink) serve(w http.ResponseWriter, r *http.Request) {
	err := s.take(r)
	s.mu.Lock()
	s.requests++
	if err != nil {
		s.bad = append(s.bad, err.Error())
	}
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, _ := pmetricotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(body)
}

func (s *otlpSink) take(r *http.Request) error {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/metrics" {
		return fmt.Errorf("%s %s: want POST /v1/metrics", r.Method, r.URL.Path)
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(r.Body)
		if err != nil {
			return err
		}
		body = z
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	req := pmetricotlp.NewExportRequest()
	if err := req.UnmarshalProto(raw); err != nil {
		return fmt.Errorf("not an OTLP metrics request (%s): %v", r.Header.Get("Content-Type"), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rms := req.Metrics().ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		attrs := rms.At(i).Resource().Attributes()
		str := func(k string) string {
			if v, ok := attrs.Get(k); ok {
				return v.AsString()
			}
			return ""
		}
		s.clusters[str("k8s.cluster.name")]++
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeSum {
					continue
				}
				dps := m.Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					if dps.At(d).Attributes().Len() > 0 {
						continue // only series without data point attributes are kept
					}
					s.last[otlpKey(m.Name(), str("k8s.namespace.name"), str("k8s.pod.name"), str("k8s.container.name"))] = pointValue(dps.At(d))
				}
			}
		}
	}
	return nil
}

func pointValue(p pmetric.NumberDataPoint) float64 {
	if p.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(p.IntValue())
	}
	return p.DoubleValue()
}

func otlpKey(metric, namespace, pod, container string) string {
	return metric + "|" + namespace + "/" + pod + "/" + container
}

// value is the last value received for a metric of a container, and whether there was one.
func (s *otlpSink) value(metric, namespace, pod, container string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.last[otlpKey(metric, namespace, pod, container)]
	return v, ok
}

// clusterNames is how many resources were received per k8s.cluster.name.
func (s *otlpSink) clusterNames() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{}
	for k, v := range s.clusters {
		m[k] = v
	}
	return m
}

func (s *otlpSink) stats() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, append([]string(nil), s.bad...)
}
