package kpodreceiver

import (
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// The l7 family's HTTP/2 and gRPC tests (helpers in l7_realkernel_test.go).

// appConns returns the "conns <n>" line of a kpod-l7app client: the connections it opened.
func appConns(t *testing.T, out string) int {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "conns" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("bad conns line %q", l)
			}
			return n
		}
	}
	t.Fatalf("no conns line in %q", out)
	return 0
}

// TestRealL7HTTP2: Go's HTTP/2 server (golang.org/x/net/http2, clear text) in one pod; in the
// other, Go's HTTP/2 client with 8 goroutines sending concurrently over one connection (prior
// knowledge), curl with prior knowledge, and curl upgrading HTTP/1.1 to h2c then sending more
// requests on the connection. The statuses include static-table ones (200, 404, 500) and
// others HPACK sends as a literal (Huffman-coded digits) and then as a reference to the
// dynamic table (201, 503); the methods GET and POST are static, the others literals then
// references; /big has a 32 KB header both ways, so its header blocks go on in CONTINUATION
// frames with the header's value split between frames. Both ends count exactly what the server and the clients counted, with no parse
// error; the PATCH route sleeps 50 ms, so every PATCH duration is at least 50 ms and at most
// what the client measured.
func TestRealL7HTTP2(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "curl")
	p := topoPair(t)
	s := startL7Topology(t, p)
	addr := p.Veth.AddrB + ":8080"
	srv := p.SrvCtr.L7App("h2-server", addr)
	srv.WaitReady()

	const n, conc = 10, 8
	out := p.CliCtr.L7App("h2-client", "http://"+addr, strconv.Itoa(n), strconv.Itoa(conc),
		"GET:/ok", "POST:/created", "PUT:/missing", "DELETE:/unavailable", "HEAD:/ok", "OPTIONS:/fail", "PATCH:/slow",
		"TRACE:/big").Output()
	client := appCounts(t, out)
	if c := appConns(t, out); c != 1 {
		t.Fatalf("the HTTP/2 client opened %d connections, want 1", c)
	}
	var patchNs int64
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "time" && f[1] == "PATCH" {
			patchNs, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}

	// curl: its own tally is what it printed per request (-w): the status and HTTP version.
	curl := func(method string, args ...string) {
		t.Helper()
		o := p.CliCtr.Exec("curl", append([]string{"-s", "-X", method, "-w", "%{http_code} %{http_version}\n"}, args...)...).Output()
		for _, l := range strings.Split(strings.TrimSpace(o), "\n") {
			code, version, _ := strings.Cut(l, " ")
			c, err := strconv.Atoi(code)
			if err != nil || version != "2" || c < 100 {
				t.Fatalf("curl %v: %q is not an HTTP/2 response", args, l)
			}
			client[method+" "+strconv.Itoa(c/100)+"xx"]++
		}
	}
	// prior knowledge, one request per connection
	for _, r := range [][2]string{{"GET", "/ok"}, {"DELETE", "/created"}, {"PUT", "/unavailable"}, {"GET", "/missing"}} {
		curl(r[0], "--http2-prior-knowledge", "-o", "/dev/null", "http://"+addr+r[1])
	}
	// HTTP/1.1 upgraded to h2c by the first request; the others on the same connection as
	// HTTP/2 streams 3, 5, ...
	var urls []string
	for _, path := range []string{"/ok", "/created", "/unavailable", "/missing", "/ok", "/fail"} {
		urls = append(urls, "-o", "/dev/null", "http://"+addr+path)
	}
	curl("GET", append([]string{"--http2"}, urls...)...)

	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if !maps.Equal(server, client) {
		t.Fatalf("the server counted %v, the clients %v", server, client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "http2", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http2", "server", server)
	checkServiceGraph(t, md, p, "http2", client)
	checkL7Only(t, md, p.Client, p.CliCtr, "http2")
	checkL7Only(t, md, p.Server, p.SrvCtr, "http2")
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	t.Logf("HTTP/2 requests per method and status: %v", client)

	const delay = 50 * time.Millisecond
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		h, _ := histogramOf(rm, "kpod.l7.request.duration", map[string]string{"protocol": "http2", "role": end.role, "method": "PATCH"})
		below := 0
		for i, b := range h.ExplicitBounds().AsRaw() {
			if b*float64(time.Second) < float64(delay) {
				below += int(h.BucketCounts().At(i))
			}
		}
		sum := time.Duration(h.Sum() * float64(time.Second))
		if below != 0 || sum < n*conc*delay || sum > time.Duration(patchNs) {
			t.Errorf("%s PATCH durations: %d below %v, sum %v, want every sample >= %v and the sum within [%v, %v] (the client's own)",
				end.role, below, delay, sum, delay, n*conc*delay, time.Duration(patchNs))
		}
	}
}

