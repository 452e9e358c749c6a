// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "topology": the TCP connections of pods per edge (peer address, server port, which
 * end this pod is): connections established, payload bytes each way and smoothed RTT.
 * Request counts and latencies per edge come from the l7 family's kpod_l7_edge map; this
 * object covers every TCP connection, whatever its protocol.
 *
 * The same per-socket technique as the tcp family (bpf/tcp.bpf.c), in an object of its own so
 * that either family can run alone: the kernel already counts bytes per socket in struct
 * tcp_sock; a program on inet_sock_set_state counts a connection when it reaches ESTABLISHED
 * (and notes which end the socket is) and adds the socket's final counters to its edge when it
 * closes; at each collection a walk of the sockets the family knows (kpod_topo_socks, every
 * namespace at once; a table of known sockets: tcp_sock.h) sums the live ones' counters since
 * kpod first saw them per edge into kpod_topo_live, the TCP iterator having run once in every
 * pod's network namespace to add the sockets established before kpod started. Where the walk
 * cannot load the iterator runs in every pod's namespace at each collection and writes one
 * record per established socket. A socket is counted once, live or closed (see tcp.bpf.c).
 *
 * Charged to the socket's cgroup (sk_cgrp_data), as every TCP counter of kpod: state changes
 * happen in softirq.
 */
#include "tcp_sock.h"
#include <bpf/bpf_endian.h>

#define TOPO_EDGES 16384
/* Linux's default net.ipv4.ip_local_port_range starts here: only used to guess which end a
 * connection established before kpod started is. */
#define TOPO_EPHEMERAL 32768

enum { TOPO_CLIENT = 1, TOPO_SERVER = 2 };

/* One edge as a cgroup sees it: the peer, the server's port (never an ephemeral one) and
 * whether this cgroup's socket is the client (connected) or the server (accepted). */
struct topo_key {
	__u64 cgid;
	__u8 addr[16]; /* the peer (IPv4 as ::ffff:a.b.c.d) */
	__u16 port;
	__u8 role;
	__u8 pad[5];
};

struct topo_val {
	__u64 conns;    /* connections that reached ESTABLISHED */
	__u64 sent;     /* closed sockets: payload bytes sent once (bytes_sent - bytes_retrans) */
	__u64 received; /* closed sockets: payload bytes received in order, without a FIN */
	struct kpod_hist rtt; /* closed sockets: their last smoothed RTT */
};

/* A client connection to a Service address (kpod_topo_svc), counted per connection and
 * generation (kpod_topo_gen) like l7's kpod_l7_svcconn, so that user space can name the
 * backend the node's NAT chose for it and fold it into the edge client -> Service, backend.
 * Filled only when the loader sets topo_backends. */
struct topo_svckey {
	__u64 cgid;
	__u8 laddr[16];
	__u8 raddr[16]; /* the Service address */
	__u16 lport;
	__u16 rport;
	__u8 gen;
	__u8 pad[3];
};

struct topo_errs {
	__u64 kpod_topo;
	__u64 kpod_topo_socks;
	__u64 kpod_topo_svcconn;
	__u64 kpod_topo_live;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TOPO_EDGES);
	__type(key, struct topo_key);
	__type(value, struct topo_val);
} kpod_topo SEC(".maps");

#define TOPO_SVC_CONNS 8192

KPOD_SVC_MAPS(topo);

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TOPO_SVC_CONNS);
	__type(key, struct topo_svckey);
	__type(value, struct topo_val);
} kpod_topo_svcconn SEC(".maps");

/* Set by the loader when the topology collector names the backends behind Services. */
volatile const __u8 topo_backends;

/* A socket kpod knows (a table of known sockets: tcp_sock.h): who it is, its counters when
 * kpod first saw it, whether its counters went to kpod_topo when it closed (a walk that
 * already holds the entry skips it from then on), and whether it is a client's connection to
 * a Service (counted in kpod_topo_svcconn instead). */
