package kpodreceiver

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/kpod-project/kpod/internal/biolatency"
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/cachestat"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/diskio"
	"github.com/kpod-project/kpod/internal/filesystem"
	"github.com/kpod-project/kpod/internal/hardirqs"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/iface"
	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/memory"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/proc"
	"github.com/kpod-project/kpod/internal/softirqs"
	"github.com/kpod-project/kpod/internal/syscall"
	"github.com/kpod-project/kpod/internal/tcp"
	"github.com/kpod-project/kpod/internal/tcpdrop"
	"github.com/kpod-project/kpod/internal/topology"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var (
	goldenStart   = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	goldenCreated = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC) // before kpod started
	goldenNow     = time.Date(2026, 11, 1, 10, 0, 30, 0, time.UTC)
)

// goldenIndex is one pod with a sandbox, an app container that has a child cgroup, and a
// second app container. Cgroup ids: pod 100, sandbox 101, app 102 (child 103), sidecar 104.
func goldenIndex() *podid.Index {
	p := &podid.Pod{UID: "0b5f2a3c-1111-4222-8333-444455556666", QoS: podid.Burstable, Driver: podid.Cgroupfs,
		Rel: "kubepods/burstable/pod0b5f2a3c-1111-4222-8333-444455556666", CgroupID: 100, Created: goldenCreated}
	mk := func(id string, cg uint64, sandbox bool, ids ...uint64) *podid.Container {
		return &podid.Container{Pod: p, ID: id, Rel: p.Rel + "/" + id, CgroupID: cg, Created: goldenCreated,
			Sandbox: sandbox, CgroupIDs: append([]uint64{cg}, ids...)}
	}
	p.Containers = []*podid.Container{
		mk("1111111111111111111111111111111111111111111111111111111111111111", 101, true),
		mk("2222222222222222222222222222222222222222222222222222222222222222", 102, false, 103),
		mk("3333333333333333333333333333333333333333333333333333333333333333", 104, false),
	}
	live := map[uint64]bool{100: true, 101: true, 102: true, 103: true, 104: true}
	return &podid.Index{Pods: []*podid.Pod{p}, Live: live}
}

func latency(ns ...uint64) hist.Hist {
	var h hist.Hist
	for _, v := range ns {
		h.Counts[hist.Slot(v)]++
		h.SumNs += v
	}
	return h
}

// fake is a family's source with fixed values: what its BPF maps or cgroup files would give.
type fake[V any] struct {
	vals   map[uint64]V
	bpf    bool              // CountsInBPF
	absent map[string]string // UnavailableMetrics
	sample uint32            // LatencySample
}

func (f fake[V]) Collect(context.Context, *podid.Index) (map[uint64]V, error) { return f.vals, nil }
func (fake[V]) Objects() []*bpfload.Object                                    { return nil }
func (fake[V]) Close() error                                                  { return nil }
func (f fake[V]) CountsInBPF() bool                                           { return f.bpf }
func (f fake[V]) UnavailableMetrics() map[string]string                       { return f.absent }
func (f fake[V]) LatencySample() uint32                                       { return f.sample }

