/* Emulator memory: virtual memory (reserve, page size, physical memory, map,
 * access, unmap) with Intel's driver's size rules, and USM allocations.
 *
 * Physical memory handles are simdev chunk handles (non-zero 64-bit values
 * that name their device). Reservations live on the context's first device
 * (a simdev reservation belongs to one device; the backend gives each device
 * its own context). A device without virtual memory (knob vmm:) answers
 * ZE_RESULT_ERROR_UNSUPPORTED_FEATURE, as builds without it do.
 */
#include <stdlib.h>
#include <string.h>

#include "emu_ze.h"

/* Host allocations (zeMemAllocHost, shared without a device). */
static struct {
    pthread_mutex_t lock;
    struct emu_host_alloc {
        void *ptr;
        size_t size;
    } *items;
    size_t n, cap;
} emu_host = {.lock = PTHREAD_MUTEX_INITIALIZER};

uint64_t emu_page_size(simdev_t *sd, uint64_t size)
{
    simdev_props p;
    if (simdev_get_props(sd, &p) != VS_OK)
        return 64u << 10;
    if (emu_g.resv_pow2) {
        /* Older Intel drivers: the largest power of two not above the size. */
        uint64_t pg = p.granularity;
        while (pg * 2 <= size)
            pg *= 2;
        return pg;
    }
    /* Intel's driver: small allocations use the small page, large ones the large. */
    return size >= p.preferred_page_size ? p.preferred_page_size : p.granularity;
}

static emu_device *ctx_device(emu_context *c, int i)
{
    return i < c->ndev ? &emu_g.devices[c->dev[i]] : NULL;
}

static int ctx_has(emu_context *c, int ordinal)
{
    for (int i = 0; i < c->ndev; i++)
        if (c->dev[i] == ordinal)
            return 1;
    return 0;
}

/* ---------------------------------------------------------------- virtual memory */

