// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "tcp": TCP bytes, connections, retransmitted segments and smoothed RTT per cgroup.
 *
 * Two paths; the loader takes the first that loads (internal/tcp):
 *
 * Per socket (kpod_tsk, kpod_titer, kpod_tms; Linux 5.11+). The kernel already counts per
 * socket in struct tcp_sock what kpod reports; kpod reads those counters instead of watching
 * every segment. At each collection kpod walks the sockets kpod_tsk_st holds (kpod_tms, every
 * namespace at once), having run the TCP iterator (iter/tcp) once in every network namespace
 * that holds a pod to meet the sockets established before kpod started; where the kernel
 * refuses the storage walk, it runs the iterator in every such namespace at each collection.
 * Either writes one record per established socket: its counters
 * since kpod first saw it (a socket established while kpod runs counts from zero, an older
 * one from its counters at the first collection that met it; the baseline lives in the
 * socket's storage, kpod_tsk_st). When a socket goes to CLOSE its final counters (less the
 * baseline) are added to its cgroup's entry of kpod_tcp, so that short connections are not
 * lost. Only inet_sock_set_state fires per event (a few times per connection).
 *
 * Per segment (kpod_tsend, kpod_trecv, kpod_tstate, kpod_tretx, kpod_trtt; Linux 6.3+), the
 * fallback: bytes from sock_send_length / sock_recv_length, RTT from tcp_probe, one program
 * run per segment or system call.
 *
 * Who gets charged: the socket's cgroup (sk_cgrp_data: the cgroup of the task that created
 * the socket; an accepted socket inherits the listener's), since connections, retransmits
 * and RTT change in softirq where current is random. The per-segment path charges bytes to
 * the sending or receiving task (current), its hooks run in that task's system call.
 * Drops (kfree_skb) are the "tcpdrop" family (bpf/tcpdrop.bpf.c).
 */
#include "tcp_sock.h"

#define MSG_PEEK 2

struct tcp_val {
	__u64 bytes_sent;     /* per socket: of closed sockets; per segment: send calls */
	__u64 bytes_received; /* per socket: of closed sockets; per segment: recv calls */
	__u64 conns_active;   /* SYN_SENT -> ESTABLISHED: connect() completed */
	__u64 conns_passive;  /* SYN_RECV -> ESTABLISHED: a connection accepted by a listener */
	__u64 retransmits;    /* segments sent again, like the kernel's RetransSegs */
	struct kpod_hist rtt; /* smoothed RTT: per socket at close; per segment on each ACK */
};

struct tcp_errs {
	__u64 kpod_tcp;
	__u64 kpod_tsk_st;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tcp_val);
} kpod_tcp SEC(".maps");

/* A socket kpod knows: where its counters stood when kpod first saw it, and whether its
 * counters went to kpod_tcp when it closed (the iterator skips it from then on; the storage
 * lives until the last reference to the socket goes). */
struct tcp_sk {
	__u64 known; /* 0: storage just created by the iterator, no baseline yet */
	__u64 closed;
	__u64 sent0, received0, retrans0;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct tcp_sk);
} kpod_tsk_st SEC(".maps");

KPOD_ERRORS(tcp, struct tcp_errs);

/* One live socket's counters, as the iterator writes them (internal/tcp reads them). */
struct tcp_rec {
	__u64 cgid;
	__u64 sent;     /* payload bytes sent once: bytes_sent - bytes_retrans */
	__u64 received; /* payload bytes received in order: bytes_received without the FIN */
	__u64 retrans;  /* total_retrans: segments retransmitted */
	__u64 srtt_ns;  /* smoothed RTT; 0 before the first sample */
};
const struct tcp_rec *kpod_tcp_rec_type __attribute__((unused)); /* the type into BTF for bpf2go */

static __always_inline struct tcp_val *val(__u64 cg)
{
	static const struct tcp_val zero;
	struct tcp_val *v = kpod_entry(&kpod_tcp, &cg, &zero);
	if (!v)
		KPOD_LOST(tcp, kpod_tcp);
	return v;
}

