package topology

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/l7"
)

// The backend behind a Service. A client's socket knows only the Service's address; the
// node's NAT (kube-proxy) chose a backend for the connection and its conntrack entry says
// which. Both the l7 family (requests) and this family's object (connections, bytes, RTT)
// count a client's connections to a Service address per connection and generation
// (kpod_l7_svcconn, kpod_topo_svcconn; kpod_l7_gen, kpod_topo_gen); each collection names the
// backend of connections it has not seen yet from the node's conntrack table, folds the
// entries of the generation it retired at the collection before (no program has written them
// since) into totals kept here, deletes them, and retires the current generation. The kernel
// maps so hold the connections active in the last two intervals, and nothing is deleted while
// a program may still add to it.

// lookups is how many collections look up a connection's backend before it stays unknown:
// an entry the table does not have (it expired, or this node did not NAT the connection).
const lookups = 3

// backendKey is an edge to a Service as one cgroup saw it, by the backend it reached (the
// zero Addr: unknown).
type backendKey struct {
	cgid        uint64
	service     netip.Addr
	servicePort uint16
	protocol    string
	backend     netip.Addr
}

// connID is a connection to a Service of a cgroup, as conntrack knows it.
type connID struct {
	cgid uint64
	t    ctTuple
}

// svcConn is what kpod knows of a connection to a Service while it has entries in a map.
type svcConn struct {
	backend netip.Addr // the zero Addr until known
	lookups int
}

// serviceWatcher is a Peers that tells when Services come and go (kube.Peers), so that a new
// Service's address is in the kernel's maps before its first connection, not at the next
// collection.
type serviceWatcher interface {
	WatchServices(set func(addrs []netip.Addr, on bool)) error
}

// svcMap is a kernel map of Service addresses and what kpod wrote into it.
type svcMap struct {
	m    *ebpf.Map
	have map[netip.Addr]bool
}

// backends keeps the connections to Services and their backends across collections.
type backends struct {
	conntrack string // the node's /proc/<pid>/net/nf_conntrack
	mu        sync.Mutex
	services  []*svcMap // kpod_topo_svc, and kpod_l7_svc when the l7 family runs (under mu)
	conns     map[connID]*svcConn
	reqs      genFold[backendKey, l7.EdgeValue]
	tcp       genFold[tcpEdge, tcpVal]

	// Per collection: the connections seen and the conntrack table, read at most once.
	seen  map[connID]bool
	table *ctTable
	errs  []error
	// unreadable is why the conntrack table could not be read the last time ("" if it was).
	unreadable string
}

// startBackends writes the Service addresses of peers into the objects' maps and keeps them
// current: at each collection, and as the cluster's Services change where peers tells. l7c
// is nil when the l7 family does not run.
func startBackends(topo, l7c *bpfload.Collector, peers Peers, conntrack string) (*backends, error) {
	b := &backends{conntrack: conntrack, conns: map[connID]*svcConn{},
		reqs: genFold[backendKey, l7.EdgeValue]{folded: map[backendKey]l7.EdgeValue{}},
		tcp:  genFold[tcpEdge, tcpVal]{genMap: topo.Obj.Maps[TopologyMapKpodTopoGen], folded: map[tcpEdge]tcpVal{}}}
	b.services = append(b.services, &svcMap{m: topo.Obj.Maps[TopologyMapKpodTopoSvc]})
	if l7c != nil {
		b.services = append(b.services, &svcMap{m: l7c.Obj.Maps[l7.L7MapKpodL7Svc]})
		b.reqs.genMap = l7c.Obj.Maps[l7.L7MapKpodL7Gen]
	}
	if err := b.syncServices(peers.ServiceIPs()); err != nil {
		return nil, err
	}
	w, ok := peers.(serviceWatcher)
	if !ok {
		return b, nil
	}
	return b, w.WatchServices(func(addrs []netip.Addr, on bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.services {
			want := maps.Clone(s.have)
			for _, a := range addrs {
				if on {
					want[a] = true
				} else {
					delete(want, a)
				}
			}
			// An error leaves the address as it was; the next collection's sync tries again.
			_ = s.set(want)
		}
	})
}

// syncServices makes the kernel's Service addresses want.
func (b *backends) syncServices(want map[netip.Addr]bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, s := range b.services {
		errs = append(errs, s.set(want))
	}
	return errors.Join(errs...)
}

