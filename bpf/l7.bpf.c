// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "l7": requests and responses of application protocols on pods' sockets, detected
 * from the bytes, never from port numbers, and paired per connection into RED metrics.
 *
 * The enter program (kpod_l7en) keeps the arguments of the read/write family of system calls
 * (read, write, readv, writev, recvfrom, sendto, recvmsg, sendmsg; recvmmsg and sendmmsg on
 * UDP sockets) in task storage; the exit
 * program (kpod_l7ex) finds the socket behind the file descriptor and copies the first
 * L7_BUF bytes the call moved into a per-CPU scratch area, then tail-calls the parser of the
 * connection's protocol, or the detector (kpod_l7dt) for a connection not seen yet. A
 * connection whose first bytes match no protocol is marked ignored and costs one map lookup
 * from then on. Both programs are attached to the per-call trace events of these calls
 * (syscalls:sys_enter_<name>), so other system calls run no program. Nothing of the payload
 * leaves the kernel: the parsers record protocol, role, method id, status class and latency.
 */
#include "l7.h"
#include "l7_http2.h"
#include "l7_http.h"
#include "l7_redis.h"
#include "l7_dns.h"
#include "l7_mysql.h"
#include "l7_pg.h"
#include "l7_kafka.h"
#include "l7_mongo.h"
#include <bpf/bpf_endian.h>

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2

/* The numbers of the calls on this architecture, set by the loader (internal/l7). */
volatile const __u32 nr_read, nr_write, nr_readv, nr_writev, nr_recvfrom, nr_sendto, nr_recvmsg, nr_sendmsg,
	nr_recvmmsg, nr_sendmmsg;

enum { ARG_BUF = 1, ARG_IOV = 2, ARG_MSG = 3, ARG_MMSG = 4 };

struct l7_args {
	__u64 ts;  /* when the call began */
	__u64 ptr; /* the buffer, the iovec array or the msghdr */
	__u64 len; /* the buffer's size, the iovec count */
	__u64 addr; /* sendto, recvfrom: the peer's sockaddr (or 0); sendmsg, recvmsg: msg_name */
	__u32 fd;
	__u8 kind;
	__u8 out;
	__u8 valid;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct l7_args);
} kpod_l7_args SEC(".maps");

/* The parsers, by protocol id; index L7_UNKNOWN is the detector. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, L7_PROTOS);
	__type(key, __u32);
	__type(value, __u32);
} kpod_l7_tail SEC(".maps");

/* The records of the per-call events (kernel/trace/trace.h). */
struct syscall_trace_enter___l7 {
	struct trace_entry ent;
	int nr;
	long unsigned int args[6];
} __attribute__((preserve_access_index));

