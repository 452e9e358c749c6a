// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "tcp": TCP bytes, connections, retransmitted segments and smoothed RTT per cgroup.
 *
 * Two paths; the loader takes the first that loads (internal/tcp):
 *
 * Per socket (kpod_tsk, kpod_titer, kpod_twalk; Linux 5.9+). The kernel already counts per
 * socket in struct tcp_sock what kpod reports; kpod reads those counters instead of watching
 * every segment. kpod_tsocks holds every socket kpod knows, by address, with its counters
 * when kpod first saw it (zero for a socket established while kpod runs; an older one counts
 * from the first collection that met it). At each collection kpod_twalk, run by kpod rather
 * than attached to a hook, reads the counters of every socket in kpod_tsocks (every network
 * namespace at once) and sums them per cgroup into kpod_tlive; the TCP iterator (iter/tcp)
 * runs once in every network namespace that holds a pod to add the sockets established before
 * kpod started. Where the walk cannot load (before 5.13: bpf_for_each_map_elem) the iterator
 * runs in every such namespace at each collection and writes one record per socket. When a
 * socket goes to CLOSE its final counters (less the baseline) are added to its cgroup's entry
 * of kpod_tcp, so that short connections are not lost. Only inet_sock_set_state fires per
 * event (a few times per connection).
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
	__u64 kpod_tsocks;
	__u64 kpod_tlive;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tcp_val);
} kpod_tcp SEC(".maps");

/* A socket kpod knows (a table of known sockets: tcp_sock.h): who it is (sock_id), where its
 * counters stood when kpod first saw it, and whether its counters went to kpod_tcp when it
 * closed (a walk that already holds the entry skips it from then on). */
struct tcp_sk {
	__u64 id;
	__u64 closed;
	__u64 sent0, received0, retrans0;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the sockets there are */
	__uint(max_entries, KPOD_KNOWN_SOCKETS);
	__type(key, __u64); /* the socket's address */
	__type(value, struct tcp_sk);
} kpod_tsocks SEC(".maps");

/* What one walk read from the live sockets of a cgroup (gen: the walk that wrote it). */
struct tcp_live {
	__u64 gen;
	__u64 sent, received, retrans;
	struct kpod_hist rtt; /* each live socket's smoothed RTT */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tcp_live);
} kpod_tlive SEC(".maps");

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


/* The socket's counters (tcp_counters), retransmits and RTT. */
static __always_inline void read_rec(const struct sock *sk, struct tcp_rec *r)
{
	r->cgid = kpod_sock_cgid(sk);
	tcp_counters(sk, &r->sent, &r->received);
	r->retrans = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
	r->srtt_ns = srtt_ns(sk);
}

