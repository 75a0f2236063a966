/* Emulator streams, events and asynchronous copies, on simdev's stream workers.
 * CUstream and CUevent values are simdev handles; stream 0 and the special
 * CU_STREAM_LEGACY / CU_STREAM_PER_THREAD handles are the current context's
 * default stream. A copy that touched unmapped memory makes its stream's next
 * synchronize fail with CUDA_ERROR_ILLEGAL_ADDRESS, as on a GPU. */
#include "emu_cuda.h"

/* simdev reports a failed asynchronous copy as INVALID_ARGUMENT at synchronize. */
static CUresult sync_result(vs_status st)
{
    return st == VS_ERR_INVALID_ARGUMENT ? CUDA_ERROR_ILLEGAL_ADDRESS : emu_result(st);
}

static CUresult event_device(CUevent e, simdev_t **sd)
{
    if (!e)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult r = emu_device(simdev_handle_ordinal((simdev_handle)(uintptr_t)e), sd);
    return r == CUDA_ERROR_INVALID_DEVICE ? CUDA_ERROR_INVALID_HANDLE : r;
}

/* ---------------------------------------------------------------- streams */

EMU_API CUresult cuStreamCreate(CUstream *phStream, unsigned int flags)
{
    emu_ctx *ctx;
    if (!phStream || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_STREAM_CREATE)) != CUDA_SUCCESS)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_stream_create(ctx->sd, &h));
    if (r == CUDA_SUCCESS)
        *phStream = (CUstream)(uintptr_t)h;
    return r;
}

EMU_API CUresult cuStreamDestroy_v2(CUstream hStream)
{
    simdev_t *sd;
    simdev_handle h;
    if (!hStream || hStream == CU_STREAM_LEGACY || hStream == CU_STREAM_PER_THREAD)
        return CUDA_ERROR_INVALID_HANDLE;
    CUresult r = emu_stream(hStream, &sd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_stream_destroy(sd, h));
}

EMU_API CUresult cuStreamSynchronize(CUstream hStream)
{
    simdev_t *sd;
    simdev_handle h;
    CUresult r = emu_stream(hStream, &sd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    return sync_result(simdev_stream_synchronize(sd, h));
}

EMU_API CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int flags)
{
    simdev_t *sd, *esd;
    simdev_handle h;
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_stream(hStream, &sd, &h);
    if (r == CUDA_SUCCESS)
        r = event_device(hEvent, &esd);
    if (r != CUDA_SUCCESS)
        return r;
    if (esd != sd)
        return CUDA_ERROR_NOT_SUPPORTED; /* cross-device waits are not emulated */
    return emu_result(simdev_stream_wait_event(sd, h, (simdev_handle)(uintptr_t)hEvent));
}

/* ---------------------------------------------------------------- copies */

static CUresult copy(int kind, uint64_t dst, uint64_t src, size_t size, CUstream s)
{
    simdev_t *sd;
    simdev_handle h;
    if (!dst || !src)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_stream(s, &sd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    if (size == 0)
        return CUDA_SUCCESS;
    if ((r = emu_injected(VS_SIM_OP_COPY)) != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_copy_async(sd, kind, dst, src, size, h));
}

EMU_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                                      CUstream hStream)
{
    return copy(VS_COPY_HOST_TO_DEVICE, dstDevice, (uint64_t)(uintptr_t)srcHost, ByteCount, hStream);
}

EMU_API CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                      CUstream hStream)
{
    return copy(VS_COPY_DEVICE_TO_HOST, (uint64_t)(uintptr_t)dstHost, srcDevice, ByteCount, hStream);
}

EMU_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount,
                                      CUstream hStream)
{
    return copy(VS_COPY_DEVICE_TO_DEVICE, dstDevice, srcDevice, ByteCount, hStream);
}

/* ---------------------------------------------------------------- events */

EMU_API CUresult cuEventCreate(CUevent *phEvent, unsigned int flags)
{
    emu_ctx *ctx;
    if (!phEvent || (flags & ~(unsigned)(CU_EVENT_DISABLE_TIMING | CU_EVENT_BLOCKING_SYNC)))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_EVENT_CREATE)) != CUDA_SUCCESS)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_event_create(ctx->sd, &h));
    if (r == CUDA_SUCCESS)
        *phEvent = (CUevent)(uintptr_t)h;
    return r;
}

EMU_API CUresult cuEventDestroy_v2(CUevent hEvent)
{
    simdev_t *sd;
    CUresult r = event_device(hEvent, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_event_destroy(sd, (simdev_handle)(uintptr_t)hEvent));
}

EMU_API CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
    simdev_t *sd, *ssd;
    simdev_handle h;
    CUresult r = event_device(hEvent, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    r = emu_stream(hStream, &ssd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    if (ssd != sd)
        return CUDA_ERROR_INVALID_HANDLE; /* event and stream of different devices */
    return emu_result(simdev_event_record(sd, (simdev_handle)(uintptr_t)hEvent, h));
}

EMU_API CUresult cuEventQuery(CUevent hEvent)
{
    simdev_t *sd;
    CUresult r = event_device(hEvent, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_event_query(sd, (simdev_handle)(uintptr_t)hEvent));
}

EMU_API CUresult cuEventSynchronize(CUevent hEvent)
{
    simdev_t *sd;
    CUresult r = event_device(hEvent, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    return sync_result(simdev_event_synchronize(sd, (simdev_handle)(uintptr_t)hEvent));
}
