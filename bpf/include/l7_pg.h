/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * PostgreSQL frontend/backend protocol 3. A message is a type byte and an int32 length
 * (big-endian, counting itself); the client's first messages have no type byte: the
 * StartupMessage and the SSLRequest / GSSENCRequest, which detect the protocol (a connection
 * already open is detected from a Query or a Parse). The server answers an SSLRequest with
 * one byte: 'N' and the startup goes on in clear; 'S' (TLS) or 'G' (GSSAPI encryption) and
 * the connection is ignored from then on.
 *
 * Requests:
 * - simple query, Query ('Q'): its method is the class of the first statement (its first
 *   keyword); it ends at ReadyForQuery ('Z'), an error if an ErrorResponse came before.
 * - extended query: each Execute ('E') is a request. Its class is the one of the statement
 *   that its portal was bound to (Bind 'B') and that was parsed (Parse 'P') maybe long before:
 *   the class of each named statement and portal of the connection is kept in kpod_l7_stmt by
 *   a hash of its name. The Execute ends at CommandComplete ('C'), EmptyQueryResponse ('I'),
 *   PortalSuspended ('s') — ok — or ErrorResponse ('E') — error; Executes after an error up to
 *   the next Sync are passed over by the server and counted as errors at its ReadyForQuery. A
 *   Parse ... Sync that executes nothing (a statement prepared for later) is one request,
 *   PREPARE, an error if an ErrorResponse came before its ReadyForQuery.
 * - FunctionCall ('F') is OTHER.
 * A CommandComplete's tag ("SELECT 3", "INSERT 0 1", "COMMIT") names what ran: its first
 * word, if it is one of the classes, replaces the class from the text. A request's duration
 * ends at the first message of its response; its status is known at its end. Pipelined
 * queries (many Executes and Syncs before a response) pair in order.
 */
#ifndef __KPOD_L7_PG_H__
#define __KPOD_L7_PG_H__

#include "l7_sql.h"

enum { PS_TYPE, PS_LEN, PS_CODE, PS_NAME, PS_WORD, PS_READY };

/* Kinds of pending requests (the low byte of their id). */
enum { PK_QUERY = 1, PK_EXEC = 2, PK_SYNC = 3 };

/* The client's batch since its last Sync (l7_dir.neg of the request direction). */
enum { PB_PARSE = 1, PB_EXEC = 2 };

#define PG_FNV_BASIS 2166136261U
#define PG_FNV_PRIME 16777619U
#define PG_PORTAL (1ULL << 32) /* portals' names apart from statements' */

#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104

static __always_inline long l7_pg_skip(struct l7_dir *d)
{
	d->skip = d->num > 0 ? d->num : 0;
	d->num = 0;
	d->depth = 0;
	d->state = PS_TYPE;
	return 0;
}

/* The other direction's state. */
static __always_inline struct l7_dir *l7_pg_other(struct l7_walk *w)
{
	return &w->conn->dir[(w->c->out & 1) ^ 1];
}

static __always_inline long l7_pg_ignore(struct l7_walk *w)
{
	w->conn->proto = L7_IGNORE;
	w->c->pos = w->c->ret;
	return 1;
}

/* Whether t is the type of a message the client sends (0: one without a type). */
static __always_inline bool l7_pg_frontend(int t)
{
	switch (t) {
	case 0:
	case 'B':
	case 'C':
	case 'd':
	case 'c':
	case 'f':
	case 'D':
	case 'E':
	case 'H':
	case 'F':
	case 'P':
	case 'p':
	case 'Q':
	case 'S':
	case 'X':
		return true;
	}
	return false;
}

/* Whether t is the type of a message the server sends. */
static __always_inline bool l7_pg_backend(int t)
{
	switch (t) {
	case 'R':
	case 'K':
	case 'S':
	case 'Z':
	case 'C':
	case 'D':
	case 'E':
	case 'I':
	case 'N':
	case 'A':
	case 'G':
	case 'H':
	case 'W':
	case 'c':
	case 'd':
	case '1':
	case '2':
	case '3':
	case 'n':
	case 's':
	case 't':
	case 'T':
	case 'V':
	case 'v':
		return true;
	}
	return false;
}

/* ReadyForQuery: the end of the oldest Query or Sync in flight, and of the Executes before
 * it that got no answer (passed over after an error). One request per step (the
 * ReadyForQuery's byte is not taken meanwhile): true once the Query or Sync is reached. */
static __always_inline bool l7_pg_ready(struct l7_walk *w)
{
	struct l7_conn *conn = w->conn;
	struct l7_pending *p = l7_sql_head(conn);
	if (!p)
		return true;
	__u32 id = p->id, kind = id & 0xff;
	if (kind == PK_SYNC && !(id & L7_SQL_COUNT)) {
		l7_drop(conn);
		return true;
	}
	l7_sql_done(w->c, conn, p->method, kind == PK_EXEC || (id & L7_SQL_ERR) ? L7_ERROR : L7_OK);
	return kind != PK_EXEC;
}

