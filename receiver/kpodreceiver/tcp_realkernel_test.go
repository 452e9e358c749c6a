package kpodreceiver

import (
	"strconv"
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// TestRealTCP: two pods, each in its own network namespace, joined by a veth; the client
// sends B bytes over C connections. Bytes are charged to the sending and receiving tasks,
// connections to the sockets' pods, with the direction. Retransmits, RTT against ss and
// drops with their reason are proved in internal/tcp.
func TestRealTCP(t *testing.T) {
	fakepod.RequireRoot(t)
	const conns, perConn, port = 8, 256 << 10, 7000
	server := fakepod.New(t, fakepod.Options{NetNS: true})
	client := fakepod.New(t, fakepod.Options{NetNS: true})
	veth := fakepod.NewVeth(t, client.NetNS, server.NetNS)
	srv, cli := server.AddContainer(), client.AddContainer()
	idle := fakepod.New(t, fakepod.Options{NetNS: true})
	idleCtr := idle.AddContainer()
	idleCtr.Start("sleep").WaitReady()

	s := startScraper(t, customConfig("tcp", "tcpdrop"))
	sp := srv.Start("tcpserver", strconv.Itoa(port), strconv.Itoa(conns))
	sp.WaitReady()
	cli.Run("tcpclient", veth.AddrB, strconv.Itoa(port), strconv.Itoa(conns), strconv.Itoa(perConn))
	if line := sp.ReadLine(); line != "received "+strconv.Itoa(conns*perConn) {
		t.Fatalf("server says %q", line)
	}
	if err := sp.Wait(); err != nil {
		t.Fatal(err)
	}
	md := scrape(t, s)
	failDump(t, md)

	const total = conns * perConn
	rm, _ := resourceOf(md, client.UID, cli.ID)
	if got := intValue(t, rm, "kpod.net.tcp.bytes.sent", nil); !within(got, total, 0.01) {
		t.Errorf("client sent %d bytes, want %d ±1%%", got, total)
	}
	if got := intValue(t, rm, "kpod.net.tcp.connections", map[string]string{"direction": "active"}); got != conns {
		t.Errorf("client active connections = %d, want %d", got, conns)
	}
	if got := intValue(t, rm, "kpod.net.tcp.connections", map[string]string{"direction": "passive"}); got != 0 {
		t.Errorf("client passive connections = %d, want 0", got)
	}
	rm, _ = resourceOf(md, server.UID, srv.ID)
	if got := intValue(t, rm, "kpod.net.tcp.bytes.received", nil); !within(got, total, 0.01) {
		t.Errorf("server received %d bytes, want %d ±1%%", got, total)
	}
	if got := intValue(t, rm, "kpod.net.tcp.connections", map[string]string{"direction": "passive"}); got != conns {
		t.Errorf("server passive connections = %d, want %d", got, conns)
	}
	if h, ok := histogramOf(rm, "kpod.net.tcp.rtt", nil); !ok || h.Count() == 0 {
		t.Errorf("no RTT samples for the server's sockets")
	}
	rm, _ = resourceOf(md, idle.UID, idleCtr.ID)
	for _, m := range []string{"kpod.net.tcp.bytes.sent", "kpod.net.tcp.bytes.received", "kpod.net.tcp.retransmits"} {
		if got := intValue(t, rm, m, nil); got != 0 {
			t.Errorf("idle pod: %s = %d", m, got)
		}
	}
}
