package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/tcpdrop"
)

// tcpdrop also has node-level series: drops no pod owns (packets without a socket, kernel
// sockets).
var tcpdropFamily = familyInfo{
	name: "tcpdrop", bpf: true, profiles: standardUp, spec: tcpdrop.Spec,
	metrics: []string{"kpod.net.tcp.drops"},
	newFn: adapt(func(*env) (source[tcpdrop.Stats], error) { return tcpdrop.Start() },
		records[tcpdrop.Stats]{
			container: func(r *recorder, c *podid.Container, vals map[uint64]tcpdrop.Stats) {
				recordTCPDrops(r, mergeOver(vals, c.CgroupIDs, tcpdrop.Stats.Add))
			},
			node: func(r *recorder, vals map[uint64]tcpdrop.Stats) { recordTCPDrops(r, vals[bpfload.NodeID]) },
		}),
}

func recordTCPDrops(r *recorder, v tcpdrop.Stats) {
	for _, reason := range sortedKeys(v) {
		r.mb.RecordKpodNetTCPDropsDataPoint(r.now, int64(v[reason]), reason)
	}
}
