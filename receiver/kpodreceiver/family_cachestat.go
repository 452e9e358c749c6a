package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/cachestat"
	"github.com/kpod-project/kpod/internal/podid"
)

// cachestat runs without kpod.mem.cache.accesses on kernels that refuse both fentry and
// kprobes (its collector's UnavailableMetrics says why).
var cachestatFamily = familyInfo{
	name: "cachestat", bpf: true, profiles: standardUp, spec: cachestat.Spec,
	metrics: []string{"kpod.mem.cache.accesses", "kpod.mem.cache.additions", "kpod.mem.cache.dirtied", "kpod.mem.cache.buf.dirtied"},
	newFn: adapt(func(*env) (source[cachestat.Stats], error) { return cachestat.Start() },
		records[cachestat.Stats]{container: recordCachestat}),
}

func recordCachestat(r *recorder, c *podid.Container, vals map[uint64]cachestat.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*cachestat.Stats).Add)
	r.mb.RecordKpodMemCacheAdditionsDataPoint(r.now, int64(v.Added))
	r.mb.RecordKpodMemCacheDirtiedDataPoint(r.now, int64(v.Dirtied))
	r.mb.RecordKpodMemCacheBufDirtiedDataPoint(r.now, int64(v.BuffersDirtied))
	if v.HasAccessed {
		r.mb.RecordKpodMemCacheAccessesDataPoint(r.now, int64(v.Accessed))
	}
}
