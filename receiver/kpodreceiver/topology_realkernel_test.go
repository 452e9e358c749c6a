package kpodreceiver

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/topology"
)

// The topology family's tests: fake pods in their own network namespaces joined by a veth,
// no API server, so local pods are named by their UIDs and other peers by address. Each
// asserts exact requests or connections and bytes on exactly the expected edges against the
// workloads' own counts, and nothing for the idle pod.

// topoPair is fakepod.NewPair with a sandbox ("pause") in the client and server pods, as
// every kubelet's pod has: it holds the pod's network namespace, where kpod reads the pod's
// addresses, while the workloads come and go.
func topoPair(t *testing.T) *fakepod.Pair {
	t.Helper()
	p := fakepod.NewPair(t)
	p.Client.AddSandbox()
	p.Server.AddSandbox()
	return p
}

// startTopology starts a scraper that sees only the given fake pods: this host may run other
// pods (other tests', a test cluster's) whose edges would share the node's graph and its
// max_edges. Everything else runs as in production.
func startTopology(t *testing.T, cfg *Config, pods ...*fakepod.Pod) *kpodScraper {
	t.Helper()
	s := startScraper(t, cfg)
	ours := map[string]bool{}
	for _, p := range pods {
		ours[p.UID] = true
	}
	scan := s.scan
	s.scan = func() (*podid.Index, error) {
		x, err := scan()
		if x != nil {
			x.Pods = slices.DeleteFunc(x.Pods, func(p *podid.Pod) bool { return !ours[p.UID] })
		}
		return x, err
	}
	return s
}

// nodeRM is the node-level resource of a scrape.
func nodeRM(md pmetric.Metrics) pmetric.ResourceMetrics {
	rm, _ := resourceOf(md, "", "")
	return rm
}

// edgeValues returns a node metric's points by "client server[ extra attributes]": the
// protocol (and the backend behind a Service) for service-graph metrics, the direction for
// kpod.topology.bytes.
func edgeValues(md pmetric.Metrics, name string) map[string]int64 {
	out := map[string]int64{}
	m, ok := metricOf(nodeRM(md), name)
	if !ok {
		return out
	}
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		a := dps.At(i).Attributes().AsRaw()
		k := fmt.Sprint(a["client"], " ", a["server"])
		for _, x := range []string{"protocol", "direction", "backend"} {
			if v, ok := a[x]; ok {
				k += " " + fmt.Sprint(v)
			}
		}
		out[k] += dps.At(i).IntValue()
	}
	return out
}

// edgeHistCounts returns a node histogram's sample counts by "client server[ protocol][ backend]".
func edgeHistCounts(md pmetric.Metrics, name string) map[string]uint64 {
	out := map[string]uint64{}
	m, ok := metricOf(nodeRM(md), name)
	if !ok {
		return out
	}
	dps := m.Histogram().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		a := dps.At(i).Attributes().AsRaw()
		k := fmt.Sprint(a["client"], " ", a["server"])
		for _, x := range []string{"protocol", "backend"} {
			if v, ok := a[x]; ok {
				k += " " + fmt.Sprint(v)
			}
		}
		out[k] += dps.At(i).Count()
	}
	return out
}

// startL7Topology starts the l7 and topology families for a topoPair's pods and fails if
// either cannot run.
func startL7Topology(t *testing.T, p *fakepod.Pair) *kpodScraper {
	t.Helper()
	s := startTopology(t, customConfig("l7", "topology"), p.Client, p.Server, p.Idle)
	for _, r := range s.runners {
		if r.f == nil {
			t.Fatalf("%s unavailable: %s", r.info.name, r.reason)
		}
	}
	return s
}

// checkServiceGraph asserts that the pair's client → server edge of protocol, and no other
// edge, carries the requests the client counted (by "method status"): all of them, the
// failed ones (status error, 4xx, 5xx), and one latency sample per request on each side.
func checkServiceGraph(t *testing.T, md pmetric.Metrics, p *fakepod.Pair, protocol string, counts map[string]int64) {
	t.Helper()
	var total, failed int64
	for k, v := range counts {
		total += v
		if _, status, _ := strings.Cut(k, " "); status == "error" || status == "4xx" || status == "5xx" {
			failed += v
		}
	}
	edge := p.Client.UID + " " + p.Server.UID + " " + protocol
	if got := edgeValues(md, "traces_service_graph_request_total"); !maps.Equal(got, map[string]int64{edge: total}) {
		t.Errorf("traces_service_graph_request_total: got %v, want %s = %d", got, edge, total)
	}
	if got := edgeValues(md, "traces_service_graph_request_failed_total"); !maps.Equal(got, map[string]int64{edge: failed}) {
		t.Errorf("traces_service_graph_request_failed_total: got %v, want %s = %d", got, edge, failed)
	}
	for _, h := range []string{"traces_service_graph_request_client_seconds", "traces_service_graph_request_server_seconds"} {
		if got := edgeHistCounts(md, h); !maps.Equal(got, map[string]uint64{edge: uint64(total)}) {
			t.Errorf("%s counts: got %v, want %s = %d", h, got, edge, total)
		}
	}
	checkTopologyBounded(t, md, p.Client.UID, p.Server.UID)
	checkNoEdgesOf(t, md, p.Idle.UID)
}

