package tcp

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/kpod-project/kpod/internal/bpfload"
	"github.com/kpod-project/kpod/internal/bpfload/bpftest"
	"github.com/kpod-project/kpod/internal/cgroupfs"
	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/hist"
	"github.com/kpod-project/kpod/internal/podid"
	"github.com/kpod-project/kpod/internal/tcpdrop"
)

const port = 5201

// pair is a client pod and a server pod, each in its own network namespace, joined by a
// veth (client side IfA/AddrA, server side IfB/AddrB), and an idle sibling pod.
type pair struct {
	client, server, idle    *fakepod.Pod
	cliCtr, srvCtr, idleCtr *fakepod.Container
	veth                    *fakepod.Veth
	live                    map[uint64]bool
}

func newPair(t *testing.T) *pair {
	t.Helper()
	fakepod.RequireRoot(t)
	p := &pair{
		client: fakepod.New(t, fakepod.Options{NetNS: true}),
		server: fakepod.New(t, fakepod.Options{NetNS: true}),
		idle:   fakepod.New(t, fakepod.Options{NetNS: true}),
	}
	p.cliCtr, p.srvCtr, p.idleCtr = p.client.AddContainer(), p.server.AddContainer(), p.idle.AddContainer()
	p.veth = fakepod.NewVeth(t, p.client.NetNS, p.server.NetNS)
	p.idleCtr.Start("sleep").WaitReady()
	p.live = map[uint64]bool{}
	for _, pod := range []*fakepod.Pod{p.client, p.server, p.idle} {
		p.live[pod.CgroupID] = true
		for _, c := range pod.Containers {
			p.live[c.CgroupID] = true
		}
	}
	return p
}

// transfer runs the server and the client (conns connections, total bytes in all) and
// returns what the workloads report having sent and received.
func (p *pair) transfer(t *testing.T, conns, total int) (sent, received int64) {
	t.Helper()
	srv := p.srvCtr.Start("tcpserver", strconv.Itoa(port), strconv.Itoa(conns))
	srv.WaitReady()
	cli := p.cliCtr.Start("tcpclient", p.veth.AddrB, strconv.Itoa(port), strconv.Itoa(conns), strconv.Itoa(total/conns))
	sent = parseCount(t, cli.ReadLine(), "sent")
	received = parseCount(t, srv.ReadLine(), "received")
	if err := cli.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("server: %v", err)
	}
	return sent, received
}

