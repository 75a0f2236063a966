/* Property test: seeded random operations on a small simulated device, each one
 * checked against the reference model (model.h) and followed by a full check:
 * the library's invariant checker, every page's residency, pin and signature,
 * watermarks and floors, every figure of vs_memory_info, the simulator's counters,
 * the statistics the step should have moved, and the data written into resident
 * pages (bytes written read back unchanged until the page's signature changes).
 *
 * Environment: VS_PROPERTY_SEED (one seed for every test; "random" for a
 * time-based one), VS_PROPERTY_STEPS (steps per test, default 50000),
 * VS_PROPERTY_TRACE=1 (print every operation). The seed is printed at the start;
 * a failure prints the seed, the step and the last operations.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "model.h"

TestSuite(property, .init = vt_init, .fini = vt_fini, .timeout = 900);

typedef struct pt_cfg {
    const char *name;
    uint64_t seed;          /* default seed */
    uint64_t granularity;   /* bytes */
    uint64_t page;          /* bytes, multiple of granularity */
    uint64_t pages;         /* device memory in pages */
    int intercept;          /* open with VS_DEVICE_INTERCEPT, vs_sim_malloc is counted */
    int inject;             /* inject driver failures into some faults */
    int limits;             /* change limit and headroom */
} pt_cfg;

typedef struct pt_fault_rec {
    uint32_t id;            /* VBAR id */
    uint64_t off, size;
} pt_fault_rec;

typedef struct pt_alloc {
    uintptr_t ptr;
    uint64_t size;
} pt_alloc;

#define PT_SCRATCH_PAGES 8
#define PT_MAX_FAULTS 48
#define PT_MAX_ALLOCS 16
#define PT_HISTORY 24

typedef struct pt_ctx {
    const pt_cfg *cfg;
    uint64_t seed;
    vt_rng rng;
    vt_env *e;
    pm_model m;
    uint32_t next_id;
    pt_fault_rec faults[PT_MAX_FAULTS];
    int nfaults;
    pt_alloc allocs[PT_MAX_ALLOCS];
    int nallocs;
    uintptr_t stream;
    vs_scratch_t *scratch;  /* one scratch buffer of PT_SCRATCH_PAGES pages at most */
    long step;
    int trace;
    char history[PT_HISTORY][192];
    /* Statistics expected to move in this step (checked when check_stats). */
    vs_stats base;
    int check_stats;
    uint64_t want_faults, want_fast, want_not_resident, want_hits;
    uint64_t want_reclaims, want_intercept_oom;
    uint64_t max_gen_before;
} pt_ctx;

/* ------------------------------------------------------------ reporting */

static void pt_op(pt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pt_op(pt_ctx *c, const char *fmt, ...)
{
    char *slot = c->history[c->step % PT_HISTORY];
    int n = snprintf(slot, sizeof c->history[0], "step %ld: ", c->step);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot + n, sizeof c->history[0] - (size_t)n, fmt, ap);
    va_end(ap);
    if (c->trace)
        fprintf(stderr, "%s\n", slot);
}

/* Append to the current operation's line (results, model predictions). */
static void pt_note(pt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pt_note(pt_ctx *c, const char *fmt, ...)
{
    char *slot = c->history[c->step % PT_HISTORY];
    size_t n = strlen(slot);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot + n, sizeof c->history[0] - n, fmt, ap);
    va_end(ap);
    if (c->trace)
        fprintf(stderr, "    -> %s\n", slot + n);
}

static void pt_fail(pt_ctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pt_fail(pt_ctx *c, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "property %s: seed %llu failed at step %ld (line %d): %s\nlast operations:\n",
            c->cfg->name, (unsigned long long)c->seed, c->step, line, msg);
    long first = c->step >= PT_HISTORY ? c->step - PT_HISTORY + 1 : 0;
    for (long s = first; s <= c->step; s++)
        fprintf(stderr, "  %s\n", c->history[s % PT_HISTORY]);
    char dump[8192];
    size_t len = 0;
    if (c->e && vs_device_dump(c->e->dev, dump, sizeof dump, &len) == VS_OK)
        fprintf(stderr, "device dump:\n%s\n", dump);
    vt_log_print_captured();
    cr_assert_fail("property %s seed %llu step %ld line %d: %s", c->cfg->name,
                   (unsigned long long)c->seed, c->step, line, msg);
}

#define PT_ASSERT(c, cond, ...)                    \
    do {                                           \
        if (!(cond))                               \
            pt_fail((c), __LINE__, __VA_ARGS__);   \
    } while (0)
#define PT_STATUS(c, got, want)                                                            \
    do {                                                                                   \
        vs_status pt_g_ = (got), pt_w_ = (want);                                           \
        PT_ASSERT((c), pt_g_ == pt_w_, "%s gave %s, model says %s", #got,                  \
                  vs_status_name(pt_g_), vs_status_name(pt_w_));                           \
    } while (0)

/* ------------------------------------------------------------ helpers */

static pm_vbar *pt_vbar_by_id(pt_ctx *c, uint32_t id)
{
    for (int i = 0; i < c->m.nv; i++)
        if (c->m.order[i]->id == id)
            return c->m.order[i];
    return NULL;
}

static pm_vbar *pt_pick_vbar(pt_ctx *c)
{
    if (c->m.nv == 0)
        return NULL;
    return c->m.order[vt_rng_below(&c->rng, (uint64_t)c->m.nv)];
}

