/* The sink the allocation hooks report to (vs_intercept_sink in backend.h).
 *
 * Hooks run on whatever thread allocates, often a PyTorch thread in the middle
 * of its caching allocator. They find the device by (backend, ordinal) through
 * the registry, then work under the device lock (registry -> device, Note [Lock
 * order]). Allocations are remembered in a per-device open-addressing table
 * (pointer -> size) so that frees can be uncounted; unknown pointers (made
 * before the device was opened, or by another device) are ignored.
 */
#include <stdlib.h>

#include "internal.h"

vs_device_t *vs_registry_lock_device(const vs_backend_ops *ops, int ordinal);

/* The sink is per backend; `user` is the backend's ops table, set below. */
static const vs_backend_ops *sink_backend(void *user)
{
    return (const vs_backend_ops *)user;
}

#define PTR_EMPTY 0
#define PTR_TOMB 1

static size_t slot_of(uintptr_t key, size_t cap)
{
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static bool ptrmap_grow(vs_ptrmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uintptr_t *keys = calloc(cap, sizeof *keys);
    uint64_t *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] > PTR_TOMB) {
            size_t j = slot_of(m->keys[i], cap);
            while (keys[j])
                j = (j + 1) & (cap - 1);
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->live;
    return true;
}

static bool ptrmap_put(vs_ptrmap *m, uintptr_t key, uint64_t val)
{
    if (key <= PTR_TOMB)
        return false;
    if ((m->used + 1) * 4 >= m->cap * 3 && !ptrmap_grow(m))
        return false;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j] > PTR_TOMB && m->keys[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == key) {
        m->vals[j] = val;
        return true;
    }
    if (m->keys[j] == PTR_EMPTY)
        m->used++;
    m->keys[j] = key;
    m->vals[j] = val;
    m->live++;
    return true;
}

static bool ptrmap_take(vs_ptrmap *m, uintptr_t key, uint64_t *val)
{
    if (!m->cap || key <= PTR_TOMB)
        return false;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j] != PTR_EMPTY) {
        if (m->keys[j] == key) {
            *val = m->vals[j];
            m->keys[j] = PTR_TOMB;
            m->live--;
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

void vs_ptrmap_free(vs_ptrmap *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->used = m->live = 0;
}

/* Sum of live entries, for the invariant checker. */
uint64_t vs_ptrmap_sum(const vs_ptrmap *m);
uint64_t vs_ptrmap_sum(const vs_ptrmap *m)
{
    uint64_t s = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] > PTR_TOMB)
            s += m->vals[i];
    return s;
}

static vs_device_t *find(void *user, int ordinal)
{
    vs_device_t *dev = vs_registry_lock_device(sink_backend(user), ordinal);
    if (dev && !dev->intercepting) {
        vs_dev_unlock(dev);
        return NULL;
    }
    return dev;
}

static vs_status before_alloc(void *user, int ordinal, uint64_t size)
{
    vs_device_t *dev = find(user, ordinal);
    if (!dev)
        return VS_OK;
    vs_status st = vs_reclaim_locked(dev, size, NULL);
    if (st == VS_ERR_OUT_OF_MEMORY && !dev->cfg.limit) {
        /* No limit: the driver decides. We still made what room we could. */
        (void)vs_evict_bytes(dev, NULL, size, NULL);
        st = VS_OK;
    }
    if (st == VS_ERR_OUT_OF_MEMORY) {
        dev->stats.intercepted_oom++;
        vs_log(VS_LOG_DEBUG, "refusing an allocation of %llu bytes under the limit", (unsigned long long)size);
    }
    vs_dev_release(dev);
    return st == VS_ERR_OUT_OF_MEMORY ? st : VS_OK;
}

static vs_status on_oom(void *user, int ordinal, uint64_t size)
{
    vs_device_t *dev = find(user, ordinal);
    if (!dev)
        return VS_ERR_OUT_OF_MEMORY;
    uint64_t freed = 0;
    vs_budget_invalidate(dev);
    (void)vs_evict_bytes(dev, NULL, size, &freed);
    if (!freed)
        dev->stats.intercepted_oom++;
    vs_dev_release(dev);
    return freed ? VS_OK : VS_ERR_OUT_OF_MEMORY;
}

static void after_alloc(void *user, int ordinal, uintptr_t ptr, uint64_t size)
{
    vs_device_t *dev = find(user, ordinal);
    if (!dev)
        return;
    if (ptrmap_put(&dev->allocs, ptr, size)) {
        vs_budget_add(dev, VS_USE_INTERCEPTED, (int64_t)size);
        dev->stats.intercepted_allocs++;
    } else {
        vs_log(VS_LOG_WARN, "could not record an intercepted allocation; it is not counted");
    }
    vs_dev_release(dev);
}

static void on_free(void *user, int ordinal, uintptr_t ptr)
{
    vs_device_t *dev = find(user, ordinal);
    if (!dev)
        return;
    uint64_t size;
    if (ptrmap_take(&dev->allocs, ptr, &size)) {
        vs_budget_add(dev, VS_USE_INTERCEPTED, -(int64_t)size);
        dev->stats.intercepted_frees++;
    }
    vs_dev_release(dev);
}

const vs_intercept_sink vs_core_sink = {before_alloc, on_oom, after_alloc, on_free, NULL};