func parseCount(t *testing.T, line, word string) int64 {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != word {
		t.Fatalf("workload printed %q, want %q <n>", line, word)
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// collector is what the tests read: the tcp or the tcpdrop family's collector.
type collector[V any] interface {
	Collect(context.Context, *podid.Index) (map[uint64]V, error)
}

func collect[V any](t *testing.T, c collector[V], live map[uint64]bool) map[uint64]V {
	t.Helper()
	st, err := c.Collect(context.Background(), &podid.Index{Live: live})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// onRung starts a family on one rung and checks the rung.
func onRung[C interface{ Objects() []*bpfload.Object }](t *testing.T, start func() (C, error), rung string) C {
	t.Helper()
	bpftest.On(t, rung)
	c, err := start()
	if err != nil {
		t.Fatal(err)
	}
	obj := c.Objects()[0]
	t.Cleanup(func() { obj.Close() })
	for _, p := range obj.Programs {
		t.Logf("%s: %s on %s as %s (load %v)", obj.Family, p.Name, p.Hook, p.Kind, p.LoadDuration.Round(time.Millisecond))
	}
	bpftest.CheckRung(t, obj, rung)
	return c
}

func startTCP(t *testing.T, rung string) *bpfload.Source[Stats] { return onRung(t, Start, rung) }
func startDrops(t *testing.T, rung string) *bpfload.Source[tcpdrop.Stats] {
	return onRung(t, tcpdrop.Start, rung)
}

func checkNoLostUpdates(t *testing.T, cs ...interface{ Objects() []*bpfload.Object }) {
	t.Helper()
	for _, c := range cs {
		obj := c.Objects()[0]
		errs, err := obj.UpdateErrors()
		if err != nil {
			t.Fatal(err)
		}
		for m, n := range errs {
			if n != 0 {
				t.Errorf("%s: %d failed updates of %s", obj.Family, n, m)
			}
		}
	}
}

// TestStartClose: Start loads every hook of the tcp and tcpdrop families (tp_btf here).
func TestStartClose(t *testing.T) {
	fakepod.RequireRoot(t)
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	d, err := tcpdrop.Start()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		obj   *bpfload.Object
		progs int
		maps  []string
	}{
		{c.Obj, len(Spec().Hooks), []string{TcpMapKpodTcp, TcpMapKpodTcpErr}},
		{d.Obj, len(tcpdrop.Spec().Hooks), []string{tcpdrop.TcpdropMapKpodTdrop, tcpdrop.TcpdropMapKpodTdropErr}},
	} {
		if len(tc.obj.Programs) != tc.progs || len(tc.obj.Missing) != 0 {
			t.Errorf("%s: %d programs attached, want %d (missing %v)", tc.obj.Family, len(tc.obj.Programs), tc.progs, tc.obj.Missing)
		}
		for _, m := range tc.maps {
			if _, ok := tc.obj.Maps[m]; !ok {
				t.Errorf("%s: no map %s", tc.obj.Family, m)
			}
		}
	}
	collect(t, c, nil)
	collect(t, d, nil)
	for _, err := range []error{c.Close(), d.Close()} {
		if err != nil {
			t.Error(err)
		}
	}
}

// idleHasNothing: the idle pod (its own netns, a sleeping process) has no TCP activity.
func idleHasNothing[V any](t *testing.T, p *pair, st map[uint64]V, what string) {
	t.Helper()
	for _, id := range []uint64{p.idle.CgroupID, p.idleCtr.CgroupID} {
		if s, ok := st[id]; ok {
			t.Errorf("%s: the idle pod's cgroup %d has %+v", what, id, s)
		}
	}
}

// TestTCPBytesAndConnections: bytes are charged to the task that sends or receives them,
// connections to the socket's cgroup with their direction, exactly; nothing to an idle pod.
// The per-program cost is measured with BPF stats on the way.
func TestTCPBytesAndConnections(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realTCPBytesAndConnections(t, rung) })
	}
}

func realTCPBytesAndConnections(t *testing.T, rung string) {
	logCosts := bpftest.EnableStats(t)
	const conns, total = 6, 24 << 20
	p := newPair(t)
	c, d := startTCP(t, rung), startDrops(t, rung)

	watch := watchLinks(t, []string{"sock_send_length", "sock_recv_length", "inet_sock_set_state"}, c, d)
	sent, received := p.transfer(t, conns, total)
	if sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	st := collect(t, c, p.live)
	churn := watch.Stop()
	cli, srv := st[p.cliCtr.CgroupID], st[p.srvCtr.CgroupID]
	t.Logf("client: sent=%d received=%d active=%d passive=%d retrans=%d rtt n=%d mean=%.1fus",
		cli.BytesSent, cli.BytesReceived, cli.ConnsActive, cli.ConnsPassive, cli.Retransmits, cli.RTT.Count(), mean(cli.RTT)*1e6)
	t.Logf("server: sent=%d received=%d active=%d passive=%d retrans=%d rtt n=%d mean=%.1fus",
		srv.BytesSent, srv.BytesReceived, srv.ConnsActive, srv.ConnsPassive, srv.Retransmits, srv.RTT.Count(), mean(srv.RTT)*1e6)

	// The workloads' sockets are the only TCP sockets of the two pods and every byte goes
	// through one write or read on them: the counts are exact (well inside the 1 % asked).
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
		exact(t, churn, tc.what, tc.got, tc.want)
	}
	if cli.RTT.Count() == 0 || srv.RTT.Count() == 0 {
		t.Errorf("no RTT samples: client %d, server %d", cli.RTT.Count(), srv.RTT.Count())
	}
	// Pod-level cgroups hold no process: nothing is charged to them.
	for _, id := range []uint64{p.client.CgroupID, p.server.CgroupID} {
		if s, ok := st[id]; ok {
			t.Errorf("pod cgroup %d has %+v", id, s)
		}
	}
	idleHasNothing(t, p, st, "tcp")
	idleHasNothing(t, p, collect(t, d, p.live), "tcpdrop")
	checkNoLostUpdates(t, c, d)
	logCosts(c.Obj, d.Obj)

	// A cgroup missing from the live tree at two collections in a row loses its entries.
	gone := map[uint64]bool{}
	for id := range p.live {
		gone[id] = id != p.cliCtr.CgroupID
	}
	collect(t, c, gone)
	collect(t, c, gone)
	st = collect(t, c, gone)
	if _, ok := st[p.cliCtr.CgroupID]; ok {
		t.Errorf("the removed client cgroup was not swept")
	}
	if _, ok := st[p.srvCtr.CgroupID]; !ok {
		t.Errorf("the live server cgroup was swept")
	}
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