// goldenFakes are the values each family's source returns in TestGolden, by family name.
var goldenFakes = map[string]any{
	"cpu": fake[cpu.Stats]{vals: map[uint64]cpu.Stats{
		102: {Switches: 40, RunQueue: latency(800, 1500, 3000)},
		103: {Switches: 2, RunQueue: latency(2_000_000)},
		999: {Switches: 7}, // a cgroup that is not a container: not reported
	}},
	"oom":  fake[uint64]{vals: map[uint64]uint64{104: 1}},
	"proc": fake[proc.Stats]{vals: map[uint64]proc.Stats{102: {Forks: 3, Execs: 4, Exits: 3}}},
	"syscall": fake[map[string]syscall.Stats]{vals: map[uint64]map[string]syscall.Stats{
		102: {"close": {Count: 10, Errors: 10, Latency: latency(900, 900, 900, 900, 900, 900, 900, 900, 900, 900)}},
		103: {"read": {Count: 1, Latency: latency(5_000_000)}},
	}, sample: 16},
	"diskio": fake[diskio.Stats]{vals: map[uint64]diskio.Stats{
		102: {cgroupfs.Dev{Major: 254, Minor: 0}: {ReadBytes: 4096, WriteBytes: 8 << 20, Reads: 1, Writes: 128}},
	}},
	"memory": fake[memory.Stats]{vals: map[uint64]memory.Stats{
		102: {Usage: 64 << 20, Peak: 70 << 20, HasPeak: true, Cache: 1 << 20},
		104: {Usage: 1 << 20, Cache: 4096, Swap: 8192, HasSwap: true},
	}},
	"pagefaults": fake[uint64]{vals: map[uint64]uint64{102: 12, 104: 0}},
	"iface": fake[iface.Stats]{vals: map[uint64]iface.Stats{
		100: {"eth0": {RxBytes: 1000, RxPackets: 10, TxBytes: 24200, TxPackets: 100, RxDrops: 1}},
	}},
	"tcp": fake[tcp.Stats]{vals: map[uint64]tcp.Stats{
		102: {BytesSent: 1 << 20, BytesReceived: 4096, ConnsActive: 10, Retransmits: 3, RTT: latency(40_000, 45_000, 2_000_000)},
		104: {BytesReceived: 1 << 20, ConnsPassive: 10},
	}},
	"l7": fake[l7.Stats]{vals: map[uint64]l7.Stats{
		102: {Requests: map[l7.Key]l7.Value{
			{Protocol: "http", Role: "server", Method: "GET", Status: "2xx"}: {Count: 3, Latency: latency(50_000_000, 51_000_000, 52_000_000)},
			{Protocol: "http", Role: "server", Method: "GET", Status: "4xx"}: {Count: 1, Latency: latency(1_000_000)},
		}},
		103: {Requests: map[l7.Key]l7.Value{
			{Protocol: "redis", Role: "client", Method: "SET", Status: "error"}: {Count: 1, Latency: latency(80_000)},
		}, Lost: map[l7.LostKey]uint64{{Protocol: "redis", Role: "client", Reason: "resync"}: 2}},
		104: {Requests: map[l7.Key]l7.Value{
			{Protocol: "dns", Role: "client", Method: "AAAA", Status: "ok"}: {Count: 2, Latency: latency(300_000, 400_000)},
		}},
	}},
	"topology": fake[*topology.Graph]{vals: map[uint64]*topology.Graph{bpfload.NodeID: goldenGraph()}},
	"tcpdrop": fake[tcpdrop.Stats]{vals: map[uint64]tcpdrop.Stats{
		104:            {"netfilter_drop": 7, "tcp_csum": 1},
		bpfload.NodeID: {"no_socket": 2},
	}},
	"biolatency": fake[biolatency.Stats]{vals: map[uint64]biolatency.Stats{
		102: {cgroupfs.Dev{Major: 7, Minor: 0}: latency(50_000, 60_000, 2_000_000)},
		103: {cgroupfs.Dev{Major: 7, Minor: 0}: latency(70_000)},
	}},
	"cachestat": fake[cachestat.Stats]{
		vals:   map[uint64]cachestat.Stats{102: {Added: 2002, Dirtied: 2000, BuffersDirtied: 2000}},
		absent: map[string]string{"kpod.mem.cache.accesses": "fentry: not supported; kprobe: not supported"},
	},
	"hardirqs": fake[hardirqs.Stats]{vals: map[uint64]hardirqs.Stats{
		102:            {Count: 2, Latency: latency(3_000, 5_000)},
		bpfload.NodeID: {Count: 9, Latency: latency(1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000)},
	}},
	"softirqs": fake[softirqs.Stats]{vals: map[uint64]softirqs.Stats{
		104:            {"timer": latency(2_000), "rcu": latency(1_500, 1_500)},
		bpfload.NodeID: {"net_rx": latency(40_000)},
	}, sample: 4},
	"filesystem": fake[filesystem.Stats]{vals: map[uint64]filesystem.Stats{
		102: {"/": {Capacity: 10 << 30, Used: 3 << 30, Available: 6 << 30}, "/data": {Capacity: 1 << 30, Used: 1 << 20, Available: 900 << 20}},
	}},
}

