package kpodreceiver

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/collector"
	"github.com/kpod-project/kpod/internal/kube"
	"github.com/kpod-project/kpod/internal/topology"
	"github.com/kpod-project/kpod/receiver/kpodreceiver/internal/metadata"
)

var topologyFamily = familyInfo{
	name: "topology", bpf: true, profiles: comprehensiveOnly, spec: topology.Spec,
	metrics: []string{"traces_service_graph_request_total", "traces_service_graph_request_failed_total",
		"traces_service_graph_request_client_seconds", "traces_service_graph_request_server_seconds",
		"kpod.topology.connections", "kpod.topology.bytes", "kpod.topology.rtt", "kpod.topology.edges",
		"kpod.topology.edges.overflow"},
	options: []string{"max_edges", "view"},
	newFn:   adapt(openTopology, records[*topology.Graph]{node: recordTopology}),
}

// topologySource is the family's collector and, with kubernetes.enabled, the cluster-wide
// informers that name its peers.
type topologySource struct {
	*topology.Collector
	peers *kube.Peers
}

func (s *topologySource) Close() error {
	if s.peers != nil {
		s.peers.Stop()
	}
	return s.Collector.Close()
}

// testCluster, set by tests, stands for the cluster's informers (kubernetes.enabled) and
// names the node's conntrack table, so that a fake pod's NAT can play kube-proxy's.
var testCluster func() (topology.Peers, string)

func openTopology(e *env) (source[*topology.Graph], error) {
	cc := e.cfg.Collectors["topology"]
	cfg := topology.Config{ProcRoot: e.procRoot, V2Root: e.layout.V2, NodeName: e.nodeName,
		L7: e.l7, L7Reason: e.l7Reason, MaxEdges: cc.MaxEdges, WalkSockets: !collector.CanEnterNamespaces()}
	cfg.Listen = viewListen(cc)
	src := &topologySource{}
	if k := e.cfg.Kubernetes; k.Enabled {
		p, err := kube.StartPeers(context.Background(), kube.Config{AuthType: k.AuthType, KubeConfig: k.KubeConfig}, k.SyncTimeout)
		if err != nil {
			return nil, errors.New("kubernetes: " + err.Error())
		}
		src.peers, cfg.Peers = p, p
	}
	if testCluster != nil {
		cfg.Peers, cfg.Conntrack = testCluster()
	}
	c, err := topology.Start(cfg)
	if err != nil {
		if src.peers != nil {
			src.peers.Stop()
		}
		return nil, err
	}
	src.Collector = c
	return src, nil
}

// viewListen is where the JSON view listens: nowhere unless collectors.topology.view.enabled,
// then the endpoint, by default localhost only.
func viewListen(cc CollectorConfig) string {
	if v := cc.View; v != nil && v.Enabled {
		return cmp.Or(v.Endpoint, DefaultViewEndpoint)
	}
	return ""
}

func recordTopology(r *recorder, vals map[uint64]*topology.Graph) {
	g := vals[bpfload.NodeID]
	if g == nil {
		return
	}
	// Points in the order of their sorted attributes (client, connection_type, protocol,
	// server; client, direction, server), as golden files keep them.
	for _, k := range slices.SortedFunc(maps.Keys(g.Requests), func(a, b topology.RequestKey) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(topology.ConnectionType(a.Protocol), topology.ConnectionType(b.Protocol)),
			cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Server, b.Server), cmp.Compare(a.Backend, b.Backend))
	}) {
		e := g.Requests[k]
		ct := topology.ConnectionType(k.Protocol)
		proto := metadata.MapAttributeL7Protocol[k.Protocol]
		backend := backendOption(k.Backend)
		if e.Counted {
			n, failed := e.Reported()
			r.mb.RecordTracesServiceGraphRequestTotalDataPoint(r.now, int64(n), k.Client, k.Server, ct, proto, backend...)
			r.mb.RecordTracesServiceGraphRequestFailedTotalDataPoint(r.now, int64(failed), k.Client, k.Server, ct, proto, backend...)
		}
		if e.Client.Seen {
			r.hb.RecordTracesServiceGraphRequestClientSeconds(r.now, histPoint(&e.Client.Latency), k.Client, k.Server, ct, k.Protocol, k.Backend)
		}
		if e.Server.Seen {
			r.hb.RecordTracesServiceGraphRequestServerSeconds(r.now, histPoint(&e.Server.Latency), k.Client, k.Server, ct, k.Protocol)
		}
	}
	conns := slices.SortedFunc(maps.Keys(g.Conns), func(a, b topology.ConnKey) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Server, b.Server), cmp.Compare(a.Backend, b.Backend))
	})
	for _, k := range conns {
		c := g.Conns[k]
		r.mb.RecordKpodTopologyConnectionsDataPoint(r.now, int64(c.Connections), k.Client, k.Server, backendOption(k.Backend)...)
		if c.RTT.Count() > 0 {
			r.hb.RecordKpodTopologyRtt(r.now, histPoint(&c.RTT), k.Client, k.Server, k.Backend)
		}
	}
	for i := 0; i < len(conns); {
		j := i // the edges of one client
		for j < len(conns) && conns[j].Client == conns[i].Client {
			j++
		}
		for _, k := range conns[i:j] {
			r.mb.RecordKpodTopologyBytesDataPoint(r.now, int64(g.Conns[k].BytesToClient), k.Client, k.Server, metadata.AttributeTopologyDirectionToClient, backendOption(k.Backend)...)
		}
		for _, k := range conns[i:j] {
			r.mb.RecordKpodTopologyBytesDataPoint(r.now, int64(g.Conns[k].BytesToServer), k.Client, k.Server, metadata.AttributeTopologyDirectionToServer, backendOption(k.Backend)...)
		}
		i = j
	}
	r.mb.RecordKpodTopologyEdgesDataPoint(r.now, int64(g.Edges))
	r.mb.RecordKpodTopologyEdgesOverflowDataPoint(r.now, int64(g.Overflow))
}

// backendOption is the backend attribute of an edge to a Service, where it is known.
func backendOption(backend string) []metadata.MetricAttributeOption {
	if backend == "" {
		return nil
	}
	return []metadata.MetricAttributeOption{metadata.WithTopologyBackendMetricAttribute(backend)}
}
