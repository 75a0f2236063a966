/* Watermark regrowth (Note [Watermark regrowth] in core/src/regrow.c): the
 * watermark rises again once memory is free and the VBAR has been quiet for its
 * quiet time; never into the margin, never by evicting; the quiet time backs
 * off under periodic pressure so that an alternating workload does not thrash.
 * Pressure from others is the simulator's external usage, taken back the way
 * the allocation hooks do it (vs_device_reclaim of the deficit). */
#include <time.h>

#include "harness.h"

TestSuite(regrow, .init = vt_init, .fini = vt_fini);

#define MS 1000000ull

static uint64_t wm_pages(vt_env *e, vs_vbar_t *v)
{
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(v, &wm));
    return wm / e->page;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Others use `pages` pages from now on; growing, they first make room the way
 * the allocation hooks do (vs_device_reclaim of the increase). */
static void others(vt_env *e, uint64_t pages)
{
    vs_sim_counters c = vt_counters(e->ordinal);
    uint64_t want = pages * e->page;
    if (want > c.external_bytes)
        VT_OK(vs_device_reclaim(e->dev, want - c.external_bytes, NULL));
    VT_OK(vs_sim_set_external_usage(e->ordinal, want));
}

#define load_unpinned vt_load_pages

Test(regrow, regrows_when_memory_returns)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1});
    vs_vbar_t *v = vt_vbar(e, 8);
    load_unpinned(e, v, 0, 8);
    others(e, 12); /* 4 pages left for us: the top 4 go */
    cr_assert_eq(wm_pages(e, v), 4);
    cr_assert_eq(vt_loaded(v), 4 * e->page);
    /* Still under pressure: no room, so no regrowth, a fast fail. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    cr_assert_eq(vt_stats(e).regrowths, 0);
    cr_assert_eq(wm_pages(e, v), 4);
    /* The pressure goes away: the next fault above the watermark regrows it. */
    others(e, 0);
    vs_stats s0 = vt_stats(e);
    VT_OK(vt_fault_pages(e, v, 6, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 6, 1));
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.regrowths - s0.regrowths, 1);
    cr_assert_eq(s1.regrown_bytes - s0.regrown_bytes, 4 * e->page);
    cr_assert_eq(s1.pages_evicted, s0.pages_evicted, "a regrowth evicted");
    cr_assert_eq(wm_pages(e, v), 8, "the watermark should be cleared (the size)");
    load_unpinned(e, v, 4, 4);
    cr_assert_eq(vt_loaded(v), 8 * e->page);
    vt_check(e);
}

Test(regrow, off_with_the_flag_or_conf)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .flags = VS_DEVICE_NO_REGROW});
    vs_vbar_t *v = vt_vbar(e, 8);
    load_unpinned(e, v, 0, 8);
    others(e, 12);
    others(e, 0);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    cr_assert_eq(vt_stats(e).regrowths, 0);
    cr_assert_eq(wm_pages(e, v), 4);
}

Test(regrow, conf_keys_parse)
{
    setenv("VRAMSWAP_CONF", "regrow:0,regrow_delay_ns:5M,regrow_delay_max_ns:1G,regrow_margin:128M", 1);
    vs_device_config c;
    VT_OK(vs_device_config_init(&c));
    cr_assert(c.flags & VS_DEVICE_NO_REGROW);
    cr_assert_eq(c.regrow_delay_ns, 5ull << 20);
    cr_assert_eq(c.regrow_delay_max_ns, 1ull << 30);
    cr_assert_eq(c.regrow_margin, 128ull << 20);
    setenv("VRAMSWAP_CONF", "regrow:1", 1);
    VT_OK(vs_device_config_init(&c));
    cr_assert_eq(c.flags & VS_DEVICE_NO_REGROW, 0);
    cr_assert_eq(c.regrow_delay_ns, 20 * MS, "default quiet time");
    cr_assert_eq(c.regrow_delay_max_ns, 320 * MS);
    cr_assert_eq(c.regrow_margin, 0, "default margin: regrowth refills what the first fill took");
    setenv("VRAMSWAP_CONF", "regrow:maybe", 1);
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_config_init(&c));
    unsetenv("VRAMSWAP_CONF");
}

