/* Emulator core: knobs and zeInit, the driver, devices, contexts, fault
 * injection and the test-only exports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_ze.h"

emu_state emu_g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Injection per vs_sim_op (SQLite-style: skip, then fail count). */
static struct {
    pthread_mutex_t lock;
    uint32_t skip[VS_SIM_OP_COUNT_];
    uint32_t count[VS_SIM_OP_COUNT_];
    ze_result_t error[VS_SIM_OP_COUNT_];
    uint64_t calls[VS_SIM_OP_COUNT_];
} emu_inject = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---------------------------------------------------------------- helpers */

ze_result_t emu_result(vs_status st)
{
    switch (st) {
    case VS_OK:
        return ZE_RESULT_SUCCESS;
    case VS_ERR_OUT_OF_MEMORY:
        return ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY;
    case VS_ERR_NOT_READY:
        return ZE_RESULT_NOT_READY;
    case VS_ERR_INVALID_HANDLE:
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    case VS_ERR_NOT_SUPPORTED:
        return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
    case VS_ERR_BUSY:
        return ZE_RESULT_ERROR_HANDLE_OBJECT_IN_USE;
    case VS_ERR_INVALID_ARGUMENT:
    case VS_ERR_OUT_OF_RANGE:
    case VS_ERR_NO_DEVICE:
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    default:
        return ZE_RESULT_ERROR_UNKNOWN;
    }
}

int emu_initialized(void)
{
    return __atomic_load_n(&emu_g.initialized, __ATOMIC_ACQUIRE);
}

void emu_count(uint64_t *counter, int delta)
{
    pthread_mutex_lock(&emu_g.lock);
    *counter += (uint64_t)(int64_t)delta;
    pthread_mutex_unlock(&emu_g.lock);
}

ze_result_t emu_injected(int op)
{
    ze_result_t r = ZE_RESULT_SUCCESS;
    pthread_mutex_lock(&emu_inject.lock);
    emu_inject.calls[op]++;
    if (emu_inject.count[op] > 0) {
        if (emu_inject.skip[op] > 0) {
            emu_inject.skip[op]--;
        } else {
            emu_inject.count[op]--;
            r = emu_inject.error[op];
        }
    }
    pthread_mutex_unlock(&emu_inject.lock);
    return r;
}

int emu_is_driver(ze_driver_handle_t h)
{
    return h == (ze_driver_handle_t)&emu_g.magic_driver && emu_initialized();
}

emu_device *emu_dev(ze_device_handle_t h)
{
    emu_device *d = (emu_device *)h;
    if (!d || !emu_initialized() || d < &emu_g.devices[0] ||
        d >= &emu_g.devices[emu_g.device_count] || d->magic != EMU_MAGIC_DEVICE)
        return NULL;
    return d;
}

emu_context *emu_ctx(ze_context_handle_t h)
{
    emu_context *c = (emu_context *)h;
    return c && c->magic == EMU_MAGIC_CONTEXT ? c : NULL;
}

int emu_has_vmm(int ordinal)
{
    return ordinal >= 0 && ordinal < 64 && ((emu_g.vmm_mask >> ordinal) & 1ull);
}

int emu_owner(uint64_t ptr)
{
    for (int i = 0; i < emu_g.device_count; i++)
        if (simdev_find_range(emu_g.devices[i].sd, ptr, NULL, NULL, NULL) == VS_OK)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- test-only API */

EMU_API ze_result_t vsze_inject(int op, uint32_t skip, uint32_t count, ze_result_t error)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    pthread_mutex_lock(&emu_inject.lock);
    emu_inject.skip[op] = skip;
    emu_inject.count[op] = count;
    emu_inject.error[op] = error;
    pthread_mutex_unlock(&emu_inject.lock);
    return ZE_RESULT_SUCCESS;
}

