/* The Level Zero driver emulator: a GPU driver for the real oneAPI loader,
 * for CI machines without an Intel GPU.
 *
 * It is a *driver*, not a loader: Debian's libze_loader.so.1 (libze1) loads it
 * exactly as it loads Intel's libze_intel_gpu.so.1, here through
 * ZE_ENABLE_ALT_DRIVERS=<path of this library>. The loader finds the driver's
 * entry points only through the exported zeGet*ProcAddrTable functions (every
 * ze, zes and zet table of spec 1.4: Debian's loader 1.8 refuses a driver that
 * lacks any of them), calls the driver's zeInit, and from then on the
 * application's zeXxx calls go loader export -> DDI table -> this driver.
 * Every other function here is hidden.
 *
 * What it implements, on the simulated device (backends/sim/simdev.h; device
 * addresses are host addresses): one driver with the simulated devices as GPU
 * root devices; contexts; virtual memory (reserve / query page size / physical
 * memory / map / unmap / access), with Intel's driver's size rules; USM device,
 * shared and host allocations; immediate command lists (simdev streams) with
 * copies, barriers, event signal/wait/reset; host-visible event pools and
 * events; Sysman memory modules (zesMemoryGetState) when ZES_ENABLE_SYSMAN=1 was
 * set at zeInit; and Intel's zexDriverImportExternalPointer extension.
 *
 * Configuration (read at zeInit)
 * - VRAMSWAP_SIM: the simulated devices (simdev_config_parse syntax:
 *   "devices:2,memory:512M,granularity:64K,page:2M"), unless simdev was
 *   configured already.
 * - VRAMSWAP_EMU_ZE: emulator knobs, comma separated:
 *     gpu:0          the driver has no GPU: zeInit(ZE_INIT_FLAG_GPU_ONLY) fails
 *                    with ZE_RESULT_ERROR_UNINITIALIZED (as an NPU-only driver
 *                    does), so the loader drops it and zeInit sees no GPU
 *     init:<code>    zeInit fails with this ze_result_t
 *     api:<M.m>      zeDriverGetApiVersion (default 1.4, the headers' version)
 *     vmm:<mask>     devices whose bit is set support virtual memory (default all);
 *                    the others answer ZE_RESULT_ERROR_UNSUPPORTED_FEATURE
 *     import:0       no zexDriverImportExternalPointer extension
 *     copyengine:0   no dedicated copy queue group (compute group only)
 *     resvpow2:1     older Intel drivers: the page size of an allocation is the
 *                    largest power of two not above its size, so reservation
 *                    sizes must be powers of two
 *     resvalign:<n>  reservations aligned to n bytes only (default: the page
 *                    size answered for their size, as Intel's driver does)
 *
 * Test-only exports (looked up with dlsym on this library; declared below):
 *   vsze_inject, vsze_inject_clear, vsze_calls, vsze_counters, vsze_objects,
 *   vsze_external_usage.
 *
 * Limitations (by design): one driver; no kernels, modules, images, fences or
 * regular (non-immediate) command lists; a context's reservations live on its
 * first device; all command lists execute in order; events are host-visible.
 */
#ifndef VS_EMU_ZE_H
#define VS_EMU_ZE_H

#include <pthread.h>
#include <stdint.h>

#include <level_zero/ze_api.h>
#include <level_zero/zes_api.h>

#include "simdev.h"

#define EMU_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- test-only API */

/* Live emulator objects (what leak checks compare to zero). */
typedef struct vsze_objects_t {
    uint64_t contexts;
    uint64_t command_lists;
    uint64_t event_pools;
    uint64_t events;
    uint64_t host_allocations;       /* zeMemAllocHost / shared without a device */
    uint64_t imported_pointers;      /* zexDriverImportExternalPointer */
} vsze_objects_t;

/* After `skip` good calls of `op` (vs_sim_op; VS_SIM_OP_ALLOC covers
 * zeMemAllocDevice and device-placed zeMemAllocShared), fail `count` calls with
 * `error`, on any device. count 0 disarms. */
