/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/2 in clear text (h2c, RFC 9113) and gRPC over it.
 *
 * Detection: the client's connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (prior
 * knowledge), or an HTTP/1.1 "101 Switching Protocols" whose headers say "h2c" (l7_http.h
 * hands the connection over: the upgrading request goes on as stream 1). A server that writes
 * its SETTINGS frame before it reads the preface (Go's, grpc-go's) leaves the connection
 * undetected until it reads the preface.
 *
 * Each direction is a sequence of frames (9-byte header: 24-bit length, type, flags, 31-bit
 * stream), walked with the stream walker: payloads are passed over, except the header blocks
 * (HEADERS, CONTINUATION, PUSH_PROMISE), which are decoded as HPACK (RFC 7541) far enough to
 * keep count of the sender's dynamic table and to read the few fields of interest:
 *
 *   :method       request  the method (GET, POST, ... from the static table or a literal)
 *   :status       response the status class
 *   content-type  request  gRPC if it is application/grpc (or application/grpc+..., ;...)
 *   grpc-status   response gRPC's status: 0 ok, anything else error
 *
 * A field is an index into the static table, an index into the dynamic table (the entries
 * the sender inserted earlier on this connection: index 62 is the newest), or a literal whose
 * name is an index or a string and whose value is a string, plain or Huffman-coded
 * (l7_hpack.h). Every insertion is counted; the last H2_TRACK insertions of a field of
 * interest are remembered with their meaning (never their bytes), so that a later reference
 * to one of them is understood. A reference to an entry that is not remembered is noted as
 * unknown: if the field that was needed is then missing, the request is counted as a parse
 * error, reason "undecoded", rather than with a guessed status.
 *
 * Pairing: a request is a HEADERS frame of the client that opens a new stream (odd id above
 * the last one); its response, the first HEADERS frame of the server on that stream with a
 * :status other than 1xx (pairs by stream id, in any order: streams are concurrent). A gRPC
 * request is answered by the block that ends its stream (trailers, or a trailers-only
 * response) with grpc-status; a non-2xx :status, a stream that ends without trailers or a
 * RST_STREAM is an error. Any stream reset (RST_STREAM) before its answer is an error.
 */
#ifndef __KPOD_L7_HTTP2_H__
#define __KPOD_L7_HTTP2_H__

#include "l7.h"
#include "l7_hpack.h"

#define H2_TRACK 8     /* remembered dynamic table entries per direction (a power of 2) */
#define H2_CONNS 4096  /* HTTP/2 connections followed at once */

enum { H2F_DATA = 0, H2F_HEADERS = 1, H2F_PRIORITY = 2, H2F_RST = 3, H2F_SETTINGS = 4, H2F_PUSH = 5,
       H2F_PING = 6, H2F_GOAWAY = 7, H2F_WINDOW = 8, H2F_CONT = 9 };
enum { H2_END_STREAM = 0x1, H2_END_HEADERS = 0x4, H2_PADDED = 0x8, H2_PRIO = 0x20 };

/* Where a direction is: in a frame header, the preface, the rest of the HTTP/1.1 101 response
 * of an upgrade, the pad length of a header block frame, or its header block. */
enum { H2S_FH = 0, H2S_PREFACE, H2S_UPG, H2S_PADLEN, H2S_BLOCK };
/* Where the HPACK decoder is in the block: the first byte of a representation, the rest of
 * its integer, a string's length (first byte, rest), its bytes decoded, its bytes passed over. */
enum { HS_REP = 0, HS_INT, HS_SLEN, HS_SINT, HS_STR, HS_SKIP };
/* Representations: indexed, literal with incremental indexing, other literal, table size update. */
enum { R_IDX = 1, R_INC, R_LIT, R_SIZE };
/* What a field is (and what a remembered entry means): F_METHOD (value: method id), F_STATUS
 * (status class), F_CT (content-type gRPC), F_GS (grpc-status: L7_OK or L7_ERROR); F_NAME: a
 * name string that may be grpc-status. */
enum { F_NONE = 0, F_METHOD, F_STATUS, F_CT, F_GS, F_NAME };
/* Flags of a pending request (l7_pending.aux). */
enum { H2P_GRPC = 1, H2P_UPGRADE = 2, H2P_EARLY = 4 };
/* What the answer of an early stream (H2P_EARLY) said, kept in its l7_pending.method until
 * its request is seen: the :status class in bits 0-3, grpc-status + 1 in 4-7, and these. */
enum { H2E_ENDED = 1 << 8, H2E_UNK = 1 << 9, H2E_RESET = 1 << 10 };

