/* Group "eviction": under a budget of a few pages (vsc_budget_pages), which
 * pages go and when: less important VBARs first, highest pages first, never
 * pinned or protected pages; signatures and data across eviction; watermark
 * fast-fails; reclaim and free_memory amounts; all-or-nothing reclaim.
 *
 * The budget is n pages plus half a page (Note [Conformance sizes]), so after
 * filling n pages half a page is still available: a request for k pages evicts
 * ceil(k - 1/2) = k pages. */
#include <string.h>

#include "suite.h"

static uint64_t watermark(vsc_ctx *t, vs_vbar_t *v)
{
    uint64_t w = 0;
    VSC_OK(t, vs_vbar_get_watermark(v, &w));
    return w;
}

/* A more important VBAR's fault takes the pages of a less important one, from its top. */
static void less_important_first(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *a = vsc_vbar(t, 8); /* older: less important */
    vs_vbar_t *b = vsc_vbar(t, 10);
    vsc_load_pages(t, a, 0, 8);
    VSC_RESIDENCY(t, a, "RRRRRRRR");
    VSC_OK(t, vsc_fault_pages(t, b, 0, 3, NULL));
    VSC_RESIDENCY(t, b, "PPP.......");
    VSC_RESIDENCY(t, a, "RRRRR...");
    VSC_EQ(t, watermark(t, a), 5 * p);
    VSC_EQ(t, watermark(t, b), 10 * p);
    VSC_OK(t, vsc_unpin_pages(t, b, 0, 3));
    /* 6 missing pages, 5 evictable ones less important: refused before evicting any. */
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, b, 3, 6, NULL));
    VSC_RESIDENCY(t, a, "RRRRR...");
    VSC_RESIDENCY(t, b, "RRR.......");
    VSC_OK(t, vsc_fault_pages(t, b, 3, 5, NULL));
    VSC_RESIDENCY(t, a, "........");
    VSC_RESIDENCY(t, b, "RRRPPPPP..");
    VSC_OK(t, vsc_unpin_pages(t, b, 3, 5));
    VSC_OK(t, vs_vbar_destroy(b));
    VSC_OK(t, vs_vbar_destroy(a));
}

/* A fault may only evict pages less important than the one it maps. */
static void fault_evicts_only_less_important(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    vs_vbar_t *v = vsc_vbar(t, 12);
    vsc_load_pages(t, v, 4, 8);
    VSC_RESIDENCY(t, v, "....RRRRRRRR");
    VSC_OK(t, vsc_fault_pages(t, v, 0, 1, NULL)); /* takes the highest page */
    VSC_RESIDENCY(t, v, "P...RRRRRRR.");
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 1));
    VSC_OK(t, vs_vbar_prioritize(v)); /* clear the watermark the eviction set */
    /* Page 11 is the least important page of the only VBAR: nothing can make room. */
    uint64_t sig = 77;
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, v, 11, 1, &sig));
    VSC_EQ(t, sig, 0);
    VSC_RESIDENCY(t, v, "R...RRRRRRR.");
    /* Page 1 can: it takes the highest resident page (10). */
    VSC_OK(t, vsc_fault_pages(t, v, 1, 1, NULL));
    VSC_RESIDENCY(t, v, "RP..RRRRRR..");
    VSC_OK(t, vsc_unpin_pages(t, v, 1, 1));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Reclaim and free_memory take the highest pages first and exactly as many as needed. */
