/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel types kpod's BPF programs use, and only those.
 *
 * Every struct is marked preserve_access_index, so field offsets are relocated against the
 * running kernel's BTF at load time (CO-RE): only names and types here must match the
 * kernel, not layouts. That keeps this header small and reviewable. Except for struct
 * pt_regs (kprobe arguments, at the end, per architecture) it is the same for amd64 and arm64:
 * tracepoint programs read no registers (syscall numbers come from the sys_enter argument).
 * Add a field here when a program needs it.
 * Checked against Linux 6.18 (bpftool btf dump file /sys/kernel/btf/vmlinux format c).
 */
#ifndef __KPOD_VMLINUX_H__
#define __KPOD_VMLINUX_H__
/* Tells bpf_tracing.h that pt_regs has the kernel's register names (di, si, ... on x86),
 * as the one at the end of this file does, not the user-space ones (rdi, ...). */
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
enum { false = 0, true = 1 };
typedef int pid_t;
typedef unsigned int uid_t;
typedef __u32 dev_t;
typedef __u64 sector_t;
typedef __u32 blk_opf_t;
typedef struct { int counter; } atomic_t;

/* BPF UAPI values the programs use (include/uapi/linux/bpf.h). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LRU_PERCPU_HASH = 10,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
enum { BPF_F_NO_PREALLOC = 1 };
enum { BPF_LOCAL_STORAGE_GET_F_CREATE = 1 };
/* Helpers a program tests for with bpf_core_enum_value_exists before calling them. */
enum bpf_func_id {
	BPF_FUNC_get_current_task_btf = 158,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct kernfs_node {
	u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
	int level;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct signal_struct {
	atomic_t live;
};

/* The kernel's own run-queue accounting of a task (CONFIG_SCHED_INFO): switches-in after a
 * wait and the total of those waits, in ns of the run queue's clock. */
struct sched_info {
	long unsigned int pcount;
	long long unsigned int run_delay;
};

struct task_struct {
	unsigned int __state;
	unsigned int flags;
	pid_t pid;
	pid_t tgid;
	struct css_set *cgroups;
	struct signal_struct *signal;
	struct task_struct *group_leader;
	u64 start_time; /* monotonic ns at fork */
	char comm[16];
	struct files_struct *files;
	struct sched_info sched_info;
};

/* -- file descriptors to sockets (l7 family) -- */

struct file;
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};
struct files_struct {
	struct fdtable *fdt;
};
typedef unsigned short umode_t;
struct inode {
	umode_t i_mode;
	long unsigned int i_ino;
};
struct file {
	struct inode *f_inode;
	void *private_data;
};
struct socket {
	struct sock *sk;
};

/* System call arguments in user memory (read with bpf_probe_read_user). */
struct iovec {
	void *iov_base;
	__u64 iov_len;
};
struct user_msghdr {
	void *msg_name;
	int msg_namelen;
	struct iovec *msg_iov;
	__u64 msg_iovlen;
	void *msg_control;
	__u64 msg_controllen;
	unsigned int msg_flags;
};
struct mmsghdr {
	struct user_msghdr msg_hdr;
	unsigned int msg_len;
};

struct linux_binprm;

struct block_device {
	dev_t bd_dev;
};

struct bvec_iter {
	sector_t bi_sector;
	unsigned int bi_size;
};

struct bio {
	struct block_device *bi_bdev;
	blk_opf_t bi_opf;
	struct bvec_iter bi_iter;
};

/* Records of classic (tracefs) tracepoints, for the last rung of the attach ladder. */
struct trace_entry {
	short unsigned int type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long int id;
	long unsigned int args[6];
};

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long int id;
	long int ret;
};

struct trace_event_raw_sched_process_template {
	struct trace_entry ent;
	pid_t pid;
};

struct trace_event_raw_sched_process_fork {
	struct trace_entry ent;
	pid_t parent_pid;
	pid_t child_pid;
};

struct trace_event_raw_sched_process_exec {
	struct trace_entry ent;
	pid_t pid;
	pid_t old_pid;
};

/* -- net types (tcp family) -- */

/* sk_buff_data_t is an offset from head on 64-bit kernels, the only ones kpod builds for. */
typedef unsigned int sk_buff_data_t;

struct sock;

struct sock_cgroup_data {
	struct cgroup *cgroup; /* the cgroup v2 of the task that created the socket */
};

/* An IPv6 address, read whole (16 bytes). */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
};

/* The kernel nests the addresses and ports in anonymous unions (skc_addrpair, skc_portpair);
 * CO-RE finds the fields by name through them. */
