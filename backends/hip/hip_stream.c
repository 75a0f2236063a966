/* HIP streams, events and asynchronous copies.
 *
 * Handles are the runtime's own (hipStream_t, hipEvent_t) as uintptr_t, so a
 * stream torch hands us (torch.cuda.current_stream().cuda_stream on ROCm) is
 * passed through unchanged. Stream 0 is the null stream of the device, which
 * the current-device scope makes ours (Note [HIP current device]);
 * hipStreamPerThread is valid too and passed as-is. Streams we create are
 * non-blocking (they never serialize with the null stream); events are created
 * without timing, the cheapest kind to record and query. An event never
 * recorded queries as complete in HIP, as the contract wants.
 */
#include "hip/hip_internal.h"

static hipStream_t as_stream(uintptr_t s)
{
    return (hipStream_t)s;
}

static hipEvent_t as_event(uintptr_t e)
{
    return (hipEvent_t)e;
}

vs_status vs_hip_stream_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipStream_t s = NULL;
    hipError_t r = dev->hip->api.StreamCreateWithFlags(&s, hipStreamNonBlocking);
    vs_hip_leave(dev, &scope);
    if (r != hipSuccess)
        return vs_hip_result(&dev->hip->api, r, "hipStreamCreateWithFlags");
    *out = (uintptr_t)s;
    return VS_OK;
}

vs_status vs_hip_stream_destroy(vs_bdev *dev, uintptr_t stream)
{
    if (!dev || !stream)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.StreamDestroy(as_stream(stream));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipStreamDestroy");
}

vs_status vs_hip_stream_synchronize(vs_bdev *dev, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.StreamSynchronize(as_stream(stream));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipStreamSynchronize");
}

vs_status vs_hip_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                            uintptr_t stream)
{
    if (!dev || !dst || !src)
        return VS_ERR_INVALID_ARGUMENT;
    if (size == 0)
        return VS_OK;
    hipMemcpyKind hk;
    switch (kind) {
    case VS_COPY_HOST_TO_DEVICE:
        hk = hipMemcpyHostToDevice;
        break;
    case VS_COPY_DEVICE_TO_HOST:
        hk = hipMemcpyDeviceToHost;
        break;
    case VS_COPY_DEVICE_TO_DEVICE:
        hk = hipMemcpyDeviceToDevice;
        break;
    default:
        return VS_ERR_INVALID_ARGUMENT;
    }
    const vs_hip_api *api = &dev->hip->api;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = api->MemcpyAsync((void *)dst, (const void *)src, (size_t)size, hk, as_stream(stream));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(api, r, "hipMemcpyAsync");
}

vs_status vs_hip_event_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipEvent_t e = NULL;
    hipError_t r = dev->hip->api.EventCreateWithFlags(&e, hipEventDisableTiming);
    vs_hip_leave(dev, &scope);
    if (r != hipSuccess)
        return vs_hip_result(&dev->hip->api, r, "hipEventCreateWithFlags");
    *out = (uintptr_t)e;
    return VS_OK;
}

vs_status vs_hip_event_destroy(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.EventDestroy(as_event(event));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipEventDestroy");
}

vs_status vs_hip_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.EventRecord(as_event(event), as_stream(stream));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipEventRecord");
}

vs_status vs_hip_event_query(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.EventQuery(as_event(event));
    vs_hip_leave(dev, &scope);
    /* hipErrorNotReady is the normal "still pending" answer: not logged. */
    return vs_hip_result(&dev->hip->api, r, "hipEventQuery");
}

vs_status vs_hip_event_synchronize(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.EventSynchronize(as_event(event));
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipEventSynchronize");
}

vs_status vs_hip_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.StreamWaitEvent(as_stream(stream), as_event(event), 0);
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipStreamWaitEvent");
}
