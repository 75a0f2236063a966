/* The device context: open/close, the device lock, and the device-level API.
 *
 * Note [Lock order]
 * ~~~~~~~~~~~~~~~~~
 * 1. registry lock (registry.c): backend init, the table of open devices,
 *    interception install/remove.
 * 2. device lock (vs_device.lock), one per device: every field of the device and
 *    of its VBARs, pages, scratch and host buffers. Never two device locks at once.
 * 3. backend-internal locks (the simulator's device lock, the hook engine's
 *    lock): taken inside backend calls, never held when calling into the core.
 * 4. leaf locks: the handle pool, the log sink.
 * A thread may take a lock only if it holds none of a higher number. Log
 * callbacks run with no lock held (Note [Logging under locks]).
 * The interception sink runs on whatever thread allocates; it takes 1 then 2
 * (vs_registry_lock_device) and is never entered while the calling thread holds
 * a device lock, because the core's own driver calls bypass the hooks.
 * Stream and event calls go to the backend without the device lock, counted in
 * dev->users so that close waits for them (Note [Closing]); copies are queued
 * under the device lock (a copy may use a host buffer, buffers.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- locking */

void vs_dev_lock(vs_device_t *dev)
{
    pthread_mutex_lock(&dev->lock);
    vs_log_enter_locked();
}

void vs_dev_unlock(vs_device_t *dev)
{
    pthread_mutex_unlock(&dev->lock);
    vs_log_leave_locked();
}

void vs_dev_release(vs_device_t *dev)
{
#ifdef VS_DEBUG_INVARIANTS
    if (vs_check_locked(dev) != VS_OK)
        vs_log(VS_LOG_ERROR, "invariant check failed (see above)");
#endif
    vs_dev_unlock(dev);
}

vs_status vs_dev_acquire(vs_device_t *dev)
{
    if (!vs_pool_live(dev, VS_KIND_DEVICE))
        return VS_ERR_INVALID_HANDLE;
    uint64_t gen = atomic_load(&dev->obj.generation);
    vs_dev_lock(dev);
    if (!vs_pool_live(dev, VS_KIND_DEVICE) || atomic_load(&dev->obj.generation) != gen || dev->closing) {
        vs_dev_unlock(dev);
        return VS_ERR_INVALID_HANDLE;
    }
    return VS_OK;
}

/* Note [Closing]
 * ~~~~~~~~~~~~~~
 * vs_device_close must not free the backend device while another thread uses
 * it. Calls that hold the device lock are safe: close takes the lock, sets
 * dev->closing, and from then on every acquire refuses the device (so nothing
 * can pin a page or create an object in the window where close drops the lock
 * to remove interception). Calls that run without the lock (stream and event
 * synchronization, which may wait a long time) enter with vs_dev_enter, which
 * counts them in dev->users under the lock; close waits on dev->idle until the
 * count is zero before it destroys anything. */
vs_status vs_dev_enter(vs_device_t *dev)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    dev->users++;
    vs_dev_unlock(dev);
    return VS_OK;
}

void vs_dev_leave(vs_device_t *dev)
{
    vs_dev_lock(dev);
    if (--dev->users == 0 && dev->closing)
        pthread_cond_broadcast(&dev->idle);
    vs_dev_unlock(dev);
}

/* Common body of the per-object acquire functions: validate the object (before
 * touching it: a wild pointer is never dereferenced), find its device, lock it,
 * re-validate (the object may have died meanwhile). */
#define ACQUIRE_OBJ(o_, kind, out)                                                              \
    do {                                                                                         \
        if (!vs_pool_live((o_), (kind)))                                                        \
            return VS_ERR_INVALID_HANDLE;                                                        \
        uint64_t gen_ = atomic_load(&(o_)->obj.generation);                                     \
        vs_device_t *dev_ = (o_)->dev;                                                          \
        if (!vs_pool_live(dev_, VS_KIND_DEVICE))                                                 \
            return VS_ERR_INVALID_HANDLE;                                                        \
        vs_dev_lock(dev_);                                                                       \
        if (!vs_pool_live((o_), (kind)) || atomic_load(&(o_)->obj.generation) != gen_ ||       \
            (o_)->dev != dev_ || dev_->closing) {                                               \
            vs_dev_unlock(dev_);                                                                 \
            return VS_ERR_INVALID_HANDLE;                                                        \
        }                                                                                        \
        *(out) = dev_;                                                                           \
        return VS_OK;                                                                            \
    } while (0)