Test(regrow, waits_for_the_quiet_time)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .regrow_delay_ns = 300 * MS,
                                     .regrow_delay_max_ns = 300 * MS});
    vs_vbar_t *v = vt_vbar(e, 8);
    load_unpinned(e, v, 0, 8);
    others(e, 12);
    others(e, 0);
    /* Right after the eviction: memory is free but the VBAR was not quiet long enough. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 6, 1, NULL));
    cr_assert_eq(vt_stats(e).regrowths, 0);
    sleep_ns(310 * MS);
    VT_OK(vt_fault_pages(e, v, 6, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 6, 1));
    cr_assert_eq(vt_stats(e).regrowths, 1);
}

/* It rises only over what is free beyond the margin, and never past the budget. */
Test(regrow, leaves_the_margin_and_the_budget)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .regrow_margin = 2 * 64 * 1024});
    vs_vbar_t *v = vt_vbar(e, 16);
    load_unpinned(e, v, 0, 12);
    others(e, 4);  /* full */
    others(e, 10); /* 6 evicted: pages 0-5 resident */
    cr_assert_eq(wm_pages(e, v), 6);
    others(e, 4);  /* 6 pages free; 2 are the margin */
    VT_OK(vt_fault_pages(e, v, 6, 1, NULL));
    cr_assert_eq(wm_pages(e, v), 10, "6 free - 2 margin = 4 pages of regrowth");
    VT_OK(vt_unpin_pages(e, v, 6, 1));
    load_unpinned(e, v, 7, 3);
    /* Now only the margin is free: no further regrowth. */
    cr_assert_eq(vt_meminfo(e).available, 2 * e->page);
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 10, 1, NULL));
    cr_assert_eq(wm_pages(e, v), 10);
    vs_memory_info m = vt_meminfo(e);
    cr_assert_leq(m.used_weights + m.used_others, m.budget);
    cr_assert_eq(vt_stats(e).regrowths, 1);
}

/* Faults come in execution order, not VBAR order: after a regrowth, a fault
 * above the new watermark before the pages below it were mapped must not count
 * their free memory again (it would raise the watermark past what fits, and the
 * later faults would evict the VBAR's own pages: churn, and a backoff). */
Test(regrow, does_not_count_owed_pages_twice)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .regrow_delay_ns = 1,
                                     .regrow_delay_max_ns = 1});
    vs_vbar_t *v = vt_vbar(e, 16);
    load_unpinned(e, v, 0, 12);
    others(e, 10); /* 6 pages for us: pages 0-5 */
    cr_assert_eq(wm_pages(e, v), 6);
    others(e, 4);  /* 6 free again: room for pages 6-11, as before */
    vs_stats s0 = vt_stats(e);
    VT_OK(vt_fault_pages(e, v, 6, 1, NULL)); /* regrows over 6-11 */
    VT_OK(vt_unpin_pages(e, v, 6, 1));
    cr_assert_eq(wm_pages(e, v), 12);
    /* Pages 7-11 are owed the 5 free pages: a fault at 12 finds no room. */
    VT_EXPECT(VS_NOT_RESIDENT, vt_fault_pages(e, v, 12, 1, NULL));
    cr_assert_eq(wm_pages(e, v), 12, "the owed memory was counted twice");
    load_unpinned(e, v, 7, 5);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.pages_evicted, s0.pages_evicted, "the recovery evicted its own pages");
    cr_assert_eq(s1.regrowths - s0.regrowths, 1);
    cr_assert_eq(vt_loaded(v), 12 * e->page, "the first fill's residency is back");
    vt_check(e);
}

/* Pinned pages stay resident through pressure and regrowth (nothing evicts them). */
Test(regrow, never_evicts_a_pinned_page)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1});
    vs_vbar_t *v = vt_vbar(e, 12);
    load_unpinned(e, v, 0, 12);
    uint64_t sig0 = 0, sig1 = 0;
    VT_OK(vt_fault_pages(e, v, 9, 1, &sig0)); /* page 9 pinned from here on */
    for (int round = 0; round < 5; round++) {
        others(e, 14); /* 2 pages for us: only the pinned one and page 0 survive */
        uint8_t map[12];
        vt_residency(v, map, 12);
        cr_assert(map[9] & VS_PAGE_RESIDENT, "round %d: the pinned page was evicted", round);
        others(e, 0);
        for (uint64_t p = 0; p < 12; p++) {
            vs_status st = vt_fault_pages(e, v, p, 1, NULL);
            cr_assert(st == VS_OK || st == VS_NOT_RESIDENT, "%s", vs_status_name(st));
            if (st == VS_OK)
                VT_OK(vt_unpin_pages(e, v, p, 1));
        }
        vt_check(e);
    }
    cr_assert_geq(vt_stats(e).regrowths, 5);
    cr_assert_eq(vt_loaded(v), 12 * e->page, "the regrown VBAR should be whole again");
    VT_OK(vt_fault_pages(e, v, 9, 1, &sig1));
    cr_assert_eq(sig0, sig1, "the pinned page was remapped");
    VT_OK(vt_unpin_pages(e, v, 9, 1));
    VT_OK(vt_unpin_pages(e, v, 9, 1));
}

/* One cycle of an alternating workload: wait `gap`, run a "pass" that faults
 * every page (regrowing if allowed), then the pressure comes back. Returns the
 * regrowths so far. */
