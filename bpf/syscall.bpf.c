// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "syscall": calls, errors and latency of the tracked system calls, per cgroup and
 * syscall number. Userspace fills kpod_sys_track with the numbers to track.
 *
 * Calls and errors are counted at every exit of a tracked call, from the exit event alone (it
 * carries the call number and the return value), in the cgroup the task is in when the call
 * returns. Latency: the enter program stamps every tracked call it sees, and the exit of a
 * stamped call adds to the histogram. User space samples by attaching the enter program in
 * short windows only (internal/syscall): a call is timed when it enters inside a window,
 * whatever it lasts, and the calls outside cost no enter program at all. The stamp is kept in
 * the task's storage, or, on kernels without task storage, in a hash by thread id.
 *
 * Two ways to hook, the loader takes the first that attaches (internal/syscall):
 *   - per call (kpod_scen, kpod_scex): the syscalls:sys_enter_<name> / sys_exit_<name> events
 *     of the tracked calls only. The kernel tests a bitmap of enabled calls before it runs
 *     anything, so other system calls cost no BPF program run at all;
 *   - every call (kpod_sysin, kpod_sysout): raw_syscalls sys_enter / sys_exit, two programs on
 *     every system call of the node, where the per-call events are missing
 *     (CONFIG_FTRACE_SYSCALLS off, or a tracked call without one).
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
	__u64 kpod_sys_pid;
};

/* 1: calls are timed (the enter program is attached, always or in windows); 0: nothing is
 * timed, the enter programs are never attached and the exit looks for no stamp. */
const volatile __u32 kpod_sys_sample = 1;

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

/* Kernels without task storage (before 5.11): the stamp by thread id, with the task's
 * address, taken back at the call's exit (the programs whose names end in p). LRU: a thread
 * that dies inside a call leaves its stamp, which ages out. Only one of the two maps is made
 * (internal/syscall). */
struct sys_start_pid {
	__u64 task;
	struct sys_start st;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* calls in flight that entered in a latency window */
	__type(key, __u32);
	__type(value, struct sys_start_pid);
} kpod_sys_pid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS * 4);
	__type(key, struct sys_key);
	__type(value, struct sys_val);
} kpod_sys SEC(".maps");

KPOD_ERRORS(sys, struct sys_errs);

static __always_inline int tracked(long id)
{
	if (id < 0 || id >= KPOD_MAX_SYSCALLS)
		return 0;
	__u32 nr = id;
	__u8 *t = bpf_map_lookup_elem(&kpod_sys_track, &nr);
	return t && *t;
}

/* Stamps the call. The per-call events are those of tracked calls only; the every-call path
 * tests the filter first (check). pid: the stamp goes to the hash by thread id. */
static __always_inline int on_enter(long id, int check, bool pid)
{
	if (check && !tracked(id))
		return 0;
	if (pid) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct sys_start_pid sp = {.task = bpf_get_current_task(), .st = {.ts = bpf_ktime_get_ns(), .nr = id}};
		if (bpf_map_update_elem(&kpod_sys_pid, &tid, &sp, BPF_ANY))
			KPOD_LOST(sys, kpod_sys_pid);
		return 0;
	}
	struct sys_start *st = bpf_task_storage_get(&kpod_sys_start, bpf_get_current_task_btf(), 0,
						    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		KPOD_LOST(sys, kpod_sys_start);
		return 0;
	}
	st->nr = id;
	st->ts = bpf_ktime_get_ns();
	return 0;
}