// TestRealL7GRPC: a gRPC server (google.golang.org/grpc) in one pod with the standard health
// service and a codec-less echo service; in the other, its client with 8 goroutines calling
// concurrently over one connection: calls that succeed, calls that fail at once (a
// trailers-only response: :status 200 and grpc-status 5 in one block) and calls that fail
// after their response headers (grpc-status 13 in the trailers). Both ends count exactly what
// the server and the client counted (method POST, status ok or error), with no parse error.
func TestRealL7GRPC(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startL7Topology(t, p)
	addr := p.Veth.AddrB + ":50051"
	srv := p.SrvCtr.L7App("grpc-server", addr)
	srv.WaitReady()

	const n, conc = 20, 8
	out := p.CliCtr.L7App("grpc-client", addr, strconv.Itoa(n), strconv.Itoa(conc)).Output()
	client := appCounts(t, out)
	if c := appConns(t, out); c != 1 {
		t.Fatalf("the gRPC client opened %d connections, want 1", c)
	}
	// five calls per round: 2 ok, 3 errors
	if want := map[string]int64{"POST ok": 2 * n * conc, "POST error": 3 * n * conc}; !maps.Equal(client, want) {
		t.Fatalf("the client counted %v, want %v", client, want)
	}

	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if !maps.Equal(server, client) {
		t.Fatalf("the server counted %v, the client %v", server, client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "grpc", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "grpc", "server", server)
	checkServiceGraph(t, md, p, "grpc", client)
	checkL7Only(t, md, p.Client, p.CliCtr, "grpc")
	checkL7Only(t, md, p.Server, p.SrvCtr, "grpc")
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// checkL7Only asserts that a pod's requests are all of one protocol: nothing was taken for
// another (an upgrading request for HTTP/1.x, a gRPC call for plain HTTP/2).
func checkL7Only(t *testing.T, md pmetric.Metrics, pod *fakepod.Pod, ctr *fakepod.Container, protocol string) {
	t.Helper()
	rm, _ := resourceOf(md, pod.UID, ctr.ID)
	m, ok := metricOf(rm, "kpod.l7.requests")
	if !ok {
		t.Errorf("pod %s: no kpod.l7.requests", pod.UID)
		return
	}
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		if a := dps.At(i).Attributes().AsRaw(); a["protocol"] != protocol {
			t.Errorf("pod %s: %v requests %v, want only %s", pod.UID, dps.At(i).IntValue(), a, protocol)
		}
	}
}

// TestRealL7HTTP2Junk: a client that sends the HTTP/2 connection preface and then no frames
// (a SETTINGS frame on a stream, bytes that are no frame), to a server that answers each write
// with the same junk. Every system call's junk is one parse error (resync) on each end — K
// writes and K reads per end — no request, and the walk goes on at the next call.
func TestRealL7HTTP2Junk(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 8081, "h2-junk-server")
	const k = 25
	client := appCounts(t, p.CliCtr.L7App("h2-junk-client", addr, strconv.Itoa(k)).Output())
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if want := map[string]int64{"junk answered": k}; !maps.Equal(client, want) || !maps.Equal(server, want) {
		t.Fatalf("the client counted %v, the server %v, want %v", client, server, want)
	}
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		if got, want := l7ParseErrors(rm), map[string]int64{"http2 " + end.role + " resync": 2 * k}; !maps.Equal(got, want) {
			t.Errorf("%s parse errors %v, want %v", end.role, got, want)
		}
		if _, ok := metricOf(rm, "kpod.l7.requests"); ok {
			t.Errorf("%s: has kpod.l7.requests", end.role)
		}
	}
	checkL7Bounded(t, md)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTPUpgradeOther: an HTTP/1.1 request answered "101 Switching Protocols" to a