/* One direction of an HTTP/2 connection. */
struct l7_h2dir {
	__u32 frem;  /* bytes of the current frame's payload not taken yet */
	__u32 sid;   /* the current frame's stream */
	__u32 bsid;  /* the stream of the header block being read */
	__u32 last;  /* the highest stream the client opened (request direction) */
	__u32 ival;  /* an HPACK integer being read */
	__u32 slen;  /* bytes of the HPACK string still to come */
	__u32 nins;  /* insertions into the sender's dynamic table (since the last resync) */
	__u32 hacc;  /* Huffman code bits read and not yet matched */
	__u32 ins[H2_TRACK]; /* the insertion numbers of the remembered entries */
	__u64 w[2];  /* the first 16 bytes of a decoded string */
	__u8 what[H2_TRACK]; /* their meaning (F_*) */
	__u8 val[H2_TRACK];  /* and value */
	__u8 state, hs, hb, ftype, flags, pad, ishift, hlen;
	__u8 huff, rep, part, field, nlen, c16, ni, inblk;
	/* the header block being read: its HEADERS' flags, a PUSH_PROMISE, and what it said */
	__u8 bflags, push, method, hasm, status, grpc, gs, unk;
	__u8 crlf, h2c, upg, pad2[5]; /* H2S_UPG: progress in "\r\n\r\n" and "h2c\r\n", h2c seen */
};

struct l7_h2 {
	struct l7_h2dir dir[2]; /* as l7_conn's: 0 data received, 1 data sent */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, H2_CONNS);
	__type(key, __u64);
	__type(value, struct l7_h2);
} kpod_l7_h2 SEC(".maps");

struct l7_h2walk {
	struct l7_walk w;
	struct l7_h2dir *h;
	struct l7_h2dir *o; /* the other direction */
	__u8 stop; /* the connection is no longer HTTP/2 */
};

#define H2_W8(a, b, c, d, e, f, g, h)                                                        \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 | \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

/* Byte k of the client's connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (24 bytes). */
static __always_inline int l7_h2_preface(__u32 k)
{
	__u64 w = k < 8 ? H2_W8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') :
		  k < 16 ? H2_W8('T', 'P', '/', '2', '.', '0', '\r', '\n') :
			   H2_W8('\r', '\n', 'S', 'M', '\r', '\n', '\r', '\n');
	return (w >> ((k & 7) * 8)) & 0xff;
}

/* The HTTP/2 state of connection ino, made afresh: the request direction starts with the
 * preface, the response direction with a frame (or, after an upgrade, the rest of the 101). */
static __always_inline struct l7_h2 *l7_h2_new(__u64 ino, struct l7_conn *conn, bool upgrade)
{
	static const struct l7_h2 zero;
	if (bpf_map_update_elem(&kpod_l7_h2, &ino, &zero, BPF_ANY))
		return 0;
	struct l7_h2 *s = bpf_map_lookup_elem(&kpod_l7_h2, &ino);
	if (!s)
		return 0;
	__u8 req = conn->role == L7_CLIENT ? 1 : 0;
	s->dir[req & 1].state = H2S_PREFACE;
	s->dir[(req ^ 1) & 1].state = upgrade ? H2S_UPG : H2S_FH;
	if (upgrade)
		s->dir[req & 1].last = 1;
	return s;
}

/* The pending request of stream sid, as an index into conn->p; -1 if there is none. */
static __always_inline int l7_h2_find(struct l7_conn *conn, __u32 sid)
{
	__u32 n = l7_n(conn);
	for (int k = 0; k < L7_PENDING; k++) {
		if (k >= n)
			break;
		__u32 i = l7_slot(conn, k);
		if (conn->p[i].id == sid)
			return i;
	}
	return -1;
}

/* Takes pending request i out of the queue (the oldest fills its place): streams are
 * answered in any order. */
static __always_inline struct l7_pending l7_h2_take(struct l7_conn *conn, int i)
{
	struct l7_pending *oldest = l7_nth(conn, 0);
	struct l7_pending p = conn->p[i & (L7_PENDING - 1)];
	conn->p[i & (L7_PENDING - 1)] = *oldest;
	l7_drop(conn);
	return p;
}

/* The protocol a pending request is counted under. */
static __always_inline __u8 l7_h2_proto(struct l7_pending *p)
{
	return p->aux & H2P_GRPC ? L7_GRPC : L7_HTTP2;
}

/* Counts pending request i as answered with status. */
static __always_inline void l7_h2_answer(struct l7_ctx *c, struct l7_conn *conn, int i, __u16 status)
{
	struct l7_pending p = l7_h2_take(conn, i);
	conn->proto = l7_h2_proto(&p);
	l7_answer(c, conn, &p, status);
}

/* Counts pending request i as a parse error: its answer could not be decoded. */
static __always_inline void l7_h2_undecoded(struct l7_ctx *c, struct l7_conn *conn, int i)
{
	struct l7_pending p = l7_h2_take(conn, i);
	conn->proto = l7_h2_proto(&p);
	l7_lost(c, conn, L7_LOST_UNDECODED);
}