EMU_API ze_result_t vsze_inject(int op, uint32_t skip, uint32_t count, ze_result_t error);
EMU_API ze_result_t vsze_inject_clear(void);
/* Calls of an op's entry points that passed validation (injected ones included). */
EMU_API uint64_t vsze_calls(int op);
/* simdev's counters of device `ordinal` (live objects, totals). */
EMU_API ze_result_t vsze_counters(int ordinal, vs_sim_counters *out);
EMU_API ze_result_t vsze_objects(vsze_objects_t *out);
/* Pretend another process uses `bytes` of device `ordinal` (seen by Sysman only). */
EMU_API ze_result_t vsze_external_usage(int ordinal, uint64_t bytes);

/* ---------------------------------------------------------------- internals */

#define EMU_MAGIC_DRIVER 0x7a647276u   /* "zdrv" */
#define EMU_MAGIC_DEVICE 0x7a646576u
#define EMU_MAGIC_CONTEXT 0x7a637478u
#define EMU_MAGIC_LIST 0x7a6c7374u
#define EMU_MAGIC_POOL 0x7a706f6cu
#define EMU_MAGIC_EVENT 0x7a65766eu
#define EMU_MAGIC_MEMMOD 0x7a6d656du

typedef struct emu_device {
    uint32_t magic;
    int ordinal;
    simdev_t *sd;
} emu_device;

typedef struct emu_context {
    uint32_t magic;
    int ndev;
    int dev[SIMDEV_MAX_DEVICES];      /* ordinals; dev[0] holds its reservations */
} emu_context;

typedef struct emu_list {
    uint32_t magic;
    emu_context *ctx;
    emu_device *device;
    simdev_handle stream;             /* the simdev stream that executes it */
} emu_list;

typedef struct emu_pool {
    uint32_t magic;
    emu_context *ctx;
    uint32_t count;                   /* events it can hold */
    uint32_t live;                    /* events created and not destroyed */
    uint8_t *used;                    /* [count]: index in use */
} emu_pool;

typedef struct emu_event {
    uint32_t magic;
    emu_pool *pool;
    uint32_t index;
    int signaled;                     /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} emu_event;

/* The emulator's process-wide state. */
typedef struct emu_state {
    pthread_mutex_t lock;             /* guards initialization and the counters below */
    int initialized;                  /* zeInit succeeded (atomic read) */
    int sysman;                       /* ZES_ENABLE_SYSMAN=1 at zeInit */
    int device_count;
    uint32_t magic_driver;            /* the driver handle points here */
    emu_device devices[SIMDEV_MAX_DEVICES];
    uint32_t memmod_magic[SIMDEV_MAX_DEVICES]; /* Sysman memory module handles */
    /* knobs (VRAMSWAP_EMU_ZE) */
    int no_gpu;
    ze_result_t init_error;
    ze_api_version_t api_version;
    unsigned long long vmm_mask;
    int no_import;
    int no_copy_engine;
    int resv_pow2;
    uint64_t resv_align;              /* 0: the page size of the reservation */
    /* live objects */
    vsze_objects_t objects;
} emu_state;

extern emu_state emu_g;

/* ze status helpers */
ze_result_t emu_result(vs_status st);
int emu_initialized(void);
/* Count a call of `op` and apply injection: ZE_RESULT_SUCCESS or the injected error. */
ze_result_t emu_injected(int op);
void emu_count(uint64_t *counter, int delta);

/* Handle checks: NULL when not a live object of this driver. */
emu_device *emu_dev(ze_device_handle_t h);
emu_context *emu_ctx(ze_context_handle_t h);
emu_list *emu_list_of(ze_command_list_handle_t h);
emu_event *emu_event_of(ze_event_handle_t h);
int emu_is_driver(ze_driver_handle_t h);
int emu_has_vmm(int ordinal);
/* The device owning a device address (any kind of range), -1 if none. */
int emu_owner(uint64_t ptr);
/* Page size the emulated driver wants for an allocation of `size` bytes. */
uint64_t emu_page_size(simdev_t *sd, uint64_t size);