// nft runs nft inside a namespace.
func nft(ns *fakepod.NetNS, args ...string) string {
	return ns.Exec(append([]string{"nft"}, args...)...)
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// netstat reads the named counters of /proc/net/snmp and /proc/net/netstat in a namespace.
func netstat(t *testing.T, ns *fakepod.NetNS) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		lines := strings.Split(ns.Exec("cat", f), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) != len(vals) || len(names) == 0 {
				continue
			}
			for j := 1; j < len(names); j++ {
				if v, err := strconv.ParseUint(vals[j], 10, 64); err == nil {
					out[strings.TrimSuffix(names[0], ":")+names[j]] = v
				}
			}
		}
	}
	return out
}

// ssPoller samples `ss -ti` in a namespace while a transfer runs: the kernel's own smoothed
// RTT (tcpi_rtt, srtt_us >> 3) of every established connection to the server port.
type ssPoller struct {
	mu      sync.Mutex
	samples []float64 // seconds
	stop    chan struct{}
	done    chan struct{}
}

var rttRE = regexp.MustCompile(`\brtt:([0-9.]+)/`)

func pollSS(ns *fakepod.NetNS, every time.Duration) *ssPoller {
	s := &ssPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			out, _ := exec.Command("nsenter", "--net="+ns.Path, "ss", "-tinH", "state", "established",
				fmt.Sprintf("( dport = :%d )", port)).Output()
			for _, m := range rttRE.FindAllStringSubmatch(string(out), -1) {
				if ms, err := strconv.ParseFloat(m[1], 64); err == nil {
					s.mu.Lock()
					s.samples = append(s.samples, ms/1e3)
					s.mu.Unlock()
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

// TestTCPLossRetransmitsDropsRTT: an nft rule in the server's namespace drops a random 10 %
// of the client's data segments (never the handshake, never a bare ACK or FIN: they are
// shorter than 100 bytes) and counts them. The client, whose segments are lost, retransmits;
// the server does not. The server pod is charged exactly the packets nft dropped, with the
// reason netfilter_drop. The client's RTT histogram agrees with ss -ti.
func TestTCPLossRetransmitsDropsRTT(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realTCPLossRetransmitsDropsRTT(t, rung) })
	}
}

