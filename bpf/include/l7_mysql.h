/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * MySQL / MariaDB client/server protocol. Every message is a packet: 3 bytes of payload
 * length (little-endian), a sequence id, the payload. The server speaks first: its greeting
 * (protocol version 10) detects the protocol; a connection already open is detected from a
 * client's command. The client's handshake response and the authentication exchange (packets
 * with sequence ids above 0) are not requests; a client that asks for TLS or compression
 * turns the connection into bytes that are not parsed (it is ignored from then on).
 *
 * A request is a command packet (sequence id 0): COM_QUERY's method is the statement's class
 * from its first keyword; COM_STMT_PREPARE is PREPARE (the statement's class is kept by the
 * statement id the server returns, in kpod_l7_stmt); COM_STMT_EXECUTE takes the class of its
 * statement; other commands (COM_PING, COM_INIT_DB, ...) are OTHER. COM_QUIT,
 * COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA have no response and are not counted.
 *
 * A response is counted at its first packet (sequence id 1): ERR (0xff) is an error; OK,
 * EOF, a result set's column count, ... are ok. The rest of a response (column definitions,
 * rows, over 256 packets the sequence id wraps to 1 again: a packet with id 1 right after
 * one with id 0 continues the response) is passed over by the packet lengths.
 */
#ifndef __KPOD_L7_MYSQL_H__
#define __KPOD_L7_MYSQL_H__

#include "l7_sql.h"

enum { MS_HDR, MS_CMD, MS_WORD, MS_ID, MS_STATUS, MS_PREPID, MS_CAPS };

enum {
	COM_QUIT = 0x01,
	COM_QUERY = 0x03,
	COM_STMT_PREPARE = 0x16,
	COM_STMT_EXECUTE = 0x17,
	COM_STMT_SEND_LONG_DATA = 0x18,
	COM_STMT_CLOSE = 0x19,
	COM_STMT_BULK_EXECUTE = 0xfa, /* MariaDB */
};

#define MYSQL_LAST_STMT 0xffffffffULL /* MariaDB: "the statement prepared last" */

/* Passes over the rest of the packet; the next byte is a header's. */
static __always_inline long l7_mysql_skip(struct l7_dir *d)
{
	d->skip = d->num > 0 ? d->num : 0;
	d->num = 0;
	d->depth = 0;
	d->state = MS_HDR;
	return 0;
}

/* A packet's header is read: what its payload is. */
static __always_inline long l7_mysql_packet(struct l7_walk *w, __u32 len, __u32 seq)
{
	struct l7_dir *d = w->d;
	d->num = len;
	d->depth = 0;
	if (w->req) {
		if (seq == 0) { /* a command */
			if (len == 0)
				return l7_resync(w);
			d->first = 1;
			d->state = MS_CMD;
			return 0;
		}
		if (seq == 1 && !d->first && len >= 4) { /* the handshake response */
			d->state = MS_CAPS;
			return 0;
		}
		return l7_mysql_skip(d);
	}
	/* responses: the first packet of one has sequence id 1 */
	bool cont = seq == 1 && d->neg;
	d->neg = seq == 0 && d->first;
	if (seq == 1 && !cont && len > 0) {
		d->first = 1;
		d->state = MS_STATUS;
		return 0;
	}
	return l7_mysql_skip(d);
}

/* The statement's first keyword is complete: the query's method, or the class of the
 * statement being prepared. */
static __always_inline void l7_mysql_word(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u16 m = l7_name_id(L7_MYSQL, d);
	if (d->kind == COM_QUERY) {
		l7_set_method(w->conn, m);
		return;
	}
	struct l7_pending *p = l7_sql_newest(w->conn);
	if (p)
		p->id = L7_SQL_PREP | (__u32)m << 16;
	l7_stmt_set(w->c, MYSQL_LAST_STMT, m);
}

/* The payload ended where the parser was in the middle of a field. */
static __always_inline void l7_mysql_end(struct l7_walk *w)
{
	if (w->d->state == MS_WORD)
		l7_mysql_word(w);
	l7_mysql_skip(w->d);
}

/* Disregards the connection from now on (TLS, compression). */
static __always_inline long l7_mysql_ignore(struct l7_walk *w)
{
	w->conn->proto = L7_IGNORE;
	w->c->pos = w->c->ret;
	return 1;
}

/* A command's first byte. */
static __always_inline long l7_mysql_cmd(struct l7_walk *w, int b)
{
	struct l7_dir *d = w->d;
	d->kind = b;
	switch (b) {
	case COM_QUERY:
	case COM_STMT_PREPARE:
		l7_push(w->c, w->conn, b == COM_STMT_PREPARE ? L7_MYSQL_PREPARE : 0, 0);
		l7_sql_word_start(d);
		d->state = MS_WORD;
		return 0;
	case COM_STMT_EXECUTE:
		l7_push(w->c, w->conn, 0, 0);
		d->left[0] = 0;
		d->state = MS_ID;
		return 0;
	case COM_QUIT:
	case COM_STMT_SEND_LONG_DATA:
	case COM_STMT_CLOSE:
		return l7_mysql_skip(d);
	}
	if (b > 0x1f && b != COM_STMT_BULK_EXECUTE)
		return l7_resync(w);
	l7_push(w->c, w->conn, 0, 0);
	return l7_mysql_skip(d);
}

