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
 * one), then registers the whole committed range again as one registration
 * (Note [One registration]), growing geometrically. Shrinking
 * unregisters segments above the new size (re-registering the part of a straddling
 * segment that stays) and decommits them. Contents below the size survive.
 */
#include <errno.h>
#include <stdio.h>
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
        if (st != VS_OK) { /* still mapped: keep it (Note [Stuck chunks]) */
            vs_orphan_add(dev, b->base + i * page, page, b->chunks.v[i], true);
            if (first == VS_OK)
                first = st;
        }
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
    /* Consumes the handle whatever the driver says (Note [Stuck chunks]):
     * what the driver will not take back yet is kept and retried. */
    (void)scratch_shrink_to(dev, b, 0);
    vs_free_reservation(dev, b->base, b->max_size);
    vs_status st = VS_OK;
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

/* Bytes the process may still commit: the smaller of the system's MemAvailable
 * and the room left under a cgroup (v2) memory limit; UINT64_MAX when neither
 * can be read. Used to refuse a host buffer growth that the pre-touch below
 * would otherwise turn into an OOM kill (the kernel overcommits; touching the
 * pages is when it finds out). */
static uint64_t read_u64_file(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return UINT64_MAX;
    char line[256];
    uint64_t v = UINT64_MAX;
    size_t klen = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f)) {
        if (key && strncmp(line, key, klen) != 0)
            continue;
        char *end;
        unsigned long long n = strtoull(line + klen, &end, 10);
        if (end != line + klen) {
            v = n;
            if (key && strstr(end, "kB"))
                v = n * 1024;
        }
        break;
    }
    fclose(f);
    return v;
}

static uint64_t host_room(void)
{
    uint64_t room = read_u64_file("/proc/meminfo", "MemAvailable:");
    uint64_t max = read_u64_file("/sys/fs/cgroup/memory.max", NULL); /* "max" reads as UINT64_MAX */
    uint64_t cur = read_u64_file("/sys/fs/cgroup/memory.current", NULL);
    if (max != UINT64_MAX && cur != UINT64_MAX) {
        uint64_t left = max > cur ? max - cur : 0;
        if (left < room)
            room = left;
    }
    return room;
}

/* Note [One registration]
 * A host buffer keeps its committed range registered with the driver as ONE
 * registration. CUDA refuses a copy whose host range spans two registrations
 * (cudaErrorInvalidValue: seen on an H200, 2026-12-04, when ComfyUI-style
 * loading grew a buffer module by module and PyTorch copied a weight that
 * straddled a growth boundary), and applications slice host buffers into
 * tensors anywhere. So growing re-registers the whole committed range: wait
 * for the copies using the buffer (Note [Host buffers and pending copies]),
 * unregister, commit the new part, register [0, new end). Registration costs
 * time in proportion to the bytes (about 120 ms per GiB on an H100), so the
 * committed range grows geometrically -- at least doubling, up to
 * VS_HOST_GROW_STEP at a time, never past max_size or the memory left -- which
 * keeps the total re-registered bytes within a few times the final size and the
 * number of re-registrations logarithmic for buffers up to the step. If the
 * larger registration fails, the old one is restored and the growth fails with
 * the driver's status; if even the restore fails the buffer is left with its
 * old contents unregistered (copies then run as pageable ones on backends that
 * allow it) and the error is logged. */
#define VS_HOST_GROW_STEP ((uint64_t)1 << 30)