static void reclaim_amounts(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    vsc_load_pages(t, v, 0, 8);
    vs_memory_info m = vsc_meminfo(t);
    VSC_CHECK(t, m.available < p);
    VSC_EQ(t, m.evictable, 8 * p);
    uint64_t freed = 123;
    VSC_OK(t, vs_device_reclaim(t->dev, 2 * p, &freed)); /* needs 1.5 pages more: 2 pages */
    VSC_EQ(t, freed, 2 * p);
    VSC_RESIDENCY(t, v, "RRRRRR..");
    m = vsc_meminfo(t);
    VSC_CHECK(t, m.available >= 2 * p);
    VSC_OK(t, vs_device_reclaim(t->dev, p, &freed)); /* already available */
    VSC_EQ(t, freed, 0);
    VSC_RESIDENCY(t, v, "RRRRRR..");
    VSC_OK(t, vs_device_free_memory(t->dev, p + 1, &freed)); /* ignores what is free; whole pages */
    VSC_EQ(t, freed, 2 * p);
    VSC_RESIDENCY(t, v, "RRRR....");
    VSC_OK(t, vs_vbar_free_memory(v, 1, &freed));
    VSC_EQ(t, freed, p);
    VSC_RESIDENCY(t, v, "RRR.....");
    VSC_OK(t, vs_device_free_memory(t->dev, 100 * p, &freed)); /* more than there is: VS_OK */
    VSC_EQ(t, freed, 3 * p);
    VSC_RESIDENCY(t, v, "........");
    VSC_OK(t, vs_device_free_memory(t->dev, p, NULL));
    VSC_OK(t, vs_device_reclaim(t->dev, p, NULL));
    vs_stats s = vsc_stats(t);
    VSC_CHECK(t, s.reclaims >= 3);
    VSC_CHECK(t, s.pages_evicted >= 8);
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Reclaim that cannot free enough evicts nothing. */
static void reclaim_all_or_nothing(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 4, NULL)); /* pinned */
    vsc_load_pages(t, v, 4, 4);
    VSC_RESIDENCY(t, v, "PPPPRRRR");
    vs_stats s0 = vsc_stats(t);
    uint64_t freed = 123;
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(t->dev, 5 * p, &freed)); /* needs 4.5 pages: 5 */
    VSC_EQ(t, freed, 0);
    VSC_RESIDENCY(t, v, "PPPPRRRR");
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.reclaim_failures - s0.reclaim_failures, 1);
    VSC_EQ(t, s1.pages_evicted, s0.pages_evicted);
    VSC_OK(t, vs_device_reclaim(t->dev, 4 * p, &freed));
    VSC_EQ(t, freed, 4 * p);
    VSC_RESIDENCY(t, v, "PPPP....");
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 4));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Deprioritize sends a VBAR to the back, prioritize to the front. */
static void priority_order(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *a = vsc_vbar(t, 2), *b = vsc_vbar(t, 2), *c = vsc_vbar(t, 2); /* c, b, a */
    vsc_load_pages(t, a, 0, 2);
    vsc_load_pages(t, b, 0, 2);
    vsc_load_pages(t, c, 0, 2);
    VSC_OK(t, vs_vbar_deprioritize(c)); /* b, a, c */
    VSC_OK(t, vs_vbar_prioritize(a));   /* a, b, c */
    uint64_t freed = 0;
    VSC_OK(t, vs_device_free_memory(t->dev, p, &freed));
    VSC_EQ(t, freed, p);
    VSC_RESIDENCY(t, c, "R.");
    VSC_OK(t, vs_device_free_memory(t->dev, 2 * p, &freed));
    VSC_RESIDENCY(t, c, "..");
    VSC_RESIDENCY(t, b, "R.");
    VSC_RESIDENCY(t, a, "RR");
    VSC_OK(t, vs_vbar_deprioritize(a)); /* b, c, a */
    VSC_OK(t, vs_device_free_memory(t->dev, p, &freed));
    VSC_RESIDENCY(t, a, "R.");
    VSC_RESIDENCY(t, b, "R.");
    VSC_OK(t, vs_vbar_destroy(a));
    VSC_OK(t, vs_vbar_destroy(b));
    VSC_OK(t, vs_vbar_destroy(c));
}

/* Same signature and data while not evicted; after eviction the watermark
 * fails faults fast, prioritize re-admits them, the signature changes and the
 * data must be copied again -- then it reads back correctly. */
