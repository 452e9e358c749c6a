package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/pagefaults"
	"github.com/kpod-project/kpod/internal/podid"
)

var pagefaultsFamily = familyInfo{
	name: "pagefaults", profiles: standardUp,
	metrics: []string{"kpod.mem.major.page.faults"},
	newFn: adapt(func(e *env) (source[uint64], error) { return pagefaults.New(e.layout, e.memstat) },
		records[uint64]{container: recordPagefaults}),
}

func recordPagefaults(r *recorder, c *podid.Container, vals map[uint64]uint64) {
	if n, ok := vals[c.CgroupID]; ok {
		r.mb.RecordKpodMemMajorPageFaultsDataPoint(r.now, int64(n))
	}
}
