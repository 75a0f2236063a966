/* Emulator memory: VMM (reserve, create, map, access, unmap), the allocation
 * entry points the HIP backend hooks, host registration, pointer attributes
 * and memory info.
 *
 * Note [Patchable emulator entry points]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * The hook tests patch these functions' code exactly as vramswap patches the
 * real libamdhip64. So each hooked entry point (hipMalloc, hipFree,
 * hipExtMallocWithFlags, hipMallocAsync, hipFreeAsync) is an ordinary function
 * with its own full body: the shared logic is force-inlined (never a 5-byte
 * tail jump to a helper), and the library is built with -fno-ipa-icf so two
 * entry points are never folded into one function or a thunk; their bodies
 * also differ (each validates its own arguments).
 *
 * Note [Emulated stranding]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * With the knob strand:1, hipMemRelease of a chunk whose last reservation is
 * still reserved does not give its memory back: the simdev chunk stays alive
 * (and counted by hipMemGetInfo) until hipMemAddressFree of that reservation
 * releases it -- what several ROCm releases do on Linux. The released handle is
 * dead to the caller either way. The chunk table below remembers, per handle,
 * the reservation it was last mapped in.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_hip.h"

#define EMU_INLINE static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- the chunk table */

typedef struct emu_chunk {
    simdev_handle h;
    uint64_t res_base;   /* reservation it was last mapped in, 0 = none */
    int zombie;          /* released by the caller, kept alive by the reservation */
} emu_chunk;

static struct {
    pthread_mutex_t lock;
    emu_chunk *v;
    size_t n, cap;
} g_chunks = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Index of a live (non-zombie) handle, or -1 (lock held). */
static long chunk_find(simdev_handle h)
{
    for (size_t i = 0; i < g_chunks.n; i++)
        if (g_chunks.v[i].h == h && !g_chunks.v[i].zombie)
            return (long)i;
    return -1;
}

static int chunk_add(simdev_handle h)
{
    int ok = 1;
    pthread_mutex_lock(&g_chunks.lock);
    if (g_chunks.n == g_chunks.cap) {
        size_t cap = g_chunks.cap ? g_chunks.cap * 2 : 64;
        emu_chunk *v = realloc(g_chunks.v, cap * sizeof *v);
        if (v) {
            g_chunks.v = v;
            g_chunks.cap = cap;
        } else {
            ok = 0;
        }
    }
    if (ok)
        g_chunks.v[g_chunks.n++] = (emu_chunk){h, 0, 0};
    pthread_mutex_unlock(&g_chunks.lock);
    return ok;
}

static hipMemGenericAllocationHandle_t as_handle(simdev_handle h)
{
    return (hipMemGenericAllocationHandle_t)(uintptr_t)h;
}

static simdev_handle of_handle(hipMemGenericAllocationHandle_t h)
{
    return (simdev_handle)(uintptr_t)h;
}

static uint64_t addr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

/* ---------------------------------------------------------------- granularity */

EMU_API hipError_t hipMemGetAllocationGranularity(size_t *granularity, const hipMemAllocationProp *prop,
                                                  hipMemAllocationGranularity_flags option)
{
    simdev_t *sd;
    simdev_props p;
    if (!granularity || !prop || prop->type != hipMemAllocationTypePinned ||
        prop->location.type != hipMemLocationTypeDevice)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(prop->location.id, &sd);
    if (r != hipSuccess)
        return r;
    r = emu_result(simdev_get_props(sd, &p));
    if (r != hipSuccess)
        return r;
    if (option == hipMemAllocationGranularityMinimum)
        *granularity = (size_t)p.granularity;
    else if (option == hipMemAllocationGranularityRecommended)
        *granularity = (size_t)p.preferred_page_size;
    else
        return hipErrorInvalidValue;
    return hipSuccess;
}

/* ---------------------------------------------------------------- address space */

