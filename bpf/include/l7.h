/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the l7 family's programs share (bpf/l7.bpf.c and the protocol parsers in l7_*.h):
 * a window on one system call's data, the connection state, request/response pairing and
 * the metric. Only bounded values ever leave the kernel: protocol, role, method id, status,
 * latency. The copied bytes stay in a per-CPU scratch area.
 *
 * Parsers of byte streams (Redis, ...) walk the call's data with a cursor (l7_next) inside a
 * bpf_loop callback. Their state lives in map memory (the connection's l7_dir), never in
 * registers carried from one byte to the next: the verifier then checks one step once,
 * whatever the data, and a message split anywhere across calls continues where it stopped.
 */
#ifndef __KPOD_L7_H__
#define __KPOD_L7_H__

#include "kpod.h"
#include "l7_names.h"

#define L7_BUF 4096     /* bytes of a call's data in the window at once (a power of 2) */
#define L7_PENDING 32   /* requests in flight per connection (redis-benchmark -P 16 needs 16) */
#define L7_CONNS 8192
#define L7_STEPS 4096   /* steps of a stream parser per call */
#define L7_IOVS 8       /* iovecs of a readv/writev/sendmsg/recvmsg looked at */
#define L7_DEPTH 4      /* nesting of a stream parser's containers (Redis arrays) */
#define L7_NAME 16      /* bytes of a method name compared */
#define L7_EDGES 16384  /* (cgroup, peer, server port, protocol, role) entries of kpod_l7_edge */
#define L7_SVC_CONNS 8192 /* client connections to Services in kpod_l7_svcconn */

enum { L7_CLIENT = 1, L7_SERVER = 2 };

/* What a look at the start of some data tells: it is (not) the protocol's message, or it is
 * too short to tell. */
enum { L7_NO = 0, L7_YES = 1, L7_MORE = -1 };

/* Statuses other than HTTP's classes (1..5), and the reasons a message was not counted as
 * a request, recorded in the same map under method L7_LOST (internal/l7/names). */
enum {
	L7_OK = 0,
	L7_ERROR = 6,
	L7_LOST = 0xffff,
	L7_LOST_RESYNC = 1,   /* bytes that did not parse: the rest of the call was passed over */
	L7_LOST_NOREQ = 2,    /* a response with no request in flight */
	L7_LOST_FULL = 3,     /* a request found L7_PENDING requests in flight */
	L7_LOST_UNDECODED = 4, /* a response whose status could not be decoded (HTTP/2's HPACK) */
};

struct l7_pending {
	__u64 ts;
	__u32 id; /* correlation id where the protocol has one (DNS, Kafka, MongoDB) */
	__u16 method;
	__u16 aux; /* what a parser needs of the request to read its response (Kafka: the API version) */
};

/* A stream parser's state in one direction of a connection. */
struct l7_dir {
	__u64 skip;  /* bytes to pass over before the next one that is parsed */
	__s64 num;   /* a number being read */
	__u64 w[2];  /* the first L7_NAME bytes of a name, packed little-endian */
	__u32 left[L7_DEPTH]; /* elements still to come per open container */
	__u8 state;
	__u8 depth;
	__u8 kind;
	__u8 neg;
	__u8 nlen;
	__u8 first;  /* the next string is the request's method */
	__u8 pad[2];
	__u64 ts;    /* when the message being parsed started (a response counted after its first bytes) */
};

/* One connection (socket), keyed by its inode number (unique while the system runs, unlike
 * the socket's address). */
/* The requests in flight are a ring: p[head .. tail) (modulo L7_PENDING; head and tail count
 * up without wrapping at L7_PENDING). Requests and responses are often parsed at the same time
 * on two CPUs, by the threads that write and read the connection (gRPC-Go, Kafka and HTTP/2
 * clients and servers): a request only moves tail, a response only head, each with an atomic
 * add, so neither loses the other's update (one count of in-flight requests, incremented on one
 * CPU while decremented on the other, lost requests: CI, TestRealL7GRPC, 799 of 800). */
struct l7_conn {
	__u8 proto;
	__u8 role;
	__u16 pad;
	__u32 head; /* the oldest request in flight */
	__u32 tail; /* where the next one goes */
	__u32 lock; /* HTTP/2: the ring's updates (l7_lock) */
	/* HTTP/1.x client: a response read before the request that it answers was seen, as
	 * when << 3 | status class, one word exchanged atomically (l7_http.h); 0: none */
	__u64 early;
	struct l7_dir dir[2]; /* 0: data received, 1: data sent */
	struct l7_pending p[L7_PENDING];
};

/* One system call: where its data is, and a window of up to L7_BUF bytes of it. */
struct l7_ctx {
	__u64 ino;
	__u64 cgid;
	__u64 ts;    /* when the call ended */
	__u64 start; /* when it began */
	__u64 ptr;  /* the buffer, or the iovec array if niov */
	__u64 mmsg; /* recvmmsg/sendmmsg: the struct mmsghdr array, nmsg messages moved */
	__u32 nmsg;
	__u32 niov;
	__u32 ret;  /* bytes the call moved */
	__u32 pos;  /* a stream parser's cursor */
	__u32 base; /* offset of buf[0] in the call's data */
	__u32 len;  /* bytes in buf */
	__u8 out;   /* 1: sent by this task, 0: received */
	__u8 udp;
	__u16 lport; /* the socket's local port */
	__u8 raddr[16]; /* the peer's address (IPv4 as ::ffff:a.b.c.d; zero if unknown) */
	__u16 rport;    /* the peer's port */
	__u8 pad2[6];
	__u64 sk;       /* the call's socket (struct sock *) */
	__u8 buf[L7_BUF];
};

struct l7_key {
	__u64 cgid;
	__u8 proto;
	__u8 role;
	__u16 method;
	__u16 status;
	__u16 pad;
};

struct l7_val {
	__u64 count;
	struct kpod_hist lat;
};

/* A method name: protocol, length, the bytes (upper-cased where the protocol ignores case). */
struct l7_name_key {
	__u8 proto;
	__u8 len;
	__u8 pad[6];
	__u64 w[2];
};

/* One edge of the service topology as this cgroup sees it: requests to or from one peer
 * address, on the server's port (never the client's ephemeral one), per protocol and role.
 * Filled only when the loader sets l7_edges (the topology collector runs). */
struct l7_edge_key {
	__u64 cgid;
	__u8 addr[16]; /* the peer (IPv4 as ::ffff:a.b.c.d) */
	__u16 port;    /* the server's port: the peer's for a client, the local one for a server */
	__u8 proto;
	__u8 role;
	__u32 pad;
};

struct l7_edge_val {
	__u64 count;
	__u64 failed; /* status 4xx or 5xx (HTTP classes 4, 5), or L7_ERROR */
	struct kpod_hist lat;
};

/* A client connection to a Service address (kpod_l7_svc): its requests are counted per
 * connection (and generation, kpod_l7_gen), so that user space can name the backend the
 * node's NAT chose for it (conntrack) and fold the connection into the edge client ->
 * Service, backend. Filled only when the loader sets l7_backends. */
struct l7_svcconn_key {
	__u64 cgid;
	__u8 laddr[16];
	__u8 raddr[16]; /* the Service address */
	__u16 lport;
	__u16 rport;
	__u8 proto;
	__u8 udp;
	__u8 gen; /* kpod_l7_gen when the entry was written */
	__u8 pad;
};

struct l7_errs {
	__u64 kpod_l7;
	__u64 kpod_l7_conn;
	__u64 kpod_l7_args;
	__u64 kpod_l7_edge;
	__u64 kpod_l7_svcconn;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, L7_CONNS);
	__type(key, __u64);
	__type(value, struct l7_conn);
} kpod_l7_conn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_ctx);
} kpod_l7_ctx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KPOD_MAX_CGROUPS * 8);
	__type(key, struct l7_key);
	__type(value, struct l7_val);
} kpod_l7 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, L7_EDGES);
	__type(key, struct l7_edge_key);
	__type(value, struct l7_edge_val);
} kpod_l7_edge SEC(".maps");

