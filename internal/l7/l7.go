// Package l7 is the "l7" family: requests of application protocols on pods' sockets (HTTP/1.x,
// Redis, DNS, ...), detected from the bytes of the read/write family of system calls and
// paired into counts by method and status and latency histograms (bpf/l7.bpf.c). Only the
// bounded values of protocols.go leave the kernel.
package l7

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/l7/names"
	"github.com/kpod-project/kpod/internal/syscall"
)

// Key is one series of requests: protocol, role, method and status, by name.
type Key struct {
	Protocol, Role, Method, Status string
}

// Value is a series' requests and their latency.
type Value struct {
	Count   uint64
	Latency hist.Hist
}

// LostKey is one series of messages that were not counted as requests.
type LostKey struct {
	Protocol, Role, Reason string
}

// Stats are one cgroup's requests, and the messages that could not be counted as requests.
type Stats struct {
	Requests map[Key]Value
	Lost     map[LostKey]uint64
}

// Add merges o into s.
func (s *Stats) Add(o *Stats) {
	s.init()
	for k, v := range o.Requests {
		x := s.Requests[k]
		x.Count += v.Count
		x.Latency.Add(&v.Latency)
		s.Requests[k] = x
	}
	for k, v := range o.Lost {
		s.Lost[k] += v
	}
}

func (s *Stats) init() {
	if s.Requests == nil {
		s.Requests = map[Key]Value{}
	}
	if s.Lost == nil {
		s.Lost = map[LostKey]uint64{}
	}
}

// calls are the system calls whose data is looked at; their numbers go into the object.
var calls = []string{"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg"}

// parsers are the tail-called programs, by protocol id (names.ProtoUnknown: the detector).
var parsers = map[uint32]string{
	names.ProtoUnknown:  "kpod_l7dt",
	names.ProtoHTTP:     "kpod_l7http",
	names.ProtoHTTP2:    "kpod_l7h2",
	names.ProtoGRPC:     "kpod_l7h2", // a connection whose requests are gRPC's
	names.ProtoRedis:    "kpod_l7redis",
	names.ProtoMySQL:    "kpod_l7mysql",
	names.ProtoPostgres: "kpod_l7pg",
	names.ProtoDNS:      "kpod_l7dns",
	names.ProtoKafka:    "kpod_l7kafka",
	names.ProtoMongo:    "kpod_l7mongo",
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	var enter, exit []string
	for _, c := range calls {
		enter, exit = append(enter, "sys_enter_"+c), append(exit, "sys_exit_"+c)
	}
	s := bpfload.Spec{
		Family: "l7",
		Load:   LoadL7,
		Hooks: []bpfload.Hook{
			{Tracepoints: enter, Group: "syscalls", Prog: "kpod_l7en"},
			{Tracepoints: exit, Group: "syscalls", Prog: "kpod_l7ex"},
		},
	}
	for id, p := range parsers {
		s.Tails = append(s.Tails, bpfload.Tail{Map: L7MapKpodL7Tail, Index: id, Prog: p})
	}
	return s
}

// Options change what the family records.
type Options struct {
	// Edges: also count every answered request per peer address and server port in
	// kpod_l7_edge, which the topology collector reads (ReadEdges).
	Edges bool
	// Backends (with Edges): count a client's requests to a Service address (SetServices)
	// per connection in kpod_l7_svcconn (ReadSvcConns), for the topology collector to name
	// the backend the node's NAT chose for each connection.
	Backends bool
}

