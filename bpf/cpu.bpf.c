// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "cpu": run-queue latency and context switches per cgroup, from sched_switch alone.
 *
 * The kernel already times every run-queue wait (CONFIG_SCHED_INFO): from when a task is
 * queued (woken, or preempted while still runnable) to when it is switched in, it adds the
 * wait to the task's sched_info.run_delay and counts the switch-in in sched_info.pcount —
 * the numbers of /proc/<pid>/schedstat. A wait the load balancer moves to another CPU is
 * added in two parts, both before the switch-in. So at each switch-out the task has had
 * exactly one switch-in since its last one, and the growth of run_delay since then is that
 * one whole wait: no wakeup hook and no clock read. The wait is charged to the task's cgroup
 * (current at sched_switch), as is the context switch. The reading is kept in the task's
 * storage (kpod_sw), or, on kernels without task storage, in a hash by thread id that
 * sched_process_free empties (kpod_swp, kpod_rqfree).
 */
#include "kpod.h"

struct cpu_val {
	__u64 switches;
	struct kpod_hist rq;
};

struct cpu_errs {
	__u64 kpod_cpu;
	__u64 kpod_rq_seen;
	__u64 kpod_rq_pid;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct cpu_val);
} kpod_cpu SEC(".maps");

/* A task's sched_info when it last switched out. */
struct rq_seen {
	__u64 pcount;
	__u64 run_delay;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rq_seen);
} kpod_rq_seen SEC(".maps");

/* Kernels without task storage (before 5.11): the reading by thread id, with the task's
 * address so that a reused id is not taken for its old task; freed with the task. Only one of
 * the two maps is created (internal/cpu). */
struct rq_seen_pid {
	__u64 task;
	struct rq_seen seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536); /* threads on the node */
	__type(key, __u32);
	__type(value, struct rq_seen_pid);
} kpod_rq_pid SEC(".maps");

KPOD_ERRORS(cpu, struct cpu_errs);

/* 0 when the run-queue histogram is switched off: the program then counts switches only. */
const volatile __u32 kpod_rq_on = 1;

/* Counts the switch-out of the current task (prev) for its cgroup. */
static __always_inline struct cpu_val *count_switch(void)
{
	static const struct cpu_val zero;
	__u64 cg = bpf_get_current_cgroup_id(); /* current is prev here */
	struct cpu_val *v = kpod_entry(&kpod_cpu, &cg, &zero);
	if (v)
		v->switches++;
	else
		KPOD_LOST(cpu, kpod_cpu); /* the wait too, below; the task's state is still kept */
	return v;
}

/* Charges the wait that ended at the task's last switch-in, if it had one since its reading
 * seen, and keeps the task's new reading (n, delay). */
static __always_inline void rq_wait(struct cpu_val *v, struct rq_seen *seen, bool fresh, __u64 n, __u64 delay)
{
	/* First seen: a task on its first run since fork (sched_info starts at zero) has just
	 * ended its first wait; an older task's waits so far were before kpod. */
	if (fresh && n != 1) {
		seen->pcount = n;
		seen->run_delay = delay;
	}
	/* n - seen->pcount is 1 after a wait, 0 when the task was switched in without one (the
	 * idle task; a task the kernel did not queue). */
	if (n != seen->pcount && v)
		kpod_hist_add(&v->rq, delay - seen->run_delay);
	seen->pcount = n;
	seen->run_delay = delay;
}

static __always_inline int on_switch(struct task_struct *prev)
{
	struct cpu_val *v = count_switch();
	if (!kpod_rq_on)
		return 0;
	__u64 n = prev->sched_info.pcount, delay = prev->sched_info.run_delay;
	bool fresh = false;
	struct rq_seen *seen = bpf_task_storage_get(&kpod_rq_seen, prev, 0, 0);
	if (!seen) {
		seen = bpf_task_storage_get(&kpod_rq_seen, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!seen) {
			KPOD_LOST(cpu, kpod_rq_seen);
			return 0;
		}
		fresh = true;
	}
	rq_wait(v, seen, fresh, n, delay);
	return 0;
}

static __always_inline int on_switch_pid(struct task_struct *prev)
{
	struct cpu_val *v = count_switch();
	if (!kpod_rq_on)
		return 0;
	__u32 pid = BPF_CORE_READ(prev, pid);
	__u64 n = BPF_CORE_READ(prev, sched_info.pcount), delay = BPF_CORE_READ(prev, sched_info.run_delay);
	struct rq_seen_pid *e = bpf_map_lookup_elem(&kpod_rq_pid, &pid);
	if (e && e->task == (__u64)prev) {
		rq_wait(v, &e->seen, false, n, delay);
		return 0;
	}
	struct rq_seen_pid fresh = {.task = (__u64)prev};
	rq_wait(v, &fresh.seen, true, n, delay);
	if (bpf_map_update_elem(&kpod_rq_pid, &pid, &fresh, BPF_ANY))
		KPOD_LOST(cpu, kpod_rq_pid);
	return 0;
}

/* The freed task's reading goes with it (not at exit: a task switches out after it exits). */
static __always_inline int on_free(struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	struct rq_seen_pid *e = bpf_map_lookup_elem(&kpod_rq_pid, &pid);
	if (e && e->task == (__u64)p)
		bpf_map_delete_elem(&kpod_rq_pid, &pid);
	return 0;
}

/* tp_btf only: task storage of prev needs a trusted BTF pointer. */
KPOD_TP_BTF(kpod_sw, "sched_switch", on_switch(prev),
	bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
KPOD_TP(kpod_swp, "sched_switch", on_switch_pid(prev), bool preempt, struct task_struct *prev)
KPOD_TP(kpod_rqfree, "sched_process_free", on_free(p), struct task_struct *p)
