/* Importance: the newest VBAR is the most important, prioritize and deprioritize
 * move VBARs, eviction takes the least important VBAR first and its highest pages
 * first. Observed one eviction at a time through vs_vbar_residency. */
#include <string.h>

#include "harness.h"

TestSuite(priority, .init = vt_init, .fini = vt_fini);

#define VT_MAXP 16

/* Evict exactly one page from the device and say which (VBAR index, page). */
static void vt_evict_one(vt_env *e, vs_vbar_t **v, int nv, int *which, int *page)
{
    uint8_t before[8][VT_MAXP], after[8][VT_MAXP];
    size_t n[8];
    for (int i = 0; i < nv; i++)
        n[i] = vt_residency(v[i], before[i], VT_MAXP);
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, e->page, &freed));
    cr_assert_eq(freed, e->page, "free_memory(1 page) freed %llu", (unsigned long long)freed);
    *which = -1;
    *page = -1;
    for (int i = 0; i < nv; i++) {
        vt_residency(v[i], after[i], VT_MAXP);
        for (size_t p = 0; p < n[i]; p++) {
            if ((before[i][p] & VS_PAGE_RESIDENT) && !(after[i][p] & VS_PAGE_RESIDENT)) {
                cr_assert_eq(*which, -1, "more than one page evicted");
                *which = i;
                *page = (int)p;
            } else {
                cr_assert_eq(before[i][p], after[i][p], "page %zu of VBAR %d changed", p, i);
            }
        }
    }
    cr_assert_neq(*which, -1, "nothing evicted");
}

/* Expect the next evictions to be exactly `order` (pairs of VBAR index, page). */
static void vt_expect_order(vt_env *e, vs_vbar_t **v, int nv, const int (*order)[2], int n)
{
    for (int k = 0; k < n; k++) {
        int w, p;
        vt_evict_one(e, v, nv, &w, &p);
        cr_assert(w == order[k][0] && p == order[k][1],
                  "eviction %d took VBAR %d page %d, expected VBAR %d page %d", k, w, p,
                  order[k][0], order[k][1]);
    }
    vt_check(e);
}

Test(priority, newest_is_most_important)
{
    vt_env *e = vt_open(&(vt_params){.pages = 12});
    vs_vbar_t *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = vt_vbar(e, 4);
    for (int i = 0; i < 3; i++)
        vt_load_pages(e, v[i], 0, 4);
    static const int order[12][2] = {{0, 3}, {0, 2}, {0, 1}, {0, 0}, {1, 3}, {1, 2},
                                     {1, 1}, {1, 0}, {2, 3}, {2, 2}, {2, 1}, {2, 0}};
    vt_expect_order(e, v, 3, order, 12);
}

Test(priority, load_order_does_not_matter)
{
    /* Loading the important VBAR first, then the others, changes nothing. */
    vt_env *e = vt_open(&(vt_params){.pages = 12});
    vs_vbar_t *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = vt_vbar(e, 4);
    for (int i = 2; i >= 0; i--)
        for (int p = 0; p < 4; p++)
            vt_load_pages(e, v[i], (uint64_t)(p * 3 % 4), 1);
    static const int order[6][2] = {{0, 3}, {0, 2}, {0, 1}, {0, 0}, {1, 3}, {1, 2}};
    vt_expect_order(e, v, 3, order, 6);
}

Test(priority, prioritize_moves_to_front)
{
    vt_env *e = vt_open(&(vt_params){.pages = 12});
    vs_vbar_t *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = vt_vbar(e, 4);
    for (int i = 0; i < 3; i++)
        vt_load_pages(e, v[i], 0, 4);
    VT_OK(vs_vbar_prioritize(v[0]));   /* list: 0, 2, 1 */
    static const int order[12][2] = {{1, 3}, {1, 2}, {1, 1}, {1, 0}, {2, 3}, {2, 2},
                                     {2, 1}, {2, 0}, {0, 3}, {0, 2}, {0, 1}, {0, 0}};
    vt_expect_order(e, v, 3, order, 12);
}

