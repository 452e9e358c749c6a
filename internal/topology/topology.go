// Package topology is the "topology" family: who talks to whom on this node. Edges client →
// server, each end named (a pod, a Service, a node, an address without the API, or
// external), with the requests, failures and latencies of the l7 family where the protocol is
// known and the TCP connections, bytes and RTT of every connection (bpf/topology.bpf.c).
//
// A request or connection is counted once in the cluster: by the client's node when the
// client is a pod of it, otherwise by the server's node. The number of client → server pairs
// a node reports is capped (Config.MaxEdges); pairs beyond it are reported on edges to or
// from the end named overflow and counted (Graph.Overflow).
package topology

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/podid"
)

// DefaultMaxEdges is the default cap on client → server pairs per node.
const DefaultMaxEdges = 1000

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "topology",
		Load:   LoadTopology,
		Hooks: []bpfload.Hook{
			{Tracepoint: "inet_sock_set_state", Group: "sock", Prog: "kpod_topost", BTFOnly: true},
			{Iter: "tcp", Prog: "kpod_topoit"},
			// The walk of every known socket at once (Linux 5.13+: bpf_for_each_map_elem): as
			// root after the iterator's first run in each namespace, and for WalkSockets.
			{Run: true, Prog: "kpod_topow", Optional: true},
		},
	}
}

// Config configures the family.
type Config struct {
	ProcRoot, V2Root string
	NodeName         string
	// L7 is the l7 family's object, started with l7.Options{Edges: true} (and Backends: true
	// when Peers is set); nil when the l7 family does not run (then there are TCP edges only,
	// and L7Reason says why).
	L7       *bpfload.Collector
	L7Reason string
	// Peers names addresses of the cluster (kubernetes.enabled); nil without the API.
	Peers Peers
	// Conntrack is the conntrack table of the node's network namespace, where kube-proxy's NAT
	// sends a connection to a Service to a backend (with Peers); "": /proc/<pid>/net/nf_conntrack
	// of a process in the host's network namespace under ProcRoot.
	Conntrack string
	MaxEdges  int
	// WalkSockets reads the live sockets from the walk of the sockets the family knows, in
	// every network namespace at once, instead of running the TCP iterator in each pod's
	// namespace; for
	// kpod without CAP_SYS_ADMIN, which may not enter them (setns). It knows only the
	// connections established while kpod runs; pods' addresses come from /proc/<pid>/net.
	WalkSockets bool
	// Listen, if set, serves the JSON view (View) on this host:port.
	Listen string
	// Now is the clock (tests replace it); nil: time.Now.
	Now func() time.Time
}

// Collector reads the family.
type Collector struct {
	*bpfload.Collector
	cfg   Config
	procs *collector.NSProcs
	limit *limiter

	// rtt holds the samples of live sockets of earlier collections per edge: the histogram
	// is cumulative, so a sample stays counted after its socket closed.
	rtt   map[tcpEdge]hist.Hist
	sweep bpfload.Sweeper
	// met: with the walk, the namespaces the TCP iterator has run in.
	met collector.Met
	gen uint64 // of the last walk (kpod_topo_live)
	// backends names the backends behind Services (with Peers); nil otherwise.
	backends *backends

	mu         sync.Mutex
	prev, last *Graph // the two latest collections, for the JSON view's rates
	view       *Server
}

