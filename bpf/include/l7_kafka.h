/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kafka. Every message is an int32 size (big-endian) and that many bytes. A request starts
 * with api_key, api_version (int16) and correlation_id (int32); its response with the same
 * correlation_id, then (flexible versions but ApiVersions) tagged fields, then the body.
 * Requests are paired with responses by correlation id; the method is the API key (+ 1, an
 * index into names.Methods[names.ProtoKafka]). Each message is parsed by its size, so
 * pipelined requests are all counted and the bodies (records, metadata) are jumped over.
 *
 * Status: error if the response carries a non-zero top-level error code where its layout puts
 * one at a fixed place (first, or after throttle_time_ms), per API and version as the table
 * l7_kafka_api.h (generated from franz-go's kmsg) says: ApiVersions, FindCoordinator v0-3,
 * JoinGroup, Heartbeat, SyncGroup, LeaveGroup, ListGroups, InitProducerId, Fetch v7+,
 * SaslHandshake, SaslAuthenticate, EndTxn, ... Errors of partitions, topics or groups inside
 * a body (Produce, Metadata, OffsetCommit, OffsetFetch, CreateTopics, ...) are not decoded:
 * those responses are ok.
 *
 * A Produce request with acks=0 has no response: it is read up to its acks field and not
 * counted. SASL tokens of SaslHandshake v0 (unframed) are not Kafka messages and resync.
 */
#ifndef __KPOD_L7_KAFKA_H__
#define __KPOD_L7_KAFKA_H__

#include "l7.h"
#include "l7_kafka_api.h"

#define L7_KAFKA_MAX (100 << 20) /* a message's size (Kafka's socket.request.max.bytes) */
#define L7_KAFKA_VERSIONS 64     /* API versions taken for real */

/* The parse states (l7_dir.state), and what the other fields of l7_dir hold:
 *   num      the number being read (big-endian), neg its bytes so far (varints: their count)
 *   left[0]  bytes of the message still to come
 *   left[1]  its correlation id; left[2] the request's API version (Produce)
 *   left[3]  tagged fields still to come; depth the state after them
 *   kind     where the response's error code is (0, 4) */
enum {
	KF_SIZE,   /* the message's size */
	KF_REQ,    /* request: api_key, api_version, correlation_id */
	KF_CLIENT, /* Produce: client_id's length (int16) */
	KF_TXN,    /* Produce v3-8: transactional_id's length (int16) */
	KF_CTXN,   /* Produce v9+: transactional_id's length + 1 (uvarint) */
	KF_ACKS,   /* Produce: acks (int16) */
	KF_CORR,   /* response: correlation_id */
	KF_TAGS,   /* tagged fields: their count (uvarint) */
	KF_TAG,    /* a tagged field's tag (uvarint) */
	KF_TAGLEN, /* its size (uvarint) */
	KF_BODY,   /* (after a response's tagged fields) the body */
	KF_ERR,    /* response: the error code (int16) */
	KF_KEPT = 0xa0, /* detector: a size alone was read (in num), the request follows */
};

/* Takes byte b into a number of n bytes; true when it is complete. */
static __always_inline bool l7_kafka_num(struct l7_dir *d, int b, int n)
{
	if (d->neg == 0)
		d->num = 0;
	d->num = (d->num << 8) | (b & 0xff);
	if (++d->neg < n)
		return false;
	d->neg = 0;
	return true;
}

/* Takes byte b into an unsigned varint; 1 when it is complete, -1 if it is too long. */
static __always_inline int l7_kafka_varint(struct l7_dir *d, int b)
{
	if (d->neg == 0)
		d->num = 0;
	d->num |= (__s64)(b & 0x7f) << (7 * d->neg);
	if (b & 0x80)
		return ++d->neg < 5 ? 0 : -1;
	d->neg = 0;
	return 1;
}

/* Passes over n bytes of the message; false if the message is shorter. */
static __always_inline bool l7_kafka_skip(struct l7_dir *d, __u64 n)
{
	if (n > d->left[0])
		return false;
	d->skip = n;
	d->left[0] -= n;
	return true;
}

/* Passes over the rest of the message; the next one starts after it. */
static __always_inline long l7_kafka_end(struct l7_dir *d)
{
	d->skip = d->left[0];
	d->left[0] = 0;
	d->state = KF_SIZE;
	return 0;
}

/* Counts the response with correlation id id, timed at its first byte. */
static __always_inline void l7_kafka_answer(struct l7_walk *w, __u32 id, __u16 status)
{
	struct l7_ctx *c = w->c;
	__u64 now = c->ts;
	c->ts = w->d->ts;
	l7_pop_id(c, w->conn, id, status);
	c->ts = now;
}

/* The end of a request's header: counts it unless it is a Produce, whose acks come later. */
static __always_inline long l7_kafka_request(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u64 h = d->num;
	__s16 key = h >> 48, ver = h >> 32;
	__u32 id = h;
	if (key < 0 || ver < 0 || ver >= L7_KAFKA_VERSIONS)
		return l7_resync(w);
	if (key == 0) {
		d->left[1] = id;
		d->left[2] = ver;
		d->state = KF_CLIENT;
		return 0;
	}
	l7_push_aux(w->c, w->conn, key < L7_KAFKA_KEYS ? key + 1 : 0, id, ver);
	return l7_kafka_end(d);
}

/* The start of a response's body: goes to its error code. */
static __always_inline long l7_kafka_body(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	if (d->kind && !l7_kafka_skip(d, d->kind))
		return l7_resync(w);
	d->state = KF_ERR;
	return 0;
}

/* A response's correlation id is read: finds its request, and where its error code is. */
static __always_inline long l7_kafka_response(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	struct l7_conn *conn = w->conn;
	__u32 id = d->num;
	__u16 method = 0, ver = 0;
	bool found = false;
	__u32 n = l7_n(conn);
	for (int k = 0; k < L7_PENDING; k++) {
		if (k >= n)
			break;
		struct l7_pending *p = l7_nth(conn, k);
		if (p->ts && p->id == id) { /* ts 0: answered already (l7_pop_id) */
			method = p->method;
			ver = p->aux;
			found = true;
			break;
		}
	}
	__u8 at = 0xff, flex = 0xff;
	if (found && method >= 1 && method <= L7_KAFKA_KEYS) {
		const __u8 *api = l7_kafka_api[(method - 1) & 127];
		if (ver >= api[0] && ver < api[2])
			at = ver < api[1] ? 0 : 4;
		flex = api[3];
	}
	if (at == 0xff) { /* nothing to read (or no request: counted as such) */
		l7_kafka_answer(w, id, L7_OK);
		return l7_kafka_end(d);
	}
	d->left[1] = id;
	d->kind = at;
	if (ver >= flex) {
		d->depth = KF_BODY;
		d->state = KF_TAGS;
		return 0;
	}
	return l7_kafka_body(w);
}

/* After tagged fields, or a string passed over: the state that follows. */
static __always_inline long l7_kafka_then(struct l7_walk *w, __u8 state)
{
	if (state == KF_BODY)
		return l7_kafka_body(w);
	w->d->state = state;
	return 0;
}

static long l7_kafka_step(__u32 i, struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	int b = 0;
	int r = l7_next(w, &b);
	if (r == L7_SKIPPED)
		return 0;
	if (r == L7_END)
		return 1;
	if (r == L7_FAULT)
		return l7_resync(w);
	if (d->state != KF_SIZE) {
		if (d->left[0] == 0)
			return l7_resync(w); /* the message ended before its fields */
		d->left[0]--;
	}
	switch (d->state) {
	case KF_SIZE:
		if (d->neg == 0)
			d->ts = w->c->ts;
		if (!l7_kafka_num(d, b, 4))
			return 0;
		if (d->num < (w->req ? 10 : 4) || d->num > L7_KAFKA_MAX)
			return l7_resync(w);
		d->left[0] = d->num;
		d->state = w->req ? KF_REQ : KF_CORR;
		return 0;
	case KF_REQ:
		if (!l7_kafka_num(d, b, 8))
			return 0;
		return l7_kafka_request(w);
	case KF_CLIENT:
	case KF_TXN: {
		if (!l7_kafka_num(d, b, 2))
			return 0;
		__s16 n = d->num;
		if (n > 0 && !l7_kafka_skip(d, n))
			return l7_resync(w);
		if (d->state == KF_TXN)
			d->state = KF_ACKS;
		else if (d->left[2] >= L7_KAFKA_PRODUCE_FLEX)
			d->depth = KF_CTXN, d->state = KF_TAGS;
		else
			d->state = d->left[2] >= 3 ? KF_TXN : KF_ACKS;
		return 0;
	}
	case KF_CTXN: {
		int v = l7_kafka_varint(d, b);
		if (v < 0)
			return l7_resync(w);
		if (v == 0)
			return 0;
		if (d->num > 1 && !l7_kafka_skip(d, d->num - 1))
			return l7_resync(w);
		d->state = KF_ACKS;
		return 0;
	}
	case KF_ACKS:
		if (!l7_kafka_num(d, b, 2))
			return 0;
		if (d->num != 0) { /* acks=0: no response will come */
			l7_push_aux(w->c, w->conn, 1, d->left[1], d->left[2]);
		}
		return l7_kafka_end(d);
	case KF_CORR:
		if (!l7_kafka_num(d, b, 4))
			return 0;
		return l7_kafka_response(w);
	case KF_TAGS: {
		int v = l7_kafka_varint(d, b);
		if (v < 0)
			return l7_resync(w);
		if (v == 0)
			return 0;
		if (d->num > 255)
			return l7_resync(w);
		d->left[3] = d->num;
		if (d->num == 0)
			return l7_kafka_then(w, d->depth);
		d->state = KF_TAG;
		return 0;
	}
	case KF_TAG: {
		int v = l7_kafka_varint(d, b);
		if (v < 0)
			return l7_resync(w);
		if (v > 0)
			d->state = KF_TAGLEN;
		return 0;
	}
	case KF_TAGLEN: {
		int v = l7_kafka_varint(d, b);
		if (v < 0)
			return l7_resync(w);
		if (v == 0)
			return 0;
		if (!l7_kafka_skip(d, d->num))
			return l7_resync(w);
		if (--d->left[3] > 0) {
			d->state = KF_TAG;
			return 0;
		}
		return l7_kafka_then(w, d->depth);
	}
	case KF_ERR:
		if (!l7_kafka_num(d, b, 2))
			return 0;
		l7_kafka_answer(w, d->left[1], d->num ? L7_ERROR : L7_OK);
		return l7_kafka_end(d);
	}
	return l7_resync(w);
}

/* Byte i of a size kept by the detector (n bytes of it) followed by the call's data. */
static __always_inline int l7_kafka_at(struct l7_ctx *c, __u32 kept, __u32 i)
{
	return i < kept ? 0 : l7_at(c, i - kept);
}

/* The detector's test: a request whose size, API key, version and client id agree. A call of
 * 4 bytes alone (Kafka's brokers and kfake read the size first) is kept in d and the request
 * looked for at the start of the next call in its direction. */
static __always_inline int l7_kafka_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	*request = true;
	__u32 size, o = 4;
	if (d->state == KF_KEPT) {
		size = d->num;
		o = 0;
		d->state = 0;
		d->num = 0;
	} else {
		int b0 = l7_at(c, 0), b1 = l7_at(c, 1), b2 = l7_at(c, 2), b3 = l7_at(c, 3);
		if (b0 != 0 || b1 < 0 || b2 < 0 || b3 < 0)
			return L7_NO;
		size = (b1 << 16) | (b2 << 8) | b3;
		if (c->ret == 4 && size >= 10 && size <= L7_KAFKA_MAX) {
			d->state = KF_KEPT;
			d->num = size;
			return L7_MORE;
		}
	}
	if (size < 10 || size > L7_KAFKA_MAX)
		return L7_NO;
	int k0 = l7_at(c, o), k1 = l7_at(c, o + 1), v0 = l7_at(c, o + 2), v1 = l7_at(c, o + 3);
	int i0 = l7_at(c, o + 4), c0 = l7_at(c, o + 8), c1 = l7_at(c, o + 9);
	if (k0 != 0 || k1 < 0 || k1 >= L7_KAFKA_KEYS || v0 != 0 || v1 < 0 || v1 >= L7_KAFKA_VERSIONS)
		return L7_NO;
	if (i0 < 0 || i0 >= 0x80 || c0 < 0 || c1 < 0) /* a correlation id >= 0, a client id */
		return L7_NO;
	int clen = (c0 << 8) | c1;
	if (clen != 0xffff) {
		if (clen + 10 > size)
			return L7_NO;
		for (int k = 0; k < L7_NAME; k++) {
			if (k >= clen)
				break;
			int b = l7_at(c, o + 10 + k);
			if (b < 0)
				break;
			if (b < 0x20 || b > 0x7e)
				return L7_NO;
		}
	}
	if (o == 0) { /* the parser goes on after the kept size */
		d->state = KF_REQ;
		d->left[0] = size;
		d->neg = 0;
		d->ts = c->ts;
	}
	return L7_YES;
}

static __always_inline int l7_kafka(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_kafka_step, &w, 0);
	if (c->pos < c->ret && w.d->skip == 0)
		l7_resync(&w); /* more messages than steps */
	return 0;
}

#endif /* __KPOD_L7_KAFKA_H__ */
