/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * MongoDB wire protocol. Every message starts with a header of four int32 (little-endian):
 * messageLength, requestID, responseTo, opCode. A request is an OP_MSG (2013): flagBits,
 * then sections, kind 0 being the command document, whose first element's name is the
 * command ("find", "insert", "hello", ...); or a legacy OP_QUERY (2004, drivers' first
 * "isMaster"/"hello" of a connection): flags, a collection name, two int32, the command
 * document. A reply (OP_MSG, or OP_REPLY to an OP_QUERY) answers the request whose requestID
 * is its responseTo; its status is its document's top-level "ok" (a double, int32, int64 or
 * boolean: 0 is error, else ok), found by walking the top-level elements and jumping over
 * their values by their sizes. Messages are parsed by their length: a message split across
 * calls goes on in the next call, and documents are never read beyond what is needed.
 *
 * Not decoded: OP_COMPRESSED messages (a request is counted as OTHER, its reply as ok);
 * requests with moreToCome (unacknowledged writes, w:0: no reply comes) are not counted;
 * legacy OP_INSERT/UPDATE/DELETE/KILL_CURSORS (no reply) neither; an OP_GET_MORE is OTHER.
 * A reply with moreToCome (exhaust cursors, streaming "hello" of server monitoring) is
 * counted and stands for a request of the same command answered by the next reply. Writes
 * that fail per document (writeErrors) with ok: 1 are ok.
 */
#ifndef __KPOD_L7_MONGO_H__
#define __KPOD_L7_MONGO_H__

#include "l7.h"

#define L7_MONGO_MAX (64 << 20) /* a message's length (the servers' limit is 48 MB) */

enum {
	MG_OP_REPLY = 1,
	MG_OP_UPDATE = 2001,
	MG_OP_INSERT = 2002,
	MG_OP_QUERY = 2004,
	MG_OP_GET_MORE = 2005,
	MG_OP_DELETE = 2006,
	MG_OP_KILL_CURSORS = 2007,
	MG_OP_COMPRESSED = 2012,
	MG_OP_MSG = 2013,
	MG_MORE_TO_COME = 2, /* flagBits: no reply follows this request / more replies follow */
};

/* The parse states (l7_dir.state), and what the other fields of l7_dir hold:
 *   num      the number being read (little-endian), neg its bytes so far
 *   left[0]  bytes of the message still to come; left[1] its requestID, left[2] responseTo
 *   depth    the header's field being read; the strings of a regex; the bytes of "ok"
 *   kind     the type of the element being read (replies)
 *   first    the reply has moreToCome
 *   w, nlen  the element's name */
enum {
	MG_HDR,   /* the header's four int32 */
	MG_FLAGS, /* OP_MSG flagBits */
	MG_KIND,  /* OP_MSG a section's kind */
	MG_SEQ,   /* OP_MSG a kind 1 section's size */
	MG_QNAME, /* OP_QUERY the collection's name */
	MG_DOC,   /* the document's size */
	MG_TYPE,  /* an element's type (0: the end of the document) */
	MG_NAME,  /* its name */
	MG_VLEN,  /* its value's size */
	MG_CSTR,  /* a regex's strings */
	MG_OK,    /* the value of "ok" */
};

enum {
	BS_DOUBLE = 0x01, BS_STRING = 0x02, BS_DOC = 0x03, BS_ARRAY = 0x04, BS_BINARY = 0x05,
	BS_UNDEF = 0x06, BS_OID = 0x07, BS_BOOL = 0x08, BS_DATE = 0x09, BS_NULL = 0x0a,
	BS_REGEX = 0x0b, BS_DBPTR = 0x0c, BS_CODE = 0x0d, BS_SYMBOL = 0x0e, BS_CODEWS = 0x0f,
	BS_INT32 = 0x10, BS_TS = 0x11, BS_INT64 = 0x12, BS_DEC128 = 0x13, BS_MAXKEY = 0x7f,
	BS_MINKEY = 0xff,
};

/* Takes byte b into a little-endian number of n bytes; true when it is complete. */
static __always_inline bool l7_mongo_num(struct l7_dir *d, int b, int n)
{
	if (d->neg == 0)
		d->num = 0;
	d->num |= (__s64)(b & 0xff) << (8 * (d->neg & 7));
	if (++d->neg < n)
		return false;
	d->neg = 0;
	return true;
}

/* Passes over n bytes of the message; false if the message is shorter. */
static __always_inline bool l7_mongo_skip(struct l7_dir *d, __u64 n)
{
	if (n > d->left[0])
		return false;
	d->skip = n;
	d->left[0] -= n;
	return true;
}

/* Passes over the rest of the message; the next one starts after it. */
static __always_inline long l7_mongo_end(struct l7_dir *d)
{
	d->skip = d->left[0];
	d->left[0] = 0;
	d->state = MG_HDR;
	d->depth = 0;
	return 0;
}

/* Counts the reply (timed at its first byte) as the answer to its request; a reply with
 * moreToCome then stands for a request of the same command, answered by the next reply. */
