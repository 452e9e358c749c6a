// Package tcp is the "tcp" family: bytes, connections, retransmitted segments and smoothed
// RTT per cgroup (bpf/tcp.bpf.c). Drops are the separate "tcpdrop" family (internal/tcpdrop):
// kfree_skb fires for every dropped packet of every protocol on the node, so a node that only
// wants TCP counters should not pay for it.
//
// The family reads the counters the kernel keeps per socket (PathSocket, Linux 5.11+): live
// sockets through a BPF iterator at each collection, closed ones from what a program added
// to their cgroup's entry when they closed. Where that cannot load it counts per segment and
// system call (PathSegment, Linux 6.3+).
package tcp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
)

// Stats are one cgroup's cumulative TCP counters.
type Stats struct {
	// BytesSent: per socket, payload bytes transmitted at least once (bytes_sent −
	// bytes_retrans of the sockets); per segment, bytes returned by send calls.
	BytesSent uint64
	// BytesReceived: per socket, payload bytes received in order (bytes_received without a
	// FIN); per segment, bytes returned by recv calls (MSG_PEEK excluded).
	BytesReceived uint64
	ConnsActive   uint64 // connect()s that reached ESTABLISHED, charged to the socket's cgroup
	ConnsPassive  uint64 // connections accepted by a listener of the cgroup
	Retransmits   uint64 // segments retransmitted (total_retrans; the kernel's RetransSegs)
	// RTT: per socket, each live socket's smoothed RTT once per collection and once more
	// when it closes; per segment, on every ACK (tcp_probe).
	RTT hist.Hist
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.ConnsActive += o.ConnsActive
	s.ConnsPassive += o.ConnsPassive
	s.Retransmits += o.Retransmits
	s.RTT.Add(&o.RTT)
}

// Path says how the family counts.
type Path string

const (
	PathSocket  Path = "socket"  // counters of struct tcp_sock, read per socket
	PathSegment Path = "segment" // per-segment and per-system-call tracepoints
)

// SocketSpec is the per-socket path's BPF object.
func SocketSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "tcp",
		Load:   LoadTcp,
		Hooks: []bpfload.Hook{
			{Tracepoint: "inet_sock_set_state", Group: "sock", Prog: "kpod_tsk", BTFOnly: true},
			{Iter: "tcp", Prog: "kpod_titer"},
			// The walk of every known socket at once (Linux 5.13+: bpf_for_each_map_elem).
			// Without it the iterator above runs in every pod's namespace at each collection.
			{Run: true, Prog: "kpod_twalk", Optional: true},
		},
	}
}

// SegmentSpec is the per-segment path's BPF object.
func SegmentSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "tcp",
		Load:   LoadTcp,
		Hooks: []bpfload.Hook{
			{Tracepoint: "sock_send_length", Group: "sock", Prog: "kpod_tsend"},
			{Tracepoint: "sock_recv_length", Group: "sock", Prog: "kpod_trecv"},
			{Tracepoint: "inet_sock_set_state", Group: "sock", Prog: "kpod_tstate"},
			{Tracepoint: "tcp_retransmit_skb", Group: "tcp", Prog: "kpod_tretx"},
			{Tracepoint: "tcp_probe", Group: "tcp", Prog: "kpod_trtt"},
		},
	}
}

// Spec lists every hook the family may load (both paths), for tests that check what is
// loaded.
func Spec() bpfload.Spec {
	s := SocketSpec()
	s.Hooks = append(s.Hooks, SegmentSpec().Hooks...)
	return s
}

// Collector reads the family.
type Collector struct {
	*bpfload.Collector
	Path Path

	procRoot string
	procs    *collector.NSProcs // a process of each pod, to reach the pod's network namespace

	mu    sync.Mutex
	rtt   map[uint64]hist.Hist // per socket path: RTT samples of live sockets, per cgroup
	sweep bpfload.Sweeper
	gen   uint64        // of the last walk (kpod_tlive)
	met   collector.Met // with the walk: the namespaces the iterator has run in (nsTarget.key)
	perNS bool          // tests: the iterator in every namespace at each collection, as without the walk
}

