/* Emulator core: initialization and knobs, devices, primary contexts, error
 * strings, fault injection and cuGetProcAddress. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_cuda.h"

#define EMU_CTX_STACK 16

/* The emulator's process-wide state; `lock` guards it after cuInit. */
static struct {
    pthread_mutex_t lock;
    int initialized;                   /* cuInit succeeded (atomic read) */
    int device_count;
    int driver_version;                /* knob driver: (set once, see knobs()) */
    unsigned long long vmm_mask;       /* knob vmm: */
    int ptsz_alias;                    /* knob ptsz:alias */
    emu_ctx ctx[SIMDEV_MAX_DEVICES];   /* primary contexts */
} g_emu = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Injection per vs_sim_op (Note: SQLite-style skip then fail). */
static struct {
    pthread_mutex_t lock;
    uint32_t skip[VS_SIM_OP_COUNT_];
    uint32_t count[VS_SIM_OP_COUNT_];
    CUresult error[VS_SIM_OP_COUNT_];
    uint64_t calls[VS_SIM_OP_COUNT_];
} g_inject = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Current-context stack of the calling thread. */
static _Thread_local emu_ctx *t_stack[EMU_CTX_STACK];
static _Thread_local int t_depth;

/* Knobs (VRAMSWAP_EMU_CUDA), read once, at the first call that needs one:
 * cuGetProcAddress runs before cuInit. */
static pthread_once_t g_knobs_once = PTHREAD_ONCE_INIT;
static int g_init_error;           /* knob init: (0 = none) */

static void parse_knobs(void)
{
    g_emu.driver_version = 13000;
    g_emu.vmm_mask = ~0ull;
    g_emu.ptsz_alias = 0;
    const char *spec = getenv("VRAMSWAP_EMU_CUDA");
    if (!spec)
        return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *val = strchr(kv, ':');
        if (!val)
            continue;
        *val++ = '\0';
        if (strcmp(kv, "vmm") == 0)
            g_emu.vmm_mask = strtoull(val, NULL, 0);
        else if (strcmp(kv, "driver") == 0)
            g_emu.driver_version = (int)strtol(val, NULL, 0);
        else if (strcmp(kv, "init") == 0)
            g_init_error = (int)strtol(val, NULL, 0);
        else if (strcmp(kv, "ptsz") == 0)
            g_emu.ptsz_alias = strcmp(val, "alias") == 0;
        else
            fprintf(stderr, "libcuda emulator: unknown knob '%s'\n", kv);
    }
}

static void knobs(void)
{
    pthread_once(&g_knobs_once, parse_knobs);
}

/* ---------------------------------------------------------------- helpers */

int emu_initialized(void)
{
    return __atomic_load_n(&g_emu.initialized, __ATOMIC_ACQUIRE);
}

int emu_driver_version(void)
{
    knobs();
    return g_emu.driver_version;
}

int emu_has_vmm(int ordinal)
{
    knobs();
    return ordinal >= 0 && ordinal < 64 && ((g_emu.vmm_mask >> ordinal) & 1ull);
}

int emu_ptsz_alias(void)
{
    knobs();
    return g_emu.ptsz_alias;
}