vs_status vs_vbar_acquire(struct vs_vbar *v, vs_device_t **dev)
{
    ACQUIRE_OBJ(v, VS_KIND_VBAR, dev);
}

vs_status vs_scratch_acquire(struct vs_scratch *b, vs_device_t **dev)
{
    ACQUIRE_OBJ(b, VS_KIND_SCRATCH, dev);
}

vs_status vs_host_acquire(struct vs_host_buffer *b, vs_device_t **dev)
{
    ACQUIRE_OBJ(b, VS_KIND_HOST, dev);
}

/* ---------------------------------------------------------------- open / close */

static vs_status pick_backend(const char *name, size_t *index)
{
    size_t n = vs_registry_backend_count();
    if (name && strcmp(name, "auto") != 0) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(vs_registry_backend(i)->name, name) == 0) {
                *index = i;
                return VS_OK;
            }
        }
        vs_log(VS_LOG_ERROR, "no backend named '%s' in this build", name);
        return VS_ERR_NO_DEVICE;
    }
    /* auto: the first GPU backend with a device, else the first with a device. */
    for (int want_gpu = 1; want_gpu >= 0; want_gpu--) {
        for (size_t i = 0; i < n; i++) {
            const vs_backend_ops *ops = vs_registry_backend(i);
            if (ops->is_gpu != want_gpu || vs_registry_init_backend(i) != VS_OK)
                continue;
            if (ops->device_count() > 0) {
                *index = i;
                return VS_OK;
            }
        }
    }
    return VS_ERR_NO_DEVICE;
}

VS_API vs_status vs_device_open(const char *backend, int ordinal, const vs_device_config *cfg,
                                vs_device_t **out)
{
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    if (ordinal < 0)
        return VS_ERR_NO_DEVICE;
    vs_device_config c;
    if (cfg) {
        if (cfg->struct_size != sizeof(vs_device_config))
            return VS_ERR_INVALID_ARGUMENT;
        c = *cfg;
    } else {
        vs_status st = vs_device_config_init(&c);
        if (st != VS_OK)
            return st;
    }
    if (c.flags & ~(uint32_t)(VS_DEVICE_INTERCEPT | VS_DEVICE_NO_REGROW | VS_DEVICE_LIMIT_PROCESS))
        return VS_ERR_INVALID_ARGUMENT;

    size_t bi;
    vs_status st = pick_backend(backend, &bi);
    if (st != VS_OK)
        return st;
    st = vs_registry_init_backend(bi);
    if (st != VS_OK)
        return VS_ERR_NO_DEVICE;
    const vs_backend_ops *ops = vs_registry_backend(bi);
    if (ordinal >= ops->device_count())
        return VS_ERR_NO_DEVICE;

    vs_device_t *dev = vs_pool_alloc(VS_KIND_DEVICE);
    if (!dev)
        return VS_ERR_OUT_OF_MEMORY;
    pthread_mutex_init(&dev->lock, NULL);
    pthread_cond_init(&dev->idle, NULL);
    dev->ops = ops;
    dev->backend_index = bi;
    dev->ordinal = ordinal;
    dev->cfg = c;
    dev->next_gen = 1;

    st = vs_registry_add_device(dev);
    if (st != VS_OK) {
        if (st == VS_ERR_BUSY)
            vs_log(VS_LOG_ERROR, "device %s:%d is already open in this process", ops->name, ordinal);
        vs_pool_free(dev);
        return st;
    }
    st = ops->open(ordinal, &dev->bdev);
    if (st == VS_OK)
        st = ops->props(dev->bdev, &dev->bprops);
    if (st == VS_OK) {
        uint64_t gran = dev->bprops.granularity;
        uint64_t page = c.page_size ? c.page_size : dev->bprops.preferred_page_size;
        if (page < gran)
            page = gran;
        if (gran == 0 || page % gran != 0 || (c.page_size && c.page_size % gran != 0)) {
            /* Name the value the caller gave, not the one derived from it. */
            uint64_t given = c.page_size ? c.page_size : page;
            vs_log(VS_LOG_ERROR, "page size %llu is not a multiple of the device's granularity %llu (try %llu)",
                   (unsigned long long)given, (unsigned long long)gran,
                   (unsigned long long)(gran ? vs_round_up(given, gran) : 0));
            st = VS_ERR_INVALID_ARGUMENT;
        }
        dev->page_size = page;
        dev->driver_total = dev->bprops.total_memory;
    } else if (dev->bdev) {
        ops->close(dev->bdev);
        dev->bdev = NULL;
    }
    if (st != VS_OK) {
        if (dev->bdev)
            ops->close(dev->bdev);
        vs_registry_remove_device(dev);
        vs_pool_free(dev);
        return st;
    }
    if (c.flags & VS_DEVICE_INTERCEPT) {
        bool on = vs_registry_intercept_ref(bi) == VS_OK;
        vs_dev_lock(dev); /* the hooks read it under the lock */
        dev->intercepting = on;
        vs_dev_unlock(dev);
    }
    vs_log(VS_LOG_INFO, "opened %s:%d (%s), %llu MiB, page %llu KiB%s", ops->name, ordinal,
           dev->bprops.name, (unsigned long long)(dev->driver_total >> 20),
           (unsigned long long)(dev->page_size >> 10), dev->intercepting ? ", intercepting" : "");
    *out = dev;
    return VS_OK;
}

