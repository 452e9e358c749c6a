package kpodreceiver

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/fakepod"
	"github.com/kpod-project/kpod/internal/l7/names"
)

// The l7 family's tests: real servers and clients in two fake pods joined by a veth, and an
// idle sibling pod. Each asserts, per pod and role, exactly the requests by method and status
// that the server's or client's own statistics report, no parse error, and nothing for the
// idle pod. The attributes of every l7 series are checked against their bounded sets.

// startL7Pair makes a pair of pods (and an idle one), starts the l7 family and, in the server
// pod, the l7app server command listening on port; it returns them and the server's address.
func startL7Pair(t *testing.T, port int, server string, args ...string) (*fakepod.Pair, *kpodScraper, *fakepod.Proc, string) {
	t.Helper()
	p := fakepod.NewPair(t)
	s := startL7(t)
	addr := p.Veth.AddrB + ":" + strconv.Itoa(port)
	srv := p.SrvCtr.L7App(append([]string{server, addr}, args...)...)
	srv.WaitReady()
	return p, s, srv, addr
}

// noL7 is for the start of a test that needs the l7 family: on a kernel without bpf_loop
// (before 5.17) the family must be unavailable with the reason that says so; noL7 then
// returns true and the test ends there.
func noL7(t *testing.T) bool {
	t.Helper()
	cannot, _ := unavailableHere(t)
	if _, ok := cannot["l7"]; !ok {
		return false
	}
	s := startScraper(t, customConfig("l7"))
	checkUnavailable(t, s.runners[0], cannot)
	t.Logf("unavailable, as it must be here: %s", s.runners[0].reason)
	return true
}

// startL7 starts a scraper with the l7 family alone, and fails the test at once if the
// family could not load on this kernel (with the loader's reason).
func startL7(t *testing.T) *kpodScraper {
	t.Helper()
	s := startScraper(t, customConfig("l7"))
	for _, r := range s.runners {
		if r.f == nil {
			t.Fatalf("%s unavailable: %s", r.info.name, r.reason)
		}
	}
	return s
}

// requireTools fails (under CI) or skips the test when a program it runs is not installed.
func requireTools(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			fakepod.Unmet(t, p+" is not installed (make deps installs it)")
		}
	}
}

// sumByKey adds up the non-zero points of a counter by the key that key makes of their
// attributes ("" leaves a point out).
func sumByKey(rm pmetric.ResourceMetrics, name string, key func(a map[string]any) string) map[string]int64 {
	out := map[string]int64{}
	m, ok := metricOf(rm, name)
	if !ok {
		return out
	}
	dps := m.Sum().DataPoints()
	for i := 0; i < dps.Len(); i++ {
		if k, v := key(dps.At(i).Attributes().AsRaw()), dps.At(i).IntValue(); k != "" && v != 0 {
			out[k] += v
		}
	}
	return out
}

// l7Requests returns a resource's kpod.l7.requests of one protocol and role, by
// "METHOD status".
func l7Requests(rm pmetric.ResourceMetrics, protocol, role string) map[string]int64 {
	return sumByKey(rm, "kpod.l7.requests", func(a map[string]any) string {
		if a["protocol"] != protocol || a["role"] != role {
			return ""
		}
		return fmt.Sprint(a["method"], " ", a["status"])
	})
}

// l7ParseErrors returns a resource's kpod.l7.parse.errors by "protocol role reason".
func l7ParseErrors(rm pmetric.ResourceMetrics) map[string]int64 {
	return sumByKey(rm, "kpod.l7.parse.errors", func(a map[string]any) string {
		return fmt.Sprint(a["protocol"], " ", a["role"], " ", a["reason"])
	})
}

