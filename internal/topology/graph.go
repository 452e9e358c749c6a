package topology

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/podid"
)

// End kinds: what an end of an edge is.
const (
	KindPod      = kube.PeerPod     // a pod: namespace/name with the API, its UID without
	KindService  = kube.PeerService // a Service's ClusterIP (or a non-pod endpoint of one)
	KindNode     = kube.PeerNode    // a node (this one's addresses, a hostNetwork pod's IP)
	KindIP       = "ip"             // without the API: a private address that is no local pod
	KindExternal = "external"       // anything else; never named by its address
	KindUnknown  = "unknown"        // the peer's address could not be read
	KindOverflow = "overflow"       // the other ends of the edges over max_edges
)

// Names of the ends that are not named after what they are.
const (
	NameExternal = "external"
	NameUnknown  = "unknown"
	NameOverflow = "overflow"
)

// End is one end of an edge.
type End struct {
	Name      string `json:"id"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Workload  string `json:"workload,omitempty"`
	UID       string `json:"uid,omitempty"`   // pods
	Local     bool   `json:"local,omitempty"` // a pod of this node
}

// RequestKey is a service-graph edge: requests of one protocol from client to server, and,
// for a client's requests to a Service, the backend the node's NAT sent them to ("" when it is
// not known, and for any other edge).
type RequestKey struct {
	Client, Server, Protocol, Backend string
}

// Side is what one end saw of an edge's requests: the answered requests, the failed ones and
// their latency (client: request sent → response received; server: received → sent).
type Side struct {
	Seen          bool
	Count, Failed uint64
	Latency       hist.Hist
}

// Requests are an edge's requests as this node's pods saw them.
type Requests struct {
	Client, Server Side
	// Counted: this node counts the edge's requests (traces_service_graph_request_total): the
	// client is a pod of this node, or the server is and the client is not a pod (whose own
	// node would count them).
	Counted bool
}

// Reported are the requests and failed requests this node reports: the client's, else the
// server's when it counts them.
func (r *Requests) Reported() (count, failed uint64) {
	switch {
	case r.Client.Seen:
		return r.Client.Count, r.Client.Failed
	case r.Counted:
		return r.Server.Count, r.Server.Failed
	}
	return 0, 0
}

// ConnKey is a TCP-level edge, and, for a client's connections to a Service, the backend the
// node's NAT sent them to ("" when it is not known, and for any other edge).
type ConnKey struct {
	Client, Server, Backend string
}

// Conns are an edge's TCP connections, counted like requests (by the client's node, or by
// the server's when the client is not a pod), whatever their protocol.
type Conns struct {
	Connections   uint64
	BytesToServer uint64 // payload bytes the client sent and the server received
	BytesToClient uint64
	RTT           hist.Hist // smoothed RTT of the counting side's sockets
}

// Graph is this node's view of the topology at one collection: cumulative values since kpod
// started, as its BPF maps hold them.
type Graph struct {
	Time     time.Time
	Requests map[RequestKey]*Requests
	Conns    map[ConnKey]*Conns
	Ends     map[string]End // by name
	// Edges is the number of client → server pairs reported (at most max_edges); Overflow
	// counts the pairs that found max_edges reached since kpod started, reported on edges to
	// or from the end named overflow.
	Edges    int
	Overflow uint64
}

func newGraph(t time.Time) *Graph {
	return &Graph{Time: t, Requests: map[RequestKey]*Requests{}, Conns: map[ConnKey]*Conns{}, Ends: map[string]End{}}
}

// ConnectionType is the servicegraph connector's connection_type of a protocol: database for
// database protocols, messaging_system for Kafka, unset (empty) for the others.
func ConnectionType(protocol string) string {
	switch protocol {
	case "redis", "mysql", "postgresql", "mongodb":
		return "database"
	case "kafka":
		return "messaging_system"
	}
	return ""
}

// tcpEdge is one kernel entry or live socket of the topology object, per cgroup.
type tcpEdge struct {
	cgid    uint64
	peer    netip.Addr
	port    uint16
	role    uint8      // 1 client, 2 server
	backend netip.Addr // a client's connections to a Service: the backend, where known
}

type tcpVal struct {
	conns, sent, received uint64
	rtt                   hist.Hist
}

const (
	roleClient = 1
	roleServer = 2
)

// build turns what the kernel holds per cgroup and peer address into named edges, and
// decides which node counts each: requests and connections are counted once, by the client's
// node when the client is a pod of it, otherwise by the server's node (the client is then not
// a pod: a node, an address outside the cluster, ...).
func build(t time.Time, r *resolver, reqs map[l7.EdgeKey]l7.EdgeValue, svcReqs map[backendKey]l7.EdgeValue, conns map[tcpEdge]tcpVal) *Graph {
	g := newGraph(t)
	add := func(client, server End, protocol, backend string, role string, v *l7.EdgeValue) {
		key := RequestKey{client.Name, server.Name, protocol, backend}
		e := g.Requests[key]
		if e == nil {
			e = &Requests{}
			g.Requests[key] = e
		}
		side := &e.Client
		if role == "server" {
			side = &e.Server
		}
		side.Seen = true
		side.Count += v.Count
		side.Failed += v.Failed
		side.Latency.Add(&v.Latency)
		g.addEnds(client, server)
	}
	for k, v := range reqs {
		local, ok := r.local(k.Cgroup)
		if !ok {
			continue // not a pod's cgroup (a node process), or a pod the filters leave out
		}
		remote := r.peer(k.Peer, local)
		if k.Role == "server" {
			add(remote, local, k.Protocol, "", k.Role, &v)
		} else {
			add(local, remote, k.Protocol, "", k.Role, &v)
		}
	}
	for k, v := range svcReqs {
		local, ok := r.local(k.cgid)
		if !ok {
			continue
		}
		var backend string
		if k.backend.IsValid() {
			backend = r.peer(k.backend, local).Name
		}
		add(local, r.peer(k.service, local), k.protocol, backend, "client", &v)
	}
	for key, e := range g.Requests {
		e.Counted = e.Client.Seen || e.Server.Seen && g.Ends[key.Client].Kind != KindPod
	}
	// TCP: the counting side's sockets only (both sides' counts are the same connections).
	type side struct {
		client, server End
		v              tcpVal
	}
	sides := map[ConnKey][2]*side{}
	for k, v := range conns {
		local, ok := r.local(k.cgid)
		if !ok || k.role != roleClient && k.role != roleServer {
			continue
		}
		remote := r.peer(k.peer, local)
		client, server := local, remote
		to, from := v.sent, v.received
		if k.role == roleServer {
			client, server = remote, local
			to, from = v.received, v.sent
		}
		key := ConnKey{client.Name, server.Name, ""}
		if k.backend.IsValid() {
			key.Backend = r.peer(k.backend, local).Name
		}
		s := sides[key]
		i := k.role - 1
		if s[i] == nil {
			s[i] = &side{client: client, server: server}
			sides[key] = s
		}
		s[i].v.conns += v.conns
		s[i].v.sent += to // bytes to the server
		s[i].v.received += from
		s[i].v.rtt.Add(&v.rtt)
	}
	for key, s := range sides {
		var use *side
		switch {
		case s[0] != nil:
			use = s[0]
		case s[1] != nil && s[1].client.Kind != KindPod:
			use = s[1]
		default:
			continue
		}
		g.Conns[key] = &Conns{Connections: use.v.conns, BytesToServer: use.v.sent, BytesToClient: use.v.received, RTT: use.v.rtt}
		g.addEnds(use.client, use.server)
	}
	return g
}

func (g *Graph) addEnds(ends ...End) {
	for _, e := range ends {
		if old, ok := g.Ends[e.Name]; !ok || e.Local && !old.Local {
			g.Ends[e.Name] = e
		}
	}
}

// limiter keeps the number of client → server pairs a node reports at most max. Pairs are
// admitted in the order they first appear (sorted within a collection) and keep their place
// while they exist; a pair that finds the limit reached is reported on the edge between its
// local end and the end named overflow, and stays there while it exists, so that every
// reported series is cumulative.
type limiter struct {
	max      int
	admitted map[ConnKey]bool
	over     map[ConnKey]bool
	overflow uint64 // pairs sent to overflow since kpod started
}

func newLimiter(max int) *limiter {
	return &limiter{max: max, admitted: map[ConnKey]bool{}, over: map[ConnKey]bool{}}
}

// pair is a client → server pair, whatever the backend: what max_edges counts.
func pair(client, server string) ConnKey { return ConnKey{Client: client, Server: server} }

// apply rewrites g: over-limit pairs are merged into overflow edges.
func (l *limiter) apply(g *Graph) {
	seen := map[ConnKey]bool{} // the pairs, whatever the backend
	for k := range g.Requests {
		seen[pair(k.Client, k.Server)] = true
	}
	for k := range g.Conns {
		seen[pair(k.Client, k.Server)] = true
	}
	// Pairs that are gone (their cgroups' entries were swept) leave both sets.
	for k := range l.admitted {
		if !seen[k] {
			delete(l.admitted, k)
		}
	}
	for k := range l.over {
		if !seen[k] {
			delete(l.over, k)
		}
	}
	pairs := slices.SortedFunc(maps.Keys(seen), func(a, b ConnKey) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Server, b.Server))
	})
	for _, k := range pairs {
		if l.admitted[k] || l.over[k] {
			continue
		}
		if len(l.admitted) < l.max {
			l.admitted[k] = true
		} else {
			l.over[k] = true
			l.overflow++
		}
	}
	g.Edges, g.Overflow = len(l.admitted), l.overflow
	if len(l.over) == 0 {
		return
	}
	// The end of an over-limit pair that is not a local pod becomes overflow.
	rename := func(client, server string) (string, string) {
		if g.Ends[client].Local {
			return client, NameOverflow
		}
		return NameOverflow, server
	}
	reqs := map[RequestKey]*Requests{}
	for k, v := range g.Requests {
		if l.over[pair(k.Client, k.Server)] {
			k.Client, k.Server = rename(k.Client, k.Server)
			k.Backend = ""
			if o := reqs[k]; o != nil {
				o.merge(v)
				continue
			}
		}
		reqs[k] = v
	}
	conns := map[ConnKey]*Conns{}
	for k, v := range g.Conns {
		if l.over[pair(k.Client, k.Server)] {
			k.Client, k.Server = rename(k.Client, k.Server)
			k.Backend = ""
			if o := conns[k]; o != nil {
				o.Connections += v.Connections
				o.BytesToServer += v.BytesToServer
				o.BytesToClient += v.BytesToClient
				o.RTT.Add(&v.RTT)
				continue
			}
		}
		conns[k] = v
	}
	g.Requests, g.Conns = reqs, conns
	g.Ends[NameOverflow] = End{Name: NameOverflow, Kind: KindOverflow}
	// Ends only reachable through over-limit pairs are no longer in the graph.
	used := map[string]bool{NameOverflow: true}
	for k := range g.Requests {
		used[k.Client], used[k.Server] = true, true
	}
	for k := range g.Conns {
		used[k.Client], used[k.Server] = true, true
	}
	for n := range g.Ends {
		if !used[n] {
			delete(g.Ends, n)
		}
	}
}

func (r *Requests) merge(o *Requests) {
	for _, s := range [][2]*Side{{&r.Client, &o.Client}, {&r.Server, &o.Server}} {
		s[0].Seen = s[0].Seen || s[1].Seen
		s[0].Count += s[1].Count
		s[0].Failed += s[1].Failed
		s[0].Latency.Add(&s[1].Latency)
	}
	r.Counted = r.Counted || o.Counted
}

// resolver names the ends of one collection's edges.
type resolver struct {
	node  string
	pods  map[uint64]*podid.Pod // every cgroup id of a pod (its own, its containers', their children)
	addrs map[netip.Addr]End    // the local pods' and the node's own addresses
	peers Peers                 // nil without the API
}

// Peers names addresses of the cluster (kube.Peers).
type Peers interface {
	Lookup(netip.Addr) (kube.Peer, bool)
	Pod(uid string) (kube.Peer, bool)
	ServiceIPs() map[netip.Addr]bool
}

func newResolver(node string, x *podid.Index, peers Peers) *resolver {
	r := &resolver{node: node, pods: map[uint64]*podid.Pod{}, addrs: map[netip.Addr]End{}, peers: peers}
	for _, p := range x.Pods {
		r.pods[p.CgroupID] = p
		for _, c := range p.Containers {
			for _, id := range c.CgroupIDs {
				r.pods[id] = p
			}
			r.pods[c.CgroupID] = p
		}
	}
	return r
}

// podEnd names a pod of this node.
func (r *resolver) podEnd(p *podid.Pod) End {
	if r.peers != nil {
		if k, ok := r.peers.Pod(p.UID); ok && k.Kind == kube.PeerPod {
			return End{Name: k.Namespace + "/" + k.Name, Kind: KindPod, Namespace: k.Namespace, Workload: k.Workload, UID: p.UID, Local: true}
		}
	}
	return End{Name: p.UID, Kind: KindPod, UID: p.UID, Local: true}
}

// local names the pod a cgroup belongs to.
func (r *resolver) local(cgid uint64) (End, bool) {
	p, ok := r.pods[cgid]
	if !ok {
		return End{}, false
	}
	return r.podEnd(p), true
}

// peer names a peer address; self is the local end (a loopback peer is the pod itself).
func (r *resolver) peer(a netip.Addr, self End) End {
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return End{Name: NameUnknown, Kind: KindUnknown}
	case a.IsLoopback():
		return self
	}
	if e, ok := r.addrs[a]; ok {
		return e
	}
	if r.peers != nil {
		k, ok := r.peers.Lookup(a)
		switch {
		case !ok:
			return End{Name: NameExternal, Kind: KindExternal}
		case k.Kind == kube.PeerNode:
			return End{Name: k.Name, Kind: KindNode}
		default:
			return End{Name: k.Namespace + "/" + k.Name, Kind: k.Kind, Namespace: k.Namespace, Workload: k.Workload, UID: k.UID}
		}
	}
	if private(a) {
		return End{Name: a.String(), Kind: KindIP}
	}
	return End{Name: NameExternal, Kind: KindExternal}
}

var sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598, used by some pod networks

// private reports whether an address can be a cluster's: RFC 1918, RFC 6598, IPv6 ULA,
// link-local. Any other address is never a label value.
func private(a netip.Addr) bool {
	return a.IsPrivate() || sharedSpace.Contains(a) || a.IsLinkLocalUnicast()
}