ze_result_t emu_zeVirtualMemQueryPageSize(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                          size_t size, size_t *pagesize)
{
    emu_context *c = emu_ctx(hContext);
    emu_device *d = emu_dev(hDevice);
    if (!c || !d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pagesize)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (!emu_has_vmm(d->ordinal))
        return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
    *pagesize = (size_t)emu_page_size(d->sd, size);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeVirtualMemReserve(ze_context_handle_t hContext, const void *pStart, size_t size,
                                    void **pptr)
{
    emu_context *c = emu_ctx(hContext);
    if (!c)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    (void)pStart; /* a hint; simdev picks the address */
    emu_device *d = ctx_device(c, 0);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (!emu_has_vmm(d->ordinal))
        return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
    uint64_t page = emu_page_size(d->sd, size);
    if (size == 0 || size % page != 0)
        return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    if (emu_g.resv_pow2 && (size & (size - 1)) != 0)
        return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    ze_result_t r = emu_injected(VS_SIM_OP_VA_RESERVE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    uint64_t align = emu_g.resv_align ? emu_g.resv_align : page;
    uint64_t va = 0;
    r = emu_result(simdev_va_reserve(d->sd, size, align, &va));
    if (r == ZE_RESULT_SUCCESS)
        *pptr = (void *)(uintptr_t)va;
    return r;
}

ze_result_t emu_zeVirtualMemFree(ze_context_handle_t hContext, const void *ptr, size_t size)
{
    emu_context *c = emu_ctx(hContext);
    if (!c)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    emu_device *d = ctx_device(c, 0);
    uint64_t base = 0, rsize = 0;
    int kind = 0;
    /* Intel's driver frees only a whole reservation, by its exact size. */
    if (!d || simdev_find_range(d->sd, (uintptr_t)ptr, &base, &rsize, &kind) != VS_OK ||
        kind != SIMDEV_RANGE_RESERVED || base != (uintptr_t)ptr || rsize != size)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = emu_injected(VS_SIM_OP_VA_FREE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    return emu_result(simdev_va_free(d->sd, base, rsize));
}

ze_result_t emu_zePhysicalMemCreate(ze_context_handle_t hContext, ze_device_handle_t hDevice,
                                    ze_physical_mem_desc_t *desc,
                                    ze_physical_mem_handle_t *phPhysicalMemory)
{
    emu_context *c = emu_ctx(hContext);
    emu_device *d = emu_dev(hDevice);
    if (!c || !d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!desc || !phPhysicalMemory)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (!ctx_has(c, d->ordinal))
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (!emu_has_vmm(d->ordinal))
        return ZE_RESULT_ERROR_UNSUPPORTED_FEATURE;
    if (desc->size == 0 || desc->size % emu_page_size(d->sd, desc->size) != 0)
        return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    ze_result_t r = emu_injected(VS_SIM_OP_PHYS_CREATE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    simdev_handle h = 0;
    r = emu_result(simdev_phys_create(d->sd, desc->size, &h));
    if (r == ZE_RESULT_SUCCESS)
        *phPhysicalMemory = (ze_physical_mem_handle_t)(uintptr_t)h;
    return r;
}

/* The device of a physical memory handle. */
static emu_device *phys_device(ze_physical_mem_handle_t h)
{
    int ord = simdev_handle_ordinal((simdev_handle)(uintptr_t)h);
    if (ord < 0 || ord >= emu_g.device_count)
        return NULL;
    return &emu_g.devices[ord];
}

ze_result_t emu_zePhysicalMemDestroy(ze_context_handle_t hContext,
                                     ze_physical_mem_handle_t hPhysicalMemory)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    emu_device *d = phys_device(hPhysicalMemory);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    ze_result_t r = emu_injected(VS_SIM_OP_PHYS_RELEASE);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    return emu_result(simdev_phys_release(d->sd, (simdev_handle)(uintptr_t)hPhysicalMemory));
}

ze_result_t emu_zeVirtualMemMap(ze_context_handle_t hContext, const void *ptr, size_t size,
                                ze_physical_mem_handle_t hPhysicalMemory, size_t offset,
                                ze_memory_access_attribute_t access)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    emu_device *d = phys_device(hPhysicalMemory);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (access > ZE_MEMORY_ACCESS_ATTRIBUTE_READONLY)
        return ZE_RESULT_ERROR_INVALID_ENUMERATION;
    ze_result_t r = emu_injected(VS_SIM_OP_MAP);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    uint64_t va = (uintptr_t)ptr;
    r = emu_result(simdev_map(d->sd, va, size, (simdev_handle)(uintptr_t)hPhysicalMemory, offset));
    if (r != ZE_RESULT_SUCCESS || access == ZE_MEMORY_ACCESS_ATTRIBUTE_NONE)
        return r;
    /* simdev has no read-only mappings: READONLY maps read/write. */
    r = emu_result(simdev_set_access(d->sd, va, size, SIMDEV_ACCESS_RW));
    if (r != ZE_RESULT_SUCCESS)
        (void)simdev_unmap(d->sd, va, size);
    return r;
}

/* The device whose reservation contains ptr. */
static emu_device *reservation_device(const void *ptr)
{
    int ord = emu_owner((uintptr_t)ptr);
    return ord < 0 ? NULL : &emu_g.devices[ord];
}

ze_result_t emu_zeVirtualMemUnmap(ze_context_handle_t hContext, const void *ptr, size_t size)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    emu_device *d = ptr ? reservation_device(ptr) : NULL;
    if (!d)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    ze_result_t r = emu_injected(VS_SIM_OP_UNMAP);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    return emu_result(simdev_unmap(d->sd, (uintptr_t)ptr, size));
}

ze_result_t emu_zeVirtualMemSetAccessAttribute(ze_context_handle_t hContext, const void *ptr,
                                               size_t size, ze_memory_access_attribute_t access)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    emu_device *d = ptr ? reservation_device(ptr) : NULL;
    if (!d)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (access > ZE_MEMORY_ACCESS_ATTRIBUTE_READONLY)
        return ZE_RESULT_ERROR_INVALID_ENUMERATION;
    ze_result_t r = emu_injected(VS_SIM_OP_SET_ACCESS);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    int a = access == ZE_MEMORY_ACCESS_ATTRIBUTE_NONE ? SIMDEV_ACCESS_NONE : SIMDEV_ACCESS_RW;
    return emu_result(simdev_set_access(d->sd, (uintptr_t)ptr, size, a));
}

