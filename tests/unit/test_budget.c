/* The budget: memory_info fields add up, headroom, limits set at open and at run
 * time, usage by others (vs_sim_set_external_usage), faults refused when no room. */
#include "harness.h"

TestSuite(budget, .init = vt_init, .fini = vt_fini);

/* Every figure of memory_info against what the test knows. */
static void vt_expect_info(vt_env *e, uint64_t total, uint64_t headroom, uint64_t weights,
                           uint64_t scratch, uint64_t intercepted, uint64_t others,
                           uint64_t evictable)
{
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.total, total, "total %llu", (unsigned long long)mi.total);
    cr_assert_eq(mi.headroom, headroom);
    cr_assert_eq(mi.budget, total - headroom);
    cr_assert_eq(mi.used_weights, weights, "weights %llu, expected %llu",
                 (unsigned long long)mi.used_weights, (unsigned long long)weights);
    cr_assert_eq(mi.used_scratch, scratch);
    cr_assert_eq(mi.used_intercepted, intercepted);
    cr_assert_eq(mi.used_others, others, "others %llu, expected %llu",
                 (unsigned long long)mi.used_others, (unsigned long long)others);
    uint64_t used = weights + scratch + intercepted + others;
    uint64_t avail = used >= mi.budget ? 0 : mi.budget - used;
    cr_assert_eq(mi.available, avail, "available %llu, expected %llu",
                 (unsigned long long)mi.available, (unsigned long long)avail);
    cr_assert_eq(mi.evictable, evictable, "evictable %llu, expected %llu",
                 (unsigned long long)mi.evictable, (unsigned long long)evictable);
}

Test(budget, fresh_device)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vt_expect_info(e, 16 * e->page, 0, 0, 0, 0, 0, 0);
}

Test(budget, headroom_is_kept_free)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8, .headroom = 2 * 64 * VT_KIB});
    vt_expect_info(e, 8 * e->page, 2 * e->page, 0, 0, 0, 0, 0);
    vs_vbar_t *a = vt_vbar(e, 8);
    vs_vbar_t *b = vt_vbar(e, 8);
    vt_load_pages(e, a, 0, 6);
    vt_expect_info(e, 8 * e->page, 2 * e->page, 6 * e->page, 0, 0, 0, 6 * e->page);
    /* The budget is full: B's page evicts A's top page instead of using the headroom. */
    VT_OK(vt_fault_pages(e, b, 0, 1, NULL));
    cr_assert_eq(vt_loaded(a), 5 * e->page);
    vt_expect_info(e, 8 * e->page, 2 * e->page, 6 * e->page, 0, 0, 0, 5 * e->page);
    VT_OK(vt_unpin_pages(e, b, 0, 1));
}

Test(budget, limit_at_open)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .limit = 6 * 64 * VT_KIB});
    vt_expect_info(e, 6 * e->page, 0, 0, 0, 0, 0, 0);
    vs_vbar_t *v = vt_vbar(e, 16);
    vt_load_pages(e, v, 0, 6);
    VT_OK(vs_vbar_set_watermark(v, 16 * e->page));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    vt_expect_info(e, 6 * e->page, 0, 6 * e->page, 0, 0, 0, 6 * e->page);
}

Test(budget, set_limit_evicts_to_fit)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *a = vt_vbar(e, 8);
    vs_vbar_t *b = vt_vbar(e, 8);
    vt_load_pages(e, a, 0, 6);
    vt_load_pages(e, b, 0, 6);
    VT_OK(vs_device_set_limit(e->dev, 10 * e->page, 1 * e->page));
    /* Budget 9 pages, 12 used: A loses its top 3. */
    vt_expect_info(e, 10 * e->page, e->page, 9 * e->page, 0, 0, 0, 9 * e->page);
    cr_assert_eq(vt_loaded(a), 3 * e->page);
    cr_assert_eq(vt_loaded(b), 6 * e->page);
    /* Raise it again: nothing comes back by itself, room is available. */
    VT_OK(vs_device_set_limit(e->dev, 0, 0));
    vt_expect_info(e, 16 * e->page, 0, 9 * e->page, 0, 0, 0, 9 * e->page);
}