/* A random byte range inside v covering 1..maxpages pages. */
static void pt_pick_range(pt_ctx *c, pm_vbar *v, uint64_t maxpages, uint64_t *off, uint64_t *size)
{
    uint64_t page = c->m.page;
    uint64_t p0 = vt_rng_below(&c->rng, v->npages);
    uint64_t n = vt_rng_range(&c->rng, 1, maxpages);
    if (p0 + n > v->npages)
        n = v->npages - p0;
    uint64_t plast = p0 + n - 1;
    uint64_t a = vt_rng_chance(&c->rng, 1, 2) ? 0 : vt_rng_below(&c->rng, page);
    uint64_t b;
    if (plast == p0)
        b = vt_rng_chance(&c->rng, 1, 2) ? page : vt_rng_range(&c->rng, a + 1, page);
    else
        b = vt_rng_chance(&c->rng, 1, 2) ? page : vt_rng_range(&c->rng, 1, page);
    *off = p0 * page + a;
    *size = plast * page + b - *off;
}

static void pt_range_pages(pt_ctx *c, uint64_t off, uint64_t size, uint64_t *first, uint64_t *last)
{
    *first = off / c->m.page;
    *last = (off + size - 1) / c->m.page;
}

static unsigned char *pt_page_ptr(pt_ctx *c, pm_vbar *v, uint64_t p)
{
    return vt_host(v->base + p * c->m.page);
}

/* Learn the generations of pages mapped in this step: each larger than every
 * generation seen before, increasing in mapping order. Pages that kept their
 * mapping keep their signature. */
static void pt_resolve(pt_ctx *c)
{
    uint64_t newmax = c->m.max_gen;
    uint64_t prev_gen = 0, prev_seq = 0;
    /* Collect pending pages sorted by map_seq: small counts, so selection. */
    for (;;) {
        pm_vbar *best_v = NULL;
        uint64_t best_p = 0, best_seq = UINT64_MAX;
        for (int i = 0; i < c->m.nv; i++) {
            pm_vbar *v = c->m.order[i];
            for (uint64_t p = 0; p < v->npages; p++)
                if (v->pages[p].resident && v->pages[p].gen == PM_PENDING &&
                    v->pages[p].map_seq > prev_seq && v->pages[p].map_seq < best_seq) {
                    best_v = v;
                    best_p = p;
                    best_seq = v->pages[p].map_seq;
                }
        }
        if (!best_v)
            break;
        uint64_t sig = 0;
        size_t count = 0;
        PT_STATUS(c, vs_vbar_page_signatures(best_v->h, best_p * c->m.page, c->m.page, &sig, 1,
                                             &count), VS_OK);
        PT_ASSERT(c, sig != 0, "VBAR %u page %llu mapped but its signature is 0", best_v->id,
                  (unsigned long long)best_p);
        PT_ASSERT(c, sig > c->m.max_gen, "VBAR %u page %llu remapped with generation %llu, not "
                  "above the newest before (%llu)", best_v->id, (unsigned long long)best_p,
                  (unsigned long long)sig, (unsigned long long)c->m.max_gen);
        PT_ASSERT(c, sig > prev_gen, "pages mapped later got smaller generations (%llu after %llu)",
                  (unsigned long long)sig, (unsigned long long)prev_gen);
        best_v->pages[best_p].gen = sig;
        prev_gen = sig;
        prev_seq = best_seq;
        if (sig > newmax)
            newmax = sig;
    }
    c->m.max_gen = newmax;
}

/* Verify the data of pages [first, last] of v that hold a pattern of their
 * current generation. Only call it once the model's residency was checked:
 * reading a page the library unmapped would fault. */
static void pt_check_data_range(pt_ctx *c, pm_vbar *v, uint64_t first, uint64_t last)
{
    for (uint64_t p = first; p <= last; p++) {
        pm_page *pg = &v->pages[p];
        if (!pg->resident || pg->data_gen == 0 || pg->data_gen != pg->gen)
            continue;
        long bad = vt_verify(pt_page_ptr(c, v, p), c->m.page, pg->data_seed);
        PT_ASSERT(c, bad < 0, "VBAR %u page %llu (signature %llu unchanged) lost its data at "
                  "byte %ld", v->id, (unsigned long long)p, (unsigned long long)pg->gen, bad);
    }
}

/* The same for every page of every VBAR. */
static void pt_check_data(pt_ctx *c)
{
    for (int i = 0; i < c->m.nv; i++)
        pt_check_data_range(c, c->m.order[i], 0, c->m.order[i]->npages - 1);
}

static void pt_write_range(pt_ctx *c, pm_vbar *v, uint64_t first, uint64_t last)
{
    for (uint64_t p = first; p <= last; p++) {
        pm_page *pg = &v->pages[p];
        if (pg->data_gen == pg->gen && !vt_rng_chance(&c->rng, 1, 16))
            continue;
        pg->data_seed = vt_rng_next(&c->rng) | 1;
        pg->data_gen = pg->gen;
        vt_fill(pt_page_ptr(c, v, p), c->m.page, pg->data_seed);
    }
}