ze_result_t emu_zeVirtualMemGetAccessAttribute(ze_context_handle_t hContext, const void *ptr,
                                               size_t size, ze_memory_access_attribute_t *access,
                                               size_t *outSize)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr || !access || !outSize)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    emu_device *d = reservation_device(ptr);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    *access = simdev_check_access(d->sd, (uintptr_t)ptr, size) == VS_OK
                  ? ZE_MEMORY_ACCESS_ATTRIBUTE_READWRITE
                  : ZE_MEMORY_ACCESS_ATTRIBUTE_NONE;
    *outSize = size;
    return ZE_RESULT_SUCCESS;
}

/* ---------------------------------------------------------------- USM */

static ze_result_t device_alloc(emu_context *c, emu_device *d, size_t size, void **pptr)
{
    if (!ctx_has(c, d->ordinal))
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    if (size == 0)
        return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    ze_result_t r = emu_injected(VS_SIM_OP_ALLOC);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    uint64_t p = 0;
    r = emu_result(simdev_malloc(d->sd, size, &p));
    if (r == ZE_RESULT_SUCCESS)
        *pptr = (void *)(uintptr_t)p;
    return r;
}

static ze_result_t host_alloc(size_t size, size_t alignment, void **pptr)
{
    if (size == 0)
        return ZE_RESULT_ERROR_UNSUPPORTED_SIZE;
    if (alignment < 64)
        alignment = 64;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size) != 0)
        return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
    pthread_mutex_lock(&emu_host.lock);
    if (emu_host.n == emu_host.cap) {
        size_t cap = emu_host.cap ? emu_host.cap * 2 : 16;
        struct emu_host_alloc *n = realloc(emu_host.items, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&emu_host.lock);
            free(p);
            return ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY;
        }
        emu_host.items = n;
        emu_host.cap = cap;
    }
    emu_host.items[emu_host.n].ptr = p;
    emu_host.items[emu_host.n].size = size;
    emu_host.n++;
    pthread_mutex_unlock(&emu_host.lock);
    emu_count(&emu_g.objects.host_allocations, +1);
    *pptr = p;
    return ZE_RESULT_SUCCESS;
}

/* Index of the host allocation containing ptr, or -1 (under lock). */
static long host_find(const void *ptr)
{
    for (size_t i = 0; i < emu_host.n; i++) {
        const char *b = emu_host.items[i].ptr;
        if ((const char *)ptr >= b && (const char *)ptr < b + emu_host.items[i].size)
            return (long)i;
    }
    return -1;
}

ze_result_t emu_zeMemAllocDevice(ze_context_handle_t hContext,
                                 const ze_device_mem_alloc_desc_t *device_desc, size_t size,
                                 size_t alignment, ze_device_handle_t hDevice, void **pptr)
{
    emu_context *c = emu_ctx(hContext);
    emu_device *d = emu_dev(hDevice);
    (void)alignment; /* simdev allocations are granularity-aligned */
    if (!c || !d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!device_desc || !pptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    return device_alloc(c, d, size, pptr);
}

ze_result_t emu_zeMemAllocShared(ze_context_handle_t hContext,
                                 const ze_device_mem_alloc_desc_t *device_desc,
                                 const ze_host_mem_alloc_desc_t *host_desc, size_t size,
                                 size_t alignment, ze_device_handle_t hDevice, void **pptr)
{
    emu_context *c = emu_ctx(hContext);
    if (!c)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!device_desc || !host_desc || !pptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (!hDevice)
        return host_alloc(size, alignment, pptr);
    emu_device *d = emu_dev(hDevice);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    /* Placed on the device: device memory the host can also reach (here,
     * simdev memory is host memory anyway). */
    return device_alloc(c, d, size, pptr);
}

ze_result_t emu_zeMemAllocHost(ze_context_handle_t hContext, const ze_host_mem_alloc_desc_t *host_desc,
                               size_t size, size_t alignment, void **pptr)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!host_desc || !pptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    return host_alloc(size, alignment, pptr);
}