EMU_API hipError_t hipMemAddressReserve(void **ptr, size_t size, size_t alignment, void *addr_hint,
                                        unsigned long long flags)
{
    simdev_t *sd;
    if (!ptr || size == 0 || flags != 0)
        return hipErrorInvalidValue;
    (void)addr_hint; /* a hint; simdev picks the address */
    /* HIP's address space is process-wide; the emulator reserves in the
     * current device. */
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_VA_RESERVE)) != hipSuccess)
        return r;
    if (emu_align_reject()) {
        simdev_props p;
        if (alignment)
            return hipErrorInvalidValue;
        if ((r = emu_result(simdev_get_props(sd, &p))) != hipSuccess)
            return r;
        alignment = (size_t)p.preferred_page_size;
    }
    uint64_t va = 0;
    r = emu_result(simdev_va_reserve(sd, size, alignment, &va));
    if (r == hipSuccess)
        *ptr = (void *)(uintptr_t)va;
    return r;
}

EMU_API hipError_t hipMemAddressFree(void *devPtr, size_t size)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    if (size == 0 || emu_device(emu_owner(addr(devPtr), SIMDEV_RANGE_RESERVED), &sd) != hipSuccess)
        return hipErrorInvalidValue;
    if ((r = emu_injected(VS_SIM_OP_VA_FREE)) != hipSuccess)
        return r;
    r = emu_result(simdev_va_free(sd, addr(devPtr), size));
    if (r != hipSuccess)
        return r;
    /* Note [Emulated stranding]: the reservation's stranded chunks go now. */
    pthread_mutex_lock(&g_chunks.lock);
    for (size_t i = g_chunks.n; i-- > 0;) {
        emu_chunk *c = &g_chunks.v[i];
        if (c->zombie && c->res_base == addr(devPtr)) {
            (void)simdev_phys_release(sd, c->h);
            *c = g_chunks.v[--g_chunks.n];
        }
    }
    pthread_mutex_unlock(&g_chunks.lock);
    return hipSuccess;
}

/* ---------------------------------------------------------------- physical memory */

EMU_API hipError_t hipMemCreate(hipMemGenericAllocationHandle_t *handle, size_t size,
                                const hipMemAllocationProp *prop, unsigned long long flags)
{
    simdev_t *sd;
    if (!handle || !prop || size == 0 || flags != 0 || prop->type != hipMemAllocationTypePinned ||
        prop->location.type != hipMemLocationTypeDevice)
        return hipErrorInvalidValue;
    hipError_t r = emu_device(prop->location.id, &sd);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_PHYS_CREATE)) != hipSuccess)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_phys_create(sd, size, &h));
    if (r != hipSuccess)
        return r;
    if (!chunk_add(h)) {
        (void)simdev_phys_release(sd, h);
        return hipErrorOutOfMemory;
    }
    *handle = as_handle(h);
    return hipSuccess;
}

EMU_API hipError_t hipMemRelease(hipMemGenericAllocationHandle_t handle)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    simdev_handle h = of_handle(handle);
    if (emu_device(simdev_handle_ordinal(h), &sd) != hipSuccess)
        return hipErrorInvalidValue;
    pthread_mutex_lock(&g_chunks.lock);
    long i = chunk_find(h);
    if (i < 0) {
        pthread_mutex_unlock(&g_chunks.lock);
        return hipErrorInvalidValue;
    }
    if ((r = emu_injected(VS_SIM_OP_PHYS_RELEASE)) != hipSuccess) {
        pthread_mutex_unlock(&g_chunks.lock);
        return r;
    }
    emu_chunk *c = &g_chunks.v[i];
    uint64_t base = 0;
    int kind = 0;
    if (emu_strands() && c->res_base &&
        simdev_find_range(sd, c->res_base, &base, NULL, &kind) == VS_OK &&
        kind == SIMDEV_RANGE_RESERVED && base == c->res_base) {
        c->zombie = 1; /* Note [Emulated stranding] */
    } else {
        r = emu_result(simdev_phys_release(sd, h));
        if (r == hipSuccess)
            *c = g_chunks.v[--g_chunks.n];
    }
    pthread_mutex_unlock(&g_chunks.lock);
    return r;
}

/* ---------------------------------------------------------------- mappings */

