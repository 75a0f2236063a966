/* CUDA virtual memory management: address space, physical chunks, mappings,
 * and page-locked host memory.
 *
 * A physical chunk (vs_bphys *) is the CUmemGenericAllocationHandle itself,
 * carried in the pointer (the driver's handles are never 0), so creating and
 * releasing one allocates nothing besides the driver's object.
 *
 * Every call runs in the device's primary context (Note [CUDA context scope]).
 * Access is granted to this device only: a VBAR is used by the device it
 * belongs to (peer access is not part of the contract).
 */
#include <string.h>

#include "cuda/cuda_internal.h"

_Static_assert(sizeof(CUmemGenericAllocationHandle) <= sizeof(uintptr_t),
               "a CUDA allocation handle is carried in a vs_bphys pointer");

static CUmemGenericAllocationHandle chunk_handle(vs_bphys *chunk)
{
    return (CUmemGenericAllocationHandle)(uintptr_t)chunk;
}

vs_status vs_cuda_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out)
{
    if (!dev || !out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUdeviceptr va = 0;
    CUresult r = dev->cuda->api.MemAddressReserve(&va, (size_t)size, (size_t)align, 0, 0);
    vs_cuda_leave(dev, &scope);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&dev->cuda->api, r, "cuMemAddressReserve");
    *out = (vs_devptr_t)va;
    return VS_OK;
}

vs_status vs_cuda_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.MemAddressFree((CUdeviceptr)va, (size_t)size);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuMemAddressFree");
}

vs_status vs_cuda_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out)
{
    if (!dev || !out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda *c = dev->cuda;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = c->cuda_ordinal[dev->ordinal];
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUmemGenericAllocationHandle h = 0;
    /* Note [Own calls bypass the hooks]: our chunks are counted as weights or
     * scratch by the core, never as intercepted allocations. */
    vs_cuda_guard_enter();
    CUresult r = VS_CUDA_HOOKED_ENTRY(c, MemCreate)(&h, (size_t)size, &prop, 0);
    vs_cuda_guard_leave();
    vs_cuda_leave(dev, &scope);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&c->api, r, "cuMemCreate");
    if (h == 0) {
        vs_backend_log(VS_LOG_ERROR, "cuda: cuMemCreate returned a zero handle");
        return VS_ERR_BACKEND;
    }
    *out = (vs_bphys *)(uintptr_t)h;
    return VS_OK;
}

vs_status vs_cuda_phys_release(vs_bdev *dev, vs_bphys *chunk)
{
    if (!dev || !chunk)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda *c = dev->cuda;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    vs_cuda_guard_enter();
    CUresult r = VS_CUDA_HOOKED_ENTRY(c, MemRelease)(chunk_handle(chunk));
    vs_cuda_guard_leave();
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&c->api, r, "cuMemRelease");
}

vs_status vs_cuda_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk)
{
    if (!dev || !va || size == 0 || !chunk)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.MemMap((CUdeviceptr)va, (size_t)size, 0, chunk_handle(chunk), 0);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuMemMap");
}

vs_status vs_cuda_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    CUmemAccessDesc desc;
    memset(&desc, 0, sizeof desc);
    desc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    desc.location.id = dev->cuda->cuda_ordinal[dev->ordinal];
    desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.MemSetAccess((CUdeviceptr)va, (size_t)size, &desc, 1);
    vs_cuda_leave(dev, &scope);
    /* CUDA_ERROR_NOT_READY here is the transient failure seen after forced
     * evictions; the core retries it (Note [CUDA result mapping]). */
    return vs_cuda_result(&dev->cuda->api, r, "cuMemSetAccess");
}

vs_status vs_cuda_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.MemUnmap((CUdeviceptr)va, (size_t)size);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuMemUnmap");
}

vs_status vs_cuda_host_register(vs_bdev *dev, void *ptr, uint64_t size)
{
    if (!dev || !ptr || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    /* PORTABLE: pinned for every context, so one host buffer can feed any device. */
    CUresult r = dev->cuda->api.MemHostRegister(ptr, (size_t)size, CU_MEMHOSTREGISTER_PORTABLE);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuMemHostRegister");
}

vs_status vs_cuda_host_unregister(vs_bdev *dev, void *ptr)
{
    if (!dev || !ptr)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(dev, &scope);
    if (st != VS_OK)
        return st;
    CUresult r = dev->cuda->api.MemHostUnregister(ptr);
    vs_cuda_leave(dev, &scope);
    return vs_cuda_result(&dev->cuda->api, r, "cuMemHostUnregister");
}