EMU_API ze_result_t vsze_inject_clear(void)
{
    pthread_mutex_lock(&emu_inject.lock);
    memset(emu_inject.skip, 0, sizeof emu_inject.skip);
    memset(emu_inject.count, 0, sizeof emu_inject.count);
    pthread_mutex_unlock(&emu_inject.lock);
    return ZE_RESULT_SUCCESS;
}

EMU_API uint64_t vsze_calls(int op)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return 0;
    pthread_mutex_lock(&emu_inject.lock);
    uint64_t n = emu_inject.calls[op];
    pthread_mutex_unlock(&emu_inject.lock);
    return n;
}

EMU_API ze_result_t vsze_counters(int ordinal, vs_sim_counters *out)
{
    simdev_t *sd;
    if (!out)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (simdev_get(ordinal, &sd) != VS_OK)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    return emu_result(simdev_get_counters(sd, out));
}

EMU_API ze_result_t vsze_objects(vsze_objects_t *out)
{
    if (!out)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    pthread_mutex_lock(&emu_g.lock);
    *out = emu_g.objects;
    pthread_mutex_unlock(&emu_g.lock);
    return ZE_RESULT_SUCCESS;
}

EMU_API ze_result_t vsze_external_usage(int ordinal, uint64_t bytes)
{
    simdev_t *sd;
    if (simdev_get(ordinal, &sd) != VS_OK)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    return emu_result(simdev_set_external_usage(sd, bytes));
}

/* ---------------------------------------------------------------- knobs and zeInit */

static void parse_knobs(void)
{
    emu_g.no_gpu = 0;
    emu_g.init_error = ZE_RESULT_SUCCESS;
    emu_g.api_version = ZE_API_VERSION_CURRENT;
    emu_g.vmm_mask = ~0ull;
    emu_g.no_import = 0;
    emu_g.no_copy_engine = 0;
    emu_g.resv_pow2 = 0;
    emu_g.resv_align = 0;
    const char *spec = getenv("VRAMSWAP_EMU_ZE");
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
        if (strcmp(kv, "gpu") == 0) {
            emu_g.no_gpu = strcmp(val, "0") == 0;
        } else if (strcmp(kv, "init") == 0) {
            emu_g.init_error = (ze_result_t)strtoul(val, NULL, 0);
        } else if (strcmp(kv, "api") == 0) {
            unsigned major = 1, minor = 0;
            if (sscanf(val, "%u.%u", &major, &minor) == 2)
                emu_g.api_version = (ze_api_version_t)ZE_MAKE_VERSION(major, minor);
        } else if (strcmp(kv, "vmm") == 0) {
            emu_g.vmm_mask = strtoull(val, NULL, 0);
        } else if (strcmp(kv, "import") == 0) {
            emu_g.no_import = strcmp(val, "0") == 0;
        } else if (strcmp(kv, "copyengine") == 0) {
            emu_g.no_copy_engine = strcmp(val, "0") == 0;
        } else if (strcmp(kv, "resvpow2") == 0) {
            emu_g.resv_pow2 = strcmp(val, "1") == 0;
        } else if (strcmp(kv, "resvalign") == 0) {
            char *end = NULL;
            uint64_t n = strtoull(val, &end, 0);
            if (end && (*end == 'K' || *end == 'k'))
                n <<= 10;
            else if (end && (*end == 'M' || *end == 'm'))
                n <<= 20;
            emu_g.resv_align = n;
        } else {
            fprintf(stderr, "Level Zero emulator: unknown knob '%s'\n", kv);
        }
    }
}

