/* The HIP runtime entry points the backend uses, listed once.
 *
 * Note [HIP runtime table]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: libvramswap never links libamdhip64 (a machine without ROCm must
 * still load it) and must reach the very runtime the application uses: the copy
 * torch's ROCm build already loaded, whatever its soname (.so.5, .6, .7).
 *
 * Approach: the runtime is opened at run time (hip_api.c) and every entry point
 * is taken with dlsym, which returns the default version of HIP's versioned
 * symbols (hipMalloc@@hip_4.2, hipMemCreate@@hip_5.1, ...). Unlike CUDA there
 * is no per-ABI lookup: HIP keeps one signature per name, and every prototype
 * below has kept its signature from ROCm 5.1 (the first with the VMM API) to
 * ROCm 7. Each list entry is _(field, "symbol", prototype): the table field,
 * the exported name, and the declaration in <hip/hip_runtime_api.h> whose type
 * the pointer has. The lists generate the table struct and the loader; no
 * other file names a runtime symbol.
 *
 * - VS_HIP_REQUIRED: missing one makes the backend unavailable.
 * - VS_HIP_OPTIONAL: may be NULL (older runtimes); callers check.
 *
 * Every pointer is a hidden field of a struct: libvramswap exports no hip*
 * symbol (exported driver symbols shadowing the real ones crashed processes
 * that used comfy-aimdo).
 */
#ifndef VS_HIP_API_H
#define VS_HIP_API_H

#include <stddef.h>

#include <hip/hip_runtime_api.h>

#include "vramswap/backend.h"

#define VS_HIP_REQUIRED(_)                                                     \
    _(GetErrorName, "hipGetErrorName", hipGetErrorName)                        \
    _(GetErrorString, "hipGetErrorString", hipGetErrorString)                  \
    _(Init, "hipInit", hipInit)                                                \
    _(RuntimeGetVersion, "hipRuntimeGetVersion", hipRuntimeGetVersion)         \
    _(GetDeviceCount, "hipGetDeviceCount", hipGetDeviceCount)                  \
    _(GetDevice, "hipGetDevice", hipGetDevice)                                 \
    _(SetDevice, "hipSetDevice", hipSetDevice)                                 \
    _(DeviceGet, "hipDeviceGet", hipDeviceGet)                                 \
    _(DeviceGetName, "hipDeviceGetName", hipDeviceGetName)                     \
    _(DeviceTotalMem, "hipDeviceTotalMem", hipDeviceTotalMem)                  \
    _(DeviceGetAttribute, "hipDeviceGetAttribute", hipDeviceGetAttribute)      \
    _(MemGetInfo, "hipMemGetInfo", hipMemGetInfo)                              \
    _(MemGetAllocationGranularity, "hipMemGetAllocationGranularity",           \
      hipMemGetAllocationGranularity)                                          \
    _(MemAddressReserve, "hipMemAddressReserve", hipMemAddressReserve)         \
    _(MemAddressFree, "hipMemAddressFree", hipMemAddressFree)                  \
    _(MemCreate, "hipMemCreate", hipMemCreate)                                 \
    _(MemRelease, "hipMemRelease", hipMemRelease)                              \
    _(MemMap, "hipMemMap", hipMemMap)                                          \
    _(MemUnmap, "hipMemUnmap", hipMemUnmap)                                    \
    _(MemSetAccess, "hipMemSetAccess", hipMemSetAccess)                        \
    _(HostRegister, "hipHostRegister", hipHostRegister)                        \
    _(HostUnregister, "hipHostUnregister", hipHostUnregister)                  \
    _(StreamCreateWithFlags, "hipStreamCreateWithFlags", hipStreamCreateWithFlags) \
    _(StreamDestroy, "hipStreamDestroy", hipStreamDestroy)                     \
    _(StreamSynchronize, "hipStreamSynchronize", hipStreamSynchronize)         \
    _(StreamWaitEvent, "hipStreamWaitEvent", hipStreamWaitEvent)               \
    _(MemcpyAsync, "hipMemcpyAsync", hipMemcpyAsync)                           \
    _(EventCreateWithFlags, "hipEventCreateWithFlags", hipEventCreateWithFlags) \
    _(EventRecord, "hipEventRecord", hipEventRecord)                           \
    _(EventQuery, "hipEventQuery", hipEventQuery)                              \
    _(EventSynchronize, "hipEventSynchronize", hipEventSynchronize)            \
    _(EventDestroy, "hipEventDestroy", hipEventDestroy)                        \
    _(Malloc, "hipMalloc", hipMalloc)                                          \
    _(Free, "hipFree", hipFree)

#define VS_HIP_OPTIONAL(_)                                                     \
    _(DriverGetVersion, "hipDriverGetVersion", hipDriverGetVersion)            \
    _(MallocAsync, "hipMallocAsync", hipMallocAsync)                           \
    _(FreeAsync, "hipFreeAsync", hipFreeAsync)                                 \
    _(ExtMallocWithFlags, "hipExtMallocWithFlags", hipExtMallocWithFlags)      \
    _(PointerGetAttribute, "hipPointerGetAttribute", hipPointerGetAttribute)

/* The table: one typed pointer per entry. Interception patches the code of the
 * allocation functions, not the table; the backend itself never calls them
 * (Note [HIP own calls] in hip_intercept.c). */
typedef struct vs_hip_api {
#define VS_HIP_FIELD_(field, symbol, proto) __typeof__(proto) *field;
    VS_HIP_REQUIRED(VS_HIP_FIELD_)
    VS_HIP_OPTIONAL(VS_HIP_FIELD_)
#undef VS_HIP_FIELD_
} vs_hip_api;

/* The loaded runtime library. */
typedef struct vs_hip_lib {
    void *handle;          /* dlopen handle; never closed (hooks and the runtime stay) */
    char path[256];        /* what was opened, for messages */
    int preloaded;         /* 1: the process had it loaded already (RTLD_NOLOAD found it) */
} vs_hip_lib;

/* Open libamdhip64 (the copy already in the process if any, else the first of
 * "libamdhip64.so", ".so.7", ".so.6", ".so.5" that loads, or $VRAMSWAP_LIBHIP
 * alone) and fill `api`. VS_ERR_NOT_SUPPORTED with a reason in `why` when the
 * library or a required entry point is missing. */
vs_status vs_hip_api_load(vs_hip_lib *lib, vs_hip_api *api, char *why, size_t why_len);

/* Turn a runtime result into a vs_status (Note [HIP result mapping] in
 * hip_api.c), logging failures with the runtime's name and text of the code. */
vs_status vs_hip_result(const vs_hip_api *api, hipError_t r, const char *what);

/* The runtime's name of a code ("hipErrorOutOfMemory"), never NULL. */
const char *vs_hip_error_name(const vs_hip_api *api, hipError_t r);

#endif /* VS_HIP_API_H */