// checkL7Bounded fails the test if an attribute of an l7 series is not in its bounded set:
// nothing from the payload (paths, keys, names) may become a value.
func checkL7Bounded(t *testing.T, md pmetric.Metrics) {
	t.Helper()
	protocols := map[string]bool{}
	methods := map[string]bool{names.Other: true}
	for _, p := range names.Protocols {
		protocols[p] = p != ""
	}
	for _, ms := range names.Methods {
		for _, m := range ms {
			methods[m] = true
		}
	}
	for _, m := range names.DNSTypes {
		methods[m] = true
	}
	statuses := map[string]bool{"ok": true, "error": true, "1xx": true, "2xx": true, "3xx": true, "4xx": true, "5xx": true}
	reasons := map[string]bool{}
	for _, r := range names.LostReasons {
		reasons[r] = true
	}
	sets := map[string]map[string]bool{"protocol": protocols, "role": {"client": true, "server": true},
		"method": methods, "status": statuses, "reason": reasons}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		ms := md.ResourceMetrics().At(i).ScopeMetrics().At(0).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			if !strings.HasPrefix(m.Name(), "kpod.l7.") {
				continue
			}
			check := func(a map[string]any) {
				for k, v := range a {
					if set, ok := sets[k]; !ok || !set[fmt.Sprint(v)] {
						t.Errorf("%s: attribute %s=%q is not in its bounded set", m.Name(), k, v)
					}
				}
			}
			switch m.Type() {
			case pmetric.MetricTypeSum:
				for k := 0; k < m.Sum().DataPoints().Len(); k++ {
					check(m.Sum().DataPoints().At(k).Attributes().AsRaw())
				}
			case pmetric.MetricTypeHistogram:
				for k := 0; k < m.Histogram().DataPoints().Len(); k++ {
					check(m.Histogram().DataPoints().At(k).Attributes().AsRaw())
				}
			}
		}
	}
}

// checkL7 compares a pod's requests of one protocol and role with the expected counts, and
// its duration histograms' counts with them, and asserts that nothing failed to parse.
func checkL7(t *testing.T, md pmetric.Metrics, pod *fakepod.Pod, ctr *fakepod.Container, protocol, role string, want map[string]int64) {
	t.Helper()
	rm, _ := resourceOf(md, pod.UID, ctr.ID)
	got := l7Requests(rm, protocol, role)
	if !maps.Equal(got, want) {
		t.Errorf("%s %s requests:\n got %v\nwant %v", protocol, role, got, want)
	}
	perMethod := map[string]int64{}
	for k, v := range want {
		method, _, _ := strings.Cut(k, " ")
		perMethod[method] += v
	}
	for method, n := range perMethod {
		h, ok := histogramOf(rm, "kpod.l7.request.duration", map[string]string{"protocol": protocol, "role": role, "method": method})
		if !ok || int64(h.Count()) != n {
			t.Errorf("%s %s %s duration: %d samples, want %d", protocol, role, method, h.Count(), n)
		}
	}
	if e := l7ParseErrors(rm); len(e) > 0 {
		t.Errorf("%s %s: parse errors %v", protocol, role, e)
	}
}

// checkL7Idle asserts that a pod has no l7 series at all.
func checkL7Idle(t *testing.T, md pmetric.Metrics, pod *fakepod.Pod, ctr *fakepod.Container) {
	t.Helper()
	rm, _ := resourceOf(md, pod.UID, ctr.ID)
	for _, name := range []string{"kpod.l7.requests", "kpod.l7.request.duration", "kpod.l7.parse.errors"} {
		if _, ok := metricOf(rm, name); ok {
			t.Errorf("pod %s: has %s", pod.UID, name)
		}
	}
}

// appCounts parses the "count <method> <status> <n>" lines of a kpod-l7app or of a test's
// own summary into "METHOD status" -> n.
func appCounts(t *testing.T, out string) map[string]int64 {
	t.Helper()
	c := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "count" {
			n, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				t.Fatalf("bad count line %q", l)
			}
			c[f[1]+" "+f[2]] += n
		}
	}
	return c
}

// stopServer sends SIGTERM to a kpod-l7app server and returns what it printed.
func stopServer(t *testing.T, p *fakepod.Proc) string {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	return p.Output()
}

