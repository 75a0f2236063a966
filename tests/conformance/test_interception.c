/* Group "interception": allocations made through the backend's own allocator
 * (what PyTorch does) are seen by vramswap when the device is opened with
 * VS_DEVICE_INTERCEPT: counted while alive, making room by evicting unpinned
 * pages, refused under a limit when even evicting everything would not do.
 *
 * The native allocator is backend-specific (vsc_backend.native_*: vs_sim_malloc
 * on the simulator, cuMemAlloc_v2 on CUDA, hipMalloc on HIP, zeMemAllocDevice
 * on Level Zero); a backend that cannot intercept,
 * or for which the suite knows no allocator, gets SKIP. */
#include "suite.h"

static void need_interception(vsc_ctx *t)
{
    if (!t->props.intercepting)
        vsc_skip(t, "interception is not installed on %s:%d (the backend refused VS_DEVICE_INTERCEPT; -v shows why)",
                 t->backend, t->ordinal);
    vsc_native_begin(t);
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

static void counted_until_freed(vsc_ctx *t)
{
    need_interception(t);
    vsc_need_pages(t, 8);
    const uint64_t size = 3 * t->page + 4096;
    vs_memory_info m0 = vsc_meminfo(t);
    vs_stats s0 = vsc_stats(t);
    uintptr_t ptr = 0;
    VSC_OK(t, vsc_native_alloc(t, size, &ptr));
    VSC_CHECK(t, ptr != 0);
    vs_memory_info m1 = vsc_meminfo(t);
    uint64_t counted = m1.used_intercepted - m0.used_intercepted;
    VSC_CHECKF(t, counted >= size && counted <= round_up(size, t->props.granularity),
               "an allocation of %llu bytes was counted as %llu", (unsigned long long)size,
               (unsigned long long)counted);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.intercepted_allocs - s0.intercepted_allocs, 1);
    VSC_OK(t, vsc_native_free(t, ptr));
    vs_memory_info m2 = vsc_meminfo(t);
    VSC_EQ(t, m2.used_intercepted, m0.used_intercepted);
    vs_stats s2 = vsc_stats(t);
    VSC_EQ(t, s2.intercepted_frees - s0.intercepted_frees, 1);
}

/* An allocation when the budget is short evicts unpinned VBAR pages first. */
static void evicts_unpinned(vsc_ctx *t)
{
    need_interception(t);
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, NULL)); /* pinned: must survive */
    vsc_load_pages(t, v, 2, 6);
    uintptr_t ptr = 0;
    VSC_OK(t, vsc_native_alloc(t, 3 * p, &ptr)); /* needs 2.5 pages more: 3 evicted */
    VSC_RESIDENCY(t, v, "PPRRR...");
    VSC_CHECK(t, vsc_meminfo(t).used_intercepted >= 3 * p);
    VSC_OK(t, vsc_native_free(t, ptr));
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Under a limit, an allocation larger than available + evictable is refused
 * with out-of-memory and evicts nothing. */
static void oom_under_limit(vsc_ctx *t)
{
    need_interception(t);
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 4, NULL));
    vsc_load_pages(t, v, 4, 4);
    vs_memory_info m0 = vsc_meminfo(t);
    vs_stats s0 = vsc_stats(t);
    uintptr_t ptr = 0;
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vsc_native_alloc(t, m0.available + m0.evictable + p, &ptr));
    VSC_RESIDENCY(t, v, "PPPPRRRR");
    vs_memory_info m1 = vsc_meminfo(t);
    VSC_EQ(t, m1.used_intercepted, m0.used_intercepted);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.intercepted_oom - s0.intercepted_oom, 1);
    VSC_EQ(t, s1.pages_evicted, s0.pages_evicted);
    /* One that fits after evicting goes through. */
    VSC_OK(t, vsc_native_alloc(t, 2 * p, &ptr));
    VSC_RESIDENCY(t, v, "PPPPRR..");
    VSC_OK(t, vsc_native_free(t, ptr));
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 4));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Closing the device forgets its intercepted allocations; freeing one later
 * (unknown to the new device) is ignored. */
static void close_uncounts(vsc_ctx *t)
{
    need_interception(t);
    vsc_need_pages(t, 4);
    uintptr_t ptr = 0;
    VSC_OK(t, vsc_native_alloc(t, 2 * t->page, &ptr));
    VSC_CHECK(t, vsc_meminfo(t).used_intercepted >= 2 * t->page);
    vsc_close(t);
    vsc_reopen(t, VS_DEVICE_INTERCEPT);
    VSC_CHECK(t, t->props.intercepting);
    VSC_EQ(t, vsc_meminfo(t).used_intercepted, 0);
    VSC_OK(t, vsc_native_free(t, ptr));
    VSC_EQ(t, vsc_meminfo(t).used_intercepted, 0);
    vs_stats s = vsc_stats(t);
    VSC_EQ(t, s.intercepted_frees, 0);
    VSC_OK(t, vs_device_check_invariants(t->dev));
}

/* Without VS_DEVICE_INTERCEPT, native allocations are not counted. */
static void not_counted_without_flag(vsc_ctx *t)
{
    need_interception(t);
    vsc_close(t);
    vsc_reopen(t, 0);
    VSC_CHECK(t, !t->props.intercepting);
    uintptr_t ptr = 0;
    VSC_OK(t, vsc_native_alloc(t, t->page, &ptr));
    VSC_EQ(t, vsc_meminfo(t).used_intercepted, 0);
    VSC_EQ(t, vsc_stats(t).intercepted_allocs, 0);
    VSC_OK(t, vsc_native_free(t, ptr));
}

static const vsc_test tests[] = {
    {"counted_until_freed", counted_until_freed, VSC_NEED_INTERCEPT,
     "a native allocation counts in used_intercepted until its free"},
    {"evicts_unpinned", evicts_unpinned, VSC_NEED_INTERCEPT,
     "a native allocation under a short budget evicts unpinned pages only"},
    {"oom_under_limit", oom_under_limit, VSC_NEED_INTERCEPT,
     "under a limit, more than available + evictable is refused, nothing evicted"},
    {"close_uncounts", close_uncounts, VSC_NEED_INTERCEPT, "after close nothing stays counted"},
    {"not_counted_without_flag", not_counted_without_flag, VSC_NEED_INTERCEPT,
     "a device opened without VS_DEVICE_INTERCEPT counts nothing"},
};

const vsc_group vsc_group_interception = {"interception", "allocation interception (native allocator)", tests,
                                          VSC_COUNT(tests)};