/* The end of an Execute: CommandComplete with the class of its tag (tag), EmptyQueryResponse,
 * PortalSuspended, ErrorResponse. */
static __always_inline void l7_pg_end(struct l7_walk *w, __u16 tag, __u16 status)
{
	struct l7_pending *p = l7_sql_head(w->conn);
	if (!p) {
		/* (an ErrorResponse outside a request, at startup or at exit, is not a response) */
		if (status == L7_OK)
			l7_lost(w->c, w->conn, L7_LOST_NOREQ);
		return;
	}
	__u32 kind = p->id & 0xff;
	if (kind == PK_EXEC) {
		l7_sql_done(w->c, w->conn, tag ? tag : p->method, status);
		return;
	}
	if (status != L7_OK)
		p->id |= L7_SQL_ERR;
	else if (kind == PK_QUERY && !(p->id & L7_SQL_TAG)) {
		p->id |= L7_SQL_TAG;
		if (tag)
			p->method = tag;
	}
}

/* A message's length is read (d->num: its payload): what to do with the payload. */
static __always_inline long l7_pg_msg(struct l7_walk *w)
{
	struct l7_ctx *c = w->c;
	struct l7_conn *conn = w->conn;
	struct l7_dir *d = w->d;
	d->depth = 0;
	d->left[0] = PG_FNV_BASIS;
	if (d->num < 0 || d->num > (1 << 30))
		return l7_resync(w);
	if (w->req) {
		switch (d->kind) {
		case 0: /* StartupMessage, SSLRequest, GSSENCRequest, CancelRequest */
			if (d->num < 4)
				return l7_resync(w);
			d->left[0] = 0;
			d->state = PS_CODE;
			return 0;
		case 'Q':
			l7_push(c, conn, 0, PK_QUERY);
			l7_sql_word_start(d);
			d->state = PS_WORD;
			return 0;
		case 'F':
			l7_push(c, conn, 0, PK_QUERY);
			break;
		case 'P':
			d->neg |= PB_PARSE;
			d->state = PS_NAME;
			return 0;
		case 'B':
			d->state = PS_NAME;
			return 0;
		case 'E':
			d->neg |= PB_EXEC;
			l7_push(c, conn, 0, PK_EXEC);
			d->state = PS_NAME;
			return 0;
		case 'S':
			if (d->neg == PB_PARSE)
				l7_push(c, conn, L7_POSTGRESQL_PREPARE, PK_SYNC | L7_SQL_COUNT);
			else
				l7_push(c, conn, 0, PK_SYNC);
			d->neg = 0;
			break;
		}
		return l7_pg_skip(d);
	}
	switch (d->kind) {
	case 'N': /* NoticeResponse, NotificationResponse, ParameterStatus: at any time */
	case 'A':
	case 'S':
		return l7_pg_skip(d);
	}
	l7_sql_first(c, conn);
	switch (d->kind) {
	case 'C':
		l7_sql_word_start(d);
		d->state = PS_WORD;
		return 0;
	case 'I':
	case 's':
		l7_pg_end(w, 0, L7_OK);
		break;
	case 'E':
		l7_pg_end(w, 0, L7_ERROR);
		break;
	case 'Z':
		d->state = PS_READY;
		return 0;
	}
	return l7_pg_skip(d);
}

/* The first keyword of a Query's or a Parse's text, or of a CommandComplete's tag. */
static __always_inline void l7_pg_word(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u16 m = l7_name_id(L7_POSTGRESQL, d);
	switch (d->kind) {
	case 'Q':
		l7_set_method(w->conn, m);
		break;
	case 'P':
		l7_stmt_set(w->c, d->left[0], m);
		break;
	case 'C':
		l7_pg_end(w, m, L7_OK);
		break;
	}
}

/* A name (statement, portal) ends: its hash is in d->left[0]. */
static __always_inline long l7_pg_name(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u32 h = d->left[0];
	switch (d->kind) {
	case 'P': /* the statement's text follows */
		l7_sql_word_start(d);
		d->state = PS_WORD;
		return 0;
	case 'B':
		if (d->depth == 0) { /* the portal; the statement follows */
			d->left[1] = h;
			d->left[0] = PG_FNV_BASIS;
			d->depth = 1;
			return 0;
		}
		l7_stmt_set(w->c, PG_PORTAL | d->left[1], l7_stmt_get(w->c, h));
		break;
	case 'E':
		l7_set_method(w->conn, l7_stmt_get(w->c, PG_PORTAL | h));
		break;
	}
	return l7_pg_skip(d);
}

/* The payload ended where the parser was in the middle of a field. */
static __always_inline void l7_pg_end_payload(struct l7_walk *w)
{
	if (w->d->state == PS_WORD)
		l7_pg_word(w);
	l7_pg_skip(w->d);
}