static uint64_t alternate(vt_env *e, vs_vbar_t *v, int cycles, uint64_t gap)
{
    for (int c = 0; c < cycles; c++) {
        sleep_ns(gap);
        for (uint64_t p = 0; p < 8; p++) {
            vs_status st = vt_fault_pages(e, v, p, 1, NULL);
            cr_assert(st == VS_OK || st == VS_NOT_RESIDENT, "%s", vs_status_name(st));
            if (st == VS_OK)
                VT_OK(vt_unpin_pages(e, v, p, 1));
        }
        others(e, 12); /* the pressure returns */
        others(e, 0);  /* and goes */
    }
    return vt_stats(e).regrowths;
}

/* Pressure that comes back every ~25 ms, with a 10 ms quiet time: without
 * backoff every cycle would regrow and be evicted again (the control below);
 * with it, the quiet time doubles up to 160 ms and regrowths become rare. */
Test(regrow, does_not_oscillate)
{
    const int cycles = 40;
    const uint64_t gap = 25 * MS;
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .regrow_delay_ns = 10 * MS,
                                     .regrow_delay_max_ns = 160 * MS});
    vs_vbar_t *v = vt_vbar(e, 8);
    load_unpinned(e, v, 0, 8);
    others(e, 12);
    others(e, 0);
    vs_stats s0 = vt_stats(e);
    uint64_t n = alternate(e, v, cycles, gap);
    vs_stats s1 = vt_stats(e);
    uint64_t maps = s1.pages_mapped - s0.pages_mapped, evictions = s1.pages_evicted - s0.pages_evicted;
    cr_log_info("hysteresis: %llu regrowths, %llu backoffs, %llu maps, %llu evictions in %d cycles",
                (unsigned long long)n, (unsigned long long)s1.regrow_backoffs, (unsigned long long)maps,
                (unsigned long long)evictions, cycles);
    /* 40 cycles of >= 25 ms = >= 1 s: at most log2(160/10) + 1 s / 160 ms + slack. */
    cr_assert_geq(n, 1, "it never regrew");
    cr_assert_leq(n, cycles / 2, "%llu regrowths in %d cycles: the quiet time did not back off",
                  (unsigned long long)n, cycles);
    cr_assert_geq(s1.regrow_backoffs, 3);
    cr_assert_leq(maps, 4 * n, "maps beyond what the regrowths allowed");
    cr_assert_leq(evictions, 4 * n + 4);
    /* When the pressure stops, it recovers within the longest quiet time. */
    sleep_ns(170 * MS);
    VT_OK(vt_fault_pages(e, v, 4, 4, NULL));
    VT_OK(vt_unpin_pages(e, v, 4, 4));
    cr_assert_eq(vt_loaded(v), 8 * e->page);
}

/* The control: the same pattern with no room to back off (max = base) regrows
 * and is evicted on every cycle, so the test above measures the hysteresis. */
Test(regrow, control_without_backoff_thrashes)
{
    const int cycles = 12;
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1, .regrow_delay_ns = 10 * MS,
                                     .regrow_delay_max_ns = 10 * MS});
    vs_vbar_t *v = vt_vbar(e, 8);
    load_unpinned(e, v, 0, 8);
    others(e, 12);
    others(e, 0);
    vs_stats s0 = vt_stats(e);
    uint64_t n = alternate(e, v, cycles, 25 * MS);
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(n, (uint64_t)cycles);
    cr_assert_eq(s1.pages_mapped - s0.pages_mapped, 4ull * cycles);
}

/* Two VBARs: the one running regrows into free memory; the idle one, less
 * important, keeps its low watermark and gives its pages up first. */
Test(regrow, idle_vbar_gives_way)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16, .regrow = 1});
    vs_vbar_t *idle = vt_vbar(e, 8);
    vs_vbar_t *run = vt_vbar(e, 8); /* created last: the most important */
    load_unpinned(e, idle, 0, 8);
    load_unpinned(e, run, 0, 8);
    others(e, 4); /* 4 pages must go: all from the idle VBAR */
    cr_assert_eq(vt_loaded(run), 8 * e->page);
    cr_assert_eq(vt_loaded(idle), 4 * e->page);
    others(e, 10); /* 6 more: the idle VBAR's 4, then the running one's top 2 */
    cr_assert_eq(vt_loaded(idle), 0);
    cr_assert_eq(vt_loaded(run), 6 * e->page);
    others(e, 0);
    VT_OK(vt_fault_pages(e, run, 6, 2, NULL));
    VT_OK(vt_unpin_pages(e, run, 6, 2));
    cr_assert_eq(vt_loaded(run), 8 * e->page);
    cr_assert_eq(wm_pages(e, run), 8);
    cr_assert_eq(wm_pages(e, idle), 0, "the idle VBAR regrew without faulting");
}
