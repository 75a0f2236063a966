/* Level Zero virtual memory: address space, physical chunks, mappings, and
 * page-locked host memory.
 *
 * Note [Level Zero reservations]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * zeVirtualMemReserve has no alignment argument and Intel's driver wants the
 * size to be a multiple of the page size it answers for that size (older
 * versions: a power of two); zeVirtualMemFree must get exactly the pointer and
 * size that were reserved. So va_reserve rounds the size up to
 * zeVirtualMemQueryPageSize(size), and when the driver's address is not
 * aligned as the core asked (a VBAR wants page alignment), it gives it back
 * and reserves `size + align` instead, handing out the aligned address inside.
 * Every reservation is recorded (vs_ze_resv: what the core got, what the
 * driver reserved) so that va_free passes the driver its own pointer and size.
 *
 * Note [Level Zero access attributes]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Pages are mapped with ZE_MEMORY_ACCESS_ATTRIBUTE_READWRITE and set_access
 * sets READWRITE again. Intel's driver keeps the access attribute per
 * reservation, not per range: mapping one page with NONE would mark the whole
 * VBAR, whose other pages are in use, as inaccessible. set_access is where a
 * transient ZE_RESULT_NOT_READY would surface (the core retries it, as with
 * CUDA's cuMemSetAccess).
 *
 * A physical chunk (vs_bphys *) is a small vs_ze_chunk: the handle and its
 * size, which the free-memory estimate needs (Note [Level Zero free memory]).
 */
#include <stdlib.h>
#include <string.h>

#include "level_zero/ze_internal.h"

vs_status vs_ze_page_size(vs_bdev *dev, uint64_t size, uint64_t *out)
{
    size_t page = 0;
    ze_result_t r = dev->ze->api.VirtualMemQueryPageSize(dev->ctx, dev->device, (size_t)size, &page);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeVirtualMemQueryPageSize");
    if (page == 0 || (page & (page - 1)) != 0) {
        vs_backend_log(VS_LOG_ERROR, "level_zero: page size %zu is not a power of two", page);
        return VS_ERR_BACKEND;
    }
    *out = page;
    return VS_OK;
}

static uint64_t round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Reserve at least `want` bytes, rounded up to the driver's page for that size. */
static vs_status reserve(vs_bdev *dev, uint64_t want, void **base, uint64_t *reserved)
{
    uint64_t page = 0;
    vs_status st = vs_ze_page_size(dev, want, &page);
    if (st != VS_OK)
        return st;
    uint64_t size = round_up(want, page);
    void *p = NULL;
    ze_result_t r = dev->ze->api.VirtualMemReserve(dev->ctx, NULL, (size_t)size, &p);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeVirtualMemReserve");
    *base = p;
    *reserved = size;
    return VS_OK;
}

static void release(vs_bdev *dev, void *base, uint64_t reserved)
{
    ze_result_t r = dev->ze->api.VirtualMemFree(dev->ctx, base, (size_t)reserved);
    if (r != ZE_RESULT_SUCCESS)
        (void)vs_ze_result(r, "zeVirtualMemFree");
}

static vs_status record(vs_bdev *dev, const vs_ze_resv *rv)
{
    pthread_mutex_lock(&dev->lock);
    if (dev->nresv == dev->resv_cap) {
        size_t cap = dev->resv_cap ? dev->resv_cap * 2 : 16;
        vs_ze_resv *n = realloc(dev->resv, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&dev->lock);
            return VS_ERR_OUT_OF_MEMORY;
        }
        dev->resv = n;
        dev->resv_cap = cap;
    }
    dev->resv[dev->nresv++] = *rv;
    pthread_mutex_unlock(&dev->lock);
    return VS_OK;
}

vs_status vs_ze_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out)
{
    if (!dev || !out || size == 0 || (align & (align - 1)) != 0)
        return VS_ERR_INVALID_ARGUMENT;
    if (align < dev->props.granularity)
        align = dev->props.granularity;
    vs_ze_resv rv = {.size = size};
    vs_status st = reserve(dev, size, &rv.base, &rv.reserved);
    if (st != VS_OK)
        return st;
    if ((uintptr_t)rv.base % align != 0) {
        /* Note [Level Zero reservations]: over-reserve and align inside. */
        release(dev, rv.base, rv.reserved);
        st = reserve(dev, size + align, &rv.base, &rv.reserved);
        if (st != VS_OK)
            return st;
    }
    rv.va = round_up((uintptr_t)rv.base, align);
    st = record(dev, &rv);
    if (st != VS_OK) {
        release(dev, rv.base, rv.reserved);
        return st;
    }
    *out = rv.va;
    return VS_OK;
}

vs_status vs_ze_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_resv rv;
    size_t i;
    pthread_mutex_lock(&dev->lock);
    for (i = 0; i < dev->nresv; i++)
        if (dev->resv[i].va == va && dev->resv[i].size == size)
            break;
    if (i == dev->nresv) {
        pthread_mutex_unlock(&dev->lock);
        return VS_ERR_INVALID_ARGUMENT;
    }
    rv = dev->resv[i];
    dev->resv[i] = dev->resv[--dev->nresv];
    pthread_mutex_unlock(&dev->lock);
    ze_result_t r = dev->ze->api.VirtualMemFree(dev->ctx, rv.base, (size_t)rv.reserved);
    if (r != ZE_RESULT_SUCCESS) {
        /* Still reserved: keep the record so that a later free can work. */
        vs_status st = vs_ze_result(r, "zeVirtualMemFree");
        (void)record(dev, &rv);
        return st;
    }
    return VS_OK;
}