CUresult emu_result(vs_status st)
{
    switch (st) {
    case VS_OK:
        return CUDA_SUCCESS;
    case VS_ERR_OUT_OF_MEMORY:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case VS_ERR_NOT_READY:
        return CUDA_ERROR_NOT_READY;
    case VS_ERR_INVALID_HANDLE:
        return CUDA_ERROR_INVALID_HANDLE;
    case VS_ERR_NOT_SUPPORTED:
        return CUDA_ERROR_NOT_SUPPORTED;
    case VS_ERR_NO_DEVICE:
        return CUDA_ERROR_INVALID_DEVICE;
    case VS_ERR_INVALID_ARGUMENT:
    case VS_ERR_OUT_OF_RANGE:
    case VS_ERR_BUSY:
        return CUDA_ERROR_INVALID_VALUE;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

CUresult emu_device(int ordinal, simdev_t **sd)
{
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (ordinal < 0 || ordinal >= g_emu.device_count)
        return CUDA_ERROR_INVALID_DEVICE;
    *sd = g_emu.ctx[ordinal].sd;
    return CUDA_SUCCESS;
}

CUresult emu_current(emu_ctx **ctx)
{
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    emu_ctx *c = t_depth > 0 ? t_stack[t_depth - 1] : NULL;
    if (!c || __atomic_load_n(&c->retains, __ATOMIC_ACQUIRE) <= 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    *ctx = c;
    return CUDA_SUCCESS;
}

int emu_owner(uint64_t ptr, int kind)
{
    for (int i = 0; i < g_emu.device_count; i++) {
        int k = 0;
        if (simdev_find_range(g_emu.ctx[i].sd, ptr, NULL, NULL, &k) == VS_OK && k == kind)
            return i;
    }
    return -1;
}

CUresult emu_stream(CUstream s, simdev_t **sd, simdev_handle *h)
{
    uintptr_t v = (uintptr_t)s;
    if (v == 0 || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
        emu_ctx *ctx;
        CUresult r = emu_current(&ctx);
        if (r != CUDA_SUCCESS)
            return r;
        *sd = ctx->sd;
        *h = 0;
        return CUDA_SUCCESS;
    }
    int ord = simdev_handle_ordinal((simdev_handle)v);
    CUresult r = emu_device(ord, sd);
    if (r != CUDA_SUCCESS)
        return r == CUDA_ERROR_INVALID_DEVICE ? CUDA_ERROR_INVALID_HANDLE : r;
    *h = (simdev_handle)v;
    return CUDA_SUCCESS;
}

CUresult emu_injected(int op)
{
    CUresult r = CUDA_SUCCESS;
    pthread_mutex_lock(&g_inject.lock);
    g_inject.calls[op]++;
    if (g_inject.count[op] > 0) {
        if (g_inject.skip[op] > 0) {
            g_inject.skip[op]--;
        } else {
            g_inject.count[op]--;
            r = g_inject.error[op];
        }
    }
    pthread_mutex_unlock(&g_inject.lock);
    return r;
}

/* ---------------------------------------------------------------- test-only API */

EMU_API CUresult vsemu_inject(int op, uint32_t skip, uint32_t count, CUresult error)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&g_inject.lock);
    g_inject.skip[op] = skip;
    g_inject.count[op] = count;
    g_inject.error[op] = error;
    pthread_mutex_unlock(&g_inject.lock);
    return CUDA_SUCCESS;
}

EMU_API CUresult vsemu_inject_clear(void)
{
    pthread_mutex_lock(&g_inject.lock);
    memset(g_inject.skip, 0, sizeof g_inject.skip);
    memset(g_inject.count, 0, sizeof g_inject.count);
    pthread_mutex_unlock(&g_inject.lock);
    return CUDA_SUCCESS;
}

EMU_API uint64_t vsemu_calls(int op)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return 0;
    pthread_mutex_lock(&g_inject.lock);
    uint64_t n = g_inject.calls[op];
    pthread_mutex_unlock(&g_inject.lock);
    return n;
}

EMU_API CUresult vsemu_counters(int ordinal, vs_sim_counters *out)
{
    simdev_t *sd;
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    if (simdev_get(ordinal, &sd) != VS_OK)
        return CUDA_ERROR_INVALID_DEVICE;
    return emu_result(simdev_get_counters(sd, out));
}

/* ---------------------------------------------------------------- initialization */