static __always_inline long l7_pg_byte(struct l7_walk *w, int b)
{
	struct l7_dir *d = w->d;
	switch (d->state) {
	case PS_CODE:
		d->left[0] = d->left[0] << 8 | (b & 0xff);
		if (++d->depth < 4)
			return 0;
		if (d->left[0] == PG_SSL_REQUEST || d->left[0] == PG_GSSENC_REQUEST)
			l7_pg_other(w)->first = 1; /* a one-byte answer comes */
		return l7_pg_skip(d);
	case PS_NAME:
		if (b == 0)
			return l7_pg_name(w);
		d->left[0] = (d->left[0] ^ (b & 0xff)) * PG_FNV_PRIME;
		return 0;
	case PS_WORD:
		if (l7_sql_word(d, b)) {
			l7_pg_word(w);
			return l7_pg_skip(d);
		}
		return 0;
	}
	return l7_resync(w);
}

static long l7_pg_step(__u32 i, struct l7_walk *w)
{
	struct l7_ctx *c = w->c;
	struct l7_dir *d = w->d;
	if (d->state == PS_READY) {
		if (l7_pg_ready(w))
			l7_pg_skip(d);
		return 0;
	}
	int b = 0;
	int r = l7_next(w, &b);
	if (r == L7_SKIPPED)
		return 0;
	if (r == L7_END)
		return 1;
	if (r == L7_FAULT)
		return l7_resync(w);
	switch (d->state) {
	case PS_TYPE:
		if (!w->req && d->first) { /* the answer to an SSLRequest or a GSSENCRequest */
			d->first = 0;
			return b == 'N' ? 0 : l7_pg_ignore(w);
		}
		if (w->req ? !l7_pg_frontend(b) : (b == 0 || !l7_pg_backend(b)))
			return l7_resync(w);
		d->kind = b;
		d->num = 0;
		/* an untyped message's first byte is its length's */
		d->depth = b == 0 ? 1 : 0;
		d->state = PS_LEN;
		if (d->depth == 0) { /* the whole length at once when the window has it */
			__u32 pos = c->pos;
			int b0 = l7_at(c, pos), b1 = l7_at(c, pos + 1), b2 = l7_at(c, pos + 2), b3 = l7_at(c, pos + 3);
			if (b0 >= 0 && b1 >= 0 && b2 >= 0 && b3 >= 0) {
				c->pos = pos + 4;
				d->num = ((__s64)b0 << 24 | b1 << 16 | b2 << 8 | b3) - 4;
				return l7_pg_msg(w);
			}
		}
		return 0;
	case PS_LEN:
		d->num = d->num << 8 | (b & 0xff);
		if (++d->depth < 4)
			return 0;
		d->num -= 4;
		return l7_pg_msg(w);
	}
	d->num--;
	long ret = l7_pg_byte(w, b);
	if (ret == 0 && d->state != PS_TYPE && d->num <= 0)
		l7_pg_end_payload(w);
	return ret;
}

/* The detector's test: a StartupMessage (protocol 3), an SSLRequest or a GSSENCRequest; on
 * a connection opened before, a Query or a Parse whose text starts like a statement. */
static __always_inline int l7_pg_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	*request = true;
	int b0 = l7_at(c, 0), b1 = l7_at(c, 1), b2 = l7_at(c, 2), b3 = l7_at(c, 3), b4 = l7_at(c, 4);
	int b5 = l7_at(c, 5), b6 = l7_at(c, 6), b7 = l7_at(c, 7);
	if (b7 < 0 || b6 < 0 || b5 < 0 || b4 < 0 || b3 < 0 || b2 < 0 || b1 < 0 || b0 < 0)
		return L7_NO;
	if (b0 == 0 && b1 == 0) {
		__u32 len = b2 << 8 | b3;
		if (len == 8 && b4 == 0x04 && b5 == 0xd2 && b6 == 0x16 && (b7 == 0x2f || b7 == 0x30))
			return L7_YES;
		return len >= 8 && b4 == 0 && b5 == 3 && b6 == 0 ? L7_YES : L7_NO;
	}
	if ((b0 != 'Q' && b0 != 'P') || b1 != 0)
		return L7_NO;
	__u32 len = b2 << 16 | b3 << 8 | b4;
	if (len < 6)
		return L7_NO;
	if (b0 == 'Q')
		return l7_sql_start(b5) && (len >= c->len || l7_at(c, len) == 0) ? L7_YES : L7_NO;
	for (int k = 5; k < 5 + 64; k++) { /* the statement's name, then its text */
		int v = l7_at(c, k);
		if (v == 0)
			return l7_sql_start(l7_at(c, k + 1)) ? L7_YES : L7_NO;
		if (v < 0x20 || v > 0x7e)
			return L7_NO;
	}
	return L7_NO;
}

static __always_inline int l7_pg(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_pg_step, &w, 0);
	if (c->pos < c->ret && w.d->skip == 0 && conn->proto == L7_POSTGRESQL)
		l7_resync(&w); /* more messages than steps */
	return 0;
}

#endif /* __KPOD_L7_PG_H__ */
