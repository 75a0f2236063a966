/* Eviction: which page goes, waiting for its last use, unmapping it.
 *
 * Note [Eviction order]
 * ~~~~~~~~~~~~~~~~~~~~~
 * VBARs form a priority list (device->most ... device->least). A new or
 * prioritized VBAR goes to the front, a deprioritized one to the back. Within a
 * VBAR, lower offsets are more important: applications allocate weights in
 * load-priority order. So the importance of a page is the pair
 * (position of its VBAR in the list, its offset), and eviction scans from the
 * least important end: the last VBAR's highest page downwards, then the VBAR
 * before it. A page is a candidate only when it is resident, unpinned and at or
 * above its VBAR's floor.
 * A fault may evict only pages *less important than the page it maps*: a VBAR
 * never pushes out a more important VBAR's pages nor its own lower pages. Under
 * steady pressure this converges on a resident prefix of each VBAR, with
 * everything above the watermark streamed -- the shape that keeps an
 * application from thrashing when it faults every layer every iteration.
 * External pressure (vs_device_reclaim, the allocation hooks) may evict any
 * candidate, least important first.
 * When a VBAR loses a page its watermark drops to that page's offset (if
 * lower): faults needing non-resident pages above it fail fast until the VBAR is
 * prioritized again (vbar.c) or regrows once the pressure is gone (Note
 * [Watermark regrowth] in regrow.c).
 *
 * Note [Page lifetime and events]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * A page may still be read by kernels queued on some stream after the
 * application unpinned it. comfy-aimdo synchronized the whole device around
 * every eviction batch, which stalls every stream. Instead, vs_vbar_unpin
 * records an event on the caller's stream and the pages of the range keep a
 * reference to it (one vs_evref shared by the pages unpinned together,
 * refcounted, recycled through device->free_evrefs). Evicting a page queries its
 * event (cheap when the work is long done, the common case) and synchronizes
 * on that one event only if it is still pending; then it unmaps. No other
 * stream is waited for. A page unpinned with VS_STREAM_NONE has no event.
 * Waiting happens under the device lock: other threads' faults wait for it too,
 * but only for the few pages taken, and only when their last use is pending.
 */
#include <stdlib.h>

#include "internal.h"

static bool evictable(const struct vs_vbar *v, size_t i)
{
    const vs_page *pg = &v->pages[i];
    return pg->chunk && pg->pins == 0 && (uint64_t)i * v->dev->page_size >= v->floor;
}

uint64_t vs_evictable_bytes(vs_device_t *dev)
{
    uint64_t n = 0;
    for (struct vs_vbar *v = dev->least; v; v = v->more)
        for (size_t i = 0; i < v->npages; i++)
            n += evictable(v, i);
    return n * dev->page_size;
}

/* Walk candidates least important first, stopping before (vbar, idx). Calls fn on
 * each; stops when fn returns false. */
typedef bool (*victim_fn)(struct vs_vbar *v, size_t i, void *arg);

static void walk_victims(vs_device_t *dev, struct vs_vbar *bound, size_t bound_idx, victim_fn fn, void *arg)
{
    for (struct vs_vbar *v = dev->least; v; v = v->more) {
        size_t lowest = 0;
        if (v == bound)
            lowest = bound_idx + 1; /* only pages above the one being mapped */
        size_t first_floor = (size_t)((v->floor + dev->page_size - 1) / dev->page_size);
        if (lowest < first_floor)
            lowest = first_floor;
        for (size_t i = v->npages; i-- > lowest;) {
            if (evictable(v, i) && !fn(v, i, arg))
                return;
        }
        if (v == bound)
            return;
    }
}

struct count_arg {
    size_t n, want;
};

static bool count_cb(struct vs_vbar *v, size_t i, void *arg)
{
    (void)v;
    (void)i;
    struct count_arg *a = arg;
    return ++a->n < a->want;
}

size_t vs_count_victims(vs_device_t *dev, struct vs_vbar *vbar, size_t idx, size_t want)
{
    struct count_arg a = {0, want};
    if (want)
        walk_victims(dev, vbar, idx, count_cb, &a);
    return a.n;
}

