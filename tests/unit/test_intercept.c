/* Interception through the simulator's own allocator (vs_sim_malloc/vs_sim_free):
 * allocations make room by evicting, are counted until freed, are refused under a
 * limit when they cannot fit, and a driver out-of-memory evicts and retries. */
#include "harness.h"

TestSuite(intercept, .init = vt_init, .fini = vt_fini);

static vt_env *vt_open_intercepting(uint64_t pages, uint64_t limit, uint64_t headroom)
{
    vt_env *e = vt_open(&(vt_params){.pages = pages, .limit = limit, .headroom = headroom,
                                     .flags = VS_DEVICE_INTERCEPT});
    cr_assert_eq(e->props.intercepting, 1, "interception not installed");
    return e;
}

Test(intercept, counted_until_freed)
{
    vt_env *e = vt_open_intercepting(8, 0, 0);
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(e->ordinal, 2 * e->page, &p));
    cr_assert_neq(p, 0);
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.used_intercepted, 2 * e->page);
    cr_assert_eq(mi.used_others, 0, "an intercepted allocation also counted as others");
    cr_assert_eq(mi.available, 6 * e->page);
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.intercepted_allocs, 1);
    cr_assert_eq(s.cur_intercepted, 2 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).external_bytes, 2 * e->page);
    VT_OK(vs_sim_free(e->ordinal, p));
    mi = vt_meminfo(e);
    cr_assert_eq(mi.used_intercepted, 0);
    cr_assert_eq(mi.available, 8 * e->page);
    s = vt_stats(e);
    cr_assert_eq(s.intercepted_frees, 1);
    cr_assert_eq(s.cur_intercepted, 0);
    cr_assert_eq(s.peak_intercepted, 2 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).external_bytes, 0);
}

Test(intercept, allocation_evicts_unpinned_pages)
{
    vt_env *e = vt_open_intercepting(8, 0, 0);
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    uintptr_t p = 0;
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_sim_malloc(e->ordinal, 3 * e->page, &p));
    cr_assert_eq(vt_loaded(v), 5 * e->page);
    uint8_t map[8];
    vt_residency(v, map, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(!!(map[i] & VS_PAGE_RESIDENT), i < 5, "page %d", i);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(v, &wm));
    cr_assert_eq(wm, 5 * e->page);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.reclaims - s0.reclaims, 1);
    cr_assert_eq(vt_meminfo(e).used_intercepted, 3 * e->page);
    VT_OK(vs_sim_free(e->ordinal, p));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
}

Test(intercept, refused_under_a_limit)
{
    vt_env *e = vt_open_intercepting(8, 6 * 64 * VT_KIB, 0);
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 4);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    uintptr_t p = 77;
    vs_stats s0 = vt_stats(e);
    /* 2 free + 2 evictable < 5: refused, and (reclaim is all or nothing) nothing
     * was evicted for it. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_sim_malloc(e->ordinal, 5 * e->page, &p));
    cr_assert_eq(p, 77);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.intercepted_oom - s0.intercepted_oom, 1);
    cr_assert_eq(s1.intercepted_allocs, s0.intercepted_allocs);
    cr_assert_eq(vt_meminfo(e).used_intercepted, 0);
    cr_assert_eq(vt_counters(e->ordinal).external_bytes, 0, "the driver allocated anyway");
    cr_assert_eq(vt_loaded(v), 4 * e->page, "a refused allocation evicted pages");
    /* What fits goes through, evicting the 2 unpinned pages. */
    VT_OK(vs_sim_malloc(e->ordinal, 4 * e->page, &p));
    cr_assert_eq(vt_meminfo(e).used_intercepted, 4 * e->page);
    cr_assert_eq(vt_loaded(v), 2 * e->page);
    /* Too big for the limit even with nothing else on the device. */
    uintptr_t q = 0;
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_sim_malloc(e->ordinal, 7 * e->page, &q));
    VT_OK(vs_sim_free(e->ordinal, p));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
}

Test(intercept, without_a_limit_the_driver_decides)
{
    /* Budget 6 of 8 pages (headroom 2), all 6 pinned: reclaim fails but the
     * driver still has 2 pages, so the allocation proceeds. */
    vt_env *e = vt_open_intercepting(8, 0, 2 * 64 * VT_KIB);
    vs_vbar_t *v = vt_vbar(e, 8);
    VT_OK(vt_fault_pages(e, v, 0, 6, NULL));
    uintptr_t p = 0, q = 0;
    VT_OK(vs_sim_malloc(e->ordinal, e->page, &p));
    cr_assert_eq(vt_meminfo(e).used_intercepted, e->page);
    VT_OK(vs_sim_malloc(e->ordinal, e->page, &q));
    /* Now the driver itself is full. */
    uintptr_t r = 0;
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_sim_malloc(e->ordinal, e->page, &r));
    cr_assert_eq(vt_meminfo(e).used_intercepted, 2 * e->page);
    VT_OK(vs_sim_free(e->ordinal, p));
    VT_OK(vs_sim_free(e->ordinal, q));
    VT_OK(vt_unpin_pages(e, v, 0, 6));
}

