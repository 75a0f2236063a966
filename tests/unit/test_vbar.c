/* VBAR basics: creation rounds to pages, base and size, sub-allocation order and
 * alignment, a full VBAR, destroy. */
#include "harness.h"

TestSuite(vbar, .init = vt_init, .fini = vt_fini);

Test(vbar, create_rounds_up_to_pages)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    const uint64_t sizes[] = {1, e->page - 1, e->page, e->page + 1, 3 * e->page + 17};
    const uint64_t pages[] = {1, 1, 1, 2, 4};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        vs_vbar_t *v = NULL;
        VT_OK(vs_vbar_create(e->dev, sizes[i], &v));
        vs_devptr_t base = 0;
        uint64_t size = 0;
        VT_OK(vs_vbar_get_base(v, &base, &size));
        cr_assert_eq(size, pages[i] * e->page, "size %llu -> %llu", (unsigned long long)sizes[i],
                     (unsigned long long)size);
        cr_assert_neq(base, 0);
        cr_assert_eq(base % e->props.granularity, 0, "base not aligned");
        size_t count = 0;
        VT_OK(vs_vbar_residency(v, NULL, 0, &count));
        cr_assert_eq(count, pages[i]);
        cr_assert_eq(vt_loaded(v), 0, "a new VBAR has pages mapped");
        uint64_t wm = 0, fl = 1;
        VT_OK(vs_vbar_get_watermark(v, &wm));
        VT_OK(vs_vbar_get_floor(v, &fl));
        cr_assert_eq(wm, size, "a new VBAR has a watermark");
        cr_assert_eq(fl, 0, "a new VBAR has a floor");
        VT_OK(vs_vbar_destroy(v));
    }
}

Test(vbar, reserving_costs_no_memory)
{
    /* Address space only: VBARs far larger than the device are fine. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = NULL;
    VT_OK(vs_vbar_create(e->dev, 64 * e->capacity, &v));
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.used_weights, 0);
    cr_assert_eq(mi.available, mi.budget);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.reservations, 1);
    cr_assert_eq(c.phys_chunks, 0);
    cr_assert_eq(c.mapped_bytes, 0);
    VT_OK(vs_vbar_destroy(v));
    cr_assert_eq(vt_counters(e->ordinal).reservations, 0);
}

Test(vbar, vbars_do_not_overlap)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    enum { N = 6 };
    vs_vbar_t *v[N];
    vs_devptr_t base[N];
    uint64_t size[N];
    for (int i = 0; i < N; i++) {
        VT_OK(vs_vbar_create(e->dev, (uint64_t)(i + 1) * e->page, &v[i]));
        VT_OK(vs_vbar_get_base(v[i], &base[i], &size[i]));
        for (int j = 0; j < i; j++)
            cr_assert(base[i] + size[i] <= base[j] || base[j] + size[j] <= base[i],
                      "VBARs %d and %d overlap", i, j);
    }
    for (int i = 0; i < N; i++)
        VT_OK(vs_vbar_destroy(v[i]));
}

Test(vbar, alloc_in_order_with_default_alignment)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uint64_t off = 99, used = 99;
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 0);
    VT_OK(vs_vbar_alloc(v, 1, 0, &off));
    cr_assert_eq(off, 0);
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 1);
    VT_OK(vs_vbar_alloc(v, 1000, 0, &off));
    cr_assert_eq(off, 256, "default alignment is 256");
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 1256);
    VT_OK(vs_vbar_alloc(v, 10, 1, &off));
    cr_assert_eq(off, 1256, "align 1 packs");
    VT_OK(vs_vbar_alloc(v, 10, 4096, &off));
    cr_assert_eq(off, 4096);
    /* The next 2-page boundary is the end of the VBAR. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 1, 2 * e->page, &off));
    VT_OK(vs_vbar_alloc(v, 1, e->page, &off));
    cr_assert_eq(off, e->page);
}

Test(vbar, alloc_offsets_increase_and_are_aligned)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_rng rng;
    vt_rng_seed(&rng, 42);
    uint64_t prev_end = 0;
    for (;;) {
        uint64_t size = vt_rng_range(&rng, 1, 40000);
        uint64_t align = 1ull << vt_rng_below(&rng, 17);
        uint64_t off = 0;
        vs_status st = vs_vbar_alloc(v, size, align, &off);
        uint64_t want = (prev_end + align - 1) & ~(align - 1);
        if (want + size > 8 * e->page) {
            cr_assert_eq(st, VS_ERR_OUT_OF_MEMORY, "alloc past the end gave %s",
                         vs_status_name(st));
            break;
        }
        VT_OK(st);
        cr_assert_eq(off, want);
        cr_assert_eq(off % align, 0);
        prev_end = off + size;
        uint64_t used = 0;
        VT_OK(vs_vbar_allocated(v, &used));
        cr_assert_eq(used, prev_end);
    }
}

Test(vbar, alloc_alignment_that_does_not_divide_the_size)
{
    /* A 3-page VBAR; after 70000 bytes the next 128 KiB-aligned offset is 128 KiB,
     * and 100 bytes fit there. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 3);
    uint64_t off = 7;
    VT_OK(vs_vbar_alloc(v, 70000, 0, &off));
    cr_assert_eq(off, 0);
    VT_OK(vs_vbar_alloc(v, 100, 2 * e->page, &off));
    cr_assert_eq(off, 2 * e->page);
}

Test(vbar, alloc_alignment_larger_than_the_vbar)
{
    /* Offset 0 is aligned to anything. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 1);
    uint64_t off = 7;
    VT_OK(vs_vbar_alloc(v, 100, 4 * e->page, &off));
    cr_assert_eq(off, 0);
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 100, 4 * e->page, &off));
}

Test(vbar, alloc_fills_exactly_then_oom)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uint64_t off = 7;
    VT_OK(vs_vbar_alloc(v, 2 * e->page, 0, &off));
    cr_assert_eq(off, 0);
    off = 7;
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 1, 1, &off));
    cr_assert_eq(off, 7, "offset written on failure");
    uint64_t used = 0;
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 2 * e->page);
}

Test(vbar, alloc_too_big_changes_nothing)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uint64_t off = 0;
    VT_OK(vs_vbar_alloc(v, 100, 0, &off));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 2 * e->page, 0, &off));
    VT_EXPECT2(VS_ERR_OUT_OF_MEMORY, VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, UINT64_MAX, 0, &off));
    VT_EXPECT2(VS_ERR_OUT_OF_MEMORY, VS_ERR_INVALID_ARGUMENT,
               vs_vbar_alloc(v, UINT64_MAX - 200, 256, &off));
    VT_EXPECT2(VS_ERR_OUT_OF_MEMORY, VS_ERR_INVALID_ARGUMENT,
               vs_vbar_alloc(v, 1, 1ull << 63, &off));
    uint64_t used = 0;
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 100);
    /* Still usable. */
    VT_OK(vs_vbar_alloc(v, 100, 0, &off));
    cr_assert_eq(off, 256);
}