struct sock_common {
	__be32 skc_daddr;     /* IPv4 peer */
	__be32 skc_rcv_saddr; /* IPv4 local (bound) */
	__be16 skc_dport;     /* peer port, network order */
	__u16 skc_num;        /* local port, host order */
	unsigned int skc_hash; /* of addresses, ports and namespace (inet_ehashfn) */
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	short unsigned int skc_family;
	long unsigned int skc_flags; /* bits of enum sock_flags (sk->sk_flags) */
	volatile unsigned char skc_state;
	struct sock *skc_listener; /* request sockets (TCP_NEW_SYN_RECV): the listener */
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	u16 sk_type;
	u8 sk_kern_sock: 1; /* a kernel socket (e.g. a netns's TCP control socket) */
	struct sock_cgroup_data sk_cgrp_data;
};

enum sock_flags {
	SOCK_DEAD = 0,
	SOCK_DONE = 1, /* a FIN was received (relocated: bpf_core_enum_value) */
};

/* RFC 4898 counters the kernel keeps per socket (4.19+; bytes_retrans 5.5+). */
struct tcp_sock {
	u32 srtt_us; /* smoothed RTT << 3, in microseconds */
	u64 bytes_sent;     /* data in transmitted segments, retransmissions included */
	u64 bytes_retrans;  /* data in retransmitted segments */
	u64 bytes_received; /* sequence space received in order: data, and a FIN */
	u32 total_retrans;  /* segments retransmitted */
};

/* BPF iterator contexts. */
struct seq_file;
struct bpf_map;
struct bpf_iter_meta {
	struct seq_file *seq;
};
struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
};

struct sk_buff {
	struct sock *sk;
	unsigned int len;
	__be16 protocol;
	__u16 network_header;
	sk_buff_data_t end;
	unsigned char *head;
};

struct skb_shared_info {
	short unsigned int gso_segs;
};

/* tracefs records, only to ask (bpf_core_field_exists) which tracepoint prototype the kernel
 * has: err came with tcp_retransmit_skb's err argument (6.13), reason and rx_sk with the
 * kfree_skb arguments of the same names (5.17, 6.11). */
struct trace_event_raw_tcp_retransmit_skb {
	int err;
};

/* Values of enum skb_drop_reason are read from the kernel's BTF in userspace; these two are
 * fixed (include/net/dropreason-core.h). */
enum skb_drop_reason {
	SKB_NOT_DROPPED_YET = 0,
	SKB_CONSUMED = 1,
};

struct trace_event_raw_kfree_skb {
	enum skb_drop_reason reason;
	void *rx_sk;
};

/* -- block, mm and irq types (biolatency, cachestat, hardirqs, softirqs) -- */

typedef __u8 blk_status_t;

/* The whole disk a request is queued on: its dev_t is MKDEV(major, first_minor). */
struct gendisk {
	int major;
	int first_minor;
};

struct request_queue {
	struct gendisk *disk;
};

struct request {
	struct request_queue *q;
	unsigned int __data_len; /* bytes not completed yet */
	struct bio *bio;         /* the first bio of the request */
};

/*
 * Folios. Since 6.18 folio->flags is a memdesc_flags_t wrapping one unsigned long; before it
 * was the unsigned long itself. A large folio has PG_head set in those flags; its order is
 * the low byte of _flags_1 (6.6+) or the u8 _folio_order (5.16 - 6.5). The two flavours
 * below (CO-RE matches struct folio___x to the kernel's struct folio) describe the older
 * layouts, so one object reads the right one; bpf_core_field_exists picks at load time.
 */
typedef struct {
	long unsigned int f;
} memdesc_flags_t;

struct folio {
	memdesc_flags_t flags;
	long unsigned int _flags_1;
};

struct folio___ulong_flags {
	long unsigned int flags;
};

struct folio___order_u8 {
	unsigned char _folio_order;
};

enum pageflags {
	PG_head = 6, /* relocated: bpf_core_enum_value reads the kernel's value */
};

struct address_space;
struct buffer_head;
struct irqaction;

/*
 * Registers, per architecture, for kprobe programs (the PT_REGS_* macros of bpf_tracing.h):
 * the only arch-specific part of this header. bpf2go defines __TARGET_ARCH_<arch>.
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	long unsigned int r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	long unsigned int ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			u64 regs[31];
			u64 sp;
			u64 pc;
			u64 pstate;
		};
	};
	u64 orig_x0;
	s32 syscallno;
};
#else
struct pt_regs;
#endif

#pragma clang attribute pop

#endif /* __KPOD_VMLINUX_H__ */