static __always_inline long l7_mongo_answer(struct l7_walk *w, __u16 status)
{
	struct l7_ctx *c = w->c;
	struct l7_conn *conn = w->conn;
	struct l7_dir *d = w->d;
	__u32 to = d->left[2];
	__u16 method = 0;
	__u32 n = l7_n(conn);
	for (int k = 0; k < L7_PENDING; k++) {
		if (k >= n)
			break;
		struct l7_pending *p = l7_nth(conn, k);
		if (p->ts && p->id == to) { /* ts 0: answered already (l7_pop_id) */
			method = p->method;
			break;
		}
	}
	__u64 now = c->ts;
	c->ts = d->ts;
	l7_pop_id(c, conn, to, status);
	c->ts = now;
	if (d->first)
		l7_push(c, conn, method, d->left[1]);
	return l7_mongo_end(d);
}

/* The header is read: what follows depends on the opCode. */
static __always_inline long l7_mongo_header(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u32 op = d->num;
	d->first = 0;
	if (w->req) {
		switch (op) {
		case MG_OP_MSG:
			d->state = MG_FLAGS;
			return 0;
		case MG_OP_QUERY:
			l7_push(w->c, w->conn, 0, d->left[1]);
			if (!l7_mongo_skip(d, 4)) /* flags */
				return l7_resync(w);
			d->state = MG_QNAME;
			return 0;
		case MG_OP_COMPRESSED:
		case MG_OP_GET_MORE:
			l7_push(w->c, w->conn, 0, d->left[1]);
			return l7_mongo_end(d);
		case MG_OP_UPDATE:
		case MG_OP_INSERT:
		case MG_OP_DELETE:
		case MG_OP_KILL_CURSORS:
			return l7_mongo_end(d);
		}
		return l7_resync(w);
	}
	switch (op) {
	case MG_OP_MSG:
		d->state = MG_FLAGS;
		return 0;
	case MG_OP_REPLY: /* responseFlags, cursorID, startingFrom, numberReturned */
		if (d->left[0] <= 20)
			return l7_mongo_answer(w, L7_OK);
		l7_mongo_skip(d, 20);
		d->state = MG_DOC;
		return 0;
	case MG_OP_COMPRESSED:
		return l7_mongo_answer(w, L7_OK);
	}
	return l7_resync(w);
}

/* An element's name is read (replies): reads "ok", or passes over the value. */
static __always_inline long l7_mongo_value(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__u8 t = d->kind;
	if (d->nlen == 2 && d->w[0] == ('o' | ('k' << 8)) && d->w[1] == 0) {
		int n = t == BS_DOUBLE || t == BS_INT64 ? 8 : t == BS_INT32 ? 4 : t == BS_BOOL ? 1 : 0;
		if (n) {
			d->depth = n;
			d->state = MG_OK;
			return 0;
		}
	}
	__u32 n = 0;
	switch (t) {
	case BS_DOUBLE:
	case BS_DATE:
	case BS_TS:
	case BS_INT64:
		n = 8;
		break;
	case BS_OID:
		n = 12;
		break;
	case BS_BOOL:
		n = 1;
		break;
	case BS_INT32:
		n = 4;
		break;
	case BS_DEC128:
		n = 16;
		break;
	case BS_UNDEF:
	case BS_NULL:
	case BS_MAXKEY:
	case BS_MINKEY:
		break;
	case BS_REGEX:
		d->depth = 2;
		d->state = MG_CSTR;
		return 0;
	case BS_STRING:
	case BS_DOC:
	case BS_ARRAY:
	case BS_BINARY:
	case BS_DBPTR:
	case BS_CODE:
	case BS_SYMBOL:
	case BS_CODEWS:
		d->state = MG_VLEN;
		return 0;
	default:
		return l7_resync(w);
	}
	if (n && !l7_mongo_skip(d, n))
		return l7_resync(w);
	d->state = MG_TYPE;
	return 0;
}

/* A value's size is read: passes over the value. */
static __always_inline long l7_mongo_vlen(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__s32 l = d->num;
	__s64 n;
	switch (d->kind) {
	case BS_DOC:
	case BS_ARRAY:
	case BS_CODEWS: /* the size counts itself */
		n = (__s64)l - 4;
		break;
	case BS_BINARY: /* a subtype byte, then the data */
		n = (__s64)l + 1;
		break;
	case BS_DBPTR: /* a string, then an ObjectId */
		n = (__s64)l + 12;
		break;
	default: /* a string: its bytes and a NUL */
		n = l;
	}
	if (l < 0 || n < 0 || !l7_mongo_skip(d, n))
		return l7_resync(w);
	d->state = MG_TYPE;
	return 0;
}