Test(budget, set_limit_with_pinned_pages)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *a = vt_vbar(e, 8);
    VT_OK(vt_fault_pages(e, a, 0, 8, NULL));
    vs_status st = vs_device_set_limit(e->dev, 4 * e->page, 0);
    cr_assert(st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
    /* Pinned pages stay. */
    cr_assert_eq(vt_loaded(a), 8 * e->page);
    vs_memory_info mi = vt_meminfo(e);
    cr_assert_eq(mi.available, 0);
    vt_check(e);
    VT_OK(vt_unpin_pages(e, a, 0, 8));
}

Test(budget, set_limit_bad_values)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_set_limit(NULL, 0, 0));
    /* A headroom larger than the limit leaves no budget at all. */
    vs_status st = vs_device_set_limit(e->dev, 2 * e->page, 3 * e->page);
    if (st == VS_OK) {
        vs_memory_info mi = vt_meminfo(e);
        cr_assert_eq(mi.budget, 0, "budget underflowed to %llu", (unsigned long long)mi.budget);
        cr_assert_eq(mi.available, 0);
    } else {
        cr_assert_eq(st, VS_ERR_INVALID_ARGUMENT, "gave %s", vs_status_name(st));
    }
}

Test(budget, external_usage_reduces_available)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 4);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 5 * e->page));
    cr_assert_eq(vt_counters(e->ordinal).external_bytes, 5 * e->page);
    vt_expect_info(e, 16 * e->page, 0, 4 * e->page, 0, 0, 5 * e->page, 4 * e->page);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 12 * e->page));
    vt_expect_info(e, 16 * e->page, 0, 4 * e->page, 0, 0, 12 * e->page, 4 * e->page);
    /* Does not fit next to what is mapped. */
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_sim_set_external_usage(e->ordinal, 13 * e->page));
    cr_assert_eq(vt_counters(e->ordinal).external_bytes, 12 * e->page);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 0));
    vt_expect_info(e, 16 * e->page, 0, 4 * e->page, 0, 0, 0, 4 * e->page);
}

Test(budget, no_room_is_not_resident)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);   /* more important */
    vt_load_pages(e, b, 0, 2);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 6 * e->page));
    vs_stats s0 = vt_stats(e);
    uint64_t sig = 5;
    /* A is less important than everything resident. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, a, 0, 1, &sig));
    cr_assert_eq(sig, 0);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.fault_not_resident - s0.fault_not_resident, 1);
    cr_assert_eq(s1.fault_fast_fails, s0.fault_fast_fails);
    cr_assert_eq(vt_loaded(a), 0);
    cr_assert_eq(vt_loaded(b), 2 * e->page);
    /* B's page 2 is less important than B's 0 and 1: no room either. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, b, 2, 1, NULL));
    /* Once the other user leaves, it fits. */
    VT_OK(vs_sim_set_external_usage(e->ordinal, 0));
    VT_OK(vt_fault_pages(e, a, 0, 1, NULL));
    VT_OK(vt_unpin_pages(e, a, 0, 1));
}

Test(budget, over_budget_faults_reuse_chunks)
{
    /* Others grew past the budget: a fault can still take a less important page's
     * chunk (reuse keeps usage constant). */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    VT_OK(vs_sim_set_external_usage(e->ordinal, 4 * e->page));
    cr_assert_eq(vt_meminfo(e).available, 0);
    VT_OK(vt_fault_pages(e, b, 0, 2, NULL));
    cr_assert_eq(vt_loaded(a), 2 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 4);
    VT_OK(vt_unpin_pages(e, b, 0, 2));
}

Test(budget, pinned_and_floor_not_evictable)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 8);
    VT_OK(vs_vbar_set_floor(v, 2 * e->page));
    VT_OK(vt_fault_pages(e, v, 5, 2, NULL));
    vt_expect_info(e, 16 * e->page, 0, 8 * e->page, 0, 0, 0, 4 * e->page);
    VT_OK(vt_unpin_pages(e, v, 5, 2));
    vt_expect_info(e, 16 * e->page, 0, 8 * e->page, 0, 0, 0, 6 * e->page);
}

