/* The invariant checker (mimalloc's mi_page_is_valid in spirit): every
 * structural fact the rest of the core relies on, checked in one place. Debug
 * and test builds (VS_DEBUG_INVARIANTS) run it after every operation, from
 * vs_dev_release. */
#include "internal.h"

uint64_t vs_ptrmap_sum(const vs_ptrmap *m);

#define FAIL(...)                                       \
    do {                                                \
        vs_log(VS_LOG_ERROR, "invariant: " __VA_ARGS__); \
        return VS_ERR_INTERNAL;                         \
    } while (0)

static vs_status check_vbar(vs_device_t *dev, struct vs_vbar *v, uint64_t *weights)
{
    uint64_t page = dev->page_size;
    if (v->dev != dev)
        FAIL("VBAR %p belongs to another device", (void *)v);
    if (v->size == 0 || v->size % page || v->npages != v->size / page)
        FAIL("VBAR %p size %llu is not %zu pages", (void *)v, (unsigned long long)v->size, v->npages);
    if (v->watermark > v->size || v->watermark % page)
        FAIL("VBAR %p watermark %llu", (void *)v, (unsigned long long)v->watermark);
    if (v->floor > v->size || v->floor % page)
        FAIL("VBAR %p floor %llu", (void *)v, (unsigned long long)v->floor);
    if (v->alloc_top > v->size)
        FAIL("VBAR %p allocated past its end", (void *)v);
    size_t resident = 0, pinned = 0;
    for (size_t i = 0; i < v->npages; i++) {
        const vs_page *pg = &v->pages[i];
        if (pg->chunk) {
            resident++;
            if (pg->gen == 0 || pg->gen >= dev->next_gen)
                FAIL("VBAR %p page %zu generation %llu (next %llu)", (void *)v, i, (unsigned long long)pg->gen,
                     (unsigned long long)dev->next_gen);
        } else {
            if (pg->gen != 0 || pg->pins != 0 || pg->last_use)
                FAIL("VBAR %p page %zu not resident but has gen/pins/event", (void *)v, i);
        }
        if (pg->pins)
            pinned++;
        if (pg->last_use && pg->last_use->refs == 0)
            FAIL("VBAR %p page %zu refers to a released event", (void *)v, i);
    }
    if (resident != v->resident || pinned != v->pinned)
        FAIL("VBAR %p counts resident %zu/%zu pinned %zu/%zu", (void *)v, resident, v->resident, pinned, v->pinned);
    *weights += (uint64_t)resident * page;
    return VS_OK;
}

vs_status vs_check_locked(vs_device_t *dev)
{
    uint64_t weights = 0;
    size_t n = 0;
    for (struct vs_vbar *v = dev->most; v; v = v->less) {
        if (v->more ? v->more->less != v : dev->most != v)
            FAIL("priority list broken before VBAR %p", (void *)v);
        if (!v->less && dev->least != v)
            FAIL("priority list tail is not the last VBAR");
        if (++n > dev->nvbars)
            FAIL("priority list longer than %zu", dev->nvbars);
        vs_status st = check_vbar(dev, v, &weights);
        if (st != VS_OK)
            return st;
    }
    if (n != dev->nvbars)
        FAIL("priority list has %zu VBARs, device counts %zu", n, dev->nvbars);
    if (weights != dev->own_weights || dev->stats.cur_weights != weights)
        FAIL("weights: pages say %llu, budget %llu, stats %llu", (unsigned long long)weights,
             (unsigned long long)dev->own_weights, (unsigned long long)dev->stats.cur_weights);
    uint64_t scratch = 0;
    for (struct vs_scratch *b = dev->scratches; b; b = b->next) {
        if (b->dev != dev || b->chunks.n * dev->page_size > b->max_size)
            FAIL("scratch buffer %p inconsistent", (void *)b);
        if (b->chunks.n != vs_round_up(b->size, dev->page_size) / dev->page_size)
            FAIL("scratch buffer %p maps %zu pages for %llu bytes", (void *)b, b->chunks.n,
                 (unsigned long long)b->size);
        scratch += b->chunks.n * dev->page_size;
    }
    if (scratch != dev->own_scratch || dev->stats.cur_scratch != scratch)
        FAIL("scratch: buffers say %llu, budget %llu", (unsigned long long)scratch,
             (unsigned long long)dev->own_scratch);
    uint64_t host = 0;
    for (struct vs_host_buffer *b = dev->hosts; b; b = b->next) {
        uint64_t segs = 0, end = 0;
        for (size_t i = 0; i < b->nsegs; i++) {
            if (b->segs[i].off != end)
                FAIL("host buffer %p registrations not contiguous", (void *)b);
            end += b->segs[i].len;
            segs += b->segs[i].len;
        }
        if ((b->unregistered ? end != 0 : end != b->committed) || b->committed > b->max_size || b->size > b->committed)
            FAIL("host buffer %p committed %llu size %llu", (void *)b, (unsigned long long)b->committed,
                 (unsigned long long)b->size);
        host += segs;
    }
    if (host != dev->stats.cur_host_registered)
        FAIL("host registered: buffers say %llu, stats %llu", (unsigned long long)host,
             (unsigned long long)dev->stats.cur_host_registered);
    uint64_t icpt = vs_ptrmap_sum(&dev->allocs);
    if (icpt != dev->own_intercepted || dev->stats.cur_intercepted != icpt)
        FAIL("intercepted: table says %llu, budget %llu", (unsigned long long)icpt,
             (unsigned long long)dev->own_intercepted);
    /* Stuck chunks (Note [Stuck chunks]): counted, and never where the core
     * believes a page is mapped (that would be core and driver disagreeing). */
    if (dev->stats.stuck_chunks != dev->norphans || dev->norphans > dev->caporphans)
        FAIL("stuck chunks: list has %zu, stats %llu", dev->norphans, (unsigned long long)dev->stats.stuck_chunks);
    for (size_t i = 0; i < dev->norphans; i++) {
        const vs_orphan *o = &dev->orphans[i];
        if ((!o->chunk) != o->reservation || o->size == 0 || (o->reservation && o->mapped))
            FAIL("stuck entry %zu is malformed", i);
        for (struct vs_vbar *v = dev->most; v && o->mapped; v = v->less) {
            if (o->va < v->base || o->va - v->base >= v->size)
                continue;
            const vs_page *pg = &v->pages[(o->va - v->base) / dev->page_size];
            if (pg->chunk)
                FAIL("VBAR %p page at 0x%llx is resident over a stuck mapping", (void *)v, (unsigned long long)o->va);
        }
    }
    size_t free_evs = 0;
    for (vs_evref *e = dev->free_evrefs; e; e = e->next_free) {
        if (e->refs)
            FAIL("a free event is still referenced");
        if (++free_evs > dev->nevrefs)
            FAIL("event free list longer than the events created");
    }
    return VS_OK;
}
