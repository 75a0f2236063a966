/* The HIP backend: AMD GPUs through the HIP runtime's virtual memory
 * management (hipMemAddressReserve / hipMemCreate / hipMemMap / hipMemSetAccess).
 *
 * This file loads the runtime, decides which devices to expose and opens them;
 * hip_va.c does address ranges (with their cache) and the stranded-memory
 * bookkeeping, hip_vmm.c physical memory, mappings and host registration,
 * hip_stream.c streams, events and copies, hip_intercept.c the allocation
 * hooks. docs/backends-hip.md describes the whole backend.
 *
 * Note [HIP devices without VMM]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * GPUs and runtimes without the VMM API (older ROCm, consumer GPUs where the
 * KFD lacks it, some virtualized setups) report
 * hipDeviceAttributeVirtualMemoryManagementSupported = 0, or do not know the
 * attribute at all (Note [HIP VMM attribute]). Such devices are not exposed:
 * vramswap's ordinals count only VMM-capable devices, in runtime order
 * (vs_hip.hip_ordinal maps them back). When none has it, init fails with
 * VS_ERR_NOT_SUPPORTED and a reason, and the library runs without this backend
 * ("no offload") instead of crashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hip/hip_internal.h"

static vs_hip vs_hip_state;

vs_hip *vs_hip_instance(void)
{
    return &vs_hip_state;
}

int vs_hip_ordinal_of(const vs_hip *hip, int hip_ordinal)
{
    for (int i = 0; i < hip->count; i++)
        if (hip->hip_ordinal[i] == hip_ordinal)
            return i;
    return -1;
}

vs_status vs_hip_enter(vs_bdev *dev, vs_hip_scope *scope)
{
    const vs_hip_api *api = &dev->hip->api;
    scope->prev = 0;
    scope->switched = false;
    hipError_t r = api->GetDevice(&scope->prev);
    if (r != hipSuccess)
        return vs_hip_result(api, r, "hipGetDevice");
    if (scope->prev == dev->hip_ordinal)
        return VS_OK;
    r = api->SetDevice(dev->hip_ordinal);
    if (r != hipSuccess)
        return vs_hip_result(api, r, "hipSetDevice");
    scope->switched = true;
    return VS_OK;
}

void vs_hip_leave(vs_bdev *dev, const vs_hip_scope *scope)
{
    if (!scope->switched)
        return;
    const vs_hip_api *api = &dev->hip->api;
    hipError_t r = api->SetDevice(scope->prev);
    if (r != hipSuccess)
        (void)vs_hip_result(api, r, "hipSetDevice (restoring the caller's device)");
}

/* Find the devices with VMM (Note [HIP devices without VMM]). */
static vs_status discover_devices(vs_hip *h, char *why, size_t why_len)
{
    const vs_hip_api *api = &h->api;
    int n = 0;
    hipError_t r = api->GetDeviceCount(&n);
    if (r == hipErrorNoDevice || (r == hipSuccess && n <= 0)) {
        snprintf(why, why_len, "no HIP device");
        return VS_ERR_NO_DEVICE;
    }
    if (r != hipSuccess) {
        snprintf(why, why_len, "hipGetDeviceCount failed: %s", vs_hip_error_name(api, r));
        return VS_ERR_NOT_SUPPORTED;
    }
    if (n > VS_HIP_MAX_DEVICES) {
        vs_backend_log(VS_LOG_WARN, "hip: %d devices, only the first %d are used", n,
                       VS_HIP_MAX_DEVICES);
        n = VS_HIP_MAX_DEVICES;
    }
    h->hip_count = n;
    int without_vmm = 0, unknown_vmm = 0;
    for (int i = 0; i < n; i++) {
        int vmm = 0, integrated = 0;
        r = api->DeviceGetAttribute(&vmm, VS_HIP_ATTR_VMM_SUPPORTED, i);
        if (r == hipErrorInvalidValue) {
            unknown_vmm++;
            vs_backend_log(VS_LOG_INFO,
                           "hip: device %d: the runtime does not report virtual memory "
                           "management support; not used", i);
            continue;
        }
        if (r == hipSuccess)
            r = api->DeviceGetAttribute(&integrated, hipDeviceAttributeIntegrated, i);
        if (r != hipSuccess) {
            vs_backend_log(VS_LOG_WARN, "hip: device %d: %s; not used", i, vs_hip_error_name(api, r));
            continue;
        }
        if (!vmm) {
            without_vmm++;
            vs_backend_log(VS_LOG_INFO, "hip: device %d lacks virtual memory management; not used", i);
            continue;
        }
        h->hip_ordinal[h->count] = i;
        h->integrated[h->count] = integrated != 0;
        h->count++;
    }
    if (h->count == 0) {
        if (unknown_vmm == n)
            snprintf(why, why_len,
                     "the HIP runtime (%d.%d) does not report virtual memory management "
                     "support for any of its %d device(s) (ROCm too old?)",
                     h->runtime_version / 10000000, (h->runtime_version / 100000) % 100, n);
        else
            snprintf(why, why_len,
                     "%s of %d HIP device(s) support virtual memory management",
                     without_vmm == n ? "none" : "no usable one", n);
        return VS_ERR_NOT_SUPPORTED;
    }
    return VS_OK;
}

