/* The watermark: drops to the lowest evicted page, makes faults that need a
 * non-resident page at or above it fail fast (no mapping attempted), is cleared
 * by prioritize, and can be set by hand (rounded down to a page). */
#include "harness.h"

TestSuite(watermark, .init = vt_init, .fini = vt_fini);

static uint64_t vt_wm(vs_vbar_t *v)
{
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(v, &wm));
    return wm;
}

/* A VBAR of 8 pages, all loaded, then its top 3 evicted: watermark at page 5. */
static vs_vbar_t *vt_setup(vt_env *e)
{
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    cr_assert_eq(vt_wm(v), 8 * e->page);
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 3 * e->page, &freed));
    cr_assert_eq(freed, 3 * e->page);
    cr_assert_eq(vt_wm(v), 5 * e->page);
    return v;
}

Test(watermark, drops_to_lowest_evicted_page)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_setup(e);
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, e->page, &freed));
    cr_assert_eq(vt_wm(v), 4 * e->page);
    /* Device-wide eviction sets it too. */
    VT_OK(vs_device_free_memory(e->dev, 2 * e->page, &freed));
    cr_assert_eq(vt_wm(v), 2 * e->page);
}

Test(watermark, faults_above_fail_fast)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_setup(e);
    vs_stats s0 = vt_stats(e);
    vs_sim_counters c0 = vt_counters(e->ordinal);
    uint64_t sig = 77;
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, &sig));
    cr_assert_eq(sig, 0);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 5, 1, NULL));
    /* A range that reaches a non-resident page above the watermark, even though
     * it starts with resident ones: refused, nothing pinned. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 3, 3, NULL));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    vs_stats s1 = vt_stats(e);
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_eq(s1.fault_fast_fails - s0.fault_fast_fails, 3);
    cr_assert_eq(s1.fault_not_resident - s0.fault_not_resident, 3);
    cr_assert_eq(s1.faults - s0.faults, 3);
    cr_assert_eq(s1.pages_mapped, s0.pages_mapped);
    cr_assert_eq(c1.calls[VS_SIM_OP_MAP], c0.calls[VS_SIM_OP_MAP], "a fast fail tried to map");
    cr_assert_eq(c1.calls[VS_SIM_OP_PHYS_CREATE], c0.calls[VS_SIM_OP_PHYS_CREATE]);
    cr_assert_eq(vt_loaded(v), 5 * e->page);
}

Test(watermark, resident_pages_above_still_fault)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    /* Evict page 7 and 6, then make 7 resident again by hand-lifting, then
     * restore a watermark of 6: page 7 is resident above it. */
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, &freed));
    VT_OK(vs_vbar_set_watermark(v, 8 * e->page));
    VT_OK(vt_fault_pages(e, v, 7, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 7, 1));
    VT_OK(vs_vbar_set_watermark(v, 6 * e->page));
    vs_stats s0 = vt_stats(e);
    VT_OK(vt_fault_pages(e, v, 7, 1, NULL));
    VT_OK(vt_fault_pages(e, v, 0, 6, NULL));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 5, 3, NULL));
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.fault_fast_fails - s0.fault_fast_fails, 1);
    VT_OK(vt_unpin_pages(e, v, 7, 1));
    VT_OK(vt_unpin_pages(e, v, 0, 6));
}

Test(watermark, faults_below_map)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_setup(e);
    /* Evict pages 4 and 3 too (watermark 3), then lift it to 4: page 3 maps. */
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, &freed));
    cr_assert_eq(vt_wm(v), 3 * e->page);
    VT_OK(vs_vbar_set_watermark(v, 4 * e->page));
    VT_OK(vt_fault_pages(e, v, 3, 1, NULL));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 4, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 3, 1));
    cr_assert_eq(vt_wm(v), 4 * e->page, "mapping below the watermark moved it");
}

Test(watermark, prioritize_clears_it)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_setup(e);
    VT_OK(vs_vbar_prioritize(v));
    cr_assert_eq(vt_wm(v), 8 * e->page);
    VT_OK(vt_fault_pages(e, v, 0, 8, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 8));
}

Test(watermark, deprioritize_keeps_it)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_setup(e);
    VT_OK(vs_vbar_deprioritize(v));
    cr_assert_eq(vt_wm(v), 5 * e->page);
}

Test(watermark, only_the_victim_vbar_gets_one)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vt_load_pages(e, b, 0, 4);
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, 2 * e->page, &freed));
    cr_assert_eq(vt_wm(a), 2 * e->page);
    cr_assert_eq(vt_wm(b), 4 * e->page);
}

Test(watermark, set_by_hand)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    VT_OK(vs_vbar_set_watermark(v, 2 * e->page + 1));
    cr_assert_eq(vt_wm(v), 2 * e->page, "not rounded down");
    VT_OK(vs_vbar_set_watermark(v, 3 * e->page - 1));
    cr_assert_eq(vt_wm(v), 2 * e->page, "not rounded down");
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 1, 2, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vs_vbar_set_watermark(v, 0));
    cr_assert_eq(vt_wm(v), 0);
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));   /* resident: fine */
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 2, 1, NULL));
    VT_OK(vs_vbar_set_watermark(v, 8 * e->page));
    cr_assert_eq(vt_wm(v), 8 * e->page);
    VT_OK(vt_fault_pages(e, v, 0, 8, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 8));
}

Test(watermark, set_beyond_size)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_status st = vs_vbar_set_watermark(v, 100 * e->page);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_RANGE, "gave %s", vs_status_name(st));
    if (st == VS_OK)
        cr_assert_eq(vt_wm(v), 4 * e->page, "a watermark past the end is not 'none'");
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_get_watermark(v, NULL));
}
