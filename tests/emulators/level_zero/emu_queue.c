/* Emulator command lists and events, on simdev's stream workers.
 *
 * An immediate command list is a simdev stream: copies are simdev copies, and
 * event signals, resets and waits are host functions run by the stream's
 * worker in order (a wait blocks only its own stream). Every list therefore
 * executes in order, with or without ZE_COMMAND_QUEUE_FLAG_IN_ORDER.
 * Events are reference counted so that one destroyed while a queued signal
 * still names it is freed only after that signal ran.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu_ze.h"

emu_list *emu_list_of(ze_command_list_handle_t h)
{
    emu_list *l = (emu_list *)h;
    return l && l->magic == EMU_MAGIC_LIST ? l : NULL;
}

emu_event *emu_event_of(ze_event_handle_t h)
{
    emu_event *e = (emu_event *)h;
    return e && e->magic == EMU_MAGIC_EVENT ? e : NULL;
}

static emu_pool *pool_of(ze_event_pool_handle_t h)
{
    emu_pool *p = (emu_pool *)h;
    return p && p->magic == EMU_MAGIC_POOL ? p : NULL;
}

/* ---------------------------------------------------------------- events */

/* The event object lives while it has references: its handle, and each
 * queued host function that names it. */
typedef struct emu_event_obj {
    emu_event e;
    int refs; /* atomic */
} emu_event_obj;

static void event_ref(emu_event *e)
{
    __atomic_add_fetch(&((emu_event_obj *)e)->refs, 1, __ATOMIC_ACQ_REL);
}

static void event_unref(emu_event *e)
{
    if (__atomic_sub_fetch(&((emu_event_obj *)e)->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->cond);
        free(e);
    }
}

static void set_signaled(emu_event *e, int v)
{
    pthread_mutex_lock(&e->lock);
    e->signaled = v;
    if (v)
        pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

static void signal_fn(void *arg)
{
    set_signaled(arg, 1);
    event_unref(arg);
}

static void reset_fn(void *arg)
{
    set_signaled(arg, 0);
    event_unref(arg);
}

static void wait_fn(void *arg)
{
    emu_event *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->signaled)
        pthread_cond_wait(&e->cond, &e->lock);
    pthread_mutex_unlock(&e->lock);
    event_unref(e);
}

/* Queue fn(event) on the list's stream. */
static ze_result_t enqueue(emu_list *l, void (*fn)(void *), emu_event *e)
{
    event_ref(e);
    vs_status st = simdev_launch_host_fn(l->device->sd, l->stream, fn, e);
    if (st != VS_OK) {
        event_unref(e);
        return emu_result(st);
    }
    return ZE_RESULT_SUCCESS;
}

static ze_result_t check_events(uint32_t n, ze_event_handle_t *evs)
{
    if (n && !evs)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    for (uint32_t i = 0; i < n; i++)
        if (!emu_event_of(evs[i]))
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    return ZE_RESULT_SUCCESS;
}

