/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/1.x: a request starts with a method token and a space, a response with "HTTP/1.x "
 * and a three-digit status. One message per call is looked at, at the call's start (HTTP/1.x
 * clients do not pipeline in practice); a call that does not start a message (a body, the
 * rest of a large response) starts with neither and is passed over. Interim responses (1xx
 * but 101) do not answer the request.
 */
#ifndef __KPOD_L7_HTTP_H__
#define __KPOD_L7_HTTP_H__

#include "l7.h"

/* Whether the call starts with a request line: a token of 3 to 7 upper-case letters, a
 * space and a target ("/...", "*" or an absolute URI). Its method id goes into *method. */
static __always_inline bool l7_http_request(struct l7_ctx *c, __u16 *method)
{
	for (__u32 len = 0; len <= 7; len++) {
		int b = l7_at(c, len);
		if (b == ' ' && len >= 3) {
			int t = l7_at(c, len + 1);
			if (t != '/' && t != '*' && (t < 'a' || t > 'z'))
				return false;
			*method = l7_name_at(c, L7_HTTP, 0, len, false);
			return true;
		}
		if (b < 'A' || b > 'Z')
			return false;
	}
	return false;
}

/* The status of a response line at the start of the call (100..599); 0: not one. */
static __always_inline int l7_http_status(struct l7_ctx *c)
{
	/* "HTTP/1." */
	if (l7_at(c, 0) != 'H' || l7_at(c, 1) != 'T' || l7_at(c, 2) != 'T' || l7_at(c, 3) != 'P' ||
	    l7_at(c, 4) != '/' || l7_at(c, 5) != '1' || l7_at(c, 6) != '.' || l7_at(c, 8) != ' ')
		return 0;
	int s = 0;
	for (int k = 9; k < 12; k++) {
		int b = l7_at(c, k);
		if (b < '0' || b > '9')
			return 0;
		s = s * 10 + (b - '0');
	}
	return s >= 100 && s <= 599 ? s : 0;
}

static __always_inline int l7_http(struct l7_ctx *c, struct l7_conn *conn)
{
	__u16 m = 0;
	if (l7_requests(c, conn)) {
		if (l7_http_request(c, &m))
			l7_push(c, conn, m, 0);
		return 0;
	}
	int s = l7_http_status(c);
	if (!s || (s < 200 && s != 101))
		return 0;
	l7_pop(c, conn, s / 100);
	if (s == 101) /* switched to another protocol: no more HTTP/1.x on this connection */
		conn->proto = L7_IGNORE;
	return 0;
}

#endif /* __KPOD_L7_HTTP_H__ */