Test(intercept, driver_oom_evicts_and_retries)
{
    vt_env *e = vt_open_intercepting(16, 0, 0);
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    /* Room enough by the count, but the driver says no once. */
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_ALLOC, 0, 1, VS_ERR_OUT_OF_MEMORY));
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(e->ordinal, 2 * e->page, &p));
    cr_assert_eq(vt_loaded(v), 6 * e->page, "on_oom did not evict the allocation's size");
    cr_assert_eq(vt_meminfo(e).used_intercepted, 2 * e->page);
    VT_OK(vs_sim_free(e->ordinal, p));
    /* Twice: the retry fails too and the allocation fails. */
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_ALLOC, 0, 2, VS_ERR_OUT_OF_MEMORY));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_sim_malloc(e->ordinal, 2 * e->page, &p));
    cr_assert_eq(vt_meminfo(e).used_intercepted, 0);
}

Test(intercept, not_counted_without_the_flag)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    cr_assert_eq(e->props.intercepting, 0);
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 4);
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(e->ordinal, 3 * e->page, &p));
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.used_intercepted, 0);
    cr_assert_eq(mi.used_others, 3 * e->page);
    cr_assert_eq(vt_loaded(v), 4 * e->page, "evicted without interception");
    cr_assert_eq(vt_stats(e).intercepted_allocs, 0);
    VT_OK(vs_sim_free(e->ordinal, p));
    cr_assert_eq(vt_meminfo(e).used_others, 0);
}

Test(intercept, removed_at_close)
{
    vt_env *e = vt_open_intercepting(8, 0, 0);
    vt_close(e);
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(0, 64 * VT_KIB, &p));
    VT_OK(vs_sim_free(0, p));
    e = vt_open(&(vt_params){.pages = 8});
    cr_assert_eq(e->props.intercepting, 0);
    VT_OK(vs_sim_malloc(0, 64 * VT_KIB, &p));
    cr_assert_eq(vt_meminfo(e).used_intercepted, 0);
    VT_OK(vs_sim_free(0, p));
}

Test(intercept, allocation_freed_after_close_is_ignored)
{
    vt_env *e = vt_open_intercepting(8, 0, 0);
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(e->ordinal, 64 * VT_KIB, &p));
    vt_close(e);
    VT_OK(vs_sim_free(0, p));
    cr_assert_eq(vt_counters(0).external_bytes, 0);
}

Test(intercept, devices_are_separate)
{
    vt_env *a = vt_open(&(vt_params){.pages = 4, .device_count = 2, .ordinal = 0,
                                     .flags = VS_DEVICE_INTERCEPT});
    vt_env *b = vt_open(&(vt_params){.pages = 4, .device_count = 2, .ordinal = 1,
                                     .flags = VS_DEVICE_INTERCEPT});
    vs_vbar_t *va = vt_vbar(a, 4), *vb = vt_vbar(b, 4);
    vt_load_pages(a, va, 0, 4);
    vt_load_pages(b, vb, 0, 4);
    uintptr_t p = 0;
    VT_OK(vs_sim_malloc(1, 2 * b->page, &p));
    cr_assert_eq(vt_loaded(va), 4 * a->page, "device 0 evicted for device 1");
    cr_assert_eq(vt_loaded(vb), 2 * b->page);
    cr_assert_eq(vt_meminfo(b).used_intercepted, 2 * b->page);
    cr_assert_eq(vt_meminfo(a).used_intercepted, 0);
    VT_OK(vs_sim_free(1, p));
}

Test(intercept, many_allocations)
{
    /* Sizes below the granularity: counted as asked (the simulator itself
     * rounds each up to 64 KiB, which shows as others). */
    vt_env *e = vt_open_intercepting(32, 0, 0);
    enum { N = 24 };
    uintptr_t p[N];
    for (int i = 0; i < N; i++)
        VT_OK(vs_sim_malloc(e->ordinal, 4096 * (uint64_t)(i % 4 + 1), &p[i]));
    uint64_t total = 0;
    for (int i = 0; i < N; i++)
        total += 4096 * (uint64_t)(i % 4 + 1);
    cr_assert_eq(vt_meminfo(e).used_intercepted, total);
    for (int i = N - 1; i >= 0; i -= 2)
        VT_OK(vs_sim_free(e->ordinal, p[i]));
    for (int i = 0; i < N; i += 2)
        VT_OK(vs_sim_free(e->ordinal, p[i]));
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.intercepted_allocs, N);
    cr_assert_eq(s.intercepted_frees, N);
    cr_assert_eq(vt_meminfo(e).used_intercepted, 0);
}
