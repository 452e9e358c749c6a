package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/softirqs"
)

// softirqs also has node-level series: time taken from the idle task and kernel threads
// (ksoftirqd included).
var softirqsFamily = familyInfo{
	name: "softirqs", bpf: true, profiles: comprehensiveOnly, options: []string{"latency_sample"}, spec: softirqs.Spec,
	metrics: []string{"kpod.irq.sw.latency"},
	newFn: adapt(func(e *env) (source[softirqs.Stats], error) {
		return softirqs.Start(sampleOf(e.cfg.Collectors["softirqs"].LatencySample))
	},
		records[softirqs.Stats]{
			container: func(r *recorder, c *podid.Container, vals map[uint64]softirqs.Stats) {
				recordSoftirqs(r, mergeOver(vals, c.CgroupIDs, softirqs.Stats.Add))
			},
			node: func(r *recorder, vals map[uint64]softirqs.Stats) { recordSoftirqs(r, vals[bpfload.NodeID]) },
		}),
}

func recordSoftirqs(r *recorder, v softirqs.Stats) {
	for _, vec := range sortedKeys(v) {
		h := v[vec]
		r.hb.RecordKpodIrqSwLatency(r.now, histPoint(&h), vec)
	}
}