// TestGolden runs the real start and scrape of a scraper with one family enabled, with the
// pod index and the family's source faked (goldenIndex, goldenFakes), and compares the
// metrics with testdata/golden/<family>.yaml. Run with -update to rewrite them, then review
// the diff.
func TestGolden(t *testing.T) {
	procRoot := t.TempDir() // the host's mounts as a pure cgroup v2 node has them
	mi, err := os.ReadFile("../../testdata/mountinfo/pure-v2.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(procRoot, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(procRoot, "self", "mountinfo"), mi, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range catalog {
		t.Run(f.name, func(t *testing.T) {
			if goldenFakes[f.name] == nil {
				t.Fatalf("no fake source for family %s in goldenFakes", f.name)
			}
			cfg := customConfig(f.name)
			cfg.ProcRoot = procRoot
			cfg.NodeName = "node-1"
			s := newScraper(cfg, receivertest.NewNopSettings(metadata.Type))
			clock := goldenStart
			s.now = func() time.Time { return clock }
			s.scan = func() (*podid.Index, error) { return goldenIndex(), nil }
			s.fakes = goldenFakes
			if err := s.start(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = s.shutdown(context.Background()) }()
			s.devices.SysRoot = t.TempDir() // no /sys/dev/block entries: devices are major:minor
			clock = goldenNow
			got, err := s.scrape(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", f.name+".yaml")
			if *update {
				// real timestamps: which series start with kpod and which with the cgroup is
				// part of what is checked
				if err := golden.WriteMetricsToFile(path, got, golden.SkipMetricTimestampNormalization()); err != nil {
					t.Fatal(err)
				}
			}
			want, err := golden.ReadMetrics(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestGolden -update writes it)", err)
			}
			if err := pmetrictest.CompareMetrics(want, got,
				// wall-clock durations of this run
				pmetrictest.IgnoreMetricValues("kpod.collection.cycle.duration", "kpod.collector.duration"),
				pmetrictest.IgnoreResourceMetricsOrder(),
				pmetrictest.IgnoreMetricsOrder(),
			); err != nil {
				t.Errorf("metrics differ from %s (go test -run TestGolden -update rewrites it): %v", path, err)
			}
		})
	}
}

// goldenGraph: the golden pod calls a Service over HTTP (4 requests, one failed) and a Redis
// at a private address (no API: named by it); an external client calls the pod (counted
// here); the pod is also the server of requests from a pod of another node (not counted here:
// server latency only). TCP: the pod's connections to the Service and from outside, and the
// edges beyond max_edges.
func goldenGraph() *topology.Graph {
	const pod = "0b5f2a3c-1111-4222-8333-444455556666"
	g := &topology.Graph{Edges: 4, Overflow: 2,
		Requests: map[topology.RequestKey]*topology.Requests{
			{Client: pod, Server: "shop/cart", Protocol: "http"}: {Counted: true,
				Client: topology.Side{Seen: true, Count: 4, Failed: 1, Latency: latency(2_000_000, 3_000_000, 3_500_000, 40_000_000)}},
			{Client: pod, Server: "10.0.0.7", Protocol: "redis"}: {Counted: true,
				Client: topology.Side{Seen: true, Count: 2, Latency: latency(90_000, 110_000)}},
			{Client: "external", Server: pod, Protocol: "http"}: {Counted: true,
				Server: topology.Side{Seen: true, Count: 3, Failed: 3, Latency: latency(1_000_000, 1_000_000, 1_000_000)}},
			{Client: "shop/web-7d9f8-x2x4k", Server: pod, Protocol: "http"}: {
				Server: topology.Side{Seen: true, Count: 5, Latency: latency(500_000, 500_000, 500_000, 500_000, 500_000)}},
		},
		Conns: map[topology.ConnKey]*topology.Conns{
			{Client: pod, Server: "shop/cart"}: {Connections: 1, BytesToServer: 412, BytesToClient: 1280, RTT: latency(60_000)},
			{Client: "external", Server: pod}:  {Connections: 3, BytesToServer: 300, BytesToClient: 900, RTT: latency(9_000_000, 9_000_000, 9_000_000)},
			{Client: pod, Server: "overflow"}:  {Connections: 2, BytesToServer: 10, BytesToClient: 0},
		}}
	return g
}