/* A byte of a payload that is read. */
static __always_inline long l7_mysql_byte(struct l7_walk *w, int b)
{
	struct l7_dir *d = w->d;
	switch (d->state) {
	case MS_CMD:
		return l7_mysql_cmd(w, b);
	case MS_WORD:
		if (l7_sql_word(d, b)) {
			l7_mysql_word(w);
			return l7_mysql_skip(d);
		}
		return 0;
	case MS_ID: /* COM_STMT_EXECUTE's statement id */
	case MS_PREPID: /* the statement id in COM_STMT_PREPARE's OK */
		d->left[0] |= (__u32)(b & 0xff) << ((d->depth & 3) * 8);
		if (++d->depth < 4)
			return 0;
		if (d->state == MS_ID)
			l7_set_method(w->conn, l7_stmt_get(w->c, d->left[0]));
		else
			l7_stmt_set(w->c, d->left[0], d->left[1]);
		return l7_mysql_skip(d);
	case MS_STATUS: {
		struct l7_pending *p = l7_sql_head(w->conn);
		__u32 id = p ? p->id : 0;
		l7_sql_done(w->c, w->conn, p ? p->method : 0, b == 0xff ? L7_ERROR : L7_OK);
		if (b == 0 && (id & L7_SQL_PREP)) {
			d->left[0] = 0;
			d->left[1] = id >> 16;
			d->state = MS_PREPID;
			return 0;
		}
		return l7_mysql_skip(d);
	}
	case MS_CAPS: /* the client's capability flags */
		if (d->depth == 0 && (b & 0x20)) /* CLIENT_COMPRESS */
			return l7_mysql_ignore(w);
		if (d->depth == 1 && (b & 0x08)) /* CLIENT_SSL */
			return l7_mysql_ignore(w);
		if (++d->depth < 2)
			return 0;
		return l7_mysql_skip(d);
	}
	return l7_resync(w);
}

static long l7_mysql_step(__u32 i, struct l7_walk *w)
{
	struct l7_ctx *c = w->c;
	struct l7_dir *d = w->d;
	int b = 0;
	int r = l7_next(w, &b);
	if (r == L7_SKIPPED)
		return 0;
	if (r == L7_END)
		return 1;
	if (r == L7_FAULT)
		return l7_resync(w);
	if (d->state == MS_HDR) {
		if (d->depth == 0) { /* the whole header at once when the window has it */
			__u32 pos = c->pos;
			int b1 = l7_at(c, pos), b2 = l7_at(c, pos + 1), b3 = l7_at(c, pos + 2);
			if (b1 >= 0 && b2 >= 0 && b3 >= 0) {
				c->pos = pos + 3;
				return l7_mysql_packet(w, b | b1 << 8 | b2 << 16, b3);
			}
			d->left[0] = 0;
		}
		d->left[0] |= (__u32)(b & 0xff) << ((d->depth & 3) * 8);
		if (++d->depth < 4)
			return 0;
		return l7_mysql_packet(w, d->left[0] & 0xffffff, d->left[0] >> 24);
	}
	d->num--;
	long ret = l7_mysql_byte(w, b);
	if (ret == 0 && d->state != MS_HDR && d->num <= 0)
		l7_mysql_end(w);
	return ret;
}

/* The detector's test: the server's greeting (protocol version 10, a printable server
 * version), or a client's command on a connection opened before: a query or a statement
 * to prepare, a COM_STMT_EXECUTE of one iteration, a COM_PING. */
static __always_inline int l7_mysql_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	int b0 = l7_at(c, 0), b1 = l7_at(c, 1), b2 = l7_at(c, 2), b3 = l7_at(c, 3), b4 = l7_at(c, 4);
	if (b0 < 0 || b1 < 0 || b2 < 0 || b3 != 0 || b4 < 0)
		return L7_NO;
	__u32 len = b0 | b1 << 8 | b2 << 16;
	if (b4 == 0x0a) {
		*request = false;
		if (len < 32 || len > 1024)
			return L7_NO;
		for (int k = 5; k < 5 + 64; k++) {
			int v = l7_at(c, k);
			if (v == 0)
				return k > 5 ? L7_YES : L7_NO;
			if (v < 0x20 || v > 0x7e)
				return L7_NO;
		}
		return L7_NO;
	}
	*request = true;
	switch (b4) {
	case COM_QUERY:
	case COM_STMT_PREPARE:
		return len >= 2 && len < 0xffffff && l7_sql_start(l7_at(c, 5)) ? L7_YES : L7_NO;
	case COM_STMT_EXECUTE:
		return len >= 10 && l7_at(c, 9) >= 0 && l7_at(c, 9) <= 0x0f && l7_at(c, 10) == 1 && l7_at(c, 11) == 0 &&
				       l7_at(c, 12) == 0 && l7_at(c, 13) == 0
			       ? L7_YES
			       : L7_NO;
	case 0x0e: /* COM_PING */
		return len == 1 && c->ret == 5 ? L7_YES : L7_NO;
	}
	return L7_NO;
}

static __always_inline int l7_mysql(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_mysql_step, &w, 0);
	if (c->pos < c->ret && w.d->skip == 0 && conn->proto == L7_MYSQL)
		l7_resync(&w); /* more packets than steps */
	return 0;
}

#endif /* __KPOD_L7_MYSQL_H__ */