Test(priority, deprioritize_moves_to_back)
{
    vt_env *e = vt_open(&(vt_params){.pages = 12});
    vs_vbar_t *v[3];
    for (int i = 0; i < 3; i++)
        v[i] = vt_vbar(e, 4);
    for (int i = 0; i < 3; i++)
        vt_load_pages(e, v[i], 0, 4);
    VT_OK(vs_vbar_deprioritize(v[2]));   /* list: 1, 0, 2 */
    static const int order[12][2] = {{2, 3}, {2, 2}, {2, 1}, {2, 0}, {0, 3}, {0, 2},
                                     {0, 1}, {0, 0}, {1, 3}, {1, 2}, {1, 1}, {1, 0}};
    vt_expect_order(e, v, 3, order, 12);
}

Test(priority, repeated_moves)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v[4];
    for (int i = 0; i < 4; i++)
        v[i] = vt_vbar(e, 2);
    for (int i = 0; i < 4; i++)
        vt_load_pages(e, v[i], 0, 2);
    /* list 3 2 1 0 -> prioritize 3 (no change) -> deprioritize 0 (no change)
     * -> prioritize 1: 1 3 2 0 -> deprioritize 3: 1 2 0 3 -> prioritize 0: 0 1 2 3 */
    VT_OK(vs_vbar_prioritize(v[3]));
    VT_OK(vs_vbar_deprioritize(v[0]));
    VT_OK(vs_vbar_prioritize(v[1]));
    VT_OK(vs_vbar_deprioritize(v[3]));
    VT_OK(vs_vbar_prioritize(v[0]));
    static const int order[8][2] = {{3, 1}, {3, 0}, {2, 1}, {2, 0},
                                    {1, 1}, {1, 0}, {0, 1}, {0, 0}};
    vt_expect_order(e, v, 4, order, 8);
}

Test(priority, pinned_pages_are_skipped)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v[2];
    v[0] = vt_vbar(e, 4);
    v[1] = vt_vbar(e, 4);
    vt_load_pages(e, v[0], 0, 4);
    vt_load_pages(e, v[1], 0, 4);
    VT_OK(vt_fault_pages(e, v[0], 3, 1, NULL));
    VT_OK(vt_fault_pages(e, v[0], 1, 1, NULL));
    static const int order[3][2] = {{0, 2}, {0, 0}, {1, 3}};
    vt_expect_order(e, v, 2, order, 3);
    VT_OK(vt_unpin_pages(e, v[0], 3, 1));
    VT_OK(vt_unpin_pages(e, v[0], 1, 1));
    static const int next[2][2] = {{0, 3}, {0, 1}};
    vt_expect_order(e, v, 2, next, 2);
}

Test(priority, fault_evicts_less_important_vbar)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 8);
    vs_vbar_t *b = vt_vbar(e, 8);   /* more important */
    vt_load_pages(e, a, 0, 8);
    cr_assert_eq(vt_meminfo(e).available, 0);
    vs_stats s0 = vt_stats(e);
    VT_OK(vt_fault_pages(e, b, 0, 2, NULL));
    uint8_t map[8];
    vt_residency(a, map, 8);
    for (int p = 0; p < 8; p++)
        cr_assert_eq(!!(map[p] & VS_PAGE_RESIDENT), p < 6, "page %d of A", p);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.pages_evicted - s0.pages_evicted, 2);
    cr_assert_eq(s1.chunks_reused - s0.chunks_reused, 2, "evicted chunks not reused");
    cr_assert_eq(s1.chunks_created, s0.chunks_created);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 8);
    VT_OK(vt_unpin_pages(e, b, 0, 2));
}

Test(priority, fault_never_evicts_more_important)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 8);
    vs_vbar_t *b = vt_vbar(e, 8);   /* more important */
    vt_load_pages(e, b, 0, 8);
    uint64_t sig = 99;
    vs_stats s0 = vt_stats(e);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, a, 0, 1, &sig));
    cr_assert_eq(sig, 0);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.fault_not_resident - s0.fault_not_resident, 1);
    cr_assert_eq(s1.fault_fast_fails, s0.fault_fast_fails, "not a watermark refusal");
    cr_assert_eq(s1.pages_evicted, s0.pages_evicted);
    cr_assert_eq(vt_loaded(b), 8 * e->page);
    cr_assert_eq(vt_loaded(a), 0);
    cr_assert_eq(vt_count_pages(a, VS_PAGE_PINNED), 0);
    /* Once A is prioritized, it takes B's highest pages. */
    VT_OK(vs_vbar_prioritize(a));
    VT_OK(vt_fault_pages(e, a, 0, 1, &sig));
    cr_assert_neq(sig, 0);
    uint8_t map[8];
    vt_residency(b, map, 8);
    cr_assert_eq(map[7], 0);
    cr_assert_eq(map[6], VS_PAGE_RESIDENT);
    VT_OK(vt_unpin_pages(e, a, 0, 1));
}

