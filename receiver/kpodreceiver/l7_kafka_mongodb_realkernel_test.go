package kpodreceiver

import (
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// The l7 family's Kafka and MongoDB tests (l7_realkernel_test.go has the helpers).

// appLines parses a kpod-l7app's "<word> <name> <n>" lines into name -> n.
func appLines(t *testing.T, out, word string) map[string]int64 {
	t.Helper()
	c := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == word {
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatalf("bad %s line %q", word, l)
			}
			c[strings.Join(f[1:len(f)-1], " ")] += n
		}
	}
	return c
}

// perMethod sums "METHOD status" counts per method.
func perMethod(c map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range c {
		m, _, _ := strings.Cut(k, " ")
		out[m] += v
	}
	return out
}

// TestRealL7Kafka: franz-go's kfake broker in one pod; franz-go's kgo client in the other
// creates a topic, produces records with an idempotent producer (several Produce requests in
// flight on one connection: pipelined; every tenth record 10 kB, larger than kpod's window),
// produces as many with acks=0 (requests without responses, which must not be counted), reads
// them all back, and sends requests the broker refuses (JoinGroup with a session timeout below
// the broker's minimum, Heartbeat and SyncGroup of a member that does not exist). Both ends'
// requests per API and status equal what each process's connections carried, decoded by
// franz-go's kmsg (status error: a non-zero top-level error code); the client's equal kgo's
// own hooks (responses read, requests written), the server's kfake's own count of the
// requests it handled, and the two ends agree.
func TestRealL7Kafka(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startL7Topology(t, p)
	addr := p.Veth.AddrB + ":9092"
	srv := p.SrvCtr.L7App("kafka-server", addr)
	srv.WaitReady()
	out := p.CliCtr.L7App("kafka-client", addr, "300").Output()
	md := scrape(t, s)
	failDump(t, md)
	srvOut := stopServer(t, srv)

	client, server := appCounts(t, out), appCounts(t, srvOut)
	if u := appLines(t, out+srvOut, "undecoded"); len(u) > 0 {
		t.Fatalf("messages the test could not decode: %v", u)
	}
	if got, hooks := perMethod(client), appLines(t, out, "hook-read"); !maps.Equal(got, hooks) {
		t.Fatalf("responses: the client's connections carried %v, kgo read %v", got, hooks)
	}
	if got, hooks := appLines(t, out, "requests"), appLines(t, out, "hook-write"); !maps.Equal(got, hooks) {
		t.Fatalf("requests: the client's connections carried %v, kgo wrote %v", got, hooks)
	}
	if got, handled := appLines(t, srvOut, "requests"), appLines(t, srvOut, "handled"); !maps.Equal(got, handled) {
		t.Fatalf("requests: the server's connections carried %v, kfake handled %v", got, handled)
	}
	if !maps.Equal(client, server) {
		t.Fatalf("the client read %v, the server wrote %v", client, server)
	}
	// Positive controls: the refused requests, the unanswered acks=0 Produce requests and
	// the pipelined ones happened.
	for _, k := range []string{"JoinGroup error", "Heartbeat error", "SyncGroup error"} {
		if client[k] != 1 {
			t.Fatalf("%s: %d, want 1 (%v)", k, client[k], client)
		}
	}
	if written := appLines(t, out, "hook-write")["Produce"]; written <= client["Produce ok"] {
		t.Fatalf("Produce: %d written, %d answered: no acks=0 request", written, client["Produce ok"])
	}
	if inflight := appLines(t, out, "inflight")["Produce"]; inflight < 2 {
		t.Fatalf("at most %d Produce request in flight: not pipelined", inflight)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "kafka", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "kafka", "server", server)
	checkServiceGraph(t, md, p, "kafka", client)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	t.Logf("kafka requests per API and status: %v; Produce requests written %d, most in flight %d", client,
		appLines(t, out, "hook-write")["Produce"], appLines(t, out, "inflight")["Produce"])
}