static __always_inline int count_conn(const struct sock *sk, int oldstate)
{
	struct tcp_val *v = val(kpod_sock_cgid(sk));
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
	__u64 key = (__u64)sk;
	if (newstate == TCP_ESTABLISHED && (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
		/* from zero (again, after a connect(AF_UNSPEC) reset its counters); replaces what
		 * a socket freed at this address left, if anything */
		struct tcp_sk st = {.id = sock_id(sk)};
		if (bpf_map_update_elem(&kpod_tsocks, &key, &st, BPF_ANY))
			KPOD_LOST(tcp, kpod_tsocks);
		return count_conn(sk, oldstate);
	}
	if (newstate != TCP_CLOSE || oldstate == TCP_CLOSE)
		return 0;
	if (never_established(oldstate)) {
		/* Only retransmitted SYNs to count: one read, not the whole record (a refused
		 * connect, the commonest of these, has none). */
		bpf_map_delete_elem(&kpod_tsocks, &key);
		if (oldstate == TCP_LISTEN)
			return 0;
		__u64 retrans = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
		if (!retrans)
			return 0;
		struct tcp_val *v = val(kpod_sock_cgid(sk));
		if (v)
			v->retransmits += retrans;
		return 0;
	}
	struct tcp_rec r;
	read_rec(sk, &r);
	struct tcp_sk *st = bpf_map_lookup_elem(&kpod_tsocks, &key);
	if (!st) /* established before kpod started and closed before a collection met it */
		return 0;
	/* The mark comes before the counters are added: a collection, which reads kpod_tcp and
	 * then walks, counts this socket once, live or closed, never twice. */
	__sync_fetch_and_add(&st->closed, 1);
	struct tcp_val *v = val(r.cgid);
	if (v) {
		v->bytes_sent += r.sent - st->sent0;
		v->bytes_received += r.received - st->received0;
		v->retransmits += r.retrans - st->retrans0;
		if (r.srtt_ns)
			kpod_hist_add(&v->rtt, r.srtt_ns);
	}
	/* Before the state becomes CLOSE and long before the socket is freed (the tracepoint
	 * fires before tcp_set_state stores the state). */
	bpf_map_delete_elem(&kpod_tsocks, &key);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(kpod_tsk_b, struct sock *sk, int oldstate, int newstate)
{
	return on_sock_state(sk, oldstate, newstate);
}

/* Each live socket of the iterator's network namespace: added to kpod_tsocks if kpod did not
 * know it (established before kpod started: counted from now on), and one record each. */
SEC("iter/tcp")
int kpod_titer_i(struct bpf_iter__tcp *ctx)
{
	struct sock *sk = iter_conn(ctx);
	if (!sk)
		return 0;
	struct tcp_rec r;
	read_rec(sk, &r);
	__u64 key = (__u64)sk;
	/* Unknown (established before kpod started): counted from now on. If it is closing now
	 * (its CLOSE tracepoint has run, its state not yet stored), this entry outlives it: the
	 * walk and the next socket at this address drop it. */
	struct tcp_sk n = {.id = sock_id(sk), .sent0 = r.sent, .received0 = r.received, .retrans0 = r.retrans};
	struct tcp_sk *st = kpod_entry(&kpod_tsocks, &key, &n);
	if (!st) {
		KPOD_LOST(tcp, kpod_tsocks);
		return 0;
	}
	if (st->closed)
		return 0;
	r.sent -= st->sent0;
	r.received -= st->received0;
	r.retrans -= st->retrans0;
	bpf_seq_write(ctx->meta->seq, &r, sizeof r);
	return 0;
}

static long walk_one(struct bpf_map *map, __u64 *key, struct tcp_sk *st, __u64 *gen)
{
	/* Read with bpf_probe_read_kernel (a raw_tp program): the socket may be closing. The
	 * key is copied: a preallocated map (before 6.1) may reuse a deleted entry at once. */
	__u64 addr = *key;
	const struct sock *sk = (const struct sock *)addr;
	struct tcp_rec r;
	read_rec(sk, &r);
	switch (known_check(sk, st->id, &st->closed)) {
	case KNOWN_GONE:
		bpf_map_delete_elem(map, &addr);
		return 0;
	case KNOWN_SKIP:
		return 0;
	}
	static const struct tcp_live zero;
	struct tcp_live *l = kpod_entry(&kpod_tlive, &r.cgid, &zero);
	if (!l) {
		KPOD_LOST(tcp, kpod_tlive);
		return 0;
	}
	if (l->gen != *gen) { /* the first socket of the cgroup in this walk */
		*l = zero;
		l->gen = *gen;
	}
	l->sent += r.sent - st->sent0;
	l->received += r.received - st->received0;
	l->retrans += r.retrans - st->retrans0;
	if (r.srtt_ns)
		kpod_hist_add(&l->rtt, r.srtt_ns);
	return 0;
}

/* Every socket kpod knows, in every network namespace at once, summed per cgroup into
 * kpod_tlive with the generation kpod passes (args[0]); returns how many entries it met.
 * Run by kpod (BPF_PROG_TEST_RUN), never attached. */
SEC("raw_tp")
int kpod_twalk_run(__u64 *ctx)
{
	__u64 gen = ctx[0];
	return bpf_for_each_map_elem(&kpod_tsocks, walk_one, &gen, 0); /* the sockets met */
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
	struct tcp_val *v = val(kpod_sock_cgid(sk));
	if (v)
		v->retransmits += segs;
	return 0;
}

static __always_inline int on_probe(struct sock *sk)
{
	__u64 ns = srtt_ns(sk);
	if (!ns)
		return 0;
	struct tcp_val *v = val(kpod_sock_cgid(sk));
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
