/* The conformance suite's HIP pieces: the native allocator (hipMalloc /
 * hipFree on the device), which the HIP backend's interception hooks see, and
 * the runtime emulator's live-object counters.
 *
 * Every runtime function is looked up with dlsym in the libamdhip64 the HIP
 * backend loaded and called through a local typedef: no HIP headers, so this
 * file compiles everywhere. Calling the exported entry point is what an
 * application (PyTorch's ROCm caching allocator) does, so it goes through the
 * inline-patched hook exactly as theirs would.
 */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suite.h"

/* The few runtime types and values used, as the HIP ABI defines them. */
typedef int vsc_hiperror; /* hipError_t; 0 = hipSuccess */

#define VSC_HIP_SUCCESS 0
#define VSC_HIP_ERROR_OUT_OF_MEMORY 2
#define VSC_HIP_ERROR_INVALID_DEVICE 101
#define VSC_HIP_ATTR_INTEGRATED 16 /* hipDeviceAttributeIntegrated */
#define VSC_HIP_ATTR_VMM_SUPPORTED 89 /* hipDeviceAttributeVirtualMemoryManagementSupported */

typedef vsc_hiperror (*vsc_hipInit_fn)(unsigned int flags);
typedef vsc_hiperror (*vsc_hipGetDeviceCount_fn)(int *count);
typedef vsc_hiperror (*vsc_hipDeviceGetAttribute_fn)(int *value, int attribute, int device);
typedef vsc_hiperror (*vsc_hipSetDevice_fn)(int device);
typedef vsc_hiperror (*vsc_hipMalloc_fn)(void **ptr, size_t size);
typedef vsc_hiperror (*vsc_hipFree_fn)(void *ptr);
typedef vsc_hiperror (*vsc_hip_counters_fn)(int ordinal, vs_sim_counters *out); /* the emulator's vsemu_counters */

typedef struct hip_native {
    void *lib;                    /* dlopen handle (a reference, closed at the end) */
    int device;                   /* HIP runtime ordinal */
    vsc_hipSetDevice_fn set_device;
    vsc_hipMalloc_fn mem_alloc;
    vsc_hipFree_fn mem_free;
} hip_native;

/* The sonames the backend tries (backends/hip/hip_api.c). */
static const char *const hip_names[] = {
    "libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5",
};

/* dl_iterate_phdr callback: a loaded object whose file name starts with
 * "libamdhip64" (copied into `arg`, PATH_MAX bytes). */
static int find_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    const char *path = info->dlpi_name;
    if (!path || !*path)
        return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "libamdhip64", 11) != 0)
        return 0;
    snprintf(arg, 4096, "%s", path);
    return 1;
}

/* The runtime the backend uses, already loaded (Note [One HIP runtime per
 * process] in backends/hip/hip_api.c): $VRAMSWAP_LIBHIP, else the copy in the
 * process. `load`: load $VRAMSWAP_LIBHIP if it is not loaded yet (only the
 * named one: a real runtime is never loaded by the suite's parent). */
