package topology

import (
	"net/netip"
	"strings"
	"testing"
)

// Lines as Linux 6.1 and 6.18 print /proc/net/nf_conntrack.
const ctSample = `ipv4     2 tcp      6 117 TIME_WAIT src=10.244.0.5 dst=10.96.12.7 sport=40312 dport=80 src=10.244.0.9 dst=10.244.0.5 sport=8080 dport=40312 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.244.0.5 dst=10.96.12.7 sport=40314 dport=80 src=10.244.0.11 dst=10.244.0.5 sport=8080 dport=40314 [ASSURED] mark=0 zone=0 use=2
ipv4     2 udp      17 28 src=10.244.0.5 dst=10.96.0.10 sport=51000 dport=53 src=10.244.0.3 dst=10.244.0.5 sport=53 dport=51000 mark=0 zone=0 use=2
ipv4     2 tcp      6 86 SYN_SENT src=10.244.0.5 dst=10.96.12.7 sport=40316 dport=80 [UNREPLIED] src=10.244.0.9 dst=10.244.0.5 sport=8080 dport=40316 mark=0 zone=0 use=2
ipv4     2 tcp      6 29 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=51300 dport=2379 src=127.0.0.1 dst=127.0.0.1 sport=2379 dport=51300 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 29 ESTABLISHED src=10.244.0.6 dst=10.96.12.8 sport=40000 dport=80 src=10.96.12.8 dst=10.244.0.6 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=10.244.0.5 dst=10.96.12.7 type=8 code=0 id=7 src=10.244.0.9 dst=10.244.0.5 type=0 code=0 id=7 mark=0 use=1
ipv6     10 tcp      6 300 ESTABLISHED src=fd00:0000:0000:0000:0000:0000:0000:0005 dst=fd00:0000:0000:0000:0000:0000:0001:0007 sport=41000 dport=443 src=fd00:0000:0000:0000:0000:0000:0000:0009 dst=fd00:0000:0000:0000:0000:0000:0000:0005 sport=8443 dport=41000 [ASSURED] mark=0 zone=0 use=2
`

var ctServices = map[netip.Addr]bool{
	netip.MustParseAddr("10.96.12.7"): true, netip.MustParseAddr("10.96.0.10"): true,
	netip.MustParseAddr("10.96.12.8"): true, netip.MustParseAddr("fd00::1:7"): true,
}

// TestParseConntrack: each NATed TCP or UDP connection to a Service address maps to the
// reply's source (the backend), found by its full tuple and, for unbound sockets, without the
// local address; other entries (loopback, no NAT, not a Service, ICMP) are not kept.
func TestParseConntrack(t *testing.T) {
	tbl, err := parseConntrack(strings.NewReader(ctSample), ctServices)
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		k    ctTuple
		want string
	}{
		{ctTuple{local: a("10.244.0.5"), service: a("10.96.12.7"), localPort: 40312, servicePort: 80}, "10.244.0.9"},
		{ctTuple{local: a("10.244.0.5"), service: a("10.96.12.7"), localPort: 40314, servicePort: 80}, "10.244.0.11"},
		{ctTuple{local: a("10.244.0.5"), service: a("10.96.12.7"), localPort: 40316, servicePort: 80}, "10.244.0.9"},
		{ctTuple{udp: true, local: a("10.244.0.5"), service: a("10.96.0.10"), localPort: 51000, servicePort: 53}, "10.244.0.3"},
		{ctTuple{udp: true, service: a("10.96.0.10"), localPort: 51000, servicePort: 53}, "10.244.0.3"}, // unbound socket
		{ctTuple{local: a("fd00::5"), service: a("fd00::1:7"), localPort: 41000, servicePort: 443}, "fd00::9"},
		{ctTuple{local: a("10.244.0.5"), service: a("10.96.0.10"), localPort: 51000, servicePort: 53}, ""}, // TCP, not UDP
		{ctTuple{local: a("10.244.0.6"), service: a("10.96.12.8"), localPort: 40000, servicePort: 80}, ""}, // not NATed
		{ctTuple{local: a("10.244.0.5"), service: a("10.96.12.7"), localPort: 1, servicePort: 80}, ""},
	} {
		got, ok := tbl.lookup(tc.k)
		if tc.want == "" && ok || tc.want != "" && (!ok || got != a(tc.want)) {
			t.Errorf("lookup %+v: %v %v, want %q", tc.k, got, ok, tc.want)
		}
	}
	if len(tbl.exact) != 5 {
		t.Errorf("kept %d entries, want 5: %v", len(tbl.exact), tbl.exact)
	}
}

// TestParseConntrackAmbiguous: an unbound socket's tuple matching two entries with different
// backends names none.
func TestParseConntrackAmbiguous(t *testing.T) {
	in := `ipv4 2 udp 17 28 src=10.244.0.5 dst=10.96.0.10 sport=51000 dport=53 src=10.244.0.3 dst=10.244.0.5 sport=53 dport=51000 mark=0 use=2
ipv4 2 udp 17 28 src=10.244.0.6 dst=10.96.0.10 sport=51000 dport=53 src=10.244.0.4 dst=10.244.0.6 sport=53 dport=51000 mark=0 use=2
`
	tbl, err := parseConntrack(strings.NewReader(in), ctServices)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tbl.lookup(ctTuple{udp: true, service: netip.MustParseAddr("10.96.0.10"), localPort: 51000, servicePort: 53}); ok {
		t.Errorf("ambiguous tuple named %v", got)
	}
}

// TestParseConntrackBad: malformed lines are an error naming their line numbers (the first
// three, then a count), and the good lines around them are still used.
func TestParseConntrackBad(t *testing.T) {
	good := strings.Split(ctSample, "\n")[0]
	in := strings.Join([]string{
		"ipv4 2 tcp",
		good,
		"ipv4 2 tcp 6 1 ESTABLISHED src=10.244.0.5 dst=10.96.12.7 sport=40312 dport=80",
		"ipv4 2 tcp 6 1 ESTABLISHED src=10.244.0.x dst=10.96.12.7 sport=1 dport=80 src=10.244.0.9 dst=10.244.0.5 sport=8080 dport=1",
		"ipv4 2 tcp 6 1 ESTABLISHED src=10.244.0.5 dst=10.96.12.7 sport=99999 dport=80 src=10.244.0.9 dst=10.244.0.5 sport=8080 dport=1",
		"ipv4 2 udp 17 1 src=10.244.0.5",
	}, "\n")
	tbl, err := parseConntrack(strings.NewReader(in), ctServices)
	want := "conntrack table: line 1: fewer than 4 fields\nline 3: not two tuples of src, dst, sport and dport\n" +
		"line 4: src=\"10.244.0.x\": not an address\n2 more malformed lines"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if got, ok := tbl.lookup(ctTuple{local: netip.MustParseAddr("10.244.0.5"), service: netip.MustParseAddr("10.96.12.7"), localPort: 40312, servicePort: 80}); !ok || got != netip.MustParseAddr("10.244.0.9") {
		t.Errorf("the good line: %v %v", got, ok)
	}
}
