/* Host buffers: reserved address range, committed and registered with the driver
 * as they grow (contents kept), unregistered as they shrink, counted in the stats
 * and the simulator's registrations. */
#include <string.h>

#include "harness.h"

TestSuite(host_buffer, .init = vt_init, .fini = vt_fini);

static void *vt_hb(vs_host_buffer_t *h, uint64_t *size, uint64_t *max)
{
    void *p = NULL;
    VT_OK(vs_host_buffer_get(h, &p, size, max));
    return p;
}

Test(host_buffer, grow_keeps_contents_and_address)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, 4 * VT_MIB, &h));
    uint64_t size = 9, max = 0;
    void *p0 = vt_hb(h, &size, &max);
    cr_assert_eq(size, 0);
    cr_assert_geq(max, 4 * VT_MIB);
    cr_assert_eq(vt_counters(e->ordinal).host_registered_bytes, 0);

    VT_OK(vs_host_buffer_resize(h, 100 * VT_KIB + 3));
    void *p = vt_hb(h, &size, &max);
    cr_assert_not_null(p);
    cr_assert_geq(size, 100 * VT_KIB + 3);
    if (p0)
        cr_assert_eq(p, p0, "the address moved");
    p0 = p;
    vt_fill(p, 100 * VT_KIB + 3, 8);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_geq(c.host_registrations, 1);
    cr_assert_geq(c.host_registered_bytes, 100 * VT_KIB + 3);
    vs_stats st = vt_stats(e);
    cr_assert_eq(st.cur_host_registered, c.host_registered_bytes);

    VT_OK(vs_host_buffer_resize(h, 4 * VT_MIB));
    p = vt_hb(h, &size, &max);
    cr_assert_eq(p, p0, "the address moved");
    cr_assert_eq(size, 4 * VT_MIB);
    cr_assert_eq(vt_verify(p, 100 * VT_KIB + 3, 8), -1, "growing lost the contents");
    memset((char *)p + 100 * VT_KIB + 3, 0xee, 4 * VT_MIB - 100 * VT_KIB - 3);
    c = vt_counters(e->ordinal);
    cr_assert_geq(c.host_registered_bytes, 4 * VT_MIB);
    cr_assert_eq(vt_stats(e).cur_host_registered, c.host_registered_bytes);
    VT_OK(vs_host_buffer_destroy(h));
    c = vt_counters(e->ordinal);
    cr_assert_eq(c.host_registrations, 0);
    cr_assert_eq(c.host_registered_bytes, 0);
    cr_assert_eq(vt_stats(e).cur_host_registered, 0);
}

Test(host_buffer, shrink_unregisters)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, 8 * VT_MIB, &h));
    VT_OK(vs_host_buffer_resize(h, 8 * VT_MIB));
    uint64_t size = 0, max = 0;
    void *p = vt_hb(h, &size, &max);
    vt_fill(p, 8 * VT_MIB, 9);
    uint64_t big = vt_counters(e->ordinal).host_registered_bytes;
    VT_OK(vs_host_buffer_resize(h, 10 * VT_KIB));
    void *q = vt_hb(h, &size, &max);
    cr_assert_eq(q, p);
    cr_assert_geq(size, 10 * VT_KIB);
    cr_assert_lt(size, 8 * VT_MIB);
    uint64_t small = vt_counters(e->ordinal).host_registered_bytes;
    cr_assert_lt(small, big, "shrinking kept everything registered");
    cr_assert_geq(small, 10 * VT_KIB);
    cr_assert_eq(vt_verify(q, 10 * VT_KIB, 9), -1, "shrinking lost the kept part");
    vs_stats st = vt_stats(e);
    cr_assert_eq(st.cur_host_registered, small);
    cr_assert_geq(st.peak_host_registered, big);
    VT_OK(vs_host_buffer_resize(h, 0));
    cr_assert_eq(vt_counters(e->ordinal).host_registered_bytes, 0);
    /* And grow again. */
    VT_OK(vs_host_buffer_resize(h, 3 * VT_MIB));
    q = vt_hb(h, &size, &max);
    memset(q, 1, 3 * VT_MIB);
    VT_OK(vs_host_buffer_destroy(h));
}

Test(host_buffer, not_counted_in_device_budget)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, 4 * VT_MIB, &h));
    VT_OK(vs_host_buffer_resize(h, 4 * VT_MIB));
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.available, mi.budget);
    cr_assert_eq(mi.used_others, 0);
    VT_OK(vs_host_buffer_destroy(h));
}

