/* vs_device_reclaim (make `bytes` available), vs_device_free_memory (release
 * `bytes` regardless of what is free) and vs_vbar_free_memory. */
#include "harness.h"

TestSuite(reclaim, .init = vt_init, .fini = vt_fini);

Test(reclaim, nothing_when_already_available)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 4);
    vs_stats s0 = vt_stats(e);
    uint64_t freed = 99;
    VT_OK(vs_device_reclaim(e->dev, 4 * e->page, &freed));
    cr_assert_eq(freed, 0);
    cr_assert_eq(vt_loaded(v), 4 * e->page);
    VT_OK(vs_device_reclaim(e->dev, 0, &freed));
    cr_assert_eq(freed, 0);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.reclaims - s0.reclaims, 2);
    cr_assert_eq(s1.reclaim_failures, s0.reclaim_failures);
    cr_assert_eq(s1.pages_evicted, s0.pages_evicted);
}

Test(reclaim, evicts_the_deficit)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 3);
    vt_load_pages(e, b, 0, 4);
    /* 1 page free; asking for 3 evicts 2 (A2, A1). */
    uint64_t freed = 0;
    VT_OK(vs_device_reclaim(e->dev, 3 * e->page, &freed));
    cr_assert_eq(freed, 2 * e->page);
    uint8_t map[4];
    vt_residency(a, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT);
    cr_assert_eq(map[1] | map[2] | map[3], 0);
    cr_assert_eq(vt_loaded(b), 4 * e->page);
    cr_assert_eq(vt_meminfo(e).available, 3 * e->page);
    /* A partial page still costs a whole page. */
    VT_OK(vs_device_reclaim(e->dev, 3 * e->page + 1, &freed));
    cr_assert_eq(freed, e->page);
    cr_assert_eq(vt_loaded(a), 0);
    /* freed may be NULL. */
    VT_OK(vs_device_reclaim(e->dev, 5 * e->page, NULL));
    cr_assert_eq(vt_loaded(b), 3 * e->page);
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.pages_evicted, 4);
    cr_assert_eq(s.bytes_evicted, 4 * e->page);
    cr_assert_eq(s.chunks_released, 4);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 3);
}

Test(reclaim, oom_when_not_enough_evictable)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    VT_OK(vt_fault_pages(e, v, 0, 3, NULL));
    vs_stats s0 = vt_stats(e);
    uint64_t freed = 0;
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, 6 * e->page, &freed));
    /* All or nothing: 5 evictable pages cannot make 6 available, none is evicted. */
    cr_assert_eq(vt_loaded(v), 8 * e->page, "a failed reclaim evicted pages");
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 3);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.reclaim_failures - s0.reclaim_failures, 1);
    cr_assert_eq(s1.reclaims - s0.reclaims, 1);
    /* More than the whole device. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, 9 * e->page, &freed));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, UINT64_MAX, &freed));
    cr_assert_eq(vt_loaded(v), 8 * e->page);
    /* Exactly what the evictable pages give still works. */
    VT_OK(vs_device_reclaim(e->dev, 5 * e->page, &freed));
    cr_assert_eq(freed, 5 * e->page);
    cr_assert_eq(vt_loaded(v), 3 * e->page);
    VT_OK(vt_unpin_pages(e, v, 0, 3));
}

Test(reclaim, counts_external_usage)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 4);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 3 * e->page));
    cr_assert_eq(vt_meminfo(e).available, 1 * e->page);
    uint64_t freed = 0;
    VT_OK(vs_device_reclaim(e->dev, 2 * e->page, &freed));
    cr_assert_eq(freed, e->page);
    cr_assert_eq(vt_loaded(v), 3 * e->page);
}