// checkTopologyBounded fails if an end of an edge is not a name kpod may use without the
// API: a local pod's UID, a private address, or one of the fixed names.
func checkTopologyBounded(t *testing.T, md pmetric.Metrics, uids ...string) {
	t.Helper()
	ok := map[string]bool{"external": true, "unknown": true, "overflow": true}
	for _, u := range uids {
		ok[u] = true
	}
	ms := nodeRM(md).ScopeMetrics().At(0).Metrics()
	for i := 0; i < ms.Len(); i++ {
		m := ms.At(i)
		if !strings.HasPrefix(m.Name(), "traces_service_graph_") && !strings.HasPrefix(m.Name(), "kpod.topology.") ||
			strings.HasPrefix(m.Name(), "kpod.topology.edges") {
			continue
		}
		var attrs []map[string]any
		switch m.Type() {
		case pmetric.MetricTypeSum:
			for k := 0; k < m.Sum().DataPoints().Len(); k++ {
				attrs = append(attrs, m.Sum().DataPoints().At(k).Attributes().AsRaw())
			}
		case pmetric.MetricTypeHistogram:
			for k := 0; k < m.Histogram().DataPoints().Len(); k++ {
				attrs = append(attrs, m.Histogram().DataPoints().At(k).Attributes().AsRaw())
			}
		}
		for _, a := range attrs {
			for _, end := range []string{"client", "server"} {
				v := fmt.Sprint(a[end])
				if addr, err := netip.ParseAddr(v); err == nil && (addr.IsPrivate() || addr.IsLinkLocalUnicast()) {
					continue
				}
				if !ok[v] {
					t.Errorf("%s: %s=%q is neither a local pod's UID, a private address nor a fixed name", m.Name(), end, v)
				}
			}
		}
	}
}

// checkNoEdgesOf fails if a pod is an end of any edge.
func checkNoEdgesOf(t *testing.T, md pmetric.Metrics, uid string) {
	t.Helper()
	for _, name := range []string{"traces_service_graph_request_total", "kpod.topology.connections", "kpod.topology.bytes"} {
		for k := range edgeValues(md, name) {
			if strings.Contains(k, uid) {
				t.Errorf("%s: the idle pod %s is an end of %q", name, uid, k)
			}
		}
	}
}

// TestRealTopologyHTTP: Go's net/http client in one pod makes requests of the server in
// the other: exactly one service-graph edge client UID → server UID with the client's
// request count and its failed ones (4xx, 5xx), counted once (by the client); the client's
// and the server's latency histograms on that edge hold every request; the JSON view shows
// the same edge.
func TestRealTopologyHTTP(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	cfg := customConfig("l7", "topology")
	cfg.Collectors["topology"] = CollectorConfig{Enabled: cfg.Collectors["topology"].Enabled, View: &ViewConfig{Enabled: true, Endpoint: "127.0.0.1:0"}}
	s := startTopology(t, cfg, p.Client, p.Server, p.Idle)
	addr := p.Veth.AddrB + ":8080"
	srv := p.SrvCtr.L7App("http-server", addr)
	srv.WaitReady()
	const n = 20
	client := appCounts(t, p.CliCtr.L7App("http-client", "http://"+addr, strconv.Itoa(n),
		"GET:/ok", "POST:/ok", "PUT:/missing", "DELETE:/fail", "PATCH:/slow").Output())
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if !maps.Equal(server, client) {
		t.Fatalf("the server counted %v, the client %v", server, client)
	}
	var total, failed int64
	for k, v := range client {
		total += v
		if strings.HasSuffix(k, " 4xx") || strings.HasSuffix(k, " 5xx") {
			failed += v
		}
	}
	if total != 5*n || failed != 2*n {
		t.Fatalf("the client counted %d requests, %d failed; want %d, %d", total, failed, 5*n, 2*n)
	}
	checkServiceGraph(t, md, p, "http", client)

	// The JSON view of the same collection.
	url := "http://" + s.viewAddr(t) + "/kpodTopology"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v topology.View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	var found int
	for _, e := range v.Edges {
		if e.Protocol != "http" {
			continue
		}
		found++
		if e.Source != p.Client.UID || e.Target != p.Server.UID || e.Requests == nil || *e.Requests != uint64(total) ||
			*e.Failed != uint64(failed) || e.LatencyP99 == nil || e.LatencyFrom != "client" {
			t.Errorf("view edge %+v, want %s → %s with %d requests, %d failed, client latency", e, p.Client.UID, p.Server.UID, total, failed)
		}
		// The rate is over the time since kpod started (the first collection).
		if r := *e.RequestsPerSecond * v.WindowSeconds; r < float64(total)-0.01 || r > float64(total)+0.01 {
			t.Errorf("view rate %g/s over %g s is %g requests, want %d", *e.RequestsPerSecond, v.WindowSeconds, r, total)
		}
		// 20 of 100 requests took 50 ms or more (PATCH /slow): the p99 is above 50 ms.
		if *e.LatencyP99 < 0.05 {
			t.Errorf("view p99 %g s, want >= 0.05 (the /slow requests)", *e.LatencyP99)
		}
	}
	if found != 1 {
		t.Errorf("view has %d http edges, want 1: %+v", found, v.Edges)
	}
	kinds := map[string]string{}
	for _, nd := range v.Nodes {
		kinds[nd.Name] = nd.Kind
	}
	if kinds[p.Client.UID] != "pod" || kinds[p.Server.UID] != "pod" {
		t.Errorf("view nodes %+v, want both pods", v.Nodes)
	}
}