Test(budget, mem_polls_follow_the_poll_interval)
{
    /* mem_poll_ns 0 (harness): every fresh view asks the driver. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_stats s0 = vt_stats(e);
    vt_meminfo(e);
    vt_meminfo(e);
    vs_stats s1 = vt_stats(e);
    cr_assert_geq(s1.mem_polls - s0.mem_polls, 2);
}

Test(budget, mem_polls_are_cached)
{
    vt_configure_sim(&(vt_params){.pages = 8});
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.headroom = 0;
    cfg.mem_poll_ns = 3600ull * 1000000000ull;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("sim", 0, &cfg, &dev));
    vs_stats s0, s1;
    vs_memory_info mi;
    VT_OK(vs_device_memory_info(dev, &mi));
    VT_OK(vs_device_get_stats(dev, &s0));
    for (int i = 0; i < 10; i++)
        VT_OK(vs_device_memory_info(dev, &mi));
    VT_OK(vs_device_get_stats(dev, &s1));
    cr_assert_eq(s1.mem_polls, s0.mem_polls, "the driver was asked again within mem_poll_ns");
    VT_OK(vs_device_close(dev));
}

Test(budget, bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_memory_info(e->dev, NULL));
    vs_memory_info mi;
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_memory_info(NULL, &mi));
}

/* Note [Process quota]: the limit caps own use, not own + others. */
Test(budget, process_scope_limit_ignores_others)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .limit = 6 * 64 * VT_KIB,
                                     .flags = VS_DEVICE_LIMIT_PROCESS});
    VT_OK(vs_sim_set_external_usage(e->ordinal, 8 * e->page));
    /* Device scope would leave nothing (others 8 > limit 6); the quota leaves 6. */
    cr_assert_eq(vt_meminfo(e).available, 6 * e->page, "available %llu",
                 (unsigned long long)vt_meminfo(e).available);
    vs_vbar_t *v = vt_vbar(e, 16);
    vt_load_pages(e, v, 0, 6);
    cr_assert_eq(vt_meminfo(e).available, 0);
    VT_OK(vs_vbar_set_watermark(v, 16 * e->page));
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    cr_assert_eq(vt_loaded(v), 6 * e->page);
    /* Others coming and going do not move the quota. */
    VT_OK(vs_sim_set_external_usage(e->ordinal, 2 * e->page));
    cr_assert_eq(vt_meminfo(e).available, 0);
    vt_check(e);
}

Test(budget, process_scope_still_bounded_by_the_device)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .limit = 12 * 64 * VT_KIB,
                                     .flags = VS_DEVICE_LIMIT_PROCESS});
    VT_OK(vs_sim_set_external_usage(e->ordinal, 10 * e->page));
    cr_assert_eq(vt_meminfo(e).available, 6 * e->page, "the device has 6 pages left");
    vs_vbar_t *v = vt_vbar(e, 16);
    vt_load_pages(e, v, 0, 6);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    /* Others shrink: the quota (12) becomes the bound. */
    VT_OK(vs_sim_set_external_usage(e->ordinal, 0));
    cr_assert_eq(vt_meminfo(e).available, 6 * e->page);
    /* Lowering the quota evicts down to it, whatever others hold. */
    VT_OK(vs_device_set_limit(e->dev, 4 * e->page, 0));
    cr_assert_eq(vt_loaded(v), 4 * e->page);
    vt_check(e);
}

Test(budget, limit_scope_conf_key)
{
    vs_device_config c;
    setenv("VRAMSWAP_CONF", "limit:1G,limit_scope:process", 1);
    VT_OK(vs_device_config_init(&c));
    cr_assert(c.flags & VS_DEVICE_LIMIT_PROCESS);
    setenv("VRAMSWAP_CONF", "limit_scope:device", 1);
    VT_OK(vs_device_config_init(&c));
    cr_assert_eq(c.flags & VS_DEVICE_LIMIT_PROCESS, 0);
    setenv("VRAMSWAP_CONF", "limit_scope:proc", 1);
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_config_init(&c));
    unsetenv("VRAMSWAP_CONF");
}
