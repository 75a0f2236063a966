/* The Level Zero backend: Intel GPUs (Arc, Data Center GPU Max, integrated
 * Xe) through the oneAPI Level Zero loader's virtual memory API
 * (zeVirtualMemReserve / zePhysicalMemCreate / zeVirtualMemMap).
 *
 * This file loads the loader, decides which devices to expose and opens them;
 * ze_vmm.c does address space, physical memory and host registration,
 * ze_stream.c command lists and copies, ze_event.c events, ze_intercept.c the
 * allocation hooks. docs/backends-level-zero.md describes the whole backend.
 *
 * Note [Level Zero devices]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * zeInit(ZE_INIT_FLAG_GPU_ONLY) makes the loader keep only GPU drivers (no
 * NPU/VPU). vramswap's ordinals number the root GPU devices of every driver,
 * driver by driver, in the loader's order (sub-devices / tiles are not
 * exposed: a root device spans its tiles). A device whose driver answers
 * ZE_RESULT_ERROR_UNSUPPORTED_FEATURE to zeVirtualMemQueryPageSize (builds or
 * platforms without virtual memory) is not exposed; when none is left, init
 * fails with VS_ERR_NOT_SUPPORTED and a reason, and the library runs without
 * this backend ("no offload").
 *
 * Each opened device gets its own context (zeContextCreateEx with that one
 * device), created at open and destroyed at close: every object of the device
 * (reservations, physical memory, event pools, command lists) lives in it, so
 * devices never share state and closing one leaves the others alone.
 *
 * Note [Level Zero free memory]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Core Level Zero has no free-memory query. Sysman does: zesMemoryGetState of
 * the device's memory modules (free and allocatable size, summed over the
 * modules located on the device, or over all of them for an integrated GPU
 * whose memory is system memory). Sysman answers through ze device handles
 * only when ZES_ENABLE_SYSMAN=1 was in the environment when the driver was
 * initialized, so init sets it (without overriding a value the user set)
 * before calling zeInit. It is too late when the application initialized
 * Level Zero before vramswap; and setenv() while other threads read the
 * environment is not thread-safe, so set ZES_ENABLE_SYSMAN=1 yourself (before
 * starting threads or importing torch) when you can.
 * Without Sysman the backend reports free = total - the bytes of physical
 * memory this backend holds on the device (its VBAR and scratch pages); the
 * core adds the intercepted allocations it counted itself, so the budget still
 * covers everything vramswap sees, but memory used by other processes, or
 * allocated in this one without interception, is invisible. For an integrated
 * GPU free is further capped by MemAvailable of /proc/meminfo.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "level_zero/ze_internal.h"

static vs_ze vs_ze_state;

vs_ze *vs_ze_instance(void)
{
    return &vs_ze_state;
}

int vs_ze_ordinal_of(const vs_ze *ze, ze_device_handle_t device)
{
    if (!device)
        return -1;
    for (int i = 0; i < ze->count; i++)
        if (ze->devices[i] == device)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- discovery */

/* Intel's host-pointer import extension of one driver, when present. */
static void find_extensions(vs_ze *ze, vs_ze_driver *drv)
{
    const vs_ze_api *api = &ze->api;
    void *imp = NULL, *rel = NULL;
    if (api->DriverGetExtensionFunctionAddress(drv->handle, "zexDriverImportExternalPointer",
                                               &imp) != ZE_RESULT_SUCCESS)
        imp = NULL;
    if (api->DriverGetExtensionFunctionAddress(drv->handle, "zexDriverReleaseImportedPointer",
                                               &rel) != ZE_RESULT_SUCCESS)
        rel = NULL;
    if (!imp || !rel)
        return;
    memcpy(&drv->import_ptr, &imp, sizeof imp);
    memcpy(&drv->release_ptr, &rel, sizeof rel);
    /* Extension functions are the driver's own: with the loader's handle
     * translation on (several drivers, or ZE_ENABLE_LOADER_INTERCEPT=1) they
     * need the driver's handle, not the loader's. */
    drv->ext_handle = drv->handle;
    void *native = NULL;
    if (api->LoaderTranslateHandle &&
        api->LoaderTranslateHandle(ZEL_HANDLE_DRIVER, drv->handle, &native) == ZE_RESULT_SUCCESS &&
        native)
        drv->ext_handle = (ze_driver_handle_t)native;
}

