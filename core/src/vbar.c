/* VBARs: reserved device address ranges holding a model's weights, mapped page
 * by page on demand (the model is described at the top of vramswap.h and in
 * docs/design.md, "Semantics").
 *
 * Note [Signatures]
 * ~~~~~~~~~~~~~~~~~
 * Every mapping of a page takes the device's next generation number, so a page
 * mapped later has a larger generation than every page mapped before it. The
 * signature of a range is the largest generation among its pages: if any page
 * of the range is remapped, its new generation exceeds the old maximum and the
 * signature changes; if none is, it stays. One compare tells the caller whether
 * its copy of the weights is still in VRAM. (Generations are 64-bit: they do not
 * wrap.)
 *
 * Note [Transient driver errors]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * cuMemMap/cuMemSetAccess have been seen returning CUDA_ERROR_NOT_READY right
 * after evictions on consumer cards (comfy-aimdo's "Fault failed: 2", about one
 * run in five); a retry clears it. Backends report it as VS_ERR_NOT_READY and
 * vs_map_new retries up to VS_TRANSIENT_RETRIES times with a short, growing
 * sleep, counting each retry in stats.transient_retries; after that it is a
 * failure like any other.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define VS_TRANSIENT_RETRIES 8

static void backoff(int attempt)
{
    struct timespec ts = {0, 20000L << attempt}; /* 20 us, 40 us, ... ~2.5 ms */
    nanosleep(&ts, NULL);
}

/* Call op until it stops answering NOT_READY. */
#define VS_RETRY(dev, st, call)                                        \
    do {                                                               \
        for (int attempt_ = 0;; attempt_++) {                          \
            (st) = (call);                                             \
            if ((st) != VS_ERR_NOT_READY || attempt_ == VS_TRANSIENT_RETRIES) \
                break;                                                 \
            (dev)->stats.transient_retries++;                          \
            backoff(attempt_);                                         \
        }                                                              \
    } while (0)

static vs_status failed(vs_device_t *dev, const char *what, vs_status st)
{
    if (st == VS_ERR_OUT_OF_MEMORY)
        return st;
    dev->stats.backend_failures++;
    vs_log(VS_LOG_ERROR, "%s failed: %s", what, vs_status_name(st));
    return st == VS_ERR_NOT_READY ? VS_ERR_BACKEND : st;
}

vs_status vs_map_new(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *reuse, vs_bphys **out)
{
    const vs_backend_ops *ops = dev->ops;
    vs_bphys *chunk = reuse;
    vs_status st;
    if (!chunk) {
        VS_RETRY(dev, st, ops->phys_create(dev->bdev, size, &chunk));
        if (st != VS_OK)
            return failed(dev, "creating physical memory", st);
        dev->stats.chunks_created++;
    } else {
        dev->stats.chunks_reused++;
    }
    VS_RETRY(dev, st, ops->map(dev->bdev, va, size, chunk));
    if (st != VS_OK) {
        st = failed(dev, "mapping", st);
        goto release;
    }
    VS_RETRY(dev, st, ops->set_access(dev->bdev, va, size));
    if (st != VS_OK) {
        st = failed(dev, "setting access", st);
        if (ops->unmap(dev->bdev, va, size) != VS_OK)
            vs_log(VS_LOG_ERROR, "unmapping after a failed set-access failed too");
        goto release;
    }
    *out = chunk;
    return VS_OK;
release:
    if (ops->phys_release(dev->bdev, chunk) == VS_OK)
        dev->stats.chunks_released++;
    else
        vs_log(VS_LOG_ERROR, "releasing physical memory after a failed map failed too");
    return st;
}

vs_status vs_unmap_release(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk, bool release)
{
    vs_status st;
    VS_RETRY(dev, st, dev->ops->unmap(dev->bdev, va, size));
    if (st != VS_OK)
        return failed(dev, "unmapping", st);
    if (release) {
        st = dev->ops->phys_release(dev->bdev, chunk);
        if (st != VS_OK)
            return failed(dev, "releasing physical memory", st);
        dev->stats.chunks_released++;
    }
    return VS_OK;
}

