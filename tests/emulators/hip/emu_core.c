/* Emulator core: implicit initialization and knobs, devices and the per-thread
 * current device, attributes, versions, error strings, fault injection. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_hip.h"

/* The emulator's process-wide state, written once by init_once(). */
static struct {
    hipError_t init_result;            /* of the one initialization */
    int device_count;
    simdev_t *sd[SIMDEV_MAX_DEVICES];  /* opened at initialization, never closed */
    unsigned long long vmm_mask;       /* knob vmm: */
    int vmm_attr_unknown;              /* knob vmmattr:unknown */
    int init_error;                    /* knob init: */
    int runtime_version;               /* knob runtime: */
    int strand;                        /* knob strand: */
    int align_reject;                  /* knob align:reject */
} g_emu;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Injection per vs_sim_op (SQLite-style: skip, then fail). */
static struct {
    pthread_mutex_t lock;
    uint32_t skip[VS_SIM_OP_COUNT_];
    uint32_t count[VS_SIM_OP_COUNT_];
    hipError_t error[VS_SIM_OP_COUNT_];
    uint64_t calls[VS_SIM_OP_COUNT_];
} g_inject = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* HIP's current device: per thread, 0 on a new thread. */
static _Thread_local int t_device;

static void parse_knobs(void)
{
    g_emu.vmm_mask = ~0ull;
    g_emu.runtime_version = 60400000;
    const char *spec = getenv("VRAMSWAP_EMU_HIP");
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
        else if (strcmp(kv, "vmmattr") == 0)
            g_emu.vmm_attr_unknown = strcmp(val, "unknown") == 0;
        else if (strcmp(kv, "init") == 0)
            g_emu.init_error = (int)strtol(val, NULL, 0);
        else if (strcmp(kv, "runtime") == 0)
            g_emu.runtime_version = (int)strtol(val, NULL, 0);
        else if (strcmp(kv, "align") == 0)
            g_emu.align_reject = strcmp(val, "reject") == 0;
        else if (strcmp(kv, "strand") == 0)
            g_emu.strand = (int)strtol(val, NULL, 0) != 0;
        else
            fprintf(stderr, "libamdhip64 emulator: unknown knob '%s'\n", kv);
    }
}

static hipError_t init_devices(void)
{
    if (g_emu.init_error)
        return (hipError_t)g_emu.init_error;
    if (!simdev_is_configured()) {
        vs_sim_config cfg;
        simdev_config_default(&cfg);
        if (simdev_config_parse(&cfg, getenv("VRAMSWAP_SIM")) != VS_OK ||
            simdev_configure(&cfg) != VS_OK) {
            fprintf(stderr, "libamdhip64 emulator: bad VRAMSWAP_SIM: %s\n", simdev_last_error());
            return hipErrorInvalidValue;
        }
    }
    int n = simdev_device_count();
    if (n <= 0)
        return hipErrorNoDevice;
    for (int i = 0; i < n; i++)
        if (simdev_open(i, &g_emu.sd[i]) != VS_OK)
            return hipErrorNoDevice;
    g_emu.device_count = n;
    return hipSuccess;
}

static void init_once(void)
{
    parse_knobs();
    g_emu.init_result = init_devices();
}

/* ---------------------------------------------------------------- helpers */

hipError_t emu_ready(void)
{
    pthread_once(&g_once, init_once);
    return g_emu.init_result;
}

int emu_device_count(void)
{
    return g_emu.device_count;
}

int emu_has_vmm(int ordinal)
{
    return ordinal >= 0 && ordinal < 64 && ((g_emu.vmm_mask >> ordinal) & 1ull);
}

int emu_vmm_attr_unknown(void)
{
    return g_emu.vmm_attr_unknown;
}

int emu_strands(void)
{
    return g_emu.strand;
}

int emu_align_reject(void)
{
    return g_emu.align_reject;
}

int emu_runtime_version(void)
{
    return g_emu.runtime_version;
}

hipError_t emu_result(vs_status st)
{
    switch (st) {
    case VS_OK:
        return hipSuccess;
    case VS_ERR_OUT_OF_MEMORY:
        return hipErrorOutOfMemory;
    case VS_ERR_NOT_READY:
        return hipErrorNotReady;
    case VS_ERR_INVALID_HANDLE:
        return hipErrorInvalidHandle;
    case VS_ERR_NOT_SUPPORTED:
        return hipErrorNotSupported;
    case VS_ERR_NO_DEVICE:
        return hipErrorInvalidDevice;
    case VS_ERR_INVALID_ARGUMENT:
    case VS_ERR_OUT_OF_RANGE:
    case VS_ERR_BUSY:
        return hipErrorInvalidValue;
    default:
        return hipErrorUnknown;
    }
}