/* Does virtual memory work on this device? Asked through a throw-away context. */
static ze_result_t probe_vmm(vs_ze *ze, ze_driver_handle_t drv, ze_device_handle_t dev)
{
    const vs_ze_api *api = &ze->api;
    ze_context_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC};
    ze_context_handle_t ctx = NULL;
    ze_result_t r = api->ContextCreateEx(drv, &desc, 1, &dev, &ctx);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    size_t page = 0;
    r = api->VirtualMemQueryPageSize(ctx, dev, (size_t)VS_ZE_PAGE_SIZE_MIN, &page);
    (void)api->ContextDestroy(ctx);
    return r;
}

static void add_device(vs_ze *ze, uint32_t drv_index, ze_device_handle_t dev, int *without_vmm)
{
    const vs_ze_api *api = &ze->api;
    ze_device_properties_t p = {.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES};
    ze_result_t r = api->DeviceGetProperties(dev, &p);
    if (r != ZE_RESULT_SUCCESS) {
        vs_backend_log(VS_LOG_WARN, "level_zero: zeDeviceGetProperties: %s; device not used",
                       vs_ze_result_name(r));
        return;
    }
    if (p.type != ZE_DEVICE_TYPE_GPU)
        return;
    ze->gpu_count++;
    r = probe_vmm(ze, ze->drivers[drv_index].handle, dev);
    if (r != ZE_RESULT_SUCCESS) {
        (*without_vmm)++;
        vs_backend_log(VS_LOG_INFO, "level_zero: %s: no virtual memory (%s); not used", p.name,
                       vs_ze_result_name(r));
        return;
    }
    if (ze->count == VS_ZE_MAX_DEVICES) {
        vs_backend_log(VS_LOG_WARN, "level_zero: more than %d devices; %s not used",
                       VS_ZE_MAX_DEVICES, p.name);
        return;
    }
    ze->devices[ze->count] = dev;
    ze->driver_of[ze->count] = drv_index;
    ze->count++;
}

/* Every driver's root GPU devices (Note [Level Zero devices]). */
static vs_status discover(vs_ze *ze, char *why, size_t why_len)
{
    const vs_ze_api *api = &ze->api;
    uint32_t n = 0;
    ze_result_t r = api->DriverGet(&n, NULL);
    if (r != ZE_RESULT_SUCCESS || n == 0) {
        snprintf(why, why_len, "no Level Zero GPU driver (zeDriverGet: %s)", vs_ze_result_name(r));
        return VS_ERR_NO_DEVICE;
    }
    if (n > VS_ZE_MAX_DRIVERS) {
        vs_backend_log(VS_LOG_WARN, "level_zero: %u drivers, only the first %d are used", n,
                       VS_ZE_MAX_DRIVERS);
        n = VS_ZE_MAX_DRIVERS;
    }
    ze_driver_handle_t drivers[VS_ZE_MAX_DRIVERS];
    r = api->DriverGet(&n, drivers);
    if (r != ZE_RESULT_SUCCESS) {
        snprintf(why, why_len, "zeDriverGet failed: %s", vs_ze_result_name(r));
        return VS_ERR_NOT_SUPPORTED;
    }
    int without_vmm = 0;
    for (uint32_t i = 0; i < n; i++) {
        vs_ze_driver *drv = &ze->drivers[ze->ndrivers];
        memset(drv, 0, sizeof *drv);
        drv->handle = drivers[i];
        if (api->DriverGetApiVersion(drv->handle, &drv->api_version) != ZE_RESULT_SUCCESS)
            drv->api_version = ZE_API_VERSION_1_0;
        find_extensions(ze, drv);
        uint32_t ndev = 0;
        r = api->DeviceGet(drv->handle, &ndev, NULL);
        if (r != ZE_RESULT_SUCCESS || ndev == 0)
            continue;
        ze_device_handle_t *devs = calloc(ndev, sizeof *devs);
        if (!devs) {
            snprintf(why, why_len, "out of host memory");
            return VS_ERR_OUT_OF_MEMORY;
        }
        r = api->DeviceGet(drv->handle, &ndev, devs);
        uint32_t index = ze->ndrivers++;
        for (uint32_t d = 0; r == ZE_RESULT_SUCCESS && d < ndev; d++)
            add_device(ze, index, devs[d], &without_vmm);
        free(devs);
    }
    if (ze->count > 0)
        return VS_OK;
    if (ze->gpu_count == 0) {
        snprintf(why, why_len, "no Level Zero GPU device");
        return VS_ERR_NO_DEVICE;
    }
    snprintf(why, why_len, "%s of %d Level Zero GPU device(s) supports virtual memory",
             without_vmm == ze->gpu_count ? "none" : "no usable one", ze->gpu_count);
    return VS_ERR_NOT_SUPPORTED;
}

