package kpodreceiver

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/kpod-project/kpod/internal/fakepod"
)

// The SQL protocols' tests: a real MariaDB or PostgreSQL server of the test's own (a data
// directory in a temporary directory) in the server pod, real clients in the client pod.

// mariadbStatus reads MariaDB's own statement counters (SHOW GLOBAL STATUS, Com_*) over the
// server's Unix socket, from the host: by counter name without "Com_", only those not zero.
func mariadbStatus(t *testing.T, sock string) map[string]int64 {
	t.Helper()
	out, err := exec.Command("mariadb", "--no-defaults", "--socket="+sock, "-u", "root", "-N", "-B",
		"-e", `SHOW GLOBAL STATUS LIKE 'Com\_%'`).CombinedOutput()
	if err != nil {
		t.Fatalf("SHOW GLOBAL STATUS: %v\n%s", err, out)
	}
	st := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(l, "\t")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			t.Fatalf("SHOW GLOBAL STATUS line %q", l)
		}
		if n != 0 {
			st[strings.TrimPrefix(k, "Com_")] = n
		}
	}
	return st
}

// startMariaDB starts mariadbd in the server pod with a data directory of the test's own
// (no grant tables: any user, no password) and a database kpod; it returns the server, its
// Unix socket, address and port.
func startMariaDB(t *testing.T, p *fakepod.Pair) (*fakepod.Proc, string, string, int) {
	t.Helper()
	fakepod.RequireRoot(t)
	requireTools(t, "mariadbd", "mariadb")
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/kpod", 0o755); err != nil { // the database kpod
		t.Fatal(err)
	}
	const port = 3306
	host := p.Veth.AddrB
	sock := dir + "/mysqld.sock"
	srv := p.SrvCtr.Exec("mariadbd", "--no-defaults", "--datadir="+dir, "--user=root", "--bind-address="+host,
		"--port="+strconv.Itoa(port), "--socket="+sock, "--pid-file="+dir+"/mysqld.pid", "--log-error="+dir+"/error.log",
		"--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--innodb-use-native-aio=0", "--performance-schema=OFF")
	t.Cleanup(func() {
		if b, err := os.ReadFile(dir + "/error.log"); t.Failed() && err == nil {
			t.Logf("mariadbd's log:\n%s", b)
		}
	})
	waitListening(t, p.Server.NetNS, "tcp", port)
	return srv, sock, host, port
}

