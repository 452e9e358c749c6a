// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "softirqs": time spent in soft IRQ vectors, charged to the cgroup of the task that
 * was interrupted; see irq.h for who that is.
 */
#include "irq.h"

#define KPOD_VECTORS 16 /* NR_SOFTIRQS is 10 since 4.x; room for more */

struct sirq_key {
	__u64 cgid; /* KPOD_NODE_CGID = node */
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

static __always_inline int on_sexit(unsigned int vec, bool btf)
{
	static const struct kpod_hist zero;
	__u64 d = elapsed(&kpod_sirq_ts);
	if (!d || vec >= KPOD_VECTORS)
		return 0;
	struct sirq_key key = {.cgid = victim_cgid(btf), .vec = vec};
	struct kpod_hist *h = kpod_entry(&kpod_sirq, &key, &zero);
	if (!h) {
		KPOD_LOST(sirq, kpod_sirq);
		return 0;
	}
	kpod_hist_add(h, d);
	return 0;
}

KPOD_TP(kpod_sin, "softirq_entry", STAMP(kpod_sirq_ts), unsigned int vec_nr)
KPOD_TP(kpod_sout, "softirq_exit", on_sexit(vec_nr, kpod_btf), unsigned int vec_nr)