/* The full check after a step. */
static void pt_check(pt_ctx *c)
{
    pm_model *m = &c->m;
    pt_resolve(c);
    PT_STATUS(c, vs_device_check_invariants(c->e->dev), VS_OK);
    static uint8_t map[4096];
    static uint64_t sigs[4096];
    for (int i = 0; i < m->nv; i++) {
        pm_vbar *v = m->order[i];
        size_t count = 0;
        PT_STATUS(c, vs_vbar_residency(v->h, map, sizeof map, &count), VS_OK);
        PT_ASSERT(c, count == v->npages, "VBAR %u: %zu pages, model %llu", v->id, count,
                  (unsigned long long)v->npages);
        PT_STATUS(c, vs_vbar_page_signatures(v->h, 0, v->size, sigs, 4096, &count), VS_OK);
        uint64_t resident = 0;
        for (uint64_t p = 0; p < v->npages; p++) {
            pm_page *pg = &v->pages[p];
            int res = !!(map[p] & VS_PAGE_RESIDENT), pin = !!(map[p] & VS_PAGE_PINNED);
            PT_ASSERT(c, res == pg->resident, "VBAR %u (priority %d) page %llu: resident %d, "
                      "model %d", v->id, i, (unsigned long long)p, res, pg->resident);
            PT_ASSERT(c, pin == (pg->pins > 0), "VBAR %u page %llu: pinned %d, model pins %u",
                      v->id, (unsigned long long)p, pin, pg->pins);
            if (pg->resident) {
                int prot = !!(map[p] & VS_PAGE_PROTECTED);
                PT_ASSERT(c, prot == (p * m->page < v->floor), "VBAR %u page %llu: protected %d",
                          v->id, (unsigned long long)p, prot);
            }
            PT_ASSERT(c, sigs[p] == (pg->resident ? pg->gen : 0), "VBAR %u page %llu: signature "
                      "%llu, model %llu", v->id, (unsigned long long)p,
                      (unsigned long long)sigs[p], (unsigned long long)pg->gen);
            resident += pg->resident;
        }
        uint64_t loaded = 0, wm = 0, fl = 0;
        PT_STATUS(c, vs_vbar_loaded_size(v->h, &loaded), VS_OK);
        PT_ASSERT(c, loaded == resident * m->page, "VBAR %u loaded %llu, resident pages %llu",
                  v->id, (unsigned long long)loaded, (unsigned long long)resident);
        PT_STATUS(c, vs_vbar_get_watermark(v->h, &wm), VS_OK);
        PT_ASSERT(c, wm == v->watermark, "VBAR %u watermark %llu, model %llu", v->id,
                  (unsigned long long)wm, (unsigned long long)v->watermark);
        PT_STATUS(c, vs_vbar_get_floor(v->h, &fl), VS_OK);
        PT_ASSERT(c, fl == v->floor, "VBAR %u floor %llu, model %llu", v->id,
                  (unsigned long long)fl, (unsigned long long)v->floor);
    }
    vs_memory_info mi;
    PT_STATUS(c, vs_device_memory_info(c->e->dev, &mi), VS_OK);
#define PT_FIELD(field, want)                                                              \
    PT_ASSERT(c, mi.field == (want), "memory_info." #field " %llu, model %llu",             \
              (unsigned long long)mi.field, (unsigned long long)(want))
    PT_FIELD(total, pm_total(m));
    PT_FIELD(headroom, m->headroom);
    PT_FIELD(budget, pm_budget(m));
    PT_FIELD(used_weights, pm_weights(m));
    PT_FIELD(used_scratch, m->scratch);
    PT_FIELD(used_intercepted, m->intercepted);
    PT_FIELD(used_others, pm_others(m));
    PT_FIELD(available, pm_available(m));
    PT_FIELD(evictable, pm_evictable_bytes(m));
#undef PT_FIELD
    vs_sim_counters sc = vt_counters(c->e->ordinal);
    uint64_t mapped = pm_weights(m) + m->scratch;
    PT_ASSERT(c, sc.mapped_bytes == mapped, "sim maps %llu bytes, model %llu",
              (unsigned long long)sc.mapped_bytes, (unsigned long long)mapped);
    PT_ASSERT(c, sc.phys_bytes == mapped, "sim holds %llu physical bytes, model %llu",
              (unsigned long long)sc.phys_bytes, (unsigned long long)mapped);
    PT_ASSERT(c, sc.reservations == (uint64_t)m->nv + 1, "sim has %llu reservations, %d VBARs "
              "and a scratch buffer", (unsigned long long)sc.reservations, m->nv);
    if (c->check_stats) {
        vs_stats s;
        PT_STATUS(c, vs_device_get_stats(c->e->dev, &s), VS_OK);
#define PT_DELTA(field, want)                                                              \
    PT_ASSERT(c, s.field - c->base.field == (want), "stats." #field " moved by %llu, model %llu", \
              (unsigned long long)(s.field - c->base.field), (unsigned long long)(want))
        PT_DELTA(faults, c->want_faults);
        PT_DELTA(fault_fast_fails, c->want_fast);
        PT_DELTA(fault_not_resident, c->want_not_resident);
        PT_DELTA(fault_hits, c->want_hits);
        PT_DELTA(pages_mapped, m->step_mapped);
        PT_DELTA(pages_evicted, m->step_evicted);
        PT_DELTA(bytes_evicted, m->step_evicted * m->page);
        PT_DELTA(reclaims, c->want_reclaims);
        PT_DELTA(intercepted_oom, c->want_intercept_oom);
#undef PT_DELTA
        PT_ASSERT(c, s.cur_weights == pm_weights(m), "stats.cur_weights %llu",
                  (unsigned long long)s.cur_weights);
        PT_ASSERT(c, s.cur_intercepted == m->intercepted, "stats.cur_intercepted %llu",
                  (unsigned long long)s.cur_intercepted);
        PT_ASSERT(c, s.cur_scratch == m->scratch, "stats.cur_scratch %llu",
                  (unsigned long long)s.cur_scratch);
    }
    pt_check_data(c);
}

/* ------------------------------------------------------------ operations */

