/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Helpers every kpod BPF family shares: cgroup ids, log2 latency slots, per-cgroup map
 * entries, counting failed map updates, and the tp_btf/raw_tp program pair of the attach
 * ladder. Conventions the Go loader (internal/bpfload) relies on:
 *   - program names are kpod_<x>_b (tp_btf), kpod_<x>_r (raw_tp), kpod_<x>_t (tracepoint);
 *   - every data map's key starts with the u64 cgroup id;
 *   - a family's error map kpod_<tag>_err is an ARRAY of one struct whose u64 fields are
 *     named after the maps whose failed updates they count.
 */
#ifndef __KPOD_H__
#define __KPOD_H__

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define KPOD_MAX_CGROUPS 10240
/* The key of what no pod owns (idle task, kernel threads, packets without a socket); never a
 * cgroup directory. NodeID in internal/bpfload. */
#define KPOD_NODE_CGID 0
#define TASK_RUNNING 0

/* Latency histograms: slot 0 holds values <= 1us, slot k (1..KPOD_SLOTS-2) values in
 * (2^(k-1), 2^k] us, the last slot everything above 2^(KPOD_SLOTS-2) us (about 33.5 s).
 * The Go side (internal/hist) exports the slot upper bounds 2^k us as bucket bounds. */
#define KPOD_SLOTS 27

struct kpod_hist {
	__u64 sum_ns;
	__u64 slots[KPOD_SLOTS];
};

static __always_inline __u32 kpod_log2(__u64 v)
{
	__u32 r = 0, shift;
	shift = (v > 0xffffffffULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xffff) << 4; v >>= shift; r |= shift;
	shift = (v > 0xff) << 3; v >>= shift; r |= shift;
	shift = (v > 0xf) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 kpod_slot(__u64 ns)
{
	if (ns <= 1000)
		return 0;
	__u32 s = 1 + kpod_log2((ns - 1) / 1000);
	return s < KPOD_SLOTS ? s : KPOD_SLOTS - 1;
}

static __always_inline void kpod_hist_add(struct kpod_hist *h, __u64 ns)
{
	__u32 s = kpod_slot(ns);
	if (s >= KPOD_SLOTS) /* for the verifier */
		return;
	h->sum_ns += ns;
	h->slots[s]++;
}

/* The cgroup v2 id of a task: the inode of its directory in the unified hierarchy, the same
 * value bpf_get_current_cgroup_id() returns for current. btf: t is a BTF pointer (a tp_btf
 * argument, bpf_get_current_task_btf()), read with plain loads; otherwise with BPF_CORE_READ,
 * four helper calls (each ~100 ns on the development VM, more than the rest of a program). */
static __always_inline __u64 kpod_task_cgid(struct task_struct *t, bool btf)
{
	if (btf)
		return t->cgroups->dfl_cgrp->kn->id;
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

/* The cgroup v2 id of the task that created a socket, from sk->sk_cgrp_data. Since 5.15 that
 * holds the cgroup pointer. Before, it is a union of the pointer with cgroup v1 net_prio and
 * net_cls data (val): with either of its two low bits set, or zero, the kernel's own
 * sock_cgroup_ptr() answers the root cgroup, which no pod owns (KPOD_NODE_CGID). */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));
struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
} __attribute__((preserve_access_index));

static __always_inline __u64 kpod_sock_cgid(const struct sock *sk)
{
	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	__u64 val = BPF_CORE_READ((const struct sock___old *)sk, sk_cgrp_data.val);
	if (!val || (val & 3))
		return KPOD_NODE_CGID;
	return BPF_CORE_READ((struct cgroup *)val, kn, id);
}

/* block_bio_queue's bio: its second argument before 5.11 (the first was the request_queue),
 * its only one since. The tracepoint's BTF type says which, at load time; its parameters are
 * declared incomplete, so that the match compares names only, not the fields vmlinux.h
 * gives those structs. */
struct request_queue___fwd;
struct bio___fwd;
typedef void (*btf_trace_block_bio_queue___q)(void *, struct request_queue___fwd *, struct bio___fwd *);

static __always_inline struct bio *kpod_queued_bio(unsigned long long *ctx)
{
	struct bio *bio = (struct bio *)ctx[0];
	/* Not ctx[1]: clang turns the choice into one load at ctx + 0 or 8, and the verifier
	 * refuses to dereference a context pointer it has to add to. */
	if (bpf_core_type_matches(btf_trace_block_bio_queue___q))
		bpf_probe_read_kernel(&bio, sizeof(bio), &ctx[1]);
	return bio;
}

/* kpod_entry returns the map value for key, creating it from zero (or another first value) on
 * first use. NULL means the entry could not be made (the map full, no memory): the caller
 * counts that as a lost update. The update's error is not compared with -EEXIST (another CPU
 * made the entry between the lookup and the update): before Linux 6.5 the verifier calls the
 * map's update directly and its int result reaches the program zero-extended (-EEXIST as
 * 0xffffffef), so the comparison failed and that event was lost (seen on 6.1 in
 * TestRealSyscall; TestRealEntryRace). The second lookup decides instead. */
