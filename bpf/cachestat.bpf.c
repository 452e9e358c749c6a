// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore
/*
 * Family "cachestat": page cache activity per cgroup, charged to current. Every hook runs in
 * the context of the task that reads, writes or dirties (read(2), write(2), page faults,
 * readahead it triggers), so current's cgroup is the one that caused the event; work done
 * by kernel threads (the flusher, jbd2, kswapd) is charged to their cgroup, the root.
 *
 *   added           pages inserted into the page cache (mm_filemap_add_to_page_cache): misses
 *   dirtied         pages that went from clean to dirty (writeback_dirty_folio, called from
 *                   folio_account_dirtied())
 *   buffers_dirtied mark_buffer_dirty() calls (block_dirty_buffer), also for buffers that
 *                   were already dirty
 *   accessed        folio_mark_accessed() calls (one per access of one folio): a kernel
 *                   function, not a tracepoint, so it needs fentry or a kprobe. Optional: where
 *                   neither works the other counters still load.
 *
 * Folios can be large: added and dirtied count pages, 1 << order for a large folio.
 * Kernels before 5.17 pass pages (writeback_dirty_page, mark_page_accessed): see the end.
 */
#include "kpod.h"

struct cache_val {
	__u64 added;
	__u64 dirtied;
	__u64 buffers_dirtied;
	__u64 accessed;
};

struct cache_errs {
	__u64 kpod_cache;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* memory for the cgroups seen, not max_entries × CPUs */
	__uint(max_entries, KPOD_MAX_CGROUPS);
	__type(key, __u64); /* cgroup id */
	__type(value, struct cache_val);
} kpod_cache SEC(".maps");

KPOD_ERRORS(cache, struct cache_errs);

/* The flags word of a folio, whichever layout the kernel has (see vmlinux.h). */
static __always_inline unsigned long folio_flags(struct folio *f)
{
	if (bpf_core_field_exists(f->flags.f))
		return BPF_CORE_READ(f, flags.f);
	struct folio___ulong_flags *o = (void *)f;
	return BPF_CORE_READ(o, flags);
}

/* Pages in a folio: 1, or 1 << order for a large (PG_head) folio. */
static __always_inline __u64 folio_pages(struct folio *f)
{
	unsigned long head = 1UL << (bpf_core_enum_value(enum pageflags, PG_head) & 63);
	if (!(folio_flags(f) & head))
		return 1;
	__u32 order;
	if (bpf_core_field_exists(f->_flags_1)) {
		order = BPF_CORE_READ(f, _flags_1) & 0xff;
	} else {
		struct folio___order_u8 *o = (void *)f;
		order = BPF_CORE_READ(o, _folio_order);
	}
	return 1ULL << (order & 63);
}

enum { ADDED, DIRTIED, BUFFERS, ACCESSED };

static __always_inline int count(int what, __u64 n)
{
	static const struct cache_val zero;
	__u64 cg = bpf_get_current_cgroup_id();
	struct cache_val *v = kpod_entry(&kpod_cache, &cg, &zero);
	if (!v) {
		KPOD_LOST(cache, kpod_cache);
		return 0;
	}
	switch (what) {
	case ADDED:
		v->added += n;
		break;
	case DIRTIED:
		v->dirtied += n;
		break;
	case BUFFERS:
		v->buffers_dirtied += n;
		break;
	default:
		v->accessed += n;
	}
	return 0;
}

KPOD_TP(kpod_cadd, "mm_filemap_add_to_page_cache", count(ADDED, folio_pages(folio)), struct folio *folio)
KPOD_TP(kpod_cdirty, "writeback_dirty_folio", count(DIRTIED, folio_pages(folio)),
	struct folio *folio, struct address_space *mapping)
KPOD_TP(kpod_cbuf, "block_dirty_buffer", count(BUFFERS, 1), struct buffer_head *bh)
KPOD_FN(kpod_cacc, "folio_mark_accessed", count(ACCESSED, 1), struct folio *folio)

/* Before folios (5.17) the same events pass a struct page, and the page cache holds single
 * pages (a hugetlbfs page, added whole, counts as one): each event is one page
 * (internal/cachestat's page path). The page is not read. */
struct page;

KPOD_TP(kpod_caddp, "mm_filemap_add_to_page_cache", count(ADDED, 1), struct page *page)
KPOD_TP(kpod_cdirtyp, "writeback_dirty_page", count(DIRTIED, 1), struct page *page, struct address_space *mapping)
KPOD_FN(kpod_caccp, "mark_page_accessed", count(ACCESSED, 1), struct page *page)