/* Note [Level Zero free memory]: ask for Sysman before the driver initializes. */
static void prepare_sysman(vs_ze *ze)
{
    const char *v = getenv("ZES_ENABLE_SYSMAN");
    if (!v) {
        if (setenv("ZES_ENABLE_SYSMAN", "1", 0) == 0)
            ze->sysman_set_by_us = 1;
        v = getenv("ZES_ENABLE_SYSMAN");
    }
    ze->sysman = v && strcmp(v, "1") == 0 && ze->api.SysDeviceEnumMemoryModules &&
                 ze->api.SysMemoryGetProperties && ze->api.SysMemoryGetState;
}

static vs_status ze_init(char *why, size_t why_len)
{
    char scratch[8];
    if (!why || !why_len) {
        why = scratch;
        why_len = sizeof scratch;
    }
    why[0] = '\0';
    vs_ze *ze = &vs_ze_state;
    memset(ze, 0, sizeof *ze);
    vs_status st = vs_ze_api_load(&ze->lib, &ze->api, why, why_len);
    if (st != VS_OK)
        return st;
    prepare_sysman(ze);
    ze_result_t r = ze->api.Init(ZE_INIT_FLAG_GPU_ONLY);
    if (r != ZE_RESULT_SUCCESS) {
        /* The loader answers UNINITIALIZED when it found no driver, or no
         * driver that accepted GPU_ONLY. */
        snprintf(why, why_len, "zeInit(ZE_INIT_FLAG_GPU_ONLY) failed: %s (0x%x)%s",
                 vs_ze_result_name(r), (unsigned)r,
                 r == ZE_RESULT_ERROR_UNINITIALIZED ? ": no Level Zero GPU driver" : "");
        return r == ZE_RESULT_ERROR_UNINITIALIZED ? VS_ERR_NO_DEVICE : VS_ERR_NOT_SUPPORTED;
    }
    st = discover(ze, why, why_len);
    if (st != VS_OK) {
        ze->count = 0;
        return st;
    }
    vs_backend_log(VS_LOG_INFO, "level_zero: %s, %u driver(s), %d GPU device(s) with virtual memory%s",
                   ze->lib.path, ze->ndrivers, ze->count,
                   ze->sysman ? (ze->sysman_set_by_us ? ", Sysman (ZES_ENABLE_SYSMAN=1 set by vramswap)"
                                                      : ", Sysman")
                              : ", no Sysman");
    return VS_OK;
}

static int ze_device_count(void)
{
    return vs_ze_state.count;
}

/* ---------------------------------------------------------------- opening */

static vs_status read_props(vs_bdev *d)
{
    const vs_ze_api *api = &d->ze->api;
    vs_bdev_props *p = &d->props;
    ze_device_properties_t dp = {.stype = ZE_STRUCTURE_TYPE_DEVICE_PROPERTIES};
    ze_result_t r = api->DeviceGetProperties(d->device, &dp);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeDeviceGetProperties");
    snprintf(p->name, sizeof p->name, "%.*s", (int)sizeof dp.name, dp.name);
    p->integrated = (dp.flags & ZE_DEVICE_PROPERTY_FLAG_INTEGRATED) != 0;

    uint32_t n = 0;
    r = api->DeviceGetMemoryProperties(d->device, &n, NULL);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeDeviceGetMemoryProperties");
    ze_device_memory_properties_t mp[8];
    if (n > 8)
        n = 8;
    for (uint32_t i = 0; i < n; i++)
        mp[i] = (ze_device_memory_properties_t){.stype = ZE_STRUCTURE_TYPE_DEVICE_MEMORY_PROPERTIES};
    r = api->DeviceGetMemoryProperties(d->device, &n, mp);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeDeviceGetMemoryProperties");
    p->total_memory = 0;
    for (uint32_t i = 0; i < n; i++)
        p->total_memory += mp[i].totalSize;
    if (p->total_memory == 0) {
        vs_backend_log(VS_LOG_ERROR, "level_zero: %s reports no memory", p->name);
        return VS_ERR_BACKEND;
    }
    /* Note [Level Zero page size] */
    vs_status st = vs_ze_page_size(d, VS_ZE_PAGE_SIZE_MIN, &p->granularity);
    if (st != VS_OK)
        return st;
    p->preferred_page_size =
        p->granularity > VS_ZE_PAGE_SIZE_MIN ? p->granularity : VS_ZE_PAGE_SIZE_MIN;
    return VS_OK;
}