static void pt_do_create(pt_ctx *c)
{
    if (c->m.nv >= 4)
        return;
    uint64_t pages = vt_rng_range(&c->rng, 1, c->cfg->pages * 3 / 4);
    uint64_t size = pages * c->m.page - vt_rng_below(&c->rng, c->m.page);
    pt_op(c, "create VBAR %u of %llu bytes", c->next_id, (unsigned long long)size);
    vs_vbar_t *h = NULL;
    PT_STATUS(c, vs_vbar_create(c->e->dev, size, &h), VS_OK);
    vs_devptr_t base = 0;
    uint64_t got = 0;
    PT_STATUS(c, vs_vbar_get_base(h, &base, &got), VS_OK);
    PT_ASSERT(c, got == pages * c->m.page, "size %llu", (unsigned long long)got);
    pm_vbar_add(&c->m, h, c->next_id++, size, base);
}

static void pt_forget_faults_of(pt_ctx *c, uint32_t id)
{
    for (int i = 0; i < c->nfaults;) {
        if (c->faults[i].id == id)
            c->faults[i] = c->faults[--c->nfaults];
        else
            i++;
    }
}

static void pt_unpin_record(pt_ctx *c, int i)
{
    pt_fault_rec r = c->faults[i];
    pm_vbar *v = pt_vbar_by_id(c, r.id);
    uintptr_t stream = vt_rng_chance(&c->rng, 1, 4) ? c->stream : 0;
    pt_op(c, "unpin VBAR %u [%llu, +%llu) on stream %s", r.id, (unsigned long long)r.off,
          (unsigned long long)r.size, stream ? "s" : "0");
    uint64_t first, last;
    pt_range_pages(c, r.off, r.size, &first, &last);
    PT_ASSERT(c, pm_unpin(&c->m, v, first, last) == 0, "model: outstanding fault not pinned");
    PT_STATUS(c, vs_vbar_unpin(v->h, r.off, r.size, stream), VS_OK);
    c->faults[i] = c->faults[--c->nfaults];
}

static void pt_do_destroy(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    if (vt_rng_chance(&c->rng, 1, 2)) {
        for (int i = 0; i < c->nfaults;) {
            if (c->faults[i].id == v->id)
                pt_unpin_record(c, i);
            else
                i++;
        }
    }
    pt_op(c, "destroy VBAR %u", v->id);
    if (pm_any_pinned(v)) {
        PT_STATUS(c, vs_vbar_destroy(v->h), VS_ERR_BUSY);
        return;
    }
    PT_STATUS(c, vs_vbar_destroy(v->h), VS_OK);
    pt_forget_faults_of(c, v->id);
    pm_vbar_remove(&c->m, v);
    /* Destroying unmaps: not counted as pressure evictions; take a new baseline. */
    c->check_stats = 0;
}

static void pt_do_alloc(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    uint64_t size = vt_rng_range(&c->rng, 1, 2 * c->m.page);
    uint64_t align = vt_rng_chance(&c->rng, 1, 3) ? 0 : (1ull << vt_rng_below(&c->rng, 15));
    pt_op(c, "alloc VBAR %u size %llu align %llu", v->id, (unsigned long long)size,
          (unsigned long long)align);
    uint64_t a = align ? align : 256;
    uint64_t off = (v->alloc_next + a - 1) & ~(a - 1);
    uint64_t got = 0;
    vs_status st = vs_vbar_alloc(v->h, size, align, &got);
    if (off + size > v->size) {
        PT_STATUS(c, st, VS_ERR_OUT_OF_MEMORY);
    } else {
        PT_STATUS(c, st, VS_OK);
        PT_ASSERT(c, got == off, "alloc at %llu, model %llu", (unsigned long long)got,
                  (unsigned long long)off);
        v->alloc_next = off + size;
    }
    uint64_t used = 0;
    PT_STATUS(c, vs_vbar_allocated(v->h, &used), VS_OK);
    PT_ASSERT(c, used == v->alloc_next, "allocated %llu, model %llu", (unsigned long long)used,
              (unsigned long long)v->alloc_next);
}

static void pt_after_good_fault(pt_ctx *c, pm_vbar *v, uint64_t off, uint64_t size, uint64_t sig)
{
    uint64_t first, last;
    pt_range_pages(c, off, size, &first, &last);
    uint64_t maxgen = 0;
    for (uint64_t p = first; p <= last; p++)
        if (v->pages[p].gen > maxgen)
            maxgen = v->pages[p].gen;
    PT_ASSERT(c, sig == maxgen, "fault signature %llu, newest page of the range %llu",
              (unsigned long long)sig, (unsigned long long)maxgen);
    /* Before overwriting: what survived must be intact (these pages are pinned
     * and resident, VS_OK says so). */
    pt_check_data_range(c, v, first, last);
    pt_write_range(c, v, first, last);
    PT_ASSERT(c, c->nfaults < PT_MAX_FAULTS, "too many outstanding faults");
    c->faults[c->nfaults++] = (pt_fault_rec){v->id, off, size};
}

static void pt_do_fault(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    uint64_t off, size, first, last;
    pt_pick_range(c, v, 4, &off, &size);
    pt_range_pages(c, off, size, &first, &last);
    pt_op(c, "fault VBAR %u [%llu, +%llu) pages %llu-%llu", v->id, (unsigned long long)off,
          (unsigned long long)size, (unsigned long long)first, (unsigned long long)last);
    pm_fault_result r = pm_fault(&c->m, v, first, last);
    uint64_t sig = 12345;
    vs_status st = vs_vbar_fault(v->h, off, size, &sig);
    pt_note(c, " -> %s (model %s, mapped %llu, evicted %llu)", vs_status_name(st),
            r == PM_FAULT_OK ? "ok" : r == PM_FAULT_FAST_FAIL ? "fast fail" : "no room",
            (unsigned long long)c->m.step_mapped, (unsigned long long)c->m.step_evicted);
    pt_resolve(c);
    c->want_faults = 1;
    c->want_fast = r == PM_FAULT_FAST_FAIL;
    c->want_not_resident = r != PM_FAULT_OK;
    c->want_hits = r == PM_FAULT_OK && c->m.step_mapped == 0;
    if (r == PM_FAULT_OK) {
        PT_STATUS(c, st, VS_OK);
        pt_after_good_fault(c, v, off, size, sig);
    } else {
        PT_STATUS(c, st, VS_NOT_RESIDENT);
        PT_ASSERT(c, sig == 0, "signature %llu with VS_NOT_RESIDENT", (unsigned long long)sig);
    }
}

