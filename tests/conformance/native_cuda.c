/* The conformance suite's CUDA pieces: the native allocator (cuMemAlloc_v2 /
 * cuMemFree_v2 in the device's primary context), which the CUDA backend's
 * interception hooks see, and the driver emulator's live-object counters.
 *
 * Every driver function is looked up with dlsym in the libcuda the CUDA backend
 * loaded ($VRAMSWAP_LIBCUDA, else libcuda.so.1) and called through a local
 * typedef: no cuda.h, so this file compiles everywhere. Calling the exported
 * entry point is what an application (PyTorch's caching allocator) does, so it
 * goes through the inline-patched hook exactly as theirs would.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "suite.h"

/* The few driver types used, as the CUDA ABI defines them (64-bit). */
typedef int vsc_curesult;                   /* CUresult; 0 = CUDA_SUCCESS */
typedef int vsc_cudevice;                   /* CUdevice */
typedef void *vsc_cucontext;                /* CUcontext */
typedef unsigned long long vsc_cudeviceptr; /* CUdeviceptr (v2) */

#define VSC_CUDA_SUCCESS 0
#define VSC_CUDA_ERROR_OUT_OF_MEMORY 2
#define VSC_CUDA_ERROR_INVALID_DEVICE 101
#define VSC_CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED 102

typedef vsc_curesult (*vsc_cuInit_fn)(unsigned int flags);
typedef vsc_curesult (*vsc_cuDeviceGet_fn)(vsc_cudevice *dev, int ordinal);
typedef vsc_curesult (*vsc_cuDeviceGetCount_fn)(int *count);
typedef vsc_curesult (*vsc_cuDeviceGetAttribute_fn)(int *value, int attribute, vsc_cudevice dev);
typedef vsc_curesult (*vsc_cuDevicePrimaryCtxRetain_fn)(vsc_cucontext *ctx, vsc_cudevice dev);
typedef vsc_curesult (*vsc_cuDevicePrimaryCtxRelease_fn)(vsc_cudevice dev);
typedef vsc_curesult (*vsc_cuCtxSetCurrent_fn)(vsc_cucontext ctx);
typedef vsc_curesult (*vsc_cuMemAlloc_fn)(vsc_cudeviceptr *ptr, size_t size);
typedef vsc_curesult (*vsc_cuMemFree_fn)(vsc_cudeviceptr ptr);
typedef vsc_curesult (*vsc_counters_fn)(int ordinal, vs_sim_counters *out); /* the emulator's vsemu_counters */

typedef struct cuda_native {
    void *lib;                               /* dlopen handle (a reference, closed at the end) */
    vsc_cudevice device;
    vsc_cucontext ctx;                       /* retained primary context */
    vsc_cuCtxSetCurrent_fn set_current;
    vsc_cuDevicePrimaryCtxRelease_fn release;
    vsc_cuMemAlloc_fn mem_alloc;
    vsc_cuMemFree_fn mem_free;
} cuda_native;

/* The driver library the backend uses; `load`: load it if it is not loaded yet. */
static void *driver_library(int load)
{
    const char *env = getenv("VRAMSWAP_LIBCUDA");
    const char *name = env && *env ? env : "libcuda.so.1";
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h && load)
        h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    return h;
}

static void *lookup(void *lib, const char *name)
{
    void *p = lib ? dlsym(lib, name) : NULL;
    return p ? p : dlsym(RTLD_DEFAULT, name);
}

/* The CUDA device behind vramswap's ordinal: the backend counts only devices
 * with virtual memory management, in driver order (Note [CUDA devices without
 * VMM] in backends/cuda/cuda_backend.c), so do the same. */
static vsc_curesult device_of(void *lib, int ordinal, vsc_cudevice *out)
{
    vsc_cuDeviceGet_fn device_get = (vsc_cuDeviceGet_fn)lookup(lib, "cuDeviceGet");
    vsc_cuDeviceGetCount_fn get_count = (vsc_cuDeviceGetCount_fn)lookup(lib, "cuDeviceGetCount");
    vsc_cuDeviceGetAttribute_fn get_attr = (vsc_cuDeviceGetAttribute_fn)lookup(lib, "cuDeviceGetAttribute");
    int n = 0;
    vsc_curesult r = get_count(&n);
    for (int i = 0; r == VSC_CUDA_SUCCESS && i < n; i++) {
        vsc_cudevice d;
        int vmm = 0;
        r = device_get(&d, i);
        if (r == VSC_CUDA_SUCCESS)
            r = get_attr(&vmm, VSC_CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, d);
        if (r != VSC_CUDA_SUCCESS) { /* the backend skips such a device too */
            r = VSC_CUDA_SUCCESS;
            continue;
        }
        if (vmm && ordinal-- == 0) {
            *out = d;
            return VSC_CUDA_SUCCESS;
        }
    }
    return r == VSC_CUDA_SUCCESS ? VSC_CUDA_ERROR_INVALID_DEVICE : r;
}

