/* The driver's only exported entry points: the DDI table getters the Level
 * Zero loader calls (ze_ddi.h, zes_ddi.h, zet_ddi.h).
 *
 * Note [What the loader needs from a driver]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Debian's loader (libze1 1.8, spec 1.4) at the first zeInit:
 *  1. dlopens every library named in ZE_ENABLE_ALT_DRIVERS (comma separated;
 *     it replaces the built-in list libze_intel_gpu.so.1, libze_intel_vpu.so.1)
 *     with RTLD_LAZY | RTLD_LOCAL;
 *  2. fills its tables by calling, for every driver, each zeGet*ProcAddrTable,
 *     zetGet*ProcAddrTable and zesGet*ProcAddrTable with its spec version
 *     (1.4). Found by trial, leaving one getter out at a time: every core ze
 *     getter (Sampler and Image included) and every zes and zet getter is
 *     required -- one missing makes zeInit answer ZE_RESULT_ERROR_UNINITIALIZED
 *     before the driver's own zeInit is even called; the ze *Exp getters
 *     (DeviceExp, EventExp, ImageExp, KernelExp, FabricVertexExp) are optional;
 *  3. calls each driver's global pfnInit(flags) and drops the drivers that
 *     fail; with a single driver its result is zeInit's result.
 * With one driver and ZE_ENABLE_LOADER_INTERCEPT unset, the loader hands the
 * driver's tables to its exported functions as they are (handles pass through
 * untranslated); with several drivers, or the variable set, it wraps every
 * handle in its own objects and translates them on each call.
 * A getter answers ZE_RESULT_ERROR_UNSUPPORTED_VERSION for another major
 * version, fills what this driver implements, and leaves the rest of the
 * table alone (the loader's tables start zeroed; a NULL entry makes the
 * loader's export answer ZE_RESULT_ERROR_UNSUPPORTED_FEATURE).
 */
#include <level_zero/ze_ddi.h>
#include <level_zero/zes_ddi.h>
#include <level_zero/zet_ddi.h>

#include "emu_ze.h"

