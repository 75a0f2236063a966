/* The CUDA backend: NVIDIA GPUs through the driver API's virtual memory
 * management (cuMemAddressReserve / cuMemCreate / cuMemMap / cuMemSetAccess).
 *
 * This file loads the driver, decides which devices to expose and opens them;
 * cuda_vmm.c does address space, physical memory and host registration,
 * cuda_stream.c streams, events and copies, cuda_intercept.c the allocation
 * hooks. docs/backends-cuda.md describes the whole backend.
 *
 * Note [CUDA devices without VMM]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * vGPU profiles, some WSL setups and old drivers lack the VMM API
 * (CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 0). Such devices
 * are not exposed: vramswap's ordinals count only VMM-capable devices, in
 * driver order (vs_cuda.cuda_ordinal maps them back). When none has it, init
 * fails with VS_ERR_NOT_SUPPORTED and a reason, and the library runs without
 * this backend ("no offload") instead of crashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"

static vs_cuda vs_cuda_state;

vs_cuda *vs_cuda_instance(void)
{
    return &vs_cuda_state;
}

int vs_cuda_ordinal_of(const vs_cuda *cuda, CUdevice device)
{
    for (int i = 0; i < cuda->count; i++)
        if (cuda->devices[i] == device)
            return i;
    return -1;
}

vs_status vs_cuda_enter(vs_bdev *dev, vs_cuda_scope *scope)
{
    const vs_cuda_api *api = &dev->cuda->api;
    scope->prev = NULL;
    scope->switched = false;
    CUresult r = api->CtxGetCurrent(&scope->prev);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(api, r, "cuCtxGetCurrent");
    if (scope->prev == dev->ctx)
        return VS_OK;
    r = api->CtxSetCurrent(dev->ctx);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(api, r, "cuCtxSetCurrent");
    scope->switched = true;
    return VS_OK;
}

void vs_cuda_leave(vs_bdev *dev, const vs_cuda_scope *scope)
{
    if (!scope->switched)
        return;
    const vs_cuda_api *api = &dev->cuda->api;
    CUresult r = api->CtxSetCurrent(scope->prev);
    if (r != CUDA_SUCCESS)
        (void)vs_cuda_result(api, r, "cuCtxSetCurrent (restoring the caller's context)");
}

static const char *error_name(const vs_cuda_api *api, CUresult r)
{
    const char *name = NULL;
    if (!api->GetErrorName || api->GetErrorName(r, &name) != CUDA_SUCCESS || !name)
        name = "CUDA_ERROR_?";
    return name;
}

/* Find the devices with VMM (Note [CUDA devices without VMM]). */
static vs_status discover_devices(vs_cuda *c, char *why, size_t why_len)
{
    const vs_cuda_api *api = &c->api;
    int n = 0;
    CUresult r = api->DeviceGetCount(&n);
    if (r != CUDA_SUCCESS) {
        snprintf(why, why_len, "cuDeviceGetCount failed: %s", error_name(api, r));
        return VS_ERR_NOT_SUPPORTED;
    }
    if (n <= 0) {
        snprintf(why, why_len, "no CUDA device");
        return VS_ERR_NO_DEVICE;
    }
    if (n > VS_CUDA_MAX_DEVICES) {
        vs_backend_log(VS_LOG_WARN, "cuda: %d devices, only the first %d are used", n,
                       VS_CUDA_MAX_DEVICES);
        n = VS_CUDA_MAX_DEVICES;
    }
    c->cuda_count = n;
    int without_vmm = 0;
    for (int i = 0; i < n; i++) {
        CUdevice d;
        int vmm = 0;
        r = api->DeviceGet(&d, i);
        if (r == CUDA_SUCCESS)
            r = api->DeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
                                        d);
        if (r != CUDA_SUCCESS) {
            vs_backend_log(VS_LOG_WARN, "cuda: device %d: %s; not used", i, error_name(api, r));
            continue;
        }
        if (!vmm) {
            without_vmm++;
            vs_backend_log(VS_LOG_INFO,
                           "cuda: device %d lacks virtual memory management; not used", i);
            continue;
        }
        c->devices[c->count] = d;
        c->cuda_ordinal[c->count] = i;
        c->count++;
    }
    if (c->count == 0) {
        snprintf(why, why_len,
                 "%s of %d CUDA device(s) support virtual memory management "
                 "(vGPU or an old driver?)",
                 without_vmm == n ? "none" : "no usable one", n);
        return VS_ERR_NOT_SUPPORTED;
    }
    return VS_OK;
}

