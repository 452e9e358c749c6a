package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/hardirqs"
	"github.com/kpod-project/kpod/internal/podid"
)

// hardirqs also has node-level series: time taken from the idle task and kernel threads.
var hardirqsFamily = familyInfo{
	name: "hardirqs", bpf: true, profiles: comprehensiveOnly, spec: hardirqs.Spec,
	metrics: []string{"kpod.irq.hw.count", "kpod.irq.hw.latency"},
	newFn: adapt(func(*env) (source[hardirqs.Stats], error) { return hardirqs.Start() },
		records[hardirqs.Stats]{
			container: func(r *recorder, c *podid.Container, vals map[uint64]hardirqs.Stats) {
				recordHardirqs(r, sumOver(vals, c.CgroupIDs, (*hardirqs.Stats).Add))
			},
			node: func(r *recorder, vals map[uint64]hardirqs.Stats) { recordHardirqs(r, vals[bpfload.NodeID]) },
		}),
}

func recordHardirqs(r *recorder, v hardirqs.Stats) {
	r.mb.RecordKpodIrqHwCountDataPoint(r.now, int64(v.Count))
	if v.Latency.Count() > 0 {
		r.hb.RecordKpodIrqHwLatency(r.now, histPoint(&v.Latency))
	}
}
