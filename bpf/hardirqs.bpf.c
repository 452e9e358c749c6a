// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "hardirqs": time spent in hard IRQ handlers, charged to the cgroup of the task that
 * was interrupted ("IRQ time stolen from this pod"); see irq.h for who that is.
 */
#include "irq.h"

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
	__type(key, __u64); /* cgroup id, KPOD_NODE_CGID = node */
	__type(value, struct hirq_val);
} kpod_hirq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kpod_hirq_ts SEC(".maps");

KPOD_ERRORS(hirq, struct hirq_errs);

static __always_inline int on_hexit(bool btf)
{
	static const struct hirq_val zero;
	__u64 d = elapsed(&kpod_hirq_ts);
	if (!d)
		return 0;
	__u64 cg = victim_cgid(btf);
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
KPOD_TP(kpod_hout, "irq_handler_exit", on_hexit(kpod_btf), int irq, struct irqaction *action, int ret)

