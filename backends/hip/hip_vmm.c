/* HIP virtual memory management: physical chunks, mappings, and page-locked
 * host memory. Address ranges are in hip_va.c.
 *
 * A physical chunk (vs_bphys) is a small record around the runtime's
 * hipMemGenericAllocationHandle_t that also remembers its size and the range
 * it was last mapped in (Note [HIP stranded memory]); one malloc next to a
 * runtime call that costs tens of microseconds.
 *
 * Every call runs with the device current (Note [HIP current device]). Access
 * is granted to this device only: a VBAR is used by the device it belongs to
 * (peer access is not part of the contract).
 */
#include <stdlib.h>
#include <string.h>

#include "hip/hip_internal.h"

static hipError_t create_chunk(vs_bdev *dev, uint64_t size, hipMemGenericAllocationHandle_t *h)
{
    hipMemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = hipMemAllocationTypePinned;
    prop.requestedHandleType = hipMemHandleTypeNone;
    prop.location.type = hipMemLocationTypeDevice;
    prop.location.id = dev->hip_ordinal;
    return dev->hip->api.MemCreate(h, (size_t)size, &prop, 0);
}

vs_status vs_hip_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out)
{
    if (!dev || !out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_bphys *chunk = calloc(1, sizeof *chunk);
    if (!chunk)
        return VS_ERR_OUT_OF_MEMORY;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK) {
        free(chunk);
        return st;
    }
    hipMemGenericAllocationHandle_t h = NULL;
    hipError_t r = create_chunk(dev, size, &h);
    /* Note [HIP stranded memory]: cached ranges holding released memory are
     * given back before the out-of-memory answer stands. */
    if (r == hipErrorOutOfMemory && vs_hip_va_flush(dev, false) > 0)
        r = create_chunk(dev, size, &h);
    vs_hip_leave(dev, &scope);
    st = vs_hip_result(&dev->hip->api, r, "hipMemCreate");
    if (st == VS_OK && !h) {
        vs_backend_log(VS_LOG_ERROR, "hip: hipMemCreate returned a null handle");
        st = VS_ERR_BACKEND;
    }
    if (st != VS_OK) {
        free(chunk);
        return st;
    }
    chunk->handle = h;
    chunk->size = size;
    *out = chunk;
    return VS_OK;
}

vs_status vs_hip_phys_release(vs_bdev *dev, vs_bphys *chunk)
{
    if (!dev || !chunk)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = vs_hip_va_release_chunk(dev, chunk);
    vs_hip_leave(dev, &scope);
    st = vs_hip_result(&dev->hip->api, r, "hipMemRelease");
    if (st == VS_OK)
        free(chunk); /* on failure the handle is still alive, and so is its record */
    return st;
}

vs_status vs_hip_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk)
{
    if (!dev || !va || size == 0 || !chunk || size != chunk->size)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.MemMap((void *)(uintptr_t)va, (size_t)size, 0, chunk->handle, 0);
    vs_hip_leave(dev, &scope);
    st = vs_hip_result(&dev->hip->api, r, "hipMemMap");
    if (st == VS_OK)
        vs_hip_va_note_map(dev, chunk, va);
    return st;
}

vs_status vs_hip_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    hipMemAccessDesc desc;
    memset(&desc, 0, sizeof desc);
    desc.location.type = hipMemLocationTypeDevice;
    desc.location.id = dev->hip_ordinal;
    desc.flags = hipMemAccessFlagsProtReadWrite;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.MemSetAccess((void *)(uintptr_t)va, (size_t)size, &desc, 1);
    vs_hip_leave(dev, &scope);
    /* hipErrorNotReady here is retried by the core (Note [HIP result mapping]). */
    return vs_hip_result(&dev->hip->api, r, "hipMemSetAccess");
}

vs_status vs_hip_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    /* One call per mapping, as the core maps (Note [HIP stranded memory]). */
    hipError_t r = dev->hip->api.MemUnmap((void *)(uintptr_t)va, (size_t)size);
    vs_hip_leave(dev, &scope);
    st = vs_hip_result(&dev->hip->api, r, "hipMemUnmap");
    if (st == VS_OK)
        vs_hip_va_note_unmap(dev, va, size);
    return st;
}

vs_status vs_hip_host_register(vs_bdev *dev, void *ptr, uint64_t size)
{
    if (!dev || !ptr || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    /* PORTABLE: one host buffer can feed any device (HIP treats every
     * registration as portable anyway). */
    hipError_t r = dev->hip->api.HostRegister(ptr, (size_t)size, hipHostRegisterPortable);
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipHostRegister");
}

vs_status vs_hip_host_unregister(vs_bdev *dev, void *ptr)
{
    if (!dev || !ptr)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    hipError_t r = dev->hip->api.HostUnregister(ptr);
    vs_hip_leave(dev, &scope);
    return vs_hip_result(&dev->hip->api, r, "hipHostUnregister");
}