// viewAddr is where the topology family's JSON view listens.
func (s *kpodScraper) viewAddr(t *testing.T) string {
	t.Helper()
	for _, r := range s.runners {
		if r.info.name != "topology" || r.f == nil {
			continue
		}
		if src, ok := r.f.(*adapter[*topology.Graph]).src.(*topologySource); ok && src.ViewAddr() != "" {
			return src.ViewAddr()
		}
	}
	t.Fatal("the topology view is not running")
	return ""
}

// TestRealTopologyTCP: connections of no application protocol (the workload's tcpclient and
// tcpserver): one TCP-level edge client UID → server UID with exactly the client's
// connections, the bytes both report, nothing the other way, one RTT sample per closed
// connection; no service-graph edge.
func TestRealTopologyTCP(t *testing.T) { forTopologyPaths(t, realTopologyTCP) }

// forTopologyPaths runs a test on every way kpod reads live sockets. As root: the walk of the
// sockets the family knows after the TCP iterator's first run in each pod's network namespace
// where the kernel loads that walk (else the iterator in every namespace at each collection),
// and the iterator in every namespace at each collection, forced. Without CAP_SYS_ADMIN, as
// the DaemonSet runs it: the walk alone (pods' addresses from /proc/<pid>/net). live says
// whether the path reads live sockets: the walk without CAP_SYS_ADMIN does not where the
// kernel cannot run it (bpftest.KnownSocketWalks: before 5.13).
func forTopologyPaths(t *testing.T, f func(t *testing.T, live error)) {
	fakepod.RequireRoot(t)
	t.Run("namespaces", func(t *testing.T) { f(t, nil) })
	t.Run("every-namespace", func(t *testing.T) {
		t.Cleanup(topology.IterateEveryNamespaceForTest())
		f(t, nil)
	})
	t.Run("walk", func(t *testing.T) {
		t.Cleanup(collector.DenyNamespacesForTest())
		f(t, bpftest.KnownSocketWalks())
	})
}

func realTopologyTCP(t *testing.T, _ error) {
	p := topoPair(t)
	s := startTopology(t, customConfig("l7", "topology"), p.Client, p.Server, p.Idle)
	const conns, total = 5, 5 * 32 << 10
	if sent, received := p.Transfer(t, 7101, conns, total); sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	md := scrape(t, s)
	failDump(t, md)
	pair := p.Client.UID + " " + p.Server.UID
	if got, want := edgeValues(md, "kpod.topology.connections"), map[string]int64{pair: conns}; !maps.Equal(got, want) {
		t.Errorf("kpod.topology.connections: got %v, want %v", got, want)
	}
	if got, want := edgeValues(md, "kpod.topology.bytes"), map[string]int64{pair + " to_server": total, pair + " to_client": 0}; !maps.Equal(got, want) {
		t.Errorf("kpod.topology.bytes: got %v, want %v", got, want)
	}
	if got, want := edgeHistCounts(md, "kpod.topology.rtt"), map[string]uint64{pair: conns}; !maps.Equal(got, want) {
		t.Errorf("kpod.topology.rtt samples: got %v, want %v (one per closed connection)", got, want)
	}
	if got := edgeValues(md, "traces_service_graph_request_total"); len(got) != 0 {
		t.Errorf("service-graph edges without a protocol: %v", got)
	}
	rm := nodeRM(md)
	if got := intValue(t, rm, "kpod.topology.edges", nil); got != 1 {
		t.Errorf("kpod.topology.edges = %d, want 1", got)
	}
	checkTopologyBounded(t, md, p.Client.UID, p.Server.UID)
	checkNoEdgesOf(t, md, p.Idle.UID)
}

// TestRealTopologyLiveSocket: a connection that stays open across collections. While it is
// open its edge carries the bytes the client wrote and the server read (the workloads' own
// counts) and one RTT sample per collection; once it closes, the same bytes (a socket is
// counted once, live or closed) and one more sample.
func TestRealTopologyLiveSocket(t *testing.T) { forTopologyPaths(t, realTopologyLiveSocket) }