void vs_ze_resv_fini(vs_bdev *dev)
{
    for (size_t i = 0; i < dev->nresv; i++) {
        vs_backend_log(VS_LOG_WARN, "level_zero: freeing a reservation left at close (%llu bytes)",
                       (unsigned long long)dev->resv[i].size);
        release(dev, dev->resv[i].base, dev->resv[i].reserved);
    }
    free(dev->resv);
    dev->resv = NULL;
    dev->nresv = dev->resv_cap = 0;
}

vs_status vs_ze_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out)
{
    if (!dev || !out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_chunk *c = malloc(sizeof *c);
    if (!c)
        return VS_ERR_OUT_OF_MEMORY;
    ze_physical_mem_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_PHYSICAL_MEM_DESC, .size = (size_t)size};
    ze_physical_mem_handle_t h = NULL;
    /* Note [Own calls bypass the hooks]: our chunks are counted as weights or
     * scratch by the core, never as intercepted allocations. */
    vs_ze_guard_enter();
    ze_result_t r = VS_ZE_HOOKED_ENTRY(dev->ze, PhysicalMemCreate)(dev->ctx, dev->device, &desc, &h);
    vs_ze_guard_leave();
    if (r != ZE_RESULT_SUCCESS) {
        free(c);
        return vs_ze_result(r, "zePhysicalMemCreate");
    }
    if (!h) {
        free(c);
        vs_backend_log(VS_LOG_ERROR, "level_zero: zePhysicalMemCreate returned a null handle");
        return VS_ERR_BACKEND;
    }
    c->handle = h;
    c->size = size;
    __atomic_add_fetch(&dev->own_phys, size, __ATOMIC_RELAXED);
    *out = (vs_bphys *)c;
    return VS_OK;
}

vs_status vs_ze_phys_release(vs_bdev *dev, vs_bphys *chunk)
{
    if (!dev || !chunk)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_chunk *c = (vs_ze_chunk *)chunk;
    vs_ze_guard_enter();
    ze_result_t r = VS_ZE_HOOKED_ENTRY(dev->ze, PhysicalMemDestroy)(dev->ctx, c->handle);
    vs_ze_guard_leave();
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zePhysicalMemDestroy");
    __atomic_sub_fetch(&dev->own_phys, c->size, __ATOMIC_RELAXED);
    free(c);
    return VS_OK;
}

vs_status vs_ze_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk)
{
    if (!dev || !va || size == 0 || !chunk)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze_chunk *c = (vs_ze_chunk *)chunk;
    /* Note [Level Zero access attributes] */
    ze_result_t r = dev->ze->api.VirtualMemMap(dev->ctx, (const void *)(uintptr_t)va, (size_t)size,
                                               c->handle, 0, ZE_MEMORY_ACCESS_ATTRIBUTE_READWRITE);
    return vs_ze_result(r, "zeVirtualMemMap");
}

vs_status vs_ze_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    ze_result_t r = dev->ze->api.VirtualMemSetAccessAttribute(
        dev->ctx, (const void *)(uintptr_t)va, (size_t)size, ZE_MEMORY_ACCESS_ATTRIBUTE_READWRITE);
    return vs_ze_result(r, "zeVirtualMemSetAccessAttribute");
}

vs_status vs_ze_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    ze_result_t r = dev->ze->api.VirtualMemUnmap(dev->ctx, (const void *)(uintptr_t)va, (size_t)size);
    return vs_ze_result(r, "zeVirtualMemUnmap");
}

/* Note [Level Zero host registration]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Core Level Zero cannot page-lock existing host memory (its pinned memory is
 * zeMemAllocHost, which would have to own the buffer). Intel's driver offers
 * the extension zexDriverImportExternalPointer / zexDriverReleaseImportedPointer
 * (per driver, found with zeDriverGetExtensionFunctionAddress), which pins the
 * range and lets copies from it run at full DMA speed. Without the extension
 * registration is accepted and counted (host_noop) but does nothing: copies
 * then run from pageable memory, which the driver stages through its own
 * buffers (slower, like CUDA's pageable copies). The core's accounting is the
 * same either way.
 */
vs_status vs_ze_host_register(vs_bdev *dev, void *ptr, uint64_t size)
{
    if (!dev || !ptr || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    const vs_ze_driver *drv = dev->driver;
    if (!drv->import_ptr) {
        __atomic_add_fetch(&dev->host_noop, 1, __ATOMIC_RELAXED);
        return VS_OK;
    }
    ze_result_t r = drv->import_ptr(drv->ext_handle, ptr, (size_t)size);
    return vs_ze_result(r, "zexDriverImportExternalPointer");
}

vs_status vs_ze_host_unregister(vs_bdev *dev, void *ptr)
{
    if (!dev || !ptr)
        return VS_ERR_INVALID_ARGUMENT;
    const vs_ze_driver *drv = dev->driver;
    if (!drv->release_ptr)
        return VS_OK;
    ze_result_t r = drv->release_ptr(drv->ext_handle, ptr);
    return vs_ze_result(r, "zexDriverReleaseImportedPointer");
}