// protocol other than h2c (as WebSocket's) is counted as http 1xx on both ends, and the
// upgraded connection's bytes (lines that look like HTTP/1.x requests) are not followed.
func TestRealL7HTTPUpgradeOther(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 8082, "upgrade-server")
	client := appCounts(t, p.CliCtr.L7App("upgrade-client", addr, "20").Output())
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if want := map[string]int64{"GET 1xx": 1}; !maps.Equal(client, want) || !maps.Equal(server, want) {
		t.Fatalf("the client counted %v, the server %v, want %v", client, server, want)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "http", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http", "server", server)
	checkL7Only(t, md, p.Client, p.CliCtr, "http")
	checkL7Only(t, md, p.Server, p.SrvCtr, "http")
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTP2Edges: the cases of HTTP/2 and gRPC that Go's and curl's implementations do
// not send, with hand-made frames and header blocks (kpod-l7app h2-edge-*, the case list
// h2Edges): an interim 103 before the response, a stream reset by the server and by the
// client, a :status that is a dynamic table reference to nothing kpod saw (a parse error
// "undecoded", not a request), a PUSH_PROMISE whose insertion a later reference counts on,
// padded and prioritized HEADERS, header blocks cut inside a value and continued in a
// CONTINUATION frame, a method not in the list, gRPC trailers with grpc-status as a new name,
// as a reference to the whole entry or to its name, a trailers-only response, a 503 and a
// stream ended without trailers. Both ends count exactly the cases' outcomes, the client's
// and the server's tally, over three connections.
func TestRealL7HTTP2Edges(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 8083, "h2-edge-server")
	const r = 3
	client := appCounts(t, p.CliCtr.L7App("h2-edge-client", addr, strconv.Itoa(r)).Output())
	md := scrape(t, s)
	failDump(t, md)
	out := stopServer(t, srv)
	if strings.Contains(out, "failure") {
		t.Fatalf("the server failed: %s", out)
	}
	server := appCounts(t, out)
	if !maps.Equal(server, client) || client["http2:lost undecoded"] != r || client["grpc:POST ok"] != 3*r {
		t.Fatalf("the server counted %v, the client %v", server, client)
	}
	checkL7Bounded(t, md)
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		want := map[string]map[string]int64{"http2": {}, "grpc": {}}
		for k, n := range client {
			proto, rest, _ := strings.Cut(k, ":")
			if rest != "lost undecoded" {
				want[proto][rest] = n
			}
		}
		for _, proto := range []string{"http2", "grpc"} {
			if got := l7Requests(rm, proto, end.role); !maps.Equal(got, want[proto]) {
				t.Errorf("%s %s requests:\n got %v\nwant %v", proto, end.role, got, want[proto])
			}
			perMethod := map[string]int64{}
			for k, n := range want[proto] {
				method, _, _ := strings.Cut(k, " ")
				perMethod[method] += n
			}
			for method, n := range perMethod {
				h, ok := histogramOf(rm, "kpod.l7.request.duration", map[string]string{"protocol": proto, "role": end.role, "method": method})
				if !ok || int64(h.Count()) != n {
					t.Errorf("%s %s %s duration: %d samples, want %d", proto, end.role, method, h.Count(), n)
				}
			}
		}
		if got, want := l7ParseErrors(rm), map[string]int64{"http2 " + end.role + " undecoded": r}; !maps.Equal(got, want) {
			t.Errorf("%s parse errors %v, want %v", end.role, got, want)
		}
	}
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTPPeek: a client that looks at each response with a receive that peeks
// (MSG_PEEK, as curl does to tell whether a connection it reuses is alive) before it reads
// it. Peeked bytes stay in the socket and are received again: kpod takes them once, so each
// response answers its request once — the client's and the server's counts, exactly, and no
// parse error (before, every response was counted twice: once unanswered).
func TestRealL7HTTPPeek(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 8084, "http-server")
	const n = 20
	client := appCounts(t, p.CliCtr.L7App("http-peek-client", addr, strconv.Itoa(n)).Output())
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if want := map[string]int64{"GET 2xx": n}; !maps.Equal(client, want) || !maps.Equal(server, want) {
		t.Fatalf("the server counted %v, the client %v, want %v", server, client, want)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "http", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http", "server", server)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTPEarly: the response is read (on another thread) before the write(2) that
// carries its request has ended — deterministic here: the request's 32 MiB body blocks the
// write until the server, having answered after the headers, is told to read it. Each
// response still pairs with its request on the client (without the early-response rule: one
// unanswered response and every later one paired with the request before it).
func TestRealL7HTTPEarly(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startL7Topology(t, p)
	addr := p.Veth.AddrB + ":8085"
	srv := p.SrvCtr.L7App("http-early-server", addr)
	srv.WaitReady()
	const n = 5
	p.CliCtr.Env = append(p.CliCtr.Env, "GODEBUG=asyncpreemptoff=1")
	out := p.CliCtr.L7App("http-early-client", addr, strconv.Itoa(n)).Output()
	if strings.Contains(out, "partial") {
		t.Fatalf("a request's write was cut short, its answer was not early:\n%s", out)
	}
	client := appCounts(t, out)
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if want := map[string]int64{"POST 2xx": n}; !maps.Equal(client, want) || !maps.Equal(server, want) {
		t.Fatalf("the server counted %v, the client %v, want %v", server, client, want)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "http", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http", "server", server)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	// The early answers are on the edge too (they were not: 99 of 100 in a CI run).
	checkServiceGraph(t, md, p, "http", client)
}

// TestRealL7HTTPManyExits: Go's client writes each request on one goroutine and reads its
// response on another, so the exits of a request's write and of its response's read can run
// at the same time on two CPUs (l7_http.h). Two thousand requests, half on one connection and
// half each on a connection of its own, counted exactly on both ends. The race that the early
// response's exchanges close has a window of a few instructions: this test did not catch it
// with the code before them (12,000 requests in the 6.1 VM, 8,000 on this host).
func TestRealL7HTTPManyExits(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 8086, "http-server")
	const n = 1000 // of each: on one connection, and each on a connection of its own
	client := appCounts(t, p.CliCtr.L7App("http-client", "http://"+addr, strconv.Itoa(n), "GET:/ok").Output())
	for k, v := range appCounts(t, p.CliCtr.L7App("http-client-fresh", "http://"+addr, strconv.Itoa(n), "GET:/missing").Output()) {
		client[k] += v
	}
	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if want := map[string]int64{"GET 2xx": n, "GET 4xx": n}; !maps.Equal(client, want) || !maps.Equal(server, want) {
		t.Fatalf("the server counted %v, the client %v, want %v", server, client, want)
	}
	checkL7(t, md, p.Client, p.CliCtr, "http", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http", "server", server)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTP2Early is TestRealL7HTTPEarly for HTTP/2 and gRPC: every answer (HEADERS,
// and gRPC's trailers) is read before the write(2) of its request's HEADERS has ended, as a
// client that writes and reads on two threads (gRPC-Go) may do. A CI run once counted one
// such gRPC answer unanswered (799 of 800 in TestRealL7GRPC).
func TestRealL7HTTP2Early(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	for i, tc := range []struct {
		mode string
		want map[string]int64
	}{
		{"grpc", map[string]int64{"POST ok": 3, "POST error": 2}},
		{"http2", map[string]int64{"POST 2xx": 3, "POST 4xx": 2}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := topoPair(t)
			s := startL7Topology(t, p)
			addr := p.Veth.AddrB + ":" + strconv.Itoa(8086+i)
			srv := p.SrvCtr.L7App("h2-early-server", addr, tc.mode)
			srv.WaitReady()
			p.CliCtr.Env = append(p.CliCtr.Env, "GODEBUG=asyncpreemptoff=1")
			out := p.CliCtr.L7App("h2-early-client", addr, tc.mode, "5").Output()
			if strings.Contains(out, "partial") {
				t.Fatalf("a request's write was cut short, its answer was not early:\n%s", out)
			}
			client := appCounts(t, out)
			md := scrape(t, s)
			failDump(t, md)
			server := appCounts(t, stopServer(t, srv))
			if !maps.Equal(client, tc.want) || !maps.Equal(server, tc.want) {
				t.Fatalf("the server counted %v, the client %v, want %v", server, client, tc.want)
			}
			checkL7Bounded(t, md)
			checkL7(t, md, p.Client, p.CliCtr, tc.mode, "client", client)
			checkL7(t, md, p.Server, p.SrvCtr, tc.mode, "server", server)
			checkL7Idle(t, md, p.Idle, p.IdleCtr)
			checkServiceGraph(t, md, p, tc.mode, client)
		})
	}
}
