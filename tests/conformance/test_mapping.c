/* Group "mapping": faults map and pin pages, copies reach the mapped memory
 * byte for byte, residency flags, unpin, nested pins, signatures. */
#include <string.h>

#include "suite.h"

static void fault_maps_pages(vsc_ctx *t)
{
    vsc_need_pages(t, 8);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 8);
    vs_stats s0 = vsc_stats(t);
    uint64_t sig = 0;
    VSC_OK(t, vs_vbar_fault(v, p + 10, p, &sig)); /* touches pages 1 and 2 */
    VSC_CHECK(t, sig != 0);
    VSC_EQ(t, vsc_loaded(t, v), 2 * p);
    VSC_RESIDENCY(t, v, ".PP.....");
    vs_memory_info m = vsc_meminfo(t);
    VSC_EQ(t, m.used_weights, 2 * p);
    VSC_EQ(t, m.evictable, 0); /* pinned */
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.pages_mapped - s0.pages_mapped, 2);
    VSC_EQ(t, s1.faults - s0.faults, 1);
    VSC_EQ(t, s1.fault_maps - s0.fault_maps, 1);
    VSC_EQ(t, s1.bytes_mapped - s0.bytes_mapped, 2 * p);
    VSC_OK(t, vs_vbar_unpin(v, p + 10, p, VS_STREAM_NONE));
    VSC_RESIDENCY(t, v, ".RR.....");
    m = vsc_meminfo(t);
    VSC_EQ(t, m.evictable, 2 * p);
    VSC_OK(t, vs_vbar_fault(v, 8 * p - 1, 1, NULL)); /* the last byte */
    VSC_RESIDENCY(t, v, ".RR....P");
    VSC_OK(t, vs_vbar_unpin(v, 8 * p - 1, 1, VS_STREAM_NONE));
    VSC_OK(t, vs_vbar_destroy(v));
    m = vsc_meminfo(t);
    VSC_EQ(t, m.used_weights, 0);
}

/* Random data through H2D then D2H (same stream, no synchronisation between:
 * stream order), at unaligned offsets and lengths spanning page boundaries. */
static void copy_roundtrip(vsc_ctx *t)
{
    enum { PAGES = 8 };
    vsc_need_pages(t, PAGES);
    const uint64_t p = t->page, total = PAGES * p;
    vs_vbar_t *v = vsc_vbar(t, PAGES);
    vs_devptr_t base = vsc_base(t, v);
    for (uint64_t i = 0; i < PAGES; i++) /* page by page: separate physical chunks */
        VSC_OK(t, vs_vbar_fault(v, i * p, p, NULL));
    uintptr_t s = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));
    uint8_t *src = vsc_alloc(t, total), *dst = vsc_alloc(t, total);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    const uint64_t sizes[] = {1, 7, 4096 + 3, p - 1, p, p + 1, 3 * p + 123};
    const uint64_t offsets[] = {0, 1, p - 3, 2 * p + 17};
    int n = 0;
    for (size_t si = 0; si < VSC_COUNT(sizes); si++) {
        for (size_t oi = 0; oi < VSC_COUNT(offsets); oi++) {
            uint64_t len = sizes[si], off = offsets[oi];
            if (off + len > total)
                continue;
            uintptr_t stream = n++ % 2 ? s : 0;
            vsc_fill_random(&rng, src, (size_t)len);
            memset(dst, 0, (size_t)len);
            VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)(base + off), (uintptr_t)src, len,
                                      stream));
            VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, (uintptr_t)(base + off), len,
                                      stream));
            VSC_OK(t, vs_stream_synchronize(t->dev, stream));
            VSC_BYTES(t, dst, src, len, "H2D then D2H");
        }
    }
    /* Device to device: the first 3.5 pages onto the last 3.5, then back to the host. */
    uint64_t half = 3 * p + p / 2;
    vsc_fill_random(&rng, src, (size_t)half);
    vsc_write(t, base, src, half);
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_DEVICE, (uintptr_t)(base + total - half), (uintptr_t)base,
                              half, s));
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, (uintptr_t)(base + total - half), half,
                              s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_BYTES(t, dst, src, half, "D2D then D2H");
    VSC_OK(t, vs_vbar_unpin(v, 0, total, s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void residency_flags(vsc_ctx *t)
{
    vsc_need_pages(t, 6);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 6);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, NULL));
    VSC_RESIDENCY(t, v, "PP....");
    VSC_OK(t, vsc_fault_pages(t, v, 4, 1, NULL));
    VSC_RESIDENCY(t, v, "PP..P.");
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_RESIDENCY(t, v, "RR..P.");
    VSC_OK(t, vs_vbar_set_floor(v, 2 * p));
    VSC_RESIDENCY(t, v, "rr..P.");
    VSC_OK(t, vs_vbar_set_floor(v, 2 * p + 1)); /* rounded up to a page */
    VSC_RESIDENCY(t, v, "rr,.P.");
    uint64_t floor = 0;
    VSC_OK(t, vs_vbar_get_floor(v, &floor));
    VSC_EQ(t, floor, 3 * p);
    VSC_OK(t, vs_vbar_set_floor(v, 0));
    VSC_RESIDENCY(t, v, "RR..P.");
    VSC_OK(t, vsc_unpin_pages(t, v, 4, 1));
    VSC_RESIDENCY(t, v, "RR..R.");
    /* A short map: count says how many pages there are, only n are written. */
    uint8_t map[2] = {0xff, 0xff};
    size_t count = 0;
    VSC_OK(t, vs_vbar_residency(v, map, 2, &count));
    VSC_EQ(t, count, 6);
    VSC_EQ(t, map[0], VS_PAGE_RESIDENT);
    VSC_OK(t, vs_vbar_destroy(v));
}

