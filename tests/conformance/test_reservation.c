/* Group "reservation": VBARs reserve address space, aligned and disjoint, and
 * cost no memory; create/destroy cycles leave nothing behind. */
#include <string.h>

#include "suite.h"

static void create_destroy(vsc_ctx *t)
{
    vs_memory_info m0 = vsc_meminfo(t);
    vs_vbar_t *v = NULL;
    VSC_OK(t, vs_vbar_create(t->dev, 10 * t->page + 1, &v));
    VSC_CHECK(t, v != NULL);
    vs_devptr_t base = 0;
    uint64_t size = 0, bytes = 1;
    VSC_OK(t, vs_vbar_get_base(v, &base, &size));
    VSC_EQ(t, size, 11 * t->page);
    VSC_CHECKF(t, base != 0 && base % t->page == 0, "base 0x%llx is not aligned to the page size %llu",
               (unsigned long long)base, (unsigned long long)t->page);
    VSC_EQ(t, vsc_loaded(t, v), 0);
    VSC_RESIDENCY(t, v, "...........");
    VSC_OK(t, vs_vbar_allocated(v, &bytes));
    VSC_EQ(t, bytes, 0);
    VSC_OK(t, vs_vbar_get_watermark(v, &bytes));
    VSC_EQ(t, bytes, size); /* no watermark */
    VSC_OK(t, vs_vbar_get_floor(v, &bytes));
    VSC_EQ(t, bytes, 0);
    vs_memory_info m1 = vsc_meminfo(t);
    VSC_EQ(t, m1.used_weights, m0.used_weights); /* reserving costs no memory */
    VSC_OK(t, vs_vbar_destroy(v));
    VSC_EXPECT(t, VS_ERR_INVALID_HANDLE, vs_vbar_destroy(v));
}

static void alignment(vsc_ctx *t)
{
    const uint64_t p = t->page;
    const uint64_t sizes[] = {1, 4096, p - 1, p, p + 1, 3 * p - 1, 7 * p};
    for (size_t i = 0; i < VSC_COUNT(sizes); i++) {
        vs_vbar_t *v = NULL;
        VSC_OK(t, vs_vbar_create(t->dev, sizes[i], &v));
        vs_devptr_t base = 0;
        uint64_t size = 0;
        VSC_OK(t, vs_vbar_get_base(v, &base, &size));
        VSC_CHECKF(t, base % p == 0, "VBAR of %llu bytes: base 0x%llx not page aligned", (unsigned long long)sizes[i],
                   (unsigned long long)base);
        VSC_EQ(t, size, (sizes[i] + p - 1) / p * p);
        size_t npages = 0;
        VSC_OK(t, vs_vbar_residency(v, NULL, 0, &npages));
        VSC_EQ(t, npages, size / p);
        VSC_OK(t, vs_vbar_destroy(v));
    }
}

