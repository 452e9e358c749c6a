package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

func init() {
	commands["pg-client"] = pgClient
	commands["pg-garbage"] = pgGarbage
}

// pgText is a parameter as PostgreSQL's text format has it.
func pgText(a any) []byte { return []byte(fmt.Sprint(a)) }

// pgLiteral is a parameter as an SQL literal (the simple protocol's statements carry their
// values in the text).
func pgLiteral(a any) string {
	if s, ok := a.(string); ok {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return fmt.Sprint(a)
}

// pgRows reads a result and returns its rows.
func pgRows(rr *pgconn.ResultReader) (int, error) {
	n := 0
	for rr.NextRow() {
		n++
	}
	_, err := rr.Close()
	return n, err
}

// pgClient ADDR DB simple|prepare|params N: the SQL workload over one connection of pgx's
// pgconn, with the statements
//   - simple: as Query messages (the simple protocol; values written into the text),
//   - prepare: as named prepared statements (Parse, Describe, Sync once per statement:
//     PREPARE; then Bind, Describe, Execute, Sync per execution),
//   - params: as unnamed statements (Parse, Bind, Describe, Execute, Sync per execution),
//
// then a transaction committed (BEGIN) and one rolled back (START TRANSACTION), a pipeline of
// three Executes and one Sync whose second fails (a duplicate key: the server passes over the
// third, counted as an error), and a ping (a Query of a comment only: OTHER); prints its
// counts.
func pgClient(args []string) error {
	if len(args) != 4 || (args[2] != "simple" && args[2] != "prepare" && args[2] != "params") {
		return errors.New("pg-client ADDR DB simple|prepare|params N")
	}
	n, err := strconv.Atoi(args[3])
	if err != nil {
		return err
	}
	host, port, ok := strings.Cut(args[0], ":")
	if !ok {
		return errors.New("pg-client: ADDR is HOST:PORT")
	}
	ctx := context.Background()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable", host, port, args[1]))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	mode := args[2]
	stmts := map[string]string{}
	r := &sqlRun{run: func(query string, params []any) (int, bool, error, error) {
		var vals [][]byte
		for _, a := range params {
			vals = append(vals, pgText(a))
		}
		switch mode {
		case "simple":
			for i := len(params); i >= 1; i-- {
				query = strings.ReplaceAll(query, "$"+strconv.Itoa(i), pgLiteral(params[i-1]))
			}
			res, err := conn.Exec(ctx, query).ReadAll()
			rows := 0
			for _, r := range res {
				rows += len(r.Rows)
			}
			return rows, false, nil, err
		case "params":
			rows, err := pgRows(conn.ExecParams(ctx, query, vals, nil, nil, nil))
			return rows, false, nil, err
		}
		name, prepared := stmts[query], false
		if name == "" {
			name = "kpod_s" + strconv.Itoa(len(stmts))
			if _, err := conn.Prepare(ctx, name, query, nil); err != nil {
				return 0, true, err, nil
			}
			stmts[query], prepared = name, true
		}
		rows, err := pgRows(conn.ExecPrepared(ctx, name, vals, nil, nil))
		return rows, prepared, nil, err
	}}
	t := "kpod_" + mode
	sqlWorkload(r, t, n, 300, func(i int) string { return "$" + strconv.Itoa(i) })
	for _, begin := range []string{"BEGIN", "START TRANSACTION"} {
		r.must("BEGIN", begin)
		id := -1
		if begin != "BEGIN" {
			id = -2
		}
		r.must("INSERT", fmt.Sprintf("INSERT INTO %s (id, v) VALUES (%d, 'tx')", t, id))
		if begin == "BEGIN" {
			r.must("COMMIT", "COMMIT")
		} else {
			r.must("ROLLBACK", "ROLLBACK")
		}
	}
	// A pipeline: three Executes, one Sync; the second fails, the server skips the third.
	b := &pgconn.Batch{}
	insert := "INSERT INTO " + t + " (id, v) VALUES ($1, $2)"
	b.ExecParams(insert, [][]byte{[]byte("-3"), []byte("pipeline")}, nil, nil, nil)
	b.ExecParams(insert, [][]byte{[]byte("-3"), []byte("dup")}, nil, nil, nil)
	b.ExecParams("SELECT v FROM "+t, nil, nil, nil, nil)
	res, err := conn.ExecBatch(ctx, b).ReadAll()
	if err == nil || len(res) < 1 || res[0].Err != nil {
		return fmt.Errorf("the pipeline's first statement should succeed and its second fail: %v, %d results", err, len(res))
	}
	r.c.add("INSERT", "ok")
	r.c.add("INSERT", "error")
	r.c.add("SELECT", "error")
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	r.c.add("OTHER", "ok")
	r.c.print()
	return nil
}

// pgGarbage ADDR DB: a Query, then bytes that are no frontend message on the same
// connection (the server answers with an ErrorResponse and closes it), then a Query on a
// second connection; prints its counts.
func pgGarbage(args []string) error {
	if len(args) != 2 {
		return errors.New("pg-garbage ADDR DB")
	}
	host, port, ok := strings.Cut(args[0], ":")
	if !ok {
		return errors.New("pg-garbage: ADDR is HOST:PORT")
	}
	ctx := context.Background()
	var c counts
	for i := 0; i < 2; i++ {
		conn, err := pgconn.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable", host, port, args[1]))
		if err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			return err
		}
		c.add("SELECT", "ok")
		if i > 0 {
			conn.Close(ctx)
			break
		}
		h, err := conn.Hijack()
		if err != nil {
			return err
		}
		if _, err := h.Conn.Write([]byte("kpodgarbage xyz\r\n")); err != nil {
			return err
		}
		// Read through the hijacked Frontend, not the socket: pgconn's background reader
		// (started when a write is slow, as on an emulated VM) may still hold or take the
		// reply, and reading the socket directly then sees only the end.
		reply, err := h.Frontend.Receive()
		h.Conn.Close()
		if _, ok := reply.(*pgproto3.ErrorResponse); !ok {
			return fmt.Errorf("the server answered the garbage with %T %+v (%v)", reply, reply, err)
		}
	}
	c.print()
	return nil
}