// TestRealL7MySQL: mariadbd (its own data directory, no grant tables) in the server pod;
// go-sql-driver/mysql in the client pod runs the SQL workload twice on one connection each:
// as text queries (COM_QUERY), then as server-side prepared statements (COM_STMT_PREPARE,
// COM_STMT_EXECUTE), with a result of 300 rows (the packets' sequence id wraps), an INSERT
// that fails (duplicate key), statements that fail before they run (a missing table, a syntax
// error), a transaction committed and one rolled back, and a COM_PING. Both ends' requests by
// class and status equal the client's own count, whose totals per class equal the server's
// own counters (Com_select, Com_insert, ..., Com_stmt_prepare). The mariadb client then runs
// three statements as text.
func TestRealL7MySQL(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	s := startL7Topology(t, p)
	srv, sock, host, port := startMariaDB(t, p)

	const n = 10
	client := map[string]int64{}
	for _, mode := range []string{"text", "prepare"} {
		for k, v := range appCounts(t, p.CliCtr.L7App("mysql-client", fmt.Sprintf("%s:%d", host, port), "kpod", mode, strconv.Itoa(n)).Output()) {
			client[k] += v
		}
	}
	// MariaDB's own client (libmariadb), statements in batch mode on one connection.
	p.CliCtr.Exec("mariadb", "--no-defaults", "-h", host, "-P", strconv.Itoa(port), "-u", "root", "-D", "kpod", "-e",
		"SELECT COUNT(*) FROM kpod_text; update kpod_text SET v = 'cli' WHERE id = -1; DELETE FROM kpod_text WHERE id = -1").Output()
	client["SELECT ok"]++
	client["UPDATE ok"]++
	client["DELETE ok"]++

	md := scrape(t, s)
	failDump(t, md)
	status := mariadbStatus(t, sock)
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.Output()

	// The server's counters: a statement that ran (or failed while running) counts once in
	// Com_<class>, whether sent as text or executed as a prepared statement; each
	// COM_STMT_PREPARE counts in Com_stmt_prepare; CREATE TABLE in Com_create_table and
	// COM_PING in Com_admin_commands (OTHER); a statement that failed to parse (the one
	// "SELEC 1" sent as text) or to prepare counts in no Com_ counter (the first in OTHER, the
	// second in PREPARE). Com_show_status is the reading above.
	server := map[string]int64{"OTHER": 1}
	for k, v := range status {
		switch k {
		case "select", "insert", "update", "delete", "begin", "commit", "rollback":
			server[strings.ToUpper(k)] += v
		case "stmt_prepare":
			server["PREPARE"] += v
		case "create_table", "admin_commands":
			server["OTHER"] += v
		}
	}
	perClass := map[string]int64{}
	for k, v := range client {
		class, _, _ := strings.Cut(k, " ")
		perClass[class] += v
	}
	if !maps.Equal(perClass, server) {
		t.Fatalf("the client counted %v statements per class, the server %v", perClass, server)
	}
	if client["INSERT error"] != 2*n || client["SELECT error"] != 1 || client["OTHER error"] != 1 || client["PREPARE error"] != 2 {
		t.Fatalf("the client's counts lack the failing statements: %v", client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "mysql", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "mysql", "server", client)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	checkServiceGraph(t, md, p, "mysql", client)
	t.Logf("mysql requests per class and status: %v; the server's counters: %v", client, status)
}

// pgBinary finds a PostgreSQL server program (Debian keeps them in
// /usr/lib/postgresql/<version>/bin), failing (under CI) or skipping when there is none.
func pgBinary(t *testing.T, name string) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(m) == 0 {
		fakepod.Unmet(t, name+" is not installed (make deps installs postgresql)")
	}
	sort.Strings(m)
	return m[len(m)-1]
}

// nobody runs a program as the user nobody (PostgreSQL's server refuses to run as root).
func nobody(prog string, args ...string) []string {
	return append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", prog}, args...)
}

// sqlClass is the class of a statement's text as pg_stat_statements keeps it: its first
// keyword after white space and comments (START is BEGIN), OTHER if it is none of them.
func sqlClass(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n(")
		if strings.HasPrefix(q, "/*") {
			_, q, _ = strings.Cut(q, "*/")
		} else if strings.HasPrefix(q, "--") {
			_, q, _ = strings.Cut(q, "\n")
		} else {
			break
		}
	}
	w := strings.ToUpper(strings.FieldsFunc(q+" ", func(r rune) bool { return !unicode.IsLetter(r) })[0])
	switch w {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK":
		return w
	case "START":
		return "BEGIN"
	}
	return "OTHER"
}

// pgStatements reads the calls of the statements that ran, per class, from the server's own
// pg_stat_statements (over its Unix socket, from the host), leaving out the test's own
// statements on that extension.
func pgStatements(t *testing.T, psql, sockDir string) map[string]int64 {
	t.Helper()
	out, err := exec.Command("setpriv", nobody(psql, "-h", sockDir, "-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-F", "\x1f", "-R", "\x1e",
		"-c", "SELECT calls, query FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'")...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_stat_statements: %v\n%s", err, out)
	}
	st := map[string]int64{}
	for _, rec := range strings.Split(strings.TrimSpace(string(out)), "\x1e") {
		calls, q, ok := strings.Cut(strings.TrimSpace(rec), "\x1f")
		n, err := strconv.ParseInt(calls, 10, 64)
		if !ok || err != nil {
			t.Fatalf("pg_stat_statements row %q", rec)
		}
		st[sqlClass(q)] += n
	}
	return st
}