static vs_status host_grow(vs_device_t *dev, struct vs_host_buffer *b, uint64_t target)
{
    uint64_t from = b->committed;
    uint64_t want = target;
    if (from > 0) {
        uint64_t step = from < VS_HOST_GROW_STEP ? from : VS_HOST_GROW_STEP;
        uint64_t geo = from + step;
        if (geo > b->max_size)
            geo = b->max_size;
        if (geo > want)
            want = geo;
    }
    uint64_t room = host_room();
    if (want - from > room)
        want = target; /* the geometric extra does not fit: only what was asked */
    uint64_t len = want - from;
    if (len > room) {
        vs_log(VS_LOG_ERROR, "host buffer: %llu MiB more pinned memory requested, about %llu MiB available",
               (unsigned long long)(len >> 20), (unsigned long long)(room >> 20));
        return VS_ERR_OUT_OF_MEMORY;
    }
    if (b->capsegs == 0) { /* the one slot, reserved before anything changes */
        if (seg_push(b, 0, 0) != VS_OK)
            return VS_ERR_OUT_OF_MEMORY;
        b->nsegs = 0;
    }
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
    vs_status st;
    if (b->nsegs == 1) {
        /* Note [One registration]: the old registration goes, the whole range comes. */
        st = vs_host_wait_copies(dev, b);
        if (st == VS_OK)
            st = dev->ops->host_unregister(dev->bdev, b->base);
        if (st != VS_OK) {
            decommit(b, from, want);
            dev->stats.backend_failures++;
            return st;
        }
        b->nsegs = 0;
        vs_budget_add(dev, VS_USE_HOST, -(int64_t)from);
    }
    st = dev->ops->host_register(dev->bdev, b->base, want);
    if (st != VS_OK) {
        decommit(b, from, want);
        if (st != VS_ERR_OUT_OF_MEMORY) {
            dev->stats.backend_failures++;
            vs_log(VS_LOG_ERROR, "registering %llu bytes of host memory failed: %s", (unsigned long long)want,
                   vs_status_name(st));
        }
        if (from > 0) { /* restore the old registration */
            vs_status rs = dev->ops->host_register(dev->bdev, b->base, from);
            if (rs == VS_OK) {
                b->segs[0] = (vs_hostseg){0, from};
                b->nsegs = 1;
                b->unregistered = false;
                vs_budget_add(dev, VS_USE_HOST, (int64_t)from);
            } else {
                b->unregistered = true; /* contents kept; the next growth registers it all */
                vs_log(VS_LOG_ERROR, "host buffer: re-registering its %llu bytes failed (%s): "
                       "it stays unregistered until it grows again", (unsigned long long)from,
                       vs_status_name(rs));
            }
        }
        return st;
    }
    b->segs[0] = (vs_hostseg){0, want};
    b->nsegs = 1;
    b->unregistered = false;
    b->committed = want;
    vs_budget_add(dev, VS_USE_HOST, (int64_t)want);
    return VS_OK;
}

/* Note [Host buffers and pending copies]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * vs_memcpy_async only queues a copy. If the host side lies in a host buffer
 * that is then shrunk or destroyed, the copy would read or write unregistered,
 * decommitted memory (a DMA into freed pages on a GPU; a use-after-free in the
 * simulator's copy thread). So vs_memcpy_async, under the device lock, records
 * an event on the copy's stream after the copy and keeps it in the buffer (one
 * per stream, re-recorded: streams are in order, so the newest event covers
 * every earlier copy on that stream). Shrinking and destroying wait for those
 * events before unregistering anything. A copy of host memory outside every
 * host buffer is the caller's business, as with the driver.
 */
vs_status vs_host_note_copy(vs_device_t *dev, uintptr_t ptr, uint64_t size, uintptr_t stream)
{
    struct vs_host_buffer *b = dev->hosts;
    for (; b; b = b->next) {
        uintptr_t lo = (uintptr_t)b->base;
        if (ptr < lo + b->max_size && ptr + size > lo)
            break;
    }
    if (!b)
        return VS_OK;
    size_t i = 0;
    while (i < b->ncopies && b->copies[i].stream != stream)
        i++;
    if (i == b->ncopies) {
        if (b->ncopies == b->capcopies) {
            size_t cap = b->capcopies ? b->capcopies * 2 : 4;
            struct vs_hostcopy *n = realloc(b->copies, cap * sizeof *n);
            if (!n)
                return dev->ops->stream_synchronize(dev->bdev, stream); /* wait now instead */
            b->copies = n;
            b->capcopies = cap;
        }
        uintptr_t ev = 0;
        vs_status st = dev->ops->event_create(dev->bdev, &ev);
        if (st != VS_OK)
            return dev->ops->stream_synchronize(dev->bdev, stream);
        b->copies[b->ncopies++] = (struct vs_hostcopy){stream, ev};
    }
    vs_status st = dev->ops->event_record(dev->bdev, b->copies[i].event, stream);
    if (st != VS_OK)
        st = dev->ops->stream_synchronize(dev->bdev, stream);
    return st;
}

vs_status vs_host_wait_copies(vs_device_t *dev, struct vs_host_buffer *b)
{
    vs_status first = VS_OK;
    for (size_t i = 0; i < b->ncopies; i++) {
        vs_status st = dev->ops->event_synchronize(dev->bdev, b->copies[i].event);
        if (st != VS_OK && first == VS_OK) {
            vs_log(VS_LOG_ERROR, "waiting for copies using a host buffer failed: %s", vs_status_name(st));
            first = st;
        }
        dev->ops->event_destroy(dev->bdev, b->copies[i].event);
    }
    b->ncopies = 0;
    return first;
}

static vs_status host_shrink(vs_device_t *dev, struct vs_host_buffer *b, uint64_t target)
{
    vs_status first = vs_host_wait_copies(dev, b);
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
    else if (size < b->size && target < b->committed)
        st = host_shrink(dev, b, target); /* growth keeps its geometric extra */
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
    free(b->copies);
    b->copies = NULL;
    b->ncopies = b->capcopies = 0;
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
