// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "oom": OOM kills per cgroup, charged to the victim. oom/mark_victim runs in the
 * context of the task that ran into the limit (current), which is often not the victim, so
 * the cgroup comes from the victim's task_struct. The tracepoint passes that task since 6.8
 * (and in stable kernels that took the change); before, only the victim's pid, and the
 * family hooks the kernel function that fires it, mark_oom_victim(task), instead
 * (internal/oom chooses by the tracepoint's BTF prototype).
 */
#include "kpod.h"

struct oom_errs {
	__u64 kpod_oom;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, __u64);
} kpod_oom SEC(".maps");

KPOD_ERRORS(oom, struct oom_errs);

static __always_inline int on_victim(struct task_struct *victim, bool btf)
{
	static const __u64 zero;
	__u64 cg = kpod_task_cgid(victim, btf);
	__u64 *v = kpod_entry(&kpod_oom, &cg, &zero);
	if (!v) {
		KPOD_LOST(oom, kpod_oom);
		return 0;
	}
	(*v)++;
	return 0;
}

KPOD_TP(kpod_oom, "mark_victim", on_victim(task, kpod_btf), struct task_struct *task, uid_t uid)
KPOD_FN(kpod_oomv, "mark_oom_victim", on_victim(tsk, false), struct task_struct *tsk)