struct syscall_trace_exit___l7 {
	struct trace_entry ent;
	int nr;
	long ret;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter")
int kpod_l7en_t(struct syscall_trace_enter___l7 *ctx)
{
	__u32 nr = BPF_CORE_READ(ctx, nr);
	struct l7_args a = {.fd = BPF_CORE_READ(ctx, args[0]), .ptr = BPF_CORE_READ(ctx, args[1]), .valid = 1};
	if (nr == nr_read || nr == nr_recvfrom) {
		a.kind = ARG_BUF;
		if (nr == nr_recvfrom)
			a.addr = BPF_CORE_READ(ctx, args[4]);
	} else if (nr == nr_write || nr == nr_sendto) {
		a.kind = ARG_BUF;
		a.out = 1;
		if (nr == nr_sendto)
			a.addr = BPF_CORE_READ(ctx, args[4]);
	} else if (nr == nr_readv) {
		a.kind = ARG_IOV;
	} else if (nr == nr_writev) {
		a.kind = ARG_IOV;
		a.out = 1;
	} else if (nr == nr_recvmsg) {
		a.kind = ARG_MSG;
	} else if (nr == nr_sendmsg) {
		a.kind = ARG_MSG;
		a.out = 1;
	} else if (nr == nr_recvmmsg) {
		a.kind = ARG_MMSG;
	} else if (nr == nr_sendmmsg) {
		a.kind = ARG_MMSG;
		a.out = 1;
	} else {
		return 0;
	}
	a.len = BPF_CORE_READ(ctx, args[2]);
	/* A receive with MSG_PEEK leaves the data in the socket, to be received again (curl peeks
	 * one byte to tell whether a connection it reuses is alive): the data is not taken then. */
	if ((nr == nr_recvfrom || nr == nr_recvmmsg) && (BPF_CORE_READ(ctx, args[3]) & MSG_PEEK))
		a.valid = 0;
	else if (nr == nr_recvmsg && (BPF_CORE_READ(ctx, args[2]) & MSG_PEEK))
		a.valid = 0;
	struct l7_args *st = bpf_task_storage_get(&kpod_l7_args, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		KPOD_LOST(l7, kpod_l7_args);
		return 0;
	}
	a.ts = bpf_ktime_get_ns();
	*st = a;
	return 0;
}

/* The socket (TCP or UDP, IPv4 or IPv6) behind file descriptor fd of the current task, and
 * its inode number; 0 if it is not one. */
static __always_inline __u64 l7_socket(__u32 fd, bool *udp, struct sock **skp)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	if (bpf_probe_read_kernel(&f, sizeof f, &fds[fd]) || !f)
		return 0;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if ((BPF_CORE_READ(ino, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *so = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if ((family != AF_INET && family != AF_INET6) || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return 0;
	*udp = proto == IPPROTO_UDP;
	*skp = sk;
	return BPF_CORE_READ(ino, i_ino);
}

/* The call's peer and ports, for the topology's edges: the connected socket's peer, or the
 * address a sendto/sendmsg named or a recvfrom/recvmsg was given (unconnected UDP). */
static __always_inline void l7_addrs(struct l7_ctx *c, struct sock *sk, __u64 uaddr)
{
	__builtin_memset(c->raddr, 0, sizeof c->raddr);
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (uaddr) {
		/* struct sockaddr_in / sockaddr_in6 (UAPI): family, port, then the address at 4
		 * (IPv4) or 8 (IPv6). */
		__u8 sa[24];
		if (!bpf_probe_read_user(sa, sizeof sa, (void *)uaddr)) {
			__u16 fam = sa[0] | sa[1] << 8;
			if (fam == AF_INET) {
				c->rport = sa[2] << 8 | sa[3];
				c->raddr[10] = c->raddr[11] = 0xff;
				__builtin_memcpy(&c->raddr[12], &sa[4], 4);
				return;
			}
			if (fam == AF_INET6) {
				c->rport = sa[2] << 8 | sa[3];
				__builtin_memcpy(c->raddr, &sa[8], 16);
				return;
			}
		}
	}
	kpod_sk_addr(c->raddr, sk, false);
}

/* Points the call's window at its data (the buffer, or the iovecs) and fills it from the
 * start; the window stays empty if the data cannot be read. */
static __always_inline void l7_data(struct l7_ctx *c, struct l7_args *a)
{
	c->ptr = a->ptr;
	c->niov = 0;
	c->base = 0;
	c->len = 0;
	c->mmsg = 0;
	c->nmsg = 0;
	if (a->kind == ARG_MMSG) { /* datagrams: the first one now, the others by the parser */
		c->mmsg = a->ptr;
		c->nmsg = c->ret;
		l7_mmsg_load(c, 0);
		return;
	}
	if (a->kind == ARG_MSG) {
		struct user_msghdr m;
		if (bpf_probe_read_user(&m, sizeof m, (void *)a->ptr))
			return;
		c->ptr = (__u64)m.msg_iov;
		c->niov = m.msg_iovlen;
		a->addr = (__u64)m.msg_name;
	} else if (a->kind == ARG_IOV) {
		c->niov = a->len;
	}
	if (a->kind != ARG_BUF && c->niov == 0)
		return;
	l7_fill(c, 0);
}

SEC("tracepoint/syscalls/sys_exit")
int kpod_l7ex_t(struct syscall_trace_exit___l7 *ctx)
{
	struct l7_args *st = bpf_task_storage_get(&kpod_l7_args, bpf_get_current_task_btf(), 0, 0);
	if (!st || !st->valid)
		return 0;
	struct l7_args a = *st;
	st->valid = 0;
	long ret = BPF_CORE_READ(ctx, ret);
	if (ret <= 0)
		return 0;
	bool udp = false;
	struct sock *sk = 0;
	__u64 ino = l7_socket(a.fd, &udp, &sk);
	if (!ino || (a.kind == ARG_MMSG && !udp)) /* several messages of a stream: not parsed */
		return 0;
	struct l7_conn *conn = bpf_map_lookup_elem(&kpod_l7_conn, &ino);
	if (conn && conn->proto == L7_IGNORE)
		return 0;
	if (!conn) {
		static const struct l7_conn zero;
		if (bpf_map_update_elem(&kpod_l7_conn, &ino, &zero, BPF_NOEXIST) && !bpf_map_lookup_elem(&kpod_l7_conn, &ino)) {
			KPOD_LOST(l7, kpod_l7_conn);
			return 0;
		}
		conn = bpf_map_lookup_elem(&kpod_l7_conn, &ino);
		if (!conn)
			return 0;
	}
	struct l7_ctx *c = l7_ctx();
	if (!c)
		return 0;
	c->ino = ino;
	c->cgid = bpf_get_current_cgroup_id();
	c->ts = bpf_ktime_get_ns();
	c->start = a.ts;
	c->ret = ret;
	c->out = a.out;
	c->udp = udp;
	l7_data(c, &a);
	c->sk = (__u64)sk;
	if (l7_edges && sk)
		l7_addrs(c, sk, udp ? a.addr : 0); /* TCP leaves a sockaddr argument unwritten */
	bpf_tail_call(ctx, &kpod_l7_tail, conn->proto);
	return 0;
}

/* The connection of the call in the scratch area. */
static __always_inline struct l7_conn *l7_conn(struct l7_ctx *c)
{
	return bpf_map_lookup_elem(&kpod_l7_conn, &c->ino);
}

/* The detector: the protocol from the first bytes of a connection, and which end this is.
 * A protocol's l7_<proto>_detect looks at the start of the data and says whether it is a
 * request of the protocol or a response (*request), or that it is too short to tell: the
 * connection then stays undetected until its next call. */
SEC("tracepoint/l7")
int kpod_l7dt(void *ctx)
{
	struct l7_ctx *c = l7_ctx();
	if (!c)
		return 0;
	struct l7_conn *conn = l7_conn(c);
	if (!conn)
		return 0;
	struct l7_dir *d = &conn->dir[c->out & 1];
	__u8 proto = L7_IGNORE;
	bool request = false, more = false;
#define L7_TRY(id, detect)                                      \
	if (proto == L7_IGNORE) {                               \
		int r = detect(c, d, &request);                 \
		if (r == L7_YES)                                \
			proto = id;                             \
		else if (r == L7_MORE)                          \
			more = true;                            \
	}
	if (c->udp) {
		L7_TRY(L7_DNS, l7_dns_detect)
	} else {
		L7_TRY(L7_HTTP2, l7_h2_detect) /* before HTTP/1.x: "PRI * HTTP/2.0" is a request line too */
		L7_TRY(L7_HTTP, l7_http_detect)
		L7_TRY(L7_REDIS, l7_redis_detect)
		L7_TRY(L7_MYSQL, l7_mysql_detect)
		L7_TRY(L7_POSTGRESQL, l7_pg_detect)
		L7_TRY(L7_MONGODB, l7_mongo_detect)
		L7_TRY(L7_KAFKA, l7_kafka_detect)
	}
	if (proto == L7_IGNORE && more)
		return 0;
	conn->proto = proto;
	/* a client sends requests and receives responses */
	conn->role = proto == L7_IGNORE ? 0 : (c->out == 1) == request ? L7_CLIENT : L7_SERVER;
	if (proto != L7_IGNORE)
		bpf_tail_call(ctx, &kpod_l7_tail, proto);
	return 0;
}

/* A parser returns 0, or the protocol whose parser takes the call over (a connection that
 * switched protocols: HTTP/1.1 upgraded to HTTP/2). */
#define L7_PARSER(name, fn)                                     \
	SEC("tracepoint/l7")                                    \
	int name(void *ctx)                                     \
	{                                                       \
		struct l7_ctx *c = l7_ctx();                    \
		if (!c)                                         \
			return 0;                               \
		struct l7_conn *conn = l7_conn(c);              \
		if (!conn)                                      \
			return 0;                               \
		int next = fn(c, conn);                         \
		if (next > 0)                                   \
			bpf_tail_call(ctx, &kpod_l7_tail, next); \
		return 0;                                       \
	}

L7_PARSER(kpod_l7http, l7_http)
L7_PARSER(kpod_l7h2, l7_h2)
L7_PARSER(kpod_l7redis, l7_redis)
L7_PARSER(kpod_l7dns, l7_dns)
L7_PARSER(kpod_l7mysql, l7_mysql)
L7_PARSER(kpod_l7pg, l7_pg)
L7_PARSER(kpod_l7kafka, l7_kafka)
L7_PARSER(kpod_l7mongo, l7_mongo)