// Start loads the per-socket path, or the per-segment path where that cannot load. The
// per-socket path runs its iterator in the network namespaces of the pods, found through
// their processes in procRoot (the host's /proc) and their cgroups below v2Root; entering a
// namespace (setns) needs CAP_SYS_ADMIN. Without it the per-segment path, which enters none,
// comes first, and the per-socket path is the fallback (on kernels without the per-segment
// tracepoints: it then reads the host's namespace and says, for each pod's, that it needs
// CAP_SYS_ADMIN).
func Start(procRoot, v2Root string) (*Collector, error) {
	order := []Path{PathSocket, PathSegment}
	if !collector.CanEnterNamespaces() {
		order = []Path{PathSegment, PathSocket}
	}
	c, err := startPath(order[0], procRoot, v2Root)
	if err == nil {
		return c, nil
	}
	c, err2 := startPath(order[1], procRoot, v2Root)
	if err2 != nil {
		return nil, fmt.Errorf("%s: %v; %s: %w", pathName(order[0]), err, pathName(order[1]), err2)
	}
	return c, nil
}

func pathName(p Path) string {
	if p == PathSegment {
		return "per segment"
	}
	return "per socket"
}

func startPath(p Path, procRoot, v2Root string) (*Collector, error) {
	spec := SocketSpec()
	if p == PathSegment {
		spec = SegmentSpec()
	}
	b, err := bpfload.Start(spec)
	if err != nil {
		return nil, err
	}
	return &Collector{Collector: b, Path: p, procRoot: procRoot, rtt: map[uint64]hist.Hist{},
		procs: &collector.NSProcs{ProcRoot: procRoot, V2Root: v2Root, Kind: "net"}}, nil
}

// Close forgets the pods' processes and unloads the family.
func (c *Collector) Close() error {
	c.procs.Close()
	return c.Collector.Close()
}

// Collect returns the counters of every cgroup that has any.
func (c *Collector) Collect(ctx context.Context, x *podid.Index) (map[uint64]Stats, error) {
	// kpod_tcp first: see readSockets.
	raw, err := bpfload.Read[uint64, TcpTcpVal](c.Collector, TcpMapKpodTcp, x.Live)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{
			BytesSent: v.BytesSent, BytesReceived: v.BytesReceived,
			ConnsActive: v.ConnsActive, ConnsPassive: v.ConnsPassive,
			Retransmits: v.Retransmits,
			RTT:         hist.Decode(v.Rtt.SumNs, v.Rtt.Slots),
		}
	}
	if c.Path == PathSegment {
		return out, nil
	}
	return out, c.addSockets(ctx, x, out)
}