// TestRealL7Mongo: FerretDB (embedded, SQLite backend) in one pod; the official Go driver in
// the other: inserts, finds read in batches (getMore), a find of a 10 kB document (larger than
// kpod's window), update, delete, count, aggregate, distinct, findAndModify, createIndexes,
// listCollections, ping, drop, and two commands that fail (ok: 0): a find with an unknown
// operator and an unknown command (OTHER); the driver's handshakes are legacy OP_QUERY
// isMaster, and its endSessions at disconnect is a command FerretDB does not have (error).
// The client pod's requests per command and status equal what its connections carried,
// decoded with the driver's bson package, which for the commands equals the driver's own
// command monitor (succeeded: ok, failed: error; it does not see handshakes and server
// checks, isMaster and hello); the server pod's equal FerretDB's own
// statistics (serverStatus metrics.commands: total and failed; its OP_QUERY requests are
// "unknown" there, as many as the client's legacy isMaster).
func TestRealL7Mongo(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startL7Topology(t, p)
	addr := p.Veth.AddrB + ":27017"
	srv := p.SrvCtr.L7App("mongo-server", addr, t.TempDir())
	srv.WaitReady()
	out := p.CliCtr.L7App("mongo-client", addr, "100").Output()
	md := scrape(t, s)
	failDump(t, md)
	// The server's statistics, read after the scrape in one request that does not count itself.
	stats := p.Server.NetNS.Exec(fakepod.L7AppBinary(t), "mongo-stats", addr)
	stopServer(t, srv)

	client := appCounts(t, out)
	if u := appLines(t, out, "undecoded"); len(u) > 0 {
		t.Fatalf("messages the test could not decode: %v", u)
	}
	// The driver's monitor sees every command but the handshakes and server checks (legacy
	// isMaster, hello): those are compared with the server's statistics below.
	legacy := appLines(t, out, "legacy")
	commands := maps.Clone(client)
	for k := range commands {
		if m, _, _ := strings.Cut(k, " "); m == "isMaster" || m == "hello" {
			delete(commands, k)
		}
	}
	if monitor := appLines(t, out, "monitor"); !maps.Equal(commands, monitor) {
		t.Fatalf("the client's connections carried %v (legacy %v), the driver's monitor saw %v", client, legacy, monitor)
	}
	server := appCounts(t, stats)
	unknown := strings.Fields(appLinesRaw(stats, "server", "unknown"))
	var legacyTotal int64
	for _, n := range legacy {
		legacyTotal += n
	}
	if len(unknown) != 2 || unknown[0] != strconv.FormatInt(legacyTotal, 10) || unknown[1] != "0" {
		t.Fatalf("the server's OP_QUERY requests (total, failed) %v, the client sent %d", unknown, legacyTotal)
	}
	for m, n := range legacy {
		server[m+" ok"] += n
	}
	if !maps.Equal(client, server) {
		t.Fatalf("the client read %v, the server's statistics say %v", client, server)
	}
	// Positive controls: the failing commands, and documents read in batches.
	if client["find error"] != 1 || client["OTHER error"] != 1 || client["getMore ok"] == 0 {
		t.Fatalf("want one find error, one OTHER error and getMore: %v", client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "mongodb", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "mongodb", "server", server)
	checkServiceGraph(t, md, p, "mongodb", client)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	t.Logf("mongodb requests per command and status: %v", client)
}

// appLinesRaw returns the rest of the line "<word> <name> ..." of out, or "".
func appLinesRaw(out, word, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, word+" "+name+" "); ok {
			return rest
		}
	}
	return ""
}

// checkL7Garbage runs a kpod-l7app garbage client (garbage-kind ADDR) against a server: a
// request answered on one connection, then bytes that are not the protocol's (the server
// closes that connection), then a request on a second connection. On each end kpod counts
// the two requests the client counted, and one resync (the bytes it could not parse; the
// rest of that system call is passed over), nothing else.
func checkL7Garbage(t *testing.T, p *fakepod.Pair, s *kpodScraper, protocol, garbage, addr string) {
	t.Helper()
	out := p.CliCtr.L7App(garbage, addr).Output()
	if !strings.Contains(out, "closed 1\n") {
		t.Fatalf("the server did not close the connection after the garbage: %q", out)
	}
	want := appCounts(t, out)
	if len(want) != 1 {
		t.Fatalf("the client counted %v, want its two requests", want)
	}
	for _, n := range want {
		if n != 2 {
			t.Fatalf("the client counted %v, want its two requests", want)
		}
	}
	md := scrape(t, s)
	failDump(t, md)
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		if got := l7Requests(rm, protocol, end.role); !maps.Equal(got, want) {
			t.Errorf("%s requests %v, want %v", end.role, got, want)
		}
		if got, want := l7ParseErrors(rm), map[string]int64{protocol + " " + end.role + " resync": 1}; !maps.Equal(got, want) {
			t.Errorf("%s parse errors %v, want %v", end.role, got, want)
		}
	}
	checkL7Bounded(t, md)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7KafkaGarbage: after an ApiVersions request, 13 bytes that are no Kafka request
// (a size of 9, shorter than a request header) on the same connection; kfake closes it.
func TestRealL7KafkaGarbage(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 9092, "kafka-server")
	checkL7Garbage(t, p, s, "kafka", "kafka-garbage", addr)
	stopServer(t, srv)
}

// TestRealL7MongoGarbage: after a ping, a message header of an opCode that does not exist on
// the same connection; FerretDB closes it.
func TestRealL7MongoGarbage(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p, s, srv, addr := startL7Pair(t, 27017, "mongo-server", t.TempDir())
	checkL7Garbage(t, p, s, "mongodb", "mongo-garbage", addr)
	stopServer(t, srv)
}