/* Driver functions the tables point at (emu_driver.c, emu_memory.c,
 * emu_queue.c, emu_sysman.c); ze_ddi.h's function-pointer types check them. */
ze_result_t emu_zeInit(ze_init_flags_t flags);
ze_result_t emu_zeDriverGet(uint32_t *pCount, ze_driver_handle_t *phDrivers);
ze_result_t emu_zeDriverGetApiVersion(ze_driver_handle_t hDriver, ze_api_version_t *version);
ze_result_t emu_zeDriverGetProperties(ze_driver_handle_t hDriver, ze_driver_properties_t *p);
ze_result_t emu_zeDriverGetExtensionProperties(ze_driver_handle_t hDriver, uint32_t *pCount,
                                               ze_driver_extension_properties_t *p);
ze_result_t emu_zeDriverGetExtensionFunctionAddress(ze_driver_handle_t hDriver, const char *name,
                                                    void **ppFunctionAddress);
ze_result_t emu_zeDeviceGet(ze_driver_handle_t hDriver, uint32_t *pCount,
                            ze_device_handle_t *phDevices);
ze_result_t emu_zeDeviceGetSubDevices(ze_device_handle_t hDevice, uint32_t *pCount,
                                      ze_device_handle_t *phSubdevices);
ze_result_t emu_zeDeviceGetProperties(ze_device_handle_t hDevice, ze_device_properties_t *p);
ze_result_t emu_zeDeviceGetMemoryProperties(ze_device_handle_t hDevice, uint32_t *pCount,
                                            ze_device_memory_properties_t *p);
ze_result_t emu_zeDeviceGetCommandQueueGroupProperties(ze_device_handle_t hDevice, uint32_t *pCount,
                                                       ze_command_queue_group_properties_t *p);
ze_result_t emu_zeDeviceGetStatus(ze_device_handle_t hDevice);
ze_result_t emu_zeContextCreate(ze_driver_handle_t hDriver, const ze_context_desc_t *desc,
                                ze_context_handle_t *phContext);
ze_result_t emu_zeContextCreateEx(ze_driver_handle_t hDriver, const ze_context_desc_t *desc,
                                  uint32_t numDevices, ze_device_handle_t *phDevices,
                                  ze_context_handle_t *phContext);
ze_result_t emu_zeContextDestroy(ze_context_handle_t hContext);
ze_result_t emu_zeContextGetStatus(ze_context_handle_t hContext);

ze_result_t emu_zeVirtualMemReserve(ze_context_handle_t hContext, const void *pStart, size_t size,
                                    void **pptr);
ze_result_t emu_zeVirtualMemFree(ze_context_handle_t hContext, const void *ptr, size_t size);
ze_result_t emu_zeVirtualMemQueryPageSize(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                          size_t size, size_t *pagesize);
ze_result_t emu_zePhysicalMemCreate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                    ze_physical_mem_desc_t *desc,
                                    ze_physical_mem_handle_t *phPhysicalMemory);
ze_result_t emu_zePhysicalMemDestroy(ze_context_handle_t hContext,
                                     ze_physical_mem_handle_t hPhysicalMemory);
ze_result_t emu_zeVirtualMemMap(ze_context_handle_t hContext, const void *ptr, size_t size,
                                ze_physical_mem_handle_t hPhysicalMemory, size_t offset,
                                ze_memory_access_attribute_t access);
ze_result_t emu_zeVirtualMemUnmap(ze_context_handle_t hContext, const void *ptr, size_t size);
ze_result_t emu_zeVirtualMemSetAccessAttribute(ze_context_handle_t hContext, const void *ptr,
                                               size_t size, ze_memory_access_attribute_t access);
ze_result_t emu_zeVirtualMemGetAccessAttribute(ze_context_handle_t hContext, const void *ptr,
                                               size_t size, ze_memory_access_attribute_t *access,
                                               size_t *outSize);
ze_result_t emu_zeMemAllocDevice(ze_context_handle_t hContext,
                                 const ze_device_mem_alloc_desc_t *device_desc, size_t size,
                                 size_t alignment, ze_device_handle_t hDevice, void **pptr);