Test(reclaim, makes_bytes_available_when_over_budget)
{
    /* Budget 6 of 8 pages (headroom 2), 6 pages of weights, then another user
     * takes 2 pages: usage is 2 pages over the budget. Making 1 page available
     * takes 3 evictions, not 1. */
    vt_env *e = vt_open(&(vt_params){.pages = 8, .headroom = 2 * 64 * VT_KIB});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 6);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 2 * e->page));
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.available, 0);
    cr_assert_eq(mi.used_others, 2 * e->page);
    uint64_t freed = 0;
    VT_OK(vs_device_reclaim(e->dev, e->page, &freed));
    mi = vt_meminfo(e);
    cr_assert_geq(mi.available, e->page, "reclaim(1 page) returned VS_OK but only %llu bytes are "
                  "available (freed %llu)", (unsigned long long)mi.available,
                  (unsigned long long)freed);
    cr_assert_eq(freed, 3 * e->page);
    cr_assert_eq(vt_loaded(v), 3 * e->page);
    /* More than the evictable pages can give: refused, nothing evicted. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, 5 * e->page, &freed));
    cr_assert_eq(vt_loaded(v), 3 * e->page);
}

Test(reclaim, free_memory_ignores_what_is_free)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vt_load_pages(e, b, 0, 4);
    /* 8 pages free, still evicts. */
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, 5 * e->page, &freed));
    cr_assert_eq(freed, 5 * e->page);
    cr_assert_eq(vt_loaded(a), 0);
    cr_assert_eq(vt_loaded(b), 3 * e->page);
    /* Rounded to whole pages. */
    VT_OK(vs_device_free_memory(e->dev, 1, &freed));
    cr_assert_eq(freed, e->page);
    VT_OK(vs_device_free_memory(e->dev, 0, &freed));
    cr_assert_eq(freed, 0);
    cr_assert_eq(vt_loaded(b), 2 * e->page);
    VT_OK(vs_device_free_memory(e->dev, e->page, NULL));
    cr_assert_eq(vt_loaded(b), 1 * e->page);
}

Test(reclaim, free_memory_short)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *a = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    VT_OK(vt_fault_pages(e, a, 0, 1, NULL));
    /* Short of evictable pages: VS_OK, and *freed says how much. */
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, 5 * e->page, &freed));
    cr_assert_eq(freed, 3 * e->page);
    cr_assert_eq(vt_loaded(a), e->page, "what could be evicted was not");
    VT_OK(vt_unpin_pages(e, a, 0, 1));
}

Test(reclaim, vbar_free_memory_only_that_vbar)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vt_load_pages(e, b, 0, 4);
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(b, 2 * e->page, &freed));
    cr_assert_eq(freed, 2 * e->page);
    cr_assert_eq(vt_loaded(a), 4 * e->page, "another VBAR lost pages");
    uint8_t map[4];
    vt_residency(b, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT);
    cr_assert_eq(map[2] | map[3], 0);
    VT_OK(vs_vbar_free_memory(b, e->page + 1, NULL));
    cr_assert_eq(vt_loaded(b), 0);
    /* Nothing left: freed 0. */
    vs_status st = vs_vbar_free_memory(b, e->page, &freed);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
    if (st == VS_OK)
        cr_assert_eq(freed, 0);
    VT_OK(vs_vbar_free_memory(b, 0, &freed));
    cr_assert_eq(freed, 0);
}

Test(reclaim, freed_memory_is_available_again)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.available, 0);
    cr_assert_eq(mi.evictable, 8 * e->page);
    VT_OK(vs_device_free_memory(e->dev, 3 * e->page, NULL));
    mi = vt_meminfo(e);
    cr_assert_eq(mi.available, 3 * e->page);
    cr_assert_eq(mi.evictable, 5 * e->page);
    cr_assert_eq(mi.used_weights, 5 * e->page);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.phys_bytes, 5 * e->page);
    cr_assert_eq(c.mapped_bytes, 5 * e->page);
}

Test(reclaim, evictions_wait_for_the_last_use)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uintptr_t s = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, s));
    VT_OK(vs_device_free_memory(e->dev, 2 * e->page, NULL));
    cr_assert_eq(vt_loaded(v), 0);
    VT_OK(vs_stream_destroy(e->dev, s));
}

Test(reclaim, bad_arguments)
{
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_reclaim(NULL, 1, NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_free_memory(NULL, 1, NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_free_memory(NULL, 1, NULL));
}
