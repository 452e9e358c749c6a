// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Families "hardirqs" and "softirqs": time spent in interrupt handlers, charged to the
 * cgroup of the task that was interrupted ("IRQ time stolen from this pod"). This file is
 * built twice: with -DKPOD_HARDIRQS (hard IRQ handlers) and with -DKPOD_SOFTIRQS (soft IRQ
 * vectors), so that each collector loads and costs only its own hooks.
 *
 * In hard and soft IRQ context current is the task that was running when the interrupt
 * came (a soft IRQ run from local_bh_enable() is charged to the task that re-enabled bottom
 * halves, which is also the task it delays). When that task is the idle task (pid 0) or a
 * kernel thread (PF_KTHREAD: ksoftirqd, kworkers, threaded IRQ handlers) the time belongs
 * to no pod and goes to the node-level key, cgroup id 0.
 *
 * Start times are per CPU: hard IRQ handlers do not nest, soft IRQs do not nest, and a hard
 * IRQ arriving during a soft IRQ has its own object and slot (its time is then also part of
 * the soft IRQ's, as in libbpf-tools' softirqs).
 */
#include "kpod.h"

#if !defined(KPOD_HARDIRQS) && !defined(KPOD_SOFTIRQS)
#error "build with -DKPOD_HARDIRQS or -DKPOD_SOFTIRQS (see internal/irq/gen.go)"
#endif

#define PF_KTHREAD 0x00200000

/* The cgroup an interrupt is stolen from, or 0 for idle and kernel threads. */
static __always_inline __u64 victim_cgid(void)
{
	struct task_struct___irq *t = (void *)bpf_get_current_task();
	if (BPF_CORE_READ(t, pid) == 0 || (BPF_CORE_READ(t, flags) & PF_KTHREAD))
		return 0;
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

#ifdef KPOD_HARDIRQS

struct hirq_val {
	__u64 count;           /* handler runs */
	struct kpod_hist time; /* handler time */
};

struct hirq_errs {
	__u64 kpod_hirq;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id, 0 = node */
	__type(value, struct hirq_val);
} kpod_hirq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kpod_hirq_ts SEC(".maps");

KPOD_ERRORS(hirq, struct hirq_errs);

static __always_inline int on_hexit(void)
{
	static const struct hirq_val zero;
	__u64 d = elapsed(&kpod_hirq_ts);
	if (!d)
		return 0;
	__u64 cg = victim_cgid();
	struct hirq_val *v = kpod_entry(&kpod_hirq, &cg, &zero);
	if (!v) {
		KPOD_LOST(hirq, kpod_hirq);
		return 0;
	}
	v->count++;
	kpod_hist_add(&v->time, d);
	return 0;
}

KPOD_TP(kpod_hin, "irq_handler_entry", STAMP(kpod_hirq_ts), int irq, struct irqaction *action)
KPOD_TP(kpod_hout, "irq_handler_exit", on_hexit(), int irq, struct irqaction *action, int ret)

#endif /* KPOD_HARDIRQS */

#ifdef KPOD_SOFTIRQS

#define KPOD_VECTORS 16 /* NR_SOFTIRQS is 10 since 4.x; room for more */

struct sirq_key {
	__u64 cgid; /* 0 = node */
	__u32 vec;  /* HI_SOFTIRQ (0) ... RCU_SOFTIRQ (9) */
	__u32 pad;
};

struct sirq_errs {
	__u64 kpod_sirq;
};

/* Not preallocated: up to ten vectors per cgroup, a 224-byte histogram per CPU each. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KPOD_MAX_CGROUPS * 4);
	__type(key, struct sirq_key);
	__type(value, struct kpod_hist);
} kpod_sirq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kpod_sirq_ts SEC(".maps");

KPOD_ERRORS(sirq, struct sirq_errs);

static __always_inline int on_sexit(unsigned int vec)
{
	static const struct kpod_hist zero;
	__u64 d = elapsed(&kpod_sirq_ts);
	if (!d || vec >= KPOD_VECTORS)
		return 0;
	struct sirq_key key = {.cgid = victim_cgid(), .vec = vec};
	struct kpod_hist *h = kpod_entry(&kpod_sirq, &key, &zero);
	if (!h) {
		KPOD_LOST(sirq, kpod_sirq);
		return 0;
	}
	kpod_hist_add(h, d);
	return 0;
}

KPOD_TP(kpod_sin, "softirq_entry", STAMP(kpod_sirq_ts), unsigned int vec_nr)
KPOD_TP(kpod_sout, "softirq_exit", on_sexit(vec_nr), unsigned int vec_nr)

#endif /* KPOD_SOFTIRQS */