ze_result_t emu_zeInit(ze_init_flags_t flags)
{
    ze_result_t r = ZE_RESULT_SUCCESS;
    pthread_mutex_lock(&emu_g.lock);
    if (emu_g.initialized)
        goto out;
    parse_knobs();
    if (emu_g.init_error != ZE_RESULT_SUCCESS) {
        r = emu_g.init_error;
        goto out;
    }
    /* A driver with no GPU declines GPU_ONLY; the loader then drops it. */
    if (emu_g.no_gpu && (flags & ZE_INIT_FLAG_GPU_ONLY)) {
        r = ZE_RESULT_ERROR_UNINITIALIZED;
        goto out;
    }
    if (!simdev_is_configured()) {
        vs_sim_config cfg;
        simdev_config_default(&cfg);
        if (simdev_config_parse(&cfg, getenv("VRAMSWAP_SIM")) != VS_OK ||
            simdev_configure(&cfg) != VS_OK) {
            fprintf(stderr, "Level Zero emulator: bad VRAMSWAP_SIM: %s\n", simdev_last_error());
            r = ZE_RESULT_ERROR_UNINITIALIZED;
            goto out;
        }
    }
    int n = simdev_device_count();
    if (n <= 0 || emu_g.no_gpu) {
        /* Initialized, but with no device (zeDeviceGet answers 0). */
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        emu_g.devices[i].magic = EMU_MAGIC_DEVICE;
        emu_g.devices[i].ordinal = i;
        if (simdev_get(i, &emu_g.devices[i].sd) != VS_OK) {
            r = ZE_RESULT_ERROR_UNINITIALIZED;
            goto out;
        }
        emu_g.memmod_magic[i] = EMU_MAGIC_MEMMOD;
    }
    emu_g.device_count = n;
    emu_g.magic_driver = EMU_MAGIC_DRIVER;
    const char *sysman = getenv("ZES_ENABLE_SYSMAN");
    emu_g.sysman = sysman && strcmp(sysman, "1") == 0;
    __atomic_store_n(&emu_g.initialized, 1, __ATOMIC_RELEASE);
out:
    pthread_mutex_unlock(&emu_g.lock);
    return r;
}

/* ---------------------------------------------------------------- driver */

ze_result_t emu_zeDriverGet(uint32_t *pCount, ze_driver_handle_t *phDrivers)
{
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (!emu_initialized())
        return ZE_RESULT_ERROR_UNINITIALIZED;
    if (*pCount == 0 || !phDrivers) {
        *pCount = 1;
        return ZE_RESULT_SUCCESS;
    }
    phDrivers[0] = (ze_driver_handle_t)&emu_g.magic_driver;
    *pCount = 1;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDriverGetApiVersion(ze_driver_handle_t hDriver, ze_api_version_t *version)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!version)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    *version = emu_g.api_version;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDriverGetProperties(ze_driver_handle_t hDriver, ze_driver_properties_t *p)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!p)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    memset(p->uuid.id, 0, sizeof p->uuid.id);
    memcpy(p->uuid.id, "vramswap-ze-emu", 15);
    p->driverVersion = 1;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDriverGetExtensionProperties(ze_driver_handle_t hDriver, uint32_t *pCount,
                                               ze_driver_extension_properties_t *p)
{
    (void)p;
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    *pCount = 0;
    return ZE_RESULT_SUCCESS;
}

/* Intel's host-pointer import extension: the range is registered with every
 * simulated device (a driver-wide registration). */
static ze_result_t emu_zexDriverImportExternalPointer(ze_driver_handle_t hDriver, void *ptr,
                                                      size_t size)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr || size == 0)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = emu_injected(VS_SIM_OP_HOST_REGISTER);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    for (int i = 0; i < emu_g.device_count; i++) {
        vs_status st = simdev_host_register(emu_g.devices[i].sd, ptr, size);
        if (st != VS_OK) {
            while (i-- > 0)
                (void)simdev_host_unregister(emu_g.devices[i].sd, ptr);
            return st == VS_ERR_OUT_OF_MEMORY ? ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY
                                              : emu_result(st);
        }
    }
    emu_count(&emu_g.objects.imported_pointers, +1);
    return ZE_RESULT_SUCCESS;
}

static ze_result_t emu_zexDriverReleaseImportedPointer(ze_driver_handle_t hDriver, void *ptr)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = ZE_RESULT_SUCCESS;
    for (int i = 0; i < emu_g.device_count; i++) {
        vs_status st = simdev_host_unregister(emu_g.devices[i].sd, ptr);
        if (st != VS_OK && r == ZE_RESULT_SUCCESS)
            r = emu_result(st);
    }
    if (r == ZE_RESULT_SUCCESS)
        emu_count(&emu_g.objects.imported_pointers, -1);
    return r;
}

