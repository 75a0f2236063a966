/* Level Zero events: vramswap's record/query/wait model on top of Level
 * Zero's signal/reset events.
 *
 * Note [Level Zero events]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: the contract's events are CUDA's: record marks the current end of
 * a stream, re-recording moves the mark, a never-recorded event is complete.
 * A Level Zero event is a flag that a command list signals and the host
 * resets. Re-using one flag for a new record (zeEventHostReset, then append a
 * signal) is wrong when the previous signal is still pending: it can fire
 * after the reset and make the new record look complete early -- and the core
 * does recycle page events whose last record may still be in flight.
 *
 * Approach: a vramswap event (vs_ze_event) points at its current *slot*, one
 * Level Zero event from a host-visible event pool of this device.
 * - record takes a fresh slot (reset, unsignaled), appends its signal to the
 *   stream and makes it current; the previous slot is *retired*.
 * - query / synchronize look at the current slot (none: complete).
 * - stream_wait_event appends a wait on the current slot and notes which list
 *   waits on it.
 * A retired slot is reset and reused only when it is safe: it is signaled
 * (its signal executed), no host thread is waiting on it (holds) and every
 * list that appended a wait on it has since been synchronized (so the wait
 * executed; vs_ze_list_passed). Slots waited on by more lists than we track
 * are kept until the device closes. Retired slots are swept when a slot is
 * needed and none is free; pools of VS_ZE_EVENTS_PER_POOL events are added
 * when none can be recycled.
 *
 * Events are created with signal and wait scope HOST, so the host sees the
 * results of copies before an event it waits on reports completion.
 *
 * All slot state is under the device's `lock`; appends hold `submit` instead
 * (never both). Host waits run with neither, the slot pinned by `holds`.
 */
#include <stdlib.h>
#include <string.h>

#include "level_zero/ze_internal.h"

vs_status vs_ze_slots_init(vs_bdev *dev)
{
    dev->pools = NULL;
    dev->npools = dev->pools_cap = 0;
    dev->free_slots = dev->retired = NULL;
    dev->live_events = 0;
    return VS_OK;
}

void vs_ze_slots_fini(vs_bdev *dev)
{
    const vs_ze_api *api = &dev->ze->api;
    if (dev->live_events)
        vs_backend_log(VS_LOG_WARN, "level_zero: %llu event(s) still alive at close",
                       (unsigned long long)dev->live_events);
    for (uint32_t p = 0; p < dev->npools; p++) {
        vs_ze_pool *pool = dev->pools[p];
        for (uint32_t i = 0; i < pool->created; i++) {
            ze_result_t r = api->EventDestroy(pool->slots[i].event);
            if (r != ZE_RESULT_SUCCESS)
                (void)vs_ze_result(r, "zeEventDestroy");
        }
        ze_result_t r = api->EventPoolDestroy(pool->handle);
        if (r != ZE_RESULT_SUCCESS)
            (void)vs_ze_result(r, "zeEventPoolDestroy");
        free(pool);
    }
    free(dev->pools);
    dev->pools = NULL;
    dev->npools = dev->pools_cap = 0;
    dev->free_slots = dev->retired = NULL;
}

/* ---------------------------------------------------------------- slots (under lock) */

static vs_status add_pool(vs_bdev *dev)
{
    if (dev->npools == dev->pools_cap) {
        uint32_t cap = dev->pools_cap ? dev->pools_cap * 2 : 4;
        vs_ze_pool **n = realloc(dev->pools, cap * sizeof *n);
        if (!n)
            return VS_ERR_OUT_OF_MEMORY;
        dev->pools = n;
        dev->pools_cap = cap;
    }
    vs_ze_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return VS_ERR_OUT_OF_MEMORY;
    ze_event_pool_desc_t desc = {
        .stype = ZE_STRUCTURE_TYPE_EVENT_POOL_DESC,
        .flags = ZE_EVENT_POOL_FLAG_HOST_VISIBLE,
        .count = VS_ZE_EVENTS_PER_POOL,
    };
    ze_result_t r = dev->ze->api.EventPoolCreate(dev->ctx, &desc, 1, &dev->device, &pool->handle);
    if (r != ZE_RESULT_SUCCESS) {
        free(pool);
        return vs_ze_result(r, "zeEventPoolCreate");
    }
    dev->pools[dev->npools++] = pool;
    return VS_OK;
}