static void pt_do_unpin(pt_ctx *c)
{
    if (c->nfaults == 0)
        return;
    pt_unpin_record(c, (int)vt_rng_below(&c->rng, (uint64_t)c->nfaults));
}

static void pt_do_unpin_random(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    uint64_t off, size, first, last;
    pt_pick_range(c, v, 3, &off, &size);
    pt_range_pages(c, off, size, &first, &last);
    pt_op(c, "unpin (random) VBAR %u [%llu, +%llu)", v->id, (unsigned long long)off,
          (unsigned long long)size);
    /* Only when it does not break an outstanding fault's pin: we may only unpin
     * what no record holds, so test the refusal; a valid random unpin is skipped. */
    for (uint64_t p = first; p <= last; p++) {
        if (v->pages[p].pins == 0) {
            PT_STATUS(c, vs_vbar_unpin(v->h, off, size, 0), VS_ERR_NOT_PINNED);
            return;
        }
    }
}

static void pt_do_reclaim(pt_ctx *c)
{
    uint64_t bytes = vt_rng_below(&c->rng, c->cfg->pages / 2 * c->m.page + 1);
    pt_op(c, "reclaim %llu", (unsigned long long)bytes);
    uint64_t want = 0, freed = 77;
    pt_note(c, " [model before: budget %llu own %llu others %llu available %llu evictable %llu]",
            (unsigned long long)pm_budget(&c->m), (unsigned long long)pm_own(&c->m),
            (unsigned long long)pm_others(&c->m), (unsigned long long)pm_available(&c->m),
            (unsigned long long)pm_evictable_bytes(&c->m));
    int r = pm_reclaim(&c->m, bytes, &want);
    vs_status st = vs_device_reclaim(c->e->dev, bytes, &freed);
    c->want_reclaims = 1;
    if (r == 0) {
        PT_STATUS(c, st, VS_OK);
        PT_ASSERT(c, freed == want, "reclaim freed %llu, model %llu", (unsigned long long)freed,
                  (unsigned long long)want);
    } else {
        PT_STATUS(c, st, VS_ERR_OUT_OF_MEMORY);
    }
}

static void pt_do_free_memory(pt_ctx *c)
{
    uint64_t bytes = vt_rng_below(&c->rng, c->cfg->pages / 2 * c->m.page + 1);
    pt_op(c, "device free_memory %llu", (unsigned long long)bytes);
    uint64_t want = pm_free_memory(&c->m, bytes), freed = 77;
    vs_status st = vs_device_free_memory(c->e->dev, bytes, &freed);
    /* VS_OK either way; *freed says how much. */
    PT_STATUS(c, st, VS_OK);
    PT_ASSERT(c, freed == want, "freed %llu, model %llu", (unsigned long long)freed,
              (unsigned long long)want);
}

static void pt_do_vbar_free_memory(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    uint64_t bytes = vt_rng_below(&c->rng, v->size + 1);
    pt_op(c, "VBAR %u free_memory %llu", v->id, (unsigned long long)bytes);
    uint64_t want = pm_vbar_free_memory(&c->m, v, bytes), freed = 77;
    vs_status st = vs_vbar_free_memory(v->h, bytes, &freed);
    if (want >= bytes) {
        PT_STATUS(c, st, VS_OK);
        PT_ASSERT(c, freed == want, "freed %llu, model %llu", (unsigned long long)freed,
                  (unsigned long long)want);
    } else {
        PT_ASSERT(c, st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "gave %s", vs_status_name(st));
        if (st == VS_OK)
            PT_ASSERT(c, freed == want, "freed %llu, model %llu", (unsigned long long)freed,
                      (unsigned long long)want);
    }
}

static void pt_do_priority(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    if (vt_rng_chance(&c->rng, 1, 2)) {
        pt_op(c, "prioritize VBAR %u", v->id);
        PT_STATUS(c, vs_vbar_prioritize(v->h), VS_OK);
        pm_prioritize(&c->m, v);
    } else {
        pt_op(c, "deprioritize VBAR %u", v->id);
        PT_STATUS(c, vs_vbar_deprioritize(v->h), VS_OK);
        pm_deprioritize(&c->m, v);
    }
}

static void pt_do_watermark(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    uint64_t b = vt_rng_chance(&c->rng, 1, 2) ? v->size : vt_rng_below(&c->rng, v->size + 1);
    pt_op(c, "VBAR %u set_watermark %llu", v->id, (unsigned long long)b);
    PT_STATUS(c, vs_vbar_set_watermark(v->h, b), VS_OK);
    v->watermark = b / c->m.page * c->m.page;
}

static void pt_do_floor(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    if (vt_rng_chance(&c->rng, 1, 5)) {
        pt_op(c, "reset_floors");
        PT_STATUS(c, vs_device_reset_floors(c->e->dev), VS_OK);
        for (int i = 0; i < c->m.nv; i++)
            c->m.order[i]->floor = 0;
        return;
    }
    uint64_t b = vt_rng_chance(&c->rng, 1, 3) ? 0 : vt_rng_below(&c->rng, v->size / 2 + 1);
    pt_op(c, "VBAR %u set_floor %llu", v->id, (unsigned long long)b);
    PT_STATUS(c, vs_vbar_set_floor(v->h, b), VS_OK);
    v->floor = (b + c->m.page - 1) / c->m.page * c->m.page;
}