/* Note [Level Zero streams] (ze_stream.c): a dedicated copy engine when the
 * device has one (copies then overlap compute), else any group that copies. */
static vs_status pick_copy_group(vs_bdev *d)
{
    const vs_ze_api *api = &d->ze->api;
    uint32_t n = 0;
    ze_result_t r = api->DeviceGetCommandQueueGroupProperties(d->device, &n, NULL);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeDeviceGetCommandQueueGroupProperties");
    if (n == 0) {
        vs_backend_log(VS_LOG_ERROR, "level_zero: %s has no command queue group", d->props.name);
        return VS_ERR_BACKEND;
    }
    ze_command_queue_group_properties_t *g = calloc(n, sizeof *g);
    if (!g)
        return VS_ERR_OUT_OF_MEMORY;
    for (uint32_t i = 0; i < n; i++)
        g[i].stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_GROUP_PROPERTIES;
    r = api->DeviceGetCommandQueueGroupProperties(d->device, &n, g);
    if (r != ZE_RESULT_SUCCESS) {
        free(g);
        return vs_ze_result(r, "zeDeviceGetCommandQueueGroupProperties");
    }
    int best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!(g[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COPY) || g[i].numQueues == 0)
            continue;
        bool dedicated = !(g[i].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE);
        if (best < 0 || (dedicated && (g[best].flags & ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE)))
            best = (int)i;
    }
    if (best >= 0) {
        d->copy_group = (uint32_t)best;
        d->copy_queues = g[best].numQueues;
    }
    free(g);
    if (best < 0) {
        vs_backend_log(VS_LOG_ERROR, "level_zero: %s has no queue group that copies", d->props.name);
        return VS_ERR_BACKEND;
    }
    return VS_OK;
}

/* Sysman memory modules of the device (Note [Level Zero free memory]). */
static void find_memory_modules(vs_bdev *d)
{
    const vs_ze_api *api = &d->ze->api;
    d->nmem = 0;
    if (!d->ze->sysman)
        return;
    zes_device_handle_t sdev = (zes_device_handle_t)d->device;
    uint32_t n = 0;
    ze_result_t r = api->SysDeviceEnumMemoryModules(sdev, &n, NULL);
    if (r != ZE_RESULT_SUCCESS || n == 0) {
        vs_backend_log(VS_LOG_INFO,
                       "level_zero: %s: no Sysman memory modules (%s); free memory is estimated",
                       d->props.name, vs_ze_result_name(r));
        return;
    }
    zes_mem_handle_t all[VS_ZE_MAX_MEM_MODULES];
    if (n > VS_ZE_MAX_MEM_MODULES)
        n = VS_ZE_MAX_MEM_MODULES;
    if (api->SysDeviceEnumMemoryModules(sdev, &n, all) != ZE_RESULT_SUCCESS)
        return;
    for (uint32_t i = 0; i < n; i++) {
        zes_mem_properties_t mp = {.stype = ZES_STRUCTURE_TYPE_MEM_PROPERTIES};
        if (api->SysMemoryGetProperties(all[i], &mp) != ZE_RESULT_SUCCESS)
            continue;
        if (mp.location == ZES_MEM_LOC_DEVICE || d->props.integrated)
            d->mem[d->nmem++] = all[i];
    }
}

static vs_status ze_open(int ordinal, vs_bdev **out)
{
    vs_ze *ze = &vs_ze_state;
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    if (ordinal < 0 || ordinal >= ze->count)
        return VS_ERR_NO_DEVICE;
    vs_bdev *d = calloc(1, sizeof *d);
    if (!d)
        return VS_ERR_OUT_OF_MEMORY;
    d->ze = ze;
    d->ordinal = ordinal;
    d->device = ze->devices[ordinal];
    d->driver = &ze->drivers[ze->driver_of[ordinal]];
    d->in_order = d->driver->api_version >= VS_ZE_API_VERSION_1_7;
    pthread_mutex_init(&d->submit, NULL);
    pthread_mutex_init(&d->lock, NULL);
    ze_context_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC};
    ze_result_t r = ze->api.ContextCreateEx(d->driver->handle, &desc, 1, &d->device, &d->ctx);
    vs_status st = vs_ze_result(r, "zeContextCreateEx");
    if (st == VS_OK)
        st = read_props(d);
    if (st == VS_OK)
        st = pick_copy_group(d);
    if (st == VS_OK)
        st = vs_ze_slots_init(d);
    if (st == VS_OK) {
        st = vs_ze_create_list(d, 0, &d->default_list);
        if (st != VS_OK)
            vs_ze_slots_fini(d);
    }
    if (st != VS_OK) {
        if (d->ctx)
            (void)ze->api.ContextDestroy(d->ctx);
        pthread_mutex_destroy(&d->submit);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return st;
    }
    find_memory_modules(d);
    *out = d;
    return VS_OK;
}