VS_API vs_status vs_device_close(vs_device_t *dev)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    for (struct vs_vbar *v = dev->most; v; v = v->less) {
        if (v->pinned) {
            vs_log(VS_LOG_ERROR, "device close: a VBAR still has %zu pinned page(s)", v->pinned);
            vs_dev_release(dev);
            return VS_ERR_BUSY;
        }
    }
    /* From here every new call is refused; wait for those running outside the
     * lock (Note [Closing]). */
    dev->closing = true;
    while (dev->users)
        pthread_cond_wait(&dev->idle, &dev->lock);
    /* Stop interception first so no hook looks this device up while it goes. */
    bool intercepting = dev->intercepting;
    dev->intercepting = false;
    vs_dev_unlock(dev);
    vs_registry_remove_device(dev);
    if (intercepting)
        vs_registry_intercept_unref(dev->backend_index);
    vs_dev_lock(dev);

    vs_status first = VS_OK;
    for (struct vs_vbar *v = dev->most; v; v = v->less) {
        if (v->pinned) { /* pinned by another thread while interception was removed */
            vs_log(VS_LOG_ERROR, "device close: a VBAR was pinned during close; dropping its pins");
            for (size_t i = 0; i < v->npages; i++)
                v->pages[i].pins = 0;
            v->pinned = 0;
            first = VS_ERR_BUSY;
        }
    }
    while (dev->most) {
        vs_log(VS_LOG_WARN, "device close: destroying a VBAR left open");
        st = vs_vbar_destroy_locked(dev, dev->most);
        if (st != VS_OK && first == VS_OK)
            first = st;
    }
    while (dev->scratches) {
        vs_log(VS_LOG_WARN, "device close: destroying a scratch buffer left open");
        st = vs_scratch_destroy_locked(dev, dev->scratches);
        if (st != VS_OK && first == VS_OK)
            first = st;
    }
    while (dev->hosts) {
        vs_log(VS_LOG_WARN, "device close: destroying a host buffer left open");
        st = vs_host_destroy_locked(dev, dev->hosts);
        if (st != VS_OK && first == VS_OK)
            first = st;
    }
    while (dev->free_evrefs) {
        vs_evref *e = dev->free_evrefs;
        dev->free_evrefs = e->next_free;
        dev->ops->event_destroy(dev->bdev, e->event);
        free(e);
        dev->nevrefs--;
    }
    if (dev->nevrefs)
        vs_log(VS_LOG_ERROR, "device close: %zu page event(s) still referenced", dev->nevrefs);
    if (dev->norphans) { /* the last chance to return stuck chunks (Note [Stuck chunks]) */
        vs_orphans_retry(dev);
        if (vs_orphans_drop(dev) && first == VS_OK)
            first = VS_ERR_BACKEND;
    }
    free(dev->orphans);
    dev->orphans = NULL;
    dev->norphans = dev->caporphans = 0;
    if (dev->stats.leaked_bytes) {
        vs_log(VS_LOG_ERROR, "device close: %s:%d leaked %llu bytes of driver memory", dev->ops->name, dev->ordinal,
               (unsigned long long)dev->stats.leaked_bytes);
        if (first == VS_OK)
            first = VS_ERR_BACKEND;
    }
    vs_ptrmap_free(&dev->allocs);
    dev->ops->close(dev->bdev);
    dev->bdev = NULL;
    atomic_store(&dev->obj.magic, VS_MAGIC_DEAD);
    vs_dev_unlock(dev);
    /* The mutex is not destroyed: a thread that validated the handle just before
     * close may still be waiting on it; it will re-check and see the device dead.
     * The slot is reinitialised when the quarantine lets it be reused. */
    vs_pool_free(dev);
    return first;
}