static void pt_do_limit(pt_ctx *c)
{
    uint64_t page = c->m.page;
    uint64_t limit = vt_rng_chance(&c->rng, 1, 3)
                         ? 0
                         : vt_rng_range(&c->rng, c->cfg->pages / 2, c->cfg->pages) * page;
    uint64_t headroom = vt_rng_below(&c->rng, 4) * page;
    pt_op(c, "set_limit %llu headroom %llu", (unsigned long long)limit,
          (unsigned long long)headroom);
    c->m.limit = limit;
    c->m.headroom = headroom;
    int r = pm_fit_budget(&c->m);
    vs_status st = vs_device_set_limit(c->e->dev, limit, headroom);
    if (r == 0)
        PT_STATUS(c, st, VS_OK);
    else
        PT_ASSERT(c, st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "set_limit gave %s",
                  vs_status_name(st));
}

static void pt_do_external(pt_ctx *c)
{
    uint64_t x = vt_rng_chance(&c->rng, 1, 3) ? 0 : vt_rng_below(&c->rng, c->cfg->pages / 2 + 1) *
                                                      c->m.page;
    pt_op(c, "external usage %llu", (unsigned long long)x);
    uint64_t used = pm_weights(&c->m) + c->m.scratch + c->m.intercepted + c->m.uncounted;
    uint64_t rest = c->m.capacity > used ? c->m.capacity - used : 0;
    vs_status st = vs_sim_set_external_usage(c->e->ordinal, x);
    if (x <= rest) {
        PT_STATUS(c, st, VS_OK);
        c->m.external = x;
    } else {
        PT_STATUS(c, st, VS_ERR_OUT_OF_MEMORY);
    }
}

static void pt_do_malloc(pt_ctx *c)
{
    if (c->nallocs >= PT_MAX_ALLOCS)
        return;
    uint64_t size = vt_rng_range(&c->rng, 1, 4) * c->cfg->granularity;
    pt_op(c, "sim_malloc %llu", (unsigned long long)size);
    uintptr_t ptr = 0;
    int ok;
    pt_note(c, " [model before: limit %llu headroom %llu budget %llu own %llu others %llu "
            "available %llu evictable %llu driver free %llu]", (unsigned long long)c->m.limit,
            (unsigned long long)c->m.headroom, (unsigned long long)pm_budget(&c->m),
            (unsigned long long)pm_own(&c->m), (unsigned long long)pm_others(&c->m),
            (unsigned long long)pm_available(&c->m), (unsigned long long)pm_evictable_bytes(&c->m),
            (unsigned long long)pm_driver_free(&c->m));
    if (c->cfg->intercept) {
        int refused = 0, driver_oom = 0;
        ok = pm_intercepted_malloc(&c->m, size, &refused, &driver_oom) == 0;
        c->want_reclaims = 1;
        c->want_intercept_oom = (uint64_t)refused;
        if (driver_oom)
            c->check_stats = 0;   /* how on_oom counts is not specified */
    } else {
        ok = pm_driver_free(&c->m) >= size;
        if (ok)
            c->m.uncounted += size;
    }
    vs_status st = vs_sim_malloc(c->e->ordinal, size, &ptr);
    PT_STATUS(c, st, ok ? VS_OK : VS_ERR_OUT_OF_MEMORY);
    if (ok)
        c->allocs[c->nallocs++] = (pt_alloc){ptr, size};
}

static void pt_do_free(pt_ctx *c)
{
    if (c->nallocs == 0)
        return;
    int i = (int)vt_rng_below(&c->rng, (uint64_t)c->nallocs);
    pt_op(c, "sim_free %llu bytes", (unsigned long long)c->allocs[i].size);
    PT_STATUS(c, vs_sim_free(c->e->ordinal, c->allocs[i].ptr), VS_OK);
    if (c->cfg->intercept)
        c->m.intercepted -= c->allocs[i].size;
    else
        c->m.uncounted -= c->allocs[i].size;
    c->allocs[i] = c->allocs[--c->nallocs];
}

static void pt_do_scratch(pt_ctx *c)
{
    uint64_t pages = vt_rng_below(&c->rng, PT_SCRATCH_PAGES + 1);
    uint64_t size = pages * c->m.page;
    if (size && vt_rng_chance(&c->rng, 1, 2))
        size -= vt_rng_below(&c->rng, c->m.page);
    pt_op(c, "scratch resize %llu", (unsigned long long)size);
    uint64_t before = c->m.scratch;
    int r = pm_scratch_resize(&c->m, size);
    if (r == 0 ? c->m.scratch > before : 1)
        c->want_reclaims = 1;
    vs_status st = vs_scratch_resize(c->scratch, size);
    PT_STATUS(c, st, r == 0 ? VS_OK : VS_ERR_OUT_OF_MEMORY);
    if (st == VS_OK) {
        vs_devptr_t p = 0;
        uint64_t got = 0, max = 0;
        PT_STATUS(c, vs_scratch_get(c->scratch, &p, &got, &max), VS_OK);
        PT_ASSERT(c, got == size, "scratch size %llu", (unsigned long long)got);
        if (size) /* the mapped pages are usable */
            vt_fill(vt_host(p), c->m.scratch, vt_rng_next(&c->rng));
    }
}

/* A fault with a driver failure armed. Only allowed transitions are checked; the
 * model then learns the outcome. */
