/* Scratch buffers (growable device memory) and host buffers (growable pinned
 * host memory).
 *
 * Scratch: the whole max_size is reserved once, so the buffer's address never
 * changes; pages (the device's page size) are mapped as it grows. Growth counts
 * in the budget and evicts VBAR pages like any other allocation in the process
 * (vs_reclaim_locked), all or nothing.
 *
 * Host: address space reserved once (PROT_NONE); growing commits the new chunks
 * (read/write, pre-touched so that registration does not fault them in one by
 * one), then registers the new part with the driver as one segment. Shrinking
 * unregisters segments above the new size (re-registering the part of a straddling
 * segment that stays) and decommits them. Contents below the size survive.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define VS_HOST_CHUNK ((uint64_t)2 << 20)

/* ---------------------------------------------------------------- scratch */

VS_API vs_status vs_scratch_create(vs_device_t *dev, uint64_t max_size, vs_scratch_t **out)
{
    if (!out || max_size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    uint64_t page = dev->page_size;
    if (max_size > UINT64_MAX - page || max_size / page > SIZE_MAX / sizeof(vs_bphys *)) {
        vs_dev_release(dev);
        return VS_ERR_INVALID_ARGUMENT;
    }
    max_size = vs_round_up(max_size, page);
    struct vs_scratch *b = vs_pool_alloc(VS_KIND_SCRATCH);
    if (!b) {
        vs_dev_release(dev);
        return VS_ERR_OUT_OF_MEMORY;
    }
    st = dev->ops->va_reserve(dev->bdev, max_size, page, &b->base);
    if (st != VS_OK) {
        vs_pool_free(b);
        vs_dev_release(dev);
        return st == VS_ERR_OUT_OF_MEMORY ? st : VS_ERR_BACKEND;
    }
    b->dev = dev;
    b->max_size = max_size;
    b->next = dev->scratches;
    if (b->next)
        b->next->prev = b;
    dev->scratches = b;
    *out = b;
    vs_dev_release(dev);
    return VS_OK;
}

/* Unmap and release chunks [keep, n). */
static vs_status scratch_shrink_to(vs_device_t *dev, struct vs_scratch *b, size_t keep)
{
    vs_status first = VS_OK;
    uint64_t page = dev->page_size;
    while (b->chunks.n > keep) {
        size_t i = b->chunks.n - 1;
        vs_status st = vs_unmap_release(dev, b->base + i * page, page, b->chunks.v[i], true);
        if (st != VS_OK && first == VS_OK)
            first = st;
        b->chunks.n--;
        vs_budget_add(dev, VS_USE_SCRATCH, -(int64_t)page);
    }
    return first;
}

static vs_status scratch_resize_locked(vs_device_t *dev, struct vs_scratch *b, uint64_t size)
{
    uint64_t page = dev->page_size;
    size_t want = (size_t)(vs_round_up(size, page) / page);
    size_t have = b->chunks.n;
    if (want <= have) {
        vs_status st = scratch_shrink_to(dev, b, want);
        b->size = size;
        return st;
    }
    if (want > b->chunks.cap) {
        vs_bphys **nv = realloc(b->chunks.v, want * sizeof *nv);
        if (!nv)
            return VS_ERR_OUT_OF_MEMORY;
        b->chunks.v = nv;
        b->chunks.cap = want;
    }
    uint64_t need = (uint64_t)(want - have) * page;
    vs_status st = vs_reclaim_locked(dev, need, NULL);
    if (st != VS_OK)
        return st;
    for (size_t i = have; i < want; i++) {
        vs_bphys *chunk;
        st = vs_map_new(dev, b->base + i * page, page, NULL, &chunk);
        if (st != VS_OK) {
            scratch_shrink_to(dev, b, have); /* all or nothing */
            return st;
        }
        b->chunks.v[b->chunks.n++] = chunk;
        vs_budget_add(dev, VS_USE_SCRATCH, (int64_t)page);
    }
    b->size = size;
    return VS_OK;
}

VS_API vs_status vs_scratch_resize(vs_scratch_t *b, uint64_t size)
{
    vs_device_t *dev;
    vs_status st = vs_scratch_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    if (size > b->max_size)
        st = VS_ERR_OUT_OF_RANGE;
    else
        st = scratch_resize_locked(dev, b, size);
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_scratch_get(vs_scratch_t *b, vs_devptr_t *ptr, uint64_t *size, uint64_t *max_size)
{
    if (!ptr && !size && !max_size)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_scratch_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    if (ptr)
        *ptr = b->base;
    if (size)
        *size = b->size;
    if (max_size)
        *max_size = b->max_size;
    vs_dev_release(dev);
    return VS_OK;
}

vs_status vs_scratch_destroy_locked(vs_device_t *dev, struct vs_scratch *b)
{
    vs_status st = scratch_shrink_to(dev, b, 0);
    vs_status st2 = dev->ops->va_free(dev->bdev, b->base, b->max_size);
    if (st == VS_OK && st2 != VS_OK)
        st = VS_ERR_BACKEND;
    if (b->prev)
        b->prev->next = b->next;
    else
        dev->scratches = b->next;
    if (b->next)
        b->next->prev = b->prev;
    free(b->chunks.v);
    b->chunks.v = NULL;
    vs_pool_free(b);
    return st;
}

VS_API vs_status vs_scratch_destroy(vs_scratch_t *b)
{
    vs_device_t *dev;
    vs_status st = vs_scratch_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    st = vs_scratch_destroy_locked(dev, b);
    vs_dev_release(dev);
    return st;
}

/* ---------------------------------------------------------------- host buffers */

VS_API vs_status vs_host_buffer_create(vs_device_t *dev, uint64_t max_size, vs_host_buffer_t **out)
{
    if (!out || max_size == 0 || max_size > ((uint64_t)1 << 47))
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    max_size = vs_round_up(max_size, VS_HOST_CHUNK);
    struct vs_host_buffer *b = vs_pool_alloc(VS_KIND_HOST);
    void *base = b ? mmap(NULL, (size_t)max_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                   : MAP_FAILED;
    if (base == MAP_FAILED) {
        if (b)
            vs_pool_free(b);
        vs_dev_release(dev);
        return VS_ERR_OUT_OF_MEMORY;
    }
    b->dev = dev;
    b->base = base;
    b->max_size = max_size;
    b->next = dev->hosts;
    if (b->next)
        b->next->prev = b;
    dev->hosts = b;
    *out = b;
    vs_dev_release(dev);
    return VS_OK;
}

static vs_status seg_push(struct vs_host_buffer *b, uint64_t off, uint64_t len)
{
    if (b->nsegs == b->capsegs) {
        size_t cap = b->capsegs ? b->capsegs * 2 : 8;
        vs_hostseg *n = realloc(b->segs, cap * sizeof *n);
        if (!n)
            return VS_ERR_OUT_OF_MEMORY;
        b->segs = n;
        b->capsegs = cap;
    }
    b->segs[b->nsegs].off = off;
    b->segs[b->nsegs].len = len;
    b->nsegs++;
    return VS_OK;
}

static void decommit(struct vs_host_buffer *b, uint64_t from, uint64_t to)
{
    if (to > from)
        mmap(b->base + from, (size_t)(to - from), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
             -1, 0);
}

static vs_status host_grow(vs_device_t *dev, struct vs_host_buffer *b, uint64_t target)
{
    uint64_t from = b->committed, len = target - from;
    if (seg_push(b, from, len) != VS_OK)
        return VS_ERR_OUT_OF_MEMORY;
    b->nsegs--; /* reserved a slot; committed below only on success */
    if (mprotect(b->base + from, (size_t)len, PROT_READ | PROT_WRITE) != 0)
        return VS_ERR_OUT_OF_MEMORY;
    /* Pre-touch: the kernel populates the range in one call (Linux >= 5.14),
     * 10x faster than a write fault per 4 KiB page (1.5 GiB took 12 s that
     * way in a VM); the page loop remains for older kernels. */
    if (madvise(b->base + from, (size_t)len, MADV_POPULATE_WRITE) != 0) {
        long os_page = sysconf(_SC_PAGESIZE);
        for (uint64_t o = 0; o < len; o += (uint64_t)os_page)
            ((volatile uint8_t *)b->base)[from + o] = 0;
    }
    vs_status st = dev->ops->host_register(dev->bdev, b->base + from, len);
    if (st != VS_OK) {
        decommit(b, from, target);
        if (st != VS_ERR_OUT_OF_MEMORY) {
            dev->stats.backend_failures++;
            vs_log(VS_LOG_ERROR, "registering %llu bytes of host memory failed: %s", (unsigned long long)len,
                   vs_status_name(st));
        }
        return st;
    }
    b->nsegs++;
    b->committed = target;
    vs_budget_add(dev, VS_USE_HOST, (int64_t)len);
    return VS_OK;
}

static vs_status host_shrink(vs_device_t *dev, struct vs_host_buffer *b, uint64_t target)
{
    vs_status first = VS_OK;
    while (b->nsegs && b->segs[b->nsegs - 1].off + b->segs[b->nsegs - 1].len > target) {
        vs_hostseg s = b->segs[--b->nsegs];
        vs_status st = dev->ops->host_unregister(dev->bdev, b->base + s.off);
        if (st != VS_OK && first == VS_OK)
            first = st;
        vs_budget_add(dev, VS_USE_HOST, -(int64_t)s.len);
        b->committed = s.off;
        if (s.off < target) { /* straddling: keep and re-register the lower part */
            uint64_t keep_to = target;
            decommit(b, keep_to, s.off + s.len);
            st = dev->ops->host_register(dev->bdev, b->base + s.off, keep_to - s.off);
            if (st == VS_OK) {
                b->segs[b->nsegs++] = (vs_hostseg){s.off, keep_to - s.off};
                b->committed = keep_to;
                vs_budget_add(dev, VS_USE_HOST, (int64_t)(keep_to - s.off));
            } else {
                decommit(b, s.off, keep_to);
                if (first == VS_OK)
                    first = st;
            }
            break;
        }
        decommit(b, s.off, s.off + s.len);
    }
    return first;
}

VS_API vs_status vs_host_buffer_resize(vs_host_buffer_t *b, uint64_t size)
{
    vs_device_t *dev;
    vs_status st = vs_host_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    if (size > b->max_size) {
        vs_dev_release(dev);
        return VS_ERR_OUT_OF_RANGE;
    }
    uint64_t target = vs_round_up(size, VS_HOST_CHUNK);
    if (target > b->committed)
        st = host_grow(dev, b, target);
    else if (target < b->committed)
        st = host_shrink(dev, b, target);
    if (st == VS_OK)
        b->size = size;
    else if (b->size > b->committed)
        b->size = b->committed;
    vs_dev_release(dev);
    return st;
}

VS_API vs_status vs_host_buffer_get(vs_host_buffer_t *b, void **ptr, uint64_t *size, uint64_t *max_size)
{
    if (!ptr && !size && !max_size)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_t *dev;
    vs_status st = vs_host_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    if (ptr)
        *ptr = b->base;
    if (size)
        *size = b->size;
    if (max_size)
        *max_size = b->max_size;
    vs_dev_release(dev);
    return VS_OK;
}

vs_status vs_host_destroy_locked(vs_device_t *dev, struct vs_host_buffer *b)
{
    vs_status st = host_shrink(dev, b, 0);
    munmap(b->base, (size_t)b->max_size);
    if (b->prev)
        b->prev->next = b->next;
    else
        dev->hosts = b->next;
    if (b->next)
        b->next->prev = b->prev;
    free(b->segs);
    b->segs = NULL;
    vs_pool_free(b);
    return st;
}

VS_API vs_status vs_host_buffer_destroy(vs_host_buffer_t *b)
{
    vs_device_t *dev;
    vs_status st = vs_host_acquire(b, &dev);
    if (st != VS_OK)
        return st;
    st = vs_host_destroy_locked(dev, b);
    vs_dev_release(dev);
    return st;
}