/* Counts the call, and its latency if its entry was stamped. */
static __always_inline int on_exit(long id, long ret, int check, bool pid)
{
	static const struct sys_val zero;
	if (id < 0 || id >= KPOD_MAX_SYSCALLS)
		return 0;
	if (check && !tracked(id))
		return 0;
	struct sys_key key = {.cgid = bpf_get_current_cgroup_id(), .nr = id};
	struct sys_val *v = kpod_entry(&kpod_sys, &key, &zero);
	if (!v) {
		KPOD_LOST(sys, kpod_sys);
		return 0;
	}
	v->count++;
	if (ret < 0 && ret >= -4095)
		v->errors++;
	if (!kpod_sys_sample)
		return 0;
	if (pid) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct sys_start_pid *sp = bpf_map_lookup_elem(&kpod_sys_pid, &tid);
		if (!sp)
			return 0;
		if (sp->task == bpf_get_current_task() && sp->st.nr == id)
			kpod_hist_add(&v->lat, bpf_ktime_get_ns() - sp->st.ts);
		bpf_map_delete_elem(&kpod_sys_pid, &tid);
		return 0;
	}
	struct sys_start *st = bpf_task_storage_get(&kpod_sys_start, bpf_get_current_task_btf(), 0, 0);
	if (st && st->ts) {
		if (st->nr == id)
			kpod_hist_add(&v->lat, bpf_ktime_get_ns() - st->ts);
		st->ts = 0;
	}
	return 0;
}

/* The call number of the raw_syscalls events' registers (syscall_get_nr); btf: regs is a
 * tp_btf argument, read with a plain load. */
static __always_inline long regs_nr(struct pt_regs *regs, bool btf)
{
#if defined(__TARGET_ARCH_x86)
	return btf ? regs->orig_ax : BPF_CORE_READ(regs, orig_ax);
#elif defined(__TARGET_ARCH_arm64)
	return btf ? regs->syscallno : BPF_CORE_READ(regs, syscallno);
#else
	return -1;
#endif
}

KPOD_TP(kpod_sysin, "sys_enter", on_enter(id, 1, false), struct pt_regs *regs, long id)
KPOD_TP(kpod_sysout, "sys_exit", on_exit(regs_nr(regs, kpod_btf), ret, 1, false), struct pt_regs *regs, long ret)
KPOD_TP(kpod_sysinp, "sys_enter", on_enter(id, 1, true), struct pt_regs *regs, long id)
KPOD_TP(kpod_sysoutp, "sys_exit", on_exit(regs_nr(regs, kpod_btf), ret, 1, true), struct pt_regs *regs, long ret)

/* The classic tracepoints' records are read as context, with plain loads (the field offsets
 * relocated by CO-RE): a BPF_CORE_READ is a helper call, the most expensive thing these
 * programs would do on every system call. */
#define KPOD_RAW_SYSCALLS(in, out, pid)                                   \
	SEC("tracepoint/raw_syscalls/sys_enter")                          \
	int in(struct trace_event_raw_sys_enter *ctx)                     \
	{                                                                 \
		return on_enter(ctx->id, 1, pid);                         \
	}                                                                 \
	SEC("tracepoint/raw_syscalls/sys_exit")                           \
	int out(struct trace_event_raw_sys_exit *ctx)                     \
	{                                                                 \
		return on_exit(ctx->id, ctx->ret, 1, pid);                \
	}

KPOD_RAW_SYSCALLS(kpod_sysin_t, kpod_sysout_t, false)
KPOD_RAW_SYSCALLS(kpod_sysinp_t, kpod_sysoutp_t, true)

/* The records of the per-call events (kernel/trace/trace.h): the call number, and the return
 * value at exit. */
struct syscall_trace_enter {
	struct trace_entry ent;
	int nr;
} __attribute__((preserve_access_index));

struct syscall_trace_exit {
	struct trace_entry ent;
	int nr;
	long ret;
} __attribute__((preserve_access_index));

#define KPOD_PER_CALL(en, ex, pid)                                        \
	SEC("tracepoint/syscalls/sys_enter")                              \
	int en(struct syscall_trace_enter *ctx)                           \
	{                                                                 \
		return on_enter(ctx->nr, 0, pid);                         \
	}                                                                 \
	SEC("tracepoint/syscalls/sys_exit")                               \
	int ex(struct syscall_trace_exit *ctx)                            \
	{                                                                 \
		return on_exit(ctx->nr, ctx->ret, 0, pid);                \
	}

KPOD_PER_CALL(kpod_scen_t, kpod_scex_t, false)
KPOD_PER_CALL(kpod_scenp_t, kpod_scexp_t, true)