func realTCPLossRetransmitsDropsRTT(t *testing.T, rung string) {
	const conns, total = 4, 64 << 20
	logCosts := bpftest.EnableStats(t)
	p := newPair(t)
	srvNS := p.server.NetNS
	// Early demux (on by default, set here so the test does not depend on it) attaches the
	// established socket to a segment before the INPUT hook: that is how a netfilter drop
	// in INPUT finds its socket, and so the pod to charge.
	srvNS.Exec("sysctl", "-qw", "net.ipv4.ip_early_demux=1", "net.ipv4.tcp_early_demux=1")
	nft(srvNS, "add", "table", "inet", "kpodloss")
	nft(srvNS, "add", "counter", "inet", "kpodloss", "dropped")
	nft(srvNS, "add", "chain", "inet", "kpodloss", "input", "{ type filter hook input priority 0; policy accept; }")
	nft(srvNS, "add", "rule", "inet", "kpodloss", "input", "ip", "saddr", p.veth.AddrA, "tcp", "dport", strconv.Itoa(port),
		"meta", "length", "gt", "100", "numgen", "random", "mod", "10", "eq", "0", "counter", "name", "dropped", "drop")
	c, d := startTCP(t, rung), startDrops(t, rung)
	cliBefore, srvBefore := netstat(t, p.client.NetNS), netstat(t, srvNS)

	watch := watchLinks(t, []string{"kfree_skb", "tcp_retransmit_skb", "sock_send_length", "inet_sock_set_state", "sock_recv_length"}, c, d)
	ss := pollSS(p.client.NetNS, 10*time.Millisecond)
	sent, received := p.transfer(t, conns, total)
	samples := ss.Stop()
	if sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	// The kernel's counters, read once they stop moving: on a loaded machine ksoftirqd can
	// hold packets of the transfer in a backlog for a while after both workloads exited.
	var nftDropped uint64
	var cliAfter, srvAfter map[string]uint64
	kernel := func() [4]uint64 {
		m := counterRE.FindStringSubmatch(nft(srvNS, "list", "counter", "inet", "kpodloss", "dropped"))
		if m == nil {
			t.Fatal("cannot read the nft counter")
		}
		nftDropped, _ = strconv.ParseUint(m[1], 10, 64)
		cliAfter, srvAfter = netstat(t, p.client.NetNS), netstat(t, srvNS)
		return [4]uint64{nftDropped, cliAfter["TcpRetransSegs"], cliAfter["TcpExtTCPRetransFail"], srvAfter["TcpRetransSegs"]}
	}
	settled := kernel()
	for i := 0; i < 30; i++ {
		time.Sleep(100 * time.Millisecond)
		now := kernel()
		if now == settled {
			break
		}
		t.Logf("kernel counters still moving: %v -> %v", settled, now)
		settled = now
	}
	st, drops := collect(t, c, p.live), collect(t, d, p.live)
	churn := watch.Stop()
	t.Logf("%d attach/detach events of other BPF programs on these tracepoints meanwhile", len(churn))
	if now := kernel(); now != settled {
		t.Fatalf("kernel counters moved while kpod was read: %v -> %v", settled, now)
	}
	cli, srv := st[p.cliCtr.CgroupID], st[p.srvCtr.CgroupID]
	cliDrops, srvDrops := drops[p.cliCtr.CgroupID], drops[p.srvCtr.CgroupID]
	delta := func(a, b map[string]uint64, k string) uint64 { return a[k] - b[k] }
	t.Logf("nft dropped %d packets; server drops %v; client drops %v; node drops %v", nftDropped, srvDrops, cliDrops, drops[bpfload.NodeID])
	t.Logf("client: retrans=%d (netns RetransSegs +%d, TCPRetransFail +%d); server: retrans=%d (netns RetransSegs +%d)",
		cli.Retransmits, delta(cliAfter, cliBefore, "TcpRetransSegs"), delta(cliAfter, cliBefore, "TcpExtTCPRetransFail"),
		srv.Retransmits, delta(srvAfter, srvBefore, "TcpRetransSegs"))

	if nftDropped == 0 {
		t.Fatal("nft dropped nothing: the test proves nothing")
	}
	exact(t, churn, "server pod netfilter_drop drops (nft's counter)", srvDrops["netfilter_drop"], nftDropped)
	if got := cliDrops["netfilter_drop"]; got != 0 {
		t.Errorf("client pod: %d netfilter_drop drops, want 0", got)
	}
	if cli.Retransmits == 0 {
		t.Errorf("client pod: no retransmits although %d data segments were dropped", nftDropped)
	}
	// Exactly the segments the kernel counts as retransmitted and sent, in the client's
	// namespace (the client is its only TCP user).
	exact(t, churn, "client pod retransmitted segments (RetransSegs - TCPRetransFail)", cli.Retransmits,
		delta(cliAfter, cliBefore, "TcpRetransSegs")-delta(cliAfter, cliBefore, "TcpExtTCPRetransFail"))
	if srv.Retransmits != 0 {
		t.Errorf("server pod: %d retransmits, want 0 (nothing it sends is dropped)", srv.Retransmits)
	}
	exact(t, churn, "client active connections", cli.ConnsActive, conns)
	exact(t, churn, "server passive connections", srv.ConnsPassive, conns)
	exact(t, churn, "client bytes sent", cli.BytesSent, total)
	exact(t, churn, "server bytes received", srv.BytesReceived, total)
	idleHasNothing(t, p, st, "tcp")
	idleHasNothing(t, p, drops, "tcpdrop")
	checkNoLostUpdates(t, c, d)
	logCosts(c.Obj, d.Obj)
	compareRTT(t, cli.RTT, samples)

	// Sweeping never removes the node-level bucket of drops no pod owns.
	collect(t, d, nil)
	collect(t, d, nil)
	after := collect(t, d, nil)
	if _, ok := after[p.srvCtr.CgroupID]; ok {
		t.Errorf("the server's drops survived two collections without it in the live tree")
	}
	if _, had := drops[bpfload.NodeID]; had {
		if _, ok := after[bpfload.NodeID]; !ok {
			t.Errorf("the node-level drop bucket was swept")
		}
	}
}