// waitListening waits until something listens on port (tcp or udp) in a network namespace;
// it sends nothing, so that the servers' counts are the tests' requests only.
func waitListening(t *testing.T, ns *fakepod.NetNS, proto string, port int) {
	t.Helper()
	flag := map[string]string{"tcp": "-Hltn", "udp": "-Hlun"}[proto]
	for i := 0; i < 200; i++ {
		if strings.TrimSpace(ns.Exec("ss", flag, "sport = :"+strconv.Itoa(port))) != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s port %d", proto, port)
}

// TestRealL7NoProtocol: bytes of no protocol (the workload's TCP transfer) are detected as
// nothing: no request, no parse error, on either pod.
func TestRealL7NoProtocol(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := fakepod.NewPair(t)
	s := startL7(t)
	const conns, total = 4, 4 * 64 << 10
	if sent, received := p.Transfer(t, 7100, conns, total); sent != total || received != total {
		t.Fatalf("workloads sent %d and received %d bytes, want %d", sent, received, total)
	}
	md := scrape(t, s)
	failDump(t, md)
	checkL7Idle(t, md, p.Client, p.CliCtr)
	checkL7Idle(t, md, p.Server, p.SrvCtr)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7HTTP: Go's net/http server in one pod; Go's keep-alive client and curl in the
// other. Requests per method and status class (2xx, 4xx, 5xx) on both ends equal what the
// server and the clients counted; the PATCH route sleeps 50 ms, so every PATCH duration is at
// least 50 ms, and at most what the client measured for it.
func TestRealL7HTTP(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "curl")
	p, s, srv, addr := startL7Pair(t, 8080, "http-server")
	const n = 25
	out := p.CliCtr.L7App("http-client", "http://"+addr, strconv.Itoa(n),
		"GET:/ok", "POST:/ok", "PUT:/missing", "DELETE:/fail", "HEAD:/ok", "OPTIONS:/missing", "PATCH:/slow").Output()
	client := appCounts(t, out)
	var patchNs int64
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "time" && f[1] == "PATCH" {
			patchNs, _ = strconv.ParseInt(f[2], 10, 64)
		}
	}
	// curl: several URLs on one connection.
	var urls []string
	for _, path := range []string{"/ok", "/ok", "/missing", "/fail", "/ok"} {
		urls = append(urls, "-o", "/dev/null", "http://"+addr+path)
	}
	p.CliCtr.Exec("curl", append([]string{"-s", "--fail-early"}, urls...)...).Output()
	client["GET 2xx"] += 3
	client["GET 4xx"]++
	client["GET 5xx"]++

	md := scrape(t, s)
	failDump(t, md)
	server := appCounts(t, stopServer(t, srv))
	if !maps.Equal(server, client) {
		t.Fatalf("the server counted %v, the clients %v", server, client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "http", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "http", "server", server)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)

	const delay = 50 * time.Millisecond
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		h, _ := histogramOf(rm, "kpod.l7.request.duration", map[string]string{"protocol": "http", "role": end.role, "method": "PATCH"})
		below := 0
		for i, b := range h.ExplicitBounds().AsRaw() {
			if b*float64(time.Second) < float64(delay) {
				below += int(h.BucketCounts().At(i))
			}
		}
		sum := time.Duration(h.Sum() * float64(time.Second))
		if below != 0 || sum < n*delay || sum > time.Duration(patchNs) {
			t.Errorf("%s PATCH durations: %d below %v, sum %v, want every sample >= %v and the sum within [%v, %v] (the client's own)",
				end.role, below, delay, sum, delay, n*delay, time.Duration(patchNs))
		}
	}
}

