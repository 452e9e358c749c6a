package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/biolatency"
	"github.com/kpod-project/kpod/internal/podid"
)

var biolatencyFamily = familyInfo{
	name: "biolatency", bpf: true, profiles: standardUp, spec: biolatency.Spec,
	metrics: []string{"kpod.disk.io.latency"},
	newFn: adapt(func(*env) (source[biolatency.Stats], error) { return biolatency.Start() },
		records[biolatency.Stats]{container: recordBiolatency}),
}

func recordBiolatency(r *recorder, c *podid.Container, vals map[uint64]biolatency.Stats) {
	v := mergeOver(vals, c.CgroupIDs, biolatency.Stats.Add)
	for _, dev := range sortedDevs(v) {
		h := v[dev]
		r.hb.RecordKpodDiskIoLatency(r.now, histPoint(&h), r.devices.Name(dev))
	}
}