// startPostgres starts a PostgreSQL server in the server pod, as nobody, on a data directory
// of the test's own (initdb; any client of the test's namespaces trusted) with
// pg_stat_statements; it returns the server, its socket directory, psql, address and port.
func startPostgres(t *testing.T, p *fakepod.Pair) (*fakepod.Proc, string, string, string, int) {
	t.Helper()
	fakepod.RequireRoot(t)
	requireTools(t, "setpriv")
	postgres, initdb, psql := pgBinary(t, "postgres"), pgBinary(t, "initdb"), pgBinary(t, "psql")
	dir, err := os.MkdirTemp("", "kpod-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	data := dir + "/data"
	if out, err := exec.Command("setpriv", nobody(initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync",
		"--locale=C", "-E", "UTF8")...).CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	// Any client of the test's own namespaces, without a password.
	if err := os.WriteFile(data+"/pg_hba.conf", []byte("local all all trust\nhost all all 0.0.0.0/0 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const port = 5432
	host := p.Veth.AddrB
	srv := p.SrvCtr.Exec("setpriv", nobody(postgres, "-D", data, "-k", dir, "-h", host, "-p", strconv.Itoa(port),
		"-c", "fsync=off", "-c", "shared_preload_libraries=pg_stat_statements", "-c", "pg_stat_statements.track_utility=on",
		"-c", "autovacuum=off", "-c", "jit=off")...)
	waitListening(t, p.Server.NetNS, "tcp", port)
	// The server listens before it has recovered: until then it refuses connections as
	// "starting up".
	for i := 0; ; i++ {
		out, err := exec.Command("setpriv", nobody(psql, "-h", dir, "-U", "postgres", "-d", "postgres", "-X",
			"-c", "CREATE EXTENSION pg_stat_statements")...).CombinedOutput()
		if err == nil {
			break
		}
		if i == 600 || !strings.Contains(string(out), "starting up") {
			t.Fatalf("CREATE EXTENSION: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return srv, dir, psql, host, port
}

// TestRealL7Postgres: a PostgreSQL server of the test's own (initdb in a temporary
// directory, run as nobody) in the server pod; pgx's pgconn in the client pod runs the SQL
// workload three times on one connection each: as simple Query messages, as named prepared
// statements (Parse/Describe/Sync once: PREPARE, then Bind/Execute/Sync) and as unnamed
// ones (Parse/Bind/Execute/Sync each), with a result of 300 rows, failing statements (a
// duplicate key when running, a missing table and a syntax error before), transactions, a
// pipeline of three Executes and one Sync whose second fails, and an empty Query. Both ends'
// requests by class and status equal the client's own count; its successful statements per
// class equal the server's own pg_stat_statements calls. psql then runs three Queries.
func TestRealL7Postgres(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := topoPair(t)
	srv, dir, psql, host, port := startPostgres(t, p)
	s := startL7Topology(t, p)

	const n = 10
	client := map[string]int64{}
	for _, mode := range []string{"simple", "prepare", "params"} {
		for k, v := range appCounts(t, p.CliCtr.L7App("pg-client", fmt.Sprintf("%s:%d", host, port), "postgres", mode, strconv.Itoa(n)).Output()) {
			client[k] += v
		}
	}
	// PostgreSQL's own client (libpq: an SSLRequest (sslmode=prefer) refused with 'N'
	// before the startup), one Query per -c.
	p.CliCtr.Exec(psql, "-h", host, "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-X",
		"-c", "SELECT count(*) FROM kpod_simple", "-c", "update kpod_simple SET v = 'psql' WHERE id = -1",
		"-c", "DELETE FROM kpod_simple WHERE id = -1").Output()
	client["SELECT ok"]++
	client["UPDATE ok"]++
	client["DELETE ok"]++

	md := scrape(t, s)
	failDump(t, md)
	server := pgStatements(t, psql, dir)
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.Output()
	// pg_stat_statements counts the statements that ran to their end: not the preparations,
	// the failed statements, nor the empty Query of each ping (one per mode).
	ok := map[string]int64{"OTHER": -3}
	for k, v := range client {
		if class, status, _ := strings.Cut(k, " "); status == "ok" && class != "PREPARE" {
			ok[class] += v
		}
	}
	if !maps.Equal(ok, server) {
		t.Fatalf("the client's statements that succeeded per class, %v, are not the server's %v", ok, server)
	}
	// The failures: the duplicate key in each round of each mode and in each pipeline; the
	// missing table (simple, unnamed) and the third Execute of each pipeline; the syntax
	// error (simple, unnamed); the missing table and the syntax error prepared.
	if client["INSERT error"] != 3*n+3 || client["SELECT error"] != 5 || client["OTHER error"] != 2 || client["PREPARE error"] != 2 {
		t.Fatalf("the client's counts lack the failing statements: %v", client)
	}
	checkL7Bounded(t, md)
	checkL7(t, md, p.Client, p.CliCtr, "postgresql", "client", client)
	checkL7(t, md, p.Server, p.SrvCtr, "postgresql", "server", client)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
	checkServiceGraph(t, md, p, "postgresql", client)
	t.Logf("postgresql requests per class and status: %v; pg_stat_statements calls per class: %v", client, server)
}

// checkSQLGarbage asserts that each end of a connection on which a client wrote bytes that
// are not the protocol counted its requests (want) and exactly the parse errors errs (by
// "reason"), and nothing else.
func checkSQLGarbage(t *testing.T, p *fakepod.Pair, md pmetric.Metrics, protocol string, want map[string]int64, errs ...string) {
	t.Helper()
	for _, end := range []struct {
		pod  *fakepod.Pod
		ctr  *fakepod.Container
		role string
	}{{p.Client, p.CliCtr, "client"}, {p.Server, p.SrvCtr, "server"}} {
		rm, _ := resourceOf(md, end.pod.UID, end.ctr.ID)
		if got := l7Requests(rm, protocol, end.role); !maps.Equal(got, want) {
			t.Errorf("%s requests %v, want %v", end.role, got, want)
		}
		wantErrs := map[string]int64{}
		for _, e := range errs {
			wantErrs[protocol+" "+end.role+" "+e]++
		}
		if got := l7ParseErrors(rm); !maps.Equal(got, wantErrs) {
			t.Errorf("%s parse errors %v, want %v", end.role, got, wantErrs)
		}
	}
	checkL7Bounded(t, md)
	checkL7Idle(t, md, p.Idle, p.IdleCtr)
}

// TestRealL7MySQLGarbage: between two queries on one connection, a packet whose command byte
// is none: on each end one resync (the packet) and one unanswered response (the server's ERR
// packet "unknown command"); the queries around it are counted.
func TestRealL7MySQLGarbage(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := fakepod.NewPair(t)
	s := startL7(t)
	srv, _, host, port := startMariaDB(t, p)
	client := appCounts(t, p.CliCtr.L7App("mysql-garbage", fmt.Sprintf("%s:%d", host, port), "kpod").Output())
	md := scrape(t, s)
	failDump(t, md)
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.Output()
	if want := map[string]int64{"SELECT ok": 2}; !maps.Equal(client, want) {
		t.Fatalf("the client counted %v, want %v", client, want)
	}
	checkSQLGarbage(t, p, md, "mysql", client, "resync", "unanswered_response")
}

// TestRealL7PostgresGarbage: after a Query, bytes that are no frontend message (the server
// answers with an ErrorResponse and closes the connection), then a Query on a new
// connection: on each end one resync; the ErrorResponse answers no request and is not
// counted (as the ones of a failed startup); both Queries are counted.
func TestRealL7PostgresGarbage(t *testing.T) {
	fakepod.RequireRoot(t)
	if noL7(t) {
		return
	}
	p := fakepod.NewPair(t)
	srv, _, _, host, port := startPostgres(t, p)
	s := startL7(t)
	client := appCounts(t, p.CliCtr.L7App("pg-garbage", fmt.Sprintf("%s:%d", host, port), "postgres").Output())
	md := scrape(t, s)
	failDump(t, md)
	if err := srv.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	srv.Output()
	if want := map[string]int64{"SELECT ok": 2}; !maps.Equal(client, want) {
		t.Fatalf("the client counted %v, want %v", client, want)
	}
	checkSQLGarbage(t, p, md, "postgresql", client, "resync")
}
