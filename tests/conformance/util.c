/* Helpers the conformance tests share: sizing, VBAR shortcuts, residency maps as
 * text, copies, random data.
 *
 * Note [Conformance sizes]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * Tests are sized in pages of the device's VBAR page size (256 KiB on the
 * simulator, 2 MiB or more on a GPU), never in absolute bytes, and they bound
 * the memory they may use with vs_device_set_limit, so that eviction paths run
 * in a small, known budget on an 80 GB card as on a 1 GiB simulated one:
 *  - the harness opens every device with headroom 0 and mem_poll_ns 0 (every
 *    budget decision sees the driver's current free figure), and, when the
 *    device has more than 1 GiB to spare, a limit of (usage by others + 1 GiB):
 *    a test never has more than 1 GiB (vsc_ctx.work says how much it has);
 *  - a test that needs an exact budget calls vsc_budget_pages(n): the limit
 *    becomes (others + own usage + n pages + half a page). The half page absorbs
 *    small drifts of the driver's own usage on real hardware (a context
 *    allocating a staging buffer) without changing how many pages fit; expected
 *    eviction counts are therefore computed from the reported `available`, not
 *    assumed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "suite.h"

void *vsc_alloc(vsc_ctx *t, size_t size)
{
    VSC_CHECKF(t, t->nallocs < VSC_MAX_ALLOCS, "test uses more than %d host allocations", VSC_MAX_ALLOCS);
    void *p = malloc(size ? size : 1);
    VSC_CHECKF(t, p != NULL, "out of host memory allocating %zu bytes", size);
    t->allocs[t->nallocs++] = p;
    return p;
}

/* ---------------------------------------------------------------- random */

void vsc_rng_init(vsc_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t vsc_rng_next(vsc_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t vsc_rng_below(vsc_rng *r, uint64_t bound)
{
    return vsc_rng_next(r) % bound;
}

void vsc_fill_random(vsc_rng *r, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len >= 8) {
        uint64_t v = vsc_rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = vsc_rng_next(r);
        memcpy(p, &v, len);
    }
}

double vsc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- device views */

vs_memory_info vsc_meminfo(vsc_ctx *t)
{
    vs_memory_info m;
    VSC_OK(t, vs_device_memory_info(t->dev, &m));
    return m;
}

vs_stats vsc_stats(vsc_ctx *t)
{
    vs_stats s;
    VSC_OK(t, vs_device_get_stats(t->dev, &s));
    return s;
}

void vsc_need_pages(vsc_ctx *t, uint64_t pages)
{
    vs_memory_info m = vsc_meminfo(t);
    if (m.available / t->page < pages)
        vsc_skip(t, "needs %llu pages of %llu KiB, the device has %llu available",
                 (unsigned long long)pages, (unsigned long long)(t->page >> 10),
                 (unsigned long long)(m.available / t->page));
}

void vsc_budget_pages(vsc_ctx *t, uint64_t pages)
{
    vs_memory_info m = vsc_meminfo(t);
    uint64_t own = m.used_weights + m.used_scratch + m.used_intercepted;
    uint64_t want = pages * t->page + t->page / 2;
    uint64_t limit = m.used_others + own + want;
    if (limit > t->props.total_memory || m.available < want)
        vsc_skip(t, "needs a budget of %llu pages of %llu KiB; the device cannot give it",
                 (unsigned long long)pages, (unsigned long long)(t->page >> 10));
    VSC_OK(t, vs_device_set_limit(t->dev, limit, 0));
    m = vsc_meminfo(t);
    uint64_t free_pages = m.available / t->page;
    VSC_CHECKF(t, free_pages == pages,
               "budget setup: wanted room for %llu pages, got %llu (others now use %llu bytes)",
               (unsigned long long)pages, (unsigned long long)free_pages,
               (unsigned long long)m.used_others);
}

/* ---------------------------------------------------------------- VBARs */

vs_vbar_t *vsc_vbar(vsc_ctx *t, uint64_t pages)
{
    vs_vbar_t *v = NULL;
    VSC_OK(t, vs_vbar_create(t->dev, pages * t->page, &v));
    VSC_CHECK(t, v != NULL);
    return v;
}

vs_devptr_t vsc_base(vsc_ctx *t, vs_vbar_t *v)
{
    vs_devptr_t base = 0;
    VSC_OK(t, vs_vbar_get_base(v, &base, NULL));
    return base;
}

uint64_t vsc_loaded(vsc_ctx *t, vs_vbar_t *v)
{
    uint64_t n = 0;
    VSC_OK(t, vs_vbar_loaded_size(v, &n));
    return n;
}

vs_status vsc_fault_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n, uint64_t *sig)
{
    return vs_vbar_fault(v, first * t->page, n * t->page, sig);
}

vs_status vsc_unpin_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n)
{
    return vs_vbar_unpin(v, first * t->page, n * t->page, VS_STREAM_NONE);
}

void vsc_load_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n)
{
    VSC_OK(t, vsc_fault_pages(t, v, first, n, NULL));
    VSC_OK(t, vsc_unpin_pages(t, v, first, n));
}