/* Set by the loader (internal/l7) when the topology collector reads kpod_l7_edge. */
volatile const __u8 l7_edges;

KPOD_SVC_MAPS(l7);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, L7_SVC_CONNS);
	__type(key, struct l7_svcconn_key);
	__type(value, struct l7_edge_val);
} kpod_l7_svcconn SEC(".maps");

/* Set by the loader when the topology collector names the backends behind Services. */
volatile const __u8 l7_backends;

/* The method names, filled by the loader from internal/l7/names: name -> method id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct l7_name_key);
	__type(value, __u16);
} kpod_l7_names SEC(".maps");

KPOD_ERRORS(l7, struct l7_errs);

static __always_inline struct l7_ctx *l7_ctx(void)
{
	__u32 z = 0;
	return bpf_map_lookup_elem(&kpod_l7_ctx, &z);
}

/* The byte at offset i of the call's data if it is in the window, else -1. */
static __always_inline int l7_at(struct l7_ctx *c, __u32 i)
{
	__u32 j = i - c->base;
	if (i < c->base || j >= c->len)
		return -1;
	asm volatile("" : "+r"(j)); /* keeps the mask below, which the verifier needs */
	return c->buf[j & (L7_BUF - 1)];
}

/* Moves the window to start at offset pos of the call's data; false if it cannot be read. */
static __always_inline bool l7_fill(struct l7_ctx *c, __u32 pos)
{
	if (pos >= c->ret)
		return false;
	__u64 src = c->ptr + pos, avail = c->ret - pos;
	if (c->niov) {
		__u64 off = pos;
		bool found = false;
		for (int k = 0; k < L7_IOVS; k++) {
			struct iovec iov;
			if (k >= c->niov || bpf_probe_read_user(&iov, sizeof iov, (void *)(c->ptr + k * sizeof iov)))
				return false;
			if (off < iov.iov_len) {
				src = (__u64)iov.iov_base + off;
				if (avail > iov.iov_len - off)
					avail = iov.iov_len - off;
				found = true;
				break;
			}
			off -= iov.iov_len;
		}
		if (!found)
			return false;
	}
	/* Two calls, so that every verifier sees a size in [0, L7_BUF]: a constant, or one
	 * masked below it (6.1's loses the bound of a clamped value). */
	long err;
	if (avail >= L7_BUF) {
		avail = L7_BUF;
		err = bpf_probe_read_user(c->buf, L7_BUF, (void *)src);
	} else {
		asm volatile("" : "+r"(avail));
		err = bpf_probe_read_user(c->buf, avail & (L7_BUF - 1), (void *)src);
	}
	if (err)
		return false;
	c->base = pos;
	c->len = avail;
	return true;
}