void vs_evref_put(vs_device_t *dev, vs_evref *ev)
{
    if (ev && --ev->refs == 0) {
        ev->next_free = dev->free_evrefs;
        dev->free_evrefs = ev;
    }
}

vs_status vs_page_wait(vs_device_t *dev, vs_page *pg)
{
    vs_evref *ev = pg->last_use;
    if (!ev || ev->done)
        return VS_OK;
    vs_status st = dev->ops->event_query(dev->bdev, ev->event);
    if (st == VS_ERR_NOT_READY) {
        dev->stats.event_waits++;
        st = dev->ops->event_synchronize(dev->bdev, ev->event);
    }
    if (st != VS_OK) {
        dev->stats.backend_failures++;
        vs_log(VS_LOG_ERROR, "waiting for a page's last use failed: %s", vs_status_name(st));
        return st;
    }
    ev->done = true;
    return VS_OK;
}

vs_status vs_evict_page(vs_device_t *dev, struct vs_vbar *v, size_t i, vs_bphys **keep)
{
    vs_page *pg = &v->pages[i];
    vs_status st = vs_page_wait(dev, pg);
    if (st != VS_OK)
        return st;
    uint64_t page = dev->page_size;
    st = vs_unmap_release(dev, v->base + i * page, page, pg->chunk, keep == NULL);
    if (st != VS_OK)
        return st;
    if (keep)
        *keep = pg->chunk;
    pg->chunk = NULL;
    pg->gen = 0;
    vs_evref_put(dev, pg->last_use);
    pg->last_use = NULL;
    v->resident--;
    vs_budget_add(dev, VS_USE_WEIGHTS, -(int64_t)page);
    dev->stats.pages_evicted++;
    dev->stats.bytes_evicted += page;
    if ((uint64_t)i * page < v->watermark)
        v->watermark = (uint64_t)i * page;
    vs_regrow_note_eviction(dev, v); /* Note [Watermark regrowth] in regrow.c */
    return VS_OK;
}

struct pick_arg {
    struct vs_vbar *v;
    size_t i;
};

static bool pick_cb(struct vs_vbar *v, size_t i, void *arg)
{
    struct pick_arg *a = arg;
    a->v = v;
    a->i = i;
    return false;
}

vs_status vs_evict_one(vs_device_t *dev, struct vs_vbar *bound, size_t idx, vs_bphys **keep)
{
    struct pick_arg a = {NULL, 0};
    walk_victims(dev, bound, bound ? idx : 0, pick_cb, &a);
    if (!a.v)
        return VS_ERR_OUT_OF_MEMORY;
    return vs_evict_page(dev, a.v, a.i, keep);
}

vs_status vs_evict_bytes(vs_device_t *dev, struct vs_vbar *only, uint64_t bytes, uint64_t *freed)
{
    uint64_t done = 0;
    vs_status st = VS_OK;
    while (done < bytes) {
        struct pick_arg a = {NULL, 0};
        if (only) {
            size_t lowest = (size_t)((only->floor + dev->page_size - 1) / dev->page_size);
            for (size_t i = only->npages; i-- > lowest;) {
                if (evictable(only, i)) {
                    a.v = only;
                    a.i = i;
                    break;
                }
            }
        } else {
            walk_victims(dev, NULL, 0, pick_cb, &a);
        }
        if (!a.v)
            break;
        st = vs_evict_page(dev, a.v, a.i, NULL);
        if (st != VS_OK)
            break;
        done += dev->page_size;
    }
    if (freed)
        *freed = done;
    return st;
}

vs_status vs_reclaim_locked(vs_device_t *dev, uint64_t bytes, uint64_t *freed)
{
    dev->stats.reclaims++;
    if (freed)
        *freed = 0;
    uint64_t need = vs_budget_shortfall(dev, bytes);
    if (need == 0)
        return VS_OK;
    if (vs_evictable_bytes(dev) < need) {
        /* All or nothing: evicting what we can without making room would only
         * destroy useful residency (Note [Budget]). */
        dev->stats.reclaim_failures++;
        return VS_ERR_OUT_OF_MEMORY;
    }
    vs_status st = vs_evict_bytes(dev, NULL, need, freed);
    if (st != VS_OK)
        dev->stats.reclaim_failures++;
    return st;
}