// compareRTT checks kpod's RTT histogram against snapshots of ss -ti for the same
// connections. Both read one variable, tcp_sock.srtt_us >> 3, but kpod reads it at every
// segment the socket receives while established (tcp_probe, just before the segment updates
// it) and ss every 10 ms or so: two samplings of one time series, not the same numbers.
//   - Values: a value ss shows is one srtt held between two received segments, and kpod
//     reads it at the next one; so every ss value falls in a log2 bucket in which kpod has
//     values. The exception is a value set by the last segment received before the client's
//     shutdown (later ACKs arrive in FIN_WAIT1, where tcp_probe does not fire): at most one
//     per connection, hence 95 % and not 100 % (100 % in every run so far).
//   - Level: the means are weighted differently, kpod's per received segment, ss's per unit
//     of time (a loss recovery has many duplicate ACKs in little time and weighs more in
//     kpod; an idle stretch weighs more in ss). Measured ratios were 0.79 to 2.05, so the
//     means must agree within a factor of 3: that still catches any unit slip (x8 for an
//     unshifted srtt_us, x1000 for us/ns), which would put them 8x or more apart.
func compareRTT(t *testing.T, h hist.Hist, samples []float64) {
	t.Helper()
	if len(samples) < 10 {
		t.Fatalf("only %d ss samples", len(samples))
	}
	if h.Count() == 0 {
		t.Fatal("no RTT samples in kpod's histogram")
	}
	var inBuckets int
	var sh hist.Hist
	for _, v := range samples {
		b := hist.Slot(uint64(math.Round(v * 1e9)))
		sh.Counts[b]++
		if h.Counts[b] > 0 {
			inBuckets++
		}
	}
	kMean, sMean := mean(h), meanOf(samples)
	kMed, sMed := quantile(h, 0.5), samples[len(samples)/2]
	t.Logf("RTT kpod: n=%d mean=%.1fus median bucket <=%.0fus buckets %v", h.Count(), kMean*1e6, kMed*1e6, h.Counts)
	t.Logf("RTT ss:   n=%d mean=%.1fus median=%.1fus buckets %v; %d in a bucket kpod has values in",
		len(samples), sMean*1e6, sMed*1e6, sh.Counts, inBuckets)
	if float64(inBuckets) < 0.95*float64(len(samples)) {
		t.Errorf("only %d of %d ss RTT values fall in a bucket where kpod recorded values", inBuckets, len(samples))
	}
	if r := kMean / sMean; r < 1.0/3 || r > 3 {
		t.Errorf("RTT mean: kpod %.1fus, ss %.1fus (ratio %.2f, want 1/3..3)", kMean*1e6, sMean*1e6, r)
	}
}