static vs_status new_slot(vs_bdev *dev, vs_ze_slot **out)
{
    vs_ze_pool *pool = dev->npools ? dev->pools[dev->npools - 1] : NULL;
    if (!pool || pool->created == VS_ZE_EVENTS_PER_POOL) {
        vs_status st = add_pool(dev);
        if (st != VS_OK)
            return st;
        pool = dev->pools[dev->npools - 1];
    }
    vs_ze_slot *s = &pool->slots[pool->created];
    ze_event_desc_t desc = {
        .stype = ZE_STRUCTURE_TYPE_EVENT_DESC,
        .index = pool->created,
        .signal = ZE_EVENT_SCOPE_FLAG_HOST,
        .wait = ZE_EVENT_SCOPE_FLAG_HOST,
    };
    ze_result_t r = dev->ze->api.EventCreate(pool->handle, &desc, &s->event);
    if (r != ZE_RESULT_SUCCESS) {
        s->event = NULL;
        return vs_ze_result(r, "zeEventCreate");
    }
    pool->created++;
    *out = s;
    return VS_OK;
}

static bool unreferenced(const vs_ze_slot *s)
{
    return s->holds == 0 && s->nwaiters == 0 && !s->overflow;
}

static void retire(vs_bdev *dev, vs_ze_slot *s)
{
    s->retired = true;
    s->next = dev->retired;
    dev->retired = s;
}

/* Move every safe retired slot to the free list (Note [Level Zero events]). */
static void sweep(vs_bdev *dev)
{
    const vs_ze_api *api = &dev->ze->api;
    vs_ze_slot **pp = &dev->retired;
    while (*pp) {
        vs_ze_slot *s = *pp;
        if (unreferenced(s) && api->EventQueryStatus(s->event) == ZE_RESULT_SUCCESS &&
            api->EventHostReset(s->event) == ZE_RESULT_SUCCESS) {
            *pp = s->next;
            s->retired = false;
            s->next = dev->free_slots;
            dev->free_slots = s;
        } else {
            pp = &s->next;
        }
    }
}

vs_status vs_ze_slot_get(vs_bdev *dev, vs_ze_slot **out)
{
    vs_status st = VS_OK;
    pthread_mutex_lock(&dev->lock);
    if (!dev->free_slots)
        sweep(dev);
    vs_ze_slot *s = dev->free_slots;
    if (s)
        dev->free_slots = s->next;
    else
        st = new_slot(dev, &s);
    pthread_mutex_unlock(&dev->lock);
    if (st == VS_OK) {
        s->next = NULL;
        *out = s;
    }
    return st;
}

void vs_ze_slot_put(vs_bdev *dev, vs_ze_slot *s)
{
    /* The slot is private to the caller: signaled or not, nothing else uses it. */
    ze_result_t r = dev->ze->api.EventHostReset(s->event);
    pthread_mutex_lock(&dev->lock);
    if (r == ZE_RESULT_SUCCESS) {
        s->next = dev->free_slots;
        dev->free_slots = s;
    } else {
        retire(dev, s);
    }
    pthread_mutex_unlock(&dev->lock);
}

ze_result_t vs_ze_append_signal(vs_bdev *dev, ze_command_list_handle_t list, vs_ze_slot *slot)
{
    const vs_ze_api *api = &dev->ze->api;
    pthread_mutex_lock(&dev->submit);
    /* Note [Level Zero streams]: without IN_ORDER a barrier orders the signal. */
    ze_result_t r = dev->in_order ? api->CommandListAppendSignalEvent(list, slot->event)
                                  : api->CommandListAppendBarrier(list, slot->event, 0, NULL);
    pthread_mutex_unlock(&dev->submit);
    return r;
}

/* Waits are numbered (dev->wait_epoch) when appended. A synchronize of a list
 * takes the number first: every wait numbered up to it was appended before
 * the synchronize's own marker, so it has executed once the synchronize
 * returns; a wait appended meanwhile by another thread has a larger number
 * and stays. */
uint64_t vs_ze_wait_epoch(vs_bdev *dev)
{
    pthread_mutex_lock(&dev->lock);
    uint64_t e = dev->wait_epoch;
    pthread_mutex_unlock(&dev->lock);
    return e;
}

static void drop_waiter(vs_ze_slot *s, ze_command_list_handle_t list, uint64_t epoch)
{
    for (uint32_t i = 0; i < s->nwaiters; i++) {
        if (s->waiters[i] == list && s->waiter_epoch[i] <= epoch) {
            s->nwaiters--;
            s->waiters[i] = s->waiters[s->nwaiters];
            s->waiter_epoch[i] = s->waiter_epoch[s->nwaiters];
            return;
        }
    }
}

void vs_ze_list_passed(vs_bdev *dev, ze_command_list_handle_t list, uint64_t epoch)
{
    pthread_mutex_lock(&dev->lock);
    for (uint32_t p = 0; p < dev->npools; p++) {
        vs_ze_pool *pool = dev->pools[p];
        for (uint32_t i = 0; i < pool->created; i++)
            if (pool->slots[i].nwaiters)
                drop_waiter(&pool->slots[i], list, epoch);
    }
    pthread_mutex_unlock(&dev->lock);
}

/* Under lock, after the wait was appended. One entry per list, with the
 * newest number (the older wait precedes it in the same list). */