/* Knobs read once at init (docs/backends-hip.md). */
static void read_knobs(vs_hip *h)
{
    h->va_cache_max = VS_HIP_VA_CACHE_DEFAULT;
    const char *cache = getenv("VRAMSWAP_HIP_VA_CACHE");
    if (cache && *cache) {
        char *end = NULL;
        unsigned long v = strtoul(cache, &end, 10);
        if (end && *end == '\0' && v <= 1024)
            h->va_cache_max = (size_t)v;
        else
            vs_backend_log(VS_LOG_WARN, "hip: ignoring VRAMSWAP_HIP_VA_CACHE=%s (0..1024)", cache);
    }
    h->release_forced = VS_HIP_RELEASE_UNKNOWN;
    const char *rel = getenv("VRAMSWAP_HIP_RELEASE");
    if (rel && *rel) {
        if (strcmp(rel, "returns") == 0)
            h->release_forced = VS_HIP_RELEASE_RETURNS;
        else if (strcmp(rel, "strands") == 0)
            h->release_forced = VS_HIP_RELEASE_STRANDS;
        else if (strcmp(rel, "probe") != 0)
            vs_backend_log(VS_LOG_WARN, "hip: ignoring VRAMSWAP_HIP_RELEASE=%s (returns, strands, probe)",
                           rel);
    }
}

static vs_status hip_init(char *why, size_t why_len)
{
    char scratch[8];
    if (!why || !why_len) {
        why = scratch;
        why_len = sizeof scratch;
    }
    why[0] = '\0';
    vs_hip *h = &vs_hip_state;
    memset(h, 0, sizeof *h);
    vs_status st = vs_hip_api_load(&h->lib, &h->api, why, why_len);
    if (st != VS_OK)
        return st;
    read_knobs(h);
    hipError_t r = h->api.Init(0);
    if (r != hipSuccess) {
        /* Without a GPU (no /dev/kfd) ROCm answers hipErrorInvalidDevice or hipErrorNoDevice. */
        snprintf(why, why_len, "hipInit failed: %s", vs_hip_error_name(&h->api, r));
        return r == hipErrorNoDevice || r == hipErrorInvalidDevice ? VS_ERR_NO_DEVICE
                                                                    : VS_ERR_NOT_SUPPORTED;
    }
    if (h->api.RuntimeGetVersion(&h->runtime_version) != hipSuccess)
        h->runtime_version = 0;
    st = discover_devices(h, why, why_len);
    if (st != VS_OK) {
        h->count = 0;
        return st;
    }
    vs_backend_log(VS_LOG_INFO, "hip: %s%s, runtime %d.%d, %d device(s) with VMM of %d", h->lib.path,
                   h->lib.preloaded ? " (already loaded)" : "", h->runtime_version / 10000000,
                   (h->runtime_version / 100000) % 100, h->count, h->hip_count);
    return VS_OK;
}

static int hip_device_count(void)
{
    return vs_hip_state.count;
}

/* Granularity of pinned device memory on the device (MINIMUM or RECOMMENDED). */
static vs_status query_granularity(const vs_hip *h, int hip_ordinal,
                                   hipMemAllocationGranularity_flags which, uint64_t *out)
{
    hipMemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = hipMemAllocationTypePinned;
    prop.location.type = hipMemLocationTypeDevice;
    prop.location.id = hip_ordinal;
    size_t g = 0;
    hipError_t r = h->api.MemGetAllocationGranularity(&g, &prop, which);
    if (r != hipSuccess)
        return vs_hip_result(&h->api, r, "hipMemGetAllocationGranularity");
    if (g == 0 || (g & (g - 1)) != 0) {
        vs_backend_log(VS_LOG_ERROR, "hip: granularity %zu is not a power of two", g);
        return VS_ERR_BACKEND;
    }
    *out = g;
    return VS_OK;
}

