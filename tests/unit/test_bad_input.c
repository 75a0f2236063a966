/* Every bad input: NULL, destroyed, foreign and mistyped handles; ranges outside
 * the VBAR, overflowing offset + size, zero and huge sizes; NULL out-pointers.
 * Each gives its error, never a crash, and changes nothing. */
#include <string.h>

#include "harness.h"

TestSuite(bad_input, .init = vt_init, .fini = vt_fini);

/* Every function that takes a device, called with `d`: each must give `want`. */
static void vt_device_calls(vs_device_t *d, vs_status want)
{
    vs_device_props props;
    vs_memory_info mi;
    vs_stats st;
    uint64_t u = 0;
    uintptr_t h = 0;
    vs_vbar_t *v = (vs_vbar_t *)0x1;
    vs_scratch_t *s = (vs_scratch_t *)0x1;
    vs_host_buffer_t *hb = (vs_host_buffer_t *)0x1;
    char buf[16];
    size_t len = 0;
    static unsigned char host[64];
    VT_EXPECT(want, vs_device_get_props(d, &props));
    VT_EXPECT(want, vs_device_memory_info(d, &mi));
    VT_EXPECT(want, vs_device_set_limit(d, 0, 0));
    VT_EXPECT(want, vs_device_reclaim(d, 1, &u));
    VT_EXPECT(want, vs_device_free_memory(d, 1, &u));
    VT_EXPECT(want, vs_device_reset_floors(d));
    VT_EXPECT(want, vs_device_get_stats(d, &st));
    VT_EXPECT(want, vs_device_reset_stats(d));
    VT_EXPECT(want, vs_device_check_invariants(d));
    VT_EXPECT(want, vs_device_dump(d, buf, sizeof buf, &len));
    VT_EXPECT(want, vs_stream_create(d, &h));
    VT_EXPECT(want, vs_stream_destroy(d, 1));
    VT_EXPECT(want, vs_stream_synchronize(d, 0));
    VT_EXPECT(want, vs_event_create(d, &h));
    VT_EXPECT(want, vs_event_destroy(d, 1));
    VT_EXPECT(want, vs_event_record(d, 1, 0));
    VT_EXPECT(want, vs_event_query(d, 1));
    VT_EXPECT(want, vs_event_synchronize(d, 1));
    VT_EXPECT(want, vs_stream_wait_event(d, 0, 1));
    VT_EXPECT(want, vs_memcpy_async(d, VS_COPY_DEVICE_TO_DEVICE, (uintptr_t)host,
                                    (uintptr_t)(host + 32), 16, 0));
    VT_EXPECT(want, vs_vbar_create(d, 4096, &v));
    VT_EXPECT(want, vs_scratch_create(d, 4096, &s));
    VT_EXPECT(want, vs_host_buffer_create(d, 4096, &hb));
    VT_EXPECT(want, vs_device_close(d));
    cr_assert_eq(v, (vs_vbar_t *)0x1);
    cr_assert_eq(s, (vs_scratch_t *)0x1);
    cr_assert_eq(hb, (vs_host_buffer_t *)0x1);
}

/* Every function that takes a VBAR, called with `v`. */
static void vt_vbar_calls(vs_vbar_t *v, vs_status want)
{
    vs_devptr_t base = 0;
    uint64_t u = 0, sig = 0;
    size_t count = 0;
    uint8_t map[4];
    uint64_t sigs[4];
    VT_EXPECT(want, vs_vbar_get_base(v, &base, &u));
    VT_EXPECT(want, vs_vbar_alloc(v, 16, 0, &u));
    VT_EXPECT(want, vs_vbar_allocated(v, &u));
    VT_EXPECT(want, vs_vbar_fault(v, 0, 1, &sig));
    VT_EXPECT(want, vs_vbar_unpin(v, 0, 1, 0));
    VT_EXPECT(want, vs_vbar_page_signatures(v, 0, 1, sigs, 4, &count));
    VT_EXPECT(want, vs_vbar_prioritize(v));
    VT_EXPECT(want, vs_vbar_deprioritize(v));
    VT_EXPECT(want, vs_vbar_set_watermark(v, 0));
    VT_EXPECT(want, vs_vbar_get_watermark(v, &u));
    VT_EXPECT(want, vs_vbar_set_floor(v, 0));
    VT_EXPECT(want, vs_vbar_get_floor(v, &u));
    VT_EXPECT(want, vs_vbar_free_memory(v, 1, &u));
    VT_EXPECT(want, vs_vbar_loaded_size(v, &u));
    VT_EXPECT(want, vs_vbar_residency(v, map, 4, &count));
    VT_EXPECT(want, vs_vbar_destroy(v));
}

