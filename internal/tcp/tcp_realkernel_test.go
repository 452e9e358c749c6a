package tcp

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
)

const port = 5201

// variant is one way the family can run: a path on a rung of the attach ladder, and for the
// per-socket path how it reads live sockets.
type variant struct {
	path Path
	rung string
	walk string // per socket: "walk" (one walk of the sockets kpod knows) or "namespaces" (the iterator in each)
}

func (v variant) String() string {
	if v.walk != "" {
		return string(v.path) + "-" + v.rung + "-" + v.walk
	}
	return string(v.path) + "-" + v.rung
}

// variants are every path on every rung it has here: the per-socket path needs tp_btf (its
// state program keeps the sockets kpod knows, read with the socket's BTF type), and reads live
// sockets with the walk where the kernel loads it, else with the iterator in every namespace;
// the per-segment fallback runs on tp_btf and raw_tp.
var variants = []variant{{PathSocket, "tp_btf", "walk"}, {PathSocket, "tp_btf", "namespaces"}, {PathSegment, "tp_btf", ""}, {PathSegment, "raw_tp", ""}}

// walkRefused is why the kernel refused the walk ("" if it loads). It needs
// bpf_for_each_map_elem in a raw_tp program (5.13+; both kernels this project tests on have
// it): the family must load the walk exactly where the kernel has the helper, and say why
// where it does not.
func walkRefused(t *testing.T, v variant) string {
	t.Helper()
	has := bpftest.KnownSocketWalks()
	bpftest.On(t, v.rung)
	c, err := startPath(v.path, "/proc", fakepod.HostLayout(t).V2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	loaded, why := c.Obj.Has("kpod_twalk"), c.Obj.Missing["kpod_twalk"]
	switch {
	case loaded && has == nil:
		return ""
	case loaded:
		t.Fatalf("the walk loaded, but the kernel lacks bpf_for_each_map_elem: %v", has)
	case has == nil:
		t.Fatalf("the kernel has bpf_for_each_map_elem, but the walk did not load: %q", why)
	case why == "":
		t.Fatal("the walk did not load and the family does not say why")
	}
	return why
}

func forVariants(t *testing.T, test func(t *testing.T, v variant)) {
	fakepod.RequireRoot(t)
	for _, v := range variants {
		t.Run(v.String(), func(t *testing.T) {
			if v.walk == "walk" {
				if why := walkRefused(t, v); why != "" {
					// Asserted refused: the family reads live sockets as the "namespaces" variant does.
					t.Logf("the kernel refuses the walk: %s", why)
					return
				}
			}
			if v.path == PathSegment && !bpftest.HasTracepoint(t, "sock", "sock_send_length") {
				// Before 6.3 the per-segment path cannot load, and says why.
				bpftest.On(t, v.rung)
				if _, err := startPath(v.path, "/proc", fakepod.HostLayout(t).V2); err == nil || !strings.Contains(err.Error(), "sock_send_length") {
					t.Fatalf("the per-segment path loaded without sock_send_length, or did not say why: %v", err)
				}
				return
			}
			test(t, v)
		})
	}
}

// start loads the family on one path and rung.
func start(t *testing.T, v variant) *Collector {
	t.Helper()
	bpftest.On(t, v.rung)
	c, err := startPath(v.path, "/proc", fakepod.HostLayout(t).V2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.perNS = v.walk == "namespaces"
	for _, p := range c.Obj.Programs {
		t.Logf("%s: %s on %s as %s (load %v)", v, p.Name, p.Hook, p.Kind, p.LoadDuration.Round(time.Millisecond))
	}
	bpftest.CheckRung(t, c.Obj, v.rung)
	return c
}

// collect reads the family with the pods of the host's cgroup tree (the per-socket path
// iterates their network namespaces) and live as the live cgroups.
func collect(t *testing.T, c *Collector, live map[uint64]bool) map[uint64]Stats {
	t.Helper()
	x, err := podid.NewScanner(fakepod.HostLayout(t).V2, "/proc").Scan()
	if err != nil {
		t.Fatal(err)
	}
	x.Live = live
	st, err := c.Collect(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func checkNoLostUpdates(t *testing.T, c *Collector) {
	t.Helper()
	errs, err := c.Obj.UpdateErrors()
	if err != nil {
		t.Fatal(err)
	}
	for m, n := range errs {
		if n != 0 {
			t.Errorf("%d failed updates of %s", n, m)
		}
	}
}

// idleHasNothing: the idle pod (its own netns, a sleeping process) has no TCP activity.
func idleHasNothing(t *testing.T, p *fakepod.Pair, st map[uint64]Stats) {
	t.Helper()
	for _, id := range []uint64{p.Idle.CgroupID, p.IdleCtr.CgroupID} {
		if s, ok := st[id]; ok {
			t.Errorf("the idle pod's cgroup %d has %+v", id, s)
		}
	}
}

// TestStart: Start takes the per-socket path on this kernel, with all of its programs but
// the walk where the kernel refuses it.
func TestStart(t *testing.T) {
	fakepod.RequireRoot(t)
	c, err := Start("/proc", fakepod.HostLayout(t).V2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := len(SocketSpec().Hooks)
	if walkRefused(t, variant{PathSocket, "tp_btf", "walk"}) != "" {
		want--
	}
	if c.Path != PathSocket || len(c.Obj.Programs) != want {
		t.Errorf("path %s with %d programs, want %s with %d", c.Path, len(c.Obj.Programs), PathSocket, want)
	}
	collect(t, c, nil)
}

// TestTCPWalkDropsUnknownAddresses: entries of kpod_tsocks whose address holds no socket
// with the entry's id (what an iterator leaves when it meets a socket as it closes, or a
// socket's memory reused) are dropped by the next walk and count nothing, and the live
// connection beside them keeps its exact bytes.
func TestTCPWalkDropsUnknownAddresses(t *testing.T) {
	fakepod.RequireRoot(t)
	v := variant{PathSocket, "tp_btf", "walk"}
	if walkRefused(t, v) != "" {
		return // asserted refused
	}
	const total = 1 << 20
	p := fakepod.NewPair(t)
	c := start(t, v)
	held := p.Hold(t, port, total)
	defer held.Close(t)
	m := c.Obj.Maps[TcpMapKpodTsocks]
	// Addresses no socket has: a user-space one and unmapped kernel ones (the walk's reads
	// fail and return zeros); ids as a real socket's (a hash and two non-zero ports).
	bogus := []uint64{0x10000, 0xffffffffffff0000, 0xffff8000deadbe00}
	for i, addr := range bogus {
		val := [5]uint64{uint64(i+1)<<32 | 5201<<16 | 40000} // id, closed, sent0, received0, retrans0
		if err := m.Put(addr, val); err != nil {
			t.Fatal(err)
		}
	}
	st := collect(t, c, p.Live)
	cli, srv := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	if cli.BytesSent != total || srv.BytesReceived != total || cli.BytesReceived != 0 || srv.BytesSent != 0 {
		t.Errorf("client %+v, server %+v; want %d bytes from the client to the server", cli, srv, total)
	}
	for _, addr := range bogus {
		var val [5]uint64
		if err := m.Lookup(addr, &val); err == nil {
			t.Errorf("the entry at %#x is still there: %v", addr, val)
		}
	}
	// Read, they would have been charged to cgroup id 0 (their reads return zeros), which no
	// socket has (a kernel socket's is the root cgroup's, 1).
	if s, ok := st[0]; ok {
		t.Errorf("cgroup 0 has %+v", s)
	}
	idleHasNothing(t, p, st)
	checkNoLostUpdates(t, c)
}

// TestTCPOlderSocket: a connection established before kpod started is counted from the
// first collection that meets it: its bytes before that are not counted, it is not counted
// as a new connection, and every collection reads its RTT (the socket is known to the walk
// from the iterator's first run in its namespace), once more when it closes.
func TestTCPOlderSocket(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, v := range variants {
		if v.path != PathSocket {
			continue // per segment, bytes are counted as send and receive calls return
		}
		t.Run(v.String(), func(t *testing.T) {
			if v.walk == "walk" && walkRefused(t, v) != "" {
				return // asserted refused
			}
			const total = 1 << 20
			p := fakepod.NewPair(t)
			held := p.Hold(t, port, total)
			c := start(t, v)
			for i := 1; i <= 2; i++ {
				st := collect(t, c, p.Live)
				for who, s := range map[string]Stats{"client": st[p.CliCtr.CgroupID], "server": st[p.SrvCtr.CgroupID]} {
					if s.BytesSent != 0 || s.BytesReceived != 0 || s.ConnsActive+s.ConnsPassive != 0 || s.RTT.Count() != uint64(i) {
						t.Errorf("collection %d: %s %+v; want no bytes, no connection, %d RTT samples", i, who, s, i)
					}
				}
			}
			held.Close(t)
			st := collect(t, c, p.Live)
			for who, s := range map[string]Stats{"client": st[p.CliCtr.CgroupID], "server": st[p.SrvCtr.CgroupID]} {
				if s.BytesSent != 0 || s.BytesReceived != 0 || s.ConnsActive+s.ConnsPassive != 0 || s.RTT.Count() != 3 {
					t.Errorf("after close: %s %+v; want no bytes, no connection, 3 RTT samples (2 live, 1 at close)", who, s)
				}
			}
			idleHasNothing(t, p, st)
			checkNoLostUpdates(t, c)
		})
	}
}

// TestTCPBytesAndConnections: bytes and connections of the client and server pods are exact
// (what the workloads sent and received, connections with their direction), and nothing is
// charged to an idle pod or to the pods' own cgroups.
func TestTCPBytesAndConnections(t *testing.T) { forVariants(t, realTCPBytesAndConnections) }

func realTCPBytesAndConnections(t *testing.T, v variant) {
	logCosts := bpftest.EnableStats(t)
	const conns, total = 6, 24 << 20
	p := fakepod.NewPair(t)
	c := start(t, v)
	sent, received := p.Transfer(t, port, conns, total)
	if sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	st := collect(t, c, p.Live)
	cli, srv := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	t.Logf("client: %+v", cli)
	t.Logf("server: %+v", srv)
	for _, tc := range []struct {
		what      string
		got, want uint64
	}{
		{"client bytes sent", cli.BytesSent, total},
		{"client bytes received", cli.BytesReceived, 0},
		{"client active connections", cli.ConnsActive, conns},
		{"client passive connections", cli.ConnsPassive, 0},
		{"server bytes received", srv.BytesReceived, total},
		{"server bytes sent", srv.BytesSent, 0},
		{"server passive connections", srv.ConnsPassive, conns},
		{"server active connections", srv.ConnsActive, 0},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.what, tc.got, tc.want)
		}
	}
	if cli.RTT.Count() == 0 || srv.RTT.Count() == 0 {
		t.Errorf("no RTT samples: client %d, server %d", cli.RTT.Count(), srv.RTT.Count())
	}
	if v.path == PathSocket && (cli.RTT.Count() != conns || srv.RTT.Count() != conns) {
		t.Errorf("RTT samples: client %d, server %d; want %d each (one per closed socket)", cli.RTT.Count(), srv.RTT.Count(), conns)
	}
	// Pod-level cgroups hold no process: nothing is charged to them.
	for _, id := range []uint64{p.Client.CgroupID, p.Server.CgroupID} {
		if s, ok := st[id]; ok {
			t.Errorf("pod cgroup %d has %+v", id, s)
		}
	}
	idleHasNothing(t, p, st)
	checkNoLostUpdates(t, c)
	logCosts(c.Obj)

	// A cgroup missing from the live tree at two collections in a row loses its entries.
	gone := map[uint64]bool{}
	for id := range p.Live {
		gone[id] = id != p.CliCtr.CgroupID
	}
	collect(t, c, gone)
	collect(t, c, gone)
	st = collect(t, c, gone)
	if _, ok := st[p.CliCtr.CgroupID]; ok {
		t.Errorf("the removed client cgroup was not swept")
	}
	if _, ok := st[p.SrvCtr.CgroupID]; !ok {
		t.Errorf("the live server cgroup was swept")
	}
}

var ssCounterRE = regexp.MustCompile(`\b(bytes_sent|bytes_retrans|bytes_received|rtt):([0-9.]+)`)

// ssSocket reads the counters ss -ti shows for the one established connection to port in a
// namespace.
func ssSocket(t *testing.T, ns *fakepod.NetNS) map[string]float64 {
	t.Helper()
	out := ns.Exec("ss", "-tinH", "state", "established", fmt.Sprintf("( sport = :%d or dport = :%d )", port, port))
	got := map[string]float64{}
	for _, m := range ssCounterRE.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		got[m[1]] = v
	}
	if len(got) == 0 {
		t.Fatalf("no established connection in ss output %q", out)
	}
	return got
}

// TestTCPLiveSockets: while a connection is open, kpod reports its bytes as the workload
// counted them and as ss -ti shows the socket; after the connection closes, the same bytes
// (a socket is counted once, live or closed); with the per-socket path the RTT sample of a
// collection is the socket's smoothed RTT that ss shows.
func TestTCPLiveSockets(t *testing.T) { forVariants(t, realTCPLiveSockets) }

func realTCPLiveSockets(t *testing.T, v variant) {
	const total = 3 << 20
	p := fakepod.NewPair(t)
	c := start(t, v)
	held := p.Hold(t, port, total)
	// The client is parked with its connection open; wait until the server has read it all
	// and the connection is idle (ss shows nothing unacknowledged and nothing queued).
	var cs, ss map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		cs, ss = ssSocket(t, p.Client.NetNS), ssSocket(t, p.Server.NetNS)
		if cs["bytes_sent"]-cs["bytes_retrans"] == total && ss["bytes_received"] == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection not idle: client %v, server %v", cs, ss)
		}
	}
	st := collect(t, c, p.Live)
	cli1, srv1 := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	t.Logf("live: client %+v, ss %v; server %+v, ss %v", cli1, cs, srv1, ss)
	if cli1.BytesSent != total || srv1.BytesReceived != total {
		t.Errorf("live: client sent %d, server received %d; want %d (ss: %v, %v)", cli1.BytesSent, srv1.BytesReceived, total, cs, ss)
	}
	if v.path == PathSocket {
		// ss prints tcpi_rtt (srtt_us >> 3, in us) as ms with three decimals; kpod's one
		// sample of this collection is srtt_us * 1000 >> 3 ns. The socket is idle: same srtt.
		for who, tc := range map[string]struct {
			h  hist.Hist
			ss float64
		}{"client": {cli1.RTT, cs["rtt"]}, "server": {srv1.RTT, ss["rtt"]}} {
			if tc.h.Count() != 1 || tc.h.SumNs/1000 != uint64(math.Round(tc.ss*1000)) {
				t.Errorf("%s RTT: %d samples, sum %d ns; want 1 sample of %.3f ms (ss)", who, tc.h.Count(), tc.h.SumNs, tc.ss)
			}
		}
	}
	held.Close(t)
	st = collect(t, c, p.Live)
	cli2, srv2 := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	t.Logf("closed: client %+v; server %+v", cli2, srv2)
	if cli2.BytesSent != total || srv2.BytesReceived != total || cli2.ConnsActive != 1 || srv2.ConnsPassive != 1 {
		t.Errorf("after close: client sent %d (%d conns), server received %d (%d conns); want %d and 1",
			cli2.BytesSent, cli2.ConnsActive, srv2.BytesReceived, srv2.ConnsPassive, total)
	}
	idleHasNothing(t, p, st)
	checkNoLostUpdates(t, c)
}

