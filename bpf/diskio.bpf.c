// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "diskio" (BPF source, used where cgroup files cannot count I/O: v1 and hybrid
 * hosts): bytes and bios each cgroup submits to each block device. block_bio_queue fires
 * once per submitted bio in the submitter's context (a split or remapped remainder is not
 * traced again), which is what cgroup v2 io.stat counts too.
 */
#include "kpod.h"

#define REQ_OP_MASK 0xff
#define REQ_OP_READ 0
#define REQ_OP_WRITE 1

struct dio_key {
	__u64 cgid;
	__u32 dev; /* kernel dev_t: major << 20 | minor */
	__u32 op;  /* 0 read, 1 write */
};

struct dio_val {
	__u64 bytes;
	__u64 ios;
};

struct dio_errs {
	__u64 kpod_dio;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS * 2);
	__type(key, struct dio_key);
	__type(value, struct dio_val);
} kpod_dio SEC(".maps");

KPOD_ERRORS(dio, struct dio_errs);

/* Before 5.12 a bio names its disk and partition (bi_disk, bi_partno); since, its block
 * device (bi_bdev), whose bd_dev is the partition's. */
struct bio___old {
	struct gendisk *bi_disk;
	__u8 bi_partno;
} __attribute__((preserve_access_index));

static __always_inline __u32 bio_dev(struct bio *bio)
{
	if (bpf_core_field_exists(bio->bi_bdev))
		return BPF_CORE_READ(bio, bi_bdev, bd_dev);
	struct bio___old *old = (struct bio___old *)bio;
	struct gendisk *disk = BPF_CORE_READ(old, bi_disk);
	if (!disk)
		return 0;
	return BPF_CORE_READ(disk, major) << 20 | (BPF_CORE_READ(disk, first_minor) + BPF_CORE_READ(old, bi_partno));
}

static __always_inline int on_bio(struct bio *bio)
{
	static const struct dio_val zero;
	__u32 op = BPF_CORE_READ(bio, bi_opf) & REQ_OP_MASK;
	if (op != REQ_OP_READ && op != REQ_OP_WRITE)
		return 0;
	__u32 size = BPF_CORE_READ(bio, bi_iter.bi_size);
	if (!size)
		return 0;
	struct dio_key key = {
		.cgid = bpf_get_current_cgroup_id(),
		.dev = bio_dev(bio),
		.op = op,
	};
	struct dio_val *v = kpod_entry(&kpod_dio, &key, &zero);
	if (!v) {
		KPOD_LOST(dio, kpod_dio);
		return 0;
	}
	v->bytes += size;
	v->ios++;
	return 0;
}

KPOD_TP(kpod_bioq, "block_bio_queue", on_bio(kpod_queued_bio(ctx)), struct bio *bio)