static void pins_nest(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 4);
    uint64_t sig1 = 0, sig2 = 0, freed = 1;
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, &sig1));
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, &sig2));
    VSC_EQ(t, sig1, sig2);
    VSC_OK(t, vsc_fault_pages(t, v, 1, 2, NULL)); /* page 1 has 3 pins, 0 has 2, 2 has 1 */
    VSC_RESIDENCY(t, v, "PPP.");
    VSC_OK(t, vs_vbar_free_memory(v, 4 * p, &freed));
    VSC_EQ(t, freed, 0); /* everything pinned */
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_RESIDENCY(t, v, "PPP.");
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_RESIDENCY(t, v, "RPP.");
    VSC_EXPECT(t, VS_ERR_NOT_PINNED, vsc_unpin_pages(t, v, 0, 2)); /* page 0 has none left */
    VSC_RESIDENCY(t, v, "RPP.");                                   /* and nothing changed */
    VSC_OK(t, vsc_unpin_pages(t, v, 1, 2));
    VSC_RESIDENCY(t, v, "RRR.");
    VSC_EXPECT(t, VS_ERR_NOT_PINNED, vsc_unpin_pages(t, v, 1, 1));
    vs_memory_info m = vsc_meminfo(t);
    VSC_EQ(t, m.evictable, 3 * p);
    VSC_OK(t, vs_vbar_free_memory(v, 4 * p, &freed));
    VSC_EQ(t, freed, 3 * p);
    VSC_RESIDENCY(t, v, "....");
    VSC_OK(t, vs_vbar_destroy(v));
}

static void signatures(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 4);
    uint64_t a = 0, b = 0, c = 0, sigs[4] = {9, 9, 9, 9};
    size_t count = 0;
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, &a));
    VSC_CHECK(t, a != 0);
    VSC_OK(t, vs_vbar_page_signatures(v, 0, 4 * p, sigs, 4, &count));
    VSC_EQ(t, count, 4);
    VSC_CHECK(t, sigs[0] != 0 && sigs[1] != 0);
    VSC_EQ(t, sigs[2], 0);
    VSC_EQ(t, sigs[3], 0);
    VSC_EQ(t, a, sigs[0] > sigs[1] ? sigs[0] : sigs[1]); /* the largest generation of the range */
    VSC_OK(t, vsc_fault_pages(t, v, 2, 1, &b));
    VSC_CHECK(t, b != 0 && b != a);
    VSC_OK(t, vsc_fault_pages(t, v, 0, 3, &c));
    VSC_EQ(t, c, b > a ? b : a);
    /* Stable while nothing is remapped. */
    VSC_OK(t, vsc_fault_pages(t, v, 0, 2, &b));
    VSC_EQ(t, b, a);
    VSC_OK(t, vs_vbar_page_signatures(v, p, 10, sigs, 4, &count)); /* inside page 1 */
    VSC_EQ(t, count, 1);
    uint64_t one[1] = {0};
    VSC_OK(t, vs_vbar_page_signatures(v, 0, 4 * p, one, 1, &count)); /* short array */
    VSC_EQ(t, count, 4);
    VSC_CHECK(t, one[0] != 0);
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 3));
    VSC_OK(t, vsc_unpin_pages(t, v, 2, 1));
    VSC_OK(t, vsc_unpin_pages(t, v, 0, 2));
    VSC_RESIDENCY(t, v, "RRR.");
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Faulting resident pages maps nothing and counts as a hit. */
static void fault_hits(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    vs_vbar_t *v = vsc_vbar(t, 4);
    vsc_load_pages(t, v, 0, 4);
    vs_stats s0 = vsc_stats(t);
    for (int i = 0; i < 100; i++) {
        VSC_OK(t, vsc_fault_pages(t, v, (uint64_t)i % 4, 1, NULL));
        VSC_OK(t, vsc_unpin_pages(t, v, (uint64_t)i % 4, 1));
    }
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.pages_mapped, s0.pages_mapped);
    VSC_EQ(t, s1.fault_hits - s0.fault_hits, 100);
    VSC_EQ(t, s1.faults - s0.faults, 100);
    VSC_OK(t, vs_vbar_destroy(v));
}

static const vsc_test tests[] = {
    {"fault_maps_pages", fault_maps_pages, 0, "a fault maps and pins exactly the pages of its range"},
    {"copy_roundtrip", copy_roundtrip, 0, "H2D/D2H/D2D copies at unaligned offsets across pages read back exactly"},
    {"residency_flags", residency_flags, 0, "resident, pinned and protected flags follow faults, unpins, floors"},
    {"pins_nest", pins_nest, 0, "each fault needs its own unpin; pinned pages are never freed"},
    {"signatures", signatures, 0, "signature = largest page generation, stable while nothing is remapped"},
    {"fault_hits", fault_hits, 0, "faulting resident pages maps nothing and counts hits"},
};

const vsc_group vsc_group_mapping = {"mapping", "faults, copies, residency and pins", tests, VSC_COUNT(tests)};