#define EMU_CHECK_TABLE(version, table)                  \
    do {                                                 \
        if (!(table))                                    \
            return ZE_RESULT_ERROR_INVALID_NULL_POINTER; \
        if (ZE_MAJOR_VERSION(version) != 1)              \
            return ZE_RESULT_ERROR_UNSUPPORTED_VERSION;  \
    } while (0)

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetGlobalProcAddrTable(ze_api_version_t version,
                                                             ze_global_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnInit = emu_zeInit;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetDriverProcAddrTable(ze_api_version_t version,
                                                             ze_driver_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnGet = emu_zeDriverGet;
    t->pfnGetApiVersion = emu_zeDriverGetApiVersion;
    t->pfnGetProperties = emu_zeDriverGetProperties;
    t->pfnGetExtensionProperties = emu_zeDriverGetExtensionProperties;
    t->pfnGetExtensionFunctionAddress = emu_zeDriverGetExtensionFunctionAddress;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetDeviceProcAddrTable(ze_api_version_t version,
                                                             ze_device_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnGet = emu_zeDeviceGet;
    t->pfnGetSubDevices = emu_zeDeviceGetSubDevices;
    t->pfnGetProperties = emu_zeDeviceGetProperties;
    t->pfnGetCommandQueueGroupProperties = emu_zeDeviceGetCommandQueueGroupProperties;
    t->pfnGetMemoryProperties = emu_zeDeviceGetMemoryProperties;
    t->pfnGetStatus = emu_zeDeviceGetStatus;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetContextProcAddrTable(ze_api_version_t version,
                                                              ze_context_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnCreate = emu_zeContextCreate;
    t->pfnCreateEx = emu_zeContextCreateEx;
    t->pfnDestroy = emu_zeContextDestroy;
    t->pfnGetStatus = emu_zeContextGetStatus;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetCommandListProcAddrTable(ze_api_version_t version,
                                                                  ze_command_list_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnCreate = emu_zeCommandListCreate;
    t->pfnCreateImmediate = emu_zeCommandListCreateImmediate;
    t->pfnDestroy = emu_zeCommandListDestroy;
    t->pfnAppendBarrier = emu_zeCommandListAppendBarrier;
    t->pfnAppendMemoryCopy = emu_zeCommandListAppendMemoryCopy;
    t->pfnAppendSignalEvent = emu_zeCommandListAppendSignalEvent;
    t->pfnAppendWaitOnEvents = emu_zeCommandListAppendWaitOnEvents;
    t->pfnAppendEventReset = emu_zeCommandListAppendEventReset;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetEventPoolProcAddrTable(ze_api_version_t version,
                                                                ze_event_pool_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnCreate = emu_zeEventPoolCreate;
    t->pfnDestroy = emu_zeEventPoolDestroy;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetEventProcAddrTable(ze_api_version_t version,
                                                            ze_event_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnCreate = emu_zeEventCreate;
    t->pfnDestroy = emu_zeEventDestroy;
    t->pfnHostSignal = emu_zeEventHostSignal;
    t->pfnHostSynchronize = emu_zeEventHostSynchronize;
    t->pfnQueryStatus = emu_zeEventQueryStatus;
    t->pfnHostReset = emu_zeEventHostReset;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetMemProcAddrTable(ze_api_version_t version,
                                                          ze_mem_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnAllocShared = emu_zeMemAllocShared;
    t->pfnAllocDevice = emu_zeMemAllocDevice;
    t->pfnAllocHost = emu_zeMemAllocHost;
    t->pfnFree = emu_zeMemFree;
    t->pfnGetAllocProperties = emu_zeMemGetAllocProperties;
    t->pfnGetAddressRange = emu_zeMemGetAddressRange;
    t->pfnFreeExt = emu_zeMemFreeExt;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetPhysicalMemProcAddrTable(ze_api_version_t version,
                                                                  ze_physical_mem_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnCreate = emu_zePhysicalMemCreate;
    t->pfnDestroy = emu_zePhysicalMemDestroy;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zeGetVirtualMemProcAddrTable(ze_api_version_t version,
                                                                 ze_virtual_mem_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnReserve = emu_zeVirtualMemReserve;
    t->pfnFree = emu_zeVirtualMemFree;
    t->pfnQueryPageSize = emu_zeVirtualMemQueryPageSize;
    t->pfnMap = emu_zeVirtualMemMap;
    t->pfnUnmap = emu_zeVirtualMemUnmap;
    t->pfnSetAccessAttribute = emu_zeVirtualMemSetAccessAttribute;
    t->pfnGetAccessAttribute = emu_zeVirtualMemGetAccessAttribute;
    return ZE_RESULT_SUCCESS;
}

/* Sysman: memory modules only. */
ZE_DLLEXPORT ze_result_t ZE_APICALL zesGetDeviceProcAddrTable(ze_api_version_t version,
                                                              zes_device_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnEnumMemoryModules = emu_zesDeviceEnumMemoryModules;
    return ZE_RESULT_SUCCESS;
}

ZE_DLLEXPORT ze_result_t ZE_APICALL zesGetMemoryProcAddrTable(ze_api_version_t version,
                                                              zes_memory_dditable_t *t)
{
    EMU_CHECK_TABLE(version, t);
    t->pfnGetProperties = emu_zesMemoryGetProperties;
    t->pfnGetState = emu_zesMemoryGetState;
    return ZE_RESULT_SUCCESS;
}

/* Tables of features the emulator does not have: present (the loader needs
 * every getter, Note [What the loader needs from a driver]) and empty. */
#define EMU_EMPTY_TABLE(getter, type)                                                  \
    ZE_DLLEXPORT ze_result_t ZE_APICALL getter(ze_api_version_t version, type *t)      \
    {                                                                                  \
        EMU_CHECK_TABLE(version, t);                                                   \
        return ZE_RESULT_SUCCESS;                                                      \
    }

EMU_EMPTY_TABLE(zeGetCommandQueueProcAddrTable, ze_command_queue_dditable_t)
EMU_EMPTY_TABLE(zeGetDeviceExpProcAddrTable, ze_device_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetEventExpProcAddrTable, ze_event_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetFabricEdgeExpProcAddrTable, ze_fabric_edge_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetFabricVertexExpProcAddrTable, ze_fabric_vertex_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetFenceProcAddrTable, ze_fence_dditable_t)
EMU_EMPTY_TABLE(zeGetImageProcAddrTable, ze_image_dditable_t)
EMU_EMPTY_TABLE(zeGetImageExpProcAddrTable, ze_image_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetKernelProcAddrTable, ze_kernel_dditable_t)
EMU_EMPTY_TABLE(zeGetKernelExpProcAddrTable, ze_kernel_exp_dditable_t)
EMU_EMPTY_TABLE(zeGetModuleProcAddrTable, ze_module_dditable_t)
EMU_EMPTY_TABLE(zeGetModuleBuildLogProcAddrTable, ze_module_build_log_dditable_t)
EMU_EMPTY_TABLE(zeGetSamplerProcAddrTable, ze_sampler_dditable_t)

EMU_EMPTY_TABLE(zesGetDiagnosticsProcAddrTable, zes_diagnostics_dditable_t)
EMU_EMPTY_TABLE(zesGetDriverProcAddrTable, zes_driver_dditable_t)
EMU_EMPTY_TABLE(zesGetEngineProcAddrTable, zes_engine_dditable_t)
EMU_EMPTY_TABLE(zesGetFabricPortProcAddrTable, zes_fabric_port_dditable_t)
EMU_EMPTY_TABLE(zesGetFanProcAddrTable, zes_fan_dditable_t)
EMU_EMPTY_TABLE(zesGetFirmwareProcAddrTable, zes_firmware_dditable_t)
EMU_EMPTY_TABLE(zesGetFrequencyProcAddrTable, zes_frequency_dditable_t)
EMU_EMPTY_TABLE(zesGetLedProcAddrTable, zes_led_dditable_t)
EMU_EMPTY_TABLE(zesGetPerformanceFactorProcAddrTable, zes_performance_factor_dditable_t)
EMU_EMPTY_TABLE(zesGetPowerProcAddrTable, zes_power_dditable_t)
EMU_EMPTY_TABLE(zesGetPsuProcAddrTable, zes_psu_dditable_t)
EMU_EMPTY_TABLE(zesGetRasProcAddrTable, zes_ras_dditable_t)
EMU_EMPTY_TABLE(zesGetSchedulerProcAddrTable, zes_scheduler_dditable_t)
EMU_EMPTY_TABLE(zesGetStandbyProcAddrTable, zes_standby_dditable_t)
EMU_EMPTY_TABLE(zesGetTemperatureProcAddrTable, zes_temperature_dditable_t)

EMU_EMPTY_TABLE(zetGetCommandListProcAddrTable, zet_command_list_dditable_t)
EMU_EMPTY_TABLE(zetGetContextProcAddrTable, zet_context_dditable_t)
EMU_EMPTY_TABLE(zetGetDebugProcAddrTable, zet_debug_dditable_t)
EMU_EMPTY_TABLE(zetGetDeviceProcAddrTable, zet_device_dditable_t)
EMU_EMPTY_TABLE(zetGetKernelProcAddrTable, zet_kernel_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricGroupExpProcAddrTable, zet_metric_group_exp_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricGroupProcAddrTable, zet_metric_group_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricProcAddrTable, zet_metric_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricQueryPoolProcAddrTable, zet_metric_query_pool_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricQueryProcAddrTable, zet_metric_query_dditable_t)
EMU_EMPTY_TABLE(zetGetMetricStreamerProcAddrTable, zet_metric_streamer_dditable_t)
EMU_EMPTY_TABLE(zetGetModuleProcAddrTable, zet_module_dditable_t)
EMU_EMPTY_TABLE(zetGetTracerExpProcAddrTable, zet_tracer_exp_dditable_t)
