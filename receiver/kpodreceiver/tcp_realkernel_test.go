package kpodreceiver

import (
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealTCP: two pods, each in its own network namespace, joined by a veth; the client
// sends B bytes over C connections. Bytes and connections are charged to the sockets' pods,
// exactly, with the direction; the RTT histogram has one sample per closed socket.
// Retransmits, live sockets against ss and drops with their reason are proved in
// internal/tcp and internal/tcpdrop.
func TestRealTCP(t *testing.T) {
	fakepod.RequireRoot(t)
	const conns, total, port = 8, 8 * 256 << 10, 7000
	p := fakepod.NewPair(t)
	s := startScraper(t, customConfig("tcp", "tcpdrop"))
	if sent, received := p.Transfer(t, port, conns, total); sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	md := scrape(t, s)
	failDump(t, md)

	rm, _ := resourceOf(md, p.Client.UID, p.CliCtr.ID)
	for _, tc := range []struct {
		metric string
		attrs  map[string]string
		want   int64
	}{
		{"kpod.net.tcp.bytes.sent", nil, total},
		{"kpod.net.tcp.bytes.received", nil, 0},
		{"kpod.net.tcp.connections", map[string]string{"direction": "active"}, conns},
		{"kpod.net.tcp.connections", map[string]string{"direction": "passive"}, 0},
	} {
		if got := intValue(t, rm, tc.metric, tc.attrs); got != tc.want {
			t.Errorf("client %s %v = %d, want %d", tc.metric, tc.attrs, got, tc.want)
		}
	}
	rm, _ = resourceOf(md, p.Server.UID, p.SrvCtr.ID)
	for _, tc := range []struct {
		metric string
		attrs  map[string]string
		want   int64
	}{
		{"kpod.net.tcp.bytes.received", nil, total},
		{"kpod.net.tcp.bytes.sent", nil, 0},
		{"kpod.net.tcp.connections", map[string]string{"direction": "passive"}, conns},
		{"kpod.net.tcp.connections", map[string]string{"direction": "active"}, 0},
	} {
		if got := intValue(t, rm, tc.metric, tc.attrs); got != tc.want {
			t.Errorf("server %s %v = %d, want %d", tc.metric, tc.attrs, got, tc.want)
		}
	}
	if h, ok := histogramOf(rm, "kpod.net.tcp.rtt", nil); !ok || h.Count() != conns {
		t.Errorf("server RTT histogram: %v samples, want %d (one per closed socket)", h.Count(), conns)
	}
	rm, _ = resourceOf(md, p.Idle.UID, p.IdleCtr.ID)
	for _, m := range []string{"kpod.net.tcp.bytes.sent", "kpod.net.tcp.bytes.received", "kpod.net.tcp.retransmits"} {
		if got := intValue(t, rm, m, nil); got != 0 {
			t.Errorf("idle pod: %s = %d", m, got)
		}
	}
}
