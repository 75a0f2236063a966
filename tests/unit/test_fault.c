/* Fault and unpin: residency, signatures, per-page signatures, nesting pins,
 * NOT_PINNED with nothing changed. */
#include <string.h>

#include "harness.h"

TestSuite(fault, .init = vt_init, .fini = vt_fini);

Test(fault, maps_pins_and_writes)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    uint64_t sig = 0;
    VT_OK(vt_fault_pages(e, v, 1, 2, &sig));
    cr_assert_neq(sig, 0);
    uint8_t map[4];
    cr_assert_eq(vt_residency(v, map, 4), 4);
    cr_assert_eq(map[0], 0);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[3], 0);
    cr_assert_eq(vt_loaded(v), 2 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 2 * e->page);
    /* Device memory of the simulator is host memory: write and read it. */
    void *p = vt_host(vt_base(v) + e->page);
    vt_fill(p, 2 * e->page, 7);
    cr_assert_eq(vt_verify(p, 2 * e->page, 7), -1);
    VT_OK(vt_unpin_pages(e, v, 1, 2));
    cr_assert_eq(vt_residency(v, map, 4), 4);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT);
    cr_assert_eq(vt_verify(p, 2 * e->page, 7), -1, "unpin changed the data");
    vt_check(e);
}

Test(fault, byte_ranges_cover_their_pages)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    /* 10 bytes inside page 1. */
    VT_OK(vs_vbar_fault(v, e->page + 100, 10, NULL));
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0] | map[2] | map[3], 0);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    /* Two bytes straddling pages 2 and 3. */
    VT_OK(vs_vbar_fault(v, 3 * e->page - 1, 2, NULL));
    vt_residency(v, map, 4);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[3], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    /* Unpin with the same byte ranges. */
    VT_OK(vs_vbar_unpin(v, e->page + 100, 10, 0));
    VT_OK(vs_vbar_unpin(v, 3 * e->page - 1, 2, 0));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    /* The last byte of the VBAR. */
    VT_OK(vs_vbar_fault(v, 4 * e->page - 1, 1, NULL));
    VT_OK(vs_vbar_unpin(v, 4 * e->page - 1, 1, 0));
}

Test(fault, signature_stable_when_nothing_evicted)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    VT_OK(vt_fault_pages(e, v, 0, 4, &s1));
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    VT_OK(vt_fault_pages(e, v, 0, 4, &s2));
    cr_assert_eq(s1, s2);
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    /* Other activity that evicts nothing: another VBAR mapping within budget. */
    vs_vbar_t *w = vt_vbar(e, 2);
    vt_load_pages(e, w, 0, 2);
    VT_OK(vt_fault_pages(e, v, 0, 4, &s3));
    cr_assert_eq(s1, s3);
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    vs_stats st = vt_stats(e);
    cr_assert_geq(st.fault_hits, 2);
}

Test(fault, signature_is_the_newest_page)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    uint64_t s[4];
    for (int i = 0; i < 4; i++) {
        VT_OK(vt_fault_pages(e, v, (uint64_t)i, 1, &s[i]));
        if (i > 0)
            cr_assert_gt(s[i], s[i - 1], "a later mapping has a smaller generation");
    }
    uint64_t sigs[4];
    size_t count = 0;
    VT_OK(vs_vbar_page_signatures(v, 0, 4 * e->page, sigs, 4, &count));
    cr_assert_eq(count, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sigs[i], s[i]);
    uint64_t all = 0;
    VT_OK(vt_fault_pages(e, v, 0, 4, &all));
    cr_assert_eq(all, s[3]);
    uint64_t low = 0;
    VT_OK(vt_fault_pages(e, v, 0, 2, &low));
    cr_assert_eq(low, s[1]);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    for (int i = 0; i < 4; i++)
        VT_OK(vt_unpin_pages(e, v, (uint64_t)i, 1));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
}

Test(fault, page_signatures_of_non_resident_are_zero)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 1, 1);
    uint64_t sigs[4] = {9, 9, 9, 9};
    size_t count = 0;
    VT_OK(vs_vbar_page_signatures(v, 0, 4 * e->page, sigs, 4, &count));
    cr_assert_eq(count, 4);
    cr_assert_eq(sigs[0], 0);
    cr_assert_neq(sigs[1], 0);
    cr_assert_eq(sigs[2], 0);
    cr_assert_eq(sigs[3], 0);
    /* Sizing call. */
    count = 0;
    VT_OK(vs_vbar_page_signatures(v, 10, 2 * e->page, NULL, 0, &count));
    cr_assert_eq(count, 3, "bytes [10, 2 pages + 10) touch 3 pages");
}

