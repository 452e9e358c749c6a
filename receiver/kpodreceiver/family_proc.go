package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/proc"
)

var procFamily = familyInfo{
	name: "proc", bpf: true, profiles: comprehensiveOnly, spec: proc.Spec,
	metrics: []string{"kpod.proc.forks", "kpod.proc.execs", "kpod.proc.exits"},
	newFn: adapt(func(*env) (source[proc.Stats], error) { return proc.Start() },
		records[proc.Stats]{container: recordProc}),
}

func recordProc(r *recorder, c *podid.Container, vals map[uint64]proc.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*proc.Stats).Add)
	r.mb.RecordKpodProcForksDataPoint(r.now, int64(v.Forks))
	r.mb.RecordKpodProcExecsDataPoint(r.now, int64(v.Execs))
	r.mb.RecordKpodProcExitsDataPoint(r.now, int64(v.Exits))
}
