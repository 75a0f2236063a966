/* Property test of watermark regrowth (Note [Watermark regrowth] in
 * core/src/regrow.c): seeded random faults, unpins, priority changes, explicit
 * evictions and pressure from others coming and going, on a small simulated
 * device with regrowth on. The exact reference model (test_property.c) runs
 * with regrowth off, since regrowth depends on time; here every step is checked
 * against properties that hold whatever the timing:
 *   - the invariant checker passes;
 *   - a page pinned by a live fault stays resident with the same signature
 *     (nothing evicts a pinned page, regrowth included);
 *   - a fault never takes the device over its budget (own + others <= budget
 *     after the fault whenever it was before);
 *   - a watermark is page-aligned and at most the VBAR's size;
 * and at the end, with the pressure gone, every page of a VBAR that fits faults
 * in again without any prioritize (the watermark regrows) -- the liveness half.
 *
 * Environment: VS_PROPERTY_SEED, VS_PROPERTY_STEPS (default 20000).
 */
#include <stdio.h>
#include <time.h>

#include "harness.h"

TestSuite(property_regrow, .init = vt_init, .fini = vt_fini, .timeout = 600);

#define PR_VBARS 3
#define PR_MAX_FAULTS 24
#define PR_MAX_PAGES 16

typedef struct pr_fault {
    int vb;
    uint64_t first, n;
    uint64_t sigs[PR_MAX_PAGES];
} pr_fault;

typedef struct pr_ctx {
    vt_env *e;
    vt_rng rng;
    uint64_t seed;
    long step;
    vs_vbar_t *v[PR_VBARS];
    uint64_t pages[PR_VBARS];
    pr_fault faults[PR_MAX_FAULTS];
    int nfaults;
    uint64_t others;   /* pages */
    uint64_t device_pages;
} pr_ctx;

#define PR_CHECK(c, cond, ...)                                                                 \
    cr_assert(cond, "seed %llu step %ld: " __VA_ARGS__, (unsigned long long)(c)->seed, (c)->step)

static uint64_t used_over_budget(pr_ctx *c)
{
    vs_memory_info m = vt_meminfo(c->e);
    uint64_t used = m.used_weights + m.used_scratch + m.used_intercepted + m.used_others;
    return used > m.budget ? used - m.budget : 0;
}

static void check(pr_ctx *c)
{
    VT_OK(vs_device_check_invariants(c->e->dev));
    for (int i = 0; i < c->nfaults; i++) {
        pr_fault *f = &c->faults[i];
        uint64_t sigs[PR_MAX_PAGES];
        size_t n = 0;
        VT_OK(vs_vbar_page_signatures(c->v[f->vb], f->first * c->e->page, f->n * c->e->page, sigs,
                                      PR_MAX_PAGES, &n));
        for (uint64_t p = 0; p < f->n; p++)
            PR_CHECK(c, sigs[p] == f->sigs[p] && sigs[p] != 0,
                     "pinned page %llu of VBAR %d was evicted or remapped",
                     (unsigned long long)(f->first + p), f->vb);
    }
    for (int b = 0; b < PR_VBARS; b++) {
        uint64_t wm = 0;
        VT_OK(vs_vbar_get_watermark(c->v[b], &wm));
        PR_CHECK(c, wm % c->e->page == 0 && wm <= c->pages[b] * c->e->page, "watermark %llu of VBAR %d",
                 (unsigned long long)wm, b);
    }
}

static void op_fault(pr_ctx *c)
{
    if (c->nfaults == PR_MAX_FAULTS)
        return;
    int b = (int)vt_rng_below(&c->rng, PR_VBARS);
    uint64_t n = vt_rng_range(&c->rng, 1, 3);
    if (n > c->pages[b])
        n = c->pages[b];
    uint64_t first = vt_rng_below(&c->rng, c->pages[b] - n + 1);
    uint64_t over0 = used_over_budget(c);
    vs_status st = vt_fault_pages(c->e, c->v[b], first, n, NULL);
    PR_CHECK(c, st == VS_OK || st == VS_NOT_RESIDENT, "fault: %s", vs_status_name(st));
    if (over0 == 0)
        PR_CHECK(c, used_over_budget(c) == 0, "a fault took the device over its budget");
    if (st != VS_OK)
        return;
    pr_fault *f = &c->faults[c->nfaults++];
    f->vb = b;
    f->first = first;
    f->n = n;
    size_t cnt = 0;
    VT_OK(vs_vbar_page_signatures(c->v[b], first * c->e->page, n * c->e->page, f->sigs, PR_MAX_PAGES, &cnt));
}

static void unpin(pr_ctx *c, int i)
{
    pr_fault *f = &c->faults[i];
    VT_OK(vt_unpin_pages(c->e, c->v[f->vb], f->first, f->n));
    c->faults[i] = c->faults[--c->nfaults];
}

/* Others use `pages` from now on; growing, they make room first (as the hooks do),
 * and take only what the device can give when pinned pages stand in the way. */
static void set_others(pr_ctx *c, uint64_t pages)
{
    if (pages > c->others) {
        uint64_t want = (pages - c->others) * c->e->page;
        vs_status st = vs_device_reclaim(c->e->dev, want, NULL);
        PR_CHECK(c, st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "reclaim: %s", vs_status_name(st));
        if (st != VS_OK)
            return;
    }
    VT_OK(vs_sim_set_external_usage(c->e->ordinal, pages * c->e->page));
    c->others = pages;
}

