// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "biolatency": block I/O latency per cgroup and disk, charged to the cgroup that
 * submitted the I/O.
 *
 * block_io_start (6.5+) fires once per request, when blk-mq turns the first bio into a
 * request (or a passthrough request is executed), in the submitter's context: current's
 * cgroup is the submitter. Bios merged into an existing request do not start a new one.
 * The request pointer is the key of an in-flight entry {cgroup, start, disk}.
 *
 * block_rq_complete runs in irq/softirq context (current is whoever was interrupted), from
 * blk_update_request() and from the batched path (blk_complete_request()); both give the
 * number of bytes completed. Only a completion covering what is left of the request
 * (nr_bytes >= __data_len, read before the kernel subtracts it) ends it: a partial
 * completion leaves the request in flight. The latency (start to end: scheduler queue +
 * driver + device) goes into the submitter's histogram for the disk, and the in-flight entry
 * is removed.
 *
 * Kernels before 6.5 have no block_io_start: there the submitter is captured at
 * block_bio_queue (once per bio, in the submitter's context; kpod_bioq), keyed by the bio,
 * and block_rq_complete finds it through the request's first bio (rq->bio, still attached
 * when the tracepoint fires). The latency then runs from the first bio's submission to the
 * request's completion. A bio merged into another's request leaves its stamp behind, for the
 * LRU map to evict.
 *
 * Leaks: a request that never reaches block_rq_complete (a driver error path that frees it,
 * a device torn down mid-I/O) leaves its entry behind. Requests are preallocated per tag and
 * reused, so the next block_io_start on the same request overwrites the stale entry
 * (BPF_ANY); entries whose request is never reused (its device is gone) are evicted by the
 * LRU map once it fills. The map can therefore never fill up with dead entries, and
 * in-flight entries are only evicted when more requests than max_entries are really in
 * flight at once.
 */
#include "kpod.h"

#define KPOD_INFLIGHT 16384

struct bio_start {
	__u64 cgid;
	__u64 ts;
	__u32 dev; /* kernel dev_t of the disk: major << 20 | minor */
	__u32 pad;
};

struct bio_key {
	__u64 cgid;
	__u32 dev;
	__u32 pad;
};

struct bio_errs {
	__u64 kpod_bio_start;
	__u64 kpod_biolat;
	__u64 kpod_bio_q;
};

/* In flight: request pointer -> who started it, when, on which disk. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KPOD_INFLIGHT);
	__type(key, __u64);
	__type(value, struct bio_start);
} kpod_bio_start SEC(".maps");

/* Before 6.5: bio pointer -> who submitted it, when (dev unused: taken from the request). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KPOD_INFLIGHT);
	__type(key, __u64);
	__type(value, struct bio_start);
} kpod_bio_q SEC(".maps");

/* Latency histograms per {cgroup, disk}. Not preallocated: a 224-byte value per CPU for
 * every possible {cgroup, disk} pair would cost tens of MiB on a large node. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, KPOD_MAX_CGROUPS * 2);
	__type(key, struct bio_key);
	__type(value, struct kpod_hist);
} kpod_biolat SEC(".maps");

KPOD_ERRORS(bio, struct bio_errs);

/* Before 5.16 the request names its disk (rq_disk); since, its queue does (q->disk). */
struct request___old {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

static __always_inline __u32 disk_dev(struct request *rq)
{
	struct gendisk *disk;
	if (bpf_core_field_exists(((struct request___old *)rq)->rq_disk))
		disk = BPF_CORE_READ((struct request___old *)rq, rq_disk);
	else
		disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	__u32 major = BPF_CORE_READ(disk, major), minor = BPF_CORE_READ(disk, first_minor);
	return major << 20 | minor;
}

static __always_inline int on_start(struct request *rq)
{
	__u64 key = (__u64)rq;
	struct bio_start s = {
		.cgid = bpf_get_current_cgroup_id(),
		.ts = bpf_ktime_get_ns(),
		.dev = disk_dev(rq),
	};
	if (bpf_map_update_elem(&kpod_bio_start, &key, &s, BPF_ANY))
		KPOD_LOST(bio, kpod_bio_start);
	return 0;
}

static __always_inline int on_bio_queue(struct bio *bio)
{
	__u64 key = (__u64)bio;
	struct bio_start s = {.cgid = bpf_get_current_cgroup_id(), .ts = bpf_ktime_get_ns()};
	if (bpf_map_update_elem(&kpod_bio_q, &key, &s, BPF_ANY))
		KPOD_LOST(bio, kpod_bio_q);
	return 0;
}

static __always_inline int record(struct bio_key *key, __u64 ts)
{
	static const struct kpod_hist zero;
	__u64 now = bpf_ktime_get_ns();
	if (now < ts)
		return 0;
	struct kpod_hist *h = kpod_entry(&kpod_biolat, key, &zero);
	if (!h) {
		KPOD_LOST(bio, kpod_biolat);
		return 0;
	}
	kpod_hist_add(h, now - ts);
	return 0;
}

static __always_inline int on_complete(struct request *rq, unsigned int nr_bytes)
{
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0; /* partial completion: the rest is still in flight */
	__u64 rqk = (__u64)rq;
	struct bio_start *s = bpf_map_lookup_elem(&kpod_bio_start, &rqk);
	if (!s)
		return 0; /* started before we attached, or evicted */
	struct bio_key key = {.cgid = s->cgid, .dev = s->dev};
	__u64 ts = s->ts;
	bpf_map_delete_elem(&kpod_bio_start, &rqk);
	return record(&key, ts);
}

/* Before 6.5: the request's first bio says who submitted it and when. */
static __always_inline int on_complete_bio(struct request *rq, unsigned int nr_bytes)
{
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0;
	__u64 bk = (__u64)BPF_CORE_READ(rq, bio);
	struct bio_start *s = bpf_map_lookup_elem(&kpod_bio_q, &bk);
	if (!s)
		return 0;
	struct bio_key key = {.cgid = s->cgid, .dev = disk_dev(rq)};
	__u64 ts = s->ts;
	bpf_map_delete_elem(&kpod_bio_q, &bk);
	return record(&key, ts);
}

KPOD_TP(kpod_bios, "block_io_start", on_start(rq), struct request *rq)
KPOD_TP(kpod_bioc, "block_rq_complete", on_complete(rq, nr_bytes),
	struct request *rq, blk_status_t error, unsigned int nr_bytes)
KPOD_TP(kpod_bioq, "block_bio_queue", on_bio_queue(kpod_queued_bio(ctx)), struct bio *bio)
KPOD_TP(kpod_bioqc, "block_rq_complete", on_complete_bio(rq, nr_bytes),
	struct request *rq, blk_status_t error, unsigned int nr_bytes)