Test(vbar, alloc_bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uint64_t off = 7;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 0, 0, &off));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 16, 3, &off));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 16, 384, &off));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 16, 0, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_allocated(v, NULL));
    cr_assert_eq(off, 7);
    uint64_t used = 1;
    VT_OK(vs_vbar_allocated(v, &used));
    cr_assert_eq(used, 0);
}

Test(vbar, create_bad_sizes)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = (vs_vbar_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, 0, &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, UINT64_MAX, &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, UINT64_MAX - e->page + 2, &v));
    vs_status st = vs_vbar_create(e->dev, 1ull << 62, &v);
    cr_assert(st == VS_ERR_INVALID_ARGUMENT || st == VS_ERR_OUT_OF_MEMORY,
              "a 4 EiB VBAR gave %s", vs_status_name(st));
    cr_assert_eq(v, (vs_vbar_t *)0x1, "out-pointer written on failure");
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, e->page, NULL));
    cr_assert_eq(vt_counters(e->ordinal).reservations, 0);
}

Test(vbar, get_base_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 3);
    vs_devptr_t base = 0;
    uint64_t size = 0;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_get_base(v, NULL, NULL));
    VT_OK(vs_vbar_get_base(v, &base, &size));
    cr_assert_eq(size, 3 * e->page);
}

Test(vbar, destroy_unmaps_and_releases)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 6);
    vt_load_pages(e, v, 0, 6);
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, 6 * e->page);
    cr_assert_eq(vt_meminfo(e).used_weights, 6 * e->page);
    VT_OK(vs_vbar_destroy(v));
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.mapped_bytes, 0);
    cr_assert_eq(c.phys_chunks, 0);
    cr_assert_eq(c.reservations, 0);
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.used_weights, 0);
    cr_assert_eq(mi.available, mi.budget);
}

Test(vbar, destroy_with_pinned_pages_is_busy)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 4);
    VT_OK(vt_fault_pages(e, v, 2, 1, NULL));
    VT_EXPECT(VS_ERR_BUSY, vs_vbar_destroy(v));
    /* Nothing was released. */
    cr_assert_eq(vt_loaded(v), 4 * e->page);
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 1);
    vt_check(e);
    VT_OK(vt_unpin_pages(e, v, 2, 1));
    VT_OK(vs_vbar_destroy(v));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_destroy(v));
}

Test(vbar, many_vbars)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    enum { N = 200 };
    static vs_vbar_t *v[N];
    for (int i = 0; i < N; i++)
        v[i] = vt_vbar(e, 1);
    cr_assert_eq(vt_counters(e->ordinal).reservations, N);
    for (int i = 0; i < N; i += 2)
        VT_OK(vs_vbar_destroy(v[i]));
    vt_check(e);
    for (int i = 1; i < N; i += 2)
        VT_OK(vs_vbar_destroy(v[i]));
}