Test(host_buffer, register_failure_changes_nothing)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, 4 * VT_MIB, &h));
    VT_OK(vs_host_buffer_resize(h, 64 * VT_KIB));
    uint64_t size0 = 0, max = 0;
    void *p = vt_hb(h, &size0, &max);
    vt_fill(p, 64 * VT_KIB, 10);
    vs_sim_counters c0 = vt_counters(e->ordinal);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_HOST_REGISTER, 0, 1000, VS_ERR_OUT_OF_MEMORY));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_host_buffer_resize(h, 4 * VT_MIB));
    VT_OK(vs_sim_inject_clear(e->ordinal));
    uint64_t size1 = 0;
    void *q = vt_hb(h, &size1, &max);
    cr_assert_eq(q, p);
    cr_assert_eq(size1, size0, "a failed grow changed the size");
    /* Every registration failed, the restore of the old one too (Note [One
     * registration]): the contents and the size stay, the buffer is
     * unregistered until it grows again. */
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_leq(c1.host_registrations, c0.host_registrations);
    cr_assert_eq(vt_verify(q, 64 * VT_KIB, 10), -1);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_HOST_REGISTER, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_host_buffer_resize(h, 4 * VT_MIB));
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vs_host_buffer_resize(h, 4 * VT_MIB));
    VT_OK(vs_host_buffer_destroy(h));
}

Test(host_buffer, several_buffers)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h[4];
    for (int i = 0; i < 4; i++) {
        VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h[i]));
        VT_OK(vs_host_buffer_resize(h[i], (uint64_t)(i + 1) * 100 * VT_KIB));
    }
    uint64_t total = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t size = 0, max = 0;
        void *p = vt_hb(h[i], &size, &max);
        vt_fill(p, size, (uint64_t)i);
        total += size;
    }
    cr_assert_geq(vt_counters(e->ordinal).host_registered_bytes, total);
    for (int i = 0; i < 4; i++) {
        uint64_t size = 0, max = 0;
        void *p = vt_hb(h[i], &size, &max);
        cr_assert_eq(vt_verify(p, size, (uint64_t)i), -1, "buffers overlap");
    }
    VT_OK(vs_host_buffer_destroy(h[1]));
    VT_OK(vs_host_buffer_destroy(h[3]));
    VT_OK(vs_host_buffer_destroy(h[0]));
    VT_OK(vs_host_buffer_destroy(h[2]));
}

Test(host_buffer, bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = (vs_host_buffer_t *)0x1;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_host_buffer_create(e->dev, 0, &h));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_host_buffer_create(e->dev, UINT64_MAX, &h));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_host_buffer_create(e->dev, VT_MIB, NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_create(NULL, VT_MIB, &h));
    cr_assert_eq(h, (vs_host_buffer_t *)0x1);
    VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h));
    uint64_t sz = 0, mx = 0;
    vt_hb(h, &sz, &mx);
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT, vs_host_buffer_resize(h, mx + 1));
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT, vs_host_buffer_resize(h, UINT64_MAX));
    VT_OK(vs_host_buffer_destroy(h));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_resize(h, 1));
    void *p;
    uint64_t a, b;
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_get(h, &p, &a, &b));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_destroy(h));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_destroy(NULL));
}

/* Note [One registration]: however it grew, a host buffer is one registration
 * (CUDA refuses a copy whose host range spans two), and one failed register
 * with a working restore leaves the old registration in place. */
Test(host_buffer, growth_keeps_one_registration)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, 256 * VT_MIB, &h));
    uint64_t size = 0, max = 0;
    for (uint64_t n = 1; n <= 40; n++) {
        VT_OK(vs_host_buffer_resize(h, n * 1000 * VT_KIB + 123));
        vs_sim_counters c = vt_counters(e->ordinal);
        cr_assert_eq(c.host_registrations, 1, "after growth %llu: %llu registrations", (unsigned long long)n,
                     (unsigned long long)c.host_registrations);
        cr_assert_geq(c.host_registered_bytes, n * 1000 * VT_KIB + 123);
    }
    void *p = vt_hb(h, &size, &max);
    vt_fill(p, size, 3);
    vs_sim_counters c0 = vt_counters(e->ordinal);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_HOST_REGISTER, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_host_buffer_resize(h, 256 * VT_MIB));
    VT_OK(vs_sim_inject_clear(e->ordinal));
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_eq(c1.host_registrations, 1);
    cr_assert_eq(c1.host_registered_bytes, c0.host_registered_bytes);
    cr_assert_eq(vt_verify(p, size, 3), -1);
    VT_OK(vs_host_buffer_resize(h, 256 * VT_MIB));
    cr_assert_eq(vt_counters(e->ordinal).host_registrations, 1);
    cr_assert_eq(vt_verify(p, size, 3), -1);
    VT_OK(vs_host_buffer_destroy(h));
    vt_check(e);
}
