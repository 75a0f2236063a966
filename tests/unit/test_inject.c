/* Driver failures injected into the simulator: out-of-memory while creating
 * physical memory, map and set-access failures, transient NOT_READY (retried),
 * persistent backend errors (VS_ERR_BACKEND with everything undone). */
#include "harness.h"

TestSuite(inject, .init = vt_init, .fini = vt_fini);

/* The simulator and the device agree: every resident page is one live chunk and
 * one mapping, nothing more (scratch buffers aside). */
static void vt_expect_consistent(vt_env *e, vs_vbar_t **v, int nv)
{
    uint64_t loaded = 0;
    for (int i = 0; i < nv; i++)
        loaded += vt_loaded(v[i]);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.mapped_bytes, loaded, "sim maps %llu bytes, VBARs say %llu",
                 (unsigned long long)c.mapped_bytes, (unsigned long long)loaded);
    cr_assert_eq(c.phys_bytes, loaded, "sim holds %llu physical bytes, VBARs say %llu",
                 (unsigned long long)c.phys_bytes, (unsigned long long)loaded);
    cr_assert_eq(vt_meminfo(e).used_weights, loaded);
    vt_check(e);
}

Test(inject, phys_create_oom_during_fault)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_CREATE, 0, 1000, VS_ERR_OUT_OF_MEMORY));
    uint64_t sig = 5;
    vs_status st = vt_fault_pages(e, v, 0, 2, &sig);
    cr_assert(st == VS_NOT_RESIDENT || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    cr_assert_eq(vt_loaded(v), 0);
    vt_expect_consistent(e, &v, 1);
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vt_fault_pages(e, v, 0, 2, &sig));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
}

Test(inject, phys_create_oom_evicts_and_retries)
{
    /* The driver says out of memory once although the count says there is room:
     * a less important page can make room (its chunk is reused). */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_CREATE, 0, 1, VS_ERR_OUT_OF_MEMORY));
    vs_status st = vt_fault_pages(e, b, 0, 1, NULL);
    cr_assert(st == VS_OK || st == VS_NOT_RESIDENT, "gave %s", vs_status_name(st));
    if (st == VS_OK)
        VT_OK(vt_unpin_pages(e, b, 0, 1));
    cr_assert_eq(vt_count_pages(b, VS_PAGE_PINNED), 0);
    vs_vbar_t *both[2] = {a, b};
    vt_expect_consistent(e, both, 2);
}

Test(inject, phys_create_oom_on_second_page)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_CREATE, 1, 1000, VS_ERR_OUT_OF_MEMORY));
    vs_status st = vt_fault_pages(e, v, 0, 3, NULL);
    cr_assert(st == VS_NOT_RESIDENT || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0, "pins left after a failed fault");
    vt_expect_consistent(e, &v, 1);
}

Test(inject, map_failure_leaks_nothing)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 0, 1, VS_ERR_BACKEND));
    uint64_t sig = 5;
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 0, 1, &sig));
    cr_assert_eq(vt_loaded(v), 0);
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    vt_expect_consistent(e, &v, 1);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 0, "the chunk leaked");
    vs_stats s1 = vt_stats(e);
    cr_assert_gt(s1.backend_failures, s0.backend_failures);
    /* The next fault works. */
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 1));
}

Test(inject, map_failure_mid_range)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));   /* one pin that must survive */
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 1, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 0, 4, NULL));
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT | VS_PAGE_PINNED, "the earlier pin changed");
    for (int i = 1; i < 4; i++)
        cr_assert_eq(map[i] & VS_PAGE_PINNED, 0, "page %d left pinned", i);
    vt_expect_consistent(e, &v, 1);
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    VT_EXPECT(VS_ERR_NOT_PINNED, vt_unpin_pages(e, v, 0, 1));
}

Test(inject, map_oom_is_not_resident)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 0, 1000, VS_ERR_OUT_OF_MEMORY));
    vs_status st = vt_fault_pages(e, v, 0, 1, NULL);
    cr_assert(st == VS_NOT_RESIDENT || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
    vt_expect_consistent(e, &v, 1);
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
}

Test(inject, transient_set_access_is_retried)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 2, VS_ERR_NOT_READY));
    uint64_t sig = 0;
    VT_OK(vt_fault_pages(e, v, 0, 2, &sig));
    cr_assert_neq(sig, 0);
    vs_stats s1 = vt_stats(e);
    cr_assert_geq(s1.transient_retries - s0.transient_retries, 2);
    cr_assert_eq(s1.backend_failures, s0.backend_failures);
    vt_fill(vt_host(vt_base(v)), 2 * e->page, 4);
    cr_assert_eq(vt_verify(vt_host(vt_base(v)), 2 * e->page, 4), -1);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    vt_expect_consistent(e, &v, 1);
}

