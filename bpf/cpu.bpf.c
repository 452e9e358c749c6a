// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "cpu": run-queue latency and context switches per cgroup.
 *
 * Run-queue latency is charged to the task that waited: a task is stamped when it becomes
 * runnable (sched_wakeup, sched_wakeup_new, or preempted while still TASK_RUNNING at
 * sched_switch) and the wait ends when sched_switch picks it as next. Context switches are
 * counted for the task switched out (current at sched_switch). One sched_switch program
 * serves both metrics.
 */
#include "kpod.h"

struct cpu_val {
	__u64 switches;
	struct kpod_hist rq;
};

struct cpu_errs {
	__u64 kpod_cpu;
	__u64 kpod_rq_ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct cpu_val);
} kpod_cpu SEC(".maps");

/* When the task last became runnable (0 = not waiting). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} kpod_rq_ts SEC(".maps");

KPOD_ERRORS(cpu, struct cpu_errs);

/* 0 when the run-queue histogram is switched off: the loader then attaches sched_switch only
 * and the switch program counts switches and nothing else. */
const volatile __u32 kpod_rq_on = 1;

static __always_inline int stamp(struct task_struct *p)
{
	__u64 *ts = bpf_task_storage_get(&kpod_rq_ts, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ts) {
		KPOD_LOST(cpu, kpod_rq_ts);
		return 0;
	}
	*ts = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_switch(struct task_struct *prev, struct task_struct *next,
				     unsigned int prev_state)
{
	static const struct cpu_val zero;
	__u64 cg = bpf_get_current_cgroup_id(); /* current is prev here */
	struct cpu_val *v = kpod_entry(&kpod_cpu, &cg, &zero);
	if (v)
		v->switches++;
	else
		KPOD_LOST(cpu, kpod_cpu);
	if (!kpod_rq_on)
		return 0;

	if (prev_state == TASK_RUNNING) /* preempted: it stays on the run queue */
		stamp(prev);

	__u64 *ts = bpf_task_storage_get(&kpod_rq_ts, next, 0, 0);
	if (!ts || !*ts)
		return 0;
	__u64 delta = bpf_ktime_get_ns() - *ts;
	*ts = 0;
	__u64 ncg = kpod_task_cgid(next, true) /* tp_btf only */;
	/* A switch between two tasks of one cgroup (threads of a container, a pipe's two ends)
	 * charges the entry already looked up for prev. */
	if (ncg != cg || !v)
		v = kpod_entry(&kpod_cpu, &ncg, &zero);
	if (!v) {
		KPOD_LOST(cpu, kpod_cpu);
		return 0;
	}
	kpod_hist_add(&v->rq, delta);
	return 0;
}

/* tp_btf only: the wait is kept in the task storage of tasks that are not current. */
KPOD_TP_BTF(kpod_sw, "sched_switch", on_switch(prev, next, prev_state),
	bool preempt, struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
KPOD_TP_BTF(kpod_wk, "sched_wakeup", stamp(p), struct task_struct *p)
KPOD_TP_BTF(kpod_wkn, "sched_wakeup_new", stamp(p), struct task_struct *p)