// TestTCPLossRetransmits: an nft rule in the server's namespace drops a random 10 % of the
// client's data segments (never the handshake, never a bare ACK or FIN: they are shorter
// than 100 bytes). The client, whose segments are lost, retransmits exactly what its
// namespace counts (RetransSegs − TCPRetransFail; per segment, on the sandbox host, less
// what no BPF program sees: fakepod.OverPID1); the server retransmits nothing; the
// bytes stay exact; the client's RTT agrees with ss -ti and, per segment, is the kernel's
// own record of its tcp_probe events value for value (checkProbeRTT).
func TestTCPLossRetransmits(t *testing.T) { forVariants(t, realTCPLossRetransmits) }

func realTCPLossRetransmits(t *testing.T, v variant) {
	const conns, total = 4, 64 << 20
	logCosts := bpftest.EnableStats(t)
	p := fakepod.NewPair(t)
	srvNS := p.Server.NetNS
	srvNS.Nft("add", "table", "inet", "kpodloss")
	srvNS.Nft("add", "counter", "inet", "kpodloss", "dropped")
	srvNS.Nft("add", "chain", "inet", "kpodloss", "input", "{ type filter hook input priority 0; policy accept; }")
	srvNS.Nft("add", "rule", "inet", "kpodloss", "input", "ip", "saddr", p.Veth.AddrA, "tcp", "dport", strconv.Itoa(port),
		"meta", "length", "gt", "100", "numgen", "random", "mod", "10", "eq", "0", "counter", "name", "dropped", "drop")
	c := start(t, v)
	// The kernel's record of the retransmits of the client's segments: on the sandbox host
	// no BPF program sees those that happen in a softirq over PID 1's threads (see
	// fakepod.OverPID1); per segment kpod counts them there, per socket it reads the socket's
	// own counter.
	retx := fakepod.NewTrace(t, "tcp/tcp_retransmit_skb", fmt.Sprintf("dport == %d", port))
	probes := probeTrace(t, v)
	cliBefore, srvBefore := p.Client.NetNS.Netstat(), srvNS.Netstat()

	rtts := pollSS(p.Client.NetNS, 10*time.Millisecond)
	sent, received := p.Transfer(t, port, conns, total)
	samples := rtts.Stop()
	if sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	// The kernel's counters, read once they stop moving: on a loaded machine ksoftirqd can
	// hold packets of the transfer in a backlog for a while after both workloads exited.
	var cliAfter, srvAfter map[string]uint64
	kernel := func() [3]uint64 {
		cliAfter, srvAfter = p.Client.NetNS.Netstat(), srvNS.Netstat()
		return [3]uint64{cliAfter["TcpRetransSegs"], cliAfter["TcpExtTCPRetransFail"], srvAfter["TcpRetransSegs"]}
	}
	settled := kernel()
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		now := kernel()
		if now == settled {
			break
		}
		settled = now
	}
	st := collect(t, c, p.Live)
	if now := kernel(); now != settled {
		t.Fatalf("kernel counters moved while kpod was read: %v -> %v", settled, now)
	}
	dropped := srvNS.NftCounter("kpodloss", "dropped")
	cli, srv := st[p.CliCtr.CgroupID], st[p.SrvCtr.CgroupID]
	delta := func(a, b map[string]uint64, k string) uint64 { return a[k] - b[k] }
	wantRetrans := delta(cliAfter, cliBefore, "TcpRetransSegs") - delta(cliAfter, cliBefore, "TcpExtTCPRetransFail")
	// A retransmitted skb carries up to 64 KiB: at most 46 segments of this veth's 1448-byte
	// MSS. The trace has no segment count, so an unseen event may lack up to that many.
	const maxSegs = 64<<10/1448 + 1
	var blind uint64
	if v.path == PathSegment {
		blind = uint64(fakepod.OverPID1(retx.Lines()))
	}
	t.Logf("nft dropped %d; client: retrans=%d (namespace: %d; %d retransmit events over PID 1's threads); server: retrans=%d (namespace RetransSegs +%d)",
		dropped, cli.Retransmits, wantRetrans, blind, srv.Retransmits, delta(srvAfter, srvBefore, "TcpRetransSegs"))
	if cli.Retransmits > wantRetrans || cli.Retransmits+blind*maxSegs < wantRetrans {
		t.Errorf("client retransmitted segments = %d, want %d (RetransSegs - TCPRetransFail), less at most %d for each of the %d events over PID 1's threads",
			cli.Retransmits, wantRetrans, maxSegs, blind)
	}
	if dropped == 0 {
		t.Fatal("nft dropped nothing: the test proves nothing")
	}
	for _, tc := range []struct {
		what      string
		got, want uint64
	}{
		{"server retransmitted segments", srv.Retransmits, 0},
		{"client active connections", cli.ConnsActive, conns},
		{"server passive connections", srv.ConnsPassive, conns},
		{"client bytes sent", cli.BytesSent, total},
		{"server bytes received", srv.BytesReceived, total},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.what, tc.got, tc.want)
		}
	}
	if wantRetrans == 0 {
		t.Errorf("the client's namespace counted no retransmits although %d data segments were dropped", dropped)
	}
	idleHasNothing(t, p, st)
	checkNoLostUpdates(t, c)
	logCosts(c.Obj)
	compareRTT(t, v, cli.RTT, samples, conns, probes, p.Veth.AddrB)
}

