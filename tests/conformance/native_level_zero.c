/* The conformance suite's Level Zero pieces: the native allocator
 * (zeMemAllocDevice / zeMemFree in a context of the suite's own on the device),
 * which the Level Zero backend's interception hooks see, and the driver
 * emulator's live-object counters.
 *
 * Every function is looked up with dlsym in the loader the backend loaded
 * ($VRAMSWAP_LIBZE, else libze_loader.so.1) and called through a local
 * typedef: no Level Zero headers, so this file compiles everywhere. The
 * backend hooks the loader's exported entry points (what an application, e.g.
 * PyTorch's XPU allocator through SYCL, ends up calling), so calling them is
 * what goes through the hooks.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suite.h"

/* The few API types and values used, as the Level Zero ABI defines them. */
typedef int vsc_zeresult; /* ze_result_t; 0 = ZE_RESULT_SUCCESS */
typedef void *vsc_ze_driver;
typedef void *vsc_ze_device;
typedef void *vsc_ze_context;

#define VSC_ZE_SUCCESS 0
#define VSC_ZE_ERROR_OUT_OF_DEVICE_MEMORY 0x70000003
#define VSC_ZE_ERROR_INVALID_ARGUMENT 0x78000004
#define VSC_ZE_INIT_FLAG_GPU_ONLY 1u
#define VSC_ZE_STYPE_DEVICE_PROPERTIES 0x3
#define VSC_ZE_STYPE_CONTEXT_DESC 0xd
#define VSC_ZE_STYPE_DEVICE_MEM_ALLOC_DESC 0x15
#define VSC_ZE_DEVICE_TYPE_GPU 1
/* The page size the backend probes virtual memory with (VS_ZE_PAGE_SIZE_MIN). */
#define VSC_ZE_PROBE_PAGE ((size_t)2 << 20)

/* ze_device_properties_t: only the leading members are read; the rest (368
 * bytes in API 1.x, name included) lands in the padding. */
typedef struct vsc_ze_device_props {
    int stype;
    const void *next;
    int type;            /* ze_device_type_t */
    char rest[1024];
} vsc_ze_device_props;

typedef struct vsc_ze_context_desc {
    int stype;
    const void *next;
    unsigned int flags;
} vsc_ze_context_desc;

typedef struct vsc_ze_device_mem_alloc_desc {
    int stype;
    const void *next;
    unsigned int flags;
    unsigned int ordinal; /* memory ordinal, 0 */
} vsc_ze_device_mem_alloc_desc;

typedef vsc_zeresult (*vsc_zeInit_fn)(unsigned int flags);
typedef vsc_zeresult (*vsc_zeDriverGet_fn)(uint32_t *count, vsc_ze_driver *drivers);
typedef vsc_zeresult (*vsc_zeDeviceGet_fn)(vsc_ze_driver driver, uint32_t *count, vsc_ze_device *devices);
typedef vsc_zeresult (*vsc_zeDeviceGetProperties_fn)(vsc_ze_device device, vsc_ze_device_props *props);
typedef vsc_zeresult (*vsc_zeContextCreateEx_fn)(vsc_ze_driver driver, const vsc_ze_context_desc *desc,
                                                 uint32_t ndevices, vsc_ze_device *devices,
                                                 vsc_ze_context *ctx);
typedef vsc_zeresult (*vsc_zeContextDestroy_fn)(vsc_ze_context ctx);
typedef vsc_zeresult (*vsc_zeVirtualMemQueryPageSize_fn)(vsc_ze_context ctx, vsc_ze_device device,
                                                         size_t size, size_t *page);
typedef vsc_zeresult (*vsc_zeMemAllocDevice_fn)(vsc_ze_context ctx, const vsc_ze_device_mem_alloc_desc *desc,
                                                size_t size, size_t alignment, vsc_ze_device device,
                                                void **ptr);
typedef vsc_zeresult (*vsc_zeMemFree_fn)(vsc_ze_context ctx, void *ptr);
typedef vsc_zeresult (*vsc_ze_counters_fn)(int ordinal, vs_sim_counters *out); /* the emulator's vsze_counters */

/* The loader's entry points the suite calls. */
typedef struct ze_loader_api {
    vsc_zeInit_fn init;
    vsc_zeDriverGet_fn driver_get;
    vsc_zeDeviceGet_fn device_get;
    vsc_zeDeviceGetProperties_fn device_props;
    vsc_zeContextCreateEx_fn context_create;
    vsc_zeContextDestroy_fn context_destroy;
    vsc_zeVirtualMemQueryPageSize_fn page_size;
    vsc_zeMemAllocDevice_fn mem_alloc;
    vsc_zeMemFree_fn mem_free;
} ze_loader_api;

