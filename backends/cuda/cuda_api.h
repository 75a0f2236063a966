/* The CUDA driver entry points the backend uses, listed once.
 *
 * Note [CUDA driver table]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: libvramswap never links libcuda (a machine without a GPU must still
 * load it) and must get exactly the versioned functions the CUDA runtime gets:
 * `cuMemAlloc` is really `cuMemAlloc_v2`, the per-thread-default-stream build of
 * torch calls `cuMemAllocAsync_ptsz`, and an ABI version the driver picks for us
 * could differ from the signatures we were compiled with.
 *
 * Approach: libcuda is opened at run time (cuda_api.c) and every entry point is
 * resolved through the driver's own cuGetProcAddress at a pinned ABI version
 * (VS_CUDA_ABI_VERSION), which returns the same function the runtime of that
 * version would call. Each list entry is _(field, "driver symbol", prototype):
 * the table field, the base name cuGetProcAddress knows, and the cuda.h
 * declaration whose type the pointer has (after cuda.h's _v2 renaming macros,
 * i.e. the current ABI of that symbol, which must be the one returned at
 * VS_CUDA_ABI_VERSION). The lists generate the table struct and the loader; no
 * other file names a driver symbol.
 *
 * - VS_CUDA_REQUIRED: missing one makes the backend unavailable.
 * - VS_CUDA_OPTIONAL: may be NULL (older drivers); callers check.
 * - VS_CUDA_OPTIONAL_PTSZ: per-thread-default-stream variants, resolved with
 *   CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM; only interception uses them
 *   (a driver may return the same function as the plain variant).
 *
 * Every pointer is a hidden field of a struct: libvramswap exports no cu*
 * symbol (exporting driver symbols into the process caused illegal-address
 * crashes in comfy-aimdo when they shadowed the real ones).
 */
#ifndef VS_CUDA_API_H
#define VS_CUDA_API_H

#include <stddef.h>

#include <cuda.h>

#include "vramswap/backend.h"

/* The driver ABI we ask cuGetProcAddress for: CUDA 12.0. Every prototype below
 * kept its signature from 12.0 to the headers we build with (13.x). */
#define VS_CUDA_ABI_VERSION 12000

#define VS_CUDA_REQUIRED(_)                                                    \
    _(GetErrorName, "cuGetErrorName", cuGetErrorName)                          \
    _(GetErrorString, "cuGetErrorString", cuGetErrorString)                    \
    _(Init, "cuInit", cuInit)                                                  \
    _(DriverGetVersion, "cuDriverGetVersion", cuDriverGetVersion)              \
    _(DeviceGet, "cuDeviceGet", cuDeviceGet)                                   \
    _(DeviceGetCount, "cuDeviceGetCount", cuDeviceGetCount)                    \
    _(DeviceGetName, "cuDeviceGetName", cuDeviceGetName)                       \
    _(DeviceTotalMem, "cuDeviceTotalMem", cuDeviceTotalMem_v2)                 \
    _(DeviceGetAttribute, "cuDeviceGetAttribute", cuDeviceGetAttribute)        \
    _(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain) \
    _(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease_v2) \
    _(CtxSetCurrent, "cuCtxSetCurrent", cuCtxSetCurrent)                       \
    _(CtxGetCurrent, "cuCtxGetCurrent", cuCtxGetCurrent)                       \
    _(CtxGetDevice, "cuCtxGetDevice", cuCtxGetDevice)                          \
    _(MemGetAllocationGranularity, "cuMemGetAllocationGranularity", cuMemGetAllocationGranularity) \
    _(MemAddressReserve, "cuMemAddressReserve", cuMemAddressReserve)          \
    _(MemAddressFree, "cuMemAddressFree", cuMemAddressFree)                    \
    _(MemCreate, "cuMemCreate", cuMemCreate)                                   \
    _(MemRelease, "cuMemRelease", cuMemRelease)                                \
    _(MemMap, "cuMemMap", cuMemMap)                                            \
    _(MemUnmap, "cuMemUnmap", cuMemUnmap)                                      \
    _(MemSetAccess, "cuMemSetAccess", cuMemSetAccess)                          \
    _(MemHostRegister, "cuMemHostRegister", cuMemHostRegister_v2)              \
    _(MemHostUnregister, "cuMemHostUnregister", cuMemHostUnregister)           \
    _(MemGetInfo, "cuMemGetInfo", cuMemGetInfo_v2)                             \
    _(MemAlloc, "cuMemAlloc", cuMemAlloc_v2)                                   \
    _(MemFree, "cuMemFree", cuMemFree_v2)                                      \
    _(StreamCreate, "cuStreamCreate", cuStreamCreate)                          \
    _(StreamDestroy, "cuStreamDestroy", cuStreamDestroy_v2)                    \
    _(StreamSynchronize, "cuStreamSynchronize", cuStreamSynchronize)           \
    _(StreamWaitEvent, "cuStreamWaitEvent", cuStreamWaitEvent)                 \
    _(MemcpyHtoDAsync, "cuMemcpyHtoDAsync", cuMemcpyHtoDAsync_v2)              \
    _(MemcpyDtoHAsync, "cuMemcpyDtoHAsync", cuMemcpyDtoHAsync_v2)              \
    _(MemcpyDtoDAsync, "cuMemcpyDtoDAsync", cuMemcpyDtoDAsync_v2)              \
    _(EventCreate, "cuEventCreate", cuEventCreate)                             \
    _(EventRecord, "cuEventRecord", cuEventRecord)                             \
    _(EventQuery, "cuEventQuery", cuEventQuery)                                \
    _(EventSynchronize, "cuEventSynchronize", cuEventSynchronize)              \
    _(EventDestroy, "cuEventDestroy", cuEventDestroy_v2)