EMU_API CUresult cuInit(unsigned int flags)
{
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = CUDA_SUCCESS;
    pthread_mutex_lock(&g_emu.lock);
    knobs();
    if (!g_emu.initialized) {
        if (g_init_error) {
            r = (CUresult)g_init_error;
            goto out;
        }
        if (!simdev_is_configured()) {
            vs_sim_config cfg;
            simdev_config_default(&cfg);
            if (simdev_config_parse(&cfg, getenv("VRAMSWAP_SIM")) != VS_OK ||
                simdev_configure(&cfg) != VS_OK) {
                fprintf(stderr, "libcuda emulator: bad VRAMSWAP_SIM: %s\n", simdev_last_error());
                r = CUDA_ERROR_INVALID_VALUE;
                goto out;
            }
        }
        int n = simdev_device_count();
        if (n <= 0) {
            r = CUDA_ERROR_NO_DEVICE;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            g_emu.ctx[i].ordinal = i;
            g_emu.ctx[i].retains = 0;
            if (simdev_get(i, &g_emu.ctx[i].sd) != VS_OK) {
                r = CUDA_ERROR_NO_DEVICE;
                goto out;
            }
        }
        g_emu.device_count = n;
        __atomic_store_n(&g_emu.initialized, 1, __ATOMIC_RELEASE);
    }
out:
    pthread_mutex_unlock(&g_emu.lock);
    return r;
}

EMU_API CUresult cuDriverGetVersion(int *version)
{
    if (!version)
        return CUDA_ERROR_INVALID_VALUE;
    knobs();
    *version = g_emu.driver_version;
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- devices */

EMU_API CUresult cuDeviceGetCount(int *count)
{
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    *count = g_emu.device_count;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    simdev_t *sd;
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(ordinal, &sd);
    if (r == CUDA_SUCCESS)
        *device = ordinal;
    return r;
}

EMU_API CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    simdev_t *sd;
    if (!name || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(dev, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    snprintf(name, (size_t)len, "vramswap CUDA emulator %d", dev);
    return CUDA_SUCCESS;
}

EMU_API CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    simdev_t *sd;
    simdev_props p;
    if (!bytes)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(dev, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r == CUDA_SUCCESS)
        *bytes = (size_t)p.total_memory;
    return r;
}

EMU_API CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    simdev_t *sd;
    simdev_props p;
    if (!pi)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(dev, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r != CUDA_SUCCESS)
        return r;
    switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
        *pi = emu_has_vmm(dev);
        break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
        *pi = p.integrated;
        break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:
        *pi = 9;
        break;
    case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING:
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY:
        *pi = 1;
        break;
    default:
        *pi = 0;
        break;
    }
    return CUDA_SUCCESS;
}

/* ---------------------------------------------------------------- contexts */

static emu_ctx *ctx_from(CUcontext c)
{
    emu_ctx *e = (emu_ctx *)(void *)c;
    if (e < &g_emu.ctx[0] || e >= &g_emu.ctx[g_emu.device_count])
        return NULL;
    return e;
}

EMU_API CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    simdev_t *sd;
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_device(dev, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    emu_ctx *c = &g_emu.ctx[dev];
    pthread_mutex_lock(&g_emu.lock);
    if (c->retains == 0) {
        simdev_t *opened;
        r = emu_result(simdev_open(dev, &opened));
    }
    if (r == CUDA_SUCCESS) {
        __atomic_add_fetch(&c->retains, 1, __ATOMIC_RELEASE);
        *pctx = (CUcontext)(void *)c;
    }
    pthread_mutex_unlock(&g_emu.lock);
    return r;
}

EMU_API CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    simdev_t *sd;
    CUresult r = emu_device(dev, &sd);
    if (r != CUDA_SUCCESS)
        return r;
    emu_ctx *c = &g_emu.ctx[dev];
    pthread_mutex_lock(&g_emu.lock);
    if (c->retains <= 0) {
        r = CUDA_ERROR_INVALID_CONTEXT;
    } else if (__atomic_sub_fetch(&c->retains, 1, __ATOMIC_RELEASE) == 0) {
        r = emu_result(simdev_close(c->sd));
    }
    pthread_mutex_unlock(&g_emu.lock);
    return r;
}