func realTopologyLiveSocket(t *testing.T, live error) {
	const port, total = 7102, 3 << 20
	p := topoPair(t)
	s := startTopology(t, customConfig("l7", "topology"), p.Client, p.Server, p.Idle)
	held := p.Hold(t, port, total)
	pair := p.Client.UID + " " + p.Server.UID
	check := func(when string, md pmetric.Metrics, bytes int64, samples map[string]uint64) {
		t.Helper()
		if got, want := edgeValues(md, "kpod.topology.connections"), map[string]int64{pair: 1}; !maps.Equal(got, want) {
			t.Errorf("%s: kpod.topology.connections: got %v, want %v", when, got, want)
		}
		if got, want := edgeValues(md, "kpod.topology.bytes"), map[string]int64{pair + " to_server": bytes, pair + " to_client": 0}; !maps.Equal(got, want) {
			t.Errorf("%s: kpod.topology.bytes: got %v, want %v", when, got, want)
		}
		if got := edgeHistCounts(md, "kpod.topology.rtt"); !maps.Equal(got, samples) {
			t.Errorf("%s: kpod.topology.rtt samples: got %v, want %v", when, got, samples)
		}
		unavailable := map[string]string{}
		for _, m := range []string{"kpod.topology.bytes", "kpod.topology.rtt"} {
			if dp, ok := point(nodeRM(md), "kpod.metric.unavailable", map[string]string{"metric": m}); ok && dp.IntValue() == 1 {
				r, _ := dp.Attributes().Get("reason")
				unavailable[m] = r.Str()
			}
		}
		if live == nil && len(unavailable) != 0 {
			t.Errorf("%s: live sockets are read, but kpod says %v", when, unavailable)
		}
		if live != nil && (len(unavailable) != 2 || !strings.Contains(unavailable["kpod.topology.bytes"], "refused the walk of known sockets")) {
			t.Errorf("%s: the kernel cannot run the walk of known sockets (%v), kpod says %v", when, live, unavailable)
		}
		checkNoEdgesOf(t, md, p.Idle.UID)
	}
	// The client is parked with its connection open once the server has read everything:
	// ss in the server's namespace shows the bytes received.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out := p.Server.NetNS.Exec("ss", "-tinH", "state", "established")
		if strings.Contains(out, fmt.Sprintf("bytes_received:%d ", total)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server has not read %d bytes: %s", total, out)
		}
	}
	md := scrape(t, s)
	failDump(t, md)
	if live == nil {
		check("open", md, total, map[string]uint64{pair: 1})
	} else {
		t.Logf("live sockets not read: %v", live)
		check("open", md, 0, map[string]uint64{})
	}
	held.Close(t)
	// Cumulative: the open socket's sample of the first collection (if read) and its close
	// sample.
	closeSamples := uint64(2)
	if live != nil {
		closeSamples = 1
	}
	check("closed", scrape(t, s), total, map[string]uint64{pair: closeSamples})
}

// TestRealTopologyRedis: redis-benchmark and redis-cli in one pod, redis-server in the other:
// one edge with protocol redis and connection_type database carrying exactly the server's
// own count of commands, its failed ones (error replies) and both latency histograms.
func TestRealTopologyRedis(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "redis-server", "redis-cli", "redis-benchmark")
	p := topoPair(t)
	s := startTopology(t, customConfig("l7", "topology"), p.Client, p.Server, p.Idle)
	const port = 6379
	host := p.Veth.AddrB
	p.SrvCtr.Exec("redis-server", "--bind", host, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "")
	waitListening(t, p.Server.NetNS, "tcp", port)
	p.CliCtr.Exec("redis-benchmark", "-h", host, "-p", strconv.Itoa(port), "-n", "1600", "-c", "2", "-P", "16",
		"-t", "set,get,incr", "-q").Output()
	cli := func(args ...string) {
		p.CliCtr.Exec("redis-cli", append([]string{"-h", host, "-p", strconv.Itoa(port)}, args...)...).Output()
	}
	cli("set", "kpod:str", "v")
	cli("lpush", "kpod:str", "x") // WRONGTYPE: failed
	cli("nosuchcommand")          // an error reply: failed
	md := scrape(t, s)
	failDump(t, md)
	want := redisStats(t, p.Server.NetNS, host, port)
	var failed int64
	for k, v := range want {
		if strings.HasSuffix(k, " error") {
			failed += v
		}
	}
	if failed != 2 {
		t.Fatalf("the server's statistics say %d failed commands, want the test's 2: %v", failed, want)
	}
	checkServiceGraph(t, md, p, "redis", want)
	if dp, ok := point(nodeRM(md), "traces_service_graph_request_total", map[string]string{"protocol": "redis"}); !ok {
		t.Error("no redis edge")
	} else if ct, _ := dp.Attributes().Get("connection_type"); ct.Str() != "database" {
		t.Errorf("connection_type %q, want database", ct.Str())
	}
}

