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

// TestRealL7MySQL: mariadbd (its own data directory, no grant tables) in the server pod;
// go-sql-driver/mysql in the client pod runs the SQL workload twice on one connection each:
// as text queries (COM_QUERY), then as server-side prepared statements (COM_STMT_PREPARE,
// COM_STMT_EXECUTE), with a result of 300 rows (the packets' sequence id wraps), an INSERT
// that fails (duplicate key), statements that fail before they run (a missing table, a syntax
// error), a transaction committed and one rolled back, and a COM_PING. Both ends' requests by
// class and status equal the client's own count, whose totals per class equal the server's
// own counters (Com_select, Com_insert, ..., Com_stmt_prepare).
func TestRealL7MySQL(t *testing.T) {
	fakepod.RequireRoot(t)
	requireTools(t, "mariadbd", "mariadb")
	p := fakepod.NewPair(t)
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/kpod", 0o755); err != nil { // the database kpod
		t.Fatal(err)
	}
	s := startL7(t)
	const port = 3306
	host := p.Veth.AddrB
	sock := dir + "/mysqld.sock"
	srv := p.SrvCtr.Exec("mariadbd", "--no-defaults", "--datadir="+dir, "--user=root", "--bind-address="+host,
		"--port="+strconv.Itoa(port), "--socket="+sock, "--pid-file="+dir+"/mysqld.pid", "--log-error="+dir+"/error.log",
		"--skip-grant-tables", "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
		"--innodb-use-native-aio=0", "--performance-schema=OFF")
	defer func() {
		if b, err := os.ReadFile(dir + "/error.log"); t.Failed() && err == nil {
			t.Logf("mariadbd's log:\n%s", b)
		}
	}()
	waitListening(t, p.Server.NetNS, "tcp", port)

	const n = 10
	client := map[string]int64{}
	for _, mode := range []string{"text", "prepare"} {
		for k, v := range appCounts(t, p.CliCtr.L7App("mysql-client", fmt.Sprintf("%s:%d", host, port), "kpod", mode, strconv.Itoa(n)).Output()) {
			client[k] += v
		}
	}

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
	t.Logf("mysql requests per class and status: %v; the server's counters: %v", client, status)
}
