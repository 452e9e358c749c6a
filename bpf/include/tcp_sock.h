/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the families that read TCP sockets' own counters share (tcp, topology): which sockets
 * are connections, and how their counters and RTT are read, so that both report the same
 * bytes for the same socket.
 */
#ifndef __KPOD_TCP_SOCK_H__
#define __KPOD_TCP_SOCK_H__

#include "kpod.h"

#define IPPROTO_TCP 6

/* enum tcp_state (include/net/tcp_states.h): part of the kernel ABI (sock_diag reports it). */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define TCP_LISTEN 10

/* A full TCP socket over IPv4 or IPv6 (every hook here gets a full socket: request and
 * time-wait minisockets never reach them). */
static __always_inline bool is_tcp(const struct sock *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return false;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	return family == AF_INET || family == AF_INET6;
}

/* A connection, as the iterators report them: not a listener, not closed, not in a handshake. */
static __always_inline bool tcp_live(const struct sock *sk)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	return state != TCP_LISTEN && state != TCP_CLOSE && state != TCP_SYN_SENT && state != TCP_SYN_RECV;
}

/* The socket's byte counters. bytes_sent counts data in every transmitted segment,
 * retransmits included (sent: payload once); bytes_received counts the sequence space
 * received in order, which includes a FIN (one byte) once one arrived (SOCK_DONE). */
static __always_inline void tcp_counters(const struct sock *sk, __u64 *sent, __u64 *received)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	*sent = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	*received = BPF_CORE_READ(tp, bytes_received);
	if (*received && (BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))))
		(*received)--;
}

/* srtt_us holds 8 times the smoothed RTT in us (tcp_rtt_estimator); 0: no sample yet. */
static __always_inline __u64 srtt_ns(const struct sock *sk)
{
	return ((__u64)BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) * 1000) >> 3;
}

#endif /* __KPOD_TCP_SOCK_H__ */