EMU_API hipError_t hipMemMap(void *ptr, size_t size, size_t offset, hipMemGenericAllocationHandle_t handle,
                             unsigned long long flags)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    simdev_handle h = of_handle(handle);
    int owner = emu_owner(addr(ptr), SIMDEV_RANGE_RESERVED);
    if (flags != 0 || size == 0 || owner < 0 || simdev_handle_ordinal(h) != owner)
        return hipErrorInvalidValue;
    if ((r = emu_device(owner, &sd)) != hipSuccess)
        return r;
    pthread_mutex_lock(&g_chunks.lock);
    long i = chunk_find(h);
    if (i < 0) {
        pthread_mutex_unlock(&g_chunks.lock);
        return hipErrorInvalidValue; /* released (perhaps stranded) handle */
    }
    if ((r = emu_injected(VS_SIM_OP_MAP)) == hipSuccess)
        r = emu_result(simdev_map(sd, addr(ptr), size, h, offset));
    if (r == hipSuccess) {
        uint64_t base = 0;
        if (simdev_find_range(sd, addr(ptr), &base, NULL, NULL) == VS_OK)
            g_chunks.v[i].res_base = base;
    }
    pthread_mutex_unlock(&g_chunks.lock);
    return r;
}

EMU_API hipError_t hipMemSetAccess(void *ptr, size_t size, const hipMemAccessDesc *desc, size_t count)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    int owner = emu_owner(addr(ptr), SIMDEV_RANGE_RESERVED);
    if (!desc || count == 0 || size == 0 || owner < 0)
        return hipErrorInvalidValue;
    int access = SIMDEV_ACCESS_NONE;
    for (size_t i = 0; i < count; i++) {
        if (desc[i].location.type != hipMemLocationTypeDevice)
            return hipErrorInvalidValue;
        if (desc[i].location.id != owner)
            return hipErrorNotSupported; /* peer access is not emulated */
        if (desc[i].flags == hipMemAccessFlagsProtReadWrite)
            access = SIMDEV_ACCESS_RW;
        else if (desc[i].flags != hipMemAccessFlagsProtNone)
            return hipErrorNotSupported;
    }
    if ((r = emu_device(owner, &sd)) != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_SET_ACCESS)) != hipSuccess)
        return r;
    return emu_result(simdev_set_access(sd, addr(ptr), size, access));
}

EMU_API hipError_t hipMemUnmap(void *ptr, size_t size)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    int owner = emu_owner(addr(ptr), SIMDEV_RANGE_RESERVED);
    if (size == 0 || owner < 0)
        return hipErrorInvalidValue;
    if ((r = emu_device(owner, &sd)) != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_UNMAP)) != hipSuccess)
        return r;
    return emu_result(simdev_unmap(sd, addr(ptr), size));
}

/* ---------------------------------------------------------------- allocations */

EMU_INLINE hipError_t alloc_on(simdev_t *sd, void **ptr, size_t size)
{
    hipError_t r = emu_injected(VS_SIM_OP_ALLOC);
    if (r != hipSuccess)
        return r;
    uint64_t p = 0;
    r = emu_result(simdev_malloc(sd, size, &p));
    if (r == hipSuccess)
        *ptr = (void *)(uintptr_t)p;
    return r;
}

EMU_INLINE hipError_t free_ptr(void *ptr)
{
    simdev_t *sd;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    if (!ptr)
        return hipSuccess; /* hipFree(NULL) is a no-op */
    if (emu_device(emu_owner(addr(ptr), SIMDEV_RANGE_ALLOCATION), &sd) != hipSuccess)
        return hipErrorInvalidValue;
    return emu_result(simdev_free(sd, addr(ptr)));
}

EMU_API hipError_t hipMalloc(void **ptr, size_t size)
{
    simdev_t *sd;
    if (!ptr)
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if (size == 0) {
        *ptr = NULL; /* HIP returns success and a null pointer */
        return hipSuccess;
    }
    return alloc_on(sd, ptr, size);
}