ze_result_t emu_zeMemFree(ze_context_handle_t hContext, void *ptr)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    int ord = emu_owner((uintptr_t)ptr);
    if (ord >= 0) {
        int kind = 0;
        uint64_t base = 0;
        simdev_t *sd = emu_g.devices[ord].sd;
        if (simdev_find_range(sd, (uintptr_t)ptr, &base, NULL, &kind) != VS_OK ||
            kind != SIMDEV_RANGE_ALLOCATION || base != (uintptr_t)ptr)
            return ZE_RESULT_ERROR_INVALID_ARGUMENT;
        return emu_result(simdev_free(sd, base));
    }
    pthread_mutex_lock(&emu_host.lock);
    long i = host_find(ptr);
    if (i < 0 || emu_host.items[i].ptr != ptr) {
        pthread_mutex_unlock(&emu_host.lock);
        return ZE_RESULT_ERROR_INVALID_ARGUMENT;
    }
    emu_host.items[i] = emu_host.items[--emu_host.n];
    pthread_mutex_unlock(&emu_host.lock);
    free(ptr);
    emu_count(&emu_g.objects.host_allocations, -1);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeMemFreeExt(ze_context_handle_t hContext,
                             const ze_memory_free_ext_desc_t *pMemFreeDesc, void *ptr)
{
    if (!pMemFreeDesc)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    return emu_zeMemFree(hContext, ptr); /* frees are synchronous here: every policy holds */
}

ze_result_t emu_zeMemGetAllocProperties(ze_context_handle_t hContext, const void *ptr,
                                        ze_memory_allocation_properties_t *pMemAllocProperties,
                                        ze_device_handle_t *phDevice)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr || !pMemAllocProperties)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    ze_memory_allocation_properties_t *p = pMemAllocProperties;
    p->type = ZE_MEMORY_TYPE_UNKNOWN;
    p->id = 0;
    p->pageSize = 0;
    if (phDevice)
        *phDevice = NULL;
    int ord = emu_owner((uintptr_t)ptr);
    if (ord >= 0) {
        uint64_t base = 0;
        (void)simdev_find_range(emu_g.devices[ord].sd, (uintptr_t)ptr, &base, NULL, NULL);
        p->type = ZE_MEMORY_TYPE_DEVICE;
        p->id = base;
        p->pageSize = emu_page_size(emu_g.devices[ord].sd, 1);
        if (phDevice)
            *phDevice = (ze_device_handle_t)&emu_g.devices[ord];
        return ZE_RESULT_SUCCESS;
    }
    pthread_mutex_lock(&emu_host.lock);
    long i = host_find(ptr);
    if (i >= 0) {
        p->type = ZE_MEMORY_TYPE_HOST;
        p->id = (uint64_t)(uintptr_t)emu_host.items[i].ptr;
        p->pageSize = 4096;
    }
    pthread_mutex_unlock(&emu_host.lock);
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zeMemGetAddressRange(ze_context_handle_t hContext, const void *ptr, void **pBase,
                                     size_t *pSize)
{
    if (!emu_ctx(hContext))
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!ptr)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    int ord = emu_owner((uintptr_t)ptr);
    uint64_t base = 0, size = 0;
    if (ord >= 0 &&
        simdev_find_range(emu_g.devices[ord].sd, (uintptr_t)ptr, &base, &size, NULL) == VS_OK) {
        if (pBase)
            *pBase = (void *)(uintptr_t)base;
        if (pSize)
            *pSize = (size_t)size;
        return ZE_RESULT_SUCCESS;
    }
    pthread_mutex_lock(&emu_host.lock);
    long i = host_find(ptr);
    if (i >= 0) {
        if (pBase)
            *pBase = emu_host.items[i].ptr;
        if (pSize)
            *pSize = emu_host.items[i].size;
    }
    pthread_mutex_unlock(&emu_host.lock);
    return i >= 0 ? ZE_RESULT_SUCCESS : ZE_RESULT_ERROR_INVALID_ARGUMENT;
}