VS_API vs_status vs_device_get_props(vs_device_t *dev, vs_device_props *p)
{
    if (!p)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", dev->bprops.name);
    snprintf(p->backend, sizeof p->backend, "%s", dev->ops->name);
    p->ordinal = dev->ordinal;
    p->integrated = dev->bprops.integrated;
    p->total_memory = dev->bprops.total_memory;
    p->granularity = dev->bprops.granularity;
    p->page_size = dev->page_size;
    p->intercepting = dev->intercepting;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_memory_info(vs_device_t *dev, vs_memory_info *info)
{
    if (!info)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    uint64_t avail = vs_budget_available(dev); /* polls first when stale */
    vs_memory_info m;
    memset(&m, 0, sizeof m);
    m.total = vs_budget_total(dev);
    m.headroom = dev->cfg.headroom;
    m.budget = m.total > m.headroom ? m.total - m.headroom : 0;
    m.used_weights = dev->own_weights;
    m.used_scratch = dev->own_scratch;
    m.used_intercepted = dev->own_intercepted;
    m.used_others = dev->others;
    m.available = avail;
    m.evictable = vs_evictable_bytes(dev);
    *info = m;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_set_limit(vs_device_t *dev, uint64_t limit, uint64_t headroom)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    if (limit != 0 && limit <= headroom) {
        vs_dev_release(dev);
        return VS_ERR_INVALID_ARGUMENT;
    }
    dev->cfg.limit = limit;
    dev->cfg.headroom = headroom;
    /* Fit: evict until the budget holds (best effort: pinned pages stay). */
    vs_budget_invalidate(dev);
    uint64_t over = vs_budget_shortfall(dev, 0);
    if (over)
        (void)vs_evict_bytes(dev, NULL, over, NULL);
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_reclaim(vs_device_t *dev, uint64_t bytes, uint64_t *freed)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    uint64_t f = 0;
    st = vs_reclaim_locked(dev, bytes, &f);
    vs_dev_release(dev);
    if (freed)
        *freed = f;
    return st;
}

VS_API vs_status vs_device_free_memory(vs_device_t *dev, uint64_t bytes, uint64_t *freed)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    uint64_t f = 0;
    st = vs_evict_bytes(dev, NULL, bytes, &f);
    vs_dev_release(dev);
    if (freed)
        *freed = f;
    return st;
}

VS_API vs_status vs_device_reset_floors(vs_device_t *dev)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    for (struct vs_vbar *v = dev->most; v; v = v->less)
        v->floor = 0;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_get_stats(vs_device_t *dev, vs_stats *out)
{
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    *out = dev->stats;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_reset_stats(vs_device_t *dev)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    vs_stats s;
    memset(&s, 0, sizeof s);
    s.cur_weights = s.peak_weights = dev->stats.cur_weights;
    s.cur_scratch = s.peak_scratch = dev->stats.cur_scratch;
    s.cur_intercepted = s.peak_intercepted = dev->stats.cur_intercepted;
    s.cur_host_registered = s.peak_host_registered = dev->stats.cur_host_registered;
    dev->stats = s;
    vs_dev_release(dev);
    return VS_OK;
}

VS_API vs_status vs_device_check_invariants(vs_device_t *dev)
{
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    st = vs_check_locked(dev);
    vs_dev_unlock(dev);
    return st;
}