// set makes the map hold exactly the addresses of want. An address that does not fit (the
// maps hold 16,384) stays out: its connections are on the edge to the Service without their
// backend.
func (s *svcMap) set(want map[netip.Addr]bool) error {
	if s.m == nil {
		return errors.New("no map of Service addresses in the object")
	}
	now := make(map[netip.Addr]bool, len(want))
	var errs []error
	for a := range s.have {
		if want[a] {
			now[a] = true
		} else if err := s.m.Delete(a.As16()); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			now[a] = true
			errs = append(errs, fmt.Errorf("%s: deleting %s: %w", s.m, a, err))
		}
	}
	for a := range want {
		if now[a] {
			continue
		}
		if err := s.m.Put(a.As16(), uint8(1)); err != nil {
			errs = append(errs, fmt.Errorf("%s: adding %s: %w", s.m, a, err))
			continue
		}
		now[a] = true
	}
	s.have = now
	return errors.Join(errs...)
}

// begin starts a collection: the Service addresses from peers.
func (b *backends) begin(peers Peers) {
	b.seen, b.table, b.errs = map[connID]bool{}, nil, nil
	if err := b.syncServices(peers.ServiceIPs()); err != nil {
		b.errs = append(b.errs, err)
	}
}

// end finishes a collection and returns its errors. Connections without an entry in any map
// now (no request or state change in the last two intervals, or of removed cgroups) are
// forgotten: a later entry of one looks its backend up again.
func (b *backends) end() error {
	maps.DeleteFunc(b.conns, func(k connID, _ *svcConn) bool { return !b.seen[k] })
	return errors.Join(b.errs...)
}

// backend names a connection's backend, from the conntrack table the first time.
func (b *backends) backend(id connID) netip.Addr {
	b.seen[id] = true
	sc := b.conns[id]
	if sc == nil {
		sc = &svcConn{}
		b.conns[id] = sc
	}
	if sc.backend.IsValid() || sc.lookups >= lookups {
		return sc.backend
	}
	if b.table == nil {
		t, err := b.readConntrack()
		if err != nil {
			b.errs = append(b.errs, err)
		}
		if b.table = t; t == nil {
			b.table = &ctTable{} // unreadable: nothing to look up in this collection
		}
	}
	if b.table.exact != nil {
		sc.lookups++
		sc.backend, _ = b.table.lookup(id.t)
	}
	return sc.backend
}

// requests reads kpod_l7_svcconn and returns every cgroup's requests to Services by backend,
// cumulative since kpod started.
func (b *backends) requests(c *bpfload.Collector, live map[uint64]bool) map[backendKey]l7.EdgeValue {
	entries, err := l7.ReadSvcConns(c, live)
	if err != nil {
		b.errs = append(b.errs, err)
	}
	out := map[backendKey]l7.EdgeValue{}
	for _, e := range entries {
		k := e.Key
		id := connID{k.Cgroup, ctTuple{udp: k.UDP, local: k.Local, service: k.Service, localPort: k.LocalPort, servicePort: k.ServicePort}}
		fk := backendKey{cgid: k.Cgroup, service: k.Service, servicePort: k.ServicePort, protocol: k.Protocol, backend: b.backend(id)}
		dst := b.reqs.dst(e.Gen, func() error { return l7.DeleteSvcConn(c, e.Kernel) }, out, &b.errs)
		x := dst[fk]
		addEdgeValue(&x, &e.Value)
		dst[fk] = x
	}
	b.reqs.flip(&b.errs)
	b.reqs.addFolded(out, live, func(k backendKey) uint64 { return k.cgid }, addEdgeValue)
	return out
}