typedef struct ze_native {
    void *lib;                /* dlopen handle of the loader (a reference, closed at the end) */
    ze_loader_api api;
    vsc_ze_device device;     /* loader handle of the device */
    vsc_ze_context ctx;       /* ours, on that one device */
} ze_native;

/* The loader the backend uses (backends/level_zero/ze_table.c), already loaded. */
static void *loader_library(void)
{
    const char *env = getenv("VRAMSWAP_LIBZE");
    const char *name = env && *env ? env : "libze_loader.so.1";
    return dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
}

static bool resolve(void *lib, ze_loader_api *api)
{
#define VSC_ZE_SYM(field, symbol)                          \
    do {                                                   \
        void *p_ = dlsym(lib, symbol);                     \
        memcpy(&api->field, &p_, sizeof p_);               \
        if (!p_)                                           \
            return false;                                  \
    } while (0)
    VSC_ZE_SYM(init, "zeInit");
    VSC_ZE_SYM(driver_get, "zeDriverGet");
    VSC_ZE_SYM(device_get, "zeDeviceGet");
    VSC_ZE_SYM(device_props, "zeDeviceGetProperties");
    VSC_ZE_SYM(context_create, "zeContextCreateEx");
    VSC_ZE_SYM(context_destroy, "zeContextDestroy");
    VSC_ZE_SYM(page_size, "zeVirtualMemQueryPageSize");
    VSC_ZE_SYM(mem_alloc, "zeMemAllocDevice");
    VSC_ZE_SYM(mem_free, "zeMemFree");
#undef VSC_ZE_SYM
    return true;
}

/* A context on `dev` alone when the device has virtual memory, else NULL (the
 * backend's probe: a device whose context or page-size query fails is not
 * exposed). */
static vsc_ze_context vmm_context(const ze_loader_api *api, vsc_ze_driver drv, vsc_ze_device dev)
{
    vsc_ze_context_desc desc = {.stype = VSC_ZE_STYPE_CONTEXT_DESC};
    vsc_ze_context c = NULL;
    if (api->context_create(drv, &desc, 1, &dev, &c) != VSC_ZE_SUCCESS)
        return NULL;
    size_t page = 0;
    if (api->page_size(c, dev, VSC_ZE_PROBE_PAGE, &page) == VSC_ZE_SUCCESS)
        return c;
    (void)api->context_destroy(c);
    return NULL;
}

/* The device behind vramswap's ordinal, with a context of ours on it: the
 * backend numbers the root GPU devices with virtual memory of every driver,
 * driver by driver in the loader's order (Note [Level Zero devices] in
 * backends/level_zero/ze_backend.c), so do the same. */
static vsc_zeresult device_of(ze_native *s, int ordinal)
{
    const ze_loader_api *api = &s->api;
    uint32_t ndrv = 0;
    vsc_zeresult r = api->driver_get(&ndrv, NULL);
    if (r != VSC_ZE_SUCCESS || ndrv == 0)
        return r != VSC_ZE_SUCCESS ? r : VSC_ZE_ERROR_INVALID_ARGUMENT;
    vsc_ze_driver drivers[16];
    if (ndrv > VSC_COUNT(drivers))
        ndrv = VSC_COUNT(drivers);
    r = api->driver_get(&ndrv, drivers);
    for (uint32_t i = 0; r == VSC_ZE_SUCCESS && i < ndrv; i++) {
        vsc_ze_device devs[64];
        uint32_t ndev = VSC_COUNT(devs);
        if (api->device_get(drivers[i], &ndev, devs) != VSC_ZE_SUCCESS)
            continue; /* the backend skips such a driver too */
        for (uint32_t d = 0; d < ndev; d++) {
            vsc_ze_device_props p;
            memset(&p, 0, sizeof p);
            p.stype = VSC_ZE_STYPE_DEVICE_PROPERTIES;
            if (api->device_props(devs[d], &p) != VSC_ZE_SUCCESS || p.type != VSC_ZE_DEVICE_TYPE_GPU)
                continue;
            vsc_ze_context ctx = vmm_context(api, drivers[i], devs[d]);
            if (!ctx)
                continue;
            if (ordinal-- == 0) {
                s->device = devs[d];
                s->ctx = ctx;
                return VSC_ZE_SUCCESS;
            }
            (void)api->context_destroy(ctx);
        }
    }
    return r != VSC_ZE_SUCCESS ? r : VSC_ZE_ERROR_INVALID_ARGUMENT;
}

