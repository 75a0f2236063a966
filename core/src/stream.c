/* Streams, events and copies: validated pass-throughs to the backend, called
 * without the device lock (the backend's own queues order the work; Note
 * [Lock order] in device.c). The device handle is checked for liveness first. */
#include "internal.h"

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
    return st ? st : check(dev, dev->ops->stream_create(dev->bdev, stream), "stream create");
}

VS_API vs_status vs_stream_destroy(vs_device_t *dev, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (stream == 0 || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->stream_destroy(dev->bdev, stream), "stream destroy");
}

VS_API vs_status vs_stream_synchronize(vs_device_t *dev, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->stream_synchronize(dev->bdev, stream), "stream synchronize");
}

VS_API vs_status vs_event_create(vs_device_t *dev, uintptr_t *event)
{
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = live(dev);
    return st ? st : check(dev, dev->ops->event_create(dev->bdev, event), "event create");
}

VS_API vs_status vs_event_destroy(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->event_destroy(dev->bdev, event), "event destroy");
}

VS_API vs_status vs_event_record(vs_device_t *dev, uintptr_t event, uintptr_t stream)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->event_record(dev->bdev, event, stream), "event record");
}

VS_API vs_status vs_event_query(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->event_query(dev->bdev, event), "event query");
}

VS_API vs_status vs_event_synchronize(vs_device_t *dev, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->event_synchronize(dev->bdev, event), "event synchronize");
}

VS_API vs_status vs_stream_wait_event(vs_device_t *dev, uintptr_t stream, uintptr_t event)
{
    vs_status st = live(dev);
    if (st)
        return st;
    if (!event || stream == VS_STREAM_NONE)
        return VS_ERR_INVALID_ARGUMENT;
    return check(dev, dev->ops->stream_wait_event(dev->bdev, stream, event), "stream wait");
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
    return check(dev, dev->ops->copy_async(dev->bdev, kind, dst, src, size, stream), "copy");
}
