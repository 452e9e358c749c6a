// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * A test of kpod_entry (kpod.h), the first-use path every family's per-cgroup counters take.
 * Each getppid of the test's cgroup counts under the key (cgroup, its place in the calls of
 * every CPU / 4), so a fresh entry is made every fourth call: two processes calling getppid
 * at once on two CPUs race to make the same one whenever one of them is stopped (or, on a
 * qemu TCG vCPU, switched out) between kpod_entry's lookup and update. An event lost on the
 * race shows as a total short of their calls.
 */
#include "kpod.h"

struct entry_key {
	__u64 cgid;
	__u64 slice;
};

struct entry_errs {
	__u64 kpod_entry_n;
};

/* The cgroup counted (the test's pod); others' getppid calls are not. */
const volatile __u64 entry_cgid = 0;

/* The pod's calls so far, of every CPU. */
__u64 entry_seq = 0;

/* As the families' counters: per-CPU, growing with the entries made. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 17);
	__type(key, struct entry_key);
	__type(value, __u64);
} kpod_entry_n SEC(".maps");

KPOD_ERRORS(entry, struct entry_errs);

SEC("tracepoint/syscalls/sys_exit_getppid")
int kpod_entry_t(void *ctx)
{
	static const __u64 zero;
	struct entry_key key = {.cgid = bpf_get_current_cgroup_id()};
	if (key.cgid != entry_cgid)
		return 0;
	/* A plain increment, not an atomic fetch (Linux 5.12+): two CPUs that read the same
	 * value only share the slice sooner. */
	__u64 seq = entry_seq;
	entry_seq = seq + 1;
	key.slice = seq >> 2;
	__u64 *n = kpod_entry(&kpod_entry_n, &key, &zero);
	if (!n) {
		KPOD_LOST(entry, kpod_entry_n);
		return 0;
	}
	(*n)++;
	return 0;
}
