// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "proc": process forks, execs and exits per cgroup.
 *
 * Processes, not threads: a fork counts only when the child leads its own thread group, an
 * exit only when the whole thread group is gone. Forks are charged to the parent's cgroup
 * (current at sched_process_fork), execs and exits to the cgroup of the task itself.
 */
#include "kpod.h"

struct proc_val {
	__u64 forks;
	__u64 execs;
	__u64 exits;
};

struct proc_errs {
	__u64 kpod_proc;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct proc_val);
} kpod_proc SEC(".maps");

/* Thread groups whose exit was counted on the classic rung, keyed by the leader's pid and
 * start time (a reused pid is another key): see kpod_exit_t. */
struct exit_key {
	__u64 tgid;
	__u64 start;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} kpod_proc_exited SEC(".maps");

KPOD_ERRORS(proc, struct proc_errs);

enum { FORK, EXEC, EXIT };

static __always_inline int count(int what)
{
	static const struct proc_val zero;
	__u64 cg = bpf_get_current_cgroup_id();
	struct proc_val *v = kpod_entry(&kpod_proc, &cg, &zero);
	if (!v) {
		KPOD_LOST(proc, kpod_proc);
		return 0;
	}
	if (what == FORK)
		v->forks++;
	else if (what == EXEC)
		v->execs++;
	else
		v->exits++;
	return 0;
}

static __always_inline int on_fork(struct task_struct *child)
{
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread */
	return count(FORK);
}

KPOD_TP(kpod_fork, "sched_process_fork", on_fork(child), struct task_struct *parent, struct task_struct *child)
KPOD_TP(kpod_exec, "sched_process_exec", count(EXEC), struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
/* Since Linux 6.16 the tracepoint says whether the thread group died with this task. */
KPOD_TP(kpod_exit, "sched_process_exit", group_dead ? count(EXIT) : 0, struct task_struct *p, bool group_dead)

/* Classic tracepoints (last rung) carry pids only; current is the task in both. */
SEC("tracepoint/sched/sched_process_exec")
int kpod_exec_t(void *ctx)
{
	return count(EXEC);
}

SEC("tracepoint/sched/sched_process_exit")
int kpod_exit_t(void *ctx)
{
	/* do_exit() decrements signal->live before the tracepoint: 0 means no thread of the group
	 * is left. Two threads exiting at once can both read 0 (each decremented, then each
	 * read), so the first to record the group's key counts it. */
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(t, signal, live.counter) != 0)
		return 0;
	struct exit_key key = {.tgid = BPF_CORE_READ(t, tgid), .start = BPF_CORE_READ(t, group_leader, start_time)};
	__u8 one = 1;
	if (bpf_map_update_elem(&kpod_proc_exited, &key, &one, BPF_NOEXIST))
		return 0;
	return count(EXIT);
}