// redisStats reads the server's own statistics (INFO commandstats and errorstats) into
// "METHOD status" -> n, the method being kpod's name for the command: ok are the calls that
// did not fail; error the failed and rejected ones, and error replies to unknown commands
// (OTHER). It runs after the scrape: INFO is not in its own output.
func redisStats(t *testing.T, ns *fakepod.NetNS, host string, port int) map[string]int64 {
	t.Helper()
	known := map[string]bool{}
	for _, m := range names.Methods[names.ProtoRedis] {
		known[m] = true
	}
	out := ns.Exec("redis-cli", "-h", host, "-p", strconv.Itoa(port), "info", "all")
	want := map[string]int64{}
	var errorsOfCommands, errorReplies int64
	field := func(kv, key string) int64 {
		for _, f := range strings.Split(kv, ",") {
			if k, v, ok := strings.Cut(f, "="); ok && k == key {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if name, kv, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(name, "cmdstat_") {
			cmd, _, _ := strings.Cut(strings.TrimPrefix(name, "cmdstat_"), "|")
			method := strings.ToUpper(cmd)
			if !known[method] {
				method = names.Other
			}
			calls, failed, rejected := field(kv, "calls"), field(kv, "failed_calls"), field(kv, "rejected_calls")
			if calls-failed > 0 {
				want[method+" ok"] += calls - failed
			}
			if failed+rejected > 0 {
				want[method+" error"] += failed + rejected
			}
			errorsOfCommands += failed + rejected
		}
		if v, ok := strings.CutPrefix(l, "total_error_replies:"); ok {
			errorReplies, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if n := errorReplies - errorsOfCommands; n > 0 {
		want[names.Other+" error"] += n
	}
	return want
}

// TestRealL7Redis: redis-server in one pod; redis-benchmark (16 commands pipelined in each
// write) and redis-cli in the other, with an error reply of a known command (WRONGTYPE) and
// one of an unknown command. Both ends count exactly what the server's own statistics say.
func TestRealL7Redis(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "redis-server", "redis-cli", "redis-benchmark")
	p := fakepod.NewPair(t)
	s := startL7(t)
	const port = 6379
	host := p.Veth.AddrB
	p.SrvCtr.Exec("redis-server", "--bind", host, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "")
	waitListening(t, p.Server.NetNS, "tcp", port)

	p.CliCtr.Exec("redis-benchmark", "-h", host, "-p", strconv.Itoa(port), "-n", "3200", "-c", "2", "-P", "16",
		"-t", "set,get,incr,lpush,mset", "-q").Output()
	cli := func(args ...string) {
		p.CliCtr.Exec("redis-cli", append([]string{"-h", host, "-p", strconv.Itoa(port)}, args...)...).Output()
	}
	cli("set", "kpod:str", "v")
	cli("lpush", "kpod:str", "x")                          // WRONGTYPE: an error reply of LPUSH
	cli("nosuchcommand", "a")                              // an error reply of an unknown command: OTHER
	cli("hset", "kpod:h", "f", strings.Repeat("x", 10000)) // a value longer than a window

	md := scrape(t, s)
	failDump(t, md)
	want := redisStats(t, p.Server.NetNS, host, port)
	if want["LPUSH error"] != 1 || want["OTHER error"] != 1 || want["HSET ok"] != 1 {
		t.Fatalf("the server's statistics lack the test's error replies or HSET: %v", want)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "redis", "client", want)
	checkL7(t, md, p.Server, p.SrvCtr, "redis", "server", want)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	t.Logf("redis requests per command and status: %v", want)
}

// TestRealL7RedisGarbage: on one connection, a PING, then bytes that are not RESP (redis
// takes them as an inline command and answers an error), then another PING. kpod counts the
// two PINGs, and on each end one resync (the bytes it could not parse; the rest of that
// system call is passed over) and one unanswered response (the error reply, whose request
// it did not count): exactly what the stream contained, nothing invented.
func TestRealL7RedisGarbage(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "redis-server", "bash")
	p := fakepod.NewPair(t)
	s := startL7(t)
	const port = 6379
	host := p.Veth.AddrB
	p.SrvCtr.Exec("redis-server", "--bind", host, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--logfile", "")
	waitListening(t, p.Server.NetNS, "tcp", port)
	// Each write waits for its one-line reply, so that each is one system call on both ends.
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d
printf '*1\r\n$4\r\nPING\r\n' >&3; head -n 1 <&3
printf 'kpodgarbage xyz\r\n' >&3; head -n 1 <&3
printf '*1\r\n$4\r\nPING\r\n' >&3; head -n 1 <&3`, host, port)
	out := p.CliCtr.Exec("bash", "-c", script).Output()
	if want := "+PONG\r\n-ERR unknown command 'kpodgarbage', with args beginning with: 'xyz' \r\n+PONG\r\n"; out != want {
		t.Fatalf("redis answered %q, want %q", out, want)
	}
	md := scrape(t, s)
	failDump(t, md)
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		if got, want := l7Requests(rm, "redis", end.role), map[string]int64{"PING ok": 2}; !maps.Equal(got, want) {
			t.Errorf("%s requests %v, want %v", end.role, got, want)
		}
		want := map[string]int64{"redis " + end.role + " resync": 1, "redis " + end.role + " unanswered_response": 1}
		if got := l7ParseErrors(rm); !maps.Equal(got, want) {
			t.Errorf("%s parse errors %v, want %v", end.role, got, want)
		}
	}
	checkL7Bounded(t, md)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// dnsmasqStats reads dnsmasq's own log of the queries it answered (--log-queries) into
// "TYPE status" -> n: each "query[TYPE]" line is a query, the "config ... is X" line after it
// its answer (NXDOMAIN, REFUSED, SERVFAIL: error).
func dnsmasqStats(t *testing.T, log string) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	typ := ""
	for _, l := range strings.Split(log, "\n") {
		if _, q, ok := strings.Cut(l, "query["); ok {
			typ, _, _ = strings.Cut(q, "]")
			continue
		}
		if _, a, ok := strings.Cut(l, ": config "); ok && typ != "" {
			status := "ok"
			for _, e := range []string{" is NXDOMAIN", " is REFUSED", " is SERVFAIL"} {
				if strings.Contains(a, e) {
					status = "error"
				}
			}
			want[typ+" "+status]++
			typ = ""
		}
	}
	return want
}

// digStats reads dig's own output (+noall +comments +question) into "TYPE status" -> n.
func digStats(t *testing.T, out string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	status := ""
	for _, l := range strings.Split(out, "\n") {
		if _, s, ok := strings.Cut(l, "status: "); ok {
			status, _, _ = strings.Cut(s, ",")
			continue
		}
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[0], ";") && f[1] == "IN" && status != "" {
			st := "ok"
			if status != "NOERROR" {
				st = "error"
			}
			got[f[2]+" "+st]++
			status = ""
		}
	}
	return got
}

// TestRealL7DNS: dnsmasq in one pod answers A, AAAA, MX and TXT for kpod.test, NXDOMAIN for
// other.test and REFUSED for what it has no record of; dig (sendmmsg) and a Go client (one
// UDP socket, write/read) in the other pod ask. Queries per type and status on both ends
// equal dnsmasq's own log and the clients' own counts.
func TestRealL7DNS(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	requireTools(t, "dnsmasq", "dig")
	p := fakepod.NewPair(t)
	s := startL7(t)
	host := p.Veth.AddrB
	log := t.TempDir() + "/dnsmasq.log"
	srv := p.SrvCtr.Exec("dnsmasq", "--no-daemon", "--port=53", "--listen-address="+host, "--bind-interfaces",
		"--no-resolv", "--no-hosts", "-C", "/dev/null", "--user=root", "--log-queries", "--log-facility="+log,
		"--address=/kpod.test/10.1.2.3", "--address=/kpod.test/fd00::1", "--address=/other.test/",
		"--mx-host=m.kpod.test,mail.kpod.test", "--txt-record=t.kpod.test,kpod")
	waitListening(t, p.Server.NetNS, "udp", 53)

	client := appCounts(t, p.CliCtr.L7App("dns-client", host+":53", "10",
		"a.kpod.test.:A", "b.kpod.test.:AAAA", "m.kpod.test.:MX", "t.kpod.test.:TXT", "nx.other.test.:A", "s.kpod.test.:SRV").Output())
	dig := digStats(t, p.CliCtr.Exec("dig", "@"+host, "+tries=1", "+noall", "+comments", "+question",
		"a.kpod.test", "A", "b.kpod.test", "AAAA", "nx.other.test", "A", "m.kpod.test", "MX", "nx2.other.test", "AAAA").Output())
	for k, v := range dig {
		client[k] += v
	}

	md := scrape(t, s)
	failDump(t, md)
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	server := dnsmasqStats(t, string(b))
	if !maps.Equal(server, client) {
		t.Fatalf("dnsmasq answered %v, the clients counted %v", server, client)
	}
	if client["A error"] != 11 || client["SRV error"] != 10 || client["AAAA ok"] != 11 {
		t.Fatalf("the clients' counts lack the NXDOMAIN and REFUSED answers: %v", client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "dns", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "dns", "server", server)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	t.Logf("dns queries per type and status: %v", client)
}