hipError_t emu_device(int ordinal, simdev_t **sd)
{
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    if (ordinal < 0 || ordinal >= g_emu.device_count)
        return hipErrorInvalidDevice;
    *sd = g_emu.sd[ordinal];
    return hipSuccess;
}

hipError_t emu_current(simdev_t **sd, int *ordinal)
{
    hipError_t r = emu_device(t_device, sd);
    if (r == hipSuccess && ordinal)
        *ordinal = t_device;
    return r;
}

int emu_owner(uint64_t ptr, int kind)
{
    for (int i = 0; i < g_emu.device_count; i++) {
        int k = 0;
        if (simdev_find_range(g_emu.sd[i], ptr, NULL, NULL, &k) == VS_OK && k == kind)
            return i;
    }
    return -1;
}

hipError_t emu_stream(hipStream_t s, simdev_t **sd, simdev_handle *h)
{
    uintptr_t v = (uintptr_t)s;
    if (v == 0 || s == hipStreamPerThread) {
        *h = 0;
        return emu_current(sd, NULL);
    }
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    r = emu_device(simdev_handle_ordinal((simdev_handle)v), sd);
    if (r != hipSuccess)
        return r == hipErrorInvalidDevice ? hipErrorInvalidHandle : r;
    *h = (simdev_handle)v;
    return hipSuccess;
}

hipError_t emu_injected(int op)
{
    hipError_t r = hipSuccess;
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

EMU_API hipError_t vsemu_inject(int op, uint32_t skip, uint32_t count, hipError_t error)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return hipErrorInvalidValue;
    pthread_mutex_lock(&g_inject.lock);
    g_inject.skip[op] = skip;
    g_inject.count[op] = count;
    g_inject.error[op] = error;
    pthread_mutex_unlock(&g_inject.lock);
    return hipSuccess;
}

EMU_API hipError_t vsemu_inject_clear(void)
{
    pthread_mutex_lock(&g_inject.lock);
    memset(g_inject.skip, 0, sizeof g_inject.skip);
    memset(g_inject.count, 0, sizeof g_inject.count);
    pthread_mutex_unlock(&g_inject.lock);
    return hipSuccess;
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

EMU_API hipError_t vsemu_counters(int ordinal, vs_sim_counters *out)
{
    simdev_t *sd;
    if (!out)
        return hipErrorInvalidValue;
    if (simdev_get(ordinal, &sd) != VS_OK)
        return hipErrorInvalidDevice;
    return emu_result(simdev_get_counters(sd, out));
}

/* ---------------------------------------------------------------- initialization, versions */

EMU_API hipError_t hipInit(unsigned int flags)
{
    if (flags != 0)
        return hipErrorInvalidValue;
    return emu_ready();
}

EMU_API hipError_t hipRuntimeGetVersion(int *runtimeVersion)
{
    if (!runtimeVersion)
        return hipErrorInvalidValue;
    (void)emu_ready(); /* the version is known without a device */
    *runtimeVersion = g_emu.runtime_version;
    return hipSuccess;
}

EMU_API hipError_t hipDriverGetVersion(int *driverVersion)
{
    if (!driverVersion)
        return hipErrorInvalidValue;
    (void)emu_ready();
    *driverVersion = g_emu.runtime_version;
    return hipSuccess;
}

/* ---------------------------------------------------------------- devices */

EMU_API hipError_t hipGetDeviceCount(int *count)
{
    if (!count)
        return hipErrorInvalidValue;
    hipError_t r = emu_ready();
    if (r != hipSuccess) {
        *count = 0;
        return r;
    }
    *count = g_emu.device_count;
    return hipSuccess;
}

EMU_API hipError_t hipSetDevice(int deviceId)
{
    simdev_t *sd;
    hipError_t r = emu_device(deviceId, &sd);
    if (r == hipSuccess)
        t_device = deviceId;
    return r;
}

EMU_API hipError_t hipGetDevice(int *deviceId)
{
    if (!deviceId)
        return hipErrorInvalidValue;
    hipError_t r = emu_ready();
    if (r == hipSuccess)
        *deviceId = t_device;
    return r;
}

EMU_API hipError_t hipDeviceGet(hipDevice_t *device, int ordinal)
{
    simdev_t *sd;
    if (!device)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(ordinal, &sd);
    if (r == hipSuccess)
        *device = ordinal;
    return r;
}

EMU_API hipError_t hipDeviceGetName(char *name, int len, hipDevice_t device)
{
    simdev_t *sd;
    if (!name || len <= 0)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(device, &sd);
    if (r != hipSuccess)
        return r;
    snprintf(name, (size_t)len, "vramswap HIP emulator %d", device);
    return hipSuccess;
}

EMU_API hipError_t hipDeviceTotalMem(size_t *bytes, hipDevice_t device)
{
    simdev_t *sd;
    simdev_props p;
    if (!bytes)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(device, &sd);
    if (r != hipSuccess)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r == hipSuccess)
        *bytes = (size_t)p.total_memory;
    return r;
}