// closedConns reads kpod_topo_svcconn and adds to conns, by backend, every cgroup's
// connections to Services as counted when established and when closed.
func (b *backends) closedConns(c *bpfload.Collector, live map[uint64]bool, conns map[tcpEdge]tcpVal) {
	raw, err := bpfload.Read[TopologyTopoSvckey, TopologyTopoVal](c, TopologyMapKpodTopoSvcconn, live)
	if err != nil {
		b.errs = append(b.errs, err)
	}
	m := c.Obj.Maps[TopologyMapKpodTopoSvcconn]
	for k, v := range raw {
		id := connID{k.Cgid, ctTuple{local: l7.PeerAddr(k.Laddr), service: l7.PeerAddr(k.Raddr), localPort: k.Lport, servicePort: k.Rport}}
		e := tcpEdge{cgid: k.Cgid, peer: id.t.service, port: k.Rport, role: roleClient, backend: b.backend(id)}
		dst := b.tcp.dst(k.Gen, func() error { return bpfload.DeleteKeys(m, []TopologyTopoSvckey{k}) }, conns, &b.errs)
		t := dst[e]
		addTCPVal(&t, &tcpVal{conns: v.Conns, sent: v.Sent, received: v.Received, rtt: hist.Decode(v.Rtt.SumNs, v.Rtt.Slots)})
		dst[e] = t
	}
	b.tcp.flip(&b.errs)
	b.tcp.addFolded(conns, live, func(k tcpEdge) uint64 { return k.cgid }, addTCPVal)
}

// liveEdge is the edge of a live client socket to a Service.
func (b *backends) liveEdge(rec *TopologyTopoLkey) tcpEdge {
	id := connID{rec.Cgid, ctTuple{local: l7.PeerAddr(rec.Laddr), service: l7.PeerAddr(rec.Addr), localPort: rec.Lport, servicePort: rec.Rport}}
	return tcpEdge{cgid: rec.Cgid, peer: id.t.service, port: rec.Rport, role: roleClient, backend: b.backend(id)}
}

// genFold keeps the totals of a per-connection map's entries folded out of it.
type genFold[K comparable, V any] struct {
	genMap  *ebpf.Map // the object's kpod_<tag>_gen (KPOD_SVC_MAPS)
	gen     uint8     // the generation programs write in
	flipped bool      // a generation was retired
	folded  map[K]V
}

// dst is where an entry of generation gen goes: folded if it was retired at the collection
// before (final) and del deleted it, else out. Folded only once gone from the map, so that it
// is never counted twice.
func (f *genFold[K, V]) dst(gen uint8, del func() error, out map[K]V, errs *[]error) map[K]V {
	if !f.flipped || gen == f.gen {
		return out
	}
	if err := del(); err != nil {
		*errs = append(*errs, err)
		return out
	}
	return f.folded
}

// flip retires the current generation.
func (f *genFold[K, V]) flip(errs *[]error) {
	if f.genMap == nil {
		*errs = append(*errs, errors.New("no generation map in the object"))
		return
	}
	if err := f.genMap.Put(uint32(0), uint32(f.gen^1)); err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", f.genMap, err))
		return
	}
	f.gen, f.flipped = f.gen^1, true
}

// addFolded adds the folded totals of live cgroups to out and forgets the others'.
func (f *genFold[K, V]) addFolded(out map[K]V, live map[uint64]bool, cgid func(K) uint64, add func(dst, src *V)) {
	for k, v := range f.folded {
		if !live[cgid(k)] {
			delete(f.folded, k)
			continue
		}
		x := out[k]
		add(&x, &v)
		out[k] = x
	}
}

// readConntrack reads the conntrack table of the node's network namespace, keeping the
// entries to Service addresses.
func (b *backends) readConntrack() (*ctTable, error) {
	f, err := os.Open(b.conntrack)
	if err != nil {
		// Reported once, not at every collection while it lasts.
		if old := b.unreadable; old != err.Error() {
			b.unreadable = err.Error()
			return nil, fmt.Errorf("backends behind Services: %w (named again when it is readable)", err)
		}
		return nil, nil
	}
	defer f.Close()
	b.unreadable = ""
	b.mu.Lock()
	services := maps.Clone(b.services[0].have)
	b.mu.Unlock()
	t, err := parseConntrack(f, services)
	if err != nil {
		err = fmt.Errorf("backends behind Services: %s: %w", b.conntrack, err)
	}
	return t, err
}

func addEdgeValue(dst, src *l7.EdgeValue) {
	dst.Count += src.Count
	dst.Failed += src.Failed
	dst.Latency.Add(&src.Latency)
}

func addTCPVal(dst, src *tcpVal) {
	dst.conns += src.conns
	dst.sent += src.sent
	dst.received += src.received
	dst.rtt.Add(&src.rtt)
}
