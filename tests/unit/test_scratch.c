/* Scratch buffers: a stable reserved range, pages mapped as the buffer grows
 * (counted in the budget, evicting VBAR pages if needed), all-or-nothing growth,
 * shrinking. */
#include "harness.h"

TestSuite(scratch, .init = vt_init, .fini = vt_fini);

static void vt_scratch_state(vs_scratch_t *s, vs_devptr_t *ptr, uint64_t *size, uint64_t *max)
{
    VT_OK(vs_scratch_get(s, ptr, size, max));
}

Test(scratch, create_maps_nothing)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    vs_devptr_t p = 0;
    uint64_t size = 9, max = 0;
    vt_scratch_state(s, &p, &size, &max);
    cr_assert_neq(p, 0);
    cr_assert_eq(size, 0);
    cr_assert_geq(max, 4 * e->page);
    cr_assert_eq(vt_meminfo(e).used_scratch, 0);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.mapped_bytes, 0);
    cr_assert_eq(c.reservations, 1);
    VT_OK(vs_scratch_destroy(s));
    cr_assert_eq(vt_counters(e->ordinal).reservations, 0);
}

Test(scratch, grow_and_shrink)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 6 * e->page, &s));
    vs_devptr_t p0 = 0, p = 0;
    uint64_t size = 0, max = 0;
    vt_scratch_state(s, &p0, &size, &max);

    VT_OK(vs_scratch_resize(s, 2 * e->page + 1));
    vt_scratch_state(s, &p, &size, &max);
    cr_assert_eq(p, p0, "the address moved");
    cr_assert_geq(size, 2 * e->page + 1);
    cr_assert_eq(vt_meminfo(e).used_scratch, 3 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 3 * e->page);
    vt_fill(vt_host(p), 2 * e->page + 1, 5);

    VT_OK(vs_scratch_resize(s, 6 * e->page));
    vt_scratch_state(s, &p, &size, &max);
    cr_assert_eq(p, p0);
    cr_assert_eq(size, 6 * e->page);
    cr_assert_eq(vt_meminfo(e).used_scratch, 6 * e->page);
    cr_assert_eq(vt_verify(vt_host(p), 2 * e->page + 1, 5), -1, "growing lost the contents");
    vt_fill(vt_host(p), 6 * e->page, 6);

    VT_OK(vs_scratch_resize(s, e->page));
    vt_scratch_state(s, &p, &size, &max);
    cr_assert_eq(p, p0);
    cr_assert_eq(vt_meminfo(e).used_scratch, e->page);
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, e->page);
    cr_assert_eq(vt_verify(vt_host(p), e->page, 6), -1, "shrinking lost the kept part");

    VT_OK(vs_scratch_resize(s, 0));
    cr_assert_eq(vt_meminfo(e).used_scratch, 0);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 0);
    vs_stats st = vt_stats(e);
    cr_assert_eq(st.cur_scratch, 0);
    cr_assert_eq(st.peak_scratch, 6 * e->page);
    VT_OK(vs_scratch_destroy(s));
}

Test(scratch, counts_in_the_budget)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 8 * e->page, &s));
    VT_OK(vs_scratch_resize(s, 5 * e->page));
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.used_scratch, 5 * e->page);
    cr_assert_eq(mi.available, 3 * e->page);
    cr_assert_eq(mi.used_others, 0, "scratch counted as others");
    cr_assert_eq(mi.evictable, 0, "scratch is not evictable");
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 3);
    VT_OK(vs_vbar_set_watermark(v, 8 * e->page));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 3, 1, NULL));
    /* Reclaim never touches scratch. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, 8 * e->page, NULL));
    cr_assert_eq(vt_meminfo(e).used_scratch, 5 * e->page);
    VT_OK(vs_scratch_destroy(s));
}

Test(scratch, grow_evicts_vbar_pages)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 8 * e->page, &s));
    VT_OK(vs_scratch_resize(s, 3 * e->page));
    cr_assert_eq(vt_loaded(v), 5 * e->page);
    uint8_t map[8];
    vt_residency(v, map, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(!!(map[i] & VS_PAGE_RESIDENT), i < 5, "page %d", i);
    cr_assert_eq(vt_meminfo(e).used_scratch, 3 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).phys_bytes, 8 * e->page);
    VT_OK(vs_scratch_destroy(s));
    cr_assert_eq(vt_meminfo(e).used_scratch, 0);
}

Test(scratch, grow_oom_leaves_nothing_mapped)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    VT_OK(vt_fault_pages(e, v, 0, 6, NULL));   /* pinned: not evictable */
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 8 * e->page, &s));
    VT_OK(vs_scratch_resize(s, e->page));
    vs_sim_counters c0 = vt_counters(e->ordinal);
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_scratch_resize(s, 4 * e->page));
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_eq(c1.mapped_bytes, c0.mapped_bytes, "a failed grow left pages mapped");
    cr_assert_eq(c1.phys_chunks, c0.phys_chunks);
    vs_devptr_t p = 0;
    uint64_t size = 0, max = 0;
    vt_scratch_state(s, &p, &size, &max);
    cr_assert_eq(size, e->page, "a failed grow changed the size");
    cr_assert_eq(vt_meminfo(e).used_scratch, e->page);
    /* Exactly what fits still works. */
    VT_OK(vs_scratch_resize(s, 2 * e->page));
    vt_check(e);
    VT_OK(vt_unpin_pages(e, v, 0, 6));
    VT_OK(vs_scratch_destroy(s));
}

Test(scratch, grow_oom_with_phys_failure)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 8 * e->page, &s));
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_CREATE, 2, 1, VS_ERR_OUT_OF_MEMORY));
    vs_status st = vs_scratch_resize(s, 4 * e->page);
    cr_assert(st == VS_ERR_OUT_OF_MEMORY || st == VS_OK, "gave %s", vs_status_name(st));
    vs_devptr_t p = 0;
    uint64_t size = 0, max = 0;
    vt_scratch_state(s, &p, &size, &max);
    if (st != VS_OK) {
        cr_assert_eq(size, 0);
        cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 0);
        cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 0);
    }
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 1, 1, VS_ERR_BACKEND));
    VT_OK(vs_scratch_resize(s, 0));
    VT_EXPECT(VS_ERR_BACKEND, vs_scratch_resize(s, 4 * e->page));
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 0);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 0);
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vs_scratch_destroy(s));
}

Test(scratch, bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_scratch_t *s = (vs_scratch_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_create(e->dev, 0, &s));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_create(e->dev, UINT64_MAX, &s));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_create(e->dev, e->page, NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_create(NULL, e->page, &s));
    cr_assert_eq(s, (vs_scratch_t *)0x1);
    VT_OK(vs_scratch_create(e->dev, 2 * e->page, &s));
    vs_devptr_t p = 0;
    uint64_t sz = 0, mx = 0;
    vt_scratch_state(s, &p, &sz, &mx);
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT, vs_scratch_resize(s, mx + 1));
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT, vs_scratch_resize(s, UINT64_MAX));
    cr_assert_eq(vt_meminfo(e).used_scratch, 0);
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_get(s, NULL, NULL, NULL));
    VT_OK(vs_scratch_destroy(s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_resize(s, e->page));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_destroy(s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_destroy(NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_resize(NULL, 1));
}
