package topology

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/kpod-project/kpod/internal/hist"
)

// The JSON view: this node's current graph on an HTTP endpoint, for a user of kpod-metrics'
// /actuator/kpodTopology. Rates, average and p99 latency are over the window between the two
// latest collections (or since kpod started, after the first).

// View is the JSON document.
type View struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// WindowSeconds is the time between the two collections the rates are computed over.
	WindowSeconds float64    `json:"window_seconds"`
	Nodes         []ViewNode `json:"nodes"`
	Edges         []ViewEdge `json:"edges"`
	// EdgeCount is the number of client → server pairs reported (at most max_edges);
	// Overflow the pairs beyond it since kpod started.
	EdgeCount int    `json:"edge_count"`
	Overflow  uint64 `json:"overflow"`
}

// ViewNode is an end of edges.
type ViewNode struct {
	End
	Protocols []string `json:"protocols"`
	// Requests per second this end sent (as a client) and answered (as a server).
	RequestsOut float64 `json:"requests_out_per_second"`
	RequestsIn  float64 `json:"requests_in_per_second"`
}

// ViewEdge is one edge: the requests of one protocol from source (client) to target (server),
// or, with protocol "tcp", their TCP connections whatever the protocol.
type ViewEdge struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Protocol string `json:"protocol"`
	// Backend is, on an edge to a Service, the backend the node's NAT sent these requests or
	// connections to (where conntrack tells it).
	Backend string `json:"backend,omitempty"`
	// Requests edges: totals since kpod started, the rate over the window, and latency over
	// the window (nil without requests in it), from the client's side where it is local, else
	// the server's (LatencyFrom).
	Requests          *uint64  `json:"requests,omitempty"`
	Failed            *uint64  `json:"failed,omitempty"`
	RequestsPerSecond *float64 `json:"requests_per_second,omitempty"`
	FailedPerSecond   *float64 `json:"failed_per_second,omitempty"`
	LatencyAvg        *float64 `json:"latency_avg_seconds,omitempty"`
	LatencyP99        *float64 `json:"latency_p99_seconds,omitempty"`
	LatencyFrom       string   `json:"latency_from,omitempty"`
	// Counted: this node counts these requests (see Requests.Counted).
	Counted *bool `json:"counted,omitempty"`
	// TCP edges.
	Connections          *uint64  `json:"connections,omitempty"`
	ConnectionsPerSecond *float64 `json:"connections_per_second,omitempty"`
	BytesToServer        *uint64  `json:"bytes_to_server,omitempty"`
	BytesToClient        *uint64  `json:"bytes_to_client,omitempty"`
	RTTAvg               *float64 `json:"rtt_avg_seconds,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// delta is now − before, or now when the counter went back (its cgroup's entries were
// swept and came back).
func delta(now, before uint64) uint64 {
	if now < before {
		return now
	}
	return now - before
}

func deltaHist(now, before hist.Hist) hist.Hist {
	if now.Count() < before.Count() {
		return now
	}
	d := hist.Hist{SumNs: now.SumNs - before.SumNs}
	for i := range d.Counts {
		d.Counts[i] = delta(now.Counts[i], before.Counts[i])
	}
	return d
}

// Quantile estimates the q-quantile of h as Prometheus's histogram_quantile does: linear
// interpolation inside the bucket that holds it (the first bucket starts at 0; a quantile in
// the last, open bucket is its lower bound).
func Quantile(q float64, h hist.Hist) (float64, bool) {
	n := h.Count()
	if n == 0 {
		return 0, false
	}
	bounds := hist.Bounds()
	rank := q * float64(n)
	var cum uint64
	for i, c := range h.Counts {
		if float64(cum+c) < rank || c == 0 {
			cum += c
			continue
		}
		if i >= len(bounds) {
			return bounds[len(bounds)-1], true
		}
		lo := 0.0
		if i > 0 {
			lo = bounds[i-1]
		}
		return lo + (bounds[i]-lo)*(rank-float64(cum))/float64(c), true
	}
	return bounds[len(bounds)-1], true
}

// MakeView builds the view of the latest graph; prev may be nil (then the rates are since
// start).
func MakeView(node string, start time.Time, prev, last *Graph) View {
	v := View{Node: node, Nodes: []ViewNode{}, Edges: []ViewEdge{}}
	if last == nil {
		return v
	}
	since := start
	if prev == nil {
		prev = newGraph(start)
	} else {
		since = prev.Time
	}
	v.Time, v.EdgeCount, v.Overflow = last.Time, last.Edges, last.Overflow
	win := last.Time.Sub(since).Seconds()
	v.WindowSeconds = win
	rate := func(d uint64) *float64 {
		if win <= 0 {
			return ptr(0.0)
		}
		return ptr(float64(d) / win)
	}
	nodes := map[string]*ViewNode{}
	nodeOf := func(name string) *ViewNode {
		n := nodes[name]
		if n == nil {
			n = &ViewNode{End: last.Ends[name], Protocols: []string{}}
			if n.Name == "" {
				n.Name = name
			}
			nodes[name] = n
		}
		return n
	}
	addProto := func(n *ViewNode, p string) {
		if !slices.Contains(n.Protocols, p) {
			n.Protocols = append(n.Protocols, p)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(last.Requests), func(a, b RequestKey) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Server, b.Server), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Backend, b.Backend))
	}) {
		r := last.Requests[k]
		var before Requests
		if p := prev.Requests[k]; p != nil {
			before = *p
		}
		// The client's side where it is local, else the server's (counted or not).
		side, bside, from := r.Client, before.Client, "client"
		if !r.Client.Seen {
			side, bside, from = r.Server, before.Server, "server"
		}
		count, failed, bcount, bfailed := side.Count, side.Failed, bside.Count, bside.Failed
		e := ViewEdge{Source: k.Client, Target: k.Server, Protocol: k.Protocol, Backend: k.Backend,
			Requests: ptr(count), Failed: ptr(failed), Counted: ptr(r.Counted), LatencyFrom: from,
			RequestsPerSecond: rate(delta(count, bcount)), FailedPerSecond: rate(delta(failed, bfailed))}
		d := deltaHist(side.Latency, bside.Latency)
		if n := d.Count(); n > 0 {
			e.LatencyAvg = ptr(d.SumSeconds() / float64(n))
			q, _ := Quantile(0.99, d)
			e.LatencyP99 = ptr(q)
		}
		v.Edges = append(v.Edges, e)
		c, s := nodeOf(k.Client), nodeOf(k.Server)
		addProto(c, k.Protocol)
		addProto(s, k.Protocol)
		c.RequestsOut += *e.RequestsPerSecond
		s.RequestsIn += *e.RequestsPerSecond
	}
	for _, k := range slices.SortedFunc(maps.Keys(last.Conns), func(a, b ConnKey) int {
		return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Server, b.Server), cmp.Compare(a.Backend, b.Backend))
	}) {
		c := last.Conns[k]
		var before Conns
		if p := prev.Conns[k]; p != nil {
			before = *p
		}
		e := ViewEdge{Source: k.Client, Target: k.Server, Protocol: "tcp", Backend: k.Backend,
			Connections: ptr(c.Connections), ConnectionsPerSecond: rate(delta(c.Connections, before.Connections)),
			BytesToServer: ptr(c.BytesToServer), BytesToClient: ptr(c.BytesToClient)}
		if n := c.RTT.Count(); n > 0 {
			e.RTTAvg = ptr(c.RTT.SumSeconds() / float64(n))
		}
		v.Edges = append(v.Edges, e)
		addProto(nodeOf(k.Client), "tcp")
		addProto(nodeOf(k.Server), "tcp")
	}
	for _, n := range slices.Sorted(maps.Keys(nodes)) {
		slices.Sort(nodes[n].Protocols)
		v.Nodes = append(v.Nodes, *nodes[n])
	}
	return v
}

// ViewPaths are the paths the view is served on: kpod's, and kpod-metrics' actuator path.
var ViewPaths = []string{"/kpodTopology", "/actuator/kpodTopology"}

// Server serves the JSON view of a collector.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve starts the JSON view on addr (host:port).
func Serve(addr, node string, start time.Time, latest func() (prev, last *Graph)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("topology view: %w", err)
	}
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		prev, last := latest()
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(MakeView(node, start, prev, last))
	}
	for _, p := range ViewPaths {
		mux.HandleFunc(p, h)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the view listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