/* Notes what an answer to an early stream said (H2E_*, status, grpc-status); it took until
 * now (the answer of a gRPC stream is its last block). */
static __always_inline void l7_h2_early(struct l7_ctx *c, struct l7_pending *q, __u16 facts)
{
	q->method |= facts;
	q->ts = c->ts;
}

/* The request of early stream e is seen (its write has ended): the stream becomes an
 * ordinary pending request, answered now if what its answer said is enough. */
static __always_inline int l7_h2_late(struct l7_ctx *c, struct l7_conn *conn, struct l7_h2dir *h, int e)
{
	struct l7_pending *q = &conn->p[e & (L7_PENDING - 1)];
	__u16 f = q->method;
	__u64 at = q->ts;
	q->method = h->hasm ? h->method : 0;
	q->aux = h->grpc ? H2P_GRPC : 0;
	/* the request began when its write did: l7_answer's c->ts - ts is then at - c->start */
	q->ts = at >= c->start ? c->ts - (at - c->start) : c->ts;
	__u16 status = f & 15, gs = f >> 4 & 15;
	if (f & H2E_RESET)
		l7_h2_answer(c, conn, e, L7_ERROR);
	else if (!h->grpc && status > 1)
		l7_h2_answer(c, conn, e, status);
	else if (h->grpc && gs)
		l7_h2_answer(c, conn, e, gs - 1);
	else if (h->grpc && (status > 2 || (f & (H2E_ENDED | H2E_UNK)) == H2E_ENDED))
		l7_h2_answer(c, conn, e, L7_ERROR);
	else if (f & H2E_UNK && (!h->grpc || f & H2E_ENDED))
		l7_h2_undecoded(c, conn, e);
	else
		q->ts = c->start; /* still to be answered: from when its write began */
	return 0;
}

/* Gives up on the rest of the call. The dynamic table is counted afresh from the next call:
 * insertions in the bytes passed over are older than every insertion counted from then on,
 * so a reference to them is unknown, never taken for another entry. */
static __always_inline long l7_h2_resync(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	h->state = H2S_FH;
	h->hb = 0;
	h->frem = 0;
	h->pad = 0;
	h->inblk = 0;
	h->hs = HS_REP;
	h->nins = 0;
	for (int k = 0; k < H2_TRACK; k++)
		h->what[k] = F_NONE;
	return l7_resync(&hw->w);
}

/* The method id of a name of len bytes packed in w0, w1 (0: OTHER). */
static __always_inline __u8 l7_h2_method(__u64 w0, __u64 w1, __u8 len)
{
	if (len == 0 || len > L7_NAME)
		return 0;
	struct l7_name_key k = {.proto = L7_HTTP2, .len = len, .w = {w0, w1}};
	__u16 *id = bpf_map_lookup_elem(&kpod_l7_names, &k);
	return id ? *id : 0;
}

/* A field's meaning takes effect in the block being read. */
static __always_inline void l7_h2_apply(struct l7_h2dir *h, __u8 what, __u8 val)
{
	switch (what) {
	case F_METHOD:
		h->method = val;
		h->hasm = 1;
		break;
	case F_STATUS:
		h->status = val;
		break;
	case F_CT:
		h->grpc = 1;
		break;
	case F_GS:
		h->gs = val + 1;
		break;
	}
}

/* The remembered entry at dynamic index k (0: the newest entry); -1 if it is not one. */
static __always_inline int l7_h2_lookup(struct l7_h2dir *h, __u32 k)
{
	if (k >= h->nins)
		return -1;
	__u32 n = h->nins - 1 - k;
	for (int j = 0; j < H2_TRACK; j++)
		if (h->what[j] != F_NONE && h->ins[j] == n)
			return j;
	return -1;
}

/* An indexed field: a static entry of interest, or a remembered dynamic one. */
static __always_inline long l7_h2_indexed(struct l7_h2walk *hw, __u32 idx)
{
	struct l7_h2dir *h = hw->h;
	if (idx == 0)
		return l7_h2_resync(hw);
	if (idx < 62) {
		if (idx == 2) /* :method GET */
			l7_h2_apply(h, F_METHOD, l7_h2_method(H2_W8('G', 'E', 'T', 0, 0, 0, 0, 0), 0, 3));
		else if (idx == 3) /* :method POST */
			l7_h2_apply(h, F_METHOD, l7_h2_method(H2_W8('P', 'O', 'S', 'T', 0, 0, 0, 0), 0, 4));
		else if (idx >= 8 && idx <= 14) /* :status 200 204 206 304 400 404 500 */
			h->status = idx <= 10 ? 2 : idx == 11 ? 3 : idx <= 13 ? 4 : 5;
		return 0;
	}
	int j = l7_h2_lookup(h, idx - 62);
	if (j < 0)
		h->unk = 1;
	else
		l7_h2_apply(h, h->what[j & (H2_TRACK - 1)], h->val[j & (H2_TRACK - 1)]);
	return 0;
}

