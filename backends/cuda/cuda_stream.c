/* CUDA streams, events and asynchronous copies.
 *
 * Handles are the driver's own (CUstream, CUevent) as uintptr_t, so a stream
 * torch hands us (torch.cuda.current_stream().cuda_stream) is passed through
 * unchanged. Stream 0 is the legacy default stream; the special handles
 * CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are valid too and passed as-is.
 * Streams we create are non-blocking (they never serialize with stream 0);
 * events are created without timing, the cheapest kind to record and query.
 */
#include "cuda/cuda_internal.h"

static CUstream as_stream(uintptr_t s)
{
    return (CUstream)s;
}

static CUevent as_event(uintptr_t e)
{
    return (CUevent)e;
}

vs_status vs_cuda_stream_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUstream s = NULL;
    CUresult r = dev->cuda->api.StreamCreate(&s, CU_STREAM_NON_BLOCKING);
    vs_cuda_leave(dev, &scope);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&dev->cuda->api, r, "cuStreamCreate");
    *out = (uintptr_t)s;
    return VS_OK;
}

vs_status vs_cuda_stream_destroy(vs_bdev *dev, uintptr_t stream)
{
    if (!dev || !stream)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.StreamDestroy(as_stream(stream));
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuStreamDestroy");
}

vs_status vs_cuda_stream_synchronize(vs_bdev *dev, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.StreamSynchronize(as_stream(stream));
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuStreamSynchronize");
}

vs_status vs_cuda_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                             uintptr_t stream)
{
    if (!dev || !dst || !src)
        return VS_ERR_INVALID_ARGUMENT;
    if (size == 0)
        return VS_OK;
    const vs_cuda_api *api = &dev->cuda->api;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r;
    const char *what;
    switch (kind) {
    case VS_COPY_HOST_TO_DEVICE:
        what = "cuMemcpyHtoDAsync";
        r = api->MemcpyHtoDAsync((CUdeviceptr)dst, (const void *)src, (size_t)size, as_stream(stream));
        break;
    case VS_COPY_DEVICE_TO_HOST:
        what = "cuMemcpyDtoHAsync";
        r = api->MemcpyDtoHAsync((void *)dst, (CUdeviceptr)src, (size_t)size, as_stream(stream));
        break;
    case VS_COPY_DEVICE_TO_DEVICE:
        what = "cuMemcpyDtoDAsync";
        r = api->MemcpyDtoDAsync((CUdeviceptr)dst, (CUdeviceptr)src, (size_t)size, as_stream(stream));
        break;
    default:
        vs_cuda_leave(dev, &scope);
        return VS_ERR_INVALID_ARGUMENT;
    }
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(api, r, what);
}

vs_status vs_cuda_event_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUevent e = NULL;
    CUresult r = dev->cuda->api.EventCreate(&e, CU_EVENT_DISABLE_TIMING);
    vs_cuda_leave(dev, &scope);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&dev->cuda->api, r, "cuEventCreate");
    *out = (uintptr_t)e;
    return VS_OK;
}

vs_status vs_cuda_event_destroy(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.EventDestroy(as_event(event));
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuEventDestroy");
}

vs_status vs_cuda_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.EventRecord(as_event(event), as_stream(stream));
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuEventRecord");
}

vs_status vs_cuda_event_query(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.EventQuery(as_event(event));
    vs_cuda_leave(dev, &scope);
    /* NOT_READY is the normal "still pending" answer: not logged. */
    return vs_cuda_result(&dev->cuda->api, r, "cuEventQuery");
}

vs_status vs_cuda_event_synchronize(vs_bdev *dev, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.EventSynchronize(as_event(event));
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuEventSynchronize");
}

vs_status vs_cuda_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event)
{
    if (!dev || !event)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.StreamWaitEvent(as_stream(stream), as_event(event), 0);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuStreamWaitEvent");
}