static void *runtime_library(int load)
{
    const char *env = getenv("VRAMSWAP_LIBHIP");
    if (env && *env) {
        void *h = dlopen(env, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (!h && load)
            h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
        return h;
    }
    static char path[4096];
    if (dl_iterate_phdr(find_loaded, path)) {
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (h)
            return h;
    }
    for (size_t i = 0; i < VSC_COUNT(hip_names); i++) {
        void *h = dlopen(hip_names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (h)
            return h;
    }
    return NULL;
}

/* The HIP device behind vramswap's ordinal: the backend counts only devices
 * with virtual memory management whose attributes it can read, in runtime
 * order (Note [HIP devices without VMM] in backends/hip/hip_backend.c). */
static vsc_hiperror device_of(vsc_hipGetDeviceCount_fn get_count, vsc_hipDeviceGetAttribute_fn get_attr,
                              int ordinal, int *out)
{
    int n = 0;
    vsc_hiperror r = get_count(&n);
    if (r != VSC_HIP_SUCCESS)
        return r;
    for (int i = 0; i < n; i++) {
        int vmm = 0, integrated = 0;
        if (get_attr(&vmm, VSC_HIP_ATTR_VMM_SUPPORTED, i) != VSC_HIP_SUCCESS ||
            get_attr(&integrated, VSC_HIP_ATTR_INTEGRATED, i) != VSC_HIP_SUCCESS)
            continue; /* the backend skips such a device too */
        if (vmm && ordinal-- == 0) {
            *out = i;
            return VSC_HIP_SUCCESS;
        }
    }
    return VSC_HIP_ERROR_INVALID_DEVICE;
}

static vs_status hip_native_begin(int ordinal, void **state, char *why, size_t why_len)
{
    void *lib = runtime_library(0);
    if (!lib) {
        snprintf(why, why_len, "libamdhip64 is not loaded in this process");
        return VS_ERR_NOT_SUPPORTED;
    }
    vsc_hipInit_fn init = (vsc_hipInit_fn)dlsym(lib, "hipInit");
    vsc_hipGetDeviceCount_fn get_count = (vsc_hipGetDeviceCount_fn)dlsym(lib, "hipGetDeviceCount");
    vsc_hipDeviceGetAttribute_fn get_attr = (vsc_hipDeviceGetAttribute_fn)dlsym(lib, "hipDeviceGetAttribute");
    vsc_hipSetDevice_fn set_device = (vsc_hipSetDevice_fn)dlsym(lib, "hipSetDevice");
    vsc_hipMalloc_fn mem_alloc = (vsc_hipMalloc_fn)dlsym(lib, "hipMalloc");
    vsc_hipFree_fn mem_free = (vsc_hipFree_fn)dlsym(lib, "hipFree");
    if (!init || !get_count || !get_attr || !set_device || !mem_alloc || !mem_free) {
        dlclose(lib);
        snprintf(why, why_len, "libamdhip64 lacks one of hipInit, hipGetDeviceCount, hipDeviceGetAttribute, "
                               "hipSetDevice, hipMalloc, hipFree");
        return VS_ERR_NOT_SUPPORTED;
    }
    hip_native *s = calloc(1, sizeof *s);
    if (!s) {
        dlclose(lib);
        snprintf(why, why_len, "out of host memory");
        return VS_ERR_OUT_OF_MEMORY;
    }
    vsc_hiperror r = init(0);
    const char *step = "hipInit";
    if (r == VSC_HIP_SUCCESS) {
        step = "finding the device (hipDeviceGetAttribute)";
        r = device_of(get_count, get_attr, ordinal, &s->device);
    }
    if (r == VSC_HIP_SUCCESS) {
        step = "hipSetDevice";
        r = set_device(s->device);
    }
    if (r != VSC_HIP_SUCCESS) {
        snprintf(why, why_len, "%s failed with hipError_t %d", step, r);
        free(s);
        dlclose(lib);
        return VS_ERR_BACKEND;
    }
    s->lib = lib;
    s->set_device = set_device;
    s->mem_alloc = mem_alloc;
    s->mem_free = mem_free;
    *state = s;
    return VS_OK;
}

static vs_status hip_status(vsc_hiperror r)
{
    if (r == VSC_HIP_SUCCESS)
        return VS_OK;
    return r == VSC_HIP_ERROR_OUT_OF_MEMORY ? VS_ERR_OUT_OF_MEMORY : VS_ERR_BACKEND;
}

static vs_status hip_native_alloc(void *state, uint64_t size, uintptr_t *ptr)
{
    hip_native *s = state;
    vsc_hiperror r = s->set_device(s->device); /* the calling thread may be new */
    if (r != VSC_HIP_SUCCESS)
        return VS_ERR_BACKEND;
    void *p = NULL;
    r = s->mem_alloc(&p, (size_t)size);
    if (r == VSC_HIP_SUCCESS)
        *ptr = (uintptr_t)p;
    return hip_status(r);
}

static vs_status hip_native_free(void *state, uintptr_t ptr)
{
    hip_native *s = state;
    vsc_hiperror r = s->set_device(s->device);
    if (r != VSC_HIP_SUCCESS)
        return VS_ERR_BACKEND;
    return hip_status(s->mem_free((void *)ptr));
}

static void hip_native_end(void *state)
{
    hip_native *s = state;
    dlclose(s->lib);
    free(s);
}

/* Only the runtime emulator (tests/emulators/hip) can count its live objects;
 * its simulated devices all have VMM, so ordinals agree. Called before the
 * device is opened, so it may load $VRAMSWAP_LIBHIP first; the reference is
 * kept (the backend loads the same library right after). */
static bool hip_counters(int ordinal, vs_sim_counters *out)
{
    void *lib = runtime_library(1);
    if (!lib)
        return false;
    vsc_hip_counters_fn fn = (vsc_hip_counters_fn)dlsym(lib, "vsemu_counters");
    return fn && fn(ordinal, out) == VSC_HIP_SUCCESS;
}

const vsc_backend vsc_backend_hip = {
    .name = "hip",
    .prepare = NULL,
    .counters = hip_counters,
    .native_begin = hip_native_begin,
    .native_alloc = hip_native_alloc,
    .native_free = hip_native_free,
    .native_end = hip_native_end,
};