/* What the value of a literal whose name is index idx is. */
static __always_inline __u8 l7_h2_name(struct l7_h2walk *hw, __u32 idx)
{
	struct l7_h2dir *h = hw->h;
	if (idx < 62) {
		if (idx == 2 || idx == 3)
			return F_METHOD;
		if (idx >= 8 && idx <= 14)
			return F_STATUS;
		if (idx == 31 && hw->w.req)
			return F_CT;
		return F_NONE;
	}
	int j = l7_h2_lookup(h, idx - 62);
	if (j < 0) {
		h->unk = 1;
		return F_NONE;
	}
	__u8 what = h->what[j & (H2_TRACK - 1)];
	return what == F_CT && !hw->w.req ? F_NONE : what;
}

/* Passes over as much of the string as the frame holds (the rest is in a CONTINUATION). */
static __always_inline void l7_h2_skip_str(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	__u32 n = h->slen < h->frem ? h->slen : h->frem;
	hw->w.d->skip = n;
	h->slen -= n;
	h->frem -= n;
	h->hs = HS_SKIP;
}

/* The number a decoded string of 1 to 3 digits says; -1 if it is not one. */
static __always_inline int l7_h2_digits(struct l7_h2dir *h)
{
	if (h->nlen == 0 || h->nlen > 3)
		return -1;
	int n = 0;
	for (int k = 0; k < 3; k++) {
		if (k >= h->nlen)
			break;
		int d = (h->w[0] >> (k * 8)) & 0xff;
		if (d < '0' || d > '9')
			return -1;
		n = n * 10 + d - '0';
	}
	return n;
}

/* A string is complete: a name says what the value is; a value means what its field says,
 * and is remembered if it was inserted into the dynamic table. */
static __always_inline long l7_h2_str_done(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	__u8 field = h->field;
	if (h->part == 0) {
		h->part = 1;
		h->hs = HS_SLEN;
		h->field = field == F_NAME && h->nlen == 11 && h->w[0] == H2_W8('g', 'r', 'p', 'c', '-', 's', 't', 'a') &&
					   h->w[1] == H2_W8('t', 'u', 's', 0, 0, 0, 0, 0)
				   ? F_GS
				   : F_NONE;
		return 0;
	}
	h->hs = HS_REP;
	__u8 what = F_NONE, val = 0;
	int n;
	switch (field) {
	case F_METHOD:
		what = F_METHOD;
		val = l7_h2_method(h->w[0], h->w[1], h->nlen);
		break;
	case F_STATUS:
		n = l7_h2_digits(h);
		if (h->nlen == 3 && n >= 100 && n <= 599) {
			what = F_STATUS;
			val = n / 100;
		} else {
			h->unk = 1;
		}
		break;
	case F_CT:
		/* application/grpc, application/grpc+proto, application/grpc;...: not grpc-web */
		if (h->nlen >= 16 && h->w[0] == H2_W8('a', 'p', 'p', 'l', 'i', 'c', 'a', 't') &&
		    h->w[1] == H2_W8('i', 'o', 'n', '/', 'g', 'r', 'p', 'c') &&
		    (h->nlen == 16 || h->c16 == '+' || h->c16 == ';'))
			what = F_CT;
		break;
	case F_GS:
		n = l7_h2_digits(h);
		if (n < 0) {
			h->unk = 1;
		} else {
			what = F_GS;
			val = n == 0 ? L7_OK : L7_ERROR;
		}
		break;
	}
	if (what != F_NONE)
		l7_h2_apply(h, what, val);
	if (h->rep == R_INC) {
		__u32 ins = h->nins++;
		if (what != F_NONE) {
			__u8 j = h->ni++ & (H2_TRACK - 1);
			h->ins[j] = ins;
			h->what[j] = what;
			h->val[j] = val;
		}
	}
	return 0;
}

/* A string's length is known: decode it if its field is of interest (at most the first 17
 * bytes of the value are needed), else pass over it. */
static __always_inline long l7_h2_str_start(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	h->slen = h->ival;
	h->nlen = 0;
	h->c16 = 0;
	h->w[0] = 0;
	h->w[1] = 0;
	h->hacc = 0;
	h->hlen = 0;
	if (h->slen > 64)
		h->field = F_NONE;
	if (h->slen == 0)
		return l7_h2_str_done(hw);
	if (h->field == F_NONE)
		l7_h2_skip_str(hw);
	else
		h->hs = HS_STR;
	return 0;
}