static void run(uint64_t delay_ns, uint64_t margin_pages, uint64_t default_seed)
{
    pr_ctx ctx = {0}, *c = &ctx;
    c->device_pages = 24;
    c->e = vt_open(&(vt_params){.pages = c->device_pages, .regrow = 1, .regrow_delay_ns = delay_ns,
                                .regrow_delay_max_ns = 8 * delay_ns, .regrow_margin = margin_pages * 65536});
    int from_env = 0;
    c->seed = vt_env_u64("VS_PROPERTY_SEED", default_seed, &from_env);
    long steps = (long)vt_env_u64("VS_PROPERTY_STEPS", 20000, NULL);
    fprintf(stderr, "property_regrow: seed %llu, %ld steps, delay %llu ns, margin %llu pages\n",
            (unsigned long long)c->seed, steps, (unsigned long long)delay_ns, (unsigned long long)margin_pages);
    vt_rng_seed(&c->rng, c->seed);
    const uint64_t sizes[PR_VBARS] = {12, 8, 6};
    for (int b = 0; b < PR_VBARS; b++) {
        c->pages[b] = sizes[b];
        c->v[b] = vt_vbar(c->e, sizes[b]);
    }
    for (c->step = 0; c->step < steps; c->step++) {
        uint64_t r = vt_rng_below(&c->rng, 100);
        if (r < 45)
            op_fault(c);
        else if (r < 75) {
            if (c->nfaults)
                unpin(c, (int)vt_rng_below(&c->rng, (uint64_t)c->nfaults));
        } else if (r < 88)
            set_others(c, vt_rng_chance(&c->rng, 1, 2) ? 0 : vt_rng_range(&c->rng, 1, c->device_pages - 4));
        else if (r < 94) {
            int b = (int)vt_rng_below(&c->rng, PR_VBARS);
            VT_OK(vt_rng_chance(&c->rng, 1, 2) ? vs_vbar_deprioritize(c->v[b]) : vs_vbar_prioritize(c->v[b]));
        } else {
            int b = (int)vt_rng_below(&c->rng, PR_VBARS);
            uint64_t freed = 0;
            VT_OK(vs_vbar_free_memory(c->v[b], vt_rng_range(&c->rng, 1, 4) * c->e->page, &freed));
        }
        check(c);
    }
    /* Liveness: the pressure is gone, nothing pinned, the other VBARs evicted. */
    while (c->nfaults)
        unpin(c, c->nfaults - 1);
    set_others(c, 0);
    for (int b = 1; b < PR_VBARS; b++)
        VT_OK(vs_vbar_free_memory(c->v[b], c->pages[b] * c->e->page, NULL));
    /* Force a low watermark on VBAR 0 the way pressure would, so the end state
     * needs regrowth whatever the random steps left behind: make it whole and
     * resident first (the random run may have left it with nothing resident,
     * and evicting nothing lowers no watermark), then evict all of it. */
    VT_OK(vs_vbar_prioritize(c->v[0]));
    for (uint64_t p = 0; p < c->pages[0]; p++) {
        VT_OK(vt_fault_pages(c->e, c->v[0], p, 1, NULL));
        VT_OK(vt_unpin_pages(c->e, c->v[0], p, 1));
    }
    VT_OK(vs_vbar_free_memory(c->v[0], c->pages[0] * c->e->page, NULL));
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(c->v[0], &wm));
    cr_assert_eq(wm, 0, "seed %llu: evicting all of VBAR 0 left its watermark at %llu",
                 (unsigned long long)c->seed, (unsigned long long)wm);
    vs_stats s0 = vt_stats(c->e);
    struct timespec ts = {0, (long)(8 * delay_ns + 1000000)}; /* the longest quiet time */
    nanosleep(&ts, NULL);
    for (uint64_t p = 0; p < c->pages[0]; p++) {
        VT_OK(vt_fault_pages(c->e, c->v[0], p, 1, NULL));
        VT_OK(vt_unpin_pages(c->e, c->v[0], p, 1));
    }
    vs_stats s1 = vt_stats(c->e);
    cr_assert_eq(vt_loaded(c->v[0]), c->pages[0] * c->e->page, "seed %llu: VBAR 0 did not regrow",
                 (unsigned long long)c->seed);
    cr_assert_geq(s1.regrowths - s0.regrowths, 1);
    cr_assert_eq(s1.pages_evicted, s0.pages_evicted, "regrowing into free memory evicted pages");
    fprintf(stderr, "property_regrow: %llu regrowths, %llu backoffs, %llu evictions in the run\n",
            (unsigned long long)s0.regrowths, (unsigned long long)s0.regrow_backoffs,
            (unsigned long long)s0.pages_evicted);
    cr_assert_geq(s0.regrowths, 1, "the random run never regrew: the property was not exercised");
}

Test(property_regrow, immediate)
{
    run(0, 0, 9101);
}

Test(property_regrow, with_margin)
{
    run(0, 2, 9102);
}

Test(property_regrow, with_quiet_time)
{
    run(200000, 1, 9103); /* 0.2 ms: timing varies, the properties hold anyway */
}