ze_result_t emu_zeMemAllocShared(ze_context_handle_t hContext,
                                 const ze_device_mem_alloc_desc_t *device_desc,
                                 const ze_host_mem_alloc_desc_t *host_desc, size_t size,
                                 size_t alignment, ze_device_handle_t hDevice, void **pptr);
ze_result_t emu_zeMemAllocHost(ze_context_handle_t hContext, const ze_host_mem_alloc_desc_t *host_desc,
                               size_t size, size_t alignment, void **pptr);
ze_result_t emu_zeMemFree(ze_context_handle_t hContext, void *ptr);
ze_result_t emu_zeMemFreeExt(ze_context_handle_t hContext,
                             const ze_memory_free_ext_desc_t *pMemFreeDesc, void *ptr);
ze_result_t emu_zeMemGetAllocProperties(ze_context_handle_t hContext, const void *ptr,
                                        ze_memory_allocation_properties_t *pMemAllocProperties,
                                        ze_device_handle_t *phDevice);
ze_result_t emu_zeMemGetAddressRange(ze_context_handle_t hContext, const void *ptr, void **pBase,
                                     size_t *pSize);

ze_result_t emu_zeCommandListCreate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                    const ze_command_list_desc_t *desc,
                                    ze_command_list_handle_t *phCommandList);
ze_result_t emu_zeCommandListCreateImmediate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                             const ze_command_queue_desc_t *altdesc,
                                             ze_command_list_handle_t *phCommandList);
ze_result_t emu_zeCommandListDestroy(ze_command_list_handle_t hCommandList);
ze_result_t emu_zeCommandListAppendBarrier(ze_command_list_handle_t hCommandList,
                                           ze_event_handle_t hSignalEvent, uint32_t numWaitEvents,
                                           ze_event_handle_t *phWaitEvents);
ze_result_t emu_zeCommandListAppendMemoryCopy(ze_command_list_handle_t hCommandList, void *dstptr,
                                              const void *srcptr, size_t size,
                                              ze_event_handle_t hSignalEvent,
                                              uint32_t numWaitEvents,
                                              ze_event_handle_t *phWaitEvents);
ze_result_t emu_zeCommandListAppendSignalEvent(ze_command_list_handle_t hCommandList,
                                               ze_event_handle_t hEvent);
ze_result_t emu_zeCommandListAppendWaitOnEvents(ze_command_list_handle_t hCommandList,
                                                uint32_t numEvents, ze_event_handle_t *phEvents);
ze_result_t emu_zeCommandListAppendEventReset(ze_command_list_handle_t hCommandList,
                                              ze_event_handle_t hEvent);
ze_result_t emu_zeEventPoolCreate(ze_context_handle_t hContext, const ze_event_pool_desc_t *desc,
                                  uint32_t numDevices, ze_device_handle_t *phDevices,
                                  ze_event_pool_handle_t *phEventPool);
ze_result_t emu_zeEventPoolDestroy(ze_event_pool_handle_t hEventPool);
ze_result_t emu_zeEventCreate(ze_event_pool_handle_t hEventPool, const ze_event_desc_t *desc,
                              ze_event_handle_t *phEvent);
ze_result_t emu_zeEventDestroy(ze_event_handle_t hEvent);
ze_result_t emu_zeEventHostSignal(ze_event_handle_t hEvent);
ze_result_t emu_zeEventHostSynchronize(ze_event_handle_t hEvent, uint64_t timeout);
ze_result_t emu_zeEventQueryStatus(ze_event_handle_t hEvent);
ze_result_t emu_zeEventHostReset(ze_event_handle_t hEvent);

ze_result_t emu_zesDeviceEnumMemoryModules(zes_device_handle_t hDevice, uint32_t *pCount,
                                           zes_mem_handle_t *phMemory);
ze_result_t emu_zesMemoryGetProperties(zes_mem_handle_t hMemory, zes_mem_properties_t *pProperties);
ze_result_t emu_zesMemoryGetState(zes_mem_handle_t hMemory, zes_mem_state_t *pState);

#endif /* VS_EMU_ZE_H */