// addSockets adds the live sockets' counters to what closed sockets left in kpod_tcp, read
// before: a socket that closes meanwhile is then counted once (the BPF side marks it closed
// before adding its counters, and the walk and the iterator skip marked sockets) or, if it
// closes between the two reads, only in the next collection — never twice.
//
// The live sockets come from one walk of the sockets kpod knows (every namespace at once)
// where the kernel loads it; the TCP iterator then runs once in each namespace, the first
// time it is seen, to add the sockets established before kpod started (its records are not
// used: the walk after it reads them). Without the walk the iterator runs in every namespace
// at each collection, and each run walks the established hash that all namespaces share.
func (c *Collector) addSockets(ctx context.Context, x *podid.Index, out map[uint64]Stats) error {
	var errs []error
	defer c.procs.Begin()()
	walk := c.Obj.Has("kpod_twalk") && !c.perNS
	seen := map[uint64]bool{}
	live := map[uint64]*liveSum{}
	defer c.met.Done()
	// With the walk a pod is met once (its namespace's older sockets are then known; a pod's
	// namespace does not change, and a new sandbox's sockets are all established while kpod
	// runs): not even its process is looked up again.
	met := func(key uint64) bool {
		if walk && c.met.Before(key) {
			c.met.Add(key)
			return true
		}
		return false
	}
	for _, ns := range c.namespaces(x, seen, met) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		recs, err := c.iterate(ns.path)
		if ns.pod != nil && errors.Is(err, fs.ErrNotExist) {
			// The process found in the pod exited since: another one, once. None left (or
			// it exits too), the pod is going away, and its sockets with its processes.
			recs, err = nil, nil
			if pid, ino, ok := c.procs.Find(ns.pod.CgroupID, ns.rels); ok && (ino == ns.ino || !seen[ino]) {
				seen[ino] = true
				if recs, err = c.iterate(c.procs.NSPath(pid)); errors.Is(err, fs.ErrNotExist) {
					recs, err = nil, nil
				}
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.met.Add(ns.key())
		if !walk {
			for _, r := range recs {
				l := sumOf(live, r.Cgid)
				l.sent += r.Sent
				l.received += r.Received
				l.retrans += r.Retrans
				if r.SrttNs > 0 {
					l.rtt.Record(r.SrttNs)
				}
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if walk {
		var err error
		if live, err = c.walk(); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	for id, l := range live {
		s := out[id]
		s.BytesSent += l.sent
		s.BytesReceived += l.received
		s.Retransmits += l.retrans
		out[id] = s
		h := c.rtt[id]
		h.Add(&l.rtt)
		c.rtt[id] = h
	}
	ids := make([]uint64, 0, len(c.rtt))
	for id, h := range c.rtt {
		s := out[id]
		s.RTT.Add(&h)
		out[id] = s
		ids = append(ids, id)
	}
	for _, id := range c.sweep.Dead(ids, x.Live) {
		delete(c.rtt, id)
	}
	return errors.Join(errs...)
}

// liveSum is what a cgroup's live sockets hold: their counters since kpod first saw them and
// one RTT sample each.
type liveSum struct {
	sent, received, retrans uint64
	rtt                     hist.Hist
}

func sumOf(m map[uint64]*liveSum, id uint64) *liveSum {
	l := m[id]
	if l == nil {
		l = &liveSum{}
		m[id] = l
	}
	return l
}

// walk runs kpod_twalk, which sums the live sockets kpod knows per cgroup into kpod_tlive
// under a new generation, and reads those sums.
func (c *Collector) walk() (map[uint64]*liveSum, error) {
	c.gen++
	out := map[uint64]*liveSum{}
	err := bpfload.RunWalk(c.Obj, "kpod_twalk", c.gen, TcpMapKpodTsocks, TcpMapKpodTlive,
		func(v *TcpTcpLive) uint64 { return v.Gen },
		func(id *uint64, v *TcpTcpLive) {
			out[*id] = &liveSum{sent: v.Sent, received: v.Received, retrans: v.Retrans, rtt: hist.Decode(v.Rtt.SumNs, v.Rtt.Slots)}
		})
	return out, err
}

// nsTarget is a network namespace to iterate: the host's (pod nil) or the one a process of
// pod was found in (rels are the pod's cgroups, sandbox first, to find another process).
type nsTarget struct {
	path string
	ino  uint64
	pod  *podid.Pod
	rels []string
}

// key names the namespace in Collector.met: its pod's cgroup id, 0 for the host's (no cgroup
// has id 0).
func (ns *nsTarget) key() uint64 {
	if ns.pod == nil {
		return 0
	}
	return ns.pod.CgroupID
}

// namespaces are the network namespace files to iterate: the host's and each pod's (the
// sandbox holds it; a hostNetwork pod's is the host's), once each (seen: their inodes), but
// none that skip (given the namespace's key) leaves out.
func (c *Collector) namespaces(x *podid.Index, seen map[uint64]bool, skip func(key uint64) bool) []nsTarget {
	var out []nsTarget
	if path, ino, err := collector.HostNamespacePath(c.procRoot, "net"); err == nil {
		seen[ino] = true
		if !skip(0) {
			out = append(out, nsTarget{path: path, ino: ino})
		}
	}
	for _, p := range x.Pods {
		if skip(p.CgroupID) {
			continue
		}
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
			out = append(out, nsTarget{path: c.procs.NSPath(pid), ino: ino, pod: p, rels: rels})
		}
	}
	return out
}

// beforeIterate, if set (by tests), runs before each iteration with the namespace's path.
var beforeIterate func(nsPath string)

// iterate runs the socket iterator in the network namespace at nsPath (it takes the namespace
// of the thread that opens it): one record per established socket there.
func (c *Collector) iterate(nsPath string) (recs []TcpTcpRec, err error) {
	if beforeIterate != nil {
		beforeIterate(nsPath)
	}
	err = collector.InNetNS(nsPath, func() (err error) {
		recs, err = bpfload.RunIter[TcpTcpRec](c.Obj, "kpod_titer", "the socket iterator")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", nsPath, err)
	}
	return recs, nil
}