static void signatures_across_eviction(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page, len = 4 * p;
    vs_vbar_t *v = vsc_vbar(t, 4);
    vs_devptr_t base = vsc_base(t, v);
    uint8_t *data = vsc_alloc(t, len), *got = vsc_alloc(t, len);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, data, len);

    uint64_t sig1 = 0, sig2 = 0, sig3 = 0, before[4], after[4];
    size_t count = 0;
    VSC_OK(t, vs_vbar_fault(v, 0, len, &sig1));
    vsc_write(t, base, data, len);
    VSC_OK(t, vs_vbar_unpin(v, 0, len, 0));
    VSC_OK(t, vs_vbar_page_signatures(v, 0, len, before, 4, &count));
    VSC_OK(t, vs_vbar_fault(v, 0, len, &sig2));
    VSC_EQ(t, sig2, sig1); /* nothing evicted: the copy is still there */
    vsc_read(t, got, base, len);
    VSC_BYTES(t, got, data, len, "resident data");
    VSC_OK(t, vs_vbar_unpin(v, 0, len, 0));

    uint64_t freed = 0;
    VSC_OK(t, vs_vbar_free_memory(v, 2 * p, &freed));
    VSC_EQ(t, freed, 2 * p);
    VSC_RESIDENCY(t, v, "RR..");
    VSC_EQ(t, watermark(t, v), 2 * p);
    /* The lower half kept its mappings and data. */
    VSC_OK(t, vs_vbar_fault(v, 0, 2 * p, &sig2));
    VSC_EQ(t, sig2, before[0] > before[1] ? before[0] : before[1]);
    vsc_read(t, got, base, 2 * p);
    VSC_BYTES(t, got, data, 2 * p, "data below the evicted pages");
    VSC_OK(t, vs_vbar_unpin(v, 0, 2 * p, VS_STREAM_NONE));
    /* Above the watermark: fast fail, nothing mapped. */
    vs_stats s0 = vsc_stats(t);
    sig3 = 5;
    VSC_EXPECT(t, VS_NOT_RESIDENT, vs_vbar_fault(v, 0, len, &sig3));
    VSC_EQ(t, sig3, 0);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.fault_fast_fails - s0.fault_fast_fails, 1);
    VSC_EQ(t, s1.pages_mapped, s0.pages_mapped);
    VSC_RESIDENCY(t, v, "RR..");
    /* Prioritize: admitted again, remapped, new signature. */
    VSC_OK(t, vs_vbar_prioritize(v));
    VSC_EQ(t, watermark(t, v), len);
    VSC_OK(t, vs_vbar_fault(v, 0, len, &sig3));
    VSC_CHECK(t, sig3 != sig1);
    VSC_OK(t, vs_vbar_page_signatures(v, 0, len, after, 4, &count));
    VSC_EQ(t, after[0], before[0]);
    VSC_EQ(t, after[1], before[1]);
    VSC_CHECK(t, after[2] != before[2] && after[3] != before[3]);
    vsc_write(t, base + 2 * p, data + 2 * p, 2 * p); /* the signature said: copy again */
    vsc_read(t, got, base, len);
    VSC_BYTES(t, got, data, len, "data after refault and recopy");
    VSC_OK(t, vs_vbar_unpin(v, 0, len, VS_STREAM_NONE));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void watermark_fast_fail(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    VSC_OK(t, vs_vbar_set_watermark(v, 3 * p + 5));
    VSC_EQ(t, watermark(t, v), 3 * p); /* rounded down */
    vs_stats s0 = vsc_stats(t);
    uint64_t sig = 5;
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, v, 3, 1, &sig));
    VSC_EQ(t, sig, 0);
    VSC_EQ(t, vsc_loaded(t, v), 0);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.fault_fast_fails - s0.fault_fast_fails, 1);
    VSC_EQ(t, s1.fault_not_resident - s0.fault_not_resident, 1);
    vsc_load_pages(t, v, 0, 3);
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, v, 2, 2, NULL)); /* page 3 above */
    VSC_RESIDENCY(t, v, "RRR....."); /* page 2 not left pinned */
    VSC_OK(t, vs_vbar_set_watermark(v, 8 * p)); /* the size: no watermark */
    vsc_load_pages(t, v, 3, 1);
    VSC_OK(t, vs_vbar_set_watermark(v, 2 * p));
    VSC_OK(t, vsc_fault_pages(t, v, 3, 1, NULL)); /* resident pages are not refused */
    VSC_OK(t, vsc_unpin_pages(t, v, 3, 1));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_set_watermark(v, 8 * p + 1));
    VSC_OK(t, vs_vbar_prioritize(v));
    VSC_EQ(t, watermark(t, v), 8 * p);
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Pages below the floor are never evicted by pressure. */
static void floor_protection(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *a = vsc_vbar(t, 8);
    vsc_load_pages(t, a, 0, 8);
    VSC_OK(t, vs_vbar_set_floor(a, 2 * p + 1));
    uint64_t floor = 0, freed = 0;
    VSC_OK(t, vs_vbar_get_floor(a, &floor));
    VSC_EQ(t, floor, 3 * p);
    VSC_RESIDENCY(t, a, "rrrRRRRR");
    vs_memory_info m = vsc_meminfo(t);
    VSC_EQ(t, m.evictable, 5 * p);
    /* A more important VBAR can take only the unprotected pages. */
    vs_vbar_t *b = vsc_vbar(t, 8);
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, b, 0, 6, NULL));
    VSC_RESIDENCY(t, a, "rrrRRRRR");
    VSC_OK(t, vsc_fault_pages(t, b, 0, 5, NULL));
    VSC_RESIDENCY(t, a, "rrr.....");
    VSC_OK(t, vsc_unpin_pages(t, b, 0, 5));
    VSC_OK(t, vs_vbar_destroy(b));
    /* Neither reclaim nor free_memory touch them. */
    VSC_OK(t, vs_device_free_memory(t->dev, 8 * p, &freed));
    VSC_EQ(t, freed, 0);
    m = vsc_meminfo(t);
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(t->dev, m.available + p, &freed));
    VSC_EQ(t, freed, 0);
    VSC_OK(t, vs_vbar_free_memory(a, 8 * p, &freed));
    VSC_EQ(t, freed, 0);
    VSC_RESIDENCY(t, a, "rrr.....");
    /* Clearing floors makes them evictable again. */
    VSC_OK(t, vs_device_reset_floors(t->dev));
    VSC_OK(t, vs_vbar_get_floor(a, &floor));
    VSC_EQ(t, floor, 0);
    VSC_RESIDENCY(t, a, "RRR.....");
    m = vsc_meminfo(t);
    VSC_EQ(t, m.evictable, 3 * p);
    VSC_OK(t, vs_vbar_destroy(a));
}

