package kpodreceiver

import (
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/tcp"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

var tcpFamily = familyInfo{
	name: "tcp", bpf: true, profiles: standardUp, spec: tcp.Spec,
	metrics: []string{"kpod.net.tcp.bytes.sent", "kpod.net.tcp.bytes.received", "kpod.net.tcp.connections", "kpod.net.tcp.retransmits", "kpod.net.tcp.rtt"},
	newFn: adapt(func(e *env) (source[tcp.Stats], error) { return tcp.Start(e.procRoot, e.layout.V2) },
		records[tcp.Stats]{container: recordTCP}),
}

func recordTCP(r *recorder, c *podid.Container, vals map[uint64]tcp.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*tcp.Stats).Add)
	r.mb.RecordKpodNetTCPBytesSentDataPoint(r.now, int64(v.BytesSent))
	r.mb.RecordKpodNetTCPBytesReceivedDataPoint(r.now, int64(v.BytesReceived))
	r.mb.RecordKpodNetTCPConnectionsDataPoint(r.now, int64(v.ConnsActive), metadata.AttributeDirectionActive)
	r.mb.RecordKpodNetTCPConnectionsDataPoint(r.now, int64(v.ConnsPassive), metadata.AttributeDirectionPassive)
	r.mb.RecordKpodNetTCPRetransmitsDataPoint(r.now, int64(v.Retransmits))
	if v.RTT.Count() > 0 {
		r.hb.RecordKpodNetTCPRtt(r.now, histPoint(&v.RTT))
	}
}
