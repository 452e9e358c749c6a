// Package tcpdrop is the "tcpdrop" family: dropped TCP packets per cgroup and drop reason,
// charged to the socket's cgroup (bpf/tcpdrop.bpf.c). Drops no pod owns — packets without a
// socket (a segment for a closed port, a drop before the socket lookup, a forwarded packet),
// of TIME_WAIT minisockets, and of kernel sockets (a network namespace's TCP control socket,
// which sends RSTs and ACKs for no process) — are counted under bpfload.NodeID.
package tcpdrop

import (
	"github.com/kpod-project/kpod/internal/bpfload"
)

// Stats are one cgroup's dropped packets by drop reason (see ReasonNames).
type Stats map[string]uint64

// Add merges o into s and returns s.
func (s Stats) Add(o Stats) Stats {
	if s == nil {
		s = Stats{}
	}
	for r, n := range o {
		s[r] += n
	}
	return s
}

// Spec is the family's BPF object.
func Spec() bpfload.Spec {
	return bpfload.Spec{
		Family: "tcpdrop",
		Load:   LoadTcpdrop,
		Hooks:  []bpfload.Hook{{Tracepoint: "kfree_skb", Group: "skb", Prog: "kpod_kfree"}},
	}
}

// Start loads and attaches the family, after reading the names of the drop reasons from
// the kernel's BTF.
func Start() (*bpfload.Source[Stats], error) {
	reasons, err := KernelReasonNames()
	if err != nil {
		return nil, err
	}
	return bpfload.Open(Spec(), func(c *bpfload.Collector, live map[uint64]bool) (map[uint64]Stats, error) {
		// the drops per cgroup id (bpfload.NodeID for the node) and reason
		raw, err := bpfload.Read[TcpdropDropKey, uint64](c, TcpdropMapKpodTdrop, live)
		out := map[uint64]Stats{}
		for k, n := range raw {
			if out[k.Cgid] == nil {
				out[k.Cgid] = Stats{}
			}
			out[k.Cgid][ReasonName(reasons, k.Reason)] += n
		}
		return out, err
	})
}