// TestRealTopologyFanout: one pod opens a connection to each of 1 000 addresses (a local
// route in the server pod's namespace answers for a /22; none is an address of a pod, so
// without the API each is an edge named by its address). With the default cap: 1 000 edges,
// one connection and the exact bytes on each, no overflow. With max_edges 100: 100 edges of
// one connection, the other 900 connections and their bytes on the edge client → overflow,
// and kpod.topology.edges.overflow 900.
func TestRealTopologyFanout(t *testing.T) {
	fakepod.RequireRoot(t)
	p := topoPair(t)
	const peers, port, size = 1000, 7102, 1000
	first := netip.MustParseAddr("10.214.0.1")
	p.Server.NetNS.Exec("ip", "route", "add", "local", "10.214.0.0/22", "dev", "lo")
	p.Client.NetNS.Exec("ip", "route", "add", "10.214.0.0/22", "via", p.Veth.AddrB, "dev", p.Veth.IfA)
	sink := p.SrvCtr.L7App("tcp-sink", "0.0.0.0:"+strconv.Itoa(port))
	sink.WaitReady()
	t.Cleanup(func() { stopServer(t, sink) })

	for _, tc := range []struct {
		maxEdges, edges, overflow int
	}{{0, peers, 0}, {100, 100, peers - 100}} {
		t.Run(fmt.Sprintf("max_edges=%d", tc.maxEdges), func(t *testing.T) {
			cfg := customConfig("topology")
			cfg.Collectors["topology"] = CollectorConfig{Enabled: cfg.Collectors["topology"].Enabled, MaxEdges: tc.maxEdges}
			s := startTopology(t, cfg, p.Client, p.Server, p.Idle)
			out := p.CliCtr.L7App("tcp-fanout", first.String(), strconv.Itoa(peers), strconv.Itoa(port), strconv.Itoa(size)).Output()
			if c := appCounts(t, out); c["connect ok"] != peers {
				t.Fatalf("the client made %v connections, want %d", c, peers)
			}
			md := scrape(t, s)
			failDump(t, md)
			conns, bytes := edgeValues(md, "kpod.topology.connections"), edgeValues(md, "kpod.topology.bytes")
			var sumConns, sumBytes int64
			perAddr := 0
			for k, v := range conns {
				sumConns += v
				f := strings.Fields(k)
				if f[0] != p.Client.UID {
					t.Errorf("edge %q: the client is not the client pod", k)
					continue
				}
				if f[1] == "overflow" {
					if v != int64(tc.overflow) || bytes[k+" to_server"] != int64(tc.overflow*size) {
						t.Errorf("overflow edge: %d connections, %d bytes; want %d, %d", v, bytes[k+" to_server"], tc.overflow, tc.overflow*size)
					}
					continue
				}
				a, err := netip.ParseAddr(f[1])
				if err != nil || a.Compare(first) < 0 || a.Compare(netip.MustParseAddr("10.214.3.255")) > 0 {
					t.Errorf("edge %q: the server is not one of the fan-out's addresses", k)
				}
				perAddr++
				if v != 1 || bytes[k+" to_server"] != size {
					t.Errorf("edge %q: %d connections, %d bytes; want 1, %d", k, v, bytes[k+" to_server"], size)
				}
			}
			for k, v := range bytes {
				if strings.HasSuffix(k, " to_server") {
					sumBytes += v
				}
			}
			if sumConns != peers || sumBytes != peers*size {
				t.Errorf("edges hold %d connections and %d bytes, want %d and %d", sumConns, sumBytes, peers, peers*size)
			}
			wantSeries := tc.edges
			if tc.overflow > 0 {
				wantSeries++
			}
			if perAddr != tc.edges || len(conns) != wantSeries {
				t.Errorf("%d address edges, %d series; want %d, %d", perAddr, len(conns), tc.edges, wantSeries)
			}
			rm := nodeRM(md)
			if got := intValue(t, rm, "kpod.topology.edges", nil); got != int64(tc.edges) {
				t.Errorf("kpod.topology.edges = %d, want %d", got, tc.edges)
			}
			if got := intValue(t, rm, "kpod.topology.edges.overflow", nil); got != int64(tc.overflow) {
				t.Errorf("kpod.topology.edges.overflow = %d, want %d", got, tc.overflow)
			}
			checkTopologyBounded(t, md, p.Client.UID, p.Server.UID)
			t.Logf("edges per node for a %d-peer fan-out, max_edges %d: %d edges, %d series of kpod.topology.connections, overflow %d",
				peers, tc.maxEdges, perAddr, len(conns), tc.overflow)
		})
	}
}

// TestRealTopologyDNS: DNS over UDP. The server answers on an unconnected socket (recvfrom,
// sendto: the peer comes from the call's address); one client queries over a connected
// socket (write, read: the peer is the socket's), another over an unconnected one. One edge
// client → server with protocol dns carries every query and the NXDOMAIN answers as failed,
// as the server and the clients counted them.
func TestRealTopologyDNS(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startTopology(t, customConfig("l7", "topology"), p.Client, p.Server, p.Idle)
	addr := p.Veth.AddrB + ":53"
	srv := p.SrvCtr.L7App("dns-server", addr)
	srv.WaitReady()
	client := map[string]int64{}
	for _, mode := range []string{"connected", "unconnected"} {
		names := []string{"a.kpod.test", "b.kpod.test", "c.missing", "d.kpod.test", "e.missing"}
		for k, v := range appCounts(t, p.CliCtr.L7App(append([]string{"dns-query", addr, mode}, names...)...).Output()) {
			client[k] += v
		}
	}
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if !maps.Equal(server, client) || client["A ok"] != 6 || client["A error"] != 4 {
		t.Fatalf("the server counted %v, the clients %v; want 6 ok and 4 errors", server, client)
	}
	checkServiceGraph(t, md, p, "dns", client)
}