static char page_letter(uint8_t f)
{
    bool res = f & VS_PAGE_RESIDENT, pin = f & VS_PAGE_PINNED, prot = f & VS_PAGE_PROTECTED;
    if (pin && !res)
        return '!';
    if (pin)
        return prot ? 'p' : 'P';
    if (res)
        return prot ? 'r' : 'R';
    return prot ? ',' : '.';
}

void vsc_residency_text(vsc_ctx *t, vs_vbar_t *v, char *out, size_t cap)
{
    size_t n = 0;
    VSC_OK(t, vs_vbar_residency(v, NULL, 0, &n));
    uint8_t *map = malloc(n ? n : 1);
    VSC_CHECK(t, map != NULL);
    size_t n2 = 0;
    vs_status st = vs_vbar_residency(v, map, n, &n2);
    if (st != VS_OK || n2 != n) {
        free(map);
        VSC_CHECKF(t, 0, "vs_vbar_residency: %s, %zu pages then %zu", vs_status_name(st), n, n2);
    }
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = page_letter(map[i]);
    if (cap)
        out[i] = '\0';
    free(map);
}

void vsc_check_residency(vsc_ctx *t, vs_vbar_t *v, const char *want, const char *file, int line)
{
    char got[4096];
    vsc_mark(t, file, line);
    vsc_residency_text(t, v, got, sizeof got);
    size_t n = strlen(want);
    bool ok = strlen(got) == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = want[i] == '?' || want[i] == got[i];
    if (!ok)
        vsc_fail(t, file, line, "residency is \"%s\", expected \"%s\"", got, want);
}

size_t vsc_count_pages(vsc_ctx *t, vs_vbar_t *v, uint8_t flags)
{
    size_t n = 0;
    VSC_OK(t, vs_vbar_residency(v, NULL, 0, &n));
    uint8_t *map = malloc(n ? n : 1);
    VSC_CHECK(t, map != NULL);
    size_t n2 = 0;
    vs_status st = vs_vbar_residency(v, map, n, &n2);
    size_t c = 0;
    for (size_t i = 0; st == VS_OK && i < n; i++)
        c += (map[i] & flags) == flags;
    free(map);
    VSC_OK(t, st);
    return c;
}

/* ---------------------------------------------------------------- copies */

void vsc_write(vsc_ctx *t, vs_devptr_t dst, const void *src, uint64_t len)
{
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)dst, (uintptr_t)src, len, 0));
    VSC_OK(t, vs_stream_synchronize(t->dev, 0));
}

void vsc_read(vsc_ctx *t, void *dst, vs_devptr_t src, uint64_t len)
{
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, (uintptr_t)src, len, 0));
    VSC_OK(t, vs_stream_synchronize(t->dev, 0));
}

void vsc_check_bytes(vsc_ctx *t, const void *got, const void *want, uint64_t len, const char *what,
                     const char *file, int line)
{
    vsc_mark(t, file, line);
    if (memcmp(got, want, (size_t)len) == 0)
        return;
    const uint8_t *g = got, *w = want;
    uint64_t i = 0;
    while (g[i] == w[i])
        i++;
    uint64_t bad = 0;
    for (uint64_t j = i; j < len; j++)
        bad += g[j] != w[j];
    vsc_fail(t, file, line, "%s: byte %llu of %llu differs (0x%02x, expected 0x%02x); %llu bytes differ", what,
             (unsigned long long)i, (unsigned long long)len, g[i], w[i], (unsigned long long)bad);
}

/* ---------------------------------------------------------------- native allocator */

void vsc_native_begin(vsc_ctx *t)
{
    if (t->native)
        return;
    if (!t->hooks->native_begin)
        vsc_skip(t, "the suite knows no native allocator for backend %s", t->backend);
    char why[256] = "";
    vs_status st = t->hooks->native_begin(t->ordinal, &t->native, why, sizeof why);
    if (st != VS_OK) {
        t->native = NULL;
        vsc_skip(t, "native allocator of backend %s unusable: %s (%s)", t->backend, why, vs_status_name(st));
    }
}

vs_status vsc_native_alloc(vsc_ctx *t, uint64_t size, uintptr_t *ptr)
{
    VSC_CHECK(t, t->native != NULL);
    return t->hooks->native_alloc(t->native, size, ptr);
}

vs_status vsc_native_free(vsc_ctx *t, uintptr_t ptr)
{
    VSC_CHECK(t, t->native != NULL);
    return t->hooks->native_free(t->native, ptr);
}

/* ---------------------------------------------------------------- device open/close */

void vsc_close(vsc_ctx *t)
{
    VSC_CHECK(t, t->dev != NULL);
    VSC_OK(t, vs_device_close(t->dev));
    t->dev = NULL;
}

void vsc_reopen(vsc_ctx *t, uint32_t flags)
{
    VSC_CHECK(t, t->dev == NULL);
    VSC_OK(t, vsc_open_device(t, flags));
}