// TestTCPRTTQueue: a tbf rate limit on the client's veth builds a queue in front of the
// link; the client's smoothed RTT, as kpod records it, grows by a large factor (10x asked;
// about 2000x measured: tens of us unshaped, tens of ms behind a 100 ms tbf queue), and
// still agrees with ss -ti. Packets tbf drops are charged to the client, with their reason.
func TestTCPRTTQueue(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realTCPRTTQueue(t, rung) })
	}
}

func realTCPRTTQueue(t *testing.T, rung string) {
	const conns, total = 3, 6 << 20
	p := newPair(t)
	c, d := startTCP(t, rung), startDrops(t, rung)

	p.transfer(t, conns, total)
	base := collect(t, c, p.live)[p.cliCtr.CgroupID].RTT

	dropsBefore := collect(t, d, p.live)
	watch := watchLinks(t, []string{"kfree_skb"}, c, d)
	p.client.NetNS.Exec("tc", "qdisc", "add", "dev", p.veth.IfA, "root", "tbf", "rate", "20mbit", "burst", "16kb", "latency", "100ms")
	ss := pollSS(p.client.NetNS, 10*time.Millisecond)
	p.transfer(t, conns, total)
	samples := ss.Stop()
	after := collect(t, c, p.live)[p.cliCtr.CgroupID].RTT
	queued := sub(after, base)
	drops := collect(t, d, p.live)
	churn := watch.Stop()
	tcOut := p.client.NetNS.Exec("tc", "-s", "qdisc", "show", "dev", p.veth.IfA)
	m := regexp.MustCompile(`dropped (\d+)`).FindStringSubmatch(tcOut)
	if m == nil {
		t.Fatalf("no drop count in %q", tcOut)
	}
	tbfDropped, _ := strconv.ParseUint(m[1], 10, 64)
	t.Logf("tbf dropped %d; drops: client %v server %v node %v", tbfDropped,
		drops[p.cliCtr.CgroupID], drops[p.srvCtr.CgroupID], drops[bpfload.NodeID])
	// What the qdisc drops on transmit still belongs to the sending socket (skb->sk): the
	// client's, or, for an ACK or RST the client namespace sends after the client socket
	// is gone (answering a late server FIN), a TIME_WAIT minisocket or the namespace's
	// control socket, both charged to the node bucket. The node bucket is shared with the
	// whole machine, so its part is bounded from above only. (In about 90 runs all tbf
	// drops were the client's except once, 49 of 50, before kernel sockets went to the node
	// bucket; where that one went was not captured.)
	cliQ := drops[p.cliCtr.CgroupID]["qdisc_drop"]
	nodeQ := drops[bpfload.NodeID]["qdisc_drop"] - dropsBefore[bpfload.NodeID]["qdisc_drop"]
	if cliQ > tbfDropped || (cliQ+nodeQ < tbfDropped && len(churn) == 0) {
		t.Errorf("client pod: %d qdisc_drop drops, node bucket +%d, tbf dropped %d", cliQ, nodeQ, tbfDropped)
	} else if cliQ+nodeQ < tbfDropped {
		t.Logf("client pod: %d qdisc_drop drops of %d, while other BPF programs came or went: %v", cliQ, tbfDropped, churn)
	}
	for id, s := range drops {
		if id != p.cliCtr.CgroupID && id != bpfload.NodeID && s["qdisc_drop"] > dropsBefore[id]["qdisc_drop"] {
			t.Errorf("cgroup %d was charged qdisc drops: %v", id, s)
		}
	}

	t.Logf("client RTT: unshaped n=%d mean=%.1fus; behind tbf n=%d mean=%.1fus (x%.0f)",
		base.Count(), mean(base)*1e6, queued.Count(), mean(queued)*1e6, mean(queued)/mean(base))
	if mean(queued) < 10*mean(base) {
		t.Errorf("RTT mean behind tbf %.1fus is not 10x the unshaped %.1fus", mean(queued)*1e6, mean(base)*1e6)
	}
	compareRTT(t, queued, samples)
}

