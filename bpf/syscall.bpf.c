// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "syscall": calls, errors and latency of the tracked system calls, per cgroup and
 * syscall number. Userspace fills kpod_sys_track with the numbers to track.
 *
 * Calls and errors are counted at every exit of a tracked call, from the exit event alone (it
 * carries the call number and the return value), in the cgroup the task is in when the call
 * returns. Each CPU counts in a slot of its own (kpod_sys_slot) for the two tasks that
 * returned there last, so that a call costs a compare and an add, not a cgroup id and a hash
 * lookup: a task's counts are added to kpod_sys when a third task takes its place, and user
 * space adds the slots to the map it reads (with no place taken while it reads, so that no
 * count moves from a slot to the map in between: KPOD_SYS_READING). A task's place is valid
 * while it is
 * in the css_set it was filled in and no task has changed cgroups or been forked since
 * (kpod_sys_gen): a task's cgroup id is fixed by its css_set, and a css_set's address
 * can be taken by another one only after tasks moved or were born into it. Latency: the enter program stamps every tracked call it sees, and the exit of a
 * stamped call adds to the histogram. User space samples by attaching the enter program in
 * short windows only (internal/syscall): a call is timed when it enters inside a window,
 * whatever it lasts, and the calls outside cost no enter program at all. The stamp is kept in
 * the task's storage, or, on kernels without task storage, in a hash by thread id. Outside the
 * windows no task gets a new stamp, so a slot remembers that a task had none left after the
 * current window closed (kpod_sys_win, set by user space) and the exit stops looking.
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

/* The tracked calls, by number: 0 not tracked, i + 1 counted in the CPUs' slots at index i
 * (the first KPOD_SYS_CACHED tracked numbers, kpod_sys_nr[i]), KPOD_SYS_UNCACHED counted
 * straight into kpod_sys. */
#define KPOD_SYS_CACHED 16
#define KPOD_SYS_UNCACHED 255

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KPOD_MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, __u8);
} kpod_sys_track SEC(".maps");

const volatile __u32 kpod_sys_nr[KPOD_SYS_CACHED];

/* A CPU's counts not yet in kpod_sys: those of the two tasks that returned last from a
 * tracked call on it (two, because two tasks that take turns on a CPU, a client and its
 * server, would otherwise take the slot from each other at every turn). User space reads done
 * first and begin last: the slot is whole when they are equal (begin moves first when a way
 * changes task, done last), and no way changed task while it read kpod_sys when begin is the
 * same before and after. */
struct sys_way {
	__u64 task;
	__u64 cset;	 /* the task's css_set when the way was filled */
	__u64 gen;	 /* kpod_sys_gen then */
	__u64 cgid;
	__u64 unstamped; /* the closed window (kpod_sys_win) in which the task had no stamp left */
	__u64 count[KPOD_SYS_CACHED];
	__u64 errors[KPOD_SYS_CACHED];
};

struct sys_slot {
	__u64 done;
	__u64 last; /* the way used last; the other one is refilled next */
	struct sys_way way[2];
	__u64 begin;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sys_slot);
} kpod_sys_slot SEC(".maps");

/* Bumped at every cgroup migration and fork. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kpod_sys_gen SEC(".maps");

/* Written by user space only (a map of its own, so that its writes never undo a bump of
 * kpod_sys_gen). At KPOD_SYS_WIN: 0 while the enter program may run, else the id of the
 * window that closed last. At KPOD_SYS_READING: non-zero while user space reads kpod_sys and
 * the slots; a task that finds no place of its own then counts straight into kpod_sys
 * instead of taking one, so that no slot is flushed into the map while it is read. */
#define KPOD_SYS_WIN 0
#define KPOD_SYS_READING 1
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} kpod_sys_win SEC(".maps");

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

static __always_inline struct sys_val *sys_entry(__u64 cgid, __u32 nr)
{
	static const struct sys_val zero;
	struct sys_key key = {.cgid = cgid, .nr = nr};
	struct sys_val *v = kpod_entry(&kpod_sys, &key, &zero);
	if (!v)
		KPOD_LOST(sys, kpod_sys);
	return v;
}

/* Adds a way's counts to kpod_sys and empties it. */
static __always_inline void sys_flush(struct sys_way *c)
{
#pragma unroll
	for (int i = 0; i < KPOD_SYS_CACHED; i++) {
		if (!c->count[i]) /* errors <= count */
			continue;
		struct sys_val *v = sys_entry(c->cgid, kpod_sys_nr[i]);
		if (v) {
			v->count += c->count[i];
			v->errors += c->errors[i];
		}
		c->count[i] = 0;
		c->errors[i] = 0;
	}
}

/* The latency of the returning call id if its entry was stamped, else 0; the stamp is used. */
static __always_inline __u64 stamped(long id, bool pid)
{
	__u64 ns = 0;
	if (pid) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct sys_start_pid *sp = bpf_map_lookup_elem(&kpod_sys_pid, &tid);
		if (!sp)
			return 0;
		if (sp->task == bpf_get_current_task() && sp->st.nr == id)
			ns = bpf_ktime_get_ns() - sp->st.ts;
		bpf_map_delete_elem(&kpod_sys_pid, &tid);
		return ns;
	}
	struct sys_start *st = bpf_task_storage_get(&kpod_sys_start, bpf_get_current_task_btf(), 0, 0);
	if (st && st->ts) {
		if (st->nr == id)
			ns = bpf_ktime_get_ns() - st->ts;
		st->ts = 0;
	}
	return ns;
}

static __always_inline bool sys_holds(struct sys_way *w, __u64 task, __u64 cset, __u64 gen)
{
	return w->task == task && w->cset == cset && w->gen == gen;
}

