package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/cpu"
	"github.com/kpod-project/kpod/internal/podid"
)

var cpuFamily = familyInfo{
	name: "cpu", bpf: true, profiles: allProfiles, spec: cpu.Spec,
	metrics: []string{"kpod.cpu.context.switches", "kpod.cpu.runqueue.latency"},
	newFn:   adapt(openCPU, records[cpu.Stats]{container: recordCPU}),
}

// openCPU reads run-queue waits only when the run-queue histogram is on.
func openCPU(e *env) (source[cpu.Stats], error) {
	return cpu.Start(e.cfg.Histograms.KpodCPURunqueueLatency.Enabled)
}

func recordCPU(r *recorder, c *podid.Container, vals map[uint64]cpu.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*cpu.Stats).Add)
	r.mb.RecordKpodCPUContextSwitchesDataPoint(r.now, int64(v.Switches))
	if v.RunQueue.Count() > 0 {
		r.hb.RecordKpodCPURunqueueLatency(r.now, histPoint(&v.RunQueue))
	}
}