// TestTCPSynRetransmits: connects that never complete count their retransmitted SYNs. An
// nft rule in the server's namespace drops every SYN to the port; the client makes 3 connects
// at once with TCP_SYNCNT 1, and each times out. The client's retransmits equal its
// namespace's TCPSynRetrans and RetransSegs (per segment,
// on the sandbox host, less what no BPF program sees: fakepod.OverPID1); no connection.
func TestTCPSynRetransmits(t *testing.T) { forVariants(t, realTCPSynRetransmits) }

func realTCPSynRetransmits(t *testing.T, v variant) {
	const conns, synPort = 3, port + 1
	p := fakepod.NewPair(t)
	srvNS := p.Server.NetNS
	srvNS.Nft("add", "table", "inet", "kpodsyn")
	srvNS.Nft("add", "counter", "inet", "kpodsyn", "dropped")
	srvNS.Nft("add", "chain", "inet", "kpodsyn", "input", "{ type filter hook input priority 0; policy accept; }")
	srvNS.Nft("add", "rule", "inet", "kpodsyn", "input", "tcp", "dport", strconv.Itoa(synPort),
		"tcp", "flags", "&", "(syn|ack)", "==", "syn", "counter", "name", "dropped", "drop")
	c := start(t, v)
	retx := fakepod.NewTrace(t, "tcp/tcp_retransmit_skb", fmt.Sprintf("dport == %d", synPort))
	before := p.Client.NetNS.Netstat()
	cli := p.CliCtr.Start("synfail", p.Veth.AddrB, strconv.Itoa(synPort), strconv.Itoa(conns))
	if n := fakepod.Count(t, cli.ReadLine(), "timedout"); n != conns {
		t.Fatalf("%d of %d connects timed out", n, conns)
	}
	if err := cli.Wait(); err != nil {
		t.Fatal(err)
	}
	st := collect(t, c, p.Live)
	after := p.Client.NetNS.Netstat()
	synRetrans := after["TcpExtTCPSynRetrans"] - before["TcpExtTCPSynRetrans"]
	segs := after["TcpRetransSegs"] - before["TcpRetransSegs"]
	dropped := srvNS.NftCounter("kpodsyn", "dropped")
	var blind uint64
	if v.path == PathSegment {
		blind = uint64(fakepod.OverPID1(retx.Lines()))
	}
	got := st[p.CliCtr.CgroupID]
	t.Logf("nft dropped %d SYNs; client: retrans=%d (namespace: TCPSynRetrans %d, RetransSegs %d; %d events over PID 1's threads)",
		dropped, got.Retransmits, synRetrans, segs, blind)
	// Positive control: every connect sent its SYN again at least once (once on 6.1, twice
	// on 6.18, where the give-up time for TCP_SYNCNT 1 is reached just after the second), the
	// kernel counted each as one retransmitted segment, and nft dropped every SYN it sent.
	if synRetrans < conns || segs != synRetrans || dropped != conns+synRetrans {
		t.Fatalf("the kernel counted %d SYN retransmits (%d segments) for %d connects, nft dropped %d SYNs", synRetrans, segs, conns, dropped)
	}
	if got.Retransmits > synRetrans || got.Retransmits+blind < synRetrans {
		t.Errorf("client retransmitted segments = %d, want %d (TCPSynRetrans), less at most the %d events over PID 1's threads", got.Retransmits, synRetrans, blind)
	}
	if got.ConnsActive != 0 || got.BytesSent != 0 || st[p.SrvCtr.CgroupID] != (Stats{}) {
		t.Errorf("connects that never completed: client %+v, server %+v", got, st[p.SrvCtr.CgroupID])
	}
	idleHasNothing(t, p, st)
	checkNoLostUpdates(t, c)
}

