// Package tcp is the "tcp" family: bytes, connections, retransmitted segments and smoothed
// RTT per cgroup (bpf/tcp.bpf.c). Drops are the separate "tcpdrop" family (internal/tcpdrop):
// kfree_skb fires for every dropped packet of every protocol on the node, so a node that only
// wants TCP counters should not pay for it.
package tcp

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hist"
)

// Stats are one cgroup's cumulative TCP counters.
type Stats struct {
	BytesSent     uint64 // returned by send/write calls on TCP sockets, charged to the caller
	BytesReceived uint64 // returned by recv/read calls (MSG_PEEK excluded), charged to the caller
	ConnsActive   uint64 // connect()s that reached ESTABLISHED, charged to the socket's cgroup
	ConnsPassive  uint64 // connections accepted by a listener of the cgroup
	Retransmits   uint64 // segments retransmitted (the kernel's RetransSegs, sent ones only)
	RTT           hist.Hist
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

// Spec is the family's BPF object.
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

// Start loads and attaches the family.
func Start() (*bpfload.Source[Stats], error) { return bpfload.Open(Spec(), read) }

// Collect returns the cumulative counters of every cgroup that has any.
func read(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
	raw, err := bpfload.Read[uint64, TcpTcpVal](c, TcpMapKpodTcp, live)
	out := make(map[uint64]Stats, len(raw))
	for id, v := range raw {
		out[id] = Stats{
			BytesSent: v.BytesSent, BytesReceived: v.BytesReceived,
			ConnsActive: v.ConnsActive, ConnsPassive: v.ConnsPassive,
			Retransmits: v.Retransmits,
			RTT:         hist.Decode(v.Rtt.SumNs, v.Rtt.Slots),
		}
	}
	return out, err
}