Test(fault, signature_bumped_after_evict_and_remap)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    uint64_t s1 = 0, s2 = 0;
    VT_OK(vt_fault_pages(e, v, 0, 4, &s1));
    void *p = vt_host(vt_base(v));
    vt_fill(p, 4 * e->page, 3);
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    uint64_t before[4], after[4];
    size_t count;
    VT_OK(vs_vbar_page_signatures(v, 0, 4 * e->page, before, 4, &count));
    /* Evict one page: the highest. */
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 1, &freed));
    cr_assert_eq(freed, e->page);
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[3], 0, "the highest page was not the one evicted");
    /* The lower three kept their signatures (and data). */
    uint64_t low = 0;
    VT_OK(vt_fault_pages(e, v, 0, 3, &low));
    cr_assert_eq(low, before[2]);
    cr_assert_eq(vt_verify(p, 3 * e->page, 3), -1);
    VT_OK(vt_unpin_pages(e, v, 0, 3));
    /* The watermark now refuses page 3; lift it and fault the whole range. */
    VT_OK(vs_vbar_set_watermark(v, 4 * e->page));
    VT_OK(vt_fault_pages(e, v, 0, 4, &s2));
    cr_assert_neq(s2, s1);
    cr_assert_gt(s2, s1);
    VT_OK(vs_vbar_page_signatures(v, 0, 4 * e->page, after, 4, &count));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(after[i], before[i], "page %d changed signature without a remap", i);
    cr_assert_gt(after[3], before[3]);
    cr_assert_eq(s2, after[3]);
    VT_OK(vt_unpin_pages(e, v, 0, 4));
}

Test(fault, signature_may_be_null)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vs_vbar_fault(v, 0, 2 * e->page, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, 0));
}

Test(fault, pins_nest)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_OK(vt_fault_pages(e, v, 1, 2, NULL));
    VT_OK(vt_fault_pages(e, v, 1, 1, NULL));
    /* Pins: page 0 = 1, page 1 = 3, page 2 = 1. */
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    /* Pinned pages are not evicted. */
    uint64_t freed = 0;
    VT_EXPECT2(VS_OK, VS_ERR_OUT_OF_MEMORY, vs_vbar_free_memory(v, 4 * e->page, &freed));
    vt_residency(v, map, 4);
    cr_assert_eq(map[0], 0);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    VT_OK(vt_unpin_pages(e, v, 1, 2));
    VT_OK(vt_unpin_pages(e, v, 1, 1));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 1, 1));
}

Test(fault, unpin_without_pin_changes_nothing)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 0, 1));
    vt_load_pages(e, v, 0, 1);
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 0, 1));
    /* Page 1 pinned once; unpinning pages 1-2 fails and leaves page 1's pin. */
    VT_OK(vt_fault_pages(e, v, 1, 1, NULL));
    vs_stats s0 = vt_stats(e);
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 1, 2));
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 0, 2));
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT);
    cr_assert_eq(map[1], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[2], 0);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.faults, s0.faults);
    cr_assert_eq(s1.pages_mapped, s0.pages_mapped);
    VT_OK(vt_unpin_pages(e, v, 1, 1));
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 1, 1));
    vt_check(e);
}

Test(fault, unpin_on_a_stream)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uintptr_t s = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, s));
    VT_OK(vs_stream_synchronize(e->dev, s));
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, &freed));
    cr_assert_eq(freed, 2 * e->page);
    VT_OK(vs_stream_destroy(e->dev, s));
}

Test(fault, remap_reuses_nothing_stale)
{
    /* A remapped page is a fresh mapping: the fault result tells the caller to
     * copy; the old bytes are not promised. What is promised: the page works. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 1);
    uint64_t s1 = 0, s2 = 0;
    VT_OK(vt_fault_pages(e, v, 0, 1, &s1));
    vt_fill(vt_host(vt_base(v)), e->page, 11);
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, e->page, &freed));
    cr_assert_eq(vt_loaded(v), 0);
    VT_OK(vs_vbar_prioritize(v));
    VT_OK(vt_fault_pages(e, v, 0, 1, &s2));
    cr_assert_neq(s1, s2);
    vt_fill(vt_host(vt_base(v)), e->page, 12);
    cr_assert_eq(vt_verify(vt_host(vt_base(v)), e->page, 12), -1);
    VT_OK(vt_unpin_pages(e, v, 0, 1));
}

Test(fault, stats_of_faults)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_stats a = vt_stats(e);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));   /* maps 2 */
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));   /* hit */
    VT_OK(vt_fault_pages(e, v, 1, 2, NULL));   /* maps 1 */
    vs_stats b = vt_stats(e);
    cr_assert_eq(b.faults - a.faults, 3);
    cr_assert_eq(b.fault_hits - a.fault_hits, 1);
    cr_assert_eq(b.fault_maps - a.fault_maps, 2);
    cr_assert_eq(b.pages_mapped - a.pages_mapped, 3);
    cr_assert_eq(b.bytes_mapped - a.bytes_mapped, 3 * e->page);
    cr_assert_eq(b.cur_weights, 3 * e->page);
    cr_assert_geq(b.peak_weights, 3 * e->page);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vt_unpin_pages(e, v, 1, 2));
}