static __always_inline void l7_h2_emit(struct l7_h2dir *h, __u8 ch)
{
	__u8 n = h->nlen;
	if (n < 16)
		h->w[(n >> 3) & 1] |= (__u64)ch << ((n & 7) * 8);
	else if (n == 16)
		h->c16 = ch;
	if (n < 255)
		h->nlen = n + 1;
}

/* One byte of a string of interest, plain or Huffman-coded (a canonical code: the code of a
 * symbol of length l is one of the l7_huff_count[l] numbers from l7_huff_first[l]). */
static __always_inline long l7_h2_str_byte(struct l7_h2walk *hw, int b)
{
	struct l7_h2dir *h = hw->h;
	h->slen--;
	if (!h->huff) {
		l7_h2_emit(h, b);
	} else {
		__u32 acc = h->hacc, len = h->hlen;
		for (int k = 7; k >= 0; k--) {
			acc = (acc << 1) | ((b >> k) & 1);
			len++;
			if (len < 5)
				continue;
			__u32 j = acc - l7_huff_first[len & 31];
			if (j < l7_huff_count[len & 31]) {
				l7_h2_emit(h, l7_huff_sym[(l7_huff_base[len & 31] + j) & 255]);
				acc = 0;
				len = 0;
			} else if (len >= 30) {
				return l7_h2_resync(hw);
			}
		}
		h->hacc = acc;
		h->hlen = len;
	}
	if (h->slen == 0)
		return l7_h2_str_done(hw);
	if (h->nlen > 17)
		l7_h2_skip_str(hw); /* the rest tells nothing more */
	return 0;
}

/* The integer of a representation is complete: an index, a name index or a table size. */
static __always_inline long l7_h2_rep(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	__u32 idx = h->ival;
	if (h->rep == R_IDX) {
		h->hs = HS_REP;
		return l7_h2_indexed(hw, idx);
	}
	if (h->rep == R_SIZE) {
		h->hs = HS_REP;
		return 0;
	}
	h->hs = HS_SLEN;
	if (idx == 0) { /* the name is a string: only grpc-status (in responses) is of interest */
		h->part = 0;
		h->field = hw->w.req ? F_NONE : F_NAME;
		return 0;
	}
	h->part = 1;
	h->field = l7_h2_name(hw, idx);
	return 0;
}

/* The first byte of an integer with an n-bit prefix (max = 2^n - 1). */
static __always_inline long l7_h2_int(struct l7_h2walk *hw, __u32 v, __u32 max, __u8 next)
{
	struct l7_h2dir *h = hw->h;
	h->ival = v;
	h->ishift = 0;
	if (v == max) {
		h->hs = next;
		return 0;
	}
	return next == HS_INT ? l7_h2_rep(hw) : l7_h2_str_start(hw);
}

/* One byte of a header block. */
static __always_inline long l7_h2_hpack(struct l7_h2walk *hw, int b)
{
	struct l7_h2dir *h = hw->h;
	switch (h->hs) {
	case HS_REP:
		if (b & 0x80) {
			h->rep = R_IDX;
			return l7_h2_int(hw, b & 0x7f, 0x7f, HS_INT);
		}
		if (b & 0x40) {
			h->rep = R_INC;
			return l7_h2_int(hw, b & 0x3f, 0x3f, HS_INT);
		}
		if (b & 0x20) {
			h->rep = R_SIZE;
			return l7_h2_int(hw, b & 0x1f, 0x1f, HS_INT);
		}
		h->rep = R_LIT;
		return l7_h2_int(hw, b & 0x0f, 0x0f, HS_INT);
	case HS_INT:
	case HS_SINT:
		if (h->ishift > 21) /* no index or length of 2^28 */
			return l7_h2_resync(hw);
		h->ival += (__u32)(b & 0x7f) << h->ishift;
		h->ishift += 7;
		if (b & 0x80)
			return 0;
		return h->hs == HS_INT ? l7_h2_rep(hw) : l7_h2_str_start(hw);
	case HS_SLEN:
		h->huff = b >> 7;
		return l7_h2_int(hw, b & 0x7f, 0x7f, HS_SINT);
	case HS_STR:
		return l7_h2_str_byte(hw, b);
	}
	return l7_h2_resync(hw);
}

/* A header block is complete: a request opens its stream; a response answers its stream.
 * h is this direction, o the other. */