#define L7_MMSG 8 /* datagrams of one recvmmsg/sendmmsg looked at */

/* Points the window at datagram k of a recvmmsg/sendmmsg call (ret: its length). */
static __always_inline bool l7_mmsg_load(struct l7_ctx *c, __u32 k)
{
	struct mmsghdr m;
	if (k >= c->nmsg || bpf_probe_read_user(&m, sizeof m, (void *)(c->mmsg + k * sizeof m)))
		return false;
	c->ptr = (__u64)m.msg_hdr.msg_iov;
	c->niov = m.msg_hdr.msg_iovlen;
	c->ret = m.msg_len;
	c->base = 0;
	c->len = 0;
	return c->niov && l7_fill(c, 0);
}

/* What a stream parser's step (a bpf_loop callback) works on. */
struct l7_walk {
	struct l7_ctx *c;
	struct l7_conn *conn;
	struct l7_dir *d;
	__u8 req; /* this direction carries requests */
};

enum { L7_BYTE = 1, L7_SKIPPED = 0, L7_END = -1, L7_FAULT = -2 };

/* Advances the cursor: passes over the bytes still to skip (L7_SKIPPED), or takes the next
 * byte into *b (L7_BYTE). L7_END at the end of the call's data, L7_FAULT if it cannot be read. */
static __always_inline int l7_next(struct l7_walk *w, int *b)
{
	struct l7_ctx *c = w->c;
	struct l7_dir *d = w->d;
	__u32 pos = c->pos;
	if (pos >= c->ret)
		return L7_END;
	if (d->skip) {
		__u64 n = c->ret - pos;
		if (n > d->skip)
			n = d->skip;
		d->skip -= n;
		c->pos = pos + n;
		return L7_SKIPPED;
	}
	int v = l7_at(c, pos);
	if (v < 0) {
		if (!l7_fill(c, pos))
			return L7_FAULT;
		v = l7_at(c, pos);
		if (v < 0)
			return L7_FAULT;
	}
	c->pos = pos + 1;
	*b = v;
	return L7_BYTE;
}