EMU_API hipError_t hipExtMallocWithFlags(void **ptr, size_t sizeBytes, unsigned int flags)
{
    simdev_t *sd;
    if (!ptr || (flags & ~(unsigned)(hipDeviceMallocFinegrained | hipMallocSignalMemory)))
        return hipErrorInvalidValue;
    if ((flags & hipMallocSignalMemory) && sizeBytes != 8)
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if (sizeBytes == 0) {
        *ptr = NULL;
        return hipSuccess;
    }
    return alloc_on(sd, ptr, sizeBytes);
}

EMU_API hipError_t hipMallocAsync(void **dev_ptr, size_t size, hipStream_t stream)
{
    simdev_t *sd;
    simdev_handle h;
    if (!dev_ptr || size == 0)
        return hipErrorInvalidValue;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r != hipSuccess)
        return r;
    return alloc_on(sd, dev_ptr, size);
}

EMU_API hipError_t hipFree(void *ptr)
{
    return free_ptr(ptr);
}

/* Stream-ordered free, emulated by waiting for the stream first. */
EMU_API hipError_t hipFreeAsync(void *dev_ptr, hipStream_t stream)
{
    simdev_t *sd;
    simdev_handle h;
    if (!dev_ptr)
        return hipErrorInvalidValue;
    hipError_t r = emu_stream(stream, &sd, &h);
    if (r != hipSuccess)
        return r;
    (void)simdev_stream_synchronize(sd, h);
    return free_ptr(dev_ptr);
}

EMU_API hipError_t hipPointerGetAttribute(void *data, hipPointer_attribute attribute, hipDeviceptr_t ptr)
{
    if (!data)
        return hipErrorInvalidValue;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    if (attribute != HIP_POINTER_ATTRIBUTE_DEVICE_ORDINAL)
        return hipErrorInvalidValue;
    int ord = emu_owner(addr(ptr), SIMDEV_RANGE_ALLOCATION);
    if (ord < 0)
        ord = emu_owner(addr(ptr), SIMDEV_RANGE_RESERVED);
    if (ord < 0)
        return hipErrorInvalidValue;
    *(int *)data = ord;
    return hipSuccess;
}

/* ---------------------------------------------------------------- host memory, info */

EMU_API hipError_t hipHostRegister(void *hostPtr, size_t sizeBytes, unsigned int flags)
{
    simdev_t *sd;
    if (!hostPtr || sizeBytes == 0)
        return hipErrorInvalidValue;
    if (flags & ~(unsigned)(hipHostRegisterPortable | hipHostRegisterMapped))
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_HOST_REGISTER)) != hipSuccess)
        return r;
    vs_status st = simdev_host_register(sd, hostPtr, sizeBytes);
    return st == VS_ERR_BUSY ? hipErrorHostMemoryAlreadyRegistered : emu_result(st);
}

EMU_API hipError_t hipHostUnregister(void *hostPtr)
{
    simdev_t *sd;
    if (!hostPtr)
        return hipErrorInvalidValue;
    hipError_t r = emu_ready();
    if (r != hipSuccess)
        return r;
    for (int i = 0; emu_device(i, &sd) == hipSuccess; i++)
        if (simdev_host_is_registered(sd, hostPtr, 1) == VS_OK)
            return simdev_host_unregister(sd, hostPtr) == VS_OK ? hipSuccess
                                                                : hipErrorHostMemoryNotRegistered;
    return hipErrorHostMemoryNotRegistered;
}

EMU_API hipError_t hipMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    simdev_t *sd;
    if (!free_bytes || !total_bytes)
        return hipErrorInvalidValue;
    hipError_t r = emu_current(&sd, NULL);
    if (r != hipSuccess)
        return r;
    if ((r = emu_injected(VS_SIM_OP_MEM_INFO)) != hipSuccess)
        return r;
    uint64_t fr = 0, tot = 0;
    r = emu_result(simdev_mem_info(sd, &fr, &tot));
    if (r == hipSuccess) {
        *free_bytes = (size_t)fr;
        *total_bytes = (size_t)tot;
    }
    return r;
}