// Start loads and attaches the family.
func Start(cfg Config) (*Collector, error) {
	if cfg.MaxEdges <= 0 {
		cfg.MaxEdges = DefaultMaxEdges
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	spec := Spec()
	if cfg.Peers != nil {
		spec.Prepare = func(cs *ebpf.CollectionSpec) error {
			v, ok := cs.Variables["topo_backends"]
			if !ok {
				return errors.New("no variable topo_backends in the object")
			}
			return v.Set(uint8(1))
		}
	}
	b, err := bpfload.Start(spec)
	if err != nil {
		return nil, err
	}
	c := &Collector{Collector: b, cfg: cfg, limit: newLimiter(cfg.MaxEdges), rtt: map[tcpEdge]hist.Hist{},
		procs: &collector.NSProcs{ProcRoot: cfg.ProcRoot, V2Root: cfg.V2Root, Kind: "net"}}
	if cfg.Peers != nil {
		path := cfg.Conntrack
		if path == "" {
			ns, _, err := collector.HostNamespacePath(cfg.ProcRoot, "net")
			if err != nil {
				_ = b.Close()
				return nil, fmt.Errorf("the host's network namespace, for its conntrack table: %w", err)
			}
			path = filepath.Join(filepath.Dir(filepath.Dir(ns)), "net", "nf_conntrack")
		}
		if c.backends, err = startBackends(b, cfg.L7, cfg.Peers, path); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	if cfg.Listen != "" {
		if c.view, err = Serve(cfg.Listen, cfg.NodeName, cfg.Now(), c.Latest); err != nil {
			_ = b.Close()
			return nil, err
		}
	}
	return c, nil
}

// ViewAddr is where the JSON view listens ("" when it is off).
func (c *Collector) ViewAddr() string {
	if c.view == nil {
		return ""
	}
	return c.view.Addr()
}

// Close stops the JSON view and unloads the family.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	c.procs.Close()
	return errors.Join(c.view.Close(), c.Collector.Close())
}

// UnavailableMetrics names the request metrics when the l7 family does not run, and the
// bytes and RTT of live connections when kpod can read no live socket.
func (c *Collector) UnavailableMetrics() map[string]string {
	out := map[string]string{}
	if c.cfg.L7 == nil {
		for _, m := range RequestMetrics {
			out[m] = c.cfg.L7Reason
		}
	}
	if reason := c.noLiveSockets(); reason != "" {
		for _, m := range []string{"kpod.topology.bytes", "kpod.topology.rtt"} {
			out[m] = reason
		}
	}
	return out
}

// noLiveSockets says why kpod reads no live socket ("" when it does): without CAP_SYS_ADMIN
// it needs the walk of known sockets, which kernels before 5.13 cannot load. Connections are
// then counted when established, their bytes and RTT only when they close.
func (c *Collector) noLiveSockets() string {
	if !c.cfg.WalkSockets || c.Obj.Has("kpod_topow") {
		return ""
	}
	return "counted when connections close, not while they are open: kpod may not enter the pods' network namespaces " +
		"(no CAP_SYS_ADMIN) and the kernel refused the walk of known sockets (" + c.Obj.Missing["kpod_topow"] + ")"
}

// RequestMetrics are the family's metrics that come from the l7 family.
var RequestMetrics = []string{
	"traces_service_graph_request_total", "traces_service_graph_request_failed_total",
	"traces_service_graph_request_client_seconds", "traces_service_graph_request_server_seconds",
}

// Collect returns this node's graph under bpfload.NodeID.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]*Graph, error) {
	now := c.cfg.Now()
	// kpod_topo first, then the live sockets: see tcp.Collector.addSockets.
	raw, err := bpfload.Read[TopologyTopoKey, TopologyTopoVal](c.Collector, TopologyMapKpodTopo, x.Live)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	conns := map[tcpEdge]tcpVal{}
	for k, v := range raw {
		e := tcpEdge{cgid: k.Cgid, peer: l7.PeerAddr(k.Addr), port: k.Port, role: k.Role}
		t := conns[e]
		addTCPVal(&t, &tcpVal{conns: v.Conns, sent: v.Sent, received: v.Received, rtt: hist.Decode(v.Rtt.SumNs, v.Rtt.Slots)})
		conns[e] = t
	}
	if c.backends != nil { // before the live sockets too
		c.backends.begin(c.cfg.Peers)
		c.backends.closedConns(c.Collector, x.Live, conns)
	}
	r := newResolver(c.cfg.NodeName, x, c.cfg.Peers)
	var live []liveEdge
	// As root, the live sockets come from the walk where the kernel loads it, the iterator
	// running once in each namespace to meet older sockets (see tcp.Collector.addSockets);
	// else from the iterator in every namespace.
	walk := c.Obj.Has("kpod_topow") && !c.cfg.WalkSockets && !iterateEveryNamespace.Load()
	defer c.met.Done()
	for _, ns := range c.namespaces(x) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var addrs []netip.Addr
		switch {
		case c.cfg.WalkSockets:
			addrs, err = procAddrs(filepath.Dir(filepath.Dir(ns.path)))
		case walk && c.met.Before(ns.ino):
			addrs, err = c.addresses(ns.path)
		default:
			var recs []TopologyTopoRec
			recs, addrs, err = c.iterate(ns.path)
			if !walk {
				for _, r := range recs {
					l := liveEdge{key: TopologyTopoLkey{Cgid: r.Cgid, Addr: r.Addr, Laddr: r.Laddr, Lport: r.Lport, Rport: r.Rport, Role: r.Role, Svc: r.Svc},
						sent: r.Sent, received: r.Received}
					if r.SrttNs > 0 {
						l.rtt.Record(r.SrttNs)
					}
					live = append(live, l)
				}
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // its process exited since namespaces() found it: churn, not an error
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.met.Add(ns.ino)
		for _, a := range addrs {
			if ns.pod == nil {
				r.addrs[a] = End{Name: c.cfg.NodeName, Kind: KindNode}
			} else {
				r.addrs[a] = r.podEnd(ns.pod)
			}
		}
	}
	if walk || c.cfg.WalkSockets && c.noLiveSockets() == "" {
		walked, err := c.walk()
		if err != nil {
			errs = append(errs, err)
		}
		live = walked
	}
	for _, l := range live {
		k := &l.key
		port := k.Lport
		if k.Role == roleClient {
			port = k.Rport
		}
		e := tcpEdge{cgid: k.Cgid, peer: l7.PeerAddr(k.Addr), port: port, role: k.Role}
		if k.Svc != 0 && c.backends != nil {
			e = c.backends.liveEdge(k)
		}
		t := conns[e]
		t.sent += l.sent
		t.received += l.received
		conns[e] = t
		if l.rtt.Count() > 0 {
			h := c.rtt[e]
			h.Add(&l.rtt)
			c.rtt[e] = h
		}
	}
	cgids := make([]uint64, 0, len(c.rtt))
	for e, h := range c.rtt {
		t := conns[e]
		t.rtt.Add(&h)
		conns[e] = t
		cgids = append(cgids, e.cgid)
	}
	dead := map[uint64]bool{}
	for _, id := range c.sweep.Dead(cgids, x.Live) {
		dead[id] = true
	}
	maps.DeleteFunc(c.rtt, func(e tcpEdge, _ hist.Hist) bool { return dead[e.cgid] })
	var reqs map[l7.EdgeKey]l7.EdgeValue
	var svcReqs map[backendKey]l7.EdgeValue
	if c.cfg.L7 != nil {
		if reqs, err = l7.ReadEdges(c.cfg.L7, x.Live); err != nil {
			errs = append(errs, err)
		}
		if c.backends != nil {
			svcReqs = c.backends.requests(c.cfg.L7, x.Live)
		}
	}
	if c.backends != nil {
		if err := c.backends.end(); err != nil {
			errs = append(errs, err)
		}
	}
	g := build(now, r, reqs, svcReqs, conns)
	c.limit.apply(g)
	c.mu.Lock()
	c.prev, c.last = c.last, g
	c.mu.Unlock()
	return map[uint64]*Graph{bpfload.NodeID: g}, errors.Join(errs...)
}

// Latest returns the two latest graphs (prev may be nil).
func (c *Collector) Latest() (prev, last *Graph) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prev, c.last
}