static vs_status cuda_init(char *why, size_t why_len)
{
    char scratch[8];
    if (!why || !why_len) {
        why = scratch;
        why_len = sizeof scratch;
    }
    why[0] = '\0';
    vs_cuda *c = &vs_cuda_state;
    memset(c, 0, sizeof *c);
    vs_status st = vs_cuda_api_load(&c->lib, &c->api, why, why_len);
    if (st != VS_OK)
        return st;
    CUresult r = c->api.Init(0);
    if (r != CUDA_SUCCESS) {
        snprintf(why, why_len, "cuInit failed: %s", error_name(&c->api, r));
        return r == CUDA_ERROR_NO_DEVICE ? VS_ERR_NO_DEVICE : VS_ERR_NOT_SUPPORTED;
    }
    r = c->api.DriverGetVersion(&c->driver_version);
    if (r != CUDA_SUCCESS)
        c->driver_version = 0;
    st = discover_devices(c, why, why_len);
    if (st != VS_OK) {
        c->count = 0;
        return st;
    }
    vs_backend_log(VS_LOG_INFO, "cuda: %s, driver %d.%d, %d device(s) with VMM of %d", c->lib.path,
                   c->driver_version / 1000, (c->driver_version % 1000) / 10, c->count,
                   c->cuda_count);
    return VS_OK;
}

static int cuda_device_count(void)
{
    return vs_cuda_state.count;
}

/* Granularity of pinned device memory on the device (MINIMUM or RECOMMENDED). */
static vs_status query_granularity(const vs_cuda *c, int cuda_ordinal, CUmemAllocationGranularity_flags which,
                                   uint64_t *out)
{
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = cuda_ordinal;
    size_t g = 0;
    CUresult r = c->api.MemGetAllocationGranularity(&g, &prop, which);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&c->api, r, "cuMemGetAllocationGranularity");
    if (g == 0 || (g & (g - 1)) != 0) {
        vs_backend_log(VS_LOG_ERROR, "cuda: granularity %zu is not a power of two", g);
        return VS_ERR_BACKEND;
    }
    *out = g;
    return VS_OK;
}

static vs_status read_props(vs_bdev *d)
{
    const vs_cuda *c = d->cuda;
    const vs_cuda_api *api = &c->api;
    vs_bdev_props *p = &d->props;
    int cuda_ordinal = c->cuda_ordinal[d->ordinal];
    CUresult r = api->DeviceGetName(p->name, (int)sizeof p->name, d->device);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(api, r, "cuDeviceGetName");
    p->name[sizeof p->name - 1] = '\0';
    size_t total = 0;
    r = api->DeviceTotalMem(&total, d->device);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(api, r, "cuDeviceTotalMem");
    p->total_memory = total;
    int integrated = 0;
    r = api->DeviceGetAttribute(&integrated, CU_DEVICE_ATTRIBUTE_INTEGRATED, d->device);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(api, r, "cuDeviceGetAttribute(INTEGRATED)");
    p->integrated = integrated != 0;
    vs_status st = query_granularity(c, cuda_ordinal, CU_MEM_ALLOC_GRANULARITY_MINIMUM, &p->granularity);
    if (st != VS_OK)
        return st;
    uint64_t recommended = 0;
    st = query_granularity(c, cuda_ordinal, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED, &recommended);
    if (st != VS_OK)
        return st;
    /* Note [CUDA page size]; both are powers of two, so the larger is a
     * multiple of the granularity. */
    uint64_t page = recommended > VS_CUDA_PAGE_SIZE_MIN ? recommended : VS_CUDA_PAGE_SIZE_MIN;
    /* Scale with the card: 1/256 of its memory, a power of two, up to
     * VS_CUDA_PAGE_SIZE_MAX (32 MiB from 8 GiB up; 2 MiB on tiny devices). */
    uint64_t target = VS_CUDA_PAGE_SIZE_MIN;
    while (target * 2 <= VS_CUDA_PAGE_SIZE_MAX && target * 2 <= p->total_memory / 256)
        target *= 2;
    if (target > page)
        page = target;
    p->preferred_page_size = page > p->granularity ? page : p->granularity;
    return VS_OK;
}