Test(inject, transient_after_forced_eviction)
{
    /* comfy-aimdo's "Fault failed: 2": NOT_READY right after evictions. */
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 1, VS_ERR_NOT_READY));
    VT_OK(vt_fault_pages(e, b, 0, 4, NULL));
    cr_assert_gt(vt_stats(e).transient_retries, 0);
    VT_OK(vt_unpin_pages(e, b, 0, 4));
    vs_vbar_t *both[2] = {a, b};
    vt_expect_consistent(e, both, 2);
}

Test(inject, persistent_not_ready_gives_up)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 1000000, VS_ERR_NOT_READY));
    vs_status st = vt_fault_pages(e, v, 0, 1, NULL);
    cr_assert(st == VS_ERR_BACKEND || st == VS_ERR_NOT_READY, "gave %s", vs_status_name(st));
    cr_assert_eq(vt_loaded(v), 0);
    vt_expect_consistent(e, &v, 1);
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_lt(c.calls[VS_SIM_OP_SET_ACCESS], 1000, "retries are not bounded");
}

Test(inject, persistent_backend_error_undoes_everything)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 1);
    uint64_t sig_before = 0;
    size_t n = 0;
    VT_OK(vs_vbar_page_signatures(v, 0, e->page, &sig_before, 1, &n));
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 1000000, VS_ERR_BACKEND));
    uint64_t sig = 9;
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 1, 1, &sig));
    vs_stats s1 = vt_stats(e);
    cr_assert_gt(s1.backend_failures, s0.backend_failures);
    uint8_t map[4];
    vt_residency(v, map, 4);
    cr_assert_eq(map[0], VS_PAGE_RESIDENT);
    cr_assert_eq(map[1], 0, "the failed page stayed resident");
    vt_expect_consistent(e, &v, 1);
    uint64_t sig_after = 0;
    VT_OK(vs_vbar_page_signatures(v, 0, e->page, &sig_after, 1, &n));
    cr_assert_eq(sig_after, sig_before);
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vt_fault_pages(e, v, 0, 4, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 4));
}

Test(inject, reserve_failure_on_create)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = (vs_vbar_t *)0x1;
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_VA_RESERVE, 0, 1, VS_ERR_OUT_OF_MEMORY));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_vbar_create(e->dev, 4 * e->page, &v));
    cr_assert_eq(v, (vs_vbar_t *)0x1);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_VA_RESERVE, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_vbar_create(e->dev, 4 * e->page, &v));
    cr_assert_eq(v, (vs_vbar_t *)0x1);
    cr_assert_eq(vt_counters(e->ordinal).reservations, 0);
    vs_scratch_t *s = (vs_scratch_t *)0x1;
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_VA_RESERVE, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_scratch_create(e->dev, 4 * e->page, &s));
    cr_assert_eq(s, (vs_scratch_t *)0x1);
    vt_check(e);
}

Test(inject, stream_and_event_creation_failures)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    uintptr_t s = 7;
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_STREAM_CREATE, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_stream_create(e->dev, &s));
    cr_assert_eq(s, 7);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_EVENT_CREATE, 0, 1, VS_ERR_OUT_OF_MEMORY));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_event_create(e->dev, &s));
    cr_assert_eq(s, 7);
}

Test(inject, event_creation_failure_during_unpin)
{
    /* The unpin needs an event for the page's last use. If the driver cannot make
     * one, either the unpin fails with the pins unchanged, or it succeeds without
     * leaving anything unsafe behind. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_EVENT_CREATE, 0, 1000, VS_ERR_BACKEND));
    vs_status st = vt_unpin_pages(e, v, 0, 2);
    VT_OK(vs_sim_inject_clear(e->ordinal));
    if (st != VS_OK) {
        cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 2, "a failed unpin changed pins");
        VT_OK(vt_unpin_pages(e, v, 0, 2));
    }
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 0);
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, NULL));
    vt_expect_consistent(e, &v, 1);
}

Test(inject, mem_info_failure)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MEM_INFO, 0, 1, VS_ERR_BACKEND));
    vs_memory_info mi;
    vs_status st = vs_device_memory_info(e->dev, &mi);
    cr_assert(st == VS_OK || st == VS_ERR_BACKEND, "gave %s", vs_status_name(st));
    /* Faults keep working (with the last figure or a fresh one). */
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MEM_INFO, 0, 1, VS_ERR_BACKEND));
    st = vt_fault_pages(e, v, 0, 1, NULL);
    cr_assert(st == VS_OK || st == VS_ERR_BACKEND, "gave %s", vs_status_name(st));
    if (st == VS_OK)
        VT_OK(vt_unpin_pages(e, v, 0, 1));
    vt_expect_consistent(e, &v, 1);
}

Test(inject, skip_counts_calls)
{
    /* The third phys_create fails: pages 0, 1 map, page 2 does not. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_CREATE, 2, 1000, VS_ERR_BACKEND));
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    VT_OK(vt_fault_pages(e, v, 1, 1, NULL));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 2, 1, NULL));
    cr_assert_geq(vt_counters(e->ordinal).injected_failures, 1);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    vt_expect_consistent(e, &v, 1);
}