/* Counts the call, and its latency if it was stamped, straight into kpod_sys: while user
 * space reads, for a task without a place in its CPU's slot. */
static __always_inline int sys_direct(long id, __u32 nr, bool err, bool pid)
{
	struct sys_val *v = sys_entry(bpf_get_current_cgroup_id(), nr);
	if (!v)
		return 0;
	v->count++;
	if (err)
		v->errors++;
	if (kpod_sys_sample) {
		__u64 ns = stamped(id, pid);
		if (ns)
			kpod_hist_add(&v->lat, ns);
	}
	return 0;
}

/* Counts the call, and its latency if its entry was stamped. pid: no task storage, so no BTF
 * task either (both came in 5.11): the css_set is read with a helper. */
static __always_inline int on_exit(long id, long ret, bool pid)
{
	if (id < 0 || id >= KPOD_MAX_SYSCALLS)
		return 0;
	__u32 nr = id, z = 0, w = KPOD_SYS_WIN;
	__u8 *t = bpf_map_lookup_elem(&kpod_sys_track, &nr);
	__u64 *closed = bpf_map_lookup_elem(&kpod_sys_win, &w);
	__u64 *g = bpf_map_lookup_elem(&kpod_sys_gen, &z);
	struct sys_slot *slot = bpf_map_lookup_elem(&kpod_sys_slot, &z);
	if (!t || !*t || !closed || !g || !slot)
		return 0;
	__u32 i = *t - 1;
	bool err = ret < 0 && ret >= -4095;

	/* gen before the css_set: a migration changes the css_set before it bumps gen, so a
	 * slot never pairs a css_set read before a migration with gen read after it. */
	__u64 gen = *g, task, cset;
	barrier();
	if (pid) {
		task = bpf_get_current_task();
		cset = (__u64)BPF_CORE_READ((struct task_struct *)task, cgroups);
	} else {
		struct task_struct *tk = bpf_get_current_task_btf();
		task = (__u64)tk;
		cset = (__u64)tk->cgroups;
	}
	__u64 k = 0;
	if (!sys_holds(&slot->way[0], task, cset, gen)) {
		k = 1;
		if (!sys_holds(&slot->way[1], task, cset, gen)) {
			__u32 r = KPOD_SYS_READING;
			__u64 *reading = bpf_map_lookup_elem(&kpod_sys_win, &r);
			if (!reading || *reading)
				return sys_direct(id, nr, err, pid);
			k = !slot->last;
			struct sys_way *v = &slot->way[k];
			__sync_fetch_and_add(&slot->begin, 1);
			sys_flush(v);
			v->task = task;
			v->cset = cset;
			v->gen = gen;
			v->cgid = bpf_get_current_cgroup_id();
			v->unstamped = 0;
			barrier();
			slot->done = slot->begin;
		}
	}
	slot->last = k;
	struct sys_way *c = &slot->way[k];
	if (i < KPOD_SYS_CACHED) {
		c->count[i]++;
		if (err)
			c->errors[i]++;
	} else {
		struct sys_val *v = sys_entry(c->cgid, nr);
		if (!v)
			return 0;
		v->count++;
		if (err)
			v->errors++;
	}
	if (!kpod_sys_sample)
		return 0;
	__u64 win = *closed;
	if (win && c->unstamped == win)
		return 0;
	__u64 ns = stamped(id, pid);
	if (win)
		c->unstamped = win;
	if (ns) {
		struct sys_val *v = sys_entry(c->cgid, nr);
		if (v)
			kpod_hist_add(&v->lat, ns);
	}
	return 0;
}

/* A task changed cgroups, or was born (perhaps into another cgroup, perhaps where a task
 * and a css_set that a slot still names were): every slot is refilled at its next call. */
static __always_inline int sys_moved(void)
{
	__u32 z = 0;
	__u64 *g = bpf_map_lookup_elem(&kpod_sys_gen, &z);
	if (g)
		__sync_fetch_and_add(g, 1);
	return 0;
}

#define KPOD_SYS_MOVED(mv, fk)                                                                       \
	KPOD_TP(mv, "cgroup_attach_task", sys_moved(), struct cgroup *dst, const char *path,       \
		struct task_struct *task, bool threadgroup)                                          \
	KPOD_TP(fk, "sched_process_fork", sys_moved(), struct task_struct *parent, struct task_struct *child) \
	SEC("tracepoint/cgroup/cgroup_attach_task") int mv##_t(void *ctx) { return sys_moved(); }   \
	SEC("tracepoint/sched/sched_process_fork") int fk##_t(void *ctx) { return sys_moved(); }

KPOD_SYS_MOVED(kpod_sysmv, kpod_sysfk)
KPOD_SYS_MOVED(kpod_sysmvp, kpod_sysfkp)

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
KPOD_TP(kpod_sysout, "sys_exit", on_exit(regs_nr(regs, kpod_btf), ret, false), struct pt_regs *regs, long ret)
KPOD_TP(kpod_sysinp, "sys_enter", on_enter(id, 1, true), struct pt_regs *regs, long id)
KPOD_TP(kpod_sysoutp, "sys_exit", on_exit(regs_nr(regs, kpod_btf), ret, true), struct pt_regs *regs, long ret)

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
		return on_exit(ctx->id, ctx->ret, pid);                \
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
		return on_exit(ctx->nr, ctx->ret, pid);                \
	}

KPOD_PER_CALL(kpod_scen_t, kpod_scex_t, false)
KPOD_PER_CALL(kpod_scenp_t, kpod_scexp_t, true)
