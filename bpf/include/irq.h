// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * What the "hardirqs" and "softirqs" families share: who an interrupt is stolen from, and
 * a per-CPU start stamp. In hard and soft IRQ context current is the task that was running
 * when the interrupt came (a soft IRQ run from local_bh_enable() is charged to the task
 * that re-enabled bottom halves, which is also the task it delays). When that task is the
 * idle task (pid 0) or a kernel thread (PF_KTHREAD: ksoftirqd, kworkers, threaded IRQ
 * handlers) the time belongs to no pod and goes to the node-level key, KPOD_NODE_CGID.
 *
 * Start times are per CPU: hard IRQ handlers do not nest, soft IRQs do not nest, and a hard
 * IRQ arriving during a soft IRQ has its own object and slot (its time is then also part of
 * the soft IRQ's, as in libbpf-tools' softirqs).
 */
#ifndef __KPOD_IRQ_H__
#define __KPOD_IRQ_H__

#include "kpod.h"

#define PF_KTHREAD 0x00200000

/* The cgroup an interrupt is stolen from, or KPOD_NODE_CGID for idle and kernel threads.
 * btf (the tp_btf program): current as a BTF pointer (5.11+; the check is resolved at load
 * time) and its fields read with plain loads instead of two helper calls per interrupt. */
static __always_inline __u64 victim_cgid(bool btf)
{
	unsigned int flags;
	pid_t pid;
	if (btf && bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		struct task_struct *t = bpf_get_current_task_btf();
		pid = t->pid;
		flags = t->flags;
	} else {
		struct task_struct *t = (void *)bpf_get_current_task();
		pid = BPF_CORE_READ(t, pid);
		flags = BPF_CORE_READ(t, flags);
	}
	if (pid == 0 || (flags & PF_KTHREAD))
		return KPOD_NODE_CGID;
	return bpf_get_current_cgroup_id();
}

/* Stamps this CPU's start slot of map, and returns the time since the stamp (0: none). */
#define STAMP(map)                                                              \
	({                                                                      \
		__u32 _z = 0;                                                   \
		__u64 *_ts = bpf_map_lookup_elem(&map, &_z);                    \
		if (_ts)                                                        \
			*_ts = bpf_ktime_get_ns();                              \
		0;                                                              \
	})

static __always_inline __u64 elapsed(void *map)
{
	__u32 z = 0;
	__u64 *ts = bpf_map_lookup_elem(map, &z);
	if (!ts || !*ts)
		return 0; /* the handler started before we attached */
	__u64 d = bpf_ktime_get_ns() - *ts;
	*ts = 0;
	return d;
}

#endif /* __KPOD_IRQ_H__ */