/* Adds byte b to the name being read in d (upper-cased if fold). */
static __always_inline void l7_name_add(struct l7_dir *d, int b, bool fold)
{
	__u8 n = d->nlen;
	if (n < L7_NAME) {
		if (fold && b >= 'a' && b <= 'z')
			b -= 'a' - 'A';
		d->w[(n >> 3) & 1] |= (__u64)(b & 0xff) << ((n & 7) * 8);
	}
	if (n < 255)
		d->nlen = n + 1;
}

/* The method id of the name in d; 0 (OTHER) if it is not one of the protocol's. */
static __always_inline __u16 l7_name_id(__u8 proto, struct l7_dir *d)
{
	if (d->nlen == 0 || d->nlen > L7_NAME)
		return 0;
	struct l7_name_key k = {.proto = proto, .len = d->nlen, .w = {d->w[0], d->w[1]}};
	__u16 *id = bpf_map_lookup_elem(&kpod_l7_names, &k);
	return id ? *id : 0;
}

/* The method id of the len bytes at offset i of the window (the start of a message). */
static __always_inline __u16 l7_name_at(struct l7_ctx *c, __u8 proto, __u32 i, __u32 len, bool fold)
{
	struct l7_dir d = {};
	for (int k = 0; k < L7_NAME; k++) {
		if (k >= len)
			break;
		int b = l7_at(c, i + k);
		if (b < 0)
			return 0;
		l7_name_add(&d, b, fold);
	}
	return l7_name_id(proto, &d);
}

static __always_inline void l7_name_reset(struct l7_dir *d)
{
	d->nlen = 0;
	d->w[0] = 0;
	d->w[1] = 0;
}

/* Whether this call carries requests: a client sends them, a server receives them. */
static __always_inline bool l7_requests(struct l7_ctx *c, struct l7_conn *conn)
{
	return (conn->role == L7_CLIENT) == (c->out == 1);
}

static __always_inline void l7_count(struct l7_ctx *c, struct l7_conn *conn, __u16 method, __u16 status, __u64 ns, bool lat)
{
	static const struct l7_val zero;
	struct l7_key key = {.cgid = c->cgid, .proto = conn->proto, .role = conn->role, .method = method, .status = status};
	struct l7_val *v = kpod_entry(&kpod_l7, &key, &zero);
	if (!v) {
		KPOD_LOST(l7, kpod_l7);
		return;
	}
	v->count++;
	if (lat)
		kpod_hist_add(&v->lat, ns);
}

/* Counts a message that could not be counted as a request, by reason (L7_LOST_*). */
static __always_inline void l7_lost(struct l7_ctx *c, struct l7_conn *conn, __u16 reason)
{
	l7_count(c, conn, L7_LOST, reason, 0, false);
}

/* A counter of the ring read once from memory: the other CPU may be moving it. */
#define L7_ONCE(x) (*(volatile typeof(x) *)&(x))

/* The number of requests in flight (see struct l7_conn). */
static __always_inline __u32 l7_n(struct l7_conn *conn)
{
	__u32 n = L7_ONCE(conn->tail) - L7_ONCE(conn->head);
	return n > L7_PENDING ? L7_PENDING : n;
}

/* The index in conn->p of the k-th oldest request in flight. */
static __always_inline __u32 l7_slot(struct l7_conn *conn, __u32 k)
{
	return (L7_ONCE(conn->head) + k) & (L7_PENDING - 1);
}

static __always_inline struct l7_pending *l7_nth(struct l7_conn *conn, __u32 k)
{
	return &conn->p[l7_slot(conn, k)];
}

/* The slot of the newest request in flight (l7_n(conn) > 0). */
static __always_inline struct l7_pending *l7_newest(struct l7_conn *conn)
{
	return &conn->p[(L7_ONCE(conn->tail) - 1) & (L7_PENDING - 1)];
}

