package topology

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/podid"
)

func lat(ns ...uint64) hist.Hist {
	var h hist.Hist
	for _, v := range ns {
		h.Counts[hist.Slot(v)]++
		h.SumNs += v
	}
	return h
}

// index: pods A (cgroups 10, 11) and B (20, 21) on this node.
func index() *podid.Index {
	mk := func(uid string, pod, ctr uint64) *podid.Pod {
		p := &podid.Pod{UID: uid, CgroupID: pod}
		p.Containers = []*podid.Container{{Pod: p, CgroupID: ctr, CgroupIDs: []uint64{ctr}}}
		return p
	}
	return &podid.Index{Pods: []*podid.Pod{mk("uid-a", 10, 11), mk("uid-b", 20, 21)}}
}

var (
	addrA   = netip.MustParseAddr("10.1.0.1")
	addrB   = netip.MustParseAddr("10.1.0.2")
	remote  = netip.MustParseAddr("10.1.9.9")   // a pod of another node (API) / a private address (no API)
	svcIP   = netip.MustParseAddr("10.96.0.10") // a ClusterIP
	public  = netip.MustParseAddr("203.0.113.7")
	nodeIP  = netip.MustParseAddr("192.168.5.5")
	otherIP = netip.MustParseAddr("10.1.8.8") // hostNetwork pod on node-2
)

func noAPI() *resolver {
	r := newResolver("node-1", index(), nil)
	r.addrs[addrA] = r.podEnd(r.pods[10])
	r.addrs[addrB] = r.podEnd(r.pods[20])
	r.addrs[nodeIP] = End{Name: "node-1", Kind: KindNode}
	return r
}

type fakePeers map[string]kube.Peer // by address, and "uid:<uid>"

func (f fakePeers) Lookup(a netip.Addr) (kube.Peer, bool) { p, ok := f[a.String()]; return p, ok }
func (f fakePeers) Pod(uid string) (kube.Peer, bool)      { p, ok := f["uid:"+uid]; return p, ok }
func (f fakePeers) ServiceIPs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for k, p := range f {
		if a, err := netip.ParseAddr(k); err == nil && p.Kind == kube.PeerService {
			out[a] = true
		}
	}
	return out
}

func withAPI() *resolver {
	peers := fakePeers{
		"uid:uid-a":      {Kind: kube.PeerPod, Namespace: "shop", Name: "web-1", Workload: "Deployment/web", UID: "uid-a"},
		"uid:uid-b":      {Kind: kube.PeerPod, Namespace: "shop", Name: "cart-1", UID: "uid-b"},
		remote.String():  {Kind: kube.PeerPod, Namespace: "shop", Name: "db-0", Workload: "StatefulSet/db", UID: "uid-r"},
		svcIP.String():   {Kind: kube.PeerService, Namespace: "shop", Name: "cart"},
		otherIP.String(): {Kind: kube.PeerNode, Name: "node-2"},
	}
	r := newResolver("node-1", index(), peers)
	r.addrs[addrA] = r.podEnd(r.pods[10])
	r.addrs[addrB] = r.podEnd(r.pods[20])
	r.addrs[nodeIP] = End{Name: "node-1", Kind: KindNode}
	return r
}

func TestResolverNames(t *testing.T) {
	self := End{Name: "uid-a", Kind: KindPod, Local: true}
	for _, tc := range []struct {
		r    *resolver
		a    netip.Addr
		want string
		kind string
	}{
		{noAPI(), addrB, "uid-b", KindPod},
		{noAPI(), remote, "10.1.9.9", KindIP},
		{noAPI(), netip.MustParseAddr("100.64.3.4"), "100.64.3.4", KindIP},
		{noAPI(), netip.MustParseAddr("fd00::5"), "fd00::5", KindIP},
		{noAPI(), public, "external", KindExternal},
		{noAPI(), netip.MustParseAddr("2001:db8::1"), "external", KindExternal},
		{noAPI(), netip.MustParseAddr("127.0.0.1"), "uid-a", KindPod},
		{noAPI(), nodeIP, "node-1", KindNode},
		{noAPI(), netip.Addr{}, "unknown", KindUnknown},
		{withAPI(), addrB, "shop/cart-1", KindPod},
		{withAPI(), remote, "shop/db-0", KindPod},
		{withAPI(), svcIP, "shop/cart", KindService},
		{withAPI(), otherIP, "node-2", KindNode},
		{withAPI(), public, "external", KindExternal},
		{withAPI(), netip.MustParseAddr("10.200.0.1"), "external", KindExternal}, // private but unknown to the API
	} {
		e := tc.r.peer(tc.a, self)
		if e.Name != tc.want || e.Kind != tc.kind {
			t.Errorf("peer(%v) api=%v: %s (%s), want %s (%s)", tc.a, tc.r.peers != nil, e.Name, e.Kind, tc.want, tc.kind)
		}
	}
	if e, _ := withAPI().local(11); e.Name != "shop/web-1" || e.Workload != "Deployment/web" || !e.Local {
		t.Errorf("local pod with the API: %+v", e)
	}
	if _, ok := noAPI().local(99); ok {
		t.Error("a cgroup that is no pod's is named")
	}
}