static vs_status ze_native_begin(int ordinal, void **state, char *why, size_t why_len)
{
    void *lib = loader_library();
    if (!lib) {
        snprintf(why, why_len, "the Level Zero loader is not loaded in this process");
        return VS_ERR_NOT_SUPPORTED;
    }
    ze_native *s = calloc(1, sizeof *s);
    if (!s) {
        dlclose(lib);
        snprintf(why, why_len, "out of host memory");
        return VS_ERR_OUT_OF_MEMORY;
    }
    if (!resolve(lib, &s->api)) {
        free(s);
        dlclose(lib);
        snprintf(why, why_len, "the loader lacks one of zeInit, zeDriverGet, zeDeviceGet(Properties), "
                               "zeContextCreateEx/Destroy, zeVirtualMemQueryPageSize, zeMemAllocDevice, zeMemFree");
        return VS_ERR_NOT_SUPPORTED;
    }
    vsc_zeresult r = s->api.init(VSC_ZE_INIT_FLAG_GPU_ONLY); /* already done by the backend: a no-op */
    const char *step = "zeInit";
    if (r == VSC_ZE_SUCCESS) {
        step = "finding the device (zeDriverGet, zeDeviceGet, zeContextCreateEx)";
        r = device_of(s, ordinal);
    }
    if (r != VSC_ZE_SUCCESS) {
        snprintf(why, why_len, "%s failed with ze_result_t 0x%x", step, (unsigned)r);
        free(s);
        dlclose(lib);
        return VS_ERR_BACKEND;
    }
    s->lib = lib;
    *state = s;
    return VS_OK;
}

static vs_status ze_status(vsc_zeresult r)
{
    if (r == VSC_ZE_SUCCESS)
        return VS_OK;
    return r == VSC_ZE_ERROR_OUT_OF_DEVICE_MEMORY ? VS_ERR_OUT_OF_MEMORY : VS_ERR_BACKEND;
}

static vs_status ze_native_alloc(void *state, uint64_t size, uintptr_t *ptr)
{
    ze_native *s = state;
    vsc_ze_device_mem_alloc_desc desc = {.stype = VSC_ZE_STYPE_DEVICE_MEM_ALLOC_DESC};
    void *p = NULL;
    vsc_zeresult r = s->api.mem_alloc(s->ctx, &desc, (size_t)size, 0, s->device, &p);
    if (r == VSC_ZE_SUCCESS)
        *ptr = (uintptr_t)p;
    return ze_status(r);
}

static vs_status ze_native_free(void *state, uintptr_t ptr)
{
    ze_native *s = state;
    return ze_status(s->api.mem_free(s->ctx, (void *)ptr));
}

static void ze_native_end(void *state)
{
    ze_native *s = state;
    (void)s->api.context_destroy(s->ctx);
    dlclose(s->lib);
    free(s);
}

/* Only the driver emulator (tests/emulators/level_zero) can count its live
 * objects: it is the driver the loader was told to load by path
 * (ZE_ENABLE_ALT_DRIVERS, a comma-separated list), and its simulated devices
 * all have virtual memory, so ordinals agree. Called before the device is
 * opened, so it may load the driver first; the reference is kept (the loader
 * loads the same path right after). A driver without vsze_counters is let go. */
static bool ze_counters(int ordinal, vs_sim_counters *out)
{
    const char *drivers = getenv("ZE_ENABLE_ALT_DRIVERS");
    if (!drivers || !*drivers)
        return false;
    char path[4096];
    for (const char *p = drivers; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < sizeof path) {
            memcpy(path, p, n);
            path[n] = '\0';
            void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
            if (!lib)
                lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            vsc_ze_counters_fn fn = lib ? (vsc_ze_counters_fn)dlsym(lib, "vsze_counters") : NULL;
            if (fn)
                return fn(ordinal, out) == VSC_ZE_SUCCESS;
            if (lib)
                dlclose(lib);
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

const vsc_backend vsc_backend_level_zero = {
    .name = "level_zero",
    .prepare = NULL,
    .counters = ze_counters,
    .native_begin = ze_native_begin,
    .native_alloc = ze_native_alloc,
    .native_free = ze_native_free,
    .native_end = ze_native_end,
};