static void pt_do_injected_fault(pt_ctx *c)
{
    pm_vbar *v = pt_pick_vbar(c);
    if (!v)
        return;
    static const int ops[] = {VS_SIM_OP_MAP, VS_SIM_OP_SET_ACCESS, VS_SIM_OP_PHYS_CREATE};
    static const vs_status errs[] = {VS_ERR_OUT_OF_MEMORY, VS_ERR_NOT_READY, VS_ERR_BACKEND};
    int op = ops[vt_rng_below(&c->rng, 3)];
    vs_status err = errs[vt_rng_below(&c->rng, 3)];
    uint32_t skip = (uint32_t)vt_rng_below(&c->rng, 3);
    uint32_t count = (uint32_t)vt_rng_range(&c->rng, 1, 3);
    uint64_t off, size, first, last;
    pt_pick_range(c, v, 4, &off, &size);
    pt_range_pages(c, off, size, &first, &last);
    pt_op(c, "fault VBAR %u [%llu, +%llu) with sim op %d failing %s (skip %u, count %u)", v->id,
          (unsigned long long)off, (unsigned long long)size, op, vs_status_name(err), skip, count);

    /* Snapshot. */
    pm_model before = c->m;
    static pm_page saved[PM_MAXV][4096];
    for (int i = 0; i < c->m.nv; i++)
        memcpy(saved[i], c->m.order[i]->pages, c->m.order[i]->npages * sizeof(pm_page));
    int fast = 0;
    for (uint64_t p = first; p <= last; p++)
        if (!v->pages[p].resident && p * c->m.page >= v->watermark)
            fast = 1;

    PT_STATUS(c, vs_sim_inject(c->e->ordinal, op, skip, count, err), VS_OK);
    uint64_t sig = 12345;
    vs_status st = vs_vbar_fault(v->h, off, size, &sig);
    PT_STATUS(c, vs_sim_inject_clear(c->e->ordinal), VS_OK);
    if (fast) {
        PT_STATUS(c, st, VS_NOT_RESIDENT);
    } else {
        PT_ASSERT(c, st == VS_OK || st == VS_NOT_RESIDENT || st == VS_ERR_BACKEND ||
                         st == VS_ERR_OUT_OF_MEMORY || st == VS_ERR_NOT_READY,
                  "injected fault gave %s", vs_status_name(st));
    }
    if (st != VS_OK)
        PT_ASSERT(c, sig == 0 || sig == 12345, "signature %llu on failure",
                  (unsigned long long)sig);

    /* Learn the outcome page by page. */
    static uint8_t map[4096];
    static uint64_t sigs[4096];
    for (int i = 0; i < c->m.nv; i++) {
        pm_vbar *w = c->m.order[i];
        size_t count_out = 0;
        PT_STATUS(c, vs_vbar_residency(w->h, map, sizeof map, &count_out), VS_OK);
        PT_STATUS(c, vs_vbar_page_signatures(w->h, 0, w->size, sigs, 4096, &count_out), VS_OK);
        uint64_t lowest_evicted = w->size;
        for (uint64_t p = 0; p < w->npages; p++) {
            pm_page *pg = &w->pages[p];
            const pm_page *old = &saved[i][p];
            int in_range = w == v && p >= first && p <= last;
            int res = !!(map[p] & VS_PAGE_RESIDENT);
            uint32_t pins = old->pins + (st == VS_OK && in_range ? 1u : 0u);
            PT_ASSERT(c, !!(map[p] & VS_PAGE_PINNED) == (pins > 0),
                      "VBAR %u page %llu pinned %d after an injected fault (%s), expected %u pins",
                      w->id, (unsigned long long)p, !!(map[p] & VS_PAGE_PINNED),
                      vs_status_name(st), pins);
            if (in_range && st == VS_OK)
                PT_ASSERT(c, res, "VBAR %u page %llu not resident after VS_OK", w->id,
                          (unsigned long long)p);
            if (old->resident && res) {
                PT_ASSERT(c, sigs[p] == old->gen, "VBAR %u page %llu changed signature without "
                          "being evicted", w->id, (unsigned long long)p);
            } else if (old->resident && !res) {
                PT_ASSERT(c, !in_range && old->pins == 0 && p * c->m.page >= w->floor,
                          "VBAR %u page %llu evicted although not evictable", w->id,
                          (unsigned long long)p);
                if (p * c->m.page < lowest_evicted)
                    lowest_evicted = p * c->m.page;
                pg->data_gen = 0;
                c->m.step_evicted++;
            } else if (!old->resident && res) {
                PT_ASSERT(c, in_range, "VBAR %u page %llu mapped outside the fault's range",
                          w->id, (unsigned long long)p);
                PT_ASSERT(c, sigs[p] > before.max_gen, "new mapping with an old generation");
                if (sigs[p] > c->m.max_gen)
                    c->m.max_gen = sigs[p];
                pg->data_gen = 0;
            }
            pg->resident = (uint8_t)res;
            pg->pins = pins;
            pg->gen = res ? sigs[p] : 0;
        }
        uint64_t want_wm = w->watermark < lowest_evicted ? w->watermark : lowest_evicted;
        w->watermark = want_wm;
    }
    c->check_stats = 0;
    if (st == VS_OK)
        pt_after_good_fault(c, v, off, size, sig);
}

/* ------------------------------------------------------------ driver */

typedef void (*pt_op_fn)(pt_ctx *c);