// ownCgroup is the cgroup v2 id of the test process, which is also the cgroup of the
// kernel sockets of the namespaces it creates (ip netns add runs in it).
func ownCgroup(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rel, ok := strings.CutPrefix(line, "0::"); ok {
			id, err := cgroupfs.Inode(filepath.Join(fakepod.HostLayout(t).V2, rel))
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
	}
	t.Fatal("no cgroup v2 line in /proc/self/cgroup")
	return 0
}

// TestTCPDropsWithoutPodSocket: TCP drops that no pod's socket owns go to the node-level
// bucket (bpfload.NodeID), not to a pod and not to whoever created the namespace. The client
// pod connects to a port nobody listens on in the server's namespace: its SYN is dropped
// there without a socket (no_socket), and the RST the namespace's control socket (a kernel
// socket) sends back is dropped by an nft OUTPUT rule (netfilter_drop).
func TestTCPDropsWithoutPodSocket(t *testing.T) {
	fakepod.RequireRoot(t)
	for _, rung := range bpftest.Rungs {
		t.Run(rung, func(t *testing.T) { realTCPDropsWithoutPodSocket(t, rung) })
	}
}

func realTCPDropsWithoutPodSocket(t *testing.T, rung string) {
	const closedPort = "5299"
	p := newPair(t)
	srvNS := p.server.NetNS
	nft(srvNS, "add", "table", "inet", "kpodrst")
	nft(srvNS, "add", "counter", "inet", "kpodrst", "rsts")
	nft(srvNS, "add", "chain", "inet", "kpodrst", "output", "{ type filter hook output priority 0; policy accept; }")
	nft(srvNS, "add", "rule", "inet", "kpodrst", "output", "tcp", "sport", closedPort, "tcp", "flags", "rst",
		"counter", "name", "rsts", "drop")
	d := startDrops(t, rung)
	before := collect(t, d, p.live)

	// Without its RST the client keeps resending its SYN; stop it after the first answer.
	cli := p.cliCtr.Start("tcpclient", p.veth.AddrB, closedPort, "1", "1")
	var rsts uint64
	for deadline := time.Now().Add(10 * time.Second); rsts == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := counterRE.FindStringSubmatch(nft(srvNS, "list", "counter", "inet", "kpodrst", "rsts")); m != nil {
			rsts, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	_ = cli.Cmd.Process.Kill()
	_ = cli.Wait()
	if rsts == 0 {
		t.Fatal("no RST was dropped")
	}
	m := counterRE.FindStringSubmatch(nft(srvNS, "list", "counter", "inet", "kpodrst", "rsts"))
	rsts, _ = strconv.ParseUint(m[1], 10, 64)
	after := collect(t, d, p.live)

	node := func(st map[uint64]tcpdrop.Stats, r string) uint64 { return st[bpfload.NodeID][r] }
	noSocket := node(after, "no_socket") - node(before, "no_socket")
	netfilter := node(after, "netfilter_drop") - node(before, "netfilter_drop")
	t.Logf("nft dropped %d RSTs; node bucket: +%d no_socket, +%d netfilter_drop", rsts, noSocket, netfilter)
	// Every SYN that reached the closed port was dropped without a socket and answered by
	// one RST; the node bucket is shared with the rest of the machine, hence >=.
	if noSocket < rsts {
		t.Errorf("node bucket: %d no_socket drops, want at least the %d SYNs answered", noSocket, rsts)
	}
	if netfilter < rsts {
		t.Errorf("node bucket: %d netfilter_drop drops, want at least the %d RSTs nft dropped", netfilter, rsts)
	}
	for what, id := range map[string]uint64{"client": p.cliCtr.CgroupID, "server": p.srvCtr.CgroupID} {
		if s, ok := after[id]; ok && len(s) > 0 {
			t.Errorf("%s cgroup %d was charged %v", what, id, s)
		}
	}
	// The control socket has the cgroup of the test process (which created the namespace);
	// that cgroup may be shared with the rest of the machine (the root), so only its
	// netfilter drops are looked at.
	own := ownCgroup(t)
	if n := after[own]["netfilter_drop"] - before[own]["netfilter_drop"]; n != 0 {
		t.Errorf("the test process's cgroup %d was charged %d netfilter drops", own, n)
	}
	idleHasNothing(t, p, after, "tcpdrop")
}

// linkWatch records whether BPF programs other than ours were attached to or detached from
// some tracepoints while it ran. The kernel can fail to deliver an event to a BPF program on
// a tracepoint while another BPF program is being attached to or detached from that same
// tracepoint (seen on this 6.18 kernel: an ftrace probe on the tracepoint recorded the event,
// our program ran neither nor counted a recursion miss). Counts are exact only without such
// churn; the tests check which case they are in.
type linkWatch struct {
	stop    chan struct{}
	done    chan struct{}
	churned []string
}

// tracepointLinks lists the BPF links (raw_tp and tp_btf) on the named tracepoints whose
// program is not one of ours.
func tracepointLinks(kernel *btf.Spec, names map[string]bool, ours map[ebpf.ProgramID]bool) map[link.ID]string {
	out := map[link.ID]string{}
	var it link.Iterator
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || ours[info.Program] {
			continue
		}
		var tp string
		if rt := info.RawTracepoint(); rt != nil {
			tp = rt.Name
		} else if tr := info.Tracing(); tr != nil {
			if typ, err := kernel.TypeByID(btf.TypeID(tr.TargetBtfId)); err == nil {
				tp = strings.TrimPrefix(typ.TypeName(), "btf_trace_")
			}
		}
		if names[tp] {
			out[it.ID] = tp
		}
	}
	it.Close()
	return out
}

