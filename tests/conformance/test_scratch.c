/* Group "scratch": growable device buffers map and unmap pages as they are
 * resized, count in used_scratch, evict VBAR pages to grow, and leave nothing
 * mapped when growth fails. */
#include <string.h>

#include "suite.h"

static void resize_maps_unmaps(vsc_ctx *t)
{
    vsc_need_pages(t, 8);
    const uint64_t p = t->page;
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, 8 * p - 1, &s));
    vs_devptr_t ptr = 0, ptr2 = 0;
    uint64_t size = 1, max = 0;
    VSC_OK(t, vs_scratch_get(s, &ptr, &size, &max));
    VSC_CHECK(t, ptr != 0);
    VSC_EQ(t, size, 0);
    VSC_EQ(t, max, 8 * p);
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 0);

    VSC_OK(t, vs_scratch_resize(s, 2 * p + 1));
    VSC_OK(t, vs_scratch_get(s, &ptr2, &size, NULL));
    VSC_EQ(t, ptr2, ptr);
    VSC_EQ(t, size, 2 * p + 1);
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 3 * p);
    VSC_EQ(t, vsc_stats(t).cur_scratch, 3 * p);
    /* The mapped pages hold data. */
    uint8_t *data = vsc_alloc(t, 2 * p + 1), *got = vsc_alloc(t, 2 * p + 1);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, data, 2 * p + 1);
    vsc_write(t, ptr, data, 2 * p + 1);
    vsc_read(t, got, ptr, 2 * p + 1);
    VSC_BYTES(t, got, data, 2 * p + 1, "scratch contents");

    VSC_OK(t, vs_scratch_resize(s, p));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, p);
    VSC_OK(t, vs_scratch_resize(s, 0));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 0);
    VSC_OK(t, vs_scratch_resize(s, 8 * p));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 8 * p);
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_scratch_resize(s, 8 * p + 1));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 8 * p);
    VSC_OK(t, vs_scratch_get(s, &ptr2, &size, NULL));
    VSC_EQ(t, ptr2, ptr);
    VSC_EQ(t, size, 8 * p);
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 0);
    VSC_EXPECT(t, VS_ERR_INVALID_HANDLE, vs_scratch_destroy(s));
}

/* Growing takes unpinned VBAR pages, least important first, highest first. */
static void growth_evicts(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    vsc_load_pages(t, v, 0, 8);
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, 8 * p, &s));
    VSC_OK(t, vs_scratch_resize(s, 3 * p)); /* needs 2.5 pages more: 3 pages */
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 3 * p);
    VSC_RESIDENCY(t, v, "RRRRR...");
    VSC_OK(t, vs_scratch_resize(s, 0));
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Growth that cannot fit fails with VS_ERR_OUT_OF_MEMORY and changes nothing. */
static void oom_leaves_nothing(vsc_ctx *t)
{
    vsc_budget_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 6, NULL)); /* pinned */
    vsc_load_pages(t, v, 6, 2);
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, 16 * p, &s));
    VSC_OK(t, vs_scratch_resize(s, p)); /* half a page free: one page evicted */
    VSC_RESIDENCY(t, v, "PPPPPPR.");
    vs_memory_info m0 = vsc_meminfo(t);
    VSC_EQ(t, m0.used_scratch, p);
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_scratch_resize(s, 4 * p)); /* 3 more, 1 evictable */
    vs_memory_info m1 = vsc_meminfo(t);
    VSC_EQ(t, m1.used_scratch, p);
    VSC_EQ(t, m1.used_weights, m0.used_weights);
    VSC_RESIDENCY(t, v, "PPPPPPR."); /* all or nothing: nothing evicted */
    uint64_t size = 0;
    VSC_OK(t, vs_scratch_get(s, NULL, &size, NULL));
    VSC_EQ(t, size, p);
    /* Bigger than the whole budget. */
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 6));
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_scratch_resize(s, 16 * p));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, p);
    VSC_RESIDENCY(t, v, "RRRRRRR.");
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_OK(t, vs_vbar_destroy(v));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 0);
}

static const vsc_test tests[] = {
    {"resize_maps_unmaps", resize_maps_unmaps, 0, "resize maps/unmaps whole pages, counted in used_scratch"},
    {"growth_evicts", growth_evicts, 0, "growing evicts unpinned VBAR pages to make room"},
    {"oom_leaves_nothing", oom_leaves_nothing, 0, "growth that cannot fit changes nothing"},
};

const vsc_group vsc_group_scratch = {"scratch", "growable device scratch buffers", tests, VSC_COUNT(tests)};
