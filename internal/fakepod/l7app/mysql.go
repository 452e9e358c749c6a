package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

func init() {
	commands["mysql-client"] = mysqlClient
	commands["mysql-garbage"] = mysqlGarbage
}

// sqlRun runs the SQL clients' statements on one connection and counts each request the
// client makes by class and outcome: a statement's execution by its class, and a
// preparation (a round trip that executes nothing) as PREPARE.
type sqlRun struct {
	// run runs a statement and returns the rows it read; prepared says whether the call
	// prepared the statement first, with prepErr its outcome (then the statement did not run
	// if prepErr is not nil), and err is the execution's.
	run func(query string, args []any) (rows int, prepared bool, prepErr, err error)
	c   counts
}

func status(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// do runs a statement of class class and counts what went on the wire.
func (r *sqlRun) do(class, query string, args ...any) (int, error) {
	rows, prepared, prepErr, err := r.run(query, args)
	if prepared {
		r.c.add("PREPARE", status(prepErr))
		if prepErr != nil {
			return 0, prepErr
		}
	}
	r.c.add(class, status(err))
	return rows, err
}

// must runs a statement that must succeed; mustFail one that must fail.
func (r *sqlRun) must(class, query string, args ...any) int {
	n, err := r.do(class, query, args...)
	if err != nil {
		panic(fmt.Sprintf("%q: %v", query, err))
	}
	return n
}

func (r *sqlRun) mustFail(class, query string, args ...any) {
	if _, err := r.do(class, query, args...); err == nil {
		panic(fmt.Sprintf("%q did not fail", query))
	}
}

// readRows reads and counts the rows of a query.
func readRows(next func() bool, errf func() error, close func()) (int, error) {
	defer close()
	n := 0
	for next() {
		n++
	}
	return n, errf()
}

// sqlWorkload is the statements of the SQL clients: a table t and a large result of rows
// rows (over 256 packets in MySQL), n rounds of INSERT, SELECT, UPDATE, DELETE, a comment
// before a statement, an INSERT that fails when it runs (a duplicate key), then statements
// that fail before they run (a missing table; a syntax error, whose first word is no class:
// OTHER). ph is the dialect's i-th placeholder.
func sqlWorkload(r *sqlRun, t string, n, rows int, ph func(i int) string) {
	r.must("OTHER", "CREATE TABLE "+t+" (id INT PRIMARY KEY, v VARCHAR(64))")
	var values []string
	for i := 0; i < rows; i++ {
		values = append(values, fmt.Sprintf("(%d, 'row %d')", 1000000+i, i))
	}
	r.must("INSERT", "INSERT INTO "+t+" VALUES "+strings.Join(values, ", "))
	insert := "INSERT INTO " + t + " (id, v) VALUES (" + ph(1) + ", " + ph(2) + ")"
	for i := 0; i < n; i++ {
		r.must("INSERT", insert, i, "kpod")
		if got := r.must("SELECT", "SELECT v FROM "+t+" WHERE id = "+ph(1), i); got != 1 {
			panic(fmt.Sprintf("select returned %d rows", got))
		}
		r.must("UPDATE", "UPDATE "+t+" SET v = "+ph(1)+" WHERE id = "+ph(2), "updated", i)
		r.mustFail("INSERT", insert, 1000000, "dup")
		r.must("DELETE", "DELETE FROM "+t+" WHERE id = "+ph(1), i)
		r.must("SELECT", "/* kpod */\n  select count(*) from "+t)
	}
	if got := r.must("SELECT", "SELECT id, v FROM "+t); got != rows {
		panic(fmt.Sprintf("the large select returned %d rows, want %d", got, rows))
	}
	r.mustFail("SELECT", "SELECT v FROM kpod_missing WHERE id = "+ph(1), 1)
	r.mustFail("OTHER", "SELEC 1")
}

// mysqlClient ADDR DB text|prepare N: the SQL workload over one connection of
// go-sql-driver/mysql, as text (parameters interpolated by the client: COM_QUERY) or as
// server-side prepared statements (COM_STMT_PREPARE once per statement, then
// COM_STMT_EXECUTE), then a transaction committed and one rolled back (START TRANSACTION,
// COMMIT, ROLLBACK as text) and a COM_PING; prints its counts.
func mysqlClient(args []string) error {
	if len(args) != 4 || (args[2] != "text" && args[2] != "prepare") {
		return errors.New("mysql-client ADDR DB text|prepare N")
	}
	n, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.DBName = "tcp", args[0], "root", args[1]
	cfg.InterpolateParams = args[2] == "text"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmts := map[string]*sql.Stmt{}
	text := args[2] == "text"
	r := &sqlRun{run: func(query string, params []any) (int, bool, error, error) {
		if text {
			rs, err := conn.QueryContext(ctx, query, params...)
			if err != nil {
				return 0, false, nil, err
			}
			n, err := readRows(rs.Next, rs.Err, func() { rs.Close() })
			return n, false, nil, err
		}
		st, prepared := stmts[query], false
		if st == nil {
			var err error
			if st, err = conn.PrepareContext(ctx, query); err != nil {
				return 0, true, err, nil
			}
			stmts[query], prepared = st, true
		}
		rs, err := st.QueryContext(ctx, params...)
		if err != nil {
			return 0, prepared, nil, err
		}
		n, err := readRows(rs.Next, rs.Err, func() { rs.Close() })
		return n, prepared, nil, err
	}}
	t := "kpod_" + args[2]
	sqlWorkload(r, t, n, 300, func(int) string { return "?" })
	for _, commit := range []bool{true, false} {
		tx, err := conn.BeginTx(ctx, nil)
		r.c.add("BEGIN", status(err))
		if err != nil {
			return err
		}
		id := -1
		if !commit {
			id = -2
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, 'tx')", t, id))
		r.c.add("INSERT", status(err))
		if err != nil {
			tx.Rollback()
			return err
		}
		if commit {
			err = tx.Commit()
			r.c.add("COMMIT", status(err))
		} else {
			err = tx.Rollback()
			r.c.add("ROLLBACK", status(err))
		}
		if err != nil {
			return err
		}
	}
	err = conn.PingContext(ctx)
	r.c.add("OTHER", status(err))
	if err != nil {
		return err
	}
	for _, st := range stmts {
		st.Close()
	}
	r.c.print()
	return nil
}

// mysqlGarbage ADDR DB: on one connection a query, a packet whose command is none (the
// server answers with an ERR packet and goes on), a query; prints its counts.
func mysqlGarbage(args []string) error {
	if len(args) != 2 {
		return errors.New("mysql-garbage ADDR DB")
	}
	var raw net.Conn
	mysql.RegisterDialContext("kpodtcp", func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		raw = c
		return c, err
	})
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.DBName = "kpodtcp", args[0], "root", args[1]
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var c counts
	query := func() error {
		var one int
		if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return err
		}
		c.add("SELECT", "ok")
		return nil
	}
	if err := query(); err != nil {
		return err
	}
	// A packet of 5 bytes, sequence id 0: "kpodx" ('k' is no command).
	if _, err := raw.Write([]byte{5, 0, 0, 0, 'k', 'p', 'o', 'd', 'x'}); err != nil {
		return err
	}
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(raw, hdr); err != nil {
		return err
	}
	reply := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	if _, err := io.ReadFull(raw, reply); err != nil {
		return err
	}
	if len(reply) == 0 || reply[0] != 0xff {
		return fmt.Errorf("the server answered the garbage with %q", reply)
	}
	if err := query(); err != nil {
		return err
	}
	c.print()
	return nil
}