EMU_API hipError_t hipDeviceGetAttribute(int *pi, hipDeviceAttribute_t attr, int deviceId)
{
    simdev_t *sd;
    simdev_props p;
    if (!pi)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(deviceId, &sd);
    if (r != hipSuccess)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r != hipSuccess)
        return r;
    if (attr == EMU_ATTR_VMM_SUPPORTED) {
        if (g_emu.vmm_attr_unknown)
            return hipErrorInvalidValue;
        *pi = emu_has_vmm(deviceId);
        return hipSuccess;
    }
    switch (attr) {
    case hipDeviceAttributeIntegrated:
        *pi = p.integrated;
        break;
    case hipDeviceAttributeCanMapHostMemory:
    case hipDeviceAttributeMemoryPoolsSupported:
        *pi = 1;
        break;
    case hipDeviceAttributeWarpSize:
        *pi = 64;
        break;
    default:
        *pi = 0;
        break;
    }
    return hipSuccess;
}

/* ---------------------------------------------------------------- errors */

static const struct {
    hipError_t code;
    const char *name;
    const char *text;
} emu_errors[] = {
    {hipSuccess, "hipSuccess", "no error"},
    {hipErrorInvalidValue, "hipErrorInvalidValue", "invalid argument"},
    {hipErrorOutOfMemory, "hipErrorOutOfMemory", "out of memory"},
    {hipErrorNotInitialized, "hipErrorNotInitialized", "initialization error"},
    {hipErrorDeinitialized, "hipErrorDeinitialized", "driver shutting down"},
    {hipErrorNoDevice, "hipErrorNoDevice", "no ROCm-capable device is detected"},
    {hipErrorInvalidDevice, "hipErrorInvalidDevice", "invalid device ordinal"},
    {hipErrorInvalidContext, "hipErrorInvalidContext", "invalid device context"},
    {hipErrorInvalidHandle, "hipErrorInvalidHandle", "invalid resource handle"},
    {hipErrorNotFound, "hipErrorNotFound", "named symbol not found"},
    {hipErrorNotReady, "hipErrorNotReady", "device not ready"},
    {hipErrorIllegalAddress, "hipErrorIllegalAddress", "an illegal memory access was encountered"},
    {hipErrorHostMemoryAlreadyRegistered, "hipErrorHostMemoryAlreadyRegistered",
     "part or all of the requested memory range is already mapped"},
    {hipErrorHostMemoryNotRegistered, "hipErrorHostMemoryNotRegistered",
     "pointer does not correspond to a registered memory region"},
    {hipErrorNotSupported, "hipErrorNotSupported", "operation not supported"},
    {hipErrorUnknown, "hipErrorUnknown", "unknown error"},
};

/* As the real runtime, unknown codes get a name rather than NULL. */
EMU_API const char *hipGetErrorName(hipError_t hip_error)
{
    for (size_t i = 0; i < sizeof emu_errors / sizeof emu_errors[0]; i++)
        if (emu_errors[i].code == hip_error)
            return emu_errors[i].name;
    return "hipErrorUnknown";
}

EMU_API const char *hipGetErrorString(hipError_t hipError)
{
    for (size_t i = 0; i < sizeof emu_errors / sizeof emu_errors[0]; i++)
        if (emu_errors[i].code == hipError)
            return emu_errors[i].text;
    return "unknown error";
}
