package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/oom"
	"github.com/kpod-project/kpod/internal/podid"
)

var oomFamily = familyInfo{
	name: "oom", bpf: true, profiles: allProfiles, spec: oom.Spec,
	metrics: []string{"kpod.mem.oom.kills"},
	newFn: adapt(func(*env) (source[uint64], error) { return oom.Start() },
		records[uint64]{container: recordOOM}),
}

func recordOOM(r *recorder, c *podid.Container, vals map[uint64]uint64) {
	n := sumOver(vals, c.CgroupIDs, func(d, s *uint64) { *d += *s })
	r.mb.RecordKpodMemOomKillsDataPoint(r.now, int64(n))
}