/* ---------------------------------------------------------------- priority list */

static void list_unlink(vs_device_t *dev, struct vs_vbar *v)
{
    if (v->more)
        v->more->less = v->less;
    else
        dev->most = v->less;
    if (v->less)
        v->less->more = v->more;
    else
        dev->least = v->more;
    v->more = v->less = NULL;
}

static void list_push_most(vs_device_t *dev, struct vs_vbar *v)
{
    v->more = NULL;
    v->less = dev->most;
    if (dev->most)
        dev->most->more = v;
    else
        dev->least = v;
    dev->most = v;
}

static void list_push_least(vs_device_t *dev, struct vs_vbar *v)
{
    v->less = NULL;
    v->more = dev->least;
    if (dev->least)
        dev->least->less = v;
    else
        dev->most = v;
    dev->least = v;
}

/* ---------------------------------------------------------------- create / destroy */

VS_API vs_status vs_vbar_create(vs_device_t *dev, uint64_t size, vs_vbar_t **out)
{
    if (!out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    uint64_t page = dev->page_size;
    if (size > UINT64_MAX - page || size / page > (SIZE_MAX / sizeof(vs_page))) {
        vs_dev_release(dev);
        return VS_ERR_INVALID_ARGUMENT;
    }
    size = vs_round_up(size, page);
    /* Reserve first: the driver refuses absurd sizes before we try to allocate
     * their page table. */
    vs_devptr_t base = 0;
    st = dev->ops->va_reserve(dev->bdev, size, page, &base);
    if (st != VS_OK) {
        st = failed(dev, "reserving address space", st);
        vs_dev_release(dev);
        return st;
    }
    struct vs_vbar *v = vs_pool_alloc(VS_KIND_VBAR);
    vs_page *pages = calloc((size_t)(size / page), sizeof(vs_page));
    if (!v || !pages) {
        free(pages);
        if (v)
            vs_pool_free(v);
        if (dev->ops->va_free(dev->bdev, base, size) != VS_OK)
            vs_log(VS_LOG_ERROR, "freeing a reservation after running out of memory failed");
        vs_dev_release(dev);
        return VS_ERR_OUT_OF_MEMORY;
    }
    v->dev = dev;
    v->base = base;
    v->size = size;
    v->npages = (size_t)(size / page);
    v->watermark = size;
    v->pages = pages;
    list_push_most(dev, v);
    dev->nvbars++;
    vs_log(VS_LOG_DEBUG, "VBAR of %llu MiB at 0x%llx", (unsigned long long)(size >> 20),
           (unsigned long long)base);
    *out = v;
    vs_dev_release(dev);
    return VS_OK;
}

vs_status vs_vbar_destroy_locked(vs_device_t *dev, struct vs_vbar *v)
{
    if (v->pinned)
        return VS_ERR_BUSY;
    vs_status first = VS_OK;
    for (size_t i = 0; i < v->npages; i++) {
        if (!v->pages[i].chunk)
            continue;
        vs_status st = vs_evict_page(dev, v, i, NULL);
        if (st != VS_OK) {
            /* Keep going: the rest can still be returned. The page's memory is
             * lost to us but the accounting must not keep claiming it. */
            if (first == VS_OK)
                first = st;
            vs_page *pg = &v->pages[i];
            vs_evref_put(dev, pg->last_use);
            pg->last_use = NULL;
            pg->chunk = NULL;
            v->resident--;
            vs_budget_add(dev, VS_USE_WEIGHTS, -(int64_t)dev->page_size);
        }
    }
    vs_status st = dev->ops->va_free(dev->bdev, v->base, v->size);
    if (st != VS_OK && first == VS_OK)
        first = failed(dev, "freeing address space", st);
    list_unlink(dev, v);
    dev->nvbars--;
    free(v->pages);
    v->pages = NULL;
    vs_pool_free(v);
    return first;
}

VS_API vs_status vs_vbar_destroy(vs_vbar_t *v)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (v->pinned)
        vs_log(VS_LOG_ERROR, "VBAR destroy: %zu page(s) still pinned", v->pinned);
    st = vs_vbar_destroy_locked(dev, v);
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_vbar_get_base(vs_vbar_t *v, vs_devptr_t *base, uint64_t *size)
{
    if (!base && !size)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (base)
        *base = v->base;
    if (size)
        *size = v->size;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_alloc(vs_vbar_t *v, uint64_t size, uint64_t align, uint64_t *offset)
{
    if (!offset || size == 0 || (align & (align - 1)) != 0)
        return VS_ERR_INVALID_ARGUMENT;
    if (align == 0)
        align = 256;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    /* Round the top up to the alignment without overflowing. */
    uint64_t off = v->alloc_top % align ? v->alloc_top + (align - v->alloc_top % align) : v->alloc_top;
    if (off < v->alloc_top || off > v->size || size > v->size - off) {
        st = VS_ERR_OUT_OF_MEMORY;
    } else {
        v->alloc_top = off + size;
        *offset = off;
    }
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_vbar_allocated(vs_vbar_t *v, uint64_t *bytes)
{
    if (!bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    *bytes = v->alloc_top;
    vs_dev_release(dev);
    return VS_OK;
}

/* ---------------------------------------------------------------- fault / unpin */

static void pin(struct vs_vbar *v, size_t i)
{
    if (v->pages[i].pins++ == 0)
        v->pinned++;
}

static void unpin_page(struct vs_vbar *v, size_t i)
{
    if (--v->pages[i].pins == 0)
        v->pinned--;
}

/* Map page i (not resident) with a fresh chunk from the budget or a victim's. */
static vs_status map_page(vs_device_t *dev, struct vs_vbar *v, size_t i)
{
    uint64_t page = dev->page_size;
    vs_bphys *reuse = NULL;
    vs_status st;
    if (vs_budget_available(dev) < page) {
        st = vs_evict_one(dev, v, i, &reuse);
        if (st != VS_OK)
            return st == VS_ERR_OUT_OF_MEMORY ? VS_NOT_RESIDENT : st;
    }
    vs_bphys *chunk = NULL;
    st = vs_map_new(dev, v->base + i * page, page, reuse, &chunk);
    if (st == VS_ERR_OUT_OF_MEMORY && !reuse) {
        /* The driver is fuller than our figure said (someone else allocated
         * since the last poll): refresh it and take a victim's chunk instead. */
        vs_budget_invalidate(dev);
        st = vs_evict_one(dev, v, i, &reuse);
        if (st != VS_OK)
            return st == VS_ERR_OUT_OF_MEMORY ? VS_NOT_RESIDENT : st;
        st = vs_map_new(dev, v->base + i * page, page, reuse, &chunk);
    }
    if (st != VS_OK) /* vs_map_new released the chunk (fresh or reused): nothing leaks */
        return st == VS_ERR_OUT_OF_MEMORY ? VS_NOT_RESIDENT : st;
    vs_page *pg = &v->pages[i];
    pg->chunk = chunk;
    pg->gen = dev->next_gen++;
    v->resident++;
    vs_budget_add(dev, VS_USE_WEIGHTS, (int64_t)page);
    dev->stats.pages_mapped++;
    dev->stats.bytes_mapped += page;
    return VS_OK;
}

VS_API vs_status vs_vbar_fault(vs_vbar_t *v, uint64_t offset, uint64_t size, uint64_t *signature)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (!vs_range_ok(offset, size, v->size)) {
        vs_dev_release(dev);
        return size == 0 ? VS_ERR_INVALID_ARGUMENT : VS_ERR_OUT_OF_RANGE;
    }
    uint64_t page = dev->page_size;
    size_t first = (size_t)(offset / page), last = (size_t)((offset + size - 1) / page);
    dev->stats.faults++;

    /* Hit path: everything resident. */
    uint64_t sig = 0;
    size_t missing = 0;
    for (size_t i = first; i <= last; i++) {
        const vs_page *pg = &v->pages[i];
        if (!pg->chunk) {
            missing++;
            if ((uint64_t)i * page >= v->watermark && !vs_regrow(dev, v, i)) {
                dev->stats.fault_not_resident++;
                dev->stats.fault_fast_fails++;
                vs_dev_release(dev);
                if (signature)
                    *signature = 0;
                return VS_NOT_RESIDENT;
            }
        } else if (pg->gen > sig) {
            sig = pg->gen;
        }
    }
    for (size_t i = first; i <= last; i++)
        if (v->pages[i].chunk)
            pin(v, i);
    if (missing == 0) {
        dev->stats.fault_hits++;
        vs_dev_release(dev);
        if (signature)
            *signature = sig;
        return VS_OK;
    }

    /* Miss: is there room for every missing page (free budget plus victims less
     * important than the highest missing page)? Decide before evicting anything. */
    size_t highest_missing = last;
    while (v->pages[highest_missing].chunk)
        highest_missing--;
    uint64_t avail_pages = vs_budget_available(dev) / page;
    /* Usage may already exceed the budget (others grew, the limit shrank): that
     * deficit is paid first, by victims less important than this range too. */
    uint64_t deficit_pages = (vs_budget_shortfall(dev, 0) + page - 1) / page;
    size_t need_victims = (size_t)deficit_pages + (missing > avail_pages ? missing - (size_t)avail_pages : 0);
    if (need_victims && vs_count_victims(dev, v, highest_missing, need_victims) < need_victims) {
        st = VS_NOT_RESIDENT;
    } else {
        st = VS_OK;
        for (uint64_t d = 0; d < deficit_pages && st == VS_OK; d++)
            st = vs_evict_one(dev, v, highest_missing, NULL);
        for (size_t i = first; i <= last && st == VS_OK; i++) {
            if (v->pages[i].chunk)
                continue;
            st = map_page(dev, v, i);
            if (st == VS_OK)
                pin(v, i);
        }
    }
    if (st != VS_OK) {
        /* Undo every pin this call took; pages it mapped stay mapped, unpinned.
         * Each resident page of the range holds exactly one pin from this call:
         * those resident before were pinned above, those mapped here were pinned
         * once mapped, and none can have been evicted meanwhile (pinned). */
        for (size_t i = first; i <= last; i++)
            if (v->pages[i].chunk)
                unpin_page(v, i);
        dev->stats.fault_not_resident += st == VS_NOT_RESIDENT;
        vs_dev_release(dev);
        if (signature)
            *signature = 0;
        return st;
    }
    dev->stats.fault_maps++;
    sig = 0;
    for (size_t i = first; i <= last; i++)
        if (v->pages[i].gen > sig)
            sig = v->pages[i].gen;
    vs_dev_release(dev);
    if (signature)
        *signature = sig;
    return VS_OK;
}

static vs_evref *evref_get(vs_device_t *dev, uintptr_t stream)
{
    vs_evref *ev = dev->free_evrefs;
    if (ev) {
        dev->free_evrefs = ev->next_free;
    } else {
        ev = calloc(1, sizeof *ev);
        if (!ev)
            return NULL;
        if (dev->ops->event_create(dev->bdev, &ev->event) != VS_OK) {
            free(ev);
            return NULL;
        }
        dev->nevrefs++;
    }
    if (dev->ops->event_record(dev->bdev, ev->event, stream) != VS_OK) {
        ev->next_free = dev->free_evrefs;
        dev->free_evrefs = ev;
        return NULL;
    }
    ev->refs = 0;
    ev->done = false;
    ev->next_free = NULL;
    return ev;
}

VS_API vs_status vs_vbar_unpin(vs_vbar_t *v, uint64_t offset, uint64_t size, uintptr_t stream)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (!vs_range_ok(offset, size, v->size)) {
        vs_dev_release(dev);
        return size == 0 ? VS_ERR_INVALID_ARGUMENT : VS_ERR_OUT_OF_RANGE;
    }
    uint64_t page = dev->page_size;
    size_t first = (size_t)(offset / page), last = (size_t)((offset + size - 1) / page);
    for (size_t i = first; i <= last; i++) {
        if (v->pages[i].pins == 0) {
            vs_dev_release(dev);
            return VS_ERR_NOT_PINNED;
        }
    }
    vs_evref *ev = NULL;
    if (stream != VS_STREAM_NONE) {
        ev = evref_get(dev, stream);
        if (!ev) {
            /* Without an event we cannot know when the device is done: wait now,
             * so the pages are safe to evict as soon as they are unpinned. */
            dev->stats.backend_failures++;
            vs_log(VS_LOG_WARN, "recording a page event failed; synchronizing the stream instead");
            st = dev->ops->stream_synchronize(dev->bdev, stream);
            if (st != VS_OK) {
                vs_dev_release(dev);
                return failed(dev, "synchronizing a stream", st);
            }
        }
    }
    for (size_t i = first; i <= last; i++) {
        vs_page *pg = &v->pages[i];
        unpin_page(v, i);
        if (ev) {
            vs_evref_put(dev, pg->last_use);
            pg->last_use = ev;
            ev->refs++;
        }
    }
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_page_signatures(vs_vbar_t *v, uint64_t offset, uint64_t size, uint64_t *sigs,
                                         size_t n, size_t *count)
{
    if (!count || (n && !sigs))
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (!vs_range_ok(offset, size, v->size)) {
        vs_dev_release(dev);
        return size == 0 ? VS_ERR_INVALID_ARGUMENT : VS_ERR_OUT_OF_RANGE;
    }
    size_t first = (size_t)(offset / dev->page_size), last = (size_t)((offset + size - 1) / dev->page_size);
    *count = last - first + 1;
    for (size_t i = first; i <= last && i - first < n; i++)
        sigs[i - first] = v->pages[i].gen;
    vs_dev_release(dev);
    return VS_OK;
}

/* ---------------------------------------------------------------- priorities, watermark, floor */

VS_API vs_status vs_vbar_prioritize(vs_vbar_t *v)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    list_unlink(dev, v);
    list_push_most(dev, v);
    v->watermark = v->size;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_deprioritize(vs_vbar_t *v)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    list_unlink(dev, v);
    list_push_least(dev, v);
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_set_watermark(vs_vbar_t *v, uint64_t bytes)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (bytes > v->size)
        st = VS_ERR_OUT_OF_RANGE;
    else
        v->watermark = bytes / dev->page_size * dev->page_size;
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_vbar_get_watermark(vs_vbar_t *v, uint64_t *bytes)
{
    if (!bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    *bytes = v->watermark;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_set_floor(vs_vbar_t *v, uint64_t bytes)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    if (bytes > v->size)
        st = VS_ERR_OUT_OF_RANGE;
    else
        v->floor = vs_round_up(bytes, dev->page_size);
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_vbar_get_floor(vs_vbar_t *v, uint64_t *bytes)
{
    if (!bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    *bytes = v->floor;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_free_memory(vs_vbar_t *v, uint64_t bytes, uint64_t *freed)
{
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    uint64_t f = 0;
    st = vs_evict_bytes(dev, v, bytes, &f);
    vs_dev_release(dev);
    if (freed)
        *freed = f;
    return st;
}

VS_API vs_status vs_vbar_loaded_size(vs_vbar_t *v, uint64_t *bytes)
{
    if (!bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    *bytes = (uint64_t)v->resident * dev->page_size;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_vbar_residency(vs_vbar_t *v, uint8_t *map, size_t n, size_t *count)
{
    if (!count || (n && !map))
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_vbar_acquire(v, &dev);
    if (st != VS_OK)
        return st;
    *count = v->npages;
    for (size_t i = 0; i < v->npages && i < n; i++) {
        const vs_page *pg = &v->pages[i];
        map[i] = (uint8_t)((pg->chunk ? VS_PAGE_RESIDENT : 0) | (pg->pins ? VS_PAGE_PINNED : 0) |
                           ((uint64_t)i * dev->page_size < v->floor ? VS_PAGE_PROTECTED : 0));
    }
    vs_dev_release(dev);
    return VS_OK;
}