static void vt_scratch_calls(vs_scratch_t *s, vs_status want)
{
    vs_devptr_t p = 0;
    uint64_t a = 0, b = 0;
    VT_EXPECT(want, vs_scratch_resize(s, 4096));
    VT_EXPECT(want, vs_scratch_get(s, &p, &a, &b));
    VT_EXPECT(want, vs_scratch_destroy(s));
}

static void vt_host_calls(vs_host_buffer_t *h, vs_status want)
{
    void *p = NULL;
    uint64_t a = 0, b = 0;
    VT_EXPECT(want, vs_host_buffer_resize(h, 4096));
    VT_EXPECT(want, vs_host_buffer_get(h, &p, &a, &b));
    VT_EXPECT(want, vs_host_buffer_destroy(h));
}

Test(bad_input, null_handles)
{
    vt_device_calls(NULL, VS_ERR_INVALID_HANDLE);
    vt_vbar_calls(NULL, VS_ERR_INVALID_HANDLE);
    vt_scratch_calls(NULL, VS_ERR_INVALID_HANDLE);
    vt_host_calls(NULL, VS_ERR_INVALID_HANDLE);
}

Test(bad_input, closed_device)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_device_t *d = e->dev;
    vt_close(e);
    vt_device_calls(d, VS_ERR_INVALID_HANDLE);
    vt_assert_sim_clean(0);
}

Test(bad_input, destroyed_objects)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 2);
    VT_OK(vs_vbar_destroy(v));
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    VT_OK(vs_scratch_resize(s, e->page));
    VT_OK(vs_scratch_destroy(s));
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h));
    VT_OK(vs_host_buffer_resize(h, 4096));
    VT_OK(vs_host_buffer_destroy(h));
    /* New objects do not bring the old handles back to life. */
    vs_vbar_t *v2 = vt_vbar(e, 4);
    vs_scratch_t *s2 = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s2));
    vt_vbar_calls(v, VS_ERR_INVALID_HANDLE);
    vt_scratch_calls(s, VS_ERR_INVALID_HANDLE);
    vt_host_calls(h, VS_ERR_INVALID_HANDLE);
    /* ...and the new ones were not disturbed. */
    vt_load_pages(e, v2, 0, 4);
    cr_assert_eq(vt_loaded(v2), 4 * e->page);
    vt_check(e);
    VT_OK(vs_vbar_destroy(v2));
    VT_OK(vs_scratch_destroy(s2));
}

Test(bad_input, objects_of_a_closed_device)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_scratch_t *s = NULL;
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h));
    vt_close(e);
    vt_vbar_calls(v, VS_ERR_INVALID_HANDLE);
    vt_scratch_calls(s, VS_ERR_INVALID_HANDLE);
    vt_host_calls(h, VS_ERR_INVALID_HANDLE);
}

/* Plausible memory that vramswap never handed out. */
static uint64_t vt_junk[128];

static void vt_fill_junk(uint64_t seed)
{
    vt_rng r;
    vt_rng_seed(&r, seed);
    for (size_t i = 0; i < sizeof vt_junk / sizeof vt_junk[0]; i++)
        vt_junk[i] = vt_rng_next(&r);
}

Test(bad_input, foreign_pointers)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    for (uint64_t seed = 1; seed <= 4; seed++) {
        vt_fill_junk(seed);
        vt_device_calls((vs_device_t *)vt_junk, VS_ERR_INVALID_HANDLE);
        vt_vbar_calls((vs_vbar_t *)vt_junk, VS_ERR_INVALID_HANDLE);
        vt_scratch_calls((vs_scratch_t *)vt_junk, VS_ERR_INVALID_HANDLE);
        vt_host_calls((vs_host_buffer_t *)vt_junk, VS_ERR_INVALID_HANDLE);
    }
    /* Zeroed memory and memory inside a real object's neighbourhood. */
    memset(vt_junk, 0, sizeof vt_junk);
    vt_vbar_calls((vs_vbar_t *)vt_junk, VS_ERR_INVALID_HANDLE);
    vt_device_calls((vs_device_t *)vt_junk, VS_ERR_INVALID_HANDLE);
    vt_check(e);
}

Test(bad_input, misaligned_interior_pointers)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_vbar_calls((vs_vbar_t *)((char *)v + 8), VS_ERR_INVALID_HANDLE);
    vt_device_calls((vs_device_t *)((char *)e->dev + 8), VS_ERR_INVALID_HANDLE);
    cr_assert_eq(vt_loaded(v), 0);
    VT_OK(vs_vbar_destroy(v));
}

