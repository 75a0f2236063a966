/* Emulator streams, events and asynchronous copies, on simdev's stream workers.
 * hipStream_t and hipEvent_t values are simdev handles; stream 0 and
 * hipStreamPerThread are the current device's default stream. A copy that
 * touched unmapped memory makes its stream's next synchronize fail with
 * hipErrorIllegalAddress, as on a GPU. */
#include "emu_hip.h"

/* simdev reports a failed asynchronous copy as INVALID_ARGUMENT at synchronize. */
static hipError_t sync_result(vs_status st)
{
    return st == VS_ERR_INVALID_ARGUMENT ? hipErrorIllegalAddress : emu_result(st);
}

static hipError_t event_device(hipEvent_t e, simdev_t **sd)
{
    if (!e)
        return hipErrorInvalidHandle;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    r = emu_device(simdev_handle_ordinal((simdev_handle)(uintptr_t)e), sd);
    return r == hipErrorInvalidDevice ? hipErrorInvalidHandle : r;
}

static simdev_handle ev(hipEvent_t e)
{
    return (simdev_handle)(uintptr_t)e;
}

/* ---------------------------------------------------------------- streams */

EMU_API hipError_t hipStreamCreateWithFlags(hipStream_t *stream, unsigned int flags)
{
    simdev_t *sd;
    if (!stream || (flags & ~(unsigned)hipStreamNonBlocking))
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_STREAM_CREATE)) != hipSuccess)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_stream_create(sd, &h));
    if (r == hipSuccess)
        *stream = (hipStream_t)(uintptr_t)h;
    return r;
}

EMU_API hipError_t hipStreamDestroy(hipStream_t stream)
{
    simdev_t *sd;
    simdev_handle h;
    if (!stream || stream == hipStreamPerThread)
        return hipErrorInvalidHandle;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r != hipSuccess)
        return r;
    return emu_result(simdev_stream_destroy(sd, h));
}

EMU_API hipError_t hipStreamSynchronize(hipStream_t stream)
{
    simdev_t *sd;
    simdev_handle h;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r != hipSuccess)
        return r;
    return sync_result(simdev_stream_synchronize(sd, h));
}

EMU_API hipError_t hipStreamWaitEvent(hipStream_t stream, hipEvent_t event, unsigned int flags)
{
    simdev_t *sd, *esd;
    simdev_handle h;
    if (flags != 0)
        return hipErrorInvalidValue;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r == hipSuccess)
        r = event_device(event, &esd);
    if (r != hipSuccess)
        return r;
    if (esd != sd)
        return hipErrorNotSupported; /* cross-device waits are not emulated */
    return emu_result(simdev_stream_wait_event(sd, h, ev(event)));
}

/* ---------------------------------------------------------------- copies */

EMU_API hipError_t hipMemcpyAsync(void *dst, const void *src, size_t sizeBytes, hipMemcpyKind kind,
                                  hipStream_t stream)
{
    simdev_t *sd;
    simdev_handle h;
    int vk;
    switch (kind) {
    case hipMemcpyHostToDevice:
        vk = VS_COPY_HOST_TO_DEVICE;
        break;
    case hipMemcpyDeviceToHost:
        vk = VS_COPY_DEVICE_TO_HOST;
        break;
    case hipMemcpyDeviceToDevice:
        vk = VS_COPY_DEVICE_TO_DEVICE;
        break;
    default:
        return hipErrorNotSupported; /* host-to-host and "default" are not emulated */
    }
    if (!dst || !src)
        return hipErrorInvalidValue;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r != hipSuccess)
        return r;
    if (sizeBytes == 0)
        return hipSuccess;
    if ((r = emu_injected(VS_SIM_OP_COPY)) != hipSuccess)
        return r;
    return emu_result(simdev_copy_async(sd, vk, (uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)src,
                                        sizeBytes, h));
}

/* ---------------------------------------------------------------- events */

EMU_API hipError_t hipEventCreateWithFlags(hipEvent_t *event, unsigned flags)
{
    simdev_t *sd;
    if (!event || (flags & ~(unsigned)(hipEventDisableTiming | hipEventBlockingSync)))
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_EVENT_CREATE)) != hipSuccess)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_event_create(sd, &h));
    if (r == hipSuccess)
        *event = (hipEvent_t)(uintptr_t)h;
    return r;
}

EMU_API hipError_t hipEventDestroy(hipEvent_t event)
{
    simdev_t *sd;
    hipError_t r = event_device(event, &sd);
    if (r != hipSuccess)
        return r;
    return emu_result(simdev_event_destroy(sd, ev(event)));
}

EMU_API hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream)
{
    simdev_t *sd, *ssd;
    simdev_handle h;
    hipError_t r = event_device(event, &sd);
    if (r != hipSuccess)
        return r;
    r = emu_stream(stream, &ssd, &h);
    if (r != hipSuccess)
        return r;
    if (ssd != sd)
        return hipErrorInvalidHandle; /* event and stream of different devices */
    return emu_result(simdev_event_record(sd, ev(event), h));
}

EMU_API hipError_t hipEventQuery(hipEvent_t event)
{
    simdev_t *sd;
    hipError_t r = event_device(event, &sd);
    if (r != hipSuccess)
        return r;
    return emu_result(simdev_event_query(sd, ev(event)));
}

EMU_API hipError_t hipEventSynchronize(hipEvent_t event)
{
    simdev_t *sd;
    hipError_t r = event_device(event, &sd);
    if (r != hipSuccess)
        return r;
    return sync_result(simdev_event_synchronize(sd, ev(event)));
}
