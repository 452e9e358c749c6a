package fakepod

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Pair is a client pod and a server pod, each in its own network namespace, joined by a
// veth (client side IfA/AddrA, server side IfB/AddrB), and an idle sibling pod in a
// namespace of its own: what the network families' tests run their workloads in.
type Pair struct {
	Client, Server, Idle    *Pod
	CliCtr, SrvCtr, IdleCtr *Container
	Veth                    *Veth
	Live                    map[uint64]bool // the cgroup ids of the three pods and their containers
}

// NewPair makes a Pair; the idle pod's container is asleep before NewPair returns.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	RequireRoot(t)
	p := &Pair{
		Client: New(t, Options{NetNS: true}),
		Server: New(t, Options{NetNS: true}),
		Idle:   New(t, Options{NetNS: true}),
	}
	p.CliCtr, p.SrvCtr, p.IdleCtr = p.Client.AddContainer(), p.Server.AddContainer(), p.Idle.AddContainer()
	p.Veth = NewVeth(t, p.Client.NetNS, p.Server.NetNS)
	p.IdleCtr.Start("sleep").WaitReady()
	p.Live = map[uint64]bool{}
	for _, pod := range []*Pod{p.Client, p.Server, p.Idle} {
		p.Live[pod.CgroupID] = true
		for _, c := range pod.Containers {
			p.Live[c.CgroupID] = true
		}
	}
	return p
}

// Transfer runs the workload's tcpserver on port and its tcpclient (conns connections, total
// bytes in all, each closed after its bytes) and returns what they report having sent and
// received.
func (p *Pair) Transfer(t testing.TB, port, conns, total int) (sent, received int64) {
	t.Helper()
	srv := p.SrvCtr.Start("tcpserver", strconv.Itoa(port), strconv.Itoa(conns))
	srv.WaitReady()
	cli := p.CliCtr.Start("tcpclient", p.Veth.AddrB, strconv.Itoa(port), strconv.Itoa(conns), strconv.Itoa(total/conns))
	sent = Count(t, cli.ReadLine(), "sent")
	received = Count(t, srv.ReadLine(), "received")
	if err := cli.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("server: %v", err)
	}
	return sent, received
}

// Count parses a workload's "<word> <n>" line.
func Count(t testing.TB, line, word string) int64 {
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

// Nft runs nft inside a namespace.
func (n *NetNS) Nft(args ...string) string {
	n.t.Helper()
	return n.Exec(append([]string{"nft"}, args...)...)
}

var nftCounterRE = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// NftCounter reads the packets of a named nft counter in table (family inet).
func (n *NetNS) NftCounter(table, counter string) uint64 {
	n.t.Helper()
	out := n.Nft("list", "counter", "inet", table, counter)
	m := nftCounterRE.FindStringSubmatch(out)
	if m == nil {
		n.t.Fatalf("no packet count in %q", out)
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}

// Netstat reads the counters of /proc/net/snmp and /proc/net/netstat in the namespace, named
// like nstat does ("TcpRetransSegs", "TcpExtTCPRetransFail").
func (n *NetNS) Netstat() map[string]uint64 {
	n.t.Helper()
	out := map[string]uint64{}
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		lines := strings.Split(n.Exec("cat", f), "\n")
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

// Held is one TCP connection client → server that the client holds open after sending its
// bytes (Pair.Hold), until Close.
type Held struct {
	cli, srv *Proc
	total    int64
}

// Hold runs the workload's tcpserver on port and a tcpclient that sends total bytes over one
// connection and then holds it open.
func (p *Pair) Hold(t testing.TB, port, total int) *Held {
	t.Helper()
	srv := p.SrvCtr.Start("tcpserver", strconv.Itoa(port), "1")
	srv.WaitReady()
	cli := p.CliCtr.Start("tcpclient", p.Veth.AddrB, strconv.Itoa(port), "1", strconv.Itoa(total), "hold")
	if sent := Count(t, cli.ReadLine(), "sent"); sent != int64(total) {
		t.Fatalf("client sent %d, want %d", sent, total)
	}
	return &Held{cli: cli, srv: srv, total: int64(total)}
}

// Close ends the connection: the client exits (its socket sends a FIN), the server, having
// received every byte, reads EOF and exits; then the last ACK of the FINs is given time.
func (h *Held) Close(t testing.TB) {
	t.Helper()
	if err := h.cli.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.cli.Wait()
	if got := Count(t, h.srv.ReadLine(), "received"); got != h.total {
		t.Fatalf("server received %d, want %d", got, h.total)
	}
	if err := h.srv.Wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
}