struct topo_sk {
	__u64 id;
	__u64 closed;
	__u64 sent0, received0;
	__u8 role;
	__u8 svc;
	__u16 lport; /* svc: the local port, which the socket no longer has when it closes */
	__u8 pad[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the sockets there are */
	__uint(max_entries, KPOD_KNOWN_SOCKETS);
	__type(key, __u64); /* the socket's address */
	__type(value, struct topo_sk);
} kpod_topo_socks SEC(".maps");

KPOD_ERRORS(topo, struct topo_errs);

/* One live socket, as the iterator writes it (internal/topology reads it). */
struct topo_rec {
	__u64 cgid;
	__u8 addr[16];
	__u8 laddr[16]; /* svc only: the socket's own address */
	__u16 lport, rport;
	__u8 role;
	__u8 svc;
	__u8 pad[2];
	__u64 sent;
	__u64 received;
	__u64 srtt_ns;
};
const struct topo_rec *kpod_topo_rec_type __attribute__((unused)); /* the type into BTF for bpf2go */

/* What one walk read from live sockets, per edge (the fields of topo_rec before sent; lport
 * and laddr only for a connection to a Service, which has an entry of its own; else the
 * server's port in lport for the server's end, in rport for the client's). gen: the walk
 * that wrote it. */
struct topo_lkey {
	__u64 cgid;
	__u8 addr[16];
	__u8 laddr[16];
	__u16 lport, rport;
	__u8 role;
	__u8 svc;
	__u8 pad[2];
};

struct topo_live {
	__u64 gen;
	__u64 sent, received;
	struct kpod_hist rtt; /* each live socket's smoothed RTT */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TOPO_EDGES + TOPO_SVC_CONNS);
	__type(key, struct topo_lkey);
	__type(value, struct topo_live);
} kpod_topo_live SEC(".maps");

_Static_assert(__builtin_offsetof(struct topo_rec, sent) == sizeof(struct topo_lkey), "topo_rec starts with a topo_lkey");


/* The socket's peer address (IPv4 mapped into IPv6) and ports (local, peer). */
static __always_inline void peer(const struct sock *sk, __u8 addr[16], __u16 *lport, __u16 *rport)
{
	__builtin_memset(addr, 0, 16);
	kpod_sk_addr(addr, sk, false);
	*lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	*rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* The entry of a client's connection to a Service (local port lport) in the current
 * generation. */
static __always_inline struct topo_val *svc_edge(const struct sock *sk, __u16 lport)
{
	static const struct topo_val zero;
	struct topo_svckey k = {.cgid = kpod_sock_cgid(sk), .gen = kpod_gen(&kpod_topo_gen)};
	peer(sk, k.raddr, &k.lport, &k.rport);
	k.lport = lport;
	kpod_sk_addr(k.laddr, sk, true); /* the key is zeroed */
	struct topo_val *v = kpod_entry(&kpod_topo_svcconn, &k, &zero);
	if (!v)
		KPOD_LOST(topo, kpod_topo_svcconn);
	return v;
}

static __always_inline void fill_key(const struct sock *sk, __u8 role, struct topo_key *k)
{
	__u16 lport, rport;
	__builtin_memset(k, 0, sizeof *k);
	k->cgid = kpod_sock_cgid(sk);
	peer(sk, k->addr, &lport, &rport);
	k->port = role == TOPO_CLIENT ? rport : lport;
	k->role = role;
}

static __always_inline struct topo_val *edge(struct topo_key *k)
{
	static const struct topo_val zero;
	struct topo_val *v = kpod_entry(&kpod_topo, k, &zero);
	if (!v)
		KPOD_LOST(topo, kpod_topo);
	return v;
}


static __always_inline int on_state(struct sock *sk, int oldstate, int newstate)
{
	if (!is_tcp(sk))
		return 0;
	__u64 key = (__u64)sk;
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		__u8 role = oldstate == TCP_SYN_SENT ? TOPO_CLIENT : TOPO_SERVER;
		struct topo_key k;
		fill_key(sk, role, &k);
		/* A client's connection to a Service address is counted per connection (svc_edge). */
		__u8 svc = topo_backends && role == TOPO_CLIENT && bpf_map_lookup_elem(&kpod_topo_svc, k.addr);
		__u16 lport = svc ? BPF_CORE_READ(sk, __sk_common.skc_num) : 0;
		/* from zero; replaces what a socket freed at this address left, if anything */
		struct topo_sk st = {.id = sock_id(sk), .role = role, .svc = svc, .lport = lport};
		if (bpf_map_update_elem(&kpod_topo_socks, &key, &st, BPF_ANY)) {
			KPOD_LOST(topo, kpod_topo_socks);
			svc = 0; /* its close is not seen: all on kpod_topo */
		}
		struct topo_val *v = svc ? svc_edge(sk, lport) : edge(&k);
		if (v)
			v->conns++;
		return 0;
	}
	if (newstate != TCP_CLOSE || oldstate == TCP_CLOSE)
		return 0;
	if (never_established(oldstate)) {
		bpf_map_delete_elem(&kpod_topo_socks, &key);
		return 0;
	}
	struct topo_sk *st = bpf_map_lookup_elem(&kpod_topo_socks, &key);
	if (!st)
		return 0; /* established before kpod and closed unseen */
	__sync_fetch_and_add(&st->closed, 1); /* before the counters: see tcp.bpf.c */
	__u64 sent, received;
	tcp_counters(sk, &sent, &received);
	struct topo_val *v;
	if (st->svc) {
		v = svc_edge(sk, st->lport);
	} else {
		struct topo_key k;
		fill_key(sk, st->role, &k);
		v = edge(&k);
	}
	if (v) {
		v->sent += sent - st->sent0;
		v->received += received - st->received0;
		__u64 ns = srtt_ns(sk);
		if (ns)
			kpod_hist_add(&v->rtt, ns);
	}
	bpf_map_delete_elem(&kpod_topo_socks, &key); /* see tcp.bpf.c */
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kpod_topost_b, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, oldstate, newstate);
}

