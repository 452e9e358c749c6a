package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/iface"
	"github.com/kpod-project/kpod/internal/podid"
)

// iface is pod-level: one network namespace per pod, keyed by the pod cgroup's id.
var ifaceFamily = familyInfo{
	name: "iface", profiles: standardUp,
	metrics: []string{"kpod.net.iface.rx.bytes", "kpod.net.iface.tx.bytes", "kpod.net.iface.rx.packets", "kpod.net.iface.tx.packets",
		"kpod.net.iface.rx.errors", "kpod.net.iface.tx.errors", "kpod.net.iface.rx.drops", "kpod.net.iface.tx.drops"},
	newFn: adapt(func(e *env) (source[iface.Stats], error) { return iface.New(e.procRoot, e.layout.V2), nil },
		records[iface.Stats]{pod: recordIface}),
}

func recordIface(r *recorder, p *podid.Pod, vals map[uint64]iface.Stats) {
	v := vals[p.CgroupID]
	for _, name := range sortedKeys(v) {
		c := v[name]
		r.mb.RecordKpodNetIfaceRxBytesDataPoint(r.now, int64(c.RxBytes), name)
		r.mb.RecordKpodNetIfaceTxBytesDataPoint(r.now, int64(c.TxBytes), name)
		r.mb.RecordKpodNetIfaceRxPacketsDataPoint(r.now, int64(c.RxPackets), name)
		r.mb.RecordKpodNetIfaceTxPacketsDataPoint(r.now, int64(c.TxPackets), name)
		r.mb.RecordKpodNetIfaceRxErrorsDataPoint(r.now, int64(c.RxErrors), name)
		r.mb.RecordKpodNetIfaceTxErrorsDataPoint(r.now, int64(c.TxErrors), name)
		r.mb.RecordKpodNetIfaceRxDropsDataPoint(r.now, int64(c.RxDrops), name)
		r.mb.RecordKpodNetIfaceTxDropsDataPoint(r.now, int64(c.TxDrops), name)
	}
}