ze_result_t emu_zeDriverGetExtensionFunctionAddress(ze_driver_handle_t hDriver, const char *name,
                                                    void **ppFunctionAddress)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!name || !ppFunctionAddress)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    *ppFunctionAddress = NULL;
    if (emu_g.no_import)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (strcmp(name, "zexDriverImportExternalPointer") == 0) {
        __typeof__(emu_zexDriverImportExternalPointer) *fn = emu_zexDriverImportExternalPointer;
        memcpy(ppFunctionAddress, &fn, sizeof fn);
        return ZE_RESULT_SUCCESS;
    }
    if (strcmp(name, "zexDriverReleaseImportedPointer") == 0) {
        __typeof__(emu_zexDriverReleaseImportedPointer) *fn = emu_zexDriverReleaseImportedPointer;
        memcpy(ppFunctionAddress, &fn, sizeof fn);
        return ZE_RESULT_SUCCESS;
    }
    return ZE_RESULT_ERROR_INVALID_ARGUMENT;
}

/* ---------------------------------------------------------------- devices */

ze_result_t emu_zeDeviceGet(ze_driver_handle_t hDriver, uint32_t *pCount,
                            ze_device_handle_t *phDevices)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    uint32_t n = (uint32_t)emu_g.device_count;
    if (*pCount == 0 || !phDevices) {
        *pCount = n;
        return ZE_RESULT_SUCCESS;
    }
    if (*pCount > n)
        *pCount = n;
    for (uint32_t i = 0; i < *pCount; i++)
        phDevices[i] = (ze_device_handle_t)&emu_g.devices[i];
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDeviceGetSubDevices(ze_device_handle_t hDevice, uint32_t *pCount,
                                      ze_device_handle_t *phSubdevices)
{
    (void)phSubdevices;
    if (!emu_dev(hDevice))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    *pCount = 0;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDeviceGetProperties(ze_device_handle_t hDevice, ze_device_properties_t *p)
{
    emu_device *d = emu_dev(hDevice);
    simdev_props sp;
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!p)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    ze_result_t r = emu_result(simdev_get_props(d->sd, &sp));
    if (r != ZE_RESULT_SUCCESS)
        return r;
    p->type = ZE_DEVICE_TYPE_GPU;
    p->vendorId = 0x8086;
    p->deviceId = 0x56a0; /* an Arc A770's id, for realism only */
    p->flags = sp.integrated ? ZE_DEVICE_PROPERTY_FLAG_INTEGRATED : 0;
    p->subdeviceId = 0;
    p->coreClockRate = 2100;
    p->maxMemAllocSize = sp.total_memory;
    p->maxHardwareContexts = 64;
    p->maxCommandQueuePriority = 0;
    p->numThreadsPerEU = 8;
    p->physicalEUSimdWidth = 8;
    p->numEUsPerSubslice = 16;
    p->numSubslicesPerSlice = 4;
    p->numSlices = 1;
    p->timerResolution = 1;
    p->timestampValidBits = 64;
    p->kernelTimestampValidBits = 32;
    memset(p->uuid.id, 0, sizeof p->uuid.id);
    p->uuid.id[0] = (uint8_t)d->ordinal;
    snprintf(p->name, sizeof p->name, "vramswap Level Zero emulator %d", d->ordinal);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDeviceGetMemoryProperties(ze_device_handle_t hDevice, uint32_t *pCount,
                                            ze_device_memory_properties_t *p)
{
    emu_device *d = emu_dev(hDevice);
    simdev_props sp;
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (*pCount == 0 || !p) {
        *pCount = 1;
        return ZE_RESULT_SUCCESS;
    }
    ze_result_t r = emu_result(simdev_get_props(d->sd, &sp));
    if (r != ZE_RESULT_SUCCESS)
        return r;
    *pCount = 1;
    p[0].flags = 0;
    p[0].maxClockRate = 1000;
    p[0].maxBusWidth = 256;
    p[0].totalSize = sp.total_memory;
    snprintf(p[0].name, sizeof p[0].name, "%s", sp.integrated ? "DDR" : "HBM");
    return ZE_RESULT_SUCCESS;
}

/* Group 0: compute and copy (one queue); group 1: a dedicated copy engine
 * (two queues) unless the copyengine:0 knob removes it. */
ze_result_t emu_zeDeviceGetCommandQueueGroupProperties(ze_device_handle_t hDevice, uint32_t *pCount,
                                                       ze_command_queue_group_properties_t *p)
{
    if (!emu_dev(hDevice))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    uint32_t n = emu_g.no_copy_engine ? 1 : 2;
    if (*pCount == 0 || !p) {
        *pCount = n;
        return ZE_RESULT_SUCCESS;
    }
    if (*pCount > n)
        *pCount = n;
    for (uint32_t i = 0; i < *pCount; i++) {
        p[i].flags = i == 0 ? (ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COMPUTE |
                               ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COPY)
                            : ZE_COMMAND_QUEUE_GROUP_PROPERTY_FLAG_COPY;
        p[i].maxMemoryFillPatternSize = i == 0 ? 128 : 4;
        p[i].numQueues = i == 0 ? 1 : 2;
    }
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeDeviceGetStatus(ze_device_handle_t hDevice)
{
    return emu_dev(hDevice) ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
}

/* ---------------------------------------------------------------- contexts */

ze_result_t emu_zeContextCreateEx(ze_driver_handle_t hDriver, const ze_context_desc_t *desc,
                                  uint32_t numDevices, ze_device_handle_t *phDevices,
                                  ze_context_handle_t *phContext)
{
    if (!emu_is_driver(hDriver))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!desc || !phContext || (numDevices && !phDevices))
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    emu_context *c = calloc(1, sizeof *c);
    if (!c)
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    if (numDevices == 0) {
        c->ndev = emu_g.device_count;
        for (int i = 0; i < c->ndev; i++)
            c->dev[i] = i;
    } else {
        if (numDevices > SIMDEV_MAX_DEVICES) {
            free(c);
            return ZE_RESULT_ERROR_INVALID_SIZE;
        }
        for (uint32_t i = 0; i < numDevices; i++) {
            emu_device *d = emu_dev(phDevices[i]);
            if (!d) {
                free(c);
                return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
            }
            c->dev[c->ndev++] = d->ordinal;
        }
    }
    /* A context holds its devices open (simdev drains their streams at the last close). */
    for (int i = 0; i < c->ndev; i++) {
        simdev_t *sd;
        if (simdev_open(c->dev[i], &sd) != VS_OK) {
            while (i-- > 0)
                (void)simdev_close(emu_g.devices[c->dev[i]].sd);
            free(c);
            return ZE_RESULT_ERROR_UNKNOWN;
        }
    }
    c->magic = EMU_MAGIC_CONTEXT;
    emu_count(&emu_g.objects.contexts, +1);
    *phContext = (ze_context_handle_t)c;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeContextCreate(ze_driver_handle_t hDriver, const ze_context_desc_t *desc,
                                ze_context_handle_t *phContext)
{
    return emu_zeContextCreateEx(hDriver, desc, 0, NULL, phContext);
}

ze_result_t emu_zeContextDestroy(ze_context_handle_t hContext)
{
    emu_context *c = emu_ctx(hContext);
    if (!c)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    c->magic = 0;
    for (int i = 0; i < c->ndev; i++)
        (void)simdev_close(emu_g.devices[c->dev[i]].sd);
    free(c);
    emu_count(&emu_g.objects.contexts, -1);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeContextGetStatus(ze_context_handle_t hContext)
{
    return emu_ctx(hContext) ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
}
