/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Redis (RESP2/RESP3). A request is an array of bulk strings, "*<n>\r\n" then n times
 * "$<len>\r\n<len bytes>\r\n"; the command is the first. A reply is one value: a line
 * ("+OK", ":1", "-ERR ...", RESP3's "_", "#t", ",1.5", "(123"), a bulk string ("$<len>",
 * "!<len>" a bulk error, "=<len>" verbatim), or a container of values ("*", "~", ">" with n
 * elements, "%" with n pairs). Every message of a call is parsed by its lengths, so pipelined
 * requests are all counted and a value's bytes are never taken for a message; a message cut
 * by the end of a call goes on in the next call in its direction. A reply is counted at its
 * first byte, "-" and "!" as errors.
 */
#ifndef __KPOD_L7_REDIS_H__
#define __KPOD_L7_REDIS_H__

#include "l7.h"

enum { RS_MSG, RS_ELEM, RS_NUM, RS_LF, RS_NAME, RS_DATA, RS_LINE, RS_LINELF };
enum { RK_ARRAY = 1, RK_MAP, RK_BULK };

/* One element is complete: close the containers it completes; at the top, the message. */
static __always_inline void l7_redis_done(struct l7_dir *d)
{
	for (int k = 0; k < L7_DEPTH; k++) {
		__u8 depth = d->depth;
		if (depth == 0)
			break;
		__u32 *left = &d->left[(depth - 1) & (L7_DEPTH - 1)];
		if (*left > 1) {
			(*left)--;
			d->state = RS_ELEM;
			return;
		}
		d->depth = depth - 1;
	}
	d->state = RS_MSG;
}

/* The type byte of a value: what follows it. */
static __always_inline long l7_redis_type(struct l7_walk *w, int b)
{
	struct l7_dir *d = w->d;
	d->num = 0;
	d->neg = 0;
	switch (b) {
	case '*':
	case '~':
	case '>':
		d->kind = RK_ARRAY;
		d->state = RS_NUM;
		return 0;
	case '%':
		d->kind = RK_MAP;
		d->state = RS_NUM;
		return 0;
	case '$':
	case '!':
	case '=':
		d->kind = RK_BULK;
		d->state = RS_NUM;
		return 0;
	case '+':
	case '-':
	case ':':
	case '_':
	case '#':
	case ',':
	case '(':
		if (!w->req) {
			d->state = RS_LINE;
			return 0;
		}
	}
	return l7_resync(w);
}

/* The end of a length or count: open the container, or start the string. */
static __always_inline long l7_redis_length(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__s64 n = d->neg ? -1 : d->num;
	if (d->kind == RK_BULK) {
		if (n < 0) { /* null */
			d->first = 0;
			l7_redis_done(d);
		} else if (d->first) {
			d->first = 0;
			l7_name_reset(d);
			d->num = n;
			d->state = RS_NAME;
			if (n == 0) {
				d->skip = 2;
				d->state = RS_DATA;
			}
		} else {
			d->skip = n + 2;
			d->state = RS_DATA;
		}
		return 0;
	}
	if (d->kind == RK_MAP)
		n *= 2;
	if (n <= 0) {
		d->first = 0;
		l7_redis_done(d);
		return 0;
	}
	if (d->depth >= L7_DEPTH)
		return l7_resync(w);
	d->left[d->depth & (L7_DEPTH - 1)] = n;
	d->depth++;
	d->state = RS_ELEM;
	return 0;
}

static long l7_redis_step(__u32 i, struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	int b = 0;
	int r = l7_next(w, &b);
	if (r == L7_SKIPPED) {
		if (d->skip == 0 && d->state == RS_DATA)
			l7_redis_done(d);
		return 0;
	}
	if (r == L7_END)
		return 1;
	if (r == L7_FAULT)
		return l7_resync(w);
	switch (d->state) {
	case RS_MSG:
		if (w->req) {
			if (b != '*')
				return l7_resync(w);
			l7_push(w->c, w->conn, 0, 0);
			d->first = 1;
		} else {
			l7_pop(w->c, w->conn, b == '-' || b == '!' ? L7_ERROR : L7_OK);
		}
		return l7_redis_type(w, b);
	case RS_ELEM:
		return l7_redis_type(w, b);
	case RS_NUM:
		if (b == '-' && d->num == 0 && !d->neg) {
			d->neg = 1;
		} else if (b >= '0' && b <= '9' && d->num < 100000000000LL) {
			d->num = d->num * 10 + (b - '0');
		} else if (b == '\r') {
			d->state = RS_LF;
		} else {
			return l7_resync(w);
		}
		return 0;
	case RS_LF:
		if (b != '\n')
			return l7_resync(w);
		return l7_redis_length(w);
	case RS_NAME:
		l7_name_add(d, b, true);
		if (--d->num <= 0) {
			l7_set_method(w->conn, l7_name_id(L7_REDIS, d));
			d->skip = 2;
			d->state = RS_DATA;
		}
		return 0;
	case RS_LINE:
		if (b == '\r')
			d->state = RS_LINELF;
		return 0;
	case RS_LINELF:
		if (b != '\n')
			return l7_resync(w);
		l7_redis_done(d);
		return 0;
	}
	return l7_resync(w);
}

/* The detector's test: a RESP array of bulk strings, a command: "*<n>\r\n$", or "*<n>\r\n"
 * alone (a client that writes a command line by line; the stream parser goes on in the next
 * call). Redis is detected from a request: a reply's first byte could be many things. */
static __always_inline int l7_redis_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	*request = true;
	if (l7_at(c, 0) != '*' || l7_at(c, 1) < '1' || l7_at(c, 1) > '9')
		return L7_NO;
	__u32 off = 1;
	if (l7_number(c, &off) <= 0 || !l7_crlf(c, off))
		return L7_NO;
	int next = l7_at(c, off + 2);
	return next == '$' || (next < 0 && off + 2 == c->ret) ? L7_YES : L7_NO;
}

static __always_inline int l7_redis(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_redis_step, &w, 0);
	if (c->pos < c->ret && w.d->skip == 0)
		l7_resync(&w); /* more messages than steps */
	return 0;
}

#endif /* __KPOD_L7_REDIS_H__ */