static ze_result_t enqueue_waits(emu_list *l, uint32_t n, ze_event_handle_t *evs)
{
    for (uint32_t i = 0; i < n; i++) {
        ze_result_t r = enqueue(l, wait_fn, emu_event_of(evs[i]));
        if (r != ZE_RESULT_SUCCESS)
            return r;
    }
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventPoolCreate(ze_context_handle_t hContext, const ze_event_pool_desc_t *desc,
                                  uint32_t numDevices, ze_device_handle_t *phDevices,
                                  ze_event_pool_handle_t *phEventPool)
{
    emu_context *c = emu_ctx(hContext);
    if (!c)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!desc || !phEventPool || (numDevices && !phDevices))
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (desc->count == 0)
        return ZE_RESULT_ERROR_INVALID_SIZE;
    for (uint32_t i = 0; i < numDevices; i++)
        if (!emu_dev(phDevices[i]))
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    emu_pool *p = calloc(1, sizeof *p);
    uint8_t *used = calloc(desc->count, 1);
    if (!p || !used) {
        free(p);
        free(used);
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    }
    p->magic = EMU_MAGIC_POOL;
    p->ctx = c;
    p->count = desc->count;
    p->used = used;
    emu_count(&emu_g.objects.event_pools, +1);
    *phEventPool = (ze_event_pool_handle_t)p;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventPoolDestroy(ze_event_pool_handle_t hEventPool)
{
    emu_pool *p = pool_of(hEventPool);
    if (!p)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (p->live)
        return ZE_RESULT_ERROR_HANDLE_OBJECT_IN_USE;
    p->magic = 0;
    free(p->used);
    free(p);
    emu_count(&emu_g.objects.event_pools, -1);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventCreate(ze_event_pool_handle_t hEventPool, const ze_event_desc_t *desc,
                              ze_event_handle_t *phEvent)
{
    emu_pool *p = pool_of(hEventPool);
    if (!p)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!desc || !phEvent)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (desc->index >= p->count || p->used[desc->index])
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = emu_injected(VS_SIM_OP_EVENT_CREATE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    emu_event_obj *o = calloc(1, sizeof *o);
    if (!o)
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    o->refs = 1;
    emu_event *e = &o->e;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    e->pool = p;
    e->index = desc->index;
    e->signaled = 0;
    e->magic = EMU_MAGIC_EVENT;
    p->used[desc->index] = 1;
    p->live++;
    emu_count(&emu_g.objects.events, +1);
    *phEvent = (ze_event_handle_t)e;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventDestroy(ze_event_handle_t hEvent)
{
    emu_event *e = emu_event_of(hEvent);
    if (!e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    e->magic = 0;
    e->pool->used[e->index] = 0;
    e->pool->live--;
    emu_count(&emu_g.objects.events, -1);
    event_unref(e);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventHostSignal(ze_event_handle_t hEvent)
{
    emu_event *e = emu_event_of(hEvent);
    if (!e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    set_signaled(e, 1);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventHostReset(ze_event_handle_t hEvent)
{
    emu_event *e = emu_event_of(hEvent);
    if (!e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    set_signaled(e, 0);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeEventQueryStatus(ze_event_handle_t hEvent)
{
    emu_event *e = emu_event_of(hEvent);
    if (!e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    pthread_mutex_lock(&e->lock);
    int s = e->signaled;
    pthread_mutex_unlock(&e->lock);
    return s ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
}

ze_result_t emu_zeEventHostSynchronize(ze_event_handle_t hEvent, uint64_t timeout)
{
    emu_event *e = emu_event_of(hEvent);
    if (!e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    struct timespec deadline;
    if (timeout != UINT64_MAX) {
        clock_gettime(CLOCK_REALTIME, &deadline);
        uint64_t ns = (uint64_t)deadline.tv_nsec + timeout % 1000000000u;
        deadline.tv_sec += (time_t)(timeout / 1000000000u + ns / 1000000000u);
        deadline.tv_nsec = (long)(ns % 1000000000u);
    }
    ze_result_t r = ZE_RESULT_SUCCESS;
    pthread_mutex_lock(&e->lock);
    while (!e->signaled) {
        if (timeout == 0) {
            r = ZE_RESULT_NOT_READY;
            break;
        }
        if (timeout == UINT64_MAX) {
            pthread_cond_wait(&e->cond, &e->lock);
        } else if (pthread_cond_timedwait(&e->cond, &e->lock, &deadline) == ETIMEDOUT) {
            r = e->signaled ? ZE_RESULT_SUCCESS : ZE_RESULT_NOT_READY;
            break;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return r;
}

/* ---------------------------------------------------------------- command lists */

ze_result_t emu_zeCommandListCreate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                    const ze_command_list_desc_t *desc,
                                    ze_command_list_handle_t *phCommandList)
{
    (void)hContext;
    (void)hDevice;
    (void)desc;
    (void)phCommandList;
    return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE; /* only immediate lists are emulated */
}

ze_result_t emu_zeCommandListCreateImmediate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                             const ze_command_queue_desc_t *altdesc,
                                             ze_command_list_handle_t *phCommandList)
{
    emu_context *c = emu_ctx(hContext);
    emu_device *d = emu_dev(hDevice);
    if (!c || !d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!altdesc || !phCommandList)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    uint32_t groups = emu_g.no_copy_engine ? 1 : 2;
    uint32_t queues = altdesc->ordinal == 0 ? 1 : 2;
    /* Spec: EXPLICIT_ONLY (bit 0) and, from 1.7, IN_ORDER (bit 1). */
    if (altdesc->ordinal >= groups || altdesc->index >= queues || (altdesc->flags & ~3u) ||
        (altdesc->index != 0 && !(altdesc->flags & ZE_COMMAND_QUEUE_FLAG_EXPLICIT_ONLY)))
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = emu_injected(VS_SIM_OP_STREAM_CREATE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    emu_list *l = calloc(1, sizeof *l);
    if (!l)
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    r = emu_result(simdev_stream_create(d->sd, &l->stream));
    if (r != ZE_RESULT_SUCCESS) {
        free(l);
        return r;
    }
    l->magic = EMU_MAGIC_LIST;
    l->ctx = c;
    l->device = d;
    emu_count(&emu_g.objects.command_lists, +1);
    *phCommandList = (ze_command_list_handle_t)l;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeCommandListDestroy(ze_command_list_handle_t hCommandList)
{
    emu_list *l = emu_list_of(hCommandList);
    if (!l)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    /* A copy that hit unmapped memory (simdev's sticky error) is a GPU page
     * fault: report it as a lost device, as Intel's driver would. */
    vs_status async = simdev_stream_synchronize(l->device->sd, l->stream);
    vs_status st = simdev_stream_destroy(l->device->sd, l->stream);
    if (st != VS_OK)
        return emu_result(st);
    l->magic = 0;
    free(l);
    emu_count(&emu_g.objects.command_lists, -1);
    return async == VS_OK ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_DEVICE_LOST;
}

ze_result_t emu_zeCommandListAppendBarrier(ze_command_list_handle_t hCommandList,
                                           ze_event_handle_t hSignalEvent, uint32_t numWaitEvents,
                                           ze_event_handle_t *phWaitEvents)
{
    emu_list *l = emu_list_of(hCommandList);
    if (!l || (hSignalEvent && !emu_event_of(hSignalEvent)))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    ze_result_t r = check_events(numWaitEvents, phWaitEvents);
    if (r == ZE_RESULT_SUCCESS)
        r = enqueue_waits(l, numWaitEvents, phWaitEvents);
    /* Everything before it is done when the stream reaches it (in order). */
    if (r == ZE_RESULT_SUCCESS && hSignalEvent)
        r = enqueue(l, signal_fn, emu_event_of(hSignalEvent));
    return r;
}

/* A host-to-host copy run by the stream's worker. */
typedef struct emu_memcpy_job {
    void *dst;
    const void *src;
    size_t size;
} emu_memcpy_job;

static void memcpy_fn(void *arg)
{
    emu_memcpy_job *j = arg;
    memcpy(j->dst, j->src, j->size);
    free(j);
}

ze_result_t emu_zeCommandListAppendMemoryCopy(ze_command_list_handle_t hCommandList, void *dstptr,
                                              const void *srcptr, size_t size,
                                              ze_event_handle_t hSignalEvent,
                                              uint32_t numWaitEvents,
                                              ze_event_handle_t *phWaitEvents)
{
    emu_list *l = emu_list_of(hCommandList);
    if (!l || (hSignalEvent && !emu_event_of(hSignalEvent)))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!dstptr || !srcptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    ze_result_t r = check_events(numWaitEvents, phWaitEvents);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    simdev_t *sd = l->device->sd;
    int dst_dev = simdev_find_range(sd, (uintptr_t)dstptr, NULL, NULL, NULL) == VS_OK;
    int src_dev = simdev_find_range(sd, (uintptr_t)srcptr, NULL, NULL, NULL) == VS_OK;
    if ((r = emu_injected(VS_SIM_OP_COPY)) != ZE_RESULT_SUCCESS)
        return r;
    if ((r = enqueue_waits(l, numWaitEvents, phWaitEvents)) != ZE_RESULT_SUCCESS)
        return r;
    if (size > 0) {
        if (dst_dev || src_dev) {
            int kind = dst_dev && src_dev ? VS_COPY_DEVICE_TO_DEVICE
                       : dst_dev          ? VS_COPY_HOST_TO_DEVICE
                                          : VS_COPY_DEVICE_TO_HOST;
            r = emu_result(simdev_copy_async(sd, kind, (uintptr_t)dstptr, (uintptr_t)srcptr, size,
                                             l->stream));
        } else {
            emu_memcpy_job *j = malloc(sizeof *j);
            if (!j)
                return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
            *j = (emu_memcpy_job){dstptr, srcptr, size};
            r = emu_result(simdev_launch_host_fn(sd, l->stream, memcpy_fn, j));
            if (r != ZE_RESULT_SUCCESS)
                free(j);
        }
    }
    if (r == ZE_RESULT_SUCCESS && hSignalEvent)
        r = enqueue(l, signal_fn, emu_event_of(hSignalEvent));
    return r;
}

ze_result_t emu_zeCommandListAppendSignalEvent(ze_command_list_handle_t hCommandList,
                                               ze_event_handle_t hEvent)
{
    emu_list *l = emu_list_of(hCommandList);
    emu_event *e = emu_event_of(hEvent);
    if (!l || !e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    return enqueue(l, signal_fn, e);
}

ze_result_t emu_zeCommandListAppendWaitOnEvents(ze_command_list_handle_t hCommandList,
                                                uint32_t numEvents, ze_event_handle_t *phEvents)
{
    emu_list *l = emu_list_of(hCommandList);
    if (!l)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    ze_result_t r = check_events(numEvents, phEvents);
    return r == ZE_RESULT_SUCCESS ? enqueue_waits(l, numEvents, phEvents) : r;
}

ze_result_t emu_zeCommandListAppendEventReset(ze_command_list_handle_t hCommandList,
                                              ze_event_handle_t hEvent)
{
    emu_list *l = emu_list_of(hCommandList);
    emu_event *e = emu_event_of(hEvent);
    if (!l || !e)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    return enqueue(l, reset_fn, e);
}
