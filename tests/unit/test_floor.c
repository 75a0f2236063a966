/* The floor: pages below it are never evicted by pressure; vs_device_reset_floors
 * clears every floor. */
#include "harness.h"

TestSuite(floor, .init = vt_init, .fini = vt_fini);

static uint64_t vt_floor(vs_vbar_t *v)
{
    uint64_t f = 99;
    VT_OK(vs_vbar_get_floor(v, &f));
    return f;
}

Test(floor, rounds_up_to_a_page)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    VT_OK(vs_vbar_set_floor(v, e->page + 1));
    cr_assert_eq(vt_floor(v), 2 * e->page);
    VT_OK(vs_vbar_set_floor(v, 3 * e->page));
    cr_assert_eq(vt_floor(v), 3 * e->page);
    VT_OK(vs_vbar_set_floor(v, 1));
    cr_assert_eq(vt_floor(v), e->page);
    VT_OK(vs_vbar_set_floor(v, 0));
    cr_assert_eq(vt_floor(v), 0);
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_get_floor(v, NULL));
}

Test(floor, protects_from_vbar_free_memory)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    VT_OK(vs_vbar_set_floor(v, 3 * e->page));
    uint8_t map[8];
    vt_residency(v, map, 8);
    for (int p = 0; p < 8; p++)
        cr_assert_eq(map[p], p < 3 ? (VS_PAGE_RESIDENT | VS_PAGE_PROTECTED) : VS_PAGE_RESIDENT,
                     "page %d flags %d", p, map[p]);
    cr_assert_eq(vt_meminfo(e).evictable, 5 * e->page);
    uint64_t freed = 0;
    VT_EXPECT2(VS_OK, VS_ERR_OUT_OF_MEMORY, vs_vbar_free_memory(v, 8 * e->page, &freed));
    cr_assert_eq(vt_loaded(v), 3 * e->page);
    vt_residency(v, map, 8);
    for (int p = 0; p < 8; p++)
        cr_assert_eq(map[p], p < 3 ? (VS_PAGE_RESIDENT | VS_PAGE_PROTECTED) : 0);
    cr_assert_eq(vt_meminfo(e).evictable, 0);
}

Test(floor, protects_from_device_pressure)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vt_load_pages(e, b, 0, 4);
    VT_OK(vs_vbar_set_floor(a, 2 * e->page));
    /* Evicting 4 pages takes A3, A2, then B3, B2 (A0, A1 are protected). */
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, 4 * e->page, &freed));
    cr_assert_eq(freed, 4 * e->page);
    cr_assert_eq(vt_loaded(a), 2 * e->page);
    cr_assert_eq(vt_loaded(b), 2 * e->page);
    uint8_t map[4];
    vt_residency(b, map, 4);
    cr_assert_eq(map[2] | map[3], 0);
    /* Protected pages do not count as evictable: a reclaim that needs them fails
     * (all or nothing); one that does not, leaves them. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, 7 * e->page, &freed));
    cr_assert_eq(vt_loaded(a), 2 * e->page);
    cr_assert_eq(vt_loaded(b), 2 * e->page);
    VT_OK(vs_device_reclaim(e->dev, 6 * e->page, &freed));
    cr_assert_eq(freed, 2 * e->page);
    cr_assert_eq(vt_loaded(a), 2 * e->page);
    cr_assert_eq(vt_loaded(b), 0);
}

Test(floor, protects_from_faults_of_more_important_vbars)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    VT_OK(vs_vbar_set_floor(a, 3 * e->page));
    VT_OK(vt_fault_pages(e, b, 0, 1, NULL));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, b, 1, 1, NULL));
    cr_assert_eq(vt_loaded(a), 3 * e->page);
    VT_OK(vt_unpin_pages(e, b, 0, 1));
}

Test(floor, reset_floors_clears_all)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vt_load_pages(e, b, 0, 4);
    VT_OK(vs_vbar_set_floor(a, 4 * e->page));
    VT_OK(vs_vbar_set_floor(b, 1 * e->page));
    cr_assert_eq(vt_meminfo(e).evictable, 3 * e->page);
    VT_OK(vs_device_reset_floors(e->dev));
    cr_assert_eq(vt_floor(a), 0);
    cr_assert_eq(vt_floor(b), 0);
    cr_assert_eq(vt_count_pages(a, VS_PAGE_PROTECTED), 0);
    cr_assert_eq(vt_meminfo(e).evictable, 8 * e->page);
    uint64_t freed = 0;
    VT_OK(vs_device_free_memory(e->dev, 8 * e->page, &freed));
    cr_assert_eq(freed, 8 * e->page);
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_reset_floors(NULL));
}

Test(floor, floor_does_not_stop_faults_or_destroy)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_vbar_set_floor(v, 4 * e->page));
    VT_OK(vt_fault_pages(e, v, 0, 4, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 4));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PROTECTED | VS_PAGE_RESIDENT), 4);
    VT_OK(vs_vbar_destroy(v));
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 0);
}

Test(floor, protected_flag_on_non_resident_pages)
{
    /* The flag says "below the floor", resident or not. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_vbar_set_floor(v, 2 * e->page));
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0] & ~VS_PAGE_PROTECTED, 0);
    cr_assert_eq(map[2], 0);
    cr_assert_eq(map[3], 0);
}

Test(floor, floor_beyond_size)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_status st = vs_vbar_set_floor(v, 100 * e->page);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_RANGE, "gave %s", vs_status_name(st));
    if (st == VS_OK)
        cr_assert_leq(vt_floor(v), 4 * e->page);
    /* Rounding UINT64_MAX up must not wrap to a tiny floor. */
    VT_OK(vs_vbar_set_floor(v, 2 * e->page));
    st = vs_vbar_set_floor(v, UINT64_MAX);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_RANGE || st == VS_ERR_INVALID_ARGUMENT,
              "gave %s", vs_status_name(st));
    if (st == VS_OK)
        cr_assert_eq(vt_floor(v), 4 * e->page, "UINT64_MAX floor became %llu",
                     (unsigned long long)vt_floor(v));
    else
        cr_assert_eq(vt_floor(v), 2 * e->page, "a refused floor changed the floor");
}