#define VS_CUDA_OPTIONAL(_)                                                    \
    _(MemAllocAsync, "cuMemAllocAsync", cuMemAllocAsync)                       \
    _(MemFreeAsync, "cuMemFreeAsync", cuMemFreeAsync)                          \
    _(MemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", cuMemAllocFromPoolAsync) \
    _(PointerGetAttribute, "cuPointerGetAttribute", cuPointerGetAttribute)     \
    _(MemGetAllocationPropertiesFromHandle, "cuMemGetAllocationPropertiesFromHandle", \
      cuMemGetAllocationPropertiesFromHandle)

#define VS_CUDA_OPTIONAL_PTSZ(_)                                               \
    _(MemAllocAsync_ptsz, "cuMemAllocAsync", cuMemAllocAsync)                  \
    _(MemFreeAsync_ptsz, "cuMemFreeAsync", cuMemFreeAsync)                     \
    _(MemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync", cuMemAllocFromPoolAsync)

/* The table: one typed pointer per entry. Fields that interception patches are
 * swapped for the hook engine's trampolines while hooks are installed
 * (Note [Own calls bypass the hooks] in cuda_intercept.c), so calls through the
 * table always reach the driver's original code. */
typedef struct vs_cuda_api {
#define VS_CUDA_FIELD_(field, symbol, proto) __typeof__(proto) *field;
    VS_CUDA_REQUIRED(VS_CUDA_FIELD_)
    VS_CUDA_OPTIONAL(VS_CUDA_FIELD_)
    VS_CUDA_OPTIONAL_PTSZ(VS_CUDA_FIELD_)
#undef VS_CUDA_FIELD_
} vs_cuda_api;

/* The loaded driver library. */
typedef struct vs_cuda_lib {
    void *handle;          /* dlopen handle; never closed (hooks and the driver stay) */
    char path[256];        /* what was opened, for messages */
    int via_v2;            /* 1: resolved with cuGetProcAddress_v2, 0: the 11.x v1 */
} vs_cuda_lib;

/* Open libcuda (the copy already in the process if any, else "libcuda.so.1",
 * or $VRAMSWAP_LIBCUDA) and fill `api`. VS_ERR_NOT_SUPPORTED with a reason in
 * `why` when the library or a required entry point is missing. */
vs_status vs_cuda_api_load(vs_cuda_lib *lib, vs_cuda_api *api, char *why, size_t why_len);

/* Turn a driver result into a vs_status (Note [CUDA result mapping] in
 * cuda_api.c), logging failures with the driver's name and text of the code. */
vs_status vs_cuda_result(const vs_cuda_api *api, CUresult r, const char *what);

#endif /* VS_CUDA_API_H */
