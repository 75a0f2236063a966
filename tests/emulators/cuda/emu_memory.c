/* Emulator memory: VMM (reserve, create, map, access, unmap), the allocation
 * entry points the CUDA backend hooks, host registration and memory info.
 *
 * Note [Patchable emulator entry points]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * The hook tests patch these functions' code exactly as vramswap patches the
 * real libcuda. So each hooked entry point (cuMemAlloc_v2, cuMemFree_v2,
 * cuMemAllocAsync[_ptsz], cuMemFreeAsync[_ptsz], cuMemAllocFromPoolAsync[_ptsz],
 * cuMemCreate, cuMemRelease) is an ordinary function with its own full body:
 * the shared logic is force-inlined (never a 5-byte tail jump to a helper),
 * and the library is built with -fno-ipa-icf so the _ptsz twins are never
 * folded into one function or a thunk; their bodies also differ (they count
 * per-thread-stream calls).
 */
#include <string.h>

#include "emu_cuda.h"

#define EMU_INLINE static inline __attribute__((always_inline))

/* Calls that came through the per-thread-default-stream variants. */
static uint64_t g_ptsz_calls;

EMU_API uint64_t vsemu_ptsz_calls(void)
{
    return __atomic_load_n(&g_ptsz_calls, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- granularity */

EMU_API CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                               CUmemAllocationGranularity_flags option)
{
    simdev_t *sd;
    simdev_props p;
    if (!granularity || !prop || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(prop->location.id, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r != CUDA_SUCCESS)
        return r;
    if (option == CU_MEM_ALLOC_GRANULARITY_MINIMUM)
        *granularity = (size_t)p.granularity;
    else if (option == CU_MEM_ALLOC_GRANULARITY_RECOMMENDED)
        *granularity = (size_t)p.preferred_page_size;
    else
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- address space */

EMU_API CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment,
                                     CUdeviceptr addr, unsigned long long flags)
{
    simdev_t *sd;
    emu_ctx *ctx;
    if (!ptr || size == 0 || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    (void)addr; /* a hint; simdev picks the address */
    /* CUDA's address space is process-wide; the emulator reserves in the
     * current context's device (device 0 without one). */
    CUresult r = emu_current(&ctx);
    if (r == CUDA_SUCCESS)
        sd = ctx->sd;
    else if ((r = emu_device(0, &sd)) != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_VA_RESERVE)) != CUDA_SUCCESS)
        return r;
    uint64_t va = 0;
    r = emu_result(simdev_va_reserve(sd, size, alignment, &va));
    if (r == CUDA_SUCCESS)
        *ptr = (CUdeviceptr)va;
    return r;
}

EMU_API CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    CUresult r = emu_device(emu_owner(ptr, SIMDEV_RANGE_RESERVED), &sd);
    if (r != CUDA_SUCCESS || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = emu_injected(VS_SIM_OP_VA_FREE)) != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_va_free(sd, ptr, size));
}

/* ---------------------------------------------------------------- physical memory */

EMU_API CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                             const CUmemAllocationProp *prop, unsigned long long flags)
{
    simdev_t *sd;
    if (!handle || !prop || size == 0 || flags != 0 ||
        prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(prop->location.id, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_PHYS_CREATE)) != CUDA_SUCCESS)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_phys_create(sd, size, &h));
    if (r == CUDA_SUCCESS)
        *handle = (CUmemGenericAllocationHandle)h;
    return r;
}

EMU_API CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (emu_device(simdev_handle_ordinal(handle), &sd) != CUDA_SUCCESS)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_injected(VS_SIM_OP_PHYS_RELEASE);
    if (r != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_phys_release(sd, handle));
}

EMU_API CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop,
                                                        CUmemGenericAllocationHandle handle)
{
    simdev_t *sd;
    if (!prop)
        return CUDA_ERROR_INVALID_VALUE;
    int ord = simdev_handle_ordinal(handle);
    CUresult r = emu_device(ord, &sd);
    if (r != CUDA_SUCCESS)
        return r == CUDA_ERROR_INVALID_DEVICE ? CUDA_ERROR_INVALID_VALUE : r;
    memset(prop, 0, sizeof *prop);
    prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop->location.id = ord;
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- mappings */

EMU_API CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                          CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    int owner = emu_owner(ptr, SIMDEV_RANGE_RESERVED);
    if (flags != 0 || size == 0 || owner < 0 || simdev_handle_ordinal(handle) != owner)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(owner, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_MAP)) != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_map(sd, ptr, size, handle, offset));
}

EMU_API CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,
                                size_t count)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    int owner = emu_owner(ptr, SIMDEV_RANGE_RESERVED);
    if (!desc || count == 0 || size == 0 || owner < 0)
        return CUDA_ERROR_INVALID_VALUE;
    int access = SIMDEV_ACCESS_NONE;
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE)
            return CUDA_ERROR_INVALID_VALUE;
        if (desc[i].location.id != owner)
            return CUDA_ERROR_NOT_SUPPORTED; /* peer access is not emulated */
        if (desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
            access = SIMDEV_ACCESS_RW;
        else if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
            return CUDA_ERROR_NOT_SUPPORTED;
    }
    CUresult r = emu_device(owner, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_SET_ACCESS)) != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_set_access(sd, ptr, size, access));
}