static vs_status cuda_native_begin(int ordinal, void **state, char *why, size_t why_len)
{
    void *lib = driver_library(0);
    if (!lib) {
        snprintf(why, why_len, "libcuda is not loaded in this process");
        return VS_ERR_NOT_SUPPORTED;
    }
    vsc_cuInit_fn init = (vsc_cuInit_fn)lookup(lib, "cuInit");
    bool have_devices = lookup(lib, "cuDeviceGet") && lookup(lib, "cuDeviceGetCount") &&
                        lookup(lib, "cuDeviceGetAttribute");
    vsc_cuDevicePrimaryCtxRetain_fn retain = (vsc_cuDevicePrimaryCtxRetain_fn)lookup(lib, "cuDevicePrimaryCtxRetain");
    vsc_cuDevicePrimaryCtxRelease_fn release =
        (vsc_cuDevicePrimaryCtxRelease_fn)lookup(lib, "cuDevicePrimaryCtxRelease_v2");
    if (!release)
        release = (vsc_cuDevicePrimaryCtxRelease_fn)lookup(lib, "cuDevicePrimaryCtxRelease");
    vsc_cuCtxSetCurrent_fn set_current = (vsc_cuCtxSetCurrent_fn)lookup(lib, "cuCtxSetCurrent");
    vsc_cuMemAlloc_fn mem_alloc = (vsc_cuMemAlloc_fn)lookup(lib, "cuMemAlloc_v2");
    vsc_cuMemFree_fn mem_free = (vsc_cuMemFree_fn)lookup(lib, "cuMemFree_v2");
    if (!init || !have_devices || !retain || !release || !set_current || !mem_alloc || !mem_free) {
        dlclose(lib);
        snprintf(why, why_len, "libcuda lacks one of cuInit, cuDeviceGet(Count/Attribute), "
                               "cuDevicePrimaryCtxRetain/Release, cuCtxSetCurrent, cuMemAlloc_v2, cuMemFree_v2");
        return VS_ERR_NOT_SUPPORTED;
    }
    cuda_native *s = calloc(1, sizeof *s);
    if (!s) {
        dlclose(lib);
        snprintf(why, why_len, "out of host memory");
        return VS_ERR_OUT_OF_MEMORY;
    }
    vsc_curesult r = init(0);
    const char *step = "cuInit";
    if (r == VSC_CUDA_SUCCESS) {
        step = "finding the device (cuDeviceGet)";
        r = device_of(lib, ordinal, &s->device);
    }
    if (r == VSC_CUDA_SUCCESS) {
        step = "cuDevicePrimaryCtxRetain";
        r = retain(&s->ctx, s->device);
    }
    if (r == VSC_CUDA_SUCCESS) {
        step = "cuCtxSetCurrent";
        r = set_current(s->ctx);
        if (r != VSC_CUDA_SUCCESS)
            release(s->device);
    }
    if (r != VSC_CUDA_SUCCESS) {
        snprintf(why, why_len, "%s failed with CUresult %d", step, r);
        free(s);
        dlclose(lib);
        return VS_ERR_BACKEND;
    }
    s->lib = lib;
    s->set_current = set_current;
    s->release = release;
    s->mem_alloc = mem_alloc;
    s->mem_free = mem_free;
    *state = s;
    return VS_OK;
}

static vs_status cuda_status(vsc_curesult r)
{
    if (r == VSC_CUDA_SUCCESS)
        return VS_OK;
    return r == VSC_CUDA_ERROR_OUT_OF_MEMORY ? VS_ERR_OUT_OF_MEMORY : VS_ERR_BACKEND;
}

static vs_status cuda_native_alloc(void *state, uint64_t size, uintptr_t *ptr)
{
    cuda_native *s = state;
    vsc_curesult r = s->set_current(s->ctx); /* the calling thread may be new */
    if (r != VSC_CUDA_SUCCESS)
        return VS_ERR_BACKEND;
    vsc_cudeviceptr p = 0;
    r = s->mem_alloc(&p, (size_t)size);
    if (r == VSC_CUDA_SUCCESS)
        *ptr = (uintptr_t)p;
    return cuda_status(r);
}

static vs_status cuda_native_free(void *state, uintptr_t ptr)
{
    cuda_native *s = state;
    vsc_curesult r = s->set_current(s->ctx);
    if (r != VSC_CUDA_SUCCESS)
        return VS_ERR_BACKEND;
    return cuda_status(s->mem_free((vsc_cudeviceptr)ptr));
}

static void cuda_native_end(void *state)
{
    cuda_native *s = state;
    s->release(s->device);
    dlclose(s->lib);
    free(s);
}

/* Only the driver emulator (tests/emulators/cuda) can count its live objects.
 * Called before the device is opened, so it may load the library first; the
 * reference is kept (the backend loads the same library right after). */
static bool cuda_counters(int ordinal, vs_sim_counters *out)
{
    void *lib = driver_library(1);
    if (!lib)
        return false;
    vsc_counters_fn fn = (vsc_counters_fn)dlsym(lib, "vsemu_counters");
    return fn && fn(ordinal, out) == VSC_CUDA_SUCCESS;
}

const vsc_backend vsc_backend_cuda = {
    .name = "cuda",
    .prepare = NULL,
    .counters = cuda_counters,
    .native_begin = cuda_native_begin,
    .native_alloc = cuda_native_alloc,
    .native_free = cuda_native_free,
    .native_end = cuda_native_end,
};
