/* Streams, events and copies: validated pass-throughs to the backend, called
 * without the device lock (the backend's own queues order the work; Note
 * [Lock order] in device.c). Each call enters the device first (vs_dev_enter:
 * the handle is validated and the call counted, so that vs_device_close waits
 * for it instead of freeing the backend device under it, Note [Closing]).
 * Copies are queued under the device lock: they are cheap to queue and a copy
 * using a host buffer is recorded in it (Note [Host buffers and pending
 * copies] in buffers.c). */
#include "internal.h"

/* Run `call` (an expression using dev) inside vs_dev_enter/vs_dev_leave. */
#define ENTERED(dev, call)                     \
    do {                                       \
        vs_status st_ = vs_dev_enter(dev);     \
        if (st_ != VS_OK)                      \
            return st_;                        \
        st_ = (call);                          \
        vs_dev_leave(dev);                     \
        return st_;                            \
    } while (0)

static vs_status live(vs_device_t *dev)
{
    return vs_pool_live(dev, VS_KIND_DEVICE) ? VS_OK : VS_ERR_INVALID_HANDLE;
}

static vs_status check(vs_device_t *dev, vs_status st, const char *what)
{
    if (st != VS_OK && st != VS_ERR_NOT_READY && st != VS_ERR_OUT_OF_MEMORY &&
        st != VS_ERR_INVALID_ARGUMENT && st != VS_ERR_INVALID_HANDLE)
        vs_log(VS_LOG_ERROR, "%s on %s:%d failed: %s", what, dev->ops->name, dev->ordinal, vs_status_name(st));
    return st;
}

VS_API vs_status vs_stream_create(vs_device_t *dev, uintptr_t *stream)
{
    if (!stream)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = live(dev);
    if (st)
        return st;
    ENTERED(dev, check(dev, dev->ops->stream_create(dev->bdev, stream), "stream create"));
}

VS_API vs_status vs_stream_destroy(vs_device_t *dev, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (stream == 0 || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->stream_destroy(dev->bdev, stream), "stream destroy"));
}

VS_API vs_status vs_stream_synchronize(vs_device_t *dev, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->stream_synchronize(dev->bdev, stream), "stream synchronize"));
}

VS_API vs_status vs_event_create(vs_device_t *dev, uintptr_t *event)
{
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = live(dev);
    if (st)
        return st;
    ENTERED(dev, check(dev, dev->ops->event_create(dev->bdev, event), "event create"));
}

VS_API vs_status vs_event_destroy(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->event_destroy(dev->bdev, event), "event destroy"));
}

VS_API vs_status vs_event_record(vs_device_t *dev, uintptr_t event, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->event_record(dev->bdev, event, stream), "event record"));
}

VS_API vs_status vs_event_query(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->event_query(dev->bdev, event), "event query"));
}

VS_API vs_status vs_event_synchronize(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->event_synchronize(dev->bdev, event), "event synchronize"));
}

VS_API vs_status vs_stream_wait_event(vs_device_t *dev, uintptr_t stream, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    ENTERED(dev, check(dev, dev->ops->stream_wait_event(dev->bdev, stream, event), "stream wait"));
}

VS_API vs_status vs_memcpy_async(vs_device_t *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                                 uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (kind < VS_COPY_HOST_TO_DEVICE || kind > VS_COPY_DEVICE_TO_DEVICE || !dst || !src || size == 0 ||
        stream == VS_STREAM_NONE || dst + size < dst || src + size < src)
        return VS_ERR_INVALID_ARGUMENT;
    st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    st = check(dev, dev->ops->copy_async(dev->bdev, kind, dst, src, size, stream), "copy");
    if (st == VS_OK && kind != VS_COPY_DEVICE_TO_DEVICE)
        st = vs_host_note_copy(dev, kind == VS_COPY_HOST_TO_DEVICE ? src : dst, size, stream);
    vs_dev_unlock(dev);
    return st;
}
