package topology

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/l7"
)

// The backend behind a Service. A client's socket knows only the Service's address; the
// node's NAT (kube-proxy) chose a backend for the connection and its conntrack entry says
// which. The l7 family counts a client's requests to a Service address per connection and
// generation (kpod_l7_svcconn, kpod_l7_gen); each collection names the backend of connections
// it has not seen yet from the node's conntrack table, folds the entries of the generation it
// retired at the collection before (no program has written them since) into totals kept here,
// deletes them, and retires the current generation. The kernel map so holds the connections
// that had requests in the last two intervals, and nothing is deleted while a program may
// still add to it.

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

// svcConn is what kpod knows of a connection to a Service while it has entries in the map.
type svcConn struct {
	backend netip.Addr // the zero Addr until known
	lookups int
}

// serviceWatcher is a Peers that tells when Services come and go (kube.Peers), so that a new
// Service's address is in the kernel's map before its first connection, not at the next
// collection.
type serviceWatcher interface {
	WatchServices(set func(addrs []netip.Addr, on bool)) error
}

// backends keeps the connections to Services and their backends across collections.
type backends struct {
	conntrack string // the node's /proc/<pid>/net/nf_conntrack
	mu        sync.Mutex
	services  map[netip.Addr]bool // what kpod_l7_svc holds (under mu, as the map's writes)
	conns     map[l7.SvcConnKey]*svcConn
	folded    map[backendKey]l7.EdgeValue
	// gen is the generation programs write in; retired the one before, once flipped.
	gen     uint8
	flipped bool
	// unreadable is why the conntrack table could not be read the last time ("" if it was).
	unreadable string
}

// startBackends writes the Service addresses of peers into the l7 object and keeps them
// current: at each collection, and as the cluster's Services change where peers tells.
func startBackends(c *bpfload.Collector, peers Peers, conntrack string) (*backends, error) {
	b := &backends{conntrack: conntrack, conns: map[l7.SvcConnKey]*svcConn{}, folded: map[backendKey]l7.EdgeValue{}}
	if err := b.syncServices(c, peers); err != nil {
		return nil, err
	}
	w, ok := peers.(serviceWatcher)
	if !ok {
		return b, nil
	}
	return b, w.WatchServices(func(addrs []netip.Addr, on bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		want := maps.Clone(b.services)
		if want == nil {
			want = map[netip.Addr]bool{}
		}
		for _, a := range addrs {
			if on {
				want[a] = true
			} else {
				delete(want, a)
			}
		}
		// An error leaves the address as it was; the next collection's sync tries again.
		b.services, _ = l7.SetServices(c, b.services, want)
	})
}

// syncServices makes the kernel's Service addresses those peers knows now.
func (b *backends) syncServices(c *bpfload.Collector, peers Peers) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	b.services, err = l7.SetServices(c, b.services, peers.ServiceIPs())
	return err
}

// collect updates the kernel's Service addresses from peers, reads the connections to them
// and returns every cgroup's requests to Services by backend, cumulative since kpod started.
func (b *backends) collect(c *bpfload.Collector, peers Peers, live map[uint64]bool) (map[backendKey]l7.EdgeValue, error) {
	var errs []error
	if err := b.syncServices(c, peers); err != nil {
		errs = append(errs, err)
	}
	entries, err := l7.ReadSvcConns(c, live)
	if err != nil {
		errs = append(errs, err)
	}
	var table *ctTable
	seen := map[l7.SvcConnKey]bool{}
	out := map[backendKey]l7.EdgeValue{}
	for _, e := range entries {
		seen[e.Key] = true
		sc := b.conns[e.Key]
		if sc == nil {
			sc = &svcConn{}
			b.conns[e.Key] = sc
		}
		if !sc.backend.IsValid() && sc.lookups < lookups {
			if table == nil {
				if table, err = b.readConntrack(); err != nil {
					errs = append(errs, err)
				}
				if table == nil {
					table = &ctTable{} // unreadable: nothing to look up in this collection
				}
			}
			if table.exact != nil {
				sc.lookups++
				k := e.Key
				sc.backend, _ = table.lookup(ctTuple{udp: k.UDP, local: k.Local, service: k.Service, localPort: k.LocalPort, servicePort: k.ServicePort})
			}
		}
		fk := backendKey{cgid: e.Key.Cgroup, service: e.Key.Service, servicePort: e.Key.ServicePort, protocol: e.Key.Protocol, backend: sc.backend}
		dst := out
		if b.flipped && e.Gen != b.gen {
			// Retired at the last collection: final. Folded only once gone from the map, so
			// that it is never counted twice.
			if err := l7.DeleteSvcConn(c, e.Kernel); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l7.L7MapKpodL7Svcconn, err))
			} else {
				dst = b.folded
			}
		}
		x := dst[fk]
		add(&x, &e.Value)
		dst[fk] = x
	}
	// Connections without requests in the last two intervals (or of removed cgroups): a
	// request on one later looks its backend up again.
	maps.DeleteFunc(b.conns, func(k l7.SvcConnKey, _ *svcConn) bool { return !seen[k] })
	if err := l7.SetGen(c, b.gen^1); err != nil {
		errs = append(errs, err)
	} else {
		b.gen, b.flipped = b.gen^1, true
	}
	for k, v := range b.folded {
		if !live[k.cgid] {
			delete(b.folded, k)
			continue
		}
		x := out[k]
		add(&x, &v)
		out[k] = x
	}
	return out, errors.Join(errs...)
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
	services := maps.Clone(b.services)
	b.mu.Unlock()
	t, err := parseConntrack(f, services)
	if err != nil {
		err = fmt.Errorf("backends behind Services: %s: %w", b.conntrack, err)
	}
	return t, err
}

func add(dst, src *l7.EdgeValue) {
	dst.Count += src.Count
	dst.Failed += src.Failed
	dst.Latency.Add(&src.Latency)
}
