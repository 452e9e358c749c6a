// Hand-written: mdatagen cannot generate histogram metrics (its MetricsBuilder does not
// compile with `histogram:`), so kpod's histograms are built here, in the same package so
// that they can be handed to EmitForResource as a ResourceMetricsOption and land in the same
// ResourceMetrics and scope as the generated metrics.

package metadata

import (
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// HistogramConfig switches one histogram metric on or off (metrics::<name>::enabled, the
// same shape as the generated metrics).
type HistogramConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

// HistogramsConfig holds the switches of every histogram metric.
type HistogramsConfig struct {
	KpodCPURunqueueLatency HistogramConfig `mapstructure:"kpod.cpu.runqueue.latency"`
	KpodSyscallLatency     HistogramConfig `mapstructure:"kpod.syscall.latency"`
	KpodNetTCPRtt          HistogramConfig `mapstructure:"kpod.net.tcp.rtt"`
	KpodDiskIoLatency      HistogramConfig `mapstructure:"kpod.disk.io.latency"`
	KpodIrqHwLatency       HistogramConfig `mapstructure:"kpod.irq.hw.latency"`
	KpodIrqSwLatency       HistogramConfig `mapstructure:"kpod.irq.sw.latency"`
	KpodL7RequestDuration  HistogramConfig `mapstructure:"kpod.l7.request.duration"`
	KpodTopologyRtt        HistogramConfig `mapstructure:"kpod.topology.rtt"`
	// The service-graph latencies, named as the servicegraph connector and Tempo name them.
	TracesServiceGraphRequestClientSeconds HistogramConfig `mapstructure:"traces_service_graph_request_client_seconds"`
	TracesServiceGraphRequestServerSeconds HistogramConfig `mapstructure:"traces_service_graph_request_server_seconds"`
}

// DefaultHistogramsConfig enables every histogram.
func DefaultHistogramsConfig() HistogramsConfig {
	on := HistogramConfig{Enabled: true}
	return HistogramsConfig{
		KpodCPURunqueueLatency: on, KpodSyscallLatency: on, KpodNetTCPRtt: on,
		KpodDiskIoLatency: on, KpodIrqHwLatency: on, KpodIrqSwLatency: on, KpodL7RequestDuration: on,
		KpodTopologyRtt: on, TracesServiceGraphRequestClientSeconds: on, TracesServiceGraphRequestServerSeconds: on,
	}
}

// HistogramInfo documents one histogram metric.
type HistogramInfo struct {
	Name, Description, Unit string
	Attributes              []string
	// Conditional names the attributes a point carries only when their value is not empty.
	Conditional []string
}

// Histograms lists the histogram metrics (the README table and the config keys come from it).
var Histograms = []HistogramInfo{
	{Name: "kpod.cpu.runqueue.latency", Unit: "s", Description: "Time the container's tasks waited on a CPU run queue between becoming runnable and running."},
	{Name: "kpod.syscall.latency", Unit: "s", Attributes: []string{"syscall"}, Description: "Latency of a tracked system call, from entry to return."},
	{Name: "kpod.net.tcp.rtt", Unit: "s", Description: "Smoothed round-trip time of the container's TCP sockets, sampled on every received segment."},
	{Name: "kpod.disk.io.latency", Unit: "s", Attributes: []string{"system.device"}, Description: "Block I/O request latency, from the request's creation to its completion, charged to the cgroup that submitted it."},
	{Name: "kpod.irq.hw.latency", Unit: "s", Description: "Time hardware interrupt handlers ran while the container's tasks were interrupted (on the node resource: the idle task or kernel threads)."},
	{Name: "kpod.irq.sw.latency", Unit: "s", Attributes: []string{"vector"}, Description: "Time soft interrupts (per vector: timer, net_rx, ...) ran while the container's tasks were interrupted (on the node resource: the idle task or kernel threads, including ksoftirqd)."},
	{Name: "kpod.l7.request.duration", Unit: "s", Attributes: []string{"protocol", "role", "method"}, Description: "Time from a request's first byte to its response's first byte, as the container saw them: sent to received (client) or received to sent (server)."},
	{Name: "kpod.topology.rtt", Unit: "s", Attributes: []string{"client", "server", "backend"}, Conditional: []string{"backend"}, Description: "Smoothed round-trip time of the edge's TCP connections, as the counting side's sockets measured it: each live socket once per collection and once when it closes."},
	{Name: "traces_service_graph_request_client_seconds", Unit: "s", Attributes: []string{"client", "server", "connection_type", "protocol", "backend"}, Conditional: []string{"backend"}, Description: "Time for a request between two nodes as seen from the client (request sent to response received), reported by the client's node."},
	{Name: "traces_service_graph_request_server_seconds", Unit: "s", Attributes: []string{"client", "server", "connection_type", "protocol"}, Description: "Time for a request between two nodes as seen from the server (request received to response sent), reported by the server's node."},
}

// HistogramPoint is one cumulative histogram data point. Counts has len(Bounds)+1 buckets.
type HistogramPoint struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

type histogramPoint struct {
	point HistogramPoint
	attrs []string
}

// HistogramBuilder collects the histogram points of the resource being built.
type HistogramBuilder struct {
	cfg     HistogramsConfig
	pending map[string][]histogramPoint
	ts      pcommon.Timestamp
}

// NewHistogramBuilder returns a builder honouring the enable switches.
func NewHistogramBuilder(cfg HistogramsConfig) *HistogramBuilder {
	return &HistogramBuilder{cfg: cfg, pending: map[string][]histogramPoint{}}
}

// RecordKpodCPURunqueueLatency adds a run-queue latency point.
func (b *HistogramBuilder) RecordKpodCPURunqueueLatency(ts pcommon.Timestamp, p HistogramPoint) {
	b.add(b.cfg.KpodCPURunqueueLatency, "kpod.cpu.runqueue.latency", ts, p)
}

// RecordKpodSyscallLatency adds a syscall latency point.
func (b *HistogramBuilder) RecordKpodSyscallLatency(ts pcommon.Timestamp, p HistogramPoint, syscall string) {
	b.add(b.cfg.KpodSyscallLatency, "kpod.syscall.latency", ts, p, syscall)
}

// RecordKpodNetTCPRtt adds a TCP round-trip time point.
func (b *HistogramBuilder) RecordKpodNetTCPRtt(ts pcommon.Timestamp, p HistogramPoint) {
	b.add(b.cfg.KpodNetTCPRtt, "kpod.net.tcp.rtt", ts, p)
}

// RecordKpodDiskIoLatency adds a block I/O latency point for one device.
func (b *HistogramBuilder) RecordKpodDiskIoLatency(ts pcommon.Timestamp, p HistogramPoint, device string) {
	b.add(b.cfg.KpodDiskIoLatency, "kpod.disk.io.latency", ts, p, device)
}

// RecordKpodIrqHwLatency adds a hard IRQ time point.
func (b *HistogramBuilder) RecordKpodIrqHwLatency(ts pcommon.Timestamp, p HistogramPoint) {
	b.add(b.cfg.KpodIrqHwLatency, "kpod.irq.hw.latency", ts, p)
}

// RecordKpodIrqSwLatency adds a soft IRQ time point for one vector.
func (b *HistogramBuilder) RecordKpodIrqSwLatency(ts pcommon.Timestamp, p HistogramPoint, vector string) {
	b.add(b.cfg.KpodIrqSwLatency, "kpod.irq.sw.latency", ts, p, vector)
}

// RecordKpodL7RequestDuration adds a request duration point for one protocol, role and method.
func (b *HistogramBuilder) RecordKpodL7RequestDuration(ts pcommon.Timestamp, p HistogramPoint, protocol, role, method string) {
	b.add(b.cfg.KpodL7RequestDuration, "kpod.l7.request.duration", ts, p, protocol, role, method)
}

// RecordKpodTopologyRtt adds an edge's RTT point.
// backend is the backend behind a Service server ("": none, or not known).
func (b *HistogramBuilder) RecordKpodTopologyRtt(ts pcommon.Timestamp, p HistogramPoint, client, server, backend string) {
	b.add(b.cfg.KpodTopologyRtt, "kpod.topology.rtt", ts, p, client, server, backend)
}

// RecordTracesServiceGraphRequestClientSeconds adds an edge's client-side latency point.
// backend is the backend behind a Service server ("": none, or not known).
func (b *HistogramBuilder) RecordTracesServiceGraphRequestClientSeconds(ts pcommon.Timestamp, p HistogramPoint, client, server, connectionType, protocol, backend string) {
	b.add(b.cfg.TracesServiceGraphRequestClientSeconds, "traces_service_graph_request_client_seconds", ts, p, client, server, connectionType, protocol, backend)
}

// RecordTracesServiceGraphRequestServerSeconds adds an edge's server-side latency point.
func (b *HistogramBuilder) RecordTracesServiceGraphRequestServerSeconds(ts pcommon.Timestamp, p HistogramPoint, client, server, connectionType, protocol string) {
	b.add(b.cfg.TracesServiceGraphRequestServerSeconds, "traces_service_graph_request_server_seconds", ts, p, client, server, connectionType, protocol)
}

// add queues a point; attrs are the values of the metric's Attributes, in order.
func (b *HistogramBuilder) add(cfg HistogramConfig, name string, ts pcommon.Timestamp, p HistogramPoint, attrs ...string) {
	if !cfg.Enabled {
		return
	}
	b.ts = ts
	b.pending[name] = append(b.pending[name], histogramPoint{point: p, attrs: attrs})
}

// Emit moves the pending points into the ResourceMetrics being emitted (pass it to
// MetricsBuilder.EmitForResource) and resets the builder for the next resource.
func (b *HistogramBuilder) Emit() ResourceMetricsOption {
	pending, ts := b.pending, b.ts
	b.pending = map[string][]histogramPoint{}
	return resourceMetricsOptionFunc(func(rm pmetric.ResourceMetrics) {
		metrics := rm.ScopeMetrics().At(0).Metrics()
		for _, info := range Histograms {
			points := pending[info.Name]
			if len(points) == 0 {
				continue
			}
			m := metrics.AppendEmpty()
			m.SetName(info.Name)
			m.SetDescription(info.Description)
			m.SetUnit(info.Unit)
			h := m.SetEmptyHistogram()
			h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			for _, p := range points {
				dp := h.DataPoints().AppendEmpty()
				dp.SetTimestamp(ts)
				dp.ExplicitBounds().FromRaw(p.point.Bounds)
				dp.BucketCounts().FromRaw(p.point.Counts)
				var n uint64
				for _, c := range p.point.Counts {
					n += c
				}
				dp.SetCount(n)
				dp.SetSum(p.point.Sum)
				for i, a := range info.Attributes {
					if p.attrs[i] != "" || !slices.Contains(info.Conditional, a) {
						dp.Attributes().PutStr(a, p.attrs[i])
					}
				}
			}
		}
	})
}

// WithCumulativeStart sets the start time of every cumulative sum and histogram point of the
// resource to start(metric name): counters kept by the kernel since the cgroup was created
// start then, counters kept by kpod's BPF maps start when kpod began counting. Gauges keep
// no start time (the generated code gives them one).
func WithCumulativeStart(start func(metric string) pcommon.Timestamp) ResourceMetricsOption {
	return resourceMetricsOptionFunc(func(rm pmetric.ResourceMetrics) {
		metrics := rm.ScopeMetrics().At(0).Metrics()
		for i := 0; i < metrics.Len(); i++ {
			m := metrics.At(i)
			switch m.Type() {
			case pmetric.MetricTypeGauge:
				for j := 0; j < m.Gauge().DataPoints().Len(); j++ {
					m.Gauge().DataPoints().At(j).SetStartTimestamp(0)
				}
			case pmetric.MetricTypeSum:
				ts := start(m.Name())
				for j := 0; j < m.Sum().DataPoints().Len(); j++ {
					m.Sum().DataPoints().At(j).SetStartTimestamp(ts)
				}
			case pmetric.MetricTypeHistogram:
				ts := start(m.Name())
				for j := 0; j < m.Histogram().DataPoints().Len(); j++ {
					m.Histogram().DataPoints().At(j).SetStartTimestamp(ts)
				}
			}
		}
	})
}