/* HTTP/2 and gRPC clients have both ends of the ring moved from both CPUs: the reader pushes an
 * answer read before its request's write ended, the writer then takes it; either may take a
 * stream from the middle (answers come in any order, l7_h2_take). Those updates are made under
 * conn->lock, taken by compare-and-swap: tracepoint programs may not hold a bpf_spin_lock, and
 * the sections are short and run with preemption off, so a bounded spin waits them out. Past
 * the bound (never seen) the update goes on without the lock, as it did before. Returns
 * whether the lock is held, for l7_unlock. */
#define L7_SPIN 256
static __always_inline int l7_lock(struct l7_conn *conn)
{
	for (int i = 0; i < L7_SPIN; i++)
		if (__sync_val_compare_and_swap(&conn->lock, 0, 1) == 0)
			return 1;
	return 0;
}

static __always_inline void l7_unlock(struct l7_conn *conn, int held)
{
	if (held)
		__sync_lock_test_and_set(&conn->lock, 0);
}

/* Forgets the oldest request in flight, if there is one. */
static __always_inline void l7_drop(struct l7_conn *conn)
{
	if (l7_n(conn) > 0)
		__sync_fetch_and_add(&conn->head, 1);
}

/* Adds a request in flight; returns its index in conn->p, or -1 if there is no room. The slot
 * is filled before tail moves past it, so a response parsed meanwhile on another CPU never
 * sees it half written. */
static __always_inline int l7_push_aux(struct l7_ctx *c, struct l7_conn *conn, __u16 method, __u32 id, __u16 aux)
{
	if (l7_n(conn) >= L7_PENDING) {
		l7_lost(c, conn, L7_LOST_FULL);
		return -1;
	}
	__u32 i = L7_ONCE(conn->tail) & (L7_PENDING - 1);
	struct l7_pending *p = &conn->p[i];
	p->ts = c->ts;
	p->id = id;
	p->method = method;
	p->aux = aux;
	__sync_fetch_and_add(&conn->tail, 1);
	return i;
}

static __always_inline void l7_push(struct l7_ctx *c, struct l7_conn *conn, __u16 method, __u32 id)
{
	l7_push_aux(c, conn, method, id, 0);
}

/* Sets the method of the newest request in flight (known only after its first bytes). */
static __always_inline void l7_set_method(struct l7_conn *conn, __u16 method)
{
	if (l7_n(conn) == 0)
		return;
	l7_newest(conn)->method = method;
}

static __always_inline void l7_edge_add(struct l7_edge_val *v, __u16 status, __u64 ns)
{
	v->count++;
	if (status == 4 || status == 5 || status == L7_ERROR)
		v->failed++;
	kpod_hist_add(&v->lat, ns);
}

/* Counts a client's answered request on its connection's entry when the peer is a Service
 * address; returns 1 if it did. A global function, verified once rather than inline in
 * every parser. A full kpod_l7_svcconn is counted as a lost update and the request goes on the
 * edge to the Service, without its backend. */
__attribute__((noinline)) int l7_svc_edge(struct l7_ctx *c, __u8 proto, __u16 status, __u64 ns)
{
	static const struct l7_edge_val zero;
	if (!c)
		return 0;
	/* The key from the stack: 6.1 refuses one in the argument's memory (R2 type=mem). */
	__u8 addr[16];
	__builtin_memcpy(addr, c->raddr, sizeof addr);
	if (!bpf_map_lookup_elem(&kpod_l7_svc, addr))
		return 0;
	struct l7_svcconn_key key = {.cgid = c->cgid, .lport = c->lport, .rport = c->rport, .proto = proto, .udp = c->udp,
				     .gen = kpod_gen(&kpod_l7_gen)};
	/* The local address only here, not at every call: conntrack knows the connection by it. */
	kpod_sk_addr(key.laddr, (struct sock *)c->sk, true);
	__builtin_memcpy(key.raddr, c->raddr, sizeof key.raddr);
	struct l7_edge_val *v = kpod_entry(&kpod_l7_svcconn, &key, &zero);
	if (!v) {
		KPOD_LOST(l7, kpod_l7_svcconn);
		return 0;
	}
	l7_edge_add(v, status, ns);
	return 1;
}