static vs_status cuda_open(int ordinal, vs_bdev **out)
{
    vs_cuda *c = &vs_cuda_state;
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    if (ordinal < 0 || ordinal >= c->count)
        return VS_ERR_NO_DEVICE;
    vs_bdev *d = calloc(1, sizeof *d);
    if (!d)
        return VS_ERR_OUT_OF_MEMORY;
    d->cuda = c;
    d->ordinal = ordinal;
    d->device = c->devices[ordinal];
    CUresult r = c->api.DevicePrimaryCtxRetain(&d->ctx, d->device);
    if (r != CUDA_SUCCESS) {
        vs_status st = vs_cuda_result(&c->api, r, "cuDevicePrimaryCtxRetain");
        free(d);
        return st;
    }
    vs_status st = read_props(d);
    if (st != VS_OK) {
        (void)c->api.DevicePrimaryCtxRelease(d->device);
        free(d);
        return st;
    }
    *out = d;
    return VS_OK;
}

static void cuda_close(vs_bdev *d)
{
    if (!d)
        return;
    CUresult r = d->cuda->api.DevicePrimaryCtxRelease(d->device);
    if (r != CUDA_SUCCESS)
        (void)vs_cuda_result(&d->cuda->api, r, "cuDevicePrimaryCtxRelease");
    free(d);
}

static vs_status cuda_props(vs_bdev *d, vs_bdev_props *out)
{
    if (!d || !out)
        return VS_ERR_INVALID_ARGUMENT;
    *out = d->props;
    return VS_OK;
}

static vs_status cuda_mem_info(vs_bdev *d, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!d || !free_bytes || !total_bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda_scope scope;
    vs_status st = vs_cuda_enter(d, &scope);
    if (st != VS_OK)
        return st;
    size_t fr = 0, tot = 0;
    CUresult r = d->cuda->api.MemGetInfo(&fr, &tot);
    vs_cuda_leave(d, &scope);
    if (r != CUDA_SUCCESS)
        return vs_cuda_result(&d->cuda->api, r, "cuMemGetInfo");
    *free_bytes = fr;
    *total_bytes = tot;
    return VS_OK;
}

const vs_backend_ops vs_backend_cuda = {
    .abi_version = VS_BACKEND_ABI_VERSION,
    .name = "cuda",
    .is_gpu = 1,
    .init = cuda_init,
    .device_count = cuda_device_count,
    .open = cuda_open,
    .close = cuda_close,
    .props = cuda_props,
    .mem_info = cuda_mem_info,
    .va_reserve = vs_cuda_va_reserve,
    .va_free = vs_cuda_va_free,
    .phys_create = vs_cuda_phys_create,
    .phys_release = vs_cuda_phys_release,
    .map = vs_cuda_map,
    .set_access = vs_cuda_set_access,
    .unmap = vs_cuda_unmap,
    .host_register = vs_cuda_host_register,
    .host_unregister = vs_cuda_host_unregister,
    .stream_create = vs_cuda_stream_create,
    .stream_destroy = vs_cuda_stream_destroy,
    .stream_synchronize = vs_cuda_stream_synchronize,
    .copy_async = vs_cuda_copy_async,
    .event_create = vs_cuda_event_create,
    .event_destroy = vs_cuda_event_destroy,
    .event_record = vs_cuda_event_record,
    .event_query = vs_cuda_event_query,
    .event_synchronize = vs_cuda_event_synchronize,
    .stream_wait_event = vs_cuda_stream_wait_event,
    .intercept_install = vs_cuda_intercept_install,
    .intercept_remove = vs_cuda_intercept_remove,
};