static __always_inline int l7_h2_block_ring(struct l7_ctx *c, struct l7_conn *conn, struct l7_h2dir *h,
					    struct l7_h2dir *o, int req)
{
	__u32 sid = h->bsid;
	if (h->push)
		return 0;
	if (req) {
		if ((sid & 1) && sid > h->last) {
			h->last = sid;
			int e = l7_h2_find(conn, sid);
			if (e >= 0 && (conn->p[e & (L7_PENDING - 1)].aux & H2P_EARLY))
				return l7_h2_late(c, conn, h, e);
			if (l7_n(conn) >= L7_PENDING) {
				/* the oldest, whose answer was missed or will never come, makes room */
				struct l7_pending old = *l7_nth(conn, 0);
				l7_drop(conn);
				conn->proto = l7_h2_proto(&old);
				l7_lost(c, conn, L7_LOST_FULL);
			}
			l7_push_aux(c, conn, h->hasm ? h->method : 0, sid, h->grpc ? H2P_GRPC : 0);
		}
		return 0;
	}
	int i = l7_h2_find(conn, sid);
	if (i < 0) {
		if (!(sid & 1) || h->status <= 1)
			return 0; /* trailers or a 1xx: nothing to pair */
		/* A client that writes and reads on two threads (gRPC-Go, Go's net/http) can read
		 * an answer before the write of its request has ended: kept until it has. */
		if (conn->role != L7_CLIENT || sid <= o->last || l7_n(conn) >= L7_PENDING) {
			l7_lost(c, conn, L7_LOST_NOREQ); /* a response to no request */
			return 0;
		}
		i = l7_push_aux(c, conn, 0, sid, H2P_EARLY);
		if (i < 0)
			return 0;
	}
	if (conn->p[i & (L7_PENDING - 1)].aux & H2P_EARLY) {
		l7_h2_early(c, &conn->p[i & (L7_PENDING - 1)], h->status | h->gs << 4 |
			    (h->bflags & H2_END_STREAM ? H2E_ENDED : 0) | (h->unk ? H2E_UNK : 0));
		return 0;
	}
	if (conn->p[i & (L7_PENDING - 1)].aux & H2P_GRPC) {
		if (h->gs)
			l7_h2_answer(c, conn, i, h->gs - 1);
		else if (h->status > 2)
			l7_h2_answer(c, conn, i, L7_ERROR);
		else if (h->bflags & H2_END_STREAM) {
			if (h->unk)
				l7_h2_undecoded(c, conn, i);
			else
				l7_h2_answer(c, conn, i, L7_ERROR); /* no grpc-status */
		}
		return 0;
	}
	if (h->status > 1)
		l7_h2_answer(c, conn, i, h->status);
	else if (h->status == 0 && h->unk)
		l7_h2_undecoded(c, conn, i);
	return 0;
}

/* l7_h2_block_ring under the connection's lock (l7_lock). A global function, so the verifier
 * checks it once on its own instead of once per path of the frame walker that reaches it: with
 * it inline, the walker's peak verifier states went from 16.5k to 24k when the early answers
 * came, and the verifier's memory is charged to kpod's memory cgroup (the DaemonSet's 256 MiB
 * limit was hit while loading). */
__attribute__((noinline)) int l7_h2_block_end(struct l7_ctx *c, struct l7_conn *conn, struct l7_h2dir *h,
					     struct l7_h2dir *o, int req)
{
	if (!c || !conn || !h || !o)
		return 0;
	int held = l7_lock(conn);
	int r = l7_h2_block_ring(c, conn, h, o, req);
	l7_unlock(conn, held);
	return r;
}

/* A stream reset (rst), or a response's stream ended by DATA: a gRPC stream that ends without
 * trailers. Under the connection's lock, as l7_h2_block_end. */
__attribute__((noinline)) int l7_h2_stream_end(struct l7_ctx *c, struct l7_conn *conn, __u32 sid, int rst)
{
	if (!c || !conn)
		return 0;
	int held = l7_lock(conn);
	int i = l7_h2_find(conn, sid);
	if (i >= 0 && (conn->p[i & (L7_PENDING - 1)].aux & H2P_EARLY))
		l7_h2_early(c, &conn->p[i & (L7_PENDING - 1)], rst ? H2E_RESET : H2E_ENDED);
	else if (i >= 0 && (rst || (conn->p[i & (L7_PENDING - 1)].aux & H2P_GRPC)))
		l7_h2_answer(c, conn, i, L7_ERROR);
	l7_unlock(conn, held);
	return 0;
}

/* The end of a frame's payload (its padding still to pass over). */
static __always_inline long l7_h2_frame_end(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	hw->w.d->skip = h->pad;
	h->pad = 0;
	h->state = H2S_FH;
	if (!(h->flags & H2_END_HEADERS))
		return 0; /* the block goes on in a CONTINUATION frame */
	h->inblk = 0;
	if (h->hs != HS_REP)
		return l7_h2_resync(hw); /* a field cut by the end of the block */
	return l7_h2_block_end(hw->w.c, hw->w.conn, h, hw->o, hw->w.req);
}

/* After bytes of a header block frame: its end if they were the last. */
static __always_inline long l7_h2_more(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	if ((h->state == H2S_BLOCK || h->state == H2S_PADLEN) && h->frem == 0 && hw->w.d->skip == 0)
		return l7_h2_frame_end(hw);
	return 0;
}