/* Counts an answered request on its edge (the connection's peer; the server's port). */
static __always_inline void l7_edge(struct l7_ctx *c, struct l7_conn *conn, __u16 status, __u64 ns)
{
	static const struct l7_edge_val zero;
	if (l7_backends && conn->role == L7_CLIENT && l7_svc_edge(c, conn->proto, status, ns))
		return;
	struct l7_edge_key key = {.cgid = c->cgid, .proto = conn->proto, .role = conn->role,
				  .port = conn->role == L7_CLIENT ? c->rport : c->lport};
	__builtin_memcpy(key.addr, c->raddr, sizeof key.addr);
	struct l7_edge_val *v = kpod_entry(&kpod_l7_edge, &key, &zero);
	if (!v) {
		KPOD_LOST(l7, kpod_l7_edge);
		return;
	}
	l7_edge_add(v, status, ns);
}

/* Counts an answered request that took ns, on the pod and on its edge: every protocol's
 * answered requests go through here, so the two never disagree. */
static __always_inline void l7_done(struct l7_ctx *c, struct l7_conn *conn, __u16 method, __u16 status, __u64 ns)
{
	l7_count(c, conn, method, status, ns, true);
	if (l7_edges)
		l7_edge(c, conn, status, ns);
}

static __always_inline void l7_answer(struct l7_ctx *c, struct l7_conn *conn, struct l7_pending *req, __u16 status)
{
	l7_done(c, conn, req->method, status, c->ts >= req->ts ? c->ts - req->ts : 0);
}

/* Counts the oldest request in flight as answered with status. */
static __always_inline void l7_pop(struct l7_ctx *c, struct l7_conn *conn, __u16 status)
{
	if (l7_n(conn) == 0) {
		l7_lost(c, conn, L7_LOST_NOREQ);
		return;
	}
	struct l7_pending p = *l7_nth(conn, 0);
	l7_drop(conn);
	l7_answer(c, conn, &p, status);
}

/* Counts the request in flight with correlation id id as answered with status. Requests
 * answered out of order (UDP servers, Kafka, MongoDB) are taken from the middle of the queue
 * (marked with ts 0) and the head moves past the taken ones. A global function, verified once
 * on its own rather than on each path of a parser's walk that reaches it (the verifier's
 * memory is charged to kpod's memory cgroup: the Kafka walker's peak states 14.3k inline). */
__attribute__((noinline)) int l7_pop_id(struct l7_ctx *c, struct l7_conn *conn, __u32 id, __u16 status)
{
	if (!c || !conn)
		return 0;
	__u32 n = l7_n(conn);
	for (int k = 0; k < L7_PENDING; k++) {
		if (k >= n)
			break;
		struct l7_pending *p = l7_nth(conn, k);
		if (p->ts == 0 || p->id != id)
			continue;
		l7_answer(c, conn, p, status);
		p->ts = 0;
		for (int j = 0; j < L7_PENDING; j++) {
			if (l7_n(conn) == 0 || l7_nth(conn, 0)->ts != 0)
				break;
			l7_drop(conn);
		}
		return 0;
	}
	l7_lost(c, conn, L7_LOST_NOREQ);
	return 0;
}

/* Gives up on the rest of the call: counts it, and starts afresh at the next call. */
static __always_inline long l7_resync(struct l7_walk *w)
{
	struct l7_dir *d = w->d;
	__builtin_memset(d, 0, sizeof *d);
	w->c->pos = w->c->ret;
	l7_lost(w->c, w->conn, L7_LOST_RESYNC);
	return 1;
}

/* Parses a decimal number of at most 10 digits at i in the window; -1 if there is none. */
static __always_inline long l7_number(struct l7_ctx *c, __u32 *i)
{
	long n = 0;
	int digits = 0;
	for (int k = 0; k < 10; k++) {
		int b = l7_at(c, *i);
		if (b < '0' || b > '9')
			break;
		n = n * 10 + (b - '0');
		(*i)++;
		digits++;
	}
	return digits ? n : -1;
}

static __always_inline bool l7_crlf(struct l7_ctx *c, __u32 i)
{
	return l7_at(c, i) == '\r' && l7_at(c, i + 1) == '\n';
}

#endif /* __KPOD_L7_H__ */
