/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/1.x: a request starts with a method token and a space, a response with "HTTP/1.x "
 * and a three-digit status. One message per call is looked at, at the call's start (HTTP/1.x
 * clients do not pipeline in practice); a call that does not start a message (a body, the
 * rest of a large response) starts with neither and is passed over. A call too short to tell
 * (Go's server reads one byte of the next request while it answers the last) is kept in the
 * connection's l7_dir (w, nlen) and read again in front of the next call in its direction.
 * Interim responses (1xx but 101) do not answer the request. A 101 to an upgrade to h2c hands
 * the connection over to HTTP/2 (l7_http2.h); to anything else, the connection is ignored.
 */
#ifndef __KPOD_L7_HTTP_H__
#define __KPOD_L7_HTTP_H__

#include "l7.h"
#include "l7_http2.h"

/* Byte i of the kept bytes followed by the call's data; -1 past their end. */
static __always_inline int l7_http_at(struct l7_ctx *c, struct l7_dir *d, __u32 i)
{
	__u32 kept = d->nlen;
	if (i < kept)
		return (d->w[(i >> 3) & 1] >> ((i & 7) * 8)) & 0xff;
	return l7_at(c, i - kept);
}

/* Whether the data starts with a request line: a token of 3 to 7 upper-case letters, a space
 * and a target ("/...", "*" or an absolute URI); its method id goes into *method. */
static __always_inline int l7_http_request(struct l7_ctx *c, struct l7_dir *d, __u16 *method)
{
	struct l7_dir name = {};
	for (__u32 i = 0; i <= 8; i++) {
		int b = l7_http_at(c, d, i);
		if (b < 0)
			return L7_MORE;
		if (b == ' ' && i >= 3) {
			int t = l7_http_at(c, d, i + 1);
			if (t < 0)
				return L7_MORE;
			if (t != '/' && t != '*' && (t < 'a' || t > 'z'))
				return L7_NO;
			*method = l7_name_id(L7_HTTP, &name);
			return L7_YES;
		}
		if (b < 'A' || b > 'Z')
			return L7_NO;
		l7_name_add(&name, b, false);
	}
	return L7_NO;
}

/* Whether the data starts with a status line ("HTTP/1.x NNN"); the status goes into *status. */
static __always_inline int l7_http_response(struct l7_ctx *c, struct l7_dir *d, int *status)
{
	const char *pre = "HTTP/1.";
	int s = 0;
	for (__u32 i = 0; i < 12; i++) {
		int b = l7_http_at(c, d, i);
		if (b < 0)
			return L7_MORE;
		if (i < 7 ? b != pre[i] : i == 7 ? (b != '0' && b != '1') : i == 8 ? b != ' ' : (b < '0' || b > '9'))
			return L7_NO;
		if (i >= 9)
			s = s * 10 + (b - '0');
	}
	if (s < 100 || s > 599)
		return L7_NO;
	*status = s;
	return L7_YES;
}

/* After a look at the start of a call: keeps a start too short to tell for the next call
 * (if it fits in L7_NAME bytes), else forgets what was kept. */
static __always_inline void l7_http_keep(struct l7_ctx *c, struct l7_dir *d, int r)
{
	if (r != L7_MORE || d->nlen + c->ret > L7_NAME) {
		l7_name_reset(d);
		return;
	}
	for (__u32 i = 0; i < L7_NAME; i++) {
		int b = l7_at(c, i);
		if (b < 0)
			break;
		l7_name_add(d, b, false);
	}
}

/* The detector's test: a request or a status line at the start of the data. */
static __always_inline int l7_http_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	__u16 m;
	int s;
	int r = l7_http_request(c, d, &m);
	*request = r == L7_YES;
	if (r == L7_YES)
		return L7_YES;
	int q = l7_http_response(c, d, &s);
	if (q == L7_YES)
		return L7_YES;
	r = r == L7_MORE || q == L7_MORE ? L7_MORE : L7_NO;
	l7_http_keep(c, d, r);
	return r;
}

/* A client that writes a request on one thread and reads the response on another (Go's
 * net/http) can have the response's read end, and be seen, before the write of its request
 * ends. Such a response is kept in conn->early instead of being counted as unanswered; the
 * request written next pairs with it if its write began before the response was read, and the
 * kept response was unanswered otherwise.
 *
 * The two exits run at the same time on two CPUs, and each side publishes before it looks at
 * the other's: the request is pushed and then takes the kept response (exchange), the response
 * is kept (exchange) and then looks for a request pushed meanwhile, which it answers if it can
 * take itself back. The exchanges are fully ordered, so at least one side sees the other and
 * exactly one takes the response: a request and its response are never both left waiting for
 * each other (a look and then a store on each side did that: one request of 30 in
 * TestRealTopologyServiceBackends on 6.1, an unanswered response and a request left in flight). */
static __always_inline void l7_http_request_done(struct l7_ctx *c, struct l7_conn *conn, __u16 method)
{
	bool alone = l7_n(conn) == 0;
	l7_push(c, conn, method, 0);
	if (conn->role != L7_CLIENT) /* a server reads its requests: nothing is ever held */
		return;
	__u64 e = __sync_lock_test_and_set(&conn->early, 0);
	if (!e)
		return;
	__u64 at = e >> 3;
	if (alone && at >= c->start) {
		l7_drop(conn); /* the request just pushed: its response is the kept one */
		l7_done(c, conn, method, e & 7, at - c->start);
		return;
	}
	l7_lost(c, conn, L7_LOST_NOREQ);
}

/* A client's response with no request in flight: kept for a request whose write has not ended
 * yet (above); returns true if it was kept, false if a request came meanwhile and it is to be
 * counted as its answer. */
static __always_inline bool l7_http_keep_early(struct l7_ctx *c, struct l7_conn *conn, __u16 class)
{
	if (__sync_lock_test_and_set(&conn->early, c->ts << 3 | class))
		l7_lost(c, conn, L7_LOST_NOREQ); /* an earlier kept response that no request took */
	if (l7_n(conn) == 0)
		return true;
	return __sync_lock_test_and_set(&conn->early, 0) == 0; /* 0: the request took it */
}

static __always_inline int l7_http(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_dir *d = &conn->dir[c->out & 1];
	if (l7_requests(c, conn)) {
		__u16 m = 0;
		int r = l7_http_request(c, d, &m);
		l7_http_keep(c, d, r);
		if (r == L7_YES)
			l7_http_request_done(c, conn, m);
		return 0;
	}
	int s = 0;
	int r = l7_http_response(c, d, &s);
	l7_http_keep(c, d, r);
	if (r != L7_YES || (s < 200 && s != 101))
		return 0;
	if (s == 101) /* switched to another protocol: HTTP/2 (h2c) is followed, others not */
		return l7_h2_upgrade(c, conn);
	if (l7_n(conn) == 0 && conn->role == L7_CLIENT && l7_http_keep_early(c, conn, s / 100))
		return 0; /* maybe its request's call has not ended yet */
	l7_pop(c, conn, s / 100);
	return 0;
}

#endif /* __KPOD_L7_HTTP_H__ */