Test(priority, within_a_vbar_low_pages_win)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 4, 4);
    /* Page 0 is more important than 4..7: takes the highest (7), then 6. */
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    uint8_t map[8];
    vt_residency(v, map, 8);
    static const uint8_t want[8] = {3, 3, 0, 0, 1, 1, 0, 0};
    for (int p = 0; p < 8; p++)
        cr_assert_eq(map[p], want[p], "page %d: %d, expected %d", p, map[p], want[p]);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    /* Page 7 is less important than everything resident: refused (after lifting
     * the watermark the evictions set, so that this is not a fast fail). */
    VT_OK(vs_vbar_set_watermark(v, 8 * e->page));
    vs_stats s0 = vt_stats(e);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 7, 1, NULL));
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.fault_fast_fails, s0.fault_fast_fails);
    vt_residency(v, map, 8);
    cr_assert_eq(map[7], 0);
    /* Page 2 is more important than 4 and 5: it takes 5. */
    VT_OK(vt_fault_pages(e, v, 2, 1, NULL));
    vt_residency(v, map, 8);
    static const uint8_t then[8] = {1, 1, 3, 0, 1, 0, 0, 0};
    for (int p = 0; p < 8; p++)
        cr_assert_eq(map[p], then[p], "page %d: %d, expected %d", p, map[p], then[p]);
    VT_OK(vt_unpin_pages(e, v, 2, 1));
}

Test(priority, mapping_a_range_evicts_only_what_it_needs)
{
    vt_env *e = vt_open(&(vt_params){.pages = 6});
    vs_vbar_t *a = vt_vbar(e, 6);
    vs_vbar_t *b = vt_vbar(e, 6);
    vt_load_pages(e, a, 0, 4);
    /* 2 pages free; fault 3 of B: uses the free pages, then evicts A3. */
    VT_OK(vt_fault_pages(e, b, 0, 3, NULL));
    cr_assert_eq(vt_loaded(a), 3 * e->page);
    uint8_t map[6];
    vt_residency(a, map, 6);
    cr_assert_eq(map[3], 0);
    cr_assert_eq(map[2], VS_PAGE_RESIDENT);
    VT_OK(vt_unpin_pages(e, b, 0, 3));
}

Test(priority, failed_fault_keeps_mapped_pages_unpinned)
{
    /* B (less important) faults 4 pages with room for 2 and only more important
     * pages to evict: VS_NOT_RESIDENT, nothing pinned, pages mapped on the way
     * may stay mapped but unpinned. */
    vt_env *e = vt_open(&(vt_params){.pages = 6});
    vs_vbar_t *b = vt_vbar(e, 6);
    vs_vbar_t *a = vt_vbar(e, 6);   /* more important */
    vt_load_pages(e, a, 0, 4);
    VT_OK(vt_fault_pages(e, b, 0, 1, NULL));   /* one already resident & pinned */
    uint8_t map[6];
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, b, 0, 4, NULL));
    vt_residency(b, map, 6);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT | VS_PAGE_PINNED, "the earlier pin was lost");
    for (int p = 1; p < 6; p++)
        cr_assert_eq(map[p] & VS_PAGE_PINNED, 0, "page %d left pinned", p);
    cr_assert_eq(vt_loaded(a), 4 * e->page, "a more important VBAR lost pages");
    VT_OK(vt_unpin_pages(e, b, 0, 1));
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, b, 0, 1));
    vt_check(e);
}

Test(priority, moving_bad_handles)
{
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_prioritize(NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_deprioritize(NULL));
}
