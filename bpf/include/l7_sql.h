/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the SQL parsers (l7_mysql.h, l7_pg.h) share: a statement's class from its first
 * keyword, the class of a prepared statement by its id or name, and requests whose status is
 * known only some messages after the response began.
 *
 * Only the class (a method id from internal/l7/names) of a statement is kept, never its text.
 */
#ifndef __KPOD_L7_SQL_H__
#define __KPOD_L7_SQL_H__

#include "l7.h"

/* A prepared statement of a connection: MySQL's statement id, or a hash of a PostgreSQL
 * statement's or portal's name. */
struct l7_stmt_key {
	__u64 ino;
	__u64 id;
};

/* The class of each prepared statement (an LRU: the statements of closed connections go). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct l7_stmt_key);
	__type(value, __u16);
} kpod_l7_stmt SEC(".maps");

static __always_inline void l7_stmt_set(struct l7_ctx *c, __u64 id, __u16 class)
{
	struct l7_stmt_key k = {.ino = c->ino, .id = id};
	bpf_map_update_elem(&kpod_l7_stmt, &k, &class, BPF_ANY);
}

static __always_inline __u16 l7_stmt_get(struct l7_ctx *c, __u64 id)
{
	struct l7_stmt_key k = {.ino = c->ino, .id = id};
	__u16 *v = bpf_map_lookup_elem(&kpod_l7_stmt, &k);
	return v ? *v : 0;
}

/* The bits of a pending SQL request's id: its kind (low byte, the parser's) and these. */
enum {
	L7_SQL_FIRST = 1 << 8, /* its response began: ts holds the duration */
	L7_SQL_ERR = 1 << 9,   /* an error was reported before its end */
	L7_SQL_TAG = 1 << 10,  /* its method was taken from what ran */
	L7_SQL_COUNT = 1 << 11, /* a PostgreSQL Sync that is counted as a request (PREPARE) */
	L7_SQL_PREP = 1 << 12, /* a MySQL COM_STMT_PREPARE: the class is in the high half */
};

/* The oldest request in flight, or none. */
static __always_inline struct l7_pending *l7_sql_head(struct l7_conn *conn)
{
	if (l7_n(conn) == 0)
		return 0;
	return l7_nth(conn, 0);
}

/* The newest request in flight, or none. */
static __always_inline struct l7_pending *l7_sql_newest(struct l7_conn *conn)
{
	if (l7_n(conn) == 0)
		return 0;
	return l7_newest(conn);
}

/* A message of the oldest request's response: the first one ends its duration. */
static __always_inline void l7_sql_first(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_pending *p = l7_sql_head(conn);
	if (!p || (p->id & L7_SQL_FIRST))
		return;
	p->ts = c->ts >= p->ts ? c->ts - p->ts : 0;
	p->id |= L7_SQL_FIRST;
}

/* Counts the oldest request in flight with method and status, and forgets it. */
static __always_inline void l7_sql_done(struct l7_ctx *c, struct l7_conn *conn, __u16 method, __u16 status)
{
	struct l7_pending *p = l7_sql_head(conn);
	if (!p) {
		l7_lost(c, conn, L7_LOST_NOREQ);
		return;
	}
	__u64 ns = p->id & L7_SQL_FIRST ? p->ts : c->ts >= p->ts ? c->ts - p->ts : 0;
	l7_drop(conn);
	l7_done(c, conn, method, status, ns);
}

/* Where the first keyword reader is (l7_dir.depth). */
enum { KW_SPACE, KW_WORD, KW_SLASH, KW_BLOCK, KW_STAR, KW_DASH, KW_LINE };

static __always_inline void l7_sql_word_start(struct l7_dir *d)
{
	l7_name_reset(d);
	d->depth = KW_SPACE;
}

/* Takes byte b of an SQL text: passes over white space, opening parentheses and comments
 * (block, "--" and "#" to the end of the line) before the first keyword and gathers its
 * letters into d's name (upper-cased); true at the first byte after the keyword (or at a
 * byte that cannot start one: the text has no keyword, its class is OTHER). */
static __always_inline bool l7_sql_word(struct l7_dir *d, int b)
{
	bool letter = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z');
	switch (d->depth) {
	case KW_WORD:
		if (!letter)
			return true;
		l7_name_add(d, b, true);
		return false;
	case KW_SLASH:
		if (b != '*')
			return true;
		d->depth = KW_BLOCK;
		return false;
	case KW_BLOCK:
		if (b == '*')
			d->depth = KW_STAR;
		return false;
	case KW_STAR:
		d->depth = b == '/' ? KW_SPACE : b == '*' ? KW_STAR : KW_BLOCK;
		return false;
	case KW_DASH:
		if (b != '-')
			return true;
		d->depth = KW_LINE;
		return false;
	case KW_LINE:
		if (b == '\n')
			d->depth = KW_SPACE;
		return false;
	}
	if (letter) {
		l7_name_add(d, b, true);
		d->depth = KW_WORD;
		return false;
	}
	switch (b) {
	case ' ':
	case '\t':
	case '\r':
	case '\n':
	case '(':
		return false;
	case '/':
		d->depth = KW_SLASH;
		return false;
	case '-':
		d->depth = KW_DASH;
		return false;
	case '#':
		d->depth = KW_LINE;
		return false;
	}
	return true;
}

/* Whether b can start an SQL text (the detectors' test of a statement's first byte). */
static __always_inline bool l7_sql_start(int b)
{
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == ' ' || b == '\t' || b == '\r' || b == '\n' ||
	       b == '(' || b == '/' || b == '-' || b == '#';
}

#endif /* __KPOD_L7_SQL_H__ */