// TestTCPRTTQueue: a tbf rate limit on the client's veth builds a queue in front of the
// link; the client's smoothed RTT, as kpod records it, grows by a large factor (5x asked, of
// the mean or of the median's bucket; means about 1000x here: tens of us unshaped, tens of ms
// behind a 100 ms tbf queue; 9x to 21x in the 5.10 VM, whose emulated CPUs make the unshaped
// RTT 0.4 to 1 ms), and still agrees with ss -ti (per segment: with the tcp_probe record,
// value for value).
func TestTCPRTTQueue(t *testing.T) { forVariants(t, realTCPRTTQueue) }

func realTCPRTTQueue(t *testing.T, v variant) {
	const conns, total = 3, 6 << 20
	p := fakepod.NewPair(t)
	c := start(t, v)
	p.Transfer(t, port, conns, total)
	base := collect(t, c, p.Live)[p.CliCtr.CgroupID].RTT

	p.Client.NetNS.Exec("tc", "qdisc", "add", "dev", p.Veth.IfA, "root", "tbf", "rate", "20mbit", "burst", "16kb", "latency", "100ms")
	probes := probeTrace(t, v)
	// Twice the bytes behind the 20 mbit queue (about 5 s): ss, slow to start in a VM on a
	// busy host, takes at least 5 snapshots in that time (4 in 2.5 s were measured).
	rtts := pollSS(p.Client.NetNS, 10*time.Millisecond)
	p.Transfer(t, port, conns, 2*total)
	samples := rtts.Stop()
	queued := sub(collect(t, c, p.Live)[p.CliCtr.CgroupID].RTT, base)
	bm, qm := quantile(base, 0.5), quantile(queued, 0.5)
	t.Logf("client RTT: unshaped n=%d mean=%.1fus median <=%.0fus; behind tbf n=%d mean=%.1fus median <=%.0fus",
		base.Count(), mean(base)*1e6, bm*1e6, queued.Count(), mean(queued)*1e6, qm*1e6)
	// The mean or the median's bucket: in the 5.10 VM one slow round trip of its emulated
	// CPUs among the 3 unshaped samples once made their mean 2.1 ms (x4; 0.4 ms in the next
	// run), and unshaped medians near 1 ms sit at a bucket's edge (x8 by buckets for x10).
	if mean(queued) < 5*mean(base) && qm < 5*bm {
		t.Errorf("RTT behind tbf (mean %.1fus, median <=%.0fus) is not 5x the unshaped (mean %.1fus, median <=%.0fus)",
			mean(queued)*1e6, qm*1e6, mean(base)*1e6, bm*1e6)
	}
	compareRTT(t, v, queued, samples, conns, probes, p.Veth.AddrB)
}

