/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * DNS over UDP: one message per datagram. The header (RFC 1035 4.1.1) has the id, QR
 * (response), the opcode and the rcode; the question is a name (labels) and a type. A query
 * waits for the response with its id; the rcode says ok (NOERROR) or error (NXDOMAIN, ...).
 */
#ifndef __KPOD_L7_DNS_H__
#define __KPOD_L7_DNS_H__

#include "l7.h"

/* Parses a standard query or response with one question; returns its query type (and the
 * id, QR bit and rcode), or -1 if the data is not one. A global function, verified once on
 * its own rather than on every path that reaches it: inline, its label walk took the DNS
 * parser to 25.8k peak verifier states, and the verifier's memory is charged to kpod's
 * memory cgroup. */
__attribute__((noinline)) int l7_dns_parse(struct l7_ctx *c, __u32 *id, int *qr, int *rcode)
{
	if (!c || !id || !qr || !rcode)
		return -1;
	if (c->len < 17)
		return -1;
	int f0 = l7_at(c, 2), f1 = l7_at(c, 3);
	if (f0 < 0 || f1 < 0)
		return -1;
	if (((f0 >> 3) & 0xf) != 0 || (f1 & 0x40)) /* opcode QUERY; Z zero */
		return -1;
	if (l7_at(c, 4) != 0 || l7_at(c, 5) != 1) /* one question */
		return -1;
	*qr = f0 >> 7;
	*rcode = f1 & 0xf;
	if (!*qr && (l7_at(c, 6) | l7_at(c, 7) | l7_at(c, 8) | l7_at(c, 9)) != 0) /* a query has no answers */
		return -1;
	*id = (l7_at(c, 0) << 8) | l7_at(c, 1);
	__u32 off = 12;
	for (int k = 0; k < 64; k++) { /* labels: at most 63 of them in 255 bytes */
		int l = l7_at(c, off);
		if (l < 0 || l > 63)
			return -1;
		off += 1 + l;
		if (l == 0)
			break;
		if (off > 12 + 255)
			return -1;
	}
	int t0 = l7_at(c, off), t1 = l7_at(c, off + 1);
	if (t0 < 0 || t1 < 0 || l7_at(c, off + 2) != 0 || l7_at(c, off + 3) < 0) /* type, class < 256 */
		return -1;
	return (t0 << 8) | t1;
}

/* The detector's test: a standard query or response. */
static __always_inline int l7_dns_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	__u32 id;
	int qr, rcode;
	if (l7_dns_parse(c, &id, &qr, &rcode) < 0)
		return L7_NO;
	*request = qr == 0;
	return L7_YES;
}

/* One datagram (k of a recvmmsg/sendmmsg: glibc's resolver sends A and AAAA in one). */
static long l7_dns_msg(__u32 k, struct l7_walk *w)
{
	struct l7_ctx *c = w->c;
	struct l7_conn *conn = w->conn;
	if (k > 0 && !l7_mmsg_load(c, k))
		return 1;
	__u32 id;
	int qr, rcode;
	int type = l7_dns_parse(c, &id, &qr, &rcode);
	if (type < 0)
		return 0;
	if (!qr) {
		if (l7_requests(c, conn))
			l7_push(c, conn, type, id);
	} else if (!l7_requests(c, conn)) {
		l7_pop_id(c, conn, id, rcode == 0 ? L7_OK : L7_ERROR);
	}
	return 0;
}

static __always_inline int l7_dns(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn};
	__u32 n = c->nmsg;
	if (n == 0)
		n = 1;
	if (n > L7_MMSG)
		n = L7_MMSG;
	bpf_loop(n, l7_dns_msg, &w, 0);
	return 0;
}

#endif /* __KPOD_L7_DNS_H__ */