static __always_inline __u64 sk_cgid(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

/* The socket's counters (tcp_counters), retransmits and RTT. */
static __always_inline void read_rec(const struct sock *sk, struct tcp_rec *r)
{
	r->cgid = sk_cgid(sk);
	tcp_counters(sk, &r->sent, &r->received);
	r->retrans = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
	r->srtt_ns = srtt_ns(sk);
}

/* Writes a live socket's record r (read_rec): its counters since kpod first saw it (the
 * baseline in st). */
static __always_inline void write_rec(struct seq_file *seq, struct tcp_rec *r, const struct tcp_sk *st)
{
	r->sent -= st->sent0;
	r->received -= st->received0;
	r->retrans -= st->retrans0;
	bpf_seq_write(seq, r, sizeof *r);
}

static __always_inline int count_conn(const struct sock *sk, int oldstate)
{
	struct tcp_val *v = val(sk_cgid(sk));
	if (!v)
		return 0;
	if (oldstate == TCP_SYN_SENT)
		v->conns_active++;
	else
		v->conns_passive++;
	return 0;
}

/* ---- per socket ---- */

static __always_inline int on_sock_state(struct sock *sk, int oldstate, int newstate)
{
	if (!is_tcp(sk))
		return 0;
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		struct tcp_sk *st = bpf_sk_storage_get(&kpod_tsk_st, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (st) {
			/* from zero (again, after a connect(AF_UNSPEC) reset its counters) */
			st->sent0 = st->received0 = st->retrans0 = st->closed = 0;
			st->known = 1;
		} else {
			KPOD_LOST(tcp, kpod_tsk_st);
		}
		return count_conn(sk, oldstate);
	}
	if (newstate != TCP_CLOSE || oldstate == TCP_CLOSE)
		return 0;
	struct tcp_rec r;
	read_rec(sk, &r);
	struct tcp_sk *st = bpf_sk_storage_get(&kpod_tsk_st, sk, 0, 0);
	if (!st || !st->known) {
		/* Never established: only retransmitted SYNs to count. Established before kpod
		 * started and closed before a collection met it: unknown, left out. */
		if ((oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV) || !r.retrans)
			return 0;
		struct tcp_val *v = val(r.cgid);
		if (v)
			v->retransmits += r.retrans;
		return 0;
	}
	/* The mark comes before the counters are added: a collection, which reads kpod_tcp and
	 * then iterates, counts this socket once, live or closed, never twice. */
	__sync_fetch_and_add(&st->closed, 1);
	struct tcp_val *v = val(r.cgid);
	if (!v)
		return 0;
	v->bytes_sent += r.sent - st->sent0;
	v->bytes_received += r.received - st->received0;
	v->retransmits += r.retrans - st->retrans0;
	if (r.srtt_ns)
		kpod_hist_add(&v->rtt, r.srtt_ns);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kpod_tsk_b, struct sock *sk, int oldstate, int newstate)
{
	return on_sock_state(sk, oldstate, newstate);
}

/* One record per established socket of the iterator's network namespace. */
SEC("iter/tcp")
int kpod_titer_i(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc); /* NULL for request and time-wait minisockets */
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	if (!tcp_live(sk) || !is_tcp(sk))
		return 0;
	struct tcp_sk *st = bpf_sk_storage_get(&kpod_tsk_st, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		KPOD_LOST(tcp, kpod_tsk_st);
		return 0;
	}
	struct tcp_rec r;
	read_rec(sk, &r);
	if (!st->known) { /* established before kpod started: count from now on */
		st->sent0 = r.sent;
		st->received0 = r.received;
		st->retrans0 = r.retrans;
		st->known = 1;
	}
	if (!st->closed)
		write_rec(ctx->meta->seq, &r, st);
	return 0;
}

/* Every socket kpod knows, in every network namespace at once: one walk of kpod_tsk_st
 * instead of one iter/tcp run per namespace, each of which walks the whole established hash
 * that all namespaces share. It sees the sockets established while kpod runs and those an
 * iter/tcp run has met (kpod runs one in each namespace when it first sees it). */
SEC("iter/bpf_sk_storage_map")
int kpod_tms_i(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct sock *sk = ctx->sk;
	struct tcp_sk *st = ctx->value;
	if (!sk || !st || !st->known || st->closed || !tcp_live(sk))
		return 0;
	struct tcp_rec r;
	read_rec(sk, &r);
	write_rec(ctx->meta->seq, &r, st);
	return 0;
}

/* ---- per segment (fallback) ---- */

static __always_inline int on_send(struct sock *sk, int ret)
{
	if (ret <= 0 || !sk || !is_tcp(sk))
		return 0;
	struct tcp_val *v = val(bpf_get_current_cgroup_id());
	if (v)
		v->bytes_sent += ret;
	return 0;
}

static __always_inline int on_recv(struct sock *sk, int ret, int flags)
{
	/* MSG_PEEK leaves the data queued: it is counted when it is really read. */
	if (ret <= 0 || (flags & MSG_PEEK) || !sk || !is_tcp(sk))
		return 0;
	struct tcp_val *v = val(bpf_get_current_cgroup_id());
	if (v)
		v->bytes_received += ret;
	return 0;
}

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_ESTABLISHED || (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV))
		return 0;
	if (!is_tcp(sk))
		return 0;
	return count_conn(sk, oldstate);
}

static __always_inline int on_retransmit(__u64 *ctx, const struct sock *sk, const struct sk_buff *skb)
{
	/* Since 6.13 the tracepoint has a third argument, err, and also fires for retransmits
	 * that were not sent (err != 0); before, it fired for sent ones only. The tracefs record
	 * gained its err field in the same change, which tells which prototype this kernel has. */
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err) && (int)ctx[2] != 0)
		return 0;
	/* tcp_skb_pcount(): an skb of the retransmit queue may carry several MSS segments. */
	struct skb_shared_info *si = (void *)(BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, end));
	__u64 segs = BPF_CORE_READ(si, gso_segs);
	if (!segs)
		segs = 1;
	struct tcp_val *v = val(sk_cgid(sk));
	if (v)
		v->retransmits += segs;
	return 0;
}

static __always_inline int on_probe(struct sock *sk)
{
	__u64 ns = srtt_ns(sk);
	if (!ns)
		return 0;
	struct tcp_val *v = val(sk_cgid(sk));
	if (v)
		kpod_hist_add(&v->rtt, ns);
	return 0;
}

KPOD_TP(kpod_tsend, "sock_send_length", on_send(sk, ret), struct sock *sk, int ret, int flags)
KPOD_TP(kpod_trecv, "sock_recv_length", on_recv(sk, ret, flags), struct sock *sk, int ret, int flags)
KPOD_TP(kpod_tstate, "inet_sock_set_state", on_state(sk, oldstate, newstate),
	const struct sock *sk, const int oldstate, const int newstate)
KPOD_TP(kpod_tretx, "tcp_retransmit_skb", on_retransmit(ctx, sk, skb),
	const struct sock *sk, const struct sk_buff *skb)
KPOD_TP(kpod_trtt, "tcp_probe", on_probe(sk), struct sock *sk, const struct sk_buff *skb)
