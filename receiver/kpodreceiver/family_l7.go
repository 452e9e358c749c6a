package kpodreceiver

import (
	"cmp"
	"maps"
	"slices"

	"github.com/kpod-project/kpod/internal/l7"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

// l7 is in no profile: it parses the payload of every read and write of every pod, which
// costs more than any profile's budget (BENCHMARKS.md, "The l7 family"); turned on with
// collectors.l7.enabled.
var l7Family = familyInfo{
	name: "l7", bpf: true, spec: l7.Spec,
	metrics: []string{"kpod.l7.requests", "kpod.l7.request.duration", "kpod.l7.parse.errors"},
	newFn:   adapt(openL7, records[l7.Stats]{container: recordL7}),
}

// openL7 starts the family; it counts requests per edge too when the topology family runs,
// which reads them from its object.
func openL7(e *env) (source[l7.Stats], error) {
	src, err := l7.Start(l7.Options{Edges: e.enabled["topology"], Backends: e.enabled["topology"] && (e.cfg.Kubernetes.Enabled || testCluster != nil)})
	if err != nil {
		e.l7Reason = "the l7 collector is unavailable: " + reasonText(err)
		return nil, err
	}
	e.l7 = src.Collector
	return src, nil
}

func recordL7(r *recorder, c *podid.Container, vals map[uint64]l7.Stats) {
	v := sumOver(vals, c.CgroupIDs, (*l7.Stats).Add)
	keys := slices.SortedFunc(maps.Keys(v.Requests), func(a, b l7.Key) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Role, b.Role), cmp.Compare(a.Method, b.Method), cmp.Compare(a.Status, b.Status))
	})
	// The duration histogram has no status: one point per protocol, role and method.
	type durKey struct{ protocol, role, method string }
	var durs []durKey
	dur := map[durKey]*l7.Value{}
	for _, k := range keys {
		x := v.Requests[k]
		r.mb.RecordKpodL7RequestsDataPoint(r.now, int64(x.Count), metadata.MapAttributeL7Protocol[k.Protocol], metadata.MapAttributeL7Role[k.Role], k.Method, k.Status)
		dk := durKey{k.Protocol, k.Role, k.Method}
		if dur[dk] == nil {
			dur[dk] = &l7.Value{}
			durs = append(durs, dk)
		}
		dur[dk].Latency.Add(&x.Latency)
	}
	for _, dk := range durs {
		r.hb.RecordKpodL7RequestDuration(r.now, histPoint(&dur[dk].Latency), dk.protocol, dk.role, dk.method)
	}
	lost := slices.SortedFunc(maps.Keys(v.Lost), func(a, b l7.LostKey) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Role, b.Role), cmp.Compare(a.Reason, b.Reason))
	})
	for _, k := range lost {
		r.mb.RecordKpodL7ParseErrorsDataPoint(r.now, int64(v.Lost[k]), metadata.MapAttributeL7Protocol[k.Protocol], metadata.MapAttributeL7Role[k.Role], metadata.MapAttributeL7LostReason[k.Reason])
	}
}
