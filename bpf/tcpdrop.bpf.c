// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "tcpdrop": TCP packets the kernel dropped, per cgroup and drop reason, from the
 * kfree_skb tracepoint (it fires for dropped skbs only; freed-after-use skbs go to
 * consume_skb).
 *
 * Who gets charged: the socket's cgroup (sk_cgrp_data), never current (drops happen in
 * softirq). The socket is the tracepoint's rx_sk argument (6.11+: set where the receive path
 * had looked the socket up) or else skb->sk (the sender on transmit; on receive, the socket
 * early demux attached to a segment of an established connection before the netfilter INPUT
 * hook). A request socket is charged to its listener's cgroup.
 * TCP drops no pod's socket owns go to a node-level bucket keyed by KPOD_NODE_CGID: packets
 * without a socket (when the IP header says TCP; IPv6 extension headers are not followed),
 * of a TIME_WAIT minisocket, or of a kernel socket (the namespace's control socket sends
 * RSTs and ACKs for connections no full socket holds; recent kernels attach the minisocket
 * those answer for instead, when there is one).
 * Drops of other protocols are not counted.
 */
#include "kpod.h"
#include <bpf/bpf_endian.h>

#define IPPROTO_TCP 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_TIME_WAIT 6
#define TCP_NEW_SYN_RECV 12
#define KPOD_REASON_UNKNOWN 0xffffffff /* the kernel gives no reason (before 5.17): "unknown" */

struct drop_key {
	__u64 cgid; /* 0: TCP drops no pod's socket owns */
	__u32 reason; /* enum skb_drop_reason */
	__u32 pad;
};

struct tdrop_errs {
	__u64 kpod_tdrop;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS * 4);
	__type(key, struct drop_key);
	__type(value, __u64); /* dropped skbs */
} kpod_tdrop SEC(".maps");

KPOD_ERRORS(tdrop, struct tdrop_errs);

static __always_inline bool inet(const struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

/* The IP protocol of a packet without a socket: the byte at offset 9 of an IPv4 header, 6 of
 * an IPv6 header (wire formats). */
static __always_inline bool skb_is_tcp(const struct sk_buff *skb)
{
	__u16 proto = BPF_CORE_READ(skb, protocol);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (nh == 0xffff) /* not set yet */
		return false;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u8 ipproto = 0;
	if (proto == bpf_htons(ETH_P_IP))
		bpf_probe_read_kernel(&ipproto, 1, head + nh + 9);
	else if (proto == bpf_htons(ETH_P_IPV6))
		bpf_probe_read_kernel(&ipproto, 1, head + nh + 6);
	return ipproto == IPPROTO_TCP;
}

static __always_inline int on_drop(__u64 *ctx, struct sk_buff *skb)
{
	__u32 reason = KPOD_REASON_UNKNOWN;
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, reason))
		reason = ctx[2];
	struct sock *sk = 0;
	if (bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		sk = (struct sock *)ctx[3];
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);

	struct drop_key key = {.cgid = KPOD_NODE_CGID, .reason = reason};
	if (sk) {
		if (!inet(sk))
			return 0;
		__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
		if (state == TCP_NEW_SYN_RECV) {
			sk = BPF_CORE_READ(sk, __sk_common.skc_listener);
			if (!sk)
				return 0;
		}
		if (state != TCP_TIME_WAIT) { /* a TIME_WAIT minisocket has no cgroup: node */
			if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
				return 0;
			/* A kernel socket, such as the namespace's TCP control socket that sends
			 * RSTs and ACKs for no socket, has the cgroup of whoever created the
			 * namespace, not of a pod that owns the traffic: node. */
			if (!BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock))
				key.cgid = kpod_sock_cgid(sk);
		}
	} else if (!skb_is_tcp(skb)) {
		return 0;
	}

	static const __u64 zero;
	__u64 *n = kpod_entry(&kpod_tdrop, &key, &zero);
	if (!n) {
		KPOD_LOST(tdrop, kpod_tdrop);
		return 0;
	}
	(*n)++;
	return 0;
}

KPOD_TP(kpod_kfree, "kfree_skb", on_drop(ctx, skb), struct sk_buff *skb)
