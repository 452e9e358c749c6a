// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "tcp": TCP bytes, connections, retransmitted segments and smoothed RTT per cgroup.
 *
 * Who gets charged:
 *   - bytes: sock_send_length / sock_recv_length fire in the sending or receiving task's own
 *     system call, so current's cgroup is the right owner;
 *   - connections, retransmits, RTT: inet_sock_set_state, tcp_retransmit_skb and tcp_probe
 *     mostly fire in softirq (an incoming SYN-ACK, ACK or timer), where current is whatever
 *     task was interrupted. They are charged to the socket's cgroup (sk_cgrp_data: the cgroup
 *     of the task that created the socket; an accepted socket inherits the listener's).
 * Drops (kfree_skb) are the "tcpdrop" family, a separate object (bpf/tcpdrop.bpf.c).
 */
#include "kpod.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

/* enum tcp_state (include/net/tcp_states.h): part of the kernel ABI (sock_diag reports it). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3

struct tcp_val {
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 conns_active;  /* SYN_SENT -> ESTABLISHED: connect() completed */
	__u64 conns_passive; /* SYN_RECV -> ESTABLISHED: a connection accepted by a listener */
	__u64 retransmits;   /* segments (not skbs) sent again, like the kernel's RetransSegs */
	struct kpod_hist rtt; /* smoothed RTT, one sample per segment received when established */
};

struct tcp_errs {
	__u64 kpod_tcp;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct tcp_val);
} kpod_tcp SEC(".maps");

KPOD_ERRORS(tcp, struct tcp_errs);

static __always_inline struct tcp_val *val(__u64 cg)
{
	static const struct tcp_val zero;
	struct tcp_val *v = kpod_entry(&kpod_tcp, &cg, &zero);
	if (!v)
		KPOD_LOST(tcp, kpod_tcp);
	return v;
}

/* A full TCP socket over IPv4 or IPv6 (every hook here gets a full socket: request and
 * time-wait minisockets never reach them). */
static __always_inline bool is_tcp(const struct sock *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

static __always_inline __u64 sk_cgid(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

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
	struct tcp_val *v = val(sk_cgid(sk));
	if (!v)
		return 0;
	if (oldstate == TCP_SYN_SENT)
		v->conns_active++;
	else
		v->conns_passive++;
	return 0;
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
	/* srtt_us holds 8 times the smoothed RTT in us (tcp_rtt_estimator): ns = srtt_us * 1000 >> 3.
	 * 0 means no RTT sample yet. */
	__u64 srtt8 = BPF_CORE_READ((struct tcp_sock *)sk, srtt_us);
	if (!srtt8)
		return 0;
	struct tcp_val *v = val(sk_cgid(sk));
	if (v)
		kpod_hist_add(&v->rtt, (srtt8 * 1000) >> 3);
	return 0;
}

KPOD_TP(kpod_tsend, "sock_send_length", on_send(sk, ret), struct sock *sk, int ret, int flags)
KPOD_TP(kpod_trecv, "sock_recv_length", on_recv(sk, ret, flags), struct sock *sk, int ret, int flags)
KPOD_TP(kpod_tstate, "inet_sock_set_state", on_state(sk, oldstate, newstate),
	const struct sock *sk, const int oldstate, const int newstate)
KPOD_TP(kpod_tretx, "tcp_retransmit_skb", on_retransmit(ctx, sk, skb),
	const struct sock *sk, const struct sk_buff *skb)
KPOD_TP(kpod_trtt, "tcp_probe", on_probe(sk), struct sock *sk, const struct sk_buff *skb)