Test(bad_input, handles_of_the_wrong_type)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_scratch_t *s = NULL;
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h));
    vt_device_calls((vs_device_t *)v, VS_ERR_INVALID_HANDLE);
    vt_device_calls((vs_device_t *)s, VS_ERR_INVALID_HANDLE);
    vt_vbar_calls((vs_vbar_t *)e->dev, VS_ERR_INVALID_HANDLE);
    vt_vbar_calls((vs_vbar_t *)s, VS_ERR_INVALID_HANDLE);
    vt_vbar_calls((vs_vbar_t *)h, VS_ERR_INVALID_HANDLE);
    vt_scratch_calls((vs_scratch_t *)v, VS_ERR_INVALID_HANDLE);
    vt_scratch_calls((vs_scratch_t *)h, VS_ERR_INVALID_HANDLE);
    vt_host_calls((vs_host_buffer_t *)s, VS_ERR_INVALID_HANDLE);
    vt_host_calls((vs_host_buffer_t *)e->dev, VS_ERR_INVALID_HANDLE);
    /* All still alive and well. */
    vt_load_pages(e, v, 0, 1);
    VT_OK(vs_scratch_resize(s, e->page));
    VT_OK(vs_host_buffer_resize(h, 4096));
    vt_check(e);
    VT_OK(vs_vbar_destroy(v));
    VT_OK(vs_scratch_destroy(s));
    VT_OK(vs_host_buffer_destroy(h));
}

Test(bad_input, wild_pointers)
{
    /* Addresses that are not even mapped: validation must not dereference them. */
    vt_open(&(vt_params){.pages = 8});
    static const uintptr_t wild[] = {0x1, 0x10, 0x1000, 0xdeadbeef000ull, (uintptr_t)-4096,
                                     (uintptr_t)-8};
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        vt_vbar_calls((vs_vbar_t *)wild[i], VS_ERR_INVALID_HANDLE);
        vt_device_calls((vs_device_t *)wild[i], VS_ERR_INVALID_HANDLE);
        vt_scratch_calls((vs_scratch_t *)wild[i], VS_ERR_INVALID_HANDLE);
        vt_host_calls((vs_host_buffer_t *)wild[i], VS_ERR_INVALID_HANDLE);
    }
}

/* A range call that must be refused without touching anything. */
typedef vs_status (*vt_range_fn)(vs_vbar_t *v, uint64_t off, uint64_t size);

static vs_status vt_do_fault(vs_vbar_t *v, uint64_t off, uint64_t size)
{
    uint64_t sig = 42;
    vs_status st = vs_vbar_fault(v, off, size, &sig);
    if (st != VS_OK && st != VS_NOT_RESIDENT)
        cr_assert_eq(sig, 42, "signature written on an error");
    return st;
}

static vs_status vt_do_unpin(vs_vbar_t *v, uint64_t off, uint64_t size)
{
    return vs_vbar_unpin(v, off, size, 0);
}

static vs_status vt_do_sigs(vs_vbar_t *v, uint64_t off, uint64_t size)
{
    uint64_t sigs[8];
    size_t count = 0;
    return vs_vbar_page_signatures(v, off, size, sigs, 8, &count);
}

static void vt_bad_ranges(vt_env *e, vs_vbar_t *v, vt_range_fn fn, const char *what)
{
    const uint64_t S = 4 * e->page;
    const struct {
        uint64_t off, size;
        vs_status want;   /* VS_OK here means: OUT_OF_RANGE or INVALID_ARGUMENT */
    } cases[] = {
        {0, 0, VS_ERR_INVALID_ARGUMENT},
        {e->page, 0, VS_ERR_INVALID_ARGUMENT},
        {S, 1, VS_ERR_OUT_OF_RANGE},
        {S - 1, 2, VS_ERR_OUT_OF_RANGE},
        {0, S + 1, VS_ERR_OUT_OF_RANGE},
        {S + e->page, e->page, VS_ERR_OUT_OF_RANGE},
        {UINT64_MAX, 1, VS_ERR_OUT_OF_RANGE},
        {e->page, UINT64_MAX, VS_OK},
        {UINT64_MAX - 5, 10, VS_OK},
        {0, UINT64_MAX, VS_OK},
        {UINT64_MAX, UINT64_MAX, VS_OK},
        {S, 0, VS_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vs_status st = fn(v, cases[i].off, cases[i].size);
        if (cases[i].want == VS_OK)
            cr_assert(st == VS_ERR_OUT_OF_RANGE || st == VS_ERR_INVALID_ARGUMENT,
                      "%s(off %llu, size %llu) gave %s", what,
                      (unsigned long long)cases[i].off, (unsigned long long)cases[i].size,
                      vs_status_name(st));
        else
            cr_assert_eq(st, cases[i].want, "%s(off %llu, size %llu) gave %s, expected %s", what,
                         (unsigned long long)cases[i].off, (unsigned long long)cases[i].size,
                         vs_status_name(st), vs_status_name(cases[i].want));
    }
}

Test(bad_input, ranges)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vt_fault_pages(e, v, 3, 1, NULL));   /* page 3 pinned once */
    vs_stats s0 = vt_stats(e);
    vs_sim_counters c0 = vt_counters(e->ordinal);
    vt_bad_ranges(e, v, vt_do_fault, "fault");
    vt_bad_ranges(e, v, vt_do_unpin, "unpin");
    vt_bad_ranges(e, v, vt_do_sigs, "page_signatures");
    vs_stats s1 = vt_stats(e);
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_eq(s1.faults, s0.faults, "invalid faults were counted");
    cr_assert_eq(s1.pages_mapped, s0.pages_mapped);
    cr_assert_eq(c1.calls[VS_SIM_OP_MAP], c0.calls[VS_SIM_OP_MAP]);
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[3], VS_PAGE_RESIDENT | VS_PAGE_PINNED);
    cr_assert_eq(map[0] | map[1] | map[2], 0);
    VT_OK(vt_unpin_pages(e, v, 3, 1));
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 3, 1));
    vt_check(e);
}