static __always_inline void *kpod_entry(void *map, const void *key, const void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);
	if (v)
		return v;
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Declares the error map of a family: KPOD_ERRORS(cpu, struct cpu_errs). */
#define KPOD_ERRORS(tag, vtype)                                 \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_ARRAY);               \
		__uint(max_entries, 1);                         \
		__type(key, __u32);                             \
		__type(value, vtype);                           \
	} kpod_##tag##_err SEC(".maps")

/* Counts one failed update of the map named field. */
#define KPOD_LOST(tag, field)                                                   \
	do {                                                                    \
		__u32 _z = 0;                                                   \
		typeof(kpod_##tag##_err.value) _e =                             \
			bpf_map_lookup_elem(&kpod_##tag##_err, &_z);            \
		if (_e)                                                         \
			__sync_fetch_and_add(&_e->field, 1);                    \
	} while (0)

/* The maps of a family that counts clients' connections to Services one by one (l7,
 * topology; see internal/topology/backends.go): kpod_<tag>_svc, the Service addresses
 * (IPv4 as ::ffff:a.b.c.d) that user space writes, and kpod_<tag>_gen, the generation (0 or 1)
 * new per-connection entries are written in, which user space flips at each collection. */
#define KPOD_SERVICES 16384
#define KPOD_SVC_MAPS(tag)                                      \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_HASH);                \
		__uint(max_entries, KPOD_SERVICES);             \
		__type(key, __u8[16]);                          \
		__type(value, __u8);                            \
	} kpod_##tag##_svc SEC(".maps");                        \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_ARRAY);               \
		__uint(max_entries, 1);                         \
		__type(key, __u32);                             \
		__type(value, __u32);                           \
	} kpod_##tag##_gen SEC(".maps")

#define AF_INET 2
#define AF_INET6 10

/* A socket's address, its peer's or its own (local), into out (IPv4 as ::ffff:a.b.c.d); an
 * IPv4 address that is not set (0) leaves out as it is. */
static __always_inline void kpod_sk_addr(__u8 *out, const struct sock *sk, bool local)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		__be32 a = local ? BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr) : BPF_CORE_READ(sk, __sk_common.skc_daddr);
		if (a) {
			out[10] = out[11] = 0xff;
			__builtin_memcpy(&out[12], &a, 4);
		}
	} else if (local) {
		BPF_CORE_READ_INTO((struct in6_addr *)out, sk, __sk_common.skc_v6_rcv_saddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)out, sk, __sk_common.skc_v6_daddr);
	}
}

/* The current generation of a KPOD_SVC_MAPS family. */
static __always_inline __u8 kpod_gen(void *gen_map)
{
	__u32 z = 0;
	__u32 *g = bpf_map_lookup_elem(gen_map, &z);
	return g ? *g & 1 : 0;
}

/* A tp_btf program and a raw_tp program with the same body (the first two rungs of the
 * attach ladder; the loader keeps whichever the kernel accepts first). Bodies read kernel
 * memory with BPF_CORE_READ, which is valid for both, or, where the body is given kpod_btf
 * (true in the tp_btf program), with plain loads through the tp_btf arguments. */
#define KPOD_TP(prog, tp, call, args...)                                                        \
	SEC("tp_btf/" tp) int BPF_PROG(prog##_b, args)                                          \
	{                                                                                       \
		const bool kpod_btf __attribute__((unused)) = true;                             \
		return call;                                                                    \
	}                                                                                       \
	SEC("raw_tp/" tp) int BPF_PROG(prog##_r, args)                                          \
	{                                                                                       \
		const bool kpod_btf __attribute__((unused)) = false;                            \
		return call;                                                                    \
	}

/* A tp_btf program only: for bodies that pass tracepoint arguments to helpers that want
 * trusted BTF pointers (task storage of a task that is not current), which raw_tp arguments
 * are not. The Go hook is BTFOnly. */
#define KPOD_TP_BTF(prog, tp, call, args...)                                                    \
	SEC("tp_btf/" tp) int BPF_PROG(prog##_b, args)                                          \
	{                                                                                       \
		const bool kpod_btf __attribute__((unused)) = true;                             \
		return call;                                                                    \
	}

/* An fentry program and a kprobe program with the same body, for kernel functions that no
 * tracepoint covers (fentry first; kprobe where the kernel refuses fentry). */
#define KPOD_FN(prog, fn, call, args...)                                        \
	SEC("fentry/" fn) int BPF_PROG(prog##_f, args) { return call; }         \
	SEC("kprobe/" fn) int BPF_KPROBE(prog##_k, args) { return call; }

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif /* __KPOD_H__ */