func mean(h hist.Hist) float64 {
	if h.Count() == 0 {
		return 0
	}
	return h.SumSeconds() / float64(h.Count())
}

func sub(a, b hist.Hist) hist.Hist {
	d := hist.Hist{SumNs: a.SumNs - b.SumNs}
	for i := range d.Counts {
		d.Counts[i] = a.Counts[i] - b.Counts[i]
	}
	return d
}

// ssPoller samples `ss -ti` in a namespace while a transfer runs: the kernel's own smoothed
// RTT (tcpi_rtt, srtt_us >> 3) of every established connection to the server port that has
// had data acknowledged.
type ssPoller struct {
	mu      sync.Mutex
	samples []float64 // seconds
	stop    chan struct{}
	done    chan struct{}
}

var (
	rttRE   = regexp.MustCompile(`\brtt:([0-9.]+)/`)
	ackedRE = regexp.MustCompile(`\bbytes_acked:([0-9]+)`)
)

func pollSS(ns *fakepod.NetNS, every time.Duration) *ssPoller {
	s := &ssPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			out, _ := exec.Command("nsenter", "--net="+ns.Path, "ss", "-tinH", "state", "established",
				fmt.Sprintf("( dport = :%d )", port)).Output()
			for _, line := range strings.Split(string(out), "\n") {
				// A connection whose data nothing has acknowledged yet (bytes_acked 1: the
				// SYN) still has the handshake's RTT, which tcp_probe reports at most once,
				// with the first segment it receives (and on this host not when that
				// arrives in a softirq over PID 1), while ss may see it in several
				// snapshots: a CI run had 9 such values of 118 in a bucket kpod had none in.
				a := ackedRE.FindStringSubmatch(line)
				if a == nil || a[1] == "1" {
					continue
				}
				if m := rttRE.FindStringSubmatch(line); m != nil {
					if ms, err := strconv.ParseFloat(m[1], 64); err == nil {
						s.mu.Lock()
						s.samples = append(s.samples, ms/1e3)
						s.mu.Unlock()
					}
				}
			}
			select {
			case <-s.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

func (s *ssPoller) Stop() []float64 {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]float64(nil), s.samples...)
	sort.Float64s(out)
	return out
}