/* The header block starts after the pad length: pass over the priority or promised stream. */
static __always_inline long l7_h2_block_start(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	__u32 n = h->push ? 4 : h->flags & H2_PRIO ? 5 : 0;
	if (n > h->frem)
		return l7_h2_resync(hw);
	h->frem -= n;
	hw->w.d->skip = n;
	h->state = H2S_BLOCK;
	return l7_h2_more(hw);
}

/* A frame header is complete. */
static __always_inline long l7_h2_frame(struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	struct l7_conn *conn = hw->w.conn;
	__u32 len = h->frem, sid = h->sid;
	__u8 t = h->ftype, f = h->flags;
	if (h->inblk && (t != H2F_CONT || sid != h->bsid))
		return l7_h2_resync(hw);
	/* what RFC 9113 section 6 requires of each frame: enough to tell frames from garbage */
	switch (t) {
	case H2F_DATA:
	case H2F_HEADERS:
	case H2F_PUSH:
	case H2F_CONT:
		if (sid == 0)
			return l7_h2_resync(hw);
		break;
	case H2F_PRIORITY:
		if (sid == 0 || len != 5)
			return l7_h2_resync(hw);
		break;
	case H2F_RST:
		if (sid == 0 || len != 4)
			return l7_h2_resync(hw);
		break;
	case H2F_SETTINGS:
		if (sid != 0 || len % 6)
			return l7_h2_resync(hw);
		break;
	case H2F_PING:
		if (sid != 0 || len != 8)
			return l7_h2_resync(hw);
		break;
	case H2F_GOAWAY:
		if (sid != 0 || len < 8)
			return l7_h2_resync(hw);
		break;
	case H2F_WINDOW:
		if (len != 4)
			return l7_h2_resync(hw);
		break;
	}
	if (t == H2F_HEADERS || t == H2F_PUSH) {
		h->inblk = 1;
		h->bsid = sid;
		h->bflags = f;
		h->push = t == H2F_PUSH;
		h->method = 0;
		h->hasm = 0;
		h->status = 0;
		h->grpc = 0;
		h->gs = 0;
		h->unk = 0;
		h->hs = HS_REP;
		h->pad = 0;
		if (f & H2_PADDED) {
			if (len == 0)
				return l7_h2_resync(hw);
			h->state = H2S_PADLEN;
			return 0;
		}
		return l7_h2_block_start(hw);
	}
	if (t == H2F_CONT) {
		if (!h->inblk)
			return l7_h2_resync(hw);
		h->pad = 0;
		h->state = H2S_BLOCK;
		if (h->hs == HS_SKIP)
			l7_h2_skip_str(hw);
		return l7_h2_more(hw);
	}
	/* a stream reset before its answer; a gRPC stream that ends without trailers */
	if (t == H2F_RST || (t == H2F_DATA && (f & H2_END_STREAM) && !hw->w.req))
		l7_h2_stream_end(hw->w.c, conn, sid, t == H2F_RST);
	hw->w.d->skip = len;
	h->frem = 0;
	return 0;
}