EMU_API CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    int owner = emu_owner(ptr, SIMDEV_RANGE_RESERVED);
    if (size == 0 || owner < 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(owner, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_UNMAP)) != CUDA_SUCCESS)
        return r;
    return emu_result(simdev_unmap(sd, ptr, size));
}

/* ---------------------------------------------------------------- allocations */

EMU_INLINE CUresult alloc_on(simdev_t *sd, CUdeviceptr *dptr, size_t size)
{
    CUresult r = emu_injected(VS_SIM_OP_ALLOC);
    if (r != CUDA_SUCCESS)
        return r;
    uint64_t p = 0;
    r = emu_result(simdev_malloc(sd, size, &p));
    if (r == CUDA_SUCCESS)
        *dptr = (CUdeviceptr)p;
    return r;
}

EMU_INLINE CUresult free_ptr(CUdeviceptr ptr)
{
    simdev_t *sd;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (emu_device(emu_owner(ptr, SIMDEV_RANGE_ALLOCATION), &sd) != CUDA_SUCCESS)
        return CUDA_ERROR_INVALID_VALUE;
    return emu_result(simdev_free(sd, ptr));
}

EMU_INLINE CUresult alloc_async(CUdeviceptr *dptr, size_t size, CUstream stream, int ptsz)
{
    simdev_t *sd;
    simdev_handle h;
    if (!dptr || size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_stream(stream, &sd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    if (ptsz)
        __atomic_add_fetch(&g_ptsz_calls, 1, __ATOMIC_RELAXED);
    return alloc_on(sd, dptr, size);
}

/* Stream-ordered free, emulated by waiting for the stream first. */
EMU_INLINE CUresult free_async(CUdeviceptr ptr, CUstream stream, int ptsz)
{
    simdev_t *sd;
    simdev_handle h;
    CUresult r = emu_stream(stream, &sd, &h);
    if (r != CUDA_SUCCESS)
        return r;
    if (ptsz)
        __atomic_add_fetch(&g_ptsz_calls, 1, __ATOMIC_RELAXED);
    (void)simdev_stream_synchronize(sd, h);
    return free_ptr(ptr);
}

EMU_API CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    emu_ctx *ctx;
    if (!dptr || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    return alloc_on(ctx->sd, dptr, bytesize);
}

EMU_API CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    return free_ptr(dptr);
}

EMU_API CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return alloc_async(dptr, bytesize, hStream, 0);
}

EMU_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    return alloc_async(dptr, bytesize, hStream, 1);
}

EMU_API CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    return free_async(dptr, hStream, 0);
}

EMU_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream)
{
    return free_async(dptr, hStream, 1);
}

EMU_API CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                         CUstream hStream)
{
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_async(dptr, bytesize, hStream, 0);
}

EMU_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                              CUmemoryPool pool, CUstream hStream)
{
    if (!pool)
        return CUDA_ERROR_INVALID_VALUE;
    return alloc_async(dptr, bytesize, hStream, 1);
}

EMU_API CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
    if (!data)
        return CUDA_ERROR_INVALID_VALUE;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (attribute != CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL)
        return CUDA_ERROR_INVALID_VALUE;
    int ord = emu_owner(ptr, SIMDEV_RANGE_ALLOCATION);
    if (ord < 0)
        ord = emu_owner(ptr, SIMDEV_RANGE_RESERVED);
    if (ord < 0)
        return CUDA_ERROR_INVALID_VALUE;
    *(int *)data = ord;
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- host memory, info */

EMU_API CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int flags)
{
    emu_ctx *ctx;
    if (!p || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    (void)flags; /* PORTABLE/DEVICEMAP...: registered with the current device */
    if ((r = emu_injected(VS_SIM_OP_HOST_REGISTER)) != CUDA_SUCCESS)
        return r;
    vs_status st = simdev_host_register(ctx->sd, p, bytesize);
    return st == VS_ERR_BUSY ? CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED : emu_result(st);
}

EMU_API CUresult cuMemHostUnregister(void *p)
{
    simdev_t *sd;
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    for (int i = 0; emu_device(i, &sd) == CUDA_SUCCESS; i++)
        if (simdev_host_is_registered(sd, p, 1) == VS_OK)
            return simdev_host_unregister(sd, p) == VS_OK ? CUDA_SUCCESS
                                                          : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

EMU_API CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes)
{
    emu_ctx *ctx;
    if (!free_bytes || !total_bytes)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = emu_injected(VS_SIM_OP_MEM_INFO)) != CUDA_SUCCESS)
        return r;
    uint64_t fr = 0, tot = 0;
    r = emu_result(simdev_mem_info(ctx->sd, &fr, &tot));
    if (r == CUDA_SUCCESS) {
        *free_bytes = (size_t)fr;
        *total_bytes = (size_t)tot;
    }
    return r;
}