static void add_waiter(vs_bdev *dev, vs_ze_slot *s, ze_command_list_handle_t list)
{
    uint64_t epoch = ++dev->wait_epoch;
    for (uint32_t i = 0; i < s->nwaiters; i++) {
        if (s->waiters[i] == list) {
            s->waiter_epoch[i] = epoch;
            return;
        }
    }
    if (s->nwaiters < VS_ZE_SLOT_WAITERS) {
        s->waiters[s->nwaiters] = list;
        s->waiter_epoch[s->nwaiters] = epoch;
        s->nwaiters++;
    } else {
        s->overflow = true;
    }
}

/* ---------------------------------------------------------------- events */

static vs_ze_event *event_of(uintptr_t h)
{
    vs_ze_event *e = (vs_ze_event *)h;
    if (!e || e->magic != VS_ZE_EVENT_MAGIC)
        return NULL;
    return e;
}

vs_status vs_ze_event_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = calloc(1, sizeof *e);
    if (!e)
        return VS_ERR_OUT_OF_MEMORY;
    e->magic = VS_ZE_EVENT_MAGIC;
    e->current = NULL; /* never recorded: complete */
    pthread_mutex_lock(&dev->lock);
    dev->live_events++;
    pthread_mutex_unlock(&dev->lock);
    *out = (uintptr_t)e;
    return VS_OK;
}

vs_status vs_ze_event_destroy(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = event_of(event);
    if (!e)
        return VS_ERR_INVALID_HANDLE;
    pthread_mutex_lock(&dev->lock);
    e->magic = 0;
    if (e->current)
        retire(dev, e->current);
    dev->live_events--;
    pthread_mutex_unlock(&dev->lock);
    free(e);
    return VS_OK;
}

vs_status vs_ze_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = event_of(event);
    if (!e)
        return VS_ERR_INVALID_HANDLE;
    vs_ze_slot *slot = NULL;
    vs_status st = vs_ze_slot_get(dev, &slot);
    if (st != VS_OK)
        return st;
    ze_result_t r = vs_ze_append_signal(dev, vs_ze_list(dev, stream), slot);
    if (r != ZE_RESULT_SUCCESS) {
        vs_ze_slot_put(dev, slot);
        return vs_ze_result(r, "zeCommandListAppendSignalEvent");
    }
    pthread_mutex_lock(&dev->lock);
    vs_ze_slot *old = e->current;
    e->current = slot;
    if (old)
        retire(dev, old);
    pthread_mutex_unlock(&dev->lock);
    return VS_OK;
}

vs_status vs_ze_event_query(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = event_of(event);
    if (!e)
        return VS_ERR_INVALID_HANDLE;
    ze_result_t r = ZE_RESULT_SUCCESS;
    pthread_mutex_lock(&dev->lock);
    if (e->current)
        r = dev->ze->api.EventQueryStatus(e->current->event);
    pthread_mutex_unlock(&dev->lock);
    /* NOT_READY is the normal "still pending" answer: not logged. */
    return vs_ze_result(r, "zeEventQueryStatus");
}

/* The current slot, pinned against recycling (NULL: never recorded). */
static vs_ze_slot *hold_current(vs_bdev *dev, vs_ze_event *e)
{
    pthread_mutex_lock(&dev->lock);
    vs_ze_slot *s = e->current;
    if (s)
        s->holds++;
    pthread_mutex_unlock(&dev->lock);
    return s;
}

vs_status vs_ze_event_synchronize(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = event_of(event);
    if (!e)
        return VS_ERR_INVALID_HANDLE;
    vs_ze_slot *s = hold_current(dev, e);
    if (!s)
        return VS_OK;
    ze_result_t r = dev->ze->api.EventHostSynchronize(s->event, UINT64_MAX);
    pthread_mutex_lock(&dev->lock);
    s->holds--;
    pthread_mutex_unlock(&dev->lock);
    return vs_ze_result(r, "zeEventHostSynchronize");
}

vs_status vs_ze_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_event *e = event_of(event);
    if (!e)
        return VS_ERR_INVALID_HANDLE;
    vs_ze_slot *s = hold_current(dev, e);
    if (!s)
        return VS_OK; /* never recorded: nothing to wait for */
    ze_command_list_handle_t list = vs_ze_list(dev, stream);
    pthread_mutex_lock(&dev->submit);
    ze_result_t r = dev->ze->api.CommandListAppendWaitOnEvents(list, 1, &s->event);
    pthread_mutex_unlock(&dev->submit);
    pthread_mutex_lock(&dev->lock);
    s->holds--;
    if (r == ZE_RESULT_SUCCESS)
        add_waiter(dev, s, list);
    pthread_mutex_unlock(&dev->lock);
    return vs_ze_result(r, "zeCommandListAppendWaitOnEvents");
}
