package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/memory"
	"github.com/kpod-project/kpod/internal/podid"
)

var memoryFamily = familyInfo{
	name: "memory", profiles: allProfiles,
	metrics: []string{"kpod.mem.cgroup.usage.bytes", "kpod.mem.cgroup.peak.bytes", "kpod.mem.cgroup.cache.bytes", "kpod.mem.cgroup.swap.bytes"},
	newFn: adapt(func(e *env) (source[memory.Stats], error) { return memory.New(e.layout, e.memstat) },
		records[memory.Stats]{container: recordMemory}),
}

func recordMemory(r *recorder, c *podid.Container, vals map[uint64]memory.Stats) {
	v, ok := vals[c.CgroupID]
	if !ok {
		return
	}
	r.mb.RecordKpodMemCgroupUsageBytesDataPoint(r.now, int64(v.Usage))
	r.mb.RecordKpodMemCgroupCacheBytesDataPoint(r.now, int64(v.Cache))
	if v.HasPeak {
		r.mb.RecordKpodMemCgroupPeakBytesDataPoint(r.now, int64(v.Peak))
	}
	if v.HasSwap {
		r.mb.RecordKpodMemCgroupSwapBytesDataPoint(r.now, int64(v.Swap))
	}
}