static void pt_step(pt_ctx *c)
{
    pm_step_begin(&c->m);
    c->check_stats = 1;
    c->want_faults = c->want_fast = c->want_not_resident = c->want_hits = 0;
    c->want_reclaims = c->want_intercept_oom = 0;
    snprintf(c->history[c->step % PT_HISTORY], sizeof c->history[0], "step %ld: (nothing)",
             c->step);
    PT_STATUS(c, vs_device_get_stats(c->e->dev, &c->base), VS_OK);

    /* Keep the number of outstanding pins bounded. */
    if (c->nfaults >= PT_MAX_FAULTS - 4) {
        pt_do_unpin(c);
        return;
    }
    struct {
        pt_op_fn fn;
        unsigned weight;
    } table[] = {
        {pt_do_create, c->m.nv < 2 ? 30u : 4u},
        {pt_do_destroy, 2},
        {pt_do_alloc, 3},
        {pt_do_fault, 30},
        {pt_do_unpin, 26},
        {pt_do_unpin_random, 3},
        {pt_do_reclaim, 4},
        {pt_do_free_memory, 3},
        {pt_do_vbar_free_memory, 3},
        {pt_do_priority, 8},
        {pt_do_watermark, 5},
        {pt_do_floor, 3},
        {pt_do_limit, c->cfg->limits ? 2u : 0u},
        {pt_do_external, 2},
        {pt_do_scratch, 2},
        {pt_do_malloc, 3},
        {pt_do_free, 3},
        {pt_do_injected_fault, c->cfg->inject ? 5u : 0u},
    };
    unsigned total = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        total += table[i].weight;
    unsigned r = (unsigned)vt_rng_below(&c->rng, total);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (r < table[i].weight) {
            table[i].fn(c);
            break;
        }
        r -= table[i].weight;
    }
}

static void pt_teardown(pt_ctx *c)
{
    c->step++;
    pm_step_begin(&c->m);
    c->check_stats = 0;
    while (c->nfaults > 0)
        pt_unpin_record(c, c->nfaults - 1);
    pt_check(c);
    while (c->m.nv > 0) {
        pm_vbar *v = c->m.order[c->m.nv - 1];
        PT_STATUS(c, vs_vbar_destroy(v->h), VS_OK);
        pm_vbar_remove(&c->m, v);
    }
    while (c->nallocs > 0) {
        c->nallocs--;
        PT_STATUS(c, vs_sim_free(c->e->ordinal, c->allocs[c->nallocs].ptr), VS_OK);
    }
    PT_STATUS(c, vs_sim_set_external_usage(c->e->ordinal, 0), VS_OK);
    PT_STATUS(c, vs_stream_destroy(c->e->dev, c->stream), VS_OK);
    PT_STATUS(c, vs_scratch_destroy(c->scratch), VS_OK);
    vt_close(c->e);
    c->e = NULL;
}

static void pt_run(const pt_cfg *cfg)
{
    static pt_ctx ctx;
    pt_ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    int from_env = 0;
    const char *s = getenv("VS_PROPERTY_SEED");
    if (s && strcmp(s, "random") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->seed = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec;
    } else {
        c->seed = vt_env_u64("VS_PROPERTY_SEED", cfg->seed, &from_env);
    }
    long steps = (long)vt_env_u64("VS_PROPERTY_STEPS", 50000, NULL);
    c->trace = getenv("VS_PROPERTY_TRACE") && *getenv("VS_PROPERTY_TRACE") != '0';
    fprintf(stderr, "property %s: seed %llu, %ld steps (VS_PROPERTY_SEED=%llu to repeat)\n",
            cfg->name, (unsigned long long)c->seed, steps, (unsigned long long)c->seed);
    vt_rng_seed(&c->rng, c->seed);
    vt_log_capture();   /* destroys of pinned VBARs log errors on purpose */
    c->e = vt_open(&(vt_params){.pages = cfg->pages,
                                .granularity = cfg->granularity,
                                .page_size = cfg->page,
                                .flags = cfg->intercept ? VS_DEVICE_INTERCEPT : 0u});
    pm_init(&c->m, c->e->page, c->e->capacity, 0, 0);
    VT_OK(vs_stream_create(c->e->dev, &c->stream));
    VT_OK(vs_scratch_create(c->e->dev, PT_SCRATCH_PAGES * c->e->page, &c->scratch));
    for (c->step = 0; c->step < steps; c->step++) {
        pt_step(c);
        pt_check(c);
    }
    vs_stats st;
    VT_OK(vs_device_get_stats(c->e->dev, &st));
    fprintf(stderr, "property %s: %ld steps; %llu faults (%llu hits, %llu mapped, %llu not resident "
            "of which %llu fast), %llu pages mapped, %llu evicted, %llu reclaims, %llu intercepted "
            "allocations, %llu transient retries, %llu backend failures\n", cfg->name, steps,
            (unsigned long long)st.faults, (unsigned long long)st.fault_hits,
            (unsigned long long)st.fault_maps, (unsigned long long)st.fault_not_resident,
            (unsigned long long)st.fault_fast_fails, (unsigned long long)st.pages_mapped,
            (unsigned long long)st.pages_evicted, (unsigned long long)st.reclaims,
            (unsigned long long)st.intercepted_allocs, (unsigned long long)st.transient_retries,
            (unsigned long long)st.backend_failures);
    pt_teardown(c);
}

static const pt_cfg pt_basic = {"basic", 1, 4096, 4096, 32, 0, 0, 0};
static const pt_cfg pt_intercept = {"intercept_limits", 2, 4096, 4096, 32, 1, 0, 1};
static const pt_cfg pt_inject = {"inject", 3, 4096, 4096, 32, 1, 1, 1};
static const pt_cfg pt_big_pages = {"big_pages", 4, 4096, 3 * 4096, 20, 0, 1, 1};

Test(property, basic)
{
    pt_run(&pt_basic);
}

Test(property, intercept_limits)
{
    pt_run(&pt_intercept);
}

Test(property, inject)
{
    pt_run(&pt_inject);
}

Test(property, big_pages)
{
    pt_run(&pt_big_pages);
}