Test(bad_input, null_out_pointers)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    uint8_t map[4];
    uint64_t sigs[4];
    size_t count = 0;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_get_props(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_memory_info(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_get_stats(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, e->page, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_create(e->dev, e->page, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_host_buffer_create(e->dev, e->page, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_create(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_event_create(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 1, 0, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_allocated(v, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_loaded_size(v, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_get_watermark(v, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_get_floor(v, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_residency(v, NULL, 4, &count));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_residency(v, map, 4, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_page_signatures(v, 0, e->page, NULL, 4, &count));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_page_signatures(v, 0, e->page, sigs, 4, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_dump(e->dev, NULL, 8, NULL));
    /* Allowed NULLs. */
    VT_OK(vs_vbar_residency(v, NULL, 0, &count));
    cr_assert_eq(count, 4);
    VT_OK(vs_vbar_fault(v, 0, 1, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 1, 0));
    VT_OK(vs_vbar_free_memory(v, e->page, NULL));
    VT_OK(vs_device_reclaim(e->dev, 0, NULL));
    VT_OK(vs_device_free_memory(e->dev, 0, NULL));
}

Test(bad_input, short_output_arrays)
{
    /* n smaller than the page count: the first n are written, count is the total. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 4);
    uint8_t map[4] = {0xff, 0xff, 0xff, 0xff};
    size_t count = 0;
    vs_status st = vs_vbar_residency(v, map, 2, &count);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_RANGE || st == VS_ERR_INVALID_ARGUMENT,
              "gave %s", vs_status_name(st));
    if (st == VS_OK) {
        cr_assert_eq(count, 4);
        cr_assert_eq(map[0], VS_PAGE_RESIDENT);
        cr_assert_eq(map[2], 0xff, "wrote past n");
    }
    uint64_t sigs[4] = {7, 7, 7, 7};
    st = vs_vbar_page_signatures(v, 0, 4 * e->page, sigs, 1, &count);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_RANGE || st == VS_ERR_INVALID_ARGUMENT,
              "gave %s", vs_status_name(st));
    if (st == VS_OK) {
        cr_assert_eq(count, 4);
        cr_assert_eq(sigs[1], 7, "wrote past n");
    }
}

Test(bad_input, destroy_and_close_while_pinned)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_EXPECT(VS_ERR_BUSY, vs_vbar_destroy(v));
    VT_EXPECT(VS_ERR_BUSY, vs_device_close(e->dev));
    cr_assert_eq(vt_loaded(v), 2 * e->page);
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 2);
    vt_check(e);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vs_vbar_destroy(v));
}

Test(bad_input, huge_sizes)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    uint64_t u = 0;
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(e->dev, UINT64_MAX, &u));
    VT_OK(vs_device_free_memory(e->dev, UINT64_MAX, &u));
    cr_assert_eq(u, 0);
    vs_vbar_t *v = (vs_vbar_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, UINT64_MAX, &v));
    vs_scratch_t *s = (vs_scratch_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_scratch_create(e->dev, UINT64_MAX, &s));
    vs_host_buffer_t *h = (vs_host_buffer_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_host_buffer_create(e->dev, UINT64_MAX, &h));
    VT_EXPECT2(VS_ERR_INVALID_ARGUMENT, VS_OK, vs_device_set_limit(e->dev, UINT64_MAX, 0));
    VT_OK(vs_device_set_limit(e->dev, 0, 0));
    vt_check(e);
}