// Start loads and attaches the family.
func Start(o Options) (*bpfload.Source[Stats], error) {
	// The stream parsers iterate with bpf_loop: say so rather than the verifier's words.
	if err := features.HaveProgramHelper(ebpf.TracePoint, asm.FnLoop); errors.Is(err, ebpf.ErrNotSupported) {
		return nil, errors.New("l7: the kernel has no bpf_loop helper (Linux 5.17+), which the stream parsers iterate with")
	}
	spec := Spec()
	spec.Prepare = func(cs *ebpf.CollectionSpec) error {
		for name, on := range map[string]bool{"l7_edges": o.Edges, "l7_backends": o.Edges && o.Backends} {
			if !on {
				continue
			}
			v, ok := cs.Variables[name]
			if !ok {
				return fmt.Errorf("no variable %s in the object", name)
			}
			if err := v.Set(uint8(1)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		for _, c := range calls {
			nr, ok := syscall.Number(c)
			if !ok {
				return fmt.Errorf("no system call %s on %s", c, syscall.Arch)
			}
			v, ok := cs.Variables["nr_"+c]
			if !ok {
				return fmt.Errorf("no variable nr_%s in the object", c)
			}
			if err := v.Set(nr); err != nil {
				return fmt.Errorf("nr_%s: %w", c, err)
			}
		}
		m, ok := cs.Maps[L7MapKpodL7Names]
		if !ok {
			return fmt.Errorf("no map %s in the object", L7MapKpodL7Names)
		}
		m.Contents = nameEntries()
		return nil
	}
	return bpfload.Open(spec, read)
}

func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[L7L7Key, L7L7Val](c, L7MapKpodL7, live)
	out := map[uint64]Stats{}
	for k, v := range raw {
		proto := int(k.Proto)
		if proto >= len(names.Protocols) || names.Protocols[proto] == "" || int(k.Role) >= len(names.Roles) || names.Roles[k.Role] == "" {
			continue // not a value the BPF side records
		}
		s := out[k.Cgid]
		s.init()
		out[k.Cgid] = s
		if k.Method == names.Lost {
			if r, ok := names.LostReasons[k.Status]; ok {
				s.Lost[LostKey{Protocol: names.Protocols[proto], Role: names.Roles[k.Role], Reason: r}] += v.Count
			}
			continue
		}
		key := Key{Protocol: names.Protocols[proto], Role: names.Roles[k.Role], Method: names.MethodName(proto, k.Method), Status: names.StatusName(proto, k.Status)}
		x := s.Requests[key]
		x.Count += v.Count
		h := hist.Decode(v.Lat.SumNs, v.Lat.Slots)
		x.Latency.Add(&h)
		s.Requests[key] = x
	}
	return out, err
}

// nameEntries are the kernel's method names (kpod_l7_names): each protocol's names, packed
// as the BPF side packs the bytes it reads (upper-cased where the protocol ignores case).
func nameEntries() []ebpf.MapKV {
	var kvs []ebpf.MapKV
	add := func(proto int, n string, id int) {
		if id == 0 || len(n) > 16 {
			return
		}
		k := L7L7NameKey{Proto: uint8(proto), Len: uint8(len(n))}
		var w [16]byte
		copy(w[:], n)
		k.W[0], k.W[1] = binary.LittleEndian.Uint64(w[:8]), binary.LittleEndian.Uint64(w[8:])
		kvs = append(kvs, ebpf.MapKV{Key: k, Value: uint16(id)})
	}
	for proto, ms := range names.Methods {
		if names.Numeric(proto) {
			continue
		}
		for id, n := range ms {
			add(proto, n, id)
		}
		for alias, n := range names.Aliases[proto] {
			add(proto, alias, slices.Index(ms, n))
		}
	}
	return kvs
}

// EdgeKey is one edge of the service topology as one cgroup saw it: the requests it made to
// (client) or answered from (server) one peer address on one server port.
type EdgeKey struct {
	Cgroup   uint64
	Peer     netip.Addr // IPv4 unmapped; the zero Addr when the peer was unknown
	Port     uint16     // the server's port (the peer's for a client, the cgroup's own for a server)
	Protocol string
	Role     string // client or server
}

// EdgeValue are an edge's answered requests, the failed ones among them (HTTP 4xx and 5xx,
// an error status of the other protocols) and their latency.
type EdgeValue struct {
	Count, Failed uint64
	Latency       hist.Hist
}

// ReadEdges reads kpod_l7_edge of a family started with Options.Edges; entries of cgroups
// no longer in live are deleted like those of kpod_l7.
func ReadEdges(c *bpfload.Collector, live map[uint64]bool) (map[EdgeKey]EdgeValue, error) {
	raw, err := bpfload.Read[L7L7EdgeKey, L7L7EdgeVal](c, L7MapKpodL7Edge, live)
	out := make(map[EdgeKey]EdgeValue, len(raw))
	for k, v := range raw {
		proto := int(k.Proto)
		if proto >= len(names.Protocols) || names.Protocols[proto] == "" || int(k.Role) >= len(names.Roles) || names.Roles[k.Role] == "" {
			continue
		}
		key := EdgeKey{Cgroup: k.Cgid, Peer: PeerAddr(k.Addr), Port: k.Port, Protocol: names.Protocols[proto], Role: names.Roles[k.Role]}
		x := out[key]
		x.Count += v.Count
		x.Failed += v.Failed
		h := hist.Decode(v.Lat.SumNs, v.Lat.Slots)
		x.Latency.Add(&h)
		out[key] = x
	}
	return out, err
}

// SvcConnKey is one client connection (or UDP socket) of a cgroup to a Service address.
type SvcConnKey struct {
	Cgroup      uint64
	Local       netip.Addr // the zero Addr when the socket is not bound to one
	Service     netip.Addr
	LocalPort   uint16
	ServicePort uint16
	Protocol    string
	UDP         bool
}

// SvcConn is one entry of kpod_l7_svcconn: a connection's requests in one generation.
type SvcConn struct {
	Key   SvcConnKey
	Gen   uint8
	Value EdgeValue
	// Kernel is the entry's key in the map, for DeleteSvcConns.
	Kernel L7L7SvcconnKey
}

// ReadSvcConns reads kpod_l7_svcconn of a family started with Options.Backends; entries of
// cgroups no longer in live are deleted like those of kpod_l7.
func ReadSvcConns(c *bpfload.Collector, live map[uint64]bool) ([]SvcConn, error) {
	raw, err := bpfload.Read[L7L7SvcconnKey, L7L7EdgeVal](c, L7MapKpodL7Svcconn, live)
	out := make([]SvcConn, 0, len(raw))
	for k, v := range raw {
		proto := int(k.Proto)
		if proto >= len(names.Protocols) || names.Protocols[proto] == "" {
			continue
		}
		key := SvcConnKey{Cgroup: k.Cgid, Local: PeerAddr(k.Laddr), Service: PeerAddr(k.Raddr), LocalPort: k.Lport,
			ServicePort: k.Rport, Protocol: names.Protocols[proto], UDP: k.Udp != 0}
		out = append(out, SvcConn{Key: key, Gen: k.Gen, Value: EdgeValue{Count: v.Count, Failed: v.Failed, Latency: hist.Decode(v.Lat.SumNs, v.Lat.Slots)}, Kernel: k})
	}
	return out, err
}

// DeleteSvcConn removes an entry of kpod_l7_svcconn (one the topology collector has folded
// into its totals). An entry that is already gone is fine.
func DeleteSvcConn(c *bpfload.Collector, k L7L7SvcconnKey) error {
	m, ok := c.Obj.Maps[L7MapKpodL7Svcconn]
	if !ok {
		return fmt.Errorf("no map %s in the object", L7MapKpodL7Svcconn)
	}
	return bpfload.DeleteKeys(m, []L7L7SvcconnKey{k})
}

// PeerAddr turns a kernel address (IPv4 mapped into IPv6) into an address; all zeros is the
// zero Addr (unknown).
func PeerAddr(b [16]uint8) netip.Addr {
	if b == [16]uint8{} {
		return netip.Addr{}
	}
	return netip.AddrFrom16(b).Unmap()
}
