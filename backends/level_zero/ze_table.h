/* The Level Zero entry points the backend uses, listed once.
 *
 * Note [Level Zero loader table]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: libvramswap never links libze_loader (a machine without Intel's
 * stack must still load it), and it must call exactly the functions that
 * PyTorch's XPU build (SYCL / Unified Runtime) calls: the loader's exported
 * ze* symbols, which dispatch to the GPU driver (libze_intel_gpu) through the
 * loader's DDI tables.
 *
 * Approach: the loader is opened at run time (ze_table.c) -- the copy already
 * in the process if any, else "libze_loader.so.1", or $VRAMSWAP_LIBZE -- and
 * every entry point is taken with dlsym. Unlike libcuda there is no versioned
 * lookup: Level Zero keeps one ABI per symbol and adds new symbols instead.
 * Each list entry is _(field, "symbol", function type): the table field, the
 * exported name, and its type (the prototype of the headers we build with,
 * Debian's libze-dev: spec 1.4, or our own typedef for the few newer ones).
 * The lists generate the table struct and the loader; no other file names a
 * loader symbol.
 *
 * - VS_ZE_REQUIRED: missing one makes the backend unavailable.
 * - VS_ZE_OPTIONAL: may be NULL (older loaders, no Sysman); callers check.
 *
 * Every pointer is a hidden field of a struct: libvramswap exports no ze*
 * symbol (a vramswap-exported zeMemAllocDevice would shadow the loader's).
 * Extension functions (zexDriverImportExternalPointer) are not in the loader's
 * export list; they are resolved per driver with
 * zeDriverGetExtensionFunctionAddress (ze_backend.c).
 */
#ifndef VS_ZE_TABLE_H
#define VS_ZE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <level_zero/ze_api.h>
#include <level_zero/zes_api.h>
#include <level_zero/loader/ze_loader.h>

#include "vramswap/backend.h"

/* Newer than the spec 1.4 headers we build with, used only when the driver
 * (or loader) has them. Values and signatures are the spec's. */
/* Spec 1.7: commands of the queue / immediate list execute in order. */
#define VS_ZE_COMMAND_QUEUE_FLAG_IN_ORDER ((ze_command_queue_flags_t)(1u << 1))
#define VS_ZE_API_VERSION_1_7 ZE_MAKE_VERSION(1, 7)
/* Spec 1.6: wait on the host until an immediate command list is idle. */
typedef ze_result_t vs_ze_CommandListHostSynchronize_t(ze_command_list_handle_t hCommandList,
                                                       uint64_t timeout);
/* Intel extension (zex): page-lock ("import") host memory for a driver. */
typedef ze_result_t vs_zex_DriverImportExternalPointer_t(ze_driver_handle_t hDriver, void *ptr,
                                                         size_t size);
typedef ze_result_t vs_zex_DriverReleaseImportedPointer_t(ze_driver_handle_t hDriver, void *ptr);