EMU_API CUresult cuCtxSetCurrent(CUcontext ctx)
{
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (!ctx) {
        if (t_depth > 0)
            t_depth--;
        return CUDA_SUCCESS;
    }
    emu_ctx *c = ctx_from(ctx);
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (t_depth == 0)
        t_depth = 1;
    t_stack[t_depth - 1] = c;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    if (!pctx)
        return CUDA_ERROR_INVALID_VALUE;
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    *pctx = t_depth > 0 ? (CUcontext)(void *)t_stack[t_depth - 1] : NULL;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    emu_ctx *c = ctx_from(ctx);
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (t_depth == EMU_CTX_STACK)
        return CUDA_ERROR_OUT_OF_MEMORY;
    t_stack[t_depth++] = c;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    if (!emu_initialized())
        return CUDA_ERROR_NOT_INITIALIZED;
    if (t_depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    emu_ctx *c = t_stack[--t_depth];
    if (pctx)
        *pctx = (CUcontext)(void *)c;
    return CUDA_SUCCESS;
}

EMU_API CUresult cuCtxGetDevice(CUdevice *device)
{
    emu_ctx *c;
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = emu_current(&c);
    if (r == CUDA_SUCCESS)
        *device = c->ordinal;
    return r;
}

/* ---------------------------------------------------------------- errors */

static const struct {
    CUresult code;
    const char *name;
    const char *text;
} emu_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY", "device not ready"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
     "part or all of the requested memory range is already mapped"},
    {CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
     "pointer does not correspond to a registered memory region"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

EMU_API CUresult cuGetErrorName(CUresult error, const char **str)
{
    if (!str)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof emu_errors / sizeof emu_errors[0]; i++) {
        if (emu_errors[i].code == error) {
            *str = emu_errors[i].name;
            return CUDA_SUCCESS;
        }
    }
    *str = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

EMU_API CUresult cuGetErrorString(CUresult error, const char **str)
{
    if (!str)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof emu_errors / sizeof emu_errors[0]; i++) {
        if (emu_errors[i].code == error) {
            *str = emu_errors[i].text;
            return CUDA_SUCCESS;
        }
    }
    *str = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

/* ---------------------------------------------------------------- cuGetProcAddress */

/* One exported entry point by its base name; `ptsz` is the per-thread-default-
 * stream variant when it is a distinct function. `since` is the CUDA version
 * that introduced the ABI we return. */
typedef struct emu_proc {
    const char *name;
    void *fn;
    void *ptsz;
    int since;
} emu_proc;

#define EMU_FN(f) ((void *)(f))

static const emu_proc emu_procs[] = {
    {"cuGetErrorName", EMU_FN(cuGetErrorName), NULL, 6000},
    {"cuGetErrorString", EMU_FN(cuGetErrorString), NULL, 6000},
    {"cuInit", EMU_FN(cuInit), NULL, 2000},
    {"cuDriverGetVersion", EMU_FN(cuDriverGetVersion), NULL, 2020},
    {"cuDeviceGet", EMU_FN(cuDeviceGet), NULL, 2000},
    {"cuDeviceGetCount", EMU_FN(cuDeviceGetCount), NULL, 2000},
    {"cuDeviceGetName", EMU_FN(cuDeviceGetName), NULL, 2000},
    {"cuDeviceTotalMem", EMU_FN(cuDeviceTotalMem_v2), NULL, 3020},
    {"cuDeviceGetAttribute", EMU_FN(cuDeviceGetAttribute), NULL, 2000},
    {"cuDevicePrimaryCtxRetain", EMU_FN(cuDevicePrimaryCtxRetain), NULL, 7000},
    {"cuDevicePrimaryCtxRelease", EMU_FN(cuDevicePrimaryCtxRelease_v2), NULL, 11000},
    {"cuCtxSetCurrent", EMU_FN(cuCtxSetCurrent), NULL, 4000},
    {"cuCtxGetCurrent", EMU_FN(cuCtxGetCurrent), NULL, 4000},
    {"cuCtxPushCurrent", EMU_FN(cuCtxPushCurrent_v2), NULL, 4000},
    {"cuCtxPopCurrent", EMU_FN(cuCtxPopCurrent_v2), NULL, 4000},
    {"cuCtxGetDevice", EMU_FN(cuCtxGetDevice), NULL, 2000},
    {"cuMemGetAllocationGranularity", EMU_FN(cuMemGetAllocationGranularity), NULL, 10020},
    {"cuMemAddressReserve", EMU_FN(cuMemAddressReserve), NULL, 10020},
    {"cuMemAddressFree", EMU_FN(cuMemAddressFree), NULL, 10020},
    {"cuMemCreate", EMU_FN(cuMemCreate), NULL, 10020},
    {"cuMemRelease", EMU_FN(cuMemRelease), NULL, 10020},
    {"cuMemMap", EMU_FN(cuMemMap), NULL, 10020},
    {"cuMemUnmap", EMU_FN(cuMemUnmap), NULL, 10020},
    {"cuMemSetAccess", EMU_FN(cuMemSetAccess), NULL, 10020},
    {"cuMemGetAllocationPropertiesFromHandle", EMU_FN(cuMemGetAllocationPropertiesFromHandle),
     NULL, 10020},
    {"cuMemHostRegister", EMU_FN(cuMemHostRegister_v2), NULL, 6050},
    {"cuMemHostUnregister", EMU_FN(cuMemHostUnregister), NULL, 4000},
    {"cuMemGetInfo", EMU_FN(cuMemGetInfo_v2), NULL, 3020},
    {"cuMemAlloc", EMU_FN(cuMemAlloc_v2), NULL, 3020},
    {"cuMemFree", EMU_FN(cuMemFree_v2), NULL, 3020},
    {"cuMemAllocAsync", EMU_FN(cuMemAllocAsync), EMU_FN(cuMemAllocAsync_ptsz), 11020},
    {"cuMemFreeAsync", EMU_FN(cuMemFreeAsync), EMU_FN(cuMemFreeAsync_ptsz), 11020},
    {"cuMemAllocFromPoolAsync", EMU_FN(cuMemAllocFromPoolAsync),
     EMU_FN(cuMemAllocFromPoolAsync_ptsz), 11020},
    {"cuPointerGetAttribute", EMU_FN(cuPointerGetAttribute), NULL, 4000},
    {"cuStreamCreate", EMU_FN(cuStreamCreate), NULL, 2000},
    {"cuStreamDestroy", EMU_FN(cuStreamDestroy_v2), NULL, 4000},
    {"cuStreamSynchronize", EMU_FN(cuStreamSynchronize), NULL, 2000},
    {"cuStreamWaitEvent", EMU_FN(cuStreamWaitEvent), NULL, 3020},
    {"cuMemcpyHtoDAsync", EMU_FN(cuMemcpyHtoDAsync_v2), NULL, 3020},
    {"cuMemcpyDtoHAsync", EMU_FN(cuMemcpyDtoHAsync_v2), NULL, 3020},
    {"cuMemcpyDtoDAsync", EMU_FN(cuMemcpyDtoDAsync_v2), NULL, 3020},
    {"cuEventCreate", EMU_FN(cuEventCreate), NULL, 2000},
    {"cuEventRecord", EMU_FN(cuEventRecord), NULL, 2000},
    {"cuEventQuery", EMU_FN(cuEventQuery), NULL, 2000},
    {"cuEventSynchronize", EMU_FN(cuEventSynchronize), NULL, 2000},
    {"cuEventDestroy", EMU_FN(cuEventDestroy_v2), NULL, 4000},
    {"cuGetProcAddress", EMU_FN(cuGetProcAddress_v2), NULL, 12000},
};

EMU_API CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion,
                                     cuuint64_t flags, CUdriverProcAddressQueryResult *status)
{
    if (!symbol || !pfn)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = NULL;
    if (status)
        *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    knobs();
    int driver = g_emu.driver_version;
    for (size_t i = 0; i < sizeof emu_procs / sizeof emu_procs[0]; i++) {
        const emu_proc *p = &emu_procs[i];
        if (strcmp(p->name, symbol) != 0)
            continue;
        if (p->since > driver)
            return CUDA_ERROR_NOT_FOUND;
        if (p->since > cudaVersion) {
            if (status)
                *status = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
            return CUDA_ERROR_NOT_FOUND;
        }
        void *fn = p->fn;
        if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && p->ptsz && !emu_ptsz_alias())
            fn = p->ptsz;
        *pfn = fn;
        if (status)
            *status = CU_GET_PROC_ADDRESS_SUCCESS;
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_NOT_FOUND;
}

/* The CUDA 11.3-11.8 form, still exported by newer drivers. */
EMU_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
