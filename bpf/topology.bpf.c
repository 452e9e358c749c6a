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
 * closes; at each collection kpod runs the TCP iterator in every pod's network namespace,
 * which writes one record per established socket with its peer and its counters since kpod
 * first saw it. A socket is counted once, live or closed (see tcp.bpf.c).
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
	__u64 kpod_topo_st;
	__u64 kpod_topo_svcconn;
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

/* A socket kpod knows: its edge, its counters when kpod first saw it, whether its counters
 * went to kpod_topo when it closed (the iterator skips it from then on), and whether it is
 * a client's connection to a Service (counted in kpod_topo_svcconn instead). */
struct topo_sk {
	__u64 known;
	__u64 closed;
	__u64 sent0, received0;
	__u8 role;
	__u8 svc;
	__u16 lport; /* svc: the local port, which the socket no longer has when it closes */
	__u8 pad[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct topo_sk);
} kpod_topo_st SEC(".maps");

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

static __always_inline __u64 sk_cgid(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

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
	struct topo_svckey k = {.cgid = sk_cgid(sk), .gen = kpod_gen(&kpod_topo_gen)};
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
	k->cgid = sk_cgid(sk);
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
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		__u8 role = oldstate == TCP_SYN_SENT ? TOPO_CLIENT : TOPO_SERVER;
		struct topo_key k;
		fill_key(sk, role, &k);
		/* A client's connection to a Service address is counted per connection (svc_edge). */
		__u8 svc = topo_backends && role == TOPO_CLIENT && bpf_map_lookup_elem(&kpod_topo_svc, k.addr);
		__u16 lport = svc ? BPF_CORE_READ(sk, __sk_common.skc_num) : 0;
		struct topo_sk *st = bpf_sk_storage_get(&kpod_topo_st, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (st) {
			st->sent0 = st->received0 = st->closed = 0;
			st->role = role;
			st->svc = svc;
			st->lport = lport;
			st->known = 1;
		} else {
			KPOD_LOST(topo, kpod_topo_st);
			svc = 0; /* its close is not seen: all on kpod_topo */
		}
		struct topo_val *v = svc ? svc_edge(sk, lport) : edge(&k);
		if (v)
			v->conns++;
		return 0;
	}
	if (newstate != TCP_CLOSE || oldstate == TCP_CLOSE)
		return 0;
	struct topo_sk *st = bpf_sk_storage_get(&kpod_topo_st, sk, 0, 0);
	if (!st || !st->known)
		return 0; /* never established, or established before kpod and closed unseen */
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
	if (!v)
		return 0;
	v->sent += sent - st->sent0;
	v->received += received - st->received0;
	__u64 ns = srtt_ns(sk);
	if (ns)
		kpod_hist_add(&v->rtt, ns);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kpod_topost_b, struct sock *sk, int oldstate, int newstate)
{
	return on_state(sk, oldstate, newstate);
}

/* Writes the record of a live socket kpod knows (st->known) to the iterator's output. */
static __always_inline void write_rec(struct seq_file *seq, struct sock *sk, struct topo_sk *st)
{
	struct topo_rec r = {.cgid = sk_cgid(sk), .role = st->role, .svc = st->svc};
	peer(sk, r.addr, &r.lport, &r.rport);
	if (st->svc)
		kpod_sk_addr(r.laddr, sk, true);
	tcp_counters(sk, &r.sent, &r.received);
	r.sent -= st->sent0;
	r.received -= st->received0;
	r.srtt_ns = srtt_ns(sk);
	bpf_seq_write(seq, &r, sizeof r);
}

/* One record per established socket of the iterator's network namespace. */
SEC("iter/tcp")
int kpod_topoit_i(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	if (!tcp_live(sk) || !is_tcp(sk))
		return 0;
	struct topo_sk *st = bpf_sk_storage_get(&kpod_topo_st, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		KPOD_LOST(topo, kpod_topo_st);
		return 0;
	}
	if (!st->known) {
		/* Established before kpod started: counted from now on. Which end it is is
		 * guessed from the ports: the one in the ephemeral range is the client's. */
		__u8 addr[16];
		__u16 lport, rport;
		peer(sk, addr, &lport, &rport);
		tcp_counters(sk, &st->sent0, &st->received0);
		if (lport >= TOPO_EPHEMERAL && rport < TOPO_EPHEMERAL)
			st->role = TOPO_CLIENT;
		else if (rport >= TOPO_EPHEMERAL && lport < TOPO_EPHEMERAL)
			st->role = TOPO_SERVER;
		else
			st->role = rport <= lport ? TOPO_CLIENT : TOPO_SERVER;
		st->known = 1;
	}
	if (!st->closed)
		write_rec(ctx->meta->seq, sk, st);
	return 0;
}

/* Without CAP_SYS_ADMIN kpod cannot enter the pods' network namespaces to run the iterator
 * above. This one walks the sockets kpod_topo_st holds instead, in every namespace at once:
 * those that reached ESTABLISHED while kpod ran (older ones are unknown to it). */
SEC("iter/bpf_sk_storage_map")
int kpod_topoms_i(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct sock *sk = ctx->sk;
	struct topo_sk *st = ctx->value;
	if (!sk || !st || !st->known || st->closed || !tcp_live(sk))
		return 0;
	write_rec(ctx->meta->seq, sk, st);
	return 0;
}