// watchLinks polls the links of the tracepoints every few milliseconds until Stop.
func watchLinks(t *testing.T, tracepoints []string, cs ...interface{ Objects() []*bpfload.Object }) *linkWatch {
	t.Helper()
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tp := range tracepoints {
		names[tp] = true
	}
	ours := map[ebpf.ProgramID]bool{}
	for _, c := range cs {
		for _, p := range c.Objects()[0].Programs {
			info, err := p.Prog.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := info.ID()
			ours[id] = true
		}
	}
	w := &linkWatch{stop: make(chan struct{}), done: make(chan struct{})}
	first := tracepointLinks(kernel, names, ours)
	go func() {
		defer close(w.done)
		seen := map[link.ID]bool{}
		for {
			now := tracepointLinks(kernel, names, ours)
			for id, tp := range now {
				if _, ok := first[id]; !ok && !seen[id] {
					seen[id] = true
					w.churned = append(w.churned, fmt.Sprintf("link %d attached to %s", id, tp))
				}
			}
			for id, tp := range first {
				if _, ok := now[id]; !ok && !seen[id] {
					seen[id] = true
					w.churned = append(w.churned, fmt.Sprintf("link %d detached from %s", id, tp))
				}
			}
			select {
			case <-w.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return w
}

// Stop ends the watch and returns what changed (nothing: counts must be exact).
func (w *linkWatch) Stop() []string {
	close(w.stop)
	<-w.done
	return w.churned
}

// exact checks a kpod count against the kernel's own: equal when no other BPF program came
// or went on the tracepoints meanwhile (churn empty), otherwise never more, and the events
// the kernel did not deliver are logged.
func exact(t *testing.T, churn []string, what string, got, want uint64) {
	t.Helper()
	switch {
	case got == want:
	case got > want:
		t.Errorf("%s = %d, more than the %d the kernel counted", what, got, want)
	case len(churn) == 0:
		t.Errorf("%s = %d, want %d", what, got, want)
	default:
		t.Logf("%s = %d of %d: the rest were not delivered while other BPF programs were attached or detached (%d times, first: %s)",
			what, got, want, len(churn), churn[0])
	}
}