/* Distinct VBARs occupy disjoint address ranges and distinct memory. */
static void no_overlap(vsc_ctx *t)
{
    enum { N = 16 };
    vsc_need_pages(t, N);
    vs_vbar_t *v[N];
    vs_devptr_t base[N];
    uint64_t size[N];
    for (int i = 0; i < N; i++) {
        VSC_OK(t, vs_vbar_create(t->dev, (uint64_t)(i % 4 + 1) * t->page + (uint64_t)i, &v[i]));
        VSC_OK(t, vs_vbar_get_base(v[i], &base[i], &size[i]));
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            VSC_CHECKF(t, base[i] + size[i] <= base[j] || base[j] + size[j] <= base[i],
                       "VBARs %d [0x%llx, +%llu) and %d [0x%llx, +%llu) overlap", i, (unsigned long long)base[i],
                       (unsigned long long)size[i], j, (unsigned long long)base[j], (unsigned long long)size[j]);
    /* Each first page holds its own data. */
    uint8_t pattern[256], got[256];
    for (int i = 0; i < N; i++) {
        VSC_OK(t, vs_vbar_fault(v[i], 0, sizeof pattern, NULL));
        memset(pattern, 0x10 + i, sizeof pattern);
        vsc_write(t, base[i], pattern, sizeof pattern);
    }
    for (int i = 0; i < N; i++) {
        memset(pattern, 0x10 + i, sizeof pattern);
        vsc_read(t, got, base[i], sizeof got);
        VSC_BYTES(t, got, pattern, sizeof got, "first page of each VBAR");
        VSC_OK(t, vs_vbar_unpin(v[i], 0, sizeof pattern, VS_STREAM_NONE));
        VSC_OK(t, vs_vbar_destroy(v[i]));
    }
}

/* Many create / fault / unpin / destroy cycles leave the budget where it was. */
static void cycles_no_leak(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    vs_memory_info m0 = vsc_meminfo(t);
    vs_stats s0 = vsc_stats(t);
    for (int i = 0; i < 200; i++) {
        vs_vbar_t *v = vsc_vbar(t, 4);
        if (i % 2 == 0)
            vsc_load_pages(t, v, 0, 4);
        else
            VSC_OK(t, vs_vbar_fault(v, t->page / 2, 2 * t->page, NULL)); /* pages 0..2, left pinned */
        if (i % 2)
            VSC_OK(t, vs_vbar_unpin(v, t->page / 2, 2 * t->page, VS_STREAM_NONE));
        VSC_OK(t, vs_vbar_destroy(v));
    }
    vs_memory_info m1 = vsc_meminfo(t);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, m1.used_weights, m0.used_weights);
    VSC_EQ(t, m1.evictable, m0.evictable);
    uint64_t drift = m1.available > m0.available ? m1.available - m0.available : m0.available - m1.available;
    VSC_CHECKF(t, drift < t->page / 2, "available went from %llu to %llu after the cycles",
               (unsigned long long)m0.available, (unsigned long long)m1.available);
    VSC_EQ(t, s1.pages_mapped - s0.pages_mapped, 100 * 4 + 100 * 3);
    VSC_EQ(t, s1.chunks_created - s0.chunks_created, s1.chunks_released - s0.chunks_released);
    VSC_EQ(t, s1.cur_weights, s0.cur_weights);
}

/* Sub-allocation hands out increasing, aligned offsets until the VBAR is full. */
static void suballoc(vsc_ctx *t)
{
    vs_vbar_t *v = vsc_vbar(t, 4);
    const uint64_t size = 4 * t->page;
    uint64_t off = 99, top = 99;
    VSC_OK(t, vs_vbar_alloc(v, 100, 0, &off));
    VSC_EQ(t, off, 0);
    VSC_OK(t, vs_vbar_alloc(v, 1, 0, &off));
    VSC_EQ(t, off, 256); /* default alignment 256 */
    VSC_OK(t, vs_vbar_alloc(v, 10, 4096, &off));
    VSC_EQ(t, off, 4096);
    VSC_OK(t, vs_vbar_allocated(v, &top));
    VSC_EQ(t, top, 4106);
    VSC_OK(t, vs_vbar_alloc(v, t->page, 0, &off));
    VSC_EQ(t, off, 4352);
    uint64_t before = off;
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, size, 0, &off));
    VSC_EQ(t, off, before); /* untouched on failure */
    VSC_EXPECT(t, VS_ERR_INVALID_ARGUMENT, vs_vbar_alloc(v, 1, 3, &off));
    VSC_OK(t, vs_vbar_allocated(v, &top));
    VSC_EQ(t, top, 4352 + t->page);
    VSC_OK(t, vs_vbar_alloc(v, size - top, 1, &off)); /* exactly the rest */
    VSC_EQ(t, off, top);
    VSC_OK(t, vs_vbar_allocated(v, &top));
    VSC_EQ(t, top, size);
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 1, 1, &off));
    VSC_EQ(t, vsc_loaded(t, v), 0); /* sub-allocating maps nothing */
    VSC_OK(t, vs_vbar_destroy(v));
}

static const vsc_test tests[] = {
    {"create_destroy", create_destroy, 0, "size rounded to pages, aligned base, no memory used, handle dead after"},
    {"alignment", alignment, 0, "every size gives a page-aligned base and a page-multiple size"},
    {"no_overlap", no_overlap, 0, "16 VBARs have disjoint ranges and separate memory"},
    {"cycles_no_leak", cycles_no_leak, 0, "200 create/fault/destroy cycles return the budget to its baseline"},
    {"suballoc", suballoc, 0, "vs_vbar_alloc offsets increase, honour alignment, stop when full"},
};

const vsc_group vsc_group_reservation = {"reservation", "VBAR address-space reservations", tests, VSC_COUNT(tests)};