// checkEdgeMetrics fails for each node metric whose points by edge (edgeValues of sums, the
// sample counts of histograms by edgeHistCounts) are not exactly want's.
func checkEdgeMetrics(t *testing.T, md pmetric.Metrics, when string, sums map[string]map[string]int64, hists map[string]map[string]uint64) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(sums)) {
		if got := edgeValues(md, name); !maps.Equal(got, sums[name]) {
			t.Errorf("%s: %s %v, want %v", when, name, got, sums[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(hists)) {
		if got := edgeHistCounts(md, name); !maps.Equal(got, hists[name]) {
			t.Errorf("%s: %s samples %v, want %v", when, name, got, hists[name])
		}
	}
}

// clusterStub stands for the cluster's informers: pods by UID and address, Services by
// ClusterIP.
type clusterStub struct {
	byAddr map[netip.Addr]kube.Peer
	byUID  map[string]kube.Peer
}

func (c clusterStub) Lookup(a netip.Addr) (kube.Peer, bool) { p, ok := c.byAddr[a]; return p, ok }
func (c clusterStub) Pod(uid string) (kube.Peer, bool)      { p, ok := c.byUID[uid]; return p, ok }
func (c clusterStub) ServiceIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for a, p := range c.byAddr {
		if p.Kind == kube.PeerService {
			out[a] = true
		}
	}
	return out
}

// svcFixture is a topoPair with a second server pod (web-2; the pair's server is web-1),
// joined to the client by a veth of its own, and a stub cluster that names the three pods;
// service adds Services whose NAT, in the client's network namespace, sends each new
// connection or socket to web-1 and web-2 in turn (kube-proxy's part, with the client's
// namespace playing the node's, whose conntrack table kpod then reads).
type svcFixture struct {
	*fakepod.Pair
	srv2    *fakepod.Pod
	srv2Ctr *fakepod.Container
	veth2   *fakepod.Veth
	stub    clusterStub
}

func newSvcFixture(t *testing.T) *svcFixture {
	t.Helper()
	fakepod.RequireRoot(t)
	p := topoPair(t)
	f := &svcFixture{Pair: p, srv2: fakepod.New(t, fakepod.Options{NetNS: true})}
	f.srv2.AddSandbox()
	f.srv2Ctr = f.srv2.AddContainer()
	f.veth2 = fakepod.NewVeth(t, p.Client.NetNS, f.srv2.NetNS)
	// The client's address on the first link answers for it on the second too.
	macA2 := strings.TrimSpace(p.Client.NetNS.Exec("cat", "/sys/class/net/"+f.veth2.IfA+"/address"))
	f.srv2.NetNS.Exec("ip", "route", "add", p.Veth.AddrA+"/32", "dev", f.veth2.IfB)
	f.srv2.NetNS.Exec("ip", "neigh", "replace", p.Veth.AddrA, "lladdr", macA2, "dev", f.veth2.IfB, "nud", "permanent")
	p.Client.NetNS.Nft("add", "table", "ip", "kpodsvc")
	p.Client.NetNS.Nft("add", "chain", "ip", "kpodsvc", "out", "{ type nat hook output priority -100; }")
	out, err := exec.Command("ip", "netns", "pids", p.Client.NetNS.Name).Output()
	if err != nil {
		t.Fatal(err)
	}
	pids := strings.Fields(string(out))
	if len(pids) == 0 {
		t.Fatal("no process in the client's network namespace (its sandbox)")
	}
	a := netip.MustParseAddr
	f.stub = clusterStub{
		byAddr: map[netip.Addr]kube.Peer{
			a(p.Veth.AddrB):  {Kind: kube.PeerPod, Namespace: "shop", Name: "web-1", UID: p.Server.UID},
			a(f.veth2.AddrB): {Kind: kube.PeerPod, Namespace: "shop", Name: "web-2", UID: f.srv2.UID},
			a(p.Veth.AddrA):  {Kind: kube.PeerPod, Namespace: "shop", Name: "client", UID: p.Client.UID},
		},
		byUID: map[string]kube.Peer{
			p.Client.UID: {Kind: kube.PeerPod, Namespace: "shop", Name: "client", UID: p.Client.UID},
			p.Server.UID: {Kind: kube.PeerPod, Namespace: "shop", Name: "web-1", UID: p.Server.UID},
			f.srv2.UID:   {Kind: kube.PeerPod, Namespace: "shop", Name: "web-2", UID: f.srv2.UID},
		},
	}
	testCluster = func() (topology.Peers, string) { return f.stub, "/proc/" + pids[0] + "/net/nf_conntrack" }
	t.Cleanup(func() { testCluster = nil })
	return f
}

// service adds the Service shop/name at ip, NATed for each match ("tcp dport 80", ...).
func (f *svcFixture) service(ip, name string, matches ...string) {
	f.Client.NetNS.Exec("ip", "route", "add", ip+"/32", "dev", f.Veth.IfA)
	for _, m := range matches {
		f.Client.NetNS.Nft(append(append([]string{"add", "rule", "ip", "kpodsvc", "out", "ip", "daddr", ip}, strings.Fields(m)...),
			"dnat", "to", "numgen", "inc", "mod", "2", "map", "{ 0 : "+f.Veth.AddrB+", 1 : "+f.veth2.AddrB+" }")...)
	}
	f.stub.byAddr[netip.MustParseAddr(ip)] = kube.Peer{Kind: kube.PeerService, Namespace: "shop", Name: name}
}

// TestRealTopologyServiceBackends: the client pod calls a Service address over HTTP (six
// connections) and DNS (a connected and an unbound UDP socket); a NAT in its own network
// namespace sends each connection or socket to one of two server pods, the next one each time
// (as kube-proxy's rules do on a node, where kpod reads the node's conntrack table; here the
// client's namespace plays the node and a stub the cluster's informers). The client's edge to
// the Service carries every request it made, per protocol and split by backend exactly as
// each server counted what it served; the servers' side of the same requests is on client → each server pod;
// nothing else goes from the client to a server pod, nothing for the idle pod. At the second
// collection the connections' entries (retired at the first) are folded into kpod's totals and
// leave the kernel map, and the values do not move.
func TestRealTopologyServiceBackends(t *testing.T) {
	if noL7(t) {
		return
	}
	f := newSvcFixture(t)
	p, srv2, srv2Ctr, veth2 := f.Pair, f.srv2, f.srv2Ctr, f.veth2
	const svcIP, port = "10.213.251.10", "8080"
	f.service(svcIP, "web", "tcp dport "+port, "udp dport 53")
	cfg := customConfig("l7", "topology")
	cfg.Collectors["topology"] = CollectorConfig{Enabled: cfg.Collectors["topology"].Enabled, View: &ViewConfig{Enabled: true, Endpoint: "127.0.0.1:0"}}
	s := startTopology(t, cfg, p.Client, p.Server, srv2, p.Idle)
	backends := []string{"shop/web-1", "shop/web-2"}
	var srvs [2][2]*fakepod.Proc // [backend][http, dns]
	for i, b := range []struct {
		ctr  *fakepod.Container
		addr string
	}{{p.SrvCtr, p.Veth.AddrB}, {srv2Ctr, veth2.AddrB}} {
		srvs[i] = [2]*fakepod.Proc{b.ctr.L7App("http-server", b.addr+":"+port), b.ctr.L7App("dns-server", b.addr+":53")}
		srvs[i][0].WaitReady()
		srvs[i][1].WaitReady()
	}
	// Six HTTP connections (one per run), three to each server; two DNS sockets, one
	// connected, one not (bound to no address: its conntrack entry is found by the other
	// three parts of its tuple), one to each server.
	const runs, n = 6, 5
	client := map[string]map[string]int64{"http": {}, "dns": {}}
	for range runs {
		for k, v := range appCounts(t, p.CliCtr.L7App("http-client", "http://"+svcIP+":"+port, strconv.Itoa(n), "GET:/ok", "GET:/missing").Output()) {
			client["http"][k] += v
		}
	}
	for _, mode := range []string{"connected", "unconnected"} {
		for k, v := range appCounts(t, p.CliCtr.L7App("dns-query", svcIP+":53", mode, "a.kpod.test", "b.missing", "c.kpod.test").Output()) {
			client["dns"][k] += v
		}
	}
	if want := (map[string]map[string]int64{"http": {"GET 2xx": runs * n, "GET 4xx": runs * n}, "dns": {"A ok": 4, "A error": 2}}); !maps.EqualFunc(client, want, maps.Equal) {
		t.Fatalf("the clients counted %v, want %v", client, want)
	}
	md := scrape(t, s)
	failDump(t, md)
	served := map[string]map[string]map[string]int64{} // backend -> protocol -> its own counts
	for i, b := range backends {
		served[b] = map[string]map[string]int64{"http": appCounts(t, stopServer(t, srvs[i][0])), "dns": appCounts(t, stopServer(t, srvs[i][1]))}
	}
	wantServed := map[string]map[string]int64{"http": {"GET 2xx": 3 * n, "GET 4xx": 3 * n}, "dns": {"A ok": 2, "A error": 1}}
	for _, b := range backends {
		if !maps.EqualFunc(served[b], wantServed, maps.Equal) {
			t.Fatalf("%s served %v, want %v (half the connections and sockets)", b, served[b], wantServed)
		}
	}
	check := func(md pmetric.Metrics, when string) {
		t.Helper()
		wantTotal, wantFailed, wantLatency, wantServer := map[string]int64{}, map[string]int64{}, map[string]uint64{}, map[string]uint64{}
		for _, b := range backends {
			for proto, c := range served[b] {
				var total, failed int64
				for k, v := range c {
					total += v
					if strings.HasSuffix(k, " 4xx") || strings.HasSuffix(k, " error") {
						failed += v
					}
				}
				edge := "shop/client shop/web " + proto + " " + b
				wantTotal[edge], wantFailed[edge], wantLatency[edge] = total, failed, uint64(total)
				wantServer["shop/client "+b+" "+proto] = uint64(total)
			}
		}
		// The TCP connections (one per HTTP run; DNS is UDP), by backend too.
		wantConns := map[string]int64{"shop/client shop/web shop/web-1": runs / 2, "shop/client shop/web shop/web-2": runs / 2}
		checkEdgeMetrics(t, md, when,
			map[string]map[string]int64{"traces_service_graph_request_total": wantTotal, "traces_service_graph_request_failed_total": wantFailed,
				"kpod.topology.connections": wantConns},
			map[string]map[string]uint64{"traces_service_graph_request_client_seconds": wantLatency, "traces_service_graph_request_server_seconds": wantServer})
		checkNoEdgesOf(t, md, p.Idle.UID)
	}
	check(md, "first collection")
	// The JSON view of the same collection: one edge client → Service per protocol and backend.
	resp, err := http.Get("http://" + s.viewAddr(t) + "/kpodTopology")
	if err != nil {
		t.Fatal(err)
	}
	var v topology.View
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	viewed := map[string]uint64{}
	for _, e := range v.Edges {
		if e.Requests != nil {
			viewed[e.Source+" "+e.Target+" "+e.Protocol+" "+e.Backend] += *e.Requests
		}
	}
	wantViewed := map[string]uint64{}
	for k, n := range edgeValues(md, "traces_service_graph_request_total") {
		wantViewed[k] = uint64(n)
	}
	for _, b := range backends { // the servers' side: edges to the backend pods, not counted
		wantViewed["shop/client "+b+" http "] = 6 * n
		wantViewed["shop/client "+b+" dns "] = 3
	}
	if !maps.Equal(viewed, wantViewed) {
		t.Errorf("view edges %v, want %v", viewed, wantViewed)
	}
	entries := func(md pmetric.Metrics) int64 {
		return intValue(t, nodeRM(md), "kpod.bpf.map.entries", map[string]string{"map": "kpod_l7_svcconn"})
	}
	if got := entries(md); got != runs+2 {
		t.Errorf("kpod_l7_svcconn holds %d entries, want one per connection and socket (%d)", got, runs+2)
	}
	// The second collection folds and deletes them (its own count of entries is from before
	// that), the third finds none.
	for range 2 {
		md = scrape(t, s)
		check(md, "later collection")
	}
	check(md, "after folding")
	if got := entries(md); got != 0 {
		t.Errorf("kpod_l7_svcconn holds %d entries after they were folded, want 0", got)
	}
}

// TestRealTopologyServiceBackendsTCP: two connections held open to a Service, one to each
// backend, each with a known number of bytes the client sent (its own count) and the server
// read (ss in its namespace): while open, and after they closed, the client's TCP-level edge to
// the Service carries one connection, exactly those bytes and the RTT samples per backend, read
// from the live sockets (both ways kpod reads them) and from the close.
func TestRealTopologyServiceBackendsTCP(t *testing.T) {
	forTopologyPaths(t, realTopologyServiceBackendsTCP)
}

func realTopologyServiceBackendsTCP(t *testing.T, live error) {
	const svcIP, port, total = "10.213.251.11", 7200, 1 << 20
	f := newSvcFixture(t)
	f.service(svcIP, "bulk", "tcp dport "+strconv.Itoa(port))
	s := startTopology(t, customConfig("topology"), f.Client, f.Server, f.srv2, f.Idle)
	type held struct{ cli, srv *fakepod.Proc }
	var hs []held
	for _, c := range []*fakepod.Container{f.SrvCtr, f.srv2Ctr} {
		srv := c.Start("tcpserver", strconv.Itoa(port), "1")
		srv.WaitReady()
		// The first connection goes to web-1, the second to web-2 (the NAT's turn).
		cli := f.CliCtr.Start("tcpclient", svcIP, strconv.Itoa(port), "1", strconv.Itoa(total), "hold")
		if sent := fakepod.Count(t, cli.ReadLine(), "sent"); sent != total {
			t.Fatalf("the client sent %d, want %d", sent, total)
		}
		hs = append(hs, held{cli, srv})
	}
	for _, ns := range []*fakepod.NetNS{f.Server.NetNS, f.srv2.NetNS} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if strings.Contains(ns.Exec("ss", "-tinH", "state", "established"), fmt.Sprintf("bytes_received:%d ", total)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a server has not read %d bytes", total)
			}
		}
	}
	check := func(when string, md pmetric.Metrics, bytes int64, samples uint64) {
		t.Helper()
		wantConns, wantBytes, wantRTT := map[string]int64{}, map[string]int64{}, map[string]uint64{}
		for _, b := range []string{"shop/web-1", "shop/web-2"} {
			wantConns["shop/client shop/bulk "+b] = 1
			wantBytes["shop/client shop/bulk to_server "+b] = bytes
			wantBytes["shop/client shop/bulk to_client "+b] = 0
			if samples > 0 {
				wantRTT["shop/client shop/bulk "+b] = samples
			}
		}
		checkEdgeMetrics(t, md, when, map[string]map[string]int64{"kpod.topology.connections": wantConns, "kpod.topology.bytes": wantBytes},
			map[string]map[string]uint64{"kpod.topology.rtt": wantRTT})
		checkNoEdgesOf(t, md, f.Idle.UID)
	}
	md := scrape(t, s)
	failDump(t, md)
	if live == nil {
		check("open", md, total, 1)
	} else {
		t.Logf("live sockets not read: %v", live)
		check("open", md, 0, 0)
	}
	for _, h := range hs {
		if err := h.cli.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = h.cli.Wait()
		if got := fakepod.Count(t, h.srv.ReadLine(), "received"); got != total {
			t.Fatalf("a server received %d, want %d", got, total)
		}
		if err := h.srv.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the last ACK of the FINs
	closeSamples := uint64(2)          // the open socket's sample (if read) and its close sample
	if live != nil {
		closeSamples = 1
	}
	// Twice: the second collection folds the entries of the first one's generation.
	for _, when := range []string{"closed", "folded"} {
		check(when, scrape(t, s), total, closeSamples)
	}
}
