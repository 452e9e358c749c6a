package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/podid"
)

var cpuFamily = familyInfo{
	name: "cpu", bpf: true, profiles: allProfiles, spec: cpu.Spec,
	metrics: []string{"kpod.cpu.context.switches", "kpod.cpu.runqueue.latency"},
	newFn: adapt(func(*env) (source[cpu.Stats], error) { return cpu.Start() },
		records[cpu.Stats]{container: recordCPU}),
}

func recordCPU(r *recorder, c *podid.Container, vals map[uint64]cpu.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*cpu.Stats).Add)
	r.mb.RecordKpodCPUContextSwitchesDataPoint(r.now, int64(v.Switches))
	if v.RunQueue.Count() > 0 {
		r.hb.RecordKpodCPURunqueueLatency(r.now, histPoint(&v.RunQueue))
	}
}
