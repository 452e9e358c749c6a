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

/* The connection an iter/tcp program is called for, NULL if it is none (request and
 * time-wait minisockets, listeners, handshakes, closed sockets, the end-of-walk call). */
static __always_inline struct sock *iter_conn(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return NULL;
	struct sock *sk = (struct sock *)bpf_skc_to_tcp_sock(skc);
	if (!sk || !tcp_live(sk) || !is_tcp(sk))
		return NULL;
	return sk;
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

/* ---- Tables of known sockets (tcp, topology) ----
 *
 * A family keeps the connections it knows in a hash keyed by the socket's address: a program
 * on inet_sock_set_state adds a socket when it reaches ESTABLISHED and removes it at CLOSE
 * (the tracepoint fires before tcp_set_state stores the state, long before the socket is
 * freed), the TCP iterator adds older sockets. A walk (bpf_for_each_map_elem in a raw_tp
 * program that kpod runs with BPF_PROG_TEST_RUN) reads every socket of the table, in every
 * network namespace at once, through bpf_probe_read_kernel. */

/* The most sockets a table holds (more: the family's error map counts each one left out).
 * The walk visits every bucket of the map, about 3 ns each on this project's host, and before
 * 6.1 the kernel allocates every entry at load (112 bytes here): the size is a cost per
 * collection and in memory. */
#define KPOD_KNOWN_SOCKETS (1 << 16)

/* Who a socket is: its hash (of its addresses, ports and namespace) and ports, set before it
 * is established and kept until it is freed; never 0 for a connection. */
static __always_inline __u64 sock_id(const struct sock *sk)
{
	return (__u64)BPF_CORE_READ(sk, __sk_common.skc_hash) << 32 |
	       (__u64)BPF_CORE_READ(sk, __sk_common.skc_dport) << 16 | BPF_CORE_READ(sk, __sk_common.skc_num);
}

enum { KNOWN_READ, KNOWN_SKIP, KNOWN_GONE };

/* What a walk does with a known socket whose counters it has just read (id and closed: its
 * entry's). KNOWN_GONE: the address no longer holds that socket (the memory was reused), or
 * it closed without its CLOSE tracepoint finding the entry (an iterator added it as it
 * closed): delete the entry. KNOWN_SKIP: not a connection now, or marked closed (its counters
 * went to the family's map at close). KNOWN_READ: they count. The mark is read last, with an
 * atomic operation that orders it after the counters: unmarked, the socket had not closed
 * when they were read, and the family's map, read before the walk, does not have them. */
static __always_inline int known_check(const struct sock *sk, __u64 id, __u64 *closed)
{
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (sock_id(sk) != id || (state == TCP_CLOSE && !*closed))
		return KNOWN_GONE;
	if (!tcp_live(sk) || __sync_fetch_and_add(closed, 0))
		return KNOWN_SKIP;
	return KNOWN_READ;
}

/* A CLOSE from a state that was never a connection (a handshake, a listener): an entry at
 * this address is a freed socket's, left by an iterator that met it as it closed. */
static __always_inline bool never_established(int oldstate)
{
	return oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV || oldstate == TCP_LISTEN;
}

#endif /* __KPOD_TCP_SOCK_H__ */