/* A live socket's edge (lk) and counters since kpod first saw it (st). */
static __always_inline void read_live(const struct sock *sk, const struct topo_sk *st, struct topo_lkey *lk, __u64 *sent, __u64 *received)
{
	__builtin_memset(lk, 0, sizeof *lk);
	lk->cgid = kpod_sock_cgid(sk);
	lk->role = st->role;
	lk->svc = st->svc;
	peer(sk, lk->addr, &lk->lport, &lk->rport);
	if (st->svc)
		kpod_sk_addr(lk->laddr, sk, true);
	tcp_counters(sk, sent, received);
	*sent -= st->sent0;
	*received -= st->received0;
}

/* One record per established socket of the iterator's network namespace; a socket kpod did
 * not know (established before kpod started) is added to kpod_topo_socks, counted from now
 * on, which end it is guessed from the ports: the one in the ephemeral range is the client's. */
SEC("iter/tcp")
int kpod_topoit_i(struct bpf_iter__tcp *ctx)
{
	struct sock *sk = iter_conn(ctx);
	if (!sk)
		return 0;
	/* Unknown (established before kpod started): counted from now on, as the end its ports
	 * say; closing now, the entry outlives the socket (see tcp.bpf.c). */
	struct topo_sk n = {.id = sock_id(sk)};
	__u8 addr[16];
	__u16 lport, rport;
	peer(sk, addr, &lport, &rport);
	tcp_counters(sk, &n.sent0, &n.received0);
	if (lport >= TOPO_EPHEMERAL && rport < TOPO_EPHEMERAL)
		n.role = TOPO_CLIENT;
	else if (rport >= TOPO_EPHEMERAL && lport < TOPO_EPHEMERAL)
		n.role = TOPO_SERVER;
	else
		n.role = rport <= lport ? TOPO_CLIENT : TOPO_SERVER;
	__u64 key = (__u64)sk;
	struct topo_sk *st = kpod_entry(&kpod_topo_socks, &key, &n);
	if (!st) {
		KPOD_LOST(topo, kpod_topo_socks);
		return 0;
	}
	if (st->closed)
		return 0;
	struct topo_rec r;
	read_live(sk, st, (struct topo_lkey *)&r, &r.sent, &r.received);
	r.srtt_ns = srtt_ns(sk);
	bpf_seq_write(ctx->meta->seq, &r, sizeof r);
	return 0;
}

static long topo_walk_one(struct bpf_map *map, __u64 *key, struct topo_sk *st, __u64 *gen)
{
	__u64 addr = *key; /* copied: see tcp.bpf.c */
	const struct sock *sk = (const struct sock *)addr;
	struct topo_lkey lk;
	__u64 sent, received;
	read_live(sk, st, &lk, &sent, &received);
	__u64 ns = srtt_ns(sk);
	switch (known_check(sk, st->id, &st->closed)) {
	case KNOWN_GONE:
		bpf_map_delete_elem(map, &addr);
		return 0;
	case KNOWN_SKIP:
		return 0;
	}
	if (!lk.svc) { /* per edge: the server's port only */
		if (lk.role == TOPO_CLIENT)
			lk.lport = 0;
		else
			lk.rport = 0;
	}
	static const struct topo_live zero;
	struct topo_live *l = kpod_entry(&kpod_topo_live, &lk, &zero);
	if (!l) {
		KPOD_LOST(topo, kpod_topo_live);
		return 0;
	}
	if (l->gen != *gen) { /* the edge's first socket in this walk */
		*l = zero;
		l->gen = *gen;
	}
	l->sent += sent;
	l->received += received;
	if (ns)
		kpod_hist_add(&l->rtt, ns);
	return 0;
}

/* Every socket kpod knows, in every network namespace at once, summed per edge into
 * kpod_topo_live with the generation kpod passes (args[0]); returns how many entries it met.
 * Run by kpod (BPF_PROG_TEST_RUN), never attached. As root kpod runs it after the iterator's
 * first run in each namespace; without CAP_SYS_ADMIN it cannot enter the pods' namespaces,
 * and the walk knows only the connections established while kpod runs. */
SEC("raw_tp")
int kpod_topow_run(__u64 *ctx)
{
	__u64 gen = ctx[0];
	return bpf_for_each_map_elem(&kpod_topo_socks, topo_walk_one, &gen, 0);
}