/* Lowering the limit evicts to fit. */
static void set_limit_evicts(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    vsc_load_pages(t, v, 0, 8);
    vs_memory_info m = vsc_meminfo(t);
    VSC_OK(t, vs_device_set_limit(t->dev, m.total - 3 * p, 0)); /* over by 2.5 pages: 3 go */
    VSC_RESIDENCY(t, v, "RRRRR...");
    m = vsc_meminfo(t);
    VSC_EQ(t, m.used_weights, 5 * p);
    VSC_OK(t, vs_vbar_destroy(v));
}

/* A fault that cannot be satisfied pins nothing and breaks nothing. */
static void not_resident_is_clean(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    vs_vbar_t *v = vsc_vbar(t, 12);
    uint64_t sig = 5;
    VSC_EXPECT(t, VS_NOT_RESIDENT, vsc_fault_pages(t, v, 0, 12, &sig));
    VSC_EQ(t, sig, 0);
    VSC_EQ(t, vsc_count_pages(t, v, VS_PAGE_PINNED), 0);
    VSC_OK(t, vs_device_check_invariants(t->dev));
    VSC_OK(t, vs_vbar_prioritize(v));
    VSC_OK(t, vsc_fault_pages(t, v, 0, 8, NULL));
    VSC_RESIDENCY(t, v, "PPPPPPPP....");
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 8));
    VSC_OK(t, vs_vbar_destroy(v));
}

static const vsc_test tests[] = {
    {"less_important_first", less_important_first, 0, "a newer VBAR's fault evicts an older VBAR from its top"},
    {"fault_evicts_only_less_important", fault_evicts_only_less_important, 0,
     "a fault never evicts pages more important than the one it maps"},
    {"reclaim_amounts", reclaim_amounts, 0, "reclaim/free_memory evict highest pages first, exactly as needed"},
    {"reclaim_all_or_nothing", reclaim_all_or_nothing, 0, "a reclaim that cannot succeed evicts nothing"},
    {"priority_order", priority_order, 0, "deprioritize/prioritize decide which VBAR loses pages first"},
    {"signatures_across_eviction", signatures_across_eviction, 0,
     "signature and data stable until eviction; changed after; correct after recopy"},
    {"watermark_fast_fail", watermark_fast_fail, 0, "faults above the watermark fail fast without mapping"},
    {"floor_protection", floor_protection, 0, "pages below the floor survive every kind of pressure"},
    {"set_limit_evicts", set_limit_evicts, 0, "lowering the limit evicts down to the new budget"},
    {"not_resident_is_clean", not_resident_is_clean, 0, "VS_NOT_RESIDENT leaves nothing pinned"},
};

const vsc_group vsc_group_eviction = {"eviction", "eviction order, watermark, floor, reclaim", tests,
                                      VSC_COUNT(tests)};