static long l7_mongo_step(__u32 i, struct l7_walk *w)
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
	if (d->state != MG_HDR || d->depth > 0) {
		if (d->left[0] == 0)
			return l7_resync(w); /* the message ended before its fields */
		d->left[0]--;
	}
	switch (d->state) {
	case MG_HDR:
		if (d->depth == 0 && d->neg == 0)
			d->ts = w->c->ts;
		if (!l7_mongo_num(d, b, 4))
			return 0;
		switch (d->depth) {
		case 0:
			if (d->num < 16 || d->num > L7_MONGO_MAX)
				return l7_resync(w);
			d->left[0] = d->num - 4;
			break;
		case 1:
			d->left[1] = d->num;
			break;
		case 2:
			d->left[2] = d->num;
			break;
		default:
			d->depth = 0;
			return l7_mongo_header(w);
		}
		d->depth++;
		return 0;
	case MG_FLAGS:
		if (!l7_mongo_num(d, b, 4))
			return 0;
		if (d->num & 0xfffc) /* required bits that do not exist */
			return l7_resync(w);
		if (!w->req) {
			d->first = (d->num & MG_MORE_TO_COME) != 0;
		} else if (d->num & MG_MORE_TO_COME) {
			return l7_mongo_end(d); /* no reply will come: not counted */
		} else {
			l7_push(w->c, w->conn, 0, d->left[1]);
		}
		d->state = MG_KIND;
		return 0;
	case MG_KIND:
		if (b == 0)
			d->state = MG_DOC;
		else if (b == 1)
			d->state = MG_SEQ;
		else if (w->req)
			return l7_mongo_end(d);
		else
			return l7_mongo_answer(w, L7_OK);
		return 0;
	case MG_SEQ:
		if (!l7_mongo_num(d, b, 4))
			return 0;
		if (d->num < 4 || !l7_mongo_skip(d, d->num - 4))
			return l7_resync(w);
		d->state = MG_KIND;
		return 0;
	case MG_QNAME:
		if (b == 0) {
			if (!l7_mongo_skip(d, 8)) /* numberToSkip, numberToReturn */
				return l7_resync(w);
			d->state = MG_DOC;
		}
		return 0;
	case MG_DOC:
		if (!l7_mongo_num(d, b, 4))
			return 0;
		if (d->num < 5 || d->num > d->left[0] + 4)
			return l7_resync(w);
		d->state = MG_TYPE;
		return 0;
	case MG_TYPE:
		if (b == 0) /* an empty command; a reply without "ok" */
			return w->req ? l7_mongo_end(d) : l7_mongo_answer(w, L7_OK);
		d->kind = b;
		l7_name_reset(d);
		d->state = MG_NAME;
		return 0;
	case MG_NAME:
		if (b) {
			l7_name_add(d, b, false);
			return 0;
		}
		if (w->req) {
			l7_set_method(w->conn, l7_name_id(L7_MONGODB, d));
			return l7_mongo_end(d);
		}
		return l7_mongo_value(w);
	case MG_VLEN:
		if (!l7_mongo_num(d, b, 4))
			return 0;
		return l7_mongo_vlen(w);
	case MG_CSTR:
		if (b == 0 && --d->depth == 0)
			d->state = MG_TYPE;
		return 0;
	case MG_OK:
		if (!l7_mongo_num(d, b, d->depth))
			return 0;
		/* a double's sign does not make it non-zero */
		return l7_mongo_answer(w, (d->kind == BS_DOUBLE ? d->num << 1 : d->num) ? L7_OK : L7_ERROR);
	}
	return l7_resync(w);
}

/* A little-endian int32 at i in the window; -1 if it is not all there. */
static __always_inline __s64 l7_mongo_le32(struct l7_ctx *c, __u32 i)
{
	__s64 v = 0;
	for (int k = 3; k >= 0; k--) {
		int b = l7_at(c, i + k);
		if (b < 0)
			return -1;
		v = (v << 8) | b;
	}
	return v;
}

/* The detector's test: a request's header (a plausible length, no responseTo, OP_MSG or
 * OP_QUERY) and, if they are in the call, plausible flags and a first section or name. */
static __always_inline int l7_mongo_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	*request = true;
	__s64 len = l7_mongo_le32(c, 0), to = l7_mongo_le32(c, 8), op = l7_mongo_le32(c, 12);
	if (len < 21 || len > L7_MONGO_MAX || to != 0 || l7_mongo_le32(c, 4) < 0)
		return L7_NO;
	if (op != MG_OP_MSG && op != MG_OP_QUERY)
		return L7_NO;
	__s64 flags = l7_mongo_le32(c, 16);
	int next = l7_at(c, 20);
	if (flags < 0 || next < 0) /* the header alone (a server that reads it first) */
		return L7_YES;
	if (op == MG_OP_MSG)
		return (flags & 0xfffc) == 0 && (next == 0 || next == 1) ? L7_YES : L7_NO;
	return (flags & ~0xfeLL) == 0 && next > 0x20 && next < 0x7f ? L7_YES : L7_NO;
}

static __always_inline int l7_mongo(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_walk w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_mongo_step, &w, 0);
	if (c->pos < c->ret && w.d->skip == 0)
		l7_resync(&w); /* more messages than steps */
	return 0;
}

#endif /* __KPOD_L7_MONGO_H__ */
