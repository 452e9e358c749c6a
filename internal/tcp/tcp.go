// Package tcp holds two families: "tcp" (bytes, connections, retransmitted segments and
// smoothed RTT per cgroup, bpf/tcp.bpf.c) and "tcpdrop" (dropped TCP packets per cgroup and
// drop reason, bpf/tcpdrop.bpf.c). They are separate BPF objects because the catalog
// switches them on separately, and because kfree_skb fires for every dropped packet of every
// protocol on the node: a node that only wants TCP counters should not pay for it, and a
// kernel whose kfree_skb cannot be traced should lose the drops, not the whole of TCP.
package tcp

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// NodeCgroup is the cgroup id under which the tcpdrop family reports TCP drops that no pod
// owns: packets without a socket (a segment for a closed port, a drop before the socket
// lookup, a forwarded packet), of TIME_WAIT minisockets, and of kernel sockets (a network
// namespace's TCP control socket, which sends RSTs and ACKs for no process). Collect never
// sweeps it.
const NodeCgroup = 0

// Stats are one cgroup's cumulative TCP counters. A "tcp" collector fills everything but
// Drops; a "tcpdrop" collector fills only Drops.
type Stats struct {
	BytesSent     uint64 // returned by send/write calls on TCP sockets, charged to the caller
	BytesReceived uint64 // returned by recv/read calls (MSG_PEEK excluded), charged to the caller
	ConnsActive   uint64 // connect()s that reached ESTABLISHED, charged to the socket's cgroup
	ConnsPassive  uint64 // connections accepted by a listener of the cgroup
	Retransmits   uint64 // segments retransmitted (the kernel's RetransSegs, sent ones only)
	RTT           hist.Hist
	Drops         map[string]uint64 // dropped packets by drop reason (see ReasonNames)
}

// Add adds o into s.
func (s *Stats) Add(o *Stats) {
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.ConnsActive += o.ConnsActive
	s.ConnsPassive += o.ConnsPassive
	s.Retransmits += o.Retransmits
	s.RTT.Add(&o.RTT)
	for r, n := range o.Drops {
		if s.Drops == nil {
			s.Drops = map[string]uint64{}
		}
		s.Drops[r] += n
	}
}

// Spec is the "tcp" family's BPF object.
func Spec() bpfload.Spec {
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

// DropSpec is the "tcpdrop" family's BPF object.
func DropSpec() bpfload.Spec {
	return bpfload.Spec{
		Family: "tcpdrop",
		Load:   LoadTcpdrop,
		Hooks:  []bpfload.Hook{{Tracepoint: "kfree_skb", Group: "skb", Prog: "kpod_kfree"}},
	}
}

// Collector reads one of the two families' maps.
type Collector struct {
	Obj     *bpfload.Object
	reasons map[uint32]string // tcpdrop only
	sweep   bpfload.Sweeper
}

// Start loads and attaches the "tcp" family.
func Start() (*Collector, error) {
	obj, err := bpfload.Load(Spec())
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj}, nil
}

// StartDrops loads and attaches the "tcpdrop" family, after reading the names of the drop
// reasons from the kernel's BTF.
func StartDrops() (*Collector, error) {
	reasons, err := KernelReasonNames()
	if err != nil {
		return nil, err
	}
	obj, err := bpfload.Load(DropSpec())
	if err != nil {
		return nil, err
	}
	return &Collector{Obj: obj, reasons: reasons}, nil
}

// Collect returns the cumulative counters of every cgroup that has any, and deletes the
// entries of cgroups that are gone (live: ids of the current cgroup tree). The node-level
// bucket (NodeCgroup) is never deleted.
func (c *Collector) Collect(live map[uint64]bool) (map[uint64]Stats, error) {
	if _, ok := c.Obj.Maps["kpod_tdrop"]; ok {
		return c.collectDrops(live)
	}
	m := c.Obj.Maps["kpod_tcp"]
	raw, err := bpfload.DumpPerCPU[uint64](m, func(dst, src *TcpTcpVal) {
		dst.BytesSent += src.BytesSent
		dst.BytesReceived += src.BytesReceived
		dst.ConnsActive += src.ConnsActive
		dst.ConnsPassive += src.ConnsPassive
		dst.Retransmits += src.Retransmits
		dst.Rtt.SumNs += src.Rtt.SumNs
		for i := range dst.Rtt.Slots {
			dst.Rtt.Slots[i] += src.Rtt.Slots[i]
		}
	})
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries("kpod_tcp", len(raw))
	out := make(map[uint64]Stats, len(raw))
	ids := make([]uint64, 0, len(raw))
	for id, v := range raw {
		out[id] = Stats{
			BytesSent: v.BytesSent, BytesReceived: v.BytesReceived,
			ConnsActive: v.ConnsActive, ConnsPassive: v.ConnsPassive,
			Retransmits: v.Retransmits,
			RTT:         hist.Hist{SumNs: v.Rtt.SumNs, Counts: v.Rtt.Slots},
		}
		ids = append(ids, id)
	}
	return out, bpfload.Delete(m, c.sweep.Dead(ids, live))
}

func (c *Collector) collectDrops(live map[uint64]bool) (map[uint64]Stats, error) {
	m := c.Obj.Maps["kpod_tdrop"]
	raw, err := bpfload.DumpPerCPU[TcpdropDropKey](m, func(dst, src *uint64) { *dst += *src })
	if err != nil {
		return nil, err
	}
	c.Obj.NoteEntries("kpod_tdrop", len(raw))
	out := map[uint64]Stats{}
	byCgroup := map[uint64][]TcpdropDropKey{}
	var ids []uint64
	for k, n := range raw {
		s, seen := out[k.Cgid]
		if !seen {
			s.Drops = map[string]uint64{}
			if k.Cgid != NodeCgroup {
				ids = append(ids, k.Cgid)
			}
		}
		s.Drops[ReasonName(c.reasons, k.Reason)] += n
		out[k.Cgid] = s
		byCgroup[k.Cgid] = append(byCgroup[k.Cgid], k)
	}
	var dead []TcpdropDropKey
	for _, id := range c.sweep.Dead(ids, live) {
		dead = append(dead, byCgroup[id]...)
	}
	return out, bpfload.Delete(m, dead)
}

// Close detaches the programs and frees the maps. It is safe on a collector that never started.
func (c *Collector) Close() error {
	if c == nil {
		return nil
	}
	return c.Obj.Close()
}