#define VS_ZE_REQUIRED(_)                                                                   \
    _(Init, "zeInit", __typeof__(zeInit))                                                   \
    _(DriverGet, "zeDriverGet", __typeof__(zeDriverGet))                                    \
    _(DriverGetApiVersion, "zeDriverGetApiVersion", __typeof__(zeDriverGetApiVersion))      \
    _(DriverGetExtensionFunctionAddress, "zeDriverGetExtensionFunctionAddress",             \
      __typeof__(zeDriverGetExtensionFunctionAddress))                                      \
    _(DeviceGet, "zeDeviceGet", __typeof__(zeDeviceGet))                                    \
    _(DeviceGetProperties, "zeDeviceGetProperties", __typeof__(zeDeviceGetProperties))      \
    _(DeviceGetMemoryProperties, "zeDeviceGetMemoryProperties",                             \
      __typeof__(zeDeviceGetMemoryProperties))                                              \
    _(DeviceGetCommandQueueGroupProperties, "zeDeviceGetCommandQueueGroupProperties",       \
      __typeof__(zeDeviceGetCommandQueueGroupProperties))                                   \
    _(ContextCreateEx, "zeContextCreateEx", __typeof__(zeContextCreateEx))                  \
    _(ContextDestroy, "zeContextDestroy", __typeof__(zeContextDestroy))                     \
    _(VirtualMemQueryPageSize, "zeVirtualMemQueryPageSize",                                 \
      __typeof__(zeVirtualMemQueryPageSize))                                                \
    _(VirtualMemReserve, "zeVirtualMemReserve", __typeof__(zeVirtualMemReserve))            \
    _(VirtualMemFree, "zeVirtualMemFree", __typeof__(zeVirtualMemFree))                     \
    _(PhysicalMemCreate, "zePhysicalMemCreate", __typeof__(zePhysicalMemCreate))            \
    _(PhysicalMemDestroy, "zePhysicalMemDestroy", __typeof__(zePhysicalMemDestroy))         \
    _(VirtualMemMap, "zeVirtualMemMap", __typeof__(zeVirtualMemMap))                        \
    _(VirtualMemUnmap, "zeVirtualMemUnmap", __typeof__(zeVirtualMemUnmap))                  \
    _(VirtualMemSetAccessAttribute, "zeVirtualMemSetAccessAttribute",                       \
      __typeof__(zeVirtualMemSetAccessAttribute))                                           \
    _(CommandListCreateImmediate, "zeCommandListCreateImmediate",                           \
      __typeof__(zeCommandListCreateImmediate))                                             \
    _(CommandListDestroy, "zeCommandListDestroy", __typeof__(zeCommandListDestroy))         \
    _(CommandListAppendMemoryCopy, "zeCommandListAppendMemoryCopy",                         \
      __typeof__(zeCommandListAppendMemoryCopy))                                            \
    _(CommandListAppendBarrier, "zeCommandListAppendBarrier",                               \
      __typeof__(zeCommandListAppendBarrier))                                               \
    _(CommandListAppendSignalEvent, "zeCommandListAppendSignalEvent",                       \
      __typeof__(zeCommandListAppendSignalEvent))                                           \
    _(CommandListAppendWaitOnEvents, "zeCommandListAppendWaitOnEvents",                     \
      __typeof__(zeCommandListAppendWaitOnEvents))                                          \
    _(EventPoolCreate, "zeEventPoolCreate", __typeof__(zeEventPoolCreate))                  \
    _(EventPoolDestroy, "zeEventPoolDestroy", __typeof__(zeEventPoolDestroy))               \
    _(EventCreate, "zeEventCreate", __typeof__(zeEventCreate))                              \
    _(EventDestroy, "zeEventDestroy", __typeof__(zeEventDestroy))                           \
    _(EventHostReset, "zeEventHostReset", __typeof__(zeEventHostReset))                     \
    _(EventHostSignal, "zeEventHostSignal", __typeof__(zeEventHostSignal))                  \
    _(EventHostSynchronize, "zeEventHostSynchronize", __typeof__(zeEventHostSynchronize))   \
    _(EventQueryStatus, "zeEventQueryStatus", __typeof__(zeEventQueryStatus))               \
    _(MemAllocDevice, "zeMemAllocDevice", __typeof__(zeMemAllocDevice))                     \
    _(MemAllocShared, "zeMemAllocShared", __typeof__(zeMemAllocShared))                     \
    _(MemFree, "zeMemFree", __typeof__(zeMemFree))                                          \
    _(MemGetAllocProperties, "zeMemGetAllocProperties", __typeof__(zeMemGetAllocProperties))

#define VS_ZE_OPTIONAL(_)                                                                   \
    _(MemFreeExt, "zeMemFreeExt", __typeof__(zeMemFreeExt))                                 \
    _(CommandListHostSynchronize, "zeCommandListHostSynchronize",                           \
      vs_ze_CommandListHostSynchronize_t)                                                   \
    _(LoaderTranslateHandle, "zelLoaderTranslateHandle", __typeof__(zelLoaderTranslateHandle)) \
    _(SysDeviceEnumMemoryModules, "zesDeviceEnumMemoryModules",                             \
      __typeof__(zesDeviceEnumMemoryModules))                                               \
    _(SysMemoryGetProperties, "zesMemoryGetProperties", __typeof__(zesMemoryGetProperties)) \
    _(SysMemoryGetState, "zesMemoryGetState", __typeof__(zesMemoryGetState))

/* The table: one typed pointer per entry. Fields that interception patches are
 * swapped for the hook engine's trampolines while hooks are installed
 * (Note [Own calls bypass the hooks] in ze_intercept.c), so calls through the
 * table always reach the loader's original code. */
typedef struct vs_ze_api {
#define VS_ZE_FIELD_(field, symbol, type) type *field;
    VS_ZE_REQUIRED(VS_ZE_FIELD_)
    VS_ZE_OPTIONAL(VS_ZE_FIELD_)
#undef VS_ZE_FIELD_
} vs_ze_api;

/* The loaded loader library. */
typedef struct vs_ze_lib {
    void *handle;          /* dlopen handle; never closed (hooks and drivers stay) */
    char path[256];        /* what was opened, for messages */
} vs_ze_lib;

/* Open the loader (the copy already in the process if any, else
 * "libze_loader.so.1", or $VRAMSWAP_LIBZE) and fill `api`. VS_ERR_NOT_SUPPORTED
 * with a reason in `why` when the library or a required entry point is missing. */
vs_status vs_ze_api_load(vs_ze_lib *lib, vs_ze_api *api, char *why, size_t why_len);

/* Turn a ze_result_t into a vs_status (Note [Level Zero result mapping] in
 * ze_table.c), logging failures with the result's name and value. */
vs_status vs_ze_result(ze_result_t r, const char *what);

/* "ZE_RESULT_ERROR_DEVICE_LOST" and the like; "ZE_RESULT_?" for unknown values. */
const char *vs_ze_result_name(ze_result_t r);

#endif /* VS_ZE_TABLE_H */