static void ze_close(vs_bdev *d)
{
    if (!d)
        return;
    const vs_ze_api *api = &d->ze->api;
    /* Everything on the default list must be done before its events and the
     * list itself go away. */
    (void)vs_ze_stream_synchronize(d, 0);
    vs_ze_slots_fini(d);
    ze_result_t r = api->CommandListDestroy(d->default_list);
    if (r != ZE_RESULT_SUCCESS)
        (void)vs_ze_result(r, "zeCommandListDestroy");
    vs_ze_resv_fini(d);
    r = api->ContextDestroy(d->ctx);
    if (r != ZE_RESULT_SUCCESS)
        (void)vs_ze_result(r, "zeContextDestroy");
    if (d->host_noop)
        vs_backend_log(VS_LOG_DEBUG,
                       "level_zero: %llu host registration(s) accepted without the import extension",
                       (unsigned long long)d->host_noop);
    pthread_mutex_destroy(&d->submit);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

static vs_status ze_props(vs_bdev *d, vs_bdev_props *out)
{
    if (!d || !out)
        return VS_ERR_INVALID_ARGUMENT;
    *out = d->props;
    return VS_OK;
}

/* ---------------------------------------------------------------- free memory */

/* MemAvailable of /proc/meminfo in bytes, 0 if unknown. */
static uint64_t host_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024u;
}

static vs_status ze_mem_info(vs_bdev *d, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!d || !free_bytes || !total_bytes)
        return VS_ERR_INVALID_ARGUMENT;
    if (d->nmem) {
        uint64_t fr = 0, tot = 0;
        for (uint32_t i = 0; i < d->nmem; i++) {
            zes_mem_state_t s = {.stype = ZES_STRUCTURE_TYPE_MEM_STATE};
            ze_result_t r = d->ze->api.SysMemoryGetState(d->mem[i], &s);
            if (r != ZE_RESULT_SUCCESS)
                return vs_ze_result(r, "zesMemoryGetState");
            fr += s.free;
            tot += s.size;
        }
        *free_bytes = fr < tot ? fr : tot;
        *total_bytes = tot ? tot : d->props.total_memory;
        return VS_OK;
    }
    /* Note [Level Zero free memory]: an estimate. */
    uint64_t total = d->props.total_memory;
    uint64_t own = __atomic_load_n(&d->own_phys, __ATOMIC_RELAXED);
    uint64_t fr = total > own ? total - own : 0;
    if (d->props.integrated) {
        uint64_t avail = host_available();
        if (avail && avail < fr)
            fr = avail;
    }
    *free_bytes = fr;
    *total_bytes = total;
    return VS_OK;
}

const vs_backend_ops vs_backend_level_zero = {
    .abi_version = VS_BACKEND_ABI_VERSION,
    .name = "level_zero",
    .is_gpu = 1,
    .init = ze_init,
    .device_count = ze_device_count,
    .open = ze_open,
    .close = ze_close,
    .props = ze_props,
    .mem_info = ze_mem_info,
    .va_reserve = vs_ze_va_reserve,
    .va_free = vs_ze_va_free,
    .phys_create = vs_ze_phys_create,
    .phys_release = vs_ze_phys_release,
    .map = vs_ze_map,
    .set_access = vs_ze_set_access,
    .unmap = vs_ze_unmap,
    .host_register = vs_ze_host_register,
    .host_unregister = vs_ze_host_unregister,
    .stream_create = vs_ze_stream_create,
    .stream_destroy = vs_ze_stream_destroy,
    .stream_synchronize = vs_ze_stream_synchronize,
    .copy_async = vs_ze_copy_async,
    .event_create = vs_ze_event_create,
    .event_destroy = vs_ze_event_destroy,
    .event_record = vs_ze_event_record,
    .event_query = vs_ze_event_query,
    .event_synchronize = vs_ze_event_synchronize,
    .stream_wait_event = vs_ze_stream_wait_event,
    .intercept_install = vs_ze_intercept_install,
    .intercept_remove = vs_ze_intercept_remove,
};