func meanOf(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// quantile of a histogram: the upper bound (seconds) of the bucket holding the q-th value.
func quantile(h hist.Hist, q float64) float64 {
	n := float64(h.Count())
	var acc float64
	for i, c := range h.Counts {
		acc += float64(c)
		if acc >= q*n {
			if i < len(hist.Bounds()) {
				return hist.Bounds()[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

// compareRTT checks kpod's RTT histogram of the client's conns connections against
// snapshots of ss -ti for the same connections. Both read one variable, tcp_sock.srtt_us >> 3.
//   - Per segment kpod reads it at every segment the socket receives while established
//     (tcp_probe) and ss every 10 ms or so: two samplings of one time series. A value ss
//     shows is one srtt held between two received segments, and kpod reads it at the next
//     one; so every ss value falls in a log2 bucket in which kpod has values, but for a value
//     set by the last segment received before the client's shutdown (later ACKs arrive in
//     FIN_WAIT1, where tcp_probe does not fire): at most one per connection, hence 95 %.
//   - Per socket kpod samples each socket once when it closes (no live socket is left at
//     the collection): exactly conns samples. Their values cannot be compared: the close
//     sample is the socket's srtt after ss's last snapshot, when the backlog drains (fast
//     ACKs pull srtt towards the unloaded RTT) and the FIN is answered (a delayed ACK pushes
//     it up); no tool here sees that moment (ss polls; tcp_probe stops firing in FIN_WAIT1;
//     no kprobes). CI runs saw it below every ss snapshot (128-256 us against 256 us-2 ms) and
//     above them (512 us-1 ms against at most 512 us). So only a range that catches a us/ns
//     slip (x1000) is asserted, 1 us to 1 s; the exact value of a socket's sample, against ss
//     on an idle connection, is TestTCPLiveSockets'.
//   - Per segment the means are weighted differently (per received segment, per unit of
//     time: ratios of 0.79 to 2.05 were measured, and 3.76 once under loss), so the means are
//     not compared; kpod's values are held to the kernel's record of the same events instead
//     (checkProbeRTT), which catches a unit slip and any lost or misplaced value.
func compareRTT(t *testing.T, v variant, h hist.Hist, samples []float64, conns int, probes *fakepod.Trace, server string) {
	t.Helper()
	// ss is started every 10 ms; on a slow emulated CPU it gets far fewer snapshots in (8
	// in a VM run), which still bound the buckets and the mean.
	if len(samples) < 5 {
		t.Fatalf("only %d ss samples", len(samples))
	}
	if h.Count() == 0 {
		t.Fatal("no RTT samples in kpod's histogram")
	}
	var inBuckets int
	var sh hist.Hist
	for _, s := range samples {
		b := hist.Slot(uint64(math.Round(s * 1e9)))
		sh.Counts[b]++
		if h.Counts[b] > 0 {
			inBuckets++
		}
	}
	kMean, sMean := mean(h), meanOf(samples)
	t.Logf("RTT kpod: n=%d mean=%.1fus median bucket <=%.0fus buckets %v", h.Count(), kMean*1e6, quantile(h, 0.5)*1e6, h.Counts)
	t.Logf("RTT ss:   n=%d mean=%.1fus median=%.1fus buckets %v; %d in a bucket kpod has values in",
		len(samples), sMean*1e6, samples[len(samples)/2]*1e6, sh.Counts, inBuckets)
	if v.path == PathSocket {
		if h.Count() != uint64(conns) {
			t.Errorf("%d RTT samples, want %d (one per closed socket)", h.Count(), conns)
		}
		lo, hi := hist.Slot(1000), hist.Slot(1e9)
		for b, n := range h.Counts {
			if n > 0 && (b < lo || b > hi) {
				t.Errorf("%d RTT samples in bucket %d, outside 1 us .. 1 s (%d..%d)", n, b, lo, hi)
			}
		}
		return
	}
	if float64(inBuckets) < 0.95*float64(len(samples)) {
		t.Errorf("only %d of %d ss RTT values fall in a bucket where kpod recorded values", inBuckets, len(samples))
	}
	checkProbeRTT(t, h, probes.Lines(), fmt.Sprintf("%s:%d", server, port))
}

// probeTrace records, per segment, the kernel's own record of the RTT samples that path
// takes: the tcp_probe events of the connections to the test's port (nil per socket).
func probeTrace(t *testing.T, v variant) *fakepod.Trace {
	if v.path != PathSegment {
		return nil
	}
	return fakepod.NewTrace(t, "tcp/tcp_probe", fmt.Sprintf("dport == %d", port))
}

// checkProbeRTT: per segment, kpod's client histogram holds the smoothed RTT at each
// tcp_probe event of the client's connections (those to dest) that has one: as many values
// as the kernel's record of those events, bucket by bucket, within what the record cannot
// tell. It prints srtt in whole µs (srtt_us >> 3) where kpod keeps the eighths, so a record of
// exactly 2^k µs may be in kpod's bucket k or k+1; and no BPF program runs for an event over
// PID 1's threads on the sandbox host (fakepod.OverPID1), so those may be missing from kpod's.
// (The ss comparison above samples srtt every 10 ms, kpod at every ACK: under loss their
// means differed by a factor of 3.76 once.)
func checkProbeRTT(t *testing.T, h hist.Hist, lines []string, dest string) {
	t.Helper()
	over := fakepod.OverPID1Line()
	var surely, maybe, blind int
	var mustLE, canLE [hist.Slots]uint64 // per bucket b: records surely / possibly at or below b
	var sumLo, sumHi uint64
	for _, l := range lines {
		if !strings.Contains(l, " dest="+dest+" ") {
			continue
		}
		_, rest, ok := strings.Cut(l, " srtt=")
		us, err := strconv.ParseUint(strings.Fields(rest + " ")[0], 10, 64)
		if !ok || err != nil {
			t.Fatalf("tcp_probe record without srtt: %q", l)
		}
		if us == 0 {
			continue // no RTT sample yet: kpod records nothing
		}
		lo, hi := hist.Slot(us*1000), hist.Slot(us*1000+875)
		seen := !over(l)
		for b := range hist.Slots {
			if seen && hi <= b {
				mustLE[b]++
			}
			if lo <= b {
				canLE[b]++
			}
		}
		sumHi += us*1000 + 875
		switch {
		case !seen:
			blind++
		case lo != hi:
			maybe++
			sumLo += us * 1000
		default:
			surely++
			sumLo += us * 1000
		}
	}
	t.Logf("tcp_probe records of %s with an RTT: %d (%d on a bucket boundary, %d over PID 1's threads); kpod: %d values", dest, surely+maybe+blind, maybe, blind, h.Count())
	if surely+maybe == 0 {
		t.Fatal("no tcp_probe record: the comparison proves nothing")
	}
	if n := h.Count(); n < uint64(surely+maybe) || n > uint64(surely+maybe+blind) {
		t.Errorf("kpod has %d RTT values; the kernel recorded %d events with one, %d of them over PID 1's threads", n, surely+maybe+blind, blind)
	}
	var le uint64
	for b := range hist.Slots {
		le += h.Counts[b]
		if le < mustLE[b] || le > canLE[b] {
			t.Errorf("kpod has %d RTT values at or below bucket %d; the kernel's record says %d..%d", le, b, mustLE[b], canLE[b])
		}
	}
	if h.SumNs < sumLo || h.SumNs > sumHi {
		t.Errorf("kpod's RTT sum %d ns; the kernel's record says %d..%d ns", h.SumNs, sumLo, sumHi)
	}
}

// TestKnownSocketsPreallocated: where the kernel preallocates hash maps (before 6.1; forced
// here), the table of known sockets keeps its 65,536 entries and the kernel charges all of
// them at load: its memlock (6.4+) holds at least each entry's key and value, and at most
// that plus an element header (under 128 B) and a bucket (16 B) per entry and per-CPU locks.
// The README's 7.0 MiB per node is this memlock, logged.
func TestKnownSocketsPreallocated(t *testing.T) {
	fakepod.RequireRoot(t)
	defer bpfload.ForcePreallocForTest()()
	c, err := startPath(PathSocket, "/proc", fakepod.HostLayout(t).V2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Obj.Maps[TcpMapKpodTsocks].Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.MaxEntries != 1<<16 || info.Flags&unix.BPF_F_NO_PREALLOC != 0 {
		t.Errorf("%d entries, flags %#x; want 65536, preallocated", info.MaxEntries, info.Flags)
	}
	memlock, ok := info.Memlock()
	if !ok {
		t.Logf("no memlock in the map's information before 6.4: its size is not checked")
		return
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	n := uint64(info.MaxEntries)
	lo := n * uint64(info.KeySize+info.ValueSize)
	hi := lo + n*(128+16) + uint64(ncpu)*64 + 4096
	t.Logf("kpod_tsocks preallocated: %d entries, memlock %d bytes (%.1f MiB, %.0f B per entry)", n, memlock, float64(memlock)/(1<<20), float64(memlock)/float64(n))
	if memlock < lo || memlock > hi {
		t.Errorf("memlock %d, want %d..%d", memlock, lo, hi)
	}
}
