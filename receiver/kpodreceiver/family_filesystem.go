package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/filesystem"
	"github.com/kpod-project/kpod/internal/podid"
)

var filesystemFamily = familyInfo{
	name: "filesystem", profiles: standardUp,
	metrics: []string{"kpod.fs.capacity.bytes", "kpod.fs.usage.bytes", "kpod.fs.available.bytes"},
	newFn: adapt(func(e *env) (source[filesystem.Stats], error) { return filesystem.New(e.procRoot, e.layout.V2), nil },
		records[filesystem.Stats]{container: recordFilesystem}),
}

func recordFilesystem(r *recorder, c *podid.Container, vals map[uint64]filesystem.Stats) {
	v := vals[c.CgroupID]
	for _, mp := range sortedKeys(v) {
		u := v[mp]
		r.mb.RecordKpodFsCapacityBytesDataPoint(r.now, int64(u.Capacity), mp)
		r.mb.RecordKpodFsUsageBytesDataPoint(r.now, int64(u.Used), mp)
		r.mb.RecordKpodFsAvailableBytesDataPoint(r.now, int64(u.Available), mp)
	}
}