static long l7_h2_step(__u32 i, struct l7_h2walk *hw)
{
	struct l7_h2dir *h = hw->h;
	if (hw->stop)
		return 1;
	int b = 0;
	int r = l7_next(&hw->w, &b);
	if (r == L7_SKIPPED) {
		if (hw->w.d->skip)
			return 0;
		if (h->state == H2S_BLOCK && h->hs == HS_SKIP && h->slen == 0) {
			long e = l7_h2_str_done(hw);
			if (e)
				return e;
		}
		return l7_h2_more(hw);
	}
	if (r == L7_END)
		return 1;
	if (r == L7_FAULT)
		return l7_h2_resync(hw);
	switch (h->state) {
	case H2S_FH: {
		__u8 k = h->hb;
		if (k == 0)
			h->frem = b;
		else if (k < 3)
			h->frem = (h->frem << 8) | b;
		else if (k == 3)
			h->ftype = b;
		else if (k == 4)
			h->flags = b;
		else if (k == 5)
			h->sid = b & 0x7f;
		else
			h->sid = (h->sid << 8) | b;
		if (k < 8) {
			h->hb = k + 1;
			return 0;
		}
		h->hb = 0;
		return l7_h2_frame(hw);
	}
	case H2S_PREFACE: {
		__u8 k = h->hb;
		if (k >= 24 || b != l7_h2_preface(k))
			return l7_h2_resync(hw);
		h->hb = k + 1;
		if (k + 1 == 24) {
			h->hb = 0;
			h->state = H2S_FH;
		}
		return 0;
	}
	case H2S_UPG: {
		/* the rest of the 101 response: "h2c\r\n" in its headers (Upgrade: h2c), to its end */
		const __u64 h2c = H2_W8('h', '2', 'c', '\r', '\n', 0, 0, 0), crlf = H2_W8('\r', '\n', '\r', '\n', 0, 0, 0, 0);
		__u8 m = h->h2c;
		if (m < 5 && b == ((h2c >> ((m & 7) * 8)) & 0xff))
			h->h2c = m + 1;
		else if (m < 5)
			h->h2c = b == 'h';
		if (h->h2c == 5)
			h->upg = 1;
		m = h->crlf;
		if (b == ((crlf >> ((m & 7) * 8)) & 0xff))
			m++;
		else
			m = b == '\r';
		h->crlf = m;
		if (m < 4)
			return 0;
		if (h->upg) {
			h->state = H2S_FH;
			h->hb = 0;
			return 0;
		}
		/* another protocol (WebSocket, ...): the request is HTTP/1.x's, answered 1xx */
		struct l7_conn *conn = hw->w.conn;
		int i = l7_h2_find(conn, 1);
		if (i >= 0) {
			struct l7_pending p = l7_h2_take(conn, i);
			conn->proto = L7_HTTP;
			l7_answer(hw->w.c, conn, &p, 1);
		}
		conn->proto = L7_IGNORE;
		hw->stop = 1;
		return 1;
	}
	case H2S_PADLEN:
		h->frem--;
		h->pad = b;
		if (h->pad > h->frem)
			return l7_h2_resync(hw);
		h->frem -= h->pad;
		return l7_h2_block_start(hw);
	case H2S_BLOCK: {
		h->frem--;
		long e = l7_h2_hpack(hw, b);
		if (e)
			return e;
		return l7_h2_more(hw);
	}
	}
	return l7_h2_resync(hw);
}

/* The detector's test: the client's connection preface (a request: it comes from the
 * client). A SETTINGS frame first (a server's, sent before it reads the preface, and maybe
 * read by the client before it writes the preface) says nothing yet. */
static __always_inline int l7_h2_detect(struct l7_ctx *c, struct l7_dir *d, bool *request)
{
	*request = true;
	int k = 0;
	for (; k < 24; k++) {
		int b = l7_at(c, k);
		if (b < 0)
			break;
		if (b != l7_h2_preface(k))
			goto settings;
	}
	if (k < 6)
		return L7_MORE;
	/* "PRI * " on: the rest of the preface is checked by the parser */
	bpf_map_delete_elem(&kpod_l7_h2, &c->ino);
	return L7_YES;
settings:
	if (c->ret >= 9 && l7_at(c, 3) == H2F_SETTINGS && l7_at(c, 4) == 0 && l7_at(c, 0) == 0 &&
	    l7_at(c, 1) == 0 && l7_at(c, 2) % 6 == 0 && (l7_at(c, 5) | l7_at(c, 6) | l7_at(c, 7) | l7_at(c, 8)) == 0)
		return L7_MORE;
	return L7_NO;
}

/* An HTTP/1.1 request was answered "101 Switching Protocols" (l7_http.h): the connection goes
 * on as HTTP/2 if the response's headers say h2c, the request as its stream 1. Returns the
 * protocol whose parser takes the call over (0: none). */
static __always_inline int l7_h2_upgrade(struct l7_ctx *c, struct l7_conn *conn)
{
	if (l7_n(conn) == 0 || !l7_h2_new(c->ino, conn, true)) {
		l7_pop(c, conn, 1);
		conn->proto = L7_IGNORE;
		return 0;
	}
	struct l7_pending *p = l7_nth(conn, 0);
	p->id = 1;
	p->aux = H2P_UPGRADE;
	__builtin_memset(&conn->dir[0], 0, sizeof conn->dir[0]);
	__builtin_memset(&conn->dir[1], 0, sizeof conn->dir[1]);
	conn->proto = L7_HTTP2;
	return L7_HTTP2;
}

static __always_inline int l7_h2(struct l7_ctx *c, struct l7_conn *conn)
{
	struct l7_h2 *s = bpf_map_lookup_elem(&kpod_l7_h2, &c->ino);
	if (!s)
		s = l7_h2_new(c->ino, conn, false);
	if (!s)
		return 0;
	struct l7_h2walk hw = {
		.w = {.c = c, .conn = conn, .d = &conn->dir[c->out & 1], .req = l7_requests(c, conn)},
		.h = &s->dir[c->out & 1],
		.o = &s->dir[(c->out ^ 1) & 1],
	};
	c->pos = 0;
	bpf_loop(L7_STEPS, l7_h2_step, &hw, 0);
	if (!hw.stop && c->pos < c->ret && hw.w.d->skip == 0)
		l7_h2_resync(&hw); /* more than L7_STEPS steps */
	return 0;
}

#endif /* __KPOD_L7_HTTP2_H__ */