// TestCountedOnce: a request is counted by the client's node when the client is a pod of it,
// else by the server's node when the client is not a pod (a pod of another node counts its
// own requests). Both latencies are kept on the edge where their side is local.
func TestCountedOnce(t *testing.T) {
	reqs := map[l7.EdgeKey]l7.EdgeValue{
		// A → B, both local: both sides seen, counted from the client.
		{Cgroup: 11, Peer: addrB, Port: 80, Protocol: "http", Role: "client"}: {Count: 5, Failed: 1, Latency: lat(1e6, 1e6, 1e6, 1e6, 1e6)},
		{Cgroup: 21, Peer: addrA, Port: 80, Protocol: "http", Role: "server"}: {Count: 5, Failed: 1, Latency: lat(5e5, 5e5, 5e5, 5e5, 5e5)},
		// a pod of another node → B: the server's latency only, not counted here.
		{Cgroup: 21, Peer: remote, Port: 80, Protocol: "http", Role: "server"}: {Count: 3, Latency: lat(1e6, 1e6, 1e6)},
		// outside → B: counted by B's node.
		{Cgroup: 20, Peer: public, Port: 80, Protocol: "http", Role: "server"}: {Count: 2, Failed: 2, Latency: lat(1e6, 1e6)},
		// A → a Service: counted.
		{Cgroup: 11, Peer: svcIP, Port: 6379, Protocol: "redis", Role: "client"}: {Count: 7, Latency: lat(1e5, 1e5, 1e5, 1e5, 1e5, 1e5, 1e5)},
		// a node process (no pod's cgroup): not reported.
		{Cgroup: 5, Peer: addrB, Port: 80, Protocol: "http", Role: "client"}: {Count: 9},
	}
	// A → the Service, per connection: one to the backend db-0, one whose backend is unknown
	// (on the edge without a backend, with the request above).
	svcReqs := map[backendKey]l7.EdgeValue{
		{cgid: 11, service: svcIP, servicePort: 6379, protocol: "redis", backend: remote}: {Count: 4, Failed: 1, Latency: lat(1e5, 1e5, 1e5, 1e5)},
		{cgid: 11, service: svcIP, servicePort: 6379, protocol: "redis"}:                  {Count: 1, Latency: lat(1e5)},
	}
	g := build(time.Unix(100, 0), withAPI(), reqs, svcReqs, nil)
	type want struct {
		counted        bool
		count, failed  uint64
		client, server uint64 // latency samples
	}
	wants := map[RequestKey]want{
		{"shop/web-1", "shop/cart-1", "http", ""}:         {true, 5, 1, 5, 5},
		{"shop/db-0", "shop/cart-1", "http", ""}:          {false, 0, 0, 0, 3},
		{"external", "shop/cart-1", "http", ""}:           {true, 2, 2, 0, 2},
		{"shop/web-1", "shop/cart", "redis", ""}:          {true, 8, 0, 8, 0},
		{"shop/web-1", "shop/cart", "redis", "shop/db-0"}: {true, 4, 1, 4, 0},
	}
	if len(g.Requests) != len(wants) {
		t.Errorf("edges %v, want %d", keys(g.Requests), len(wants))
	}
	for k, w := range wants {
		e := g.Requests[k]
		if e == nil {
			t.Errorf("no edge %v", k)
			continue
		}
		n, f := e.Reported()
		if e.Counted != w.counted || n != w.count || f != w.failed || e.Client.Latency.Count() != w.client || e.Server.Latency.Count() != w.server {
			t.Errorf("%v: counted %v %d/%d, latency samples %d/%d; want %+v", k, e.Counted, n, f, e.Client.Latency.Count(), e.Server.Latency.Count(), w)
		}
	}
	if g.Ends["shop/cart"].Kind != KindService || !g.Ends["shop/web-1"].Local || g.Ends["shop/db-0"].Local {
		t.Errorf("ends %+v", g.Ends)
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var out []K
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestConnsCountedOnce: the TCP side that counts (the client's, else the server's when the
// client is no pod) gives connections and bytes each way.
func TestConnsCountedOnce(t *testing.T) {
	conns := map[tcpEdge]tcpVal{
		{cgid: 11, peer: addrB, port: 80, role: roleClient}:  {conns: 2, sent: 100, received: 1000, rtt: lat(5e4, 5e4)},
		{cgid: 21, peer: addrA, port: 80, role: roleServer}:  {conns: 2, sent: 1000, received: 100},
		{cgid: 21, peer: public, port: 80, role: roleServer}: {conns: 1, sent: 7, received: 3},
		{cgid: 21, peer: remote, port: 80, role: roleServer}: {conns: 4, sent: 1, received: 1}, // its node counts it
	}
	g := build(time.Unix(100, 0), noAPI(), nil, nil, conns)
	want := map[ConnKey]Conns{
		{"uid-a", "uid-b", ""}:    {Connections: 2, BytesToServer: 100, BytesToClient: 1000},
		{"external", "uid-b", ""}: {Connections: 1, BytesToServer: 3, BytesToClient: 7},
		// without the API a private address may be a pod of another node that counts it too:
		// the server's node counts what it cannot know to be a pod
		{"10.1.9.9", "uid-b", ""}: {Connections: 4, BytesToServer: 1, BytesToClient: 1},
	}
	if len(g.Conns) != len(want) {
		t.Errorf("edges %v, want %d", keys(g.Conns), len(want))
	}
	for k, w := range want {
		c := g.Conns[k]
		if c == nil || c.Connections != w.Connections || c.BytesToServer != w.BytesToServer || c.BytesToClient != w.BytesToClient {
			t.Errorf("%v: %+v, want %+v", k, c, w)
		}
	}
	if n := g.Conns[ConnKey{"uid-a", "uid-b", ""}].RTT.Count(); n != 2 {
		t.Errorf("RTT samples %d, want the client's 2", n)
	}
	g = build(time.Unix(100, 0), withAPI(), nil, nil, conns)
	if _, ok := g.Conns[ConnKey{"shop/db-0", "shop/cart-1", ""}]; ok {
		t.Error("with the API, a pod client of another node is counted by the server's node")
	}
}

// TestLimiter: pairs are admitted in order up to max; later ones go to the overflow edge of
// their local end, are counted once each, and stay there while they exist.
func TestLimiter(t *testing.T) {
	l := newLimiter(3)
	mk := func(servers ...string) *Graph {
		g := newGraph(time.Unix(0, 0))
		g.Ends["uid-a"] = End{Name: "uid-a", Kind: KindPod, Local: true}
		for _, s := range servers {
			g.Conns[ConnKey{"uid-a", s, ""}] = &Conns{Connections: 1, BytesToServer: 10}
			g.Requests[RequestKey{"uid-a", s, "http", ""}] = &Requests{Counted: true, Client: Side{Seen: true, Count: 2}}
			g.Ends[s] = End{Name: s, Kind: KindIP}
			// the server side of an external client, local end uid-a
			g.Conns[ConnKey{"z-" + s, "uid-a", ""}] = &Conns{Connections: 1}
			g.Ends["z-"+s] = End{Name: "z-" + s, Kind: KindIP}
		}
		return g
	}
	g := mk("10.0.0.1", "10.0.0.2", "10.0.0.3")
	l.apply(g)
	// sorted by client: uid-a→10.0.0.1, →10.0.0.2, →10.0.0.3 are admitted, the z-* clients not
	if g.Edges != 3 || g.Overflow != 3 {
		t.Fatalf("edges %d overflow %d, want 3, 3", g.Edges, g.Overflow)
	}
	if c := g.Conns[ConnKey{NameOverflow, "uid-a", ""}]; c == nil || c.Connections != 3 {
		t.Errorf("overflow → uid-a: %+v, want the 3 external clients' connections", c)
	}
	if _, ok := g.Ends["z-10.0.0.1"]; ok {
		t.Error("an end only reachable through overflowed pairs is still in the graph")
	}
	// Next cycle: new pairs (uid-a→10.0.0.0 first in sort order, z-10.0.0.0→uid-a) find
	// the cap reached; the admitted ones keep their place.
	g = mk("10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3")
	l.apply(g)
	if g.Edges != 3 || g.Overflow != 5 {
		t.Errorf("edges %d overflow %d, want 3, 5", g.Edges, g.Overflow)
	}
	if c := g.Conns[ConnKey{"uid-a", NameOverflow, ""}]; c == nil || c.Connections != 1 {
		t.Errorf("uid-a → overflow: %+v, want the new pair's 1 connection", c)
	}
	if r := g.Requests[RequestKey{"uid-a", NameOverflow, "http", ""}]; r == nil || r.Client.Count != 2 {
		t.Errorf("uid-a → overflow http: %+v", r)
	}
	if _, ok := g.Conns[ConnKey{"uid-a", "10.0.0.1", ""}]; !ok {
		t.Error("an admitted pair lost its place")
	}
	// Admitted pairs that are gone free their places.
	g = mk("10.0.0.9")
	l.apply(g)
	if g.Edges != 2 || g.Overflow != 5 || g.Conns[ConnKey{"uid-a", "10.0.0.9", ""}] == nil {
		t.Errorf("edges %d overflow %d conns %v, want 2 admitted pairs and no new overflow", g.Edges, g.Overflow, keys(g.Conns))
	}
}

func TestQuantile(t *testing.T) {
	// 100 samples: 99 of 1.5 ms (bucket (1.024, 2.048] ms), one of 100 ms.
	var ns []uint64
	for i := 0; i < 99; i++ {
		ns = append(ns, 1_500_000)
	}
	h := lat(append(ns, 100_000_000)...)
	q, ok := Quantile(0.99, h)
	if !ok || math.Abs(q-0.002048) > 1e-9 {
		t.Errorf("p99 = %g, want the upper bound of the 1.5 ms bucket, 0.002048", q)
	}
	q, _ = Quantile(0.5, h)
	lo, hi := 0.001024, 0.002048
	if want := lo + (hi-lo)*50/99; math.Abs(q-want) > 1e-12 {
		t.Errorf("p50 = %g, want %g", q, want)
	}
	if _, ok := Quantile(0.99, hist.Hist{}); ok {
		t.Error("a quantile of nothing")
	}
}

func TestView(t *testing.T) {
	start := time.Unix(1000, 0)
	g1 := build(start.Add(10*time.Second), noAPI(), map[l7.EdgeKey]l7.EdgeValue{
		{Cgroup: 11, Peer: addrB, Port: 80, Protocol: "http", Role: "client"}: {Count: 10, Failed: 1, Latency: lat(1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6, 1e6)},
	}, nil, map[tcpEdge]tcpVal{{cgid: 11, peer: addrB, port: 80, role: roleClient}: {conns: 1, sent: 50}})
	newLimiter(10).apply(g1)
	g2 := build(start.Add(40*time.Second), noAPI(), map[l7.EdgeKey]l7.EdgeValue{
		{Cgroup: 11, Peer: addrB, Port: 80, Protocol: "http", Role: "client"}: {Count: 40, Failed: 4, Latency: lat(append(make([]uint64, 0), func() []uint64 {
			var v []uint64
			for i := 0; i < 10; i++ {
				v = append(v, 1e6)
			}
			for i := 0; i < 30; i++ {
				v = append(v, 3e6)
			}
			return v
		}()...)...)},
	}, nil, map[tcpEdge]tcpVal{{cgid: 11, peer: addrB, port: 80, role: roleClient}: {conns: 4, sent: 200}})
	newLimiter(10).apply(g2)
	v := MakeView("node-1", start, g1, g2)
	if v.WindowSeconds != 30 || len(v.Edges) != 2 || len(v.Nodes) != 2 {
		t.Fatalf("view %+v", v)
	}
	e := v.Edges[0]
	if e.Protocol != "http" || *e.Requests != 40 || *e.Failed != 4 || *e.RequestsPerSecond != 1 || *e.FailedPerSecond != 0.1 {
		t.Errorf("http edge %+v: want 40 requests, 4 failed, 30 and 3 in 30 s", e)
	}
	if *e.LatencyAvg != 0.003 || e.LatencyFrom != "client" {
		t.Errorf("latency over the window: avg %g from %s, want the 30 new 3 ms requests", *e.LatencyAvg, e.LatencyFrom)
	}
	if q := *e.LatencyP99; q <= 0.002048 || q > 0.004096 {
		t.Errorf("p99 %g, want in the 3 ms bucket (2.048, 4.096] ms", q)
	}
	c := v.Edges[1]
	if c.Protocol != "tcp" || *c.Connections != 4 || *c.ConnectionsPerSecond != 0.1 || *c.BytesToServer != 200 {
		t.Errorf("tcp edge %+v", c)
	}
	if n := v.Nodes[0]; n.Name != "uid-a" || n.RequestsOut != 1 || fmt.Sprint(n.Protocols) != "[http tcp]" {
		t.Errorf("node %+v", n)
	}
	// Before the second collection: rates since start.
	v = MakeView("node-1", start, nil, g1)
	if v.WindowSeconds != 10 || *v.Edges[0].RequestsPerSecond != 1 {
		t.Errorf("first view: window %g, rate %g; want 10 s, 1/s", v.WindowSeconds, *v.Edges[0].RequestsPerSecond)
	}
}

// TestServe: the view is served as JSON on both paths, GET only.
func TestServe(t *testing.T) {
	g := newGraph(time.Unix(10, 0))
	s, err := Serve("127.0.0.1:0", "node-1", time.Unix(0, 0), func() (*Graph, *Graph) { return nil, g })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range ViewPaths {
		resp, err := http.Get("http://" + s.Addr() + p)
		if err != nil {
			t.Fatal(err)
		}
		var v View
		err = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if err != nil || v.Node != "node-1" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %v %+v", p, err, v)
		}
	}
	resp, err := http.Post("http://"+s.Addr()+ViewPaths[0], "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