type netns struct {
	path string
	ino  uint64
	pod  *podid.Pod // nil: the host's
}

// namespaces are the network namespaces to iterate: the host's and each pod's own (a
// hostNetwork pod's is the host's), once each.
func (c *Collector) namespaces(x *podid.Index) []netns {
	end := c.procs.Begin()
	seen := map[uint64]bool{}
	var out []netns
	if path, ino, err := collector.HostNamespacePath(c.cfg.ProcRoot, "net"); err == nil {
		seen[ino] = true
		out = append(out, netns{path: path, ino: ino})
	}
	for _, p := range x.Pods {
		var rels []string
		for _, ctr := range p.Containers {
			if ctr.Sandbox {
				rels = append([]string{ctr.Rel}, rels...)
			} else {
				rels = append(rels, ctr.Rel)
			}
		}
		pid, ino, ok := c.procs.Find(p.CgroupID, rels)
		if ok && !seen[ino] {
			seen[ino] = true
			out = append(out, netns{path: c.procs.NSPath(pid), ino: ino, pod: p})
		}
	}
	end()
	return out
}

// iterate runs the socket iterator in the network namespace at nsPath (it takes the namespace
// of the thread that opens it) and reads the namespace's own addresses (what names this pod,
// or this node, to its peers).
func (c *Collector) iterate(nsPath string) (recs []TopologyTopoRec, addrs []netip.Addr, err error) {
	err = collector.InNetNS(nsPath, func() (err error) {
		if addrs, err = localAddrs(); err != nil {
			return err
		}
		recs, err = bpfload.RunIter[TopologyTopoRec](c.Obj, "kpod_topoit", "the socket iterator")
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("in %s: %w", nsPath, err)
	}
	return recs, addrs, nil
}

// addresses reads the addresses of the network namespace at nsPath.
func (c *Collector) addresses(nsPath string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	err := collector.InNetNS(nsPath, func() (err error) { addrs, err = localAddrs(); return err })
	if err != nil {
		return nil, fmt.Errorf("reading the addresses of %s: %w", nsPath, err)
	}
	return addrs, nil
}

// localAddrs are the addresses of this thread's network namespace, loopback left out.
func localAddrs() ([]netip.Addr, error) {
	ifaddrs, err := net.InterfaceAddrs() // netlink, in this thread's namespace
	if err != nil {
		return nil, fmt.Errorf("addresses: %w", err)
	}
	var addrs []netip.Addr
	for _, ia := range ifaddrs {
		if n, ok := ia.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok && !a.Unmap().IsLoopback() {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	return addrs, nil
}

// iterateEveryNamespace: tests make the family run the iterator in every namespace at each
// collection where the walk loads (IterateEveryNamespaceForTest).
var iterateEveryNamespace atomic.Bool

// IterateEveryNamespaceForTest makes the family read live sockets as where the kernel
// cannot load the walk, until restore is called.
func IterateEveryNamespaceForTest() (restore func()) {
	iterateEveryNamespace.Store(true)
	return func() { iterateEveryNamespace.Store(false) }
}

// liveEdge is what live sockets hold on one edge (a connection to a Service: one socket):
// their bytes since kpod first saw them and one RTT sample each.
type liveEdge struct {
	key            TopologyTopoLkey
	sent, received uint64
	rtt            hist.Hist
}

// walk runs kpod_topow, which sums the live sockets kpod knows per edge into kpod_topo_live
// under a new generation, and reads those sums.
func (c *Collector) walk() ([]liveEdge, error) {
	c.gen++
	var out []liveEdge
	err := bpfload.RunWalk(c.Obj, "kpod_topow", c.gen, TopologyMapKpodTopoSocks, TopologyMapKpodTopoLive,
		func(v *TopologyTopoLive) uint64 { return v.Gen },
		func(k *TopologyTopoLkey, v *TopologyTopoLive) {
			out = append(out, liveEdge{key: *k, sent: v.Sent, received: v.Received, rtt: hist.Decode(v.Rtt.SumNs, v.Rtt.Slots)})
		})
	return out, err
}
