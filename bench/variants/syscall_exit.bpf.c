// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * A variant of bpf/syscall.bpf.c measured by `make bench` (bench/variants.go), compiled at
 * bench time: calls and errors counted at exit only, latency sampled.
 *
 *   - kpod_xex_t (syscalls:sys_exit_<name>, per call): counts every call and its errors from
 *     the exit event alone (the call number and the return value are in its record). If the
 *     task's call was sampled at entry, it also adds its latency.
 *   - kpod_xen_t (syscalls:sys_enter_<name>, per call): stamps one call in 2^kpod_sample_shift,
 *     chosen at random (bpf_get_prandom_u32), independently of the call's latency; the others
 *     return at once. Without it attached, the exit program counts calls and errors only.
 *   - kpod_xall_b (tp_btf raw_syscalls/sys_exit, every call of the node): the same counting on
 *     the every-call hook, for comparison, filtered by kpod_sys_track like the committed
 *     every-call path.
 *
 * Maps, keys and values are those of bpf/syscall.bpf.c.
 */
#include "kpod.h"

#define KPOD_MAX_SYSCALLS 1024

struct sys_key {
	__u64 cgid;
	__u32 nr;
	__u32 pad;
};

struct sys_val {
	__u64 count;
	__u64 errors;
	struct kpod_hist lat;
};

struct sys_start {
	__u64 ts;
	__u64 nr;
};

struct sys_errs {
	__u64 kpod_sys;
	__u64 kpod_sys_start;
};

const volatile __u32 kpod_sample_shift = 4; /* 1 call in 16 */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KPOD_MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u8);
} kpod_sys_track SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sys_start);
} kpod_sys_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KPOD_MAX_CGROUPS * 4);
	__type(key, struct sys_key);
	__type(value, struct sys_val);
} kpod_sys SEC(".maps");

KPOD_ERRORS(sys, struct sys_errs);

static __always_inline int count_exit(__u32 nr, long ret)
{
	static const struct sys_val zero;
	struct sys_key key = {.cgid = bpf_get_current_cgroup_id(), .nr = nr};
	struct sys_val *v = kpod_entry(&kpod_sys, &key, &zero);
	if (!v) {
		KPOD_LOST(sys, kpod_sys);
		return 0;
	}
	v->count++;
	if (ret < 0 && ret >= -4095)
		v->errors++;
	struct sys_start *st = bpf_task_storage_get(&kpod_sys_start, bpf_get_current_task_btf(), 0, 0);
	if (st && st->ts) {
		if (st->nr == nr)
			kpod_hist_add(&v->lat, bpf_ktime_get_ns() - st->ts);
		st->ts = 0;
	}
	return 0;
}

struct syscall_trace_enter {
	struct trace_entry ent;
	int nr;
} __attribute__((preserve_access_index));

struct syscall_trace_exit {
	struct trace_entry ent;
	int nr;
	long ret;
} __attribute__((preserve_access_index));

SEC("tracepoint/syscalls/sys_enter")
int kpod_xen_t(struct syscall_trace_enter *ctx)
{
	if (bpf_get_prandom_u32() & ((1u << kpod_sample_shift) - 1))
		return 0;
	struct sys_start *st = bpf_task_storage_get(&kpod_sys_start, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		KPOD_LOST(sys, kpod_sys_start);
		return 0;
	}
	st->nr = BPF_CORE_READ(ctx, nr);
	st->ts = bpf_ktime_get_ns();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit")
int kpod_xex_t(struct syscall_trace_exit *ctx)
{
	int nr = BPF_CORE_READ(ctx, nr);
	if (nr < 0 || nr >= KPOD_MAX_SYSCALLS)
		return 0;
	return count_exit(nr, BPF_CORE_READ(ctx, ret));
}

SEC("tp_btf/sys_exit")
int BPF_PROG(kpod_xall_b, struct pt_regs *regs, long ret)
{
	long id = regs->orig_ax;
	if (id < 0 || id >= KPOD_MAX_SYSCALLS)
		return 0;
	__u32 nr = id;
	__u8 *tracked = bpf_map_lookup_elem(&kpod_sys_track, &nr);
	if (!tracked || !*tracked)
		return 0;
	return count_exit(nr, ret);
}