static vs_status read_props(vs_bdev *d)
{
    const vs_hip *h = d->hip;
    const vs_hip_api *api = &h->api;
    vs_bdev_props *p = &d->props;
    hipDevice_t device = 0;
    hipError_t r = api->DeviceGet(&device, d->hip_ordinal);
    if (r != hipSuccess)
        return vs_hip_result(api, r, "hipDeviceGet");
    r = api->DeviceGetName(p->name, (int)sizeof p->name, device);
    if (r != hipSuccess)
        return vs_hip_result(api, r, "hipDeviceGetName");
    p->name[sizeof p->name - 1] = '\0';
    size_t total = 0;
    r = api->DeviceTotalMem(&total, device);
    if (r != hipSuccess)
        return vs_hip_result(api, r, "hipDeviceTotalMem");
    p->total_memory = total;
    p->integrated = h->integrated[d->ordinal];
    vs_status st = query_granularity(h, d->hip_ordinal, hipMemAllocationGranularityMinimum,
                                     &p->granularity);
    if (st != VS_OK)
        return st;
    uint64_t recommended = 0;
    st = query_granularity(h, d->hip_ordinal, hipMemAllocationGranularityRecommended, &recommended);
    if (st != VS_OK)
        return st;
    /* Note [HIP page size]; both are powers of two, so the larger is a
     * multiple of the granularity. */
    uint64_t page = recommended > VS_HIP_PAGE_SIZE_MIN ? recommended : VS_HIP_PAGE_SIZE_MIN;
    p->preferred_page_size = page > p->granularity ? page : p->granularity;
    return VS_OK;
}

static vs_status hip_open(int ordinal, vs_bdev **out)
{
    vs_hip *h = &vs_hip_state;
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    if (ordinal < 0 || ordinal >= h->count)
        return VS_ERR_NO_DEVICE;
    vs_bdev *d = calloc(1, sizeof *d);
    if (!d)
        return VS_ERR_OUT_OF_MEMORY;
    d->hip = h;
    d->ordinal = ordinal;
    d->hip_ordinal = h->hip_ordinal[ordinal];
    vs_status st = vs_hip_va_init(d);
    if (st != VS_OK) {
        free(d);
        return st;
    }
    vs_hip_scope scope;
    st = vs_hip_enter(d, &scope);
    if (st == VS_OK) {
        st = read_props(d);
        vs_hip_leave(d, &scope);
    }
    if (st != VS_OK) {
        vs_hip_va_fini(d);
        free(d);
        return st;
    }
    *out = d;
    return VS_OK;
}

static void hip_close(vs_bdev *d)
{
    if (!d)
        return;
    vs_hip_va_fini(d); /* really frees the cached ranges */
    free(d);
}

static vs_status hip_props(vs_bdev *d, vs_bdev_props *out)
{
    if (!d || !out)
        return VS_ERR_INVALID_ARGUMENT;
    *out = d->props;
    return VS_OK;
}

/* MemAvailable of /proc/meminfo in bytes; 0 when unreadable. */
static uint64_t host_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[128];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

/* Free and total memory: hipMemGetInfo of the device, as it is (Note [HIP
 * stranded memory]: memory that hipMemRelease could not give back is still
 * reported as used there, so the figure is already conservative; when it is
 * short, cached ranges that may strand memory are freed first). On an APU
 * the "device memory" is host memory the runtime may also hand to the rest of
 * the system: the free figure is capped by the host's MemAvailable. */
static vs_status hip_mem_info(vs_bdev *d, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!d || !free_bytes || !total_bytes)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(d, &scope);
    if (st != VS_OK)
        return st;
    size_t fr = 0, tot = 0;
    hipError_t r = d->hip->api.MemGetInfo(&fr, &tot);
    if (r == hipSuccess && vs_hip_va_relieve(d, fr) > 0)
        r = d->hip->api.MemGetInfo(&fr, &tot);
    vs_hip_leave(d, &scope);
    if (r != hipSuccess)
        return vs_hip_result(&d->hip->api, r, "hipMemGetInfo");
    uint64_t free_b = fr;
    if (d->props.integrated) {
        uint64_t host = host_mem_available();
        if (host && host < free_b)
            free_b = host;
    }
    *free_bytes = free_b;
    *total_bytes = tot;
    return VS_OK;
}

const vs_backend_ops vs_backend_hip = {
    .abi_version = VS_BACKEND_ABI_VERSION,
    .name = "hip",
    .is_gpu = 1,
    .init = hip_init,
    .device_count = hip_device_count,
    .open = hip_open,
    .close = hip_close,
    .props = hip_props,
    .mem_info = hip_mem_info,
    .va_reserve = vs_hip_va_reserve,
    .va_free = vs_hip_va_free,
    .phys_create = vs_hip_phys_create,
    .phys_release = vs_hip_phys_release,
    .map = vs_hip_map,
    .set_access = vs_hip_set_access,
    .unmap = vs_hip_unmap,
    .host_register = vs_hip_host_register,
    .host_unregister = vs_hip_host_unregister,
    .stream_create = vs_hip_stream_create,
    .stream_destroy = vs_hip_stream_destroy,
    .stream_synchronize = vs_hip_stream_synchronize,
    .copy_async = vs_hip_copy_async,
    .event_create = vs_hip_event_create,
    .event_destroy = vs_hip_event_destroy,
    .event_record = vs_hip_event_record,
    .event_query = vs_hip_event_query,
    .event_synchronize = vs_hip_event_synchronize,
    .stream_wait_event = vs_hip_stream_wait_event,
    .intercept_install = vs_hip_intercept_install,
    .intercept_remove = vs_hip_intercept_remove,
};
