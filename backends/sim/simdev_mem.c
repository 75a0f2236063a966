/* simdev_mem.c: device memory of the simulated GPU.
 *
 * Note [Sim device memory]
 * Device addresses are host addresses, so the CPU (tests, the copy workers) can
 * read what a "GPU" mapping holds, and the kernel enforces the mapping state:
 * - a reservation is anonymous PROT_NONE memory (MAP_NORESERVE: it costs only
 *   address space);
 * - simdev_map() places the chunk's part of the memory file over it with
 *   mmap(MAP_FIXED | MAP_SHARED), still PROT_NONE, as a fresh CUDA mapping is
 *   inaccessible until cuMemSetAccess;
 * - simdev_set_access() is mprotect();
 * - simdev_unmap() puts anonymous PROT_NONE memory back over the range, so a
 *   touch faults (SIGSEGV) like a GPU access to unmapped memory, while the
 *   chunk keeps its contents in the file.
 * Each reservation keeps, per granule, the mapping covering it and its access,
 * so validating a copy or an unmap is a walk over the granules it covers, and
 * map/set_access/unmap of one page cost one syscall plus O(granules per page).
 *
 * Note [One memory file]
 * Physical chunks are ranges of a single memfd per device, not one memfd each:
 * a 1 GiB device of 64 KiB chunks would otherwise need 16384 descriptors, far
 * above the usual RLIMIT_NOFILE of 1024. The file is sparse; a chunk's range is
 * taken first-fit from the free extents (or the end of the file), starts as a
 * hole (reads as zeros) and is punched back into a hole when the chunk is
 * freed, which returns its pages to the host.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "simdev_internal.h"

/* ---------------------------------------------------------------- reservation table */

/* Index of the first entry with base > ptr. */
static size_t resv_upper(const simdev_t *dev, uint64_t ptr)
{
    size_t lo = 0, hi = dev->nresv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dev->resv[mid]->base <= ptr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

sim_resv *sim_mem_find(simdev_t *dev, uint64_t ptr)
{
    size_t i = resv_upper(dev, ptr);
    if (i == 0)
        return NULL;
    sim_resv *r = dev->resv[i - 1];
    return ptr - r->base < r->size ? r : NULL;
}

static vs_status resv_insert(simdev_t *dev, sim_resv *r)
{
    if (dev->nresv == dev->capresv) {
        size_t ncap = dev->capresv ? dev->capresv * 2 : 16;
        sim_resv **a = realloc(dev->resv, ncap * sizeof *a);
        if (!a)
            return sim_fail(VS_ERR_OUT_OF_MEMORY, "no host memory for the reservation table");
        dev->resv = a;
        dev->capresv = ncap;
    }
    size_t i = resv_upper(dev, r->base);
    memmove(&dev->resv[i + 1], &dev->resv[i], (dev->nresv - i) * sizeof *dev->resv);
    dev->resv[i] = r;
    dev->nresv++;
    return VS_OK;
}

static void resv_remove(simdev_t *dev, sim_resv *r)
{
    size_t i = resv_upper(dev, r->base);
    if (i == 0 || dev->resv[i - 1] != r)
        return;
    i--;
    memmove(&dev->resv[i], &dev->resv[i + 1], (dev->nresv - i - 1) * sizeof *dev->resv);
    dev->nresv--;
}

bool sim_mem_overlaps(simdev_t *dev, uint64_t p, uint64_t size)
{
    if (size == 0)
        return false;
    uint64_t last = size - 1 > UINT64_MAX - p ? UINT64_MAX : p + size - 1;
    size_t i = resv_upper(dev, last);
    return i > 0 && dev->resv[i - 1]->base + dev->resv[i - 1]->span > p;
}

bool sim_mem_idle(const simdev_t *dev)
{
    return dev->nresv == 0 && dev->chunks.live == 0 && dev->nhostreg == 0 && dev->external == 0 &&
           dev->malloc_bytes == 0;
}

static vs_status errno_status(int err)
{
    return err == ENOMEM ? VS_ERR_OUT_OF_MEMORY : VS_ERR_BACKEND;
}

/* mmap `size` bytes aligned to `align` (trimming the excess). */
static vs_status map_aligned(uint64_t size, uint64_t align, int prot, uint64_t *out)
{
    uint64_t os_page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t extra = align > os_page ? align - os_page : 0;
    if (size > UINT64_MAX - extra || size + extra > (uint64_t)SIZE_MAX)
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "size too large");
    void *raw = mmap(NULL, (size_t)(size + extra), prot,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        int err = errno;
        return sim_fail(errno_status(err), "mmap of %llu bytes failed: %s",
                        (unsigned long long)(size + extra), strerror(err));
    }
    uint64_t r = (uint64_t)(uintptr_t)raw;
    uint64_t base = (r + align - 1) / align * align;
    if (base > r)
        munmap(raw, (size_t)(base - r));
    if (r + size + extra > base + size)
        munmap((void *)(uintptr_t)(base + size), (size_t)(r + size + extra - base - size));
    *out = base;
    return VS_OK;
}

/* ---------------------------------------------------------------- reservations */

/* The per-granule tables of a reservation (gmap, then gacc) in one anonymous
 * mapping: zero pages cost nothing until a granule is mapped, so reserving
 * far more address space than the device has memory (as PyTorch's expandable
 * segments do) stays cheap, and an absurd size fails as out of memory instead
 * of tripping an allocator limit. */
static uint64_t granule_table_bytes(uint64_t ngran)
{
    uint64_t os_page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (ngran * (sizeof(sim_map *) + 1) + os_page - 1) / os_page * os_page;
}

static vs_status granule_table_alloc(sim_resv *r, uint64_t ngran)
{
    if (ngran > (UINT64_MAX / 2) / (sizeof(sim_map *) + 1))
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "va_reserve: size too large");
    void *p = mmap(NULL, (size_t)granule_table_bytes(ngran), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        return sim_fail(errno_status(err), "va_reserve: no memory for the granule map: %s",
                        strerror(err));
    }
    r->gmap = p;
    r->gacc = (uint8_t *)p + ngran * sizeof(sim_map *);
    return VS_OK;
}

static void granule_table_free(sim_resv *r, uint64_t ngran)
{
    munmap(r->gmap, (size_t)granule_table_bytes(ngran));
    r->gmap = NULL;
    r->gacc = NULL;
}

vs_status simdev_va_reserve(simdev_t *dev, uint64_t size, uint64_t align, uint64_t *va)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_VA_RESERVE);
    if (st != VS_OK)
        return st;
    if (align == 0)
        align = dev->gran;
    if (!va)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "va_reserve: va is NULL");
    else if (size == 0 || size % dev->gran)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "va_reserve: size %llu is not a granularity multiple",
                      (unsigned long long)size);
    else if (align % dev->gran)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "va_reserve: align %llu is not a granularity multiple",
                      (unsigned long long)align);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_VA_RESERVE, "va_reserve");
    if (st != VS_OK)
        goto out;

    uint64_t ngran = size / dev->gran, base = 0;
    sim_resv *r = calloc(1, sizeof *r);
    if (!r) {
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "va_reserve: no host memory");
        goto out;
    }
    if ((st = map_aligned(size, align, PROT_NONE, &base)) != VS_OK)
        goto fail;
    if ((st = granule_table_alloc(r, ngran)) != VS_OK)
        goto fail_unmap;
    r->base = base;
    r->size = r->span = size;
    r->kind = SIMDEV_RANGE_RESERVED;
    if ((st = resv_insert(dev, r)) != VS_OK)
        goto fail_table;
    dev->ctr.reservations++;
    dev->ctr.reserved_bytes += size;
    *va = base;
    goto out;
fail_table:
    granule_table_free(r, ngran);
fail_unmap:
    munmap((void *)(uintptr_t)base, (size_t)size);
fail:
    free(r);
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_va_free(simdev_t *dev, uint64_t va, uint64_t size)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_VA_FREE);
    if (st != VS_OK)
        return st;
    sim_resv *r = sim_mem_find(dev, va);
    if (!r || r->base != va || r->kind != SIMDEV_RANGE_RESERVED)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "va_free: 0x%llx is not a reservation",
                      (unsigned long long)va);
    else if (r->size != size)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "va_free: size %llu but %llu were reserved",
                      (unsigned long long)size, (unsigned long long)r->size);
    else if (r->nmaps > 0)
        st = sim_fail(VS_ERR_BUSY, "va_free: %llu mappings are still live",
                      (unsigned long long)r->nmaps);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_VA_FREE, "va_free");
    if (st == VS_OK) {
        munmap((void *)(uintptr_t)r->base, (size_t)r->span);
        resv_remove(dev, r);
        dev->ctr.reservations--;
        dev->ctr.reserved_bytes -= r->size;
        granule_table_free(r, r->size / dev->gran);
        free(r);
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_find_range(simdev_t *dev, uint64_t ptr, uint64_t *base, uint64_t *size, int *kind)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_resv *r = sim_mem_find(dev, ptr);
    if (!r) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "0x%llx is not device memory",
                      (unsigned long long)ptr);
    } else {
        if (base)
            *base = r->base;
        if (size)
            *size = r->size;
        if (kind)
            *kind = r->kind;
    }
    sim_leave(dev);
    return st;
}

vs_status sim_mem_check_rw(simdev_t *dev, uint64_t ptr, uint64_t size)
{
    sim_resv *r = sim_mem_find(dev, ptr);
    if (!r)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "0x%llx is not device memory",
                        (unsigned long long)ptr);
    if (size > r->size - (ptr - r->base))
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "[0x%llx, +%llu) runs past its %s",
                        (unsigned long long)ptr, (unsigned long long)size,
                        r->kind == SIMDEV_RANGE_ALLOCATION ? "allocation" : "reservation");
    if (r->kind == SIMDEV_RANGE_ALLOCATION || size == 0)
        return VS_OK;
    uint64_t g0 = (ptr - r->base) / dev->gran;
    uint64_t g1 = (ptr - r->base + size - 1) / dev->gran;
    for (uint64_t g = g0; g <= g1; g++)
        if (!r->gmap[g] || r->gacc[g] != SIMDEV_ACCESS_RW)
            return sim_fail(VS_ERR_INVALID_ARGUMENT, "0x%llx is %s",
                            (unsigned long long)(r->base + g * dev->gran),
                            r->gmap[g] ? "mapped without access" : "not mapped");
    return VS_OK;
}

vs_status simdev_check_access(simdev_t *dev, uint64_t ptr, uint64_t size)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    st = sim_mem_check_rw(dev, ptr, size);
    sim_leave(dev);
    return st;
}

/* ---------------------------------------------------------------- the memory file */

static vs_status phys_alloc(sim_physfile *pf, int ordinal, uint64_t size, uint64_t *off)
{
    if (pf->fd < 0) {
        char name[32];
        snprintf(name, sizeof name, "vramswap-sim%d", ordinal);
        int fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            return sim_fail(errno_status(err), "memfd_create failed: %s", strerror(err));
        }
        pf->fd = fd;
        pf->file_size = pf->end = 0;
    }
    for (size_t i = 0; i < pf->nfree; i++) {
        sim_extent *e = &pf->free[i];
        if (e->len < size)
            continue;
        *off = e->off;
        e->off += size;
        e->len -= size;
        if (e->len == 0) {
            memmove(e, e + 1, (pf->nfree - i - 1) * sizeof *e);
            pf->nfree--;
        }
        return VS_OK;
    }
    if (pf->end + size > pf->file_size) {
        uint64_t nsize = pf->file_size * 2;
        if (nsize < pf->end + size)
            nsize = pf->end + size;
        if (ftruncate(pf->fd, (off_t)nsize) != 0) {
            int err = errno;
            return sim_fail(errno_status(err), "ftruncate of the memory file failed: %s",
                            strerror(err));
        }
        pf->file_size = nsize;
    }
    *off = pf->end;
    pf->end += size;
    return VS_OK;
}

/* Return [off, off+size) to the file: punch it out, merge it into the free list. */
static void phys_free(sim_physfile *pf, uint64_t off, uint64_t size)
{
    (void)fallocate(pf->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)size);
    size_t i = 0;
    while (i < pf->nfree && pf->free[i].off < off)
        i++;
    bool merge_prev = i > 0 && pf->free[i - 1].off + pf->free[i - 1].len == off;
    bool merge_next = i < pf->nfree && off + size == pf->free[i].off;
    if (merge_prev && merge_next) {
        pf->free[i - 1].len += size + pf->free[i].len;
        memmove(&pf->free[i], &pf->free[i + 1], (pf->nfree - i - 1) * sizeof *pf->free);
        pf->nfree--;
        i--;
    } else if (merge_prev) {
        pf->free[i - 1].len += size;
        i--;
    } else if (merge_next) {
        pf->free[i].off = off;
        pf->free[i].len += size;
    } else {
        if (pf->nfree == pf->capfree) {
            size_t ncap = pf->capfree ? pf->capfree * 2 : 16;
            sim_extent *a = realloc(pf->free, ncap * sizeof *a);
            if (!a) {
                /* Cannot track the extent: the range is only lost for reuse
                 * (its pages were punched out), unless it ends the file. */
                if (off + size == pf->end)
                    pf->end = off;
                return;
            }
            pf->free = a;
            pf->capfree = ncap;
        }
        memmove(&pf->free[i + 1], &pf->free[i], (pf->nfree - i) * sizeof *pf->free);
        pf->free[i].off = off;
        pf->free[i].len = size;
        pf->nfree++;
    }
    /* An extent that reaches the end of the used part shrinks it. */
    if (pf->free[i].off + pf->free[i].len == pf->end && i == pf->nfree - 1) {
        pf->end = pf->free[i].off;
        pf->nfree--;
    }
}

/* ---------------------------------------------------------------- physical chunks */

static void chunk_destroy(simdev_t *dev, sim_chunk *c)
{
    phys_free(&dev->phys, c->file_off, c->size);
    dev->ctr.phys_chunks--;
    dev->ctr.phys_bytes -= c->size;
    free(c);
}

vs_status simdev_phys_create(simdev_t *dev, uint64_t size, simdev_handle *out)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_PHYS_CREATE);
    if (st != VS_OK)
        return st;
    uint64_t used = dev->ctr.phys_bytes + dev->external + dev->malloc_bytes;
    if (!out)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "phys_create: out is NULL");
    else if (size == 0 || size % dev->gran)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT,
                      "phys_create: size %llu is not a granularity multiple",
                      (unsigned long long)size);
    else if (used > dev->total || size > dev->total - used)
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "phys_create: %llu bytes do not fit (%llu of %llu used)",
                      (unsigned long long)size, (unsigned long long)used,
                      (unsigned long long)dev->total);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_PHYS_CREATE, "phys_create");
    if (st != VS_OK)
        goto out;
    sim_chunk *c = calloc(1, sizeof *c);
    if (!c) {
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "phys_create: no host memory");
        goto out;
    }
    c->size = size;
    if ((st = phys_alloc(&dev->phys, dev->ordinal, size, &c->file_off)) != VS_OK) {
        free(c);
        goto out;
    }
    dev->ctr.phys_chunks++;
    dev->ctr.phys_bytes += size;
    if ((st = sim_slots_add(&dev->chunks, dev->ordinal, c, out)) != VS_OK)
        chunk_destroy(dev, c);
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_phys_release(simdev_t *dev, simdev_handle chunk)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_PHYS_RELEASE);
    if (st != VS_OK)
        return st;
    sim_chunk *c = sim_slots_get(&dev->chunks, dev->ordinal, chunk);
    if (!c)
        st = sim_fail(VS_ERR_INVALID_HANDLE, "phys_release: unknown chunk 0x%llx",
                      (unsigned long long)chunk);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_PHYS_RELEASE, "phys_release");
    if (st == VS_OK) {
        sim_slots_remove(&dev->chunks, chunk);
        c->released = true;
        if (c->nmaps == 0)
            chunk_destroy(dev, c);
    }
    sim_leave(dev);
    return st;
}

/* ---------------------------------------------------------------- mappings */

/* The reservation holding all of [va, va+size), with va and size granule-aligned. */
static vs_status find_resv_range(simdev_t *dev, const char *what, uint64_t va, uint64_t size,
                                 sim_resv **out)
{
    if (size == 0 || va % dev->gran || size % dev->gran)
        return sim_fail(VS_ERR_INVALID_ARGUMENT,
                        "%s: [0x%llx, +%llu) is not granularity aligned", what,
                        (unsigned long long)va, (unsigned long long)size);
    sim_resv *r = sim_mem_find(dev, va);
    if (!r || r->kind != SIMDEV_RANGE_RESERVED)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "%s: 0x%llx is not in a reservation", what,
                        (unsigned long long)va);
    if (size > r->size - (va - r->base))
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "%s: [0x%llx, +%llu) runs past the reservation",
                        what, (unsigned long long)va, (unsigned long long)size);
    *out = r;
    return VS_OK;
}

/* Put inaccessible anonymous memory over [va, va+size) (see Note [Sim device memory]). */
static int unmap_range(uint64_t va, uint64_t size)
{
    void *p = mmap((void *)(uintptr_t)va, (size_t)size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    return p == MAP_FAILED ? errno : 0;
}

vs_status simdev_map(simdev_t *dev, uint64_t va, uint64_t size, simdev_handle chunk,
                     uint64_t offset)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_MAP);
    if (st != VS_OK)
        return st;
    sim_resv *r = NULL;
    sim_chunk *c = sim_slots_get(&dev->chunks, dev->ordinal, chunk);
    if (!c)
        st = sim_fail(VS_ERR_INVALID_HANDLE, "map: unknown chunk 0x%llx", (unsigned long long)chunk);
    else if ((st = find_resv_range(dev, "map", va, size, &r)) != VS_OK)
        ;
    else if (offset % dev->gran || offset > c->size || size > c->size - offset)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "map: [%llu, +%llu) is outside the %llu-byte chunk",
                      (unsigned long long)offset, (unsigned long long)size,
                      (unsigned long long)c->size);
    uint64_t g0 = 0, n = 0;
    if (st == VS_OK) {
        g0 = (va - r->base) / dev->gran;
        n = size / dev->gran;
        for (uint64_t g = g0; g < g0 + n; g++)
            if (r->gmap[g]) {
                st = sim_fail(VS_ERR_INVALID_ARGUMENT, "map: 0x%llx is already mapped",
                              (unsigned long long)(r->base + g * dev->gran));
                break;
            }
    }
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_MAP, "map");
    if (st != VS_OK)
        goto out;
    sim_map *m = malloc(sizeof *m);
    if (!m) {
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "map: no host memory");
        goto out;
    }
    void *p = mmap((void *)(uintptr_t)va, (size_t)size, PROT_NONE, MAP_SHARED | MAP_FIXED,
                   dev->phys.fd, (off_t)(c->file_off + offset));
    if (p == MAP_FAILED) {
        int err = errno;
        unmap_range(va, size);  /* MAP_FIXED may have dropped the reservation there */
        free(m);
        st = sim_fail(errno_status(err), "map: mmap failed: %s", strerror(err));
        goto out;
    }
    m->va = va;
    m->size = size;
    m->chunk_off = offset;
    m->chunk = c;
    for (uint64_t g = g0; g < g0 + n; g++) {
        r->gmap[g] = m;
        r->gacc[g] = SIMDEV_ACCESS_NONE;
    }
    c->nmaps++;
    r->nmaps++;
    dev->ctr.mapped_bytes += size;
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_set_access(simdev_t *dev, uint64_t va, uint64_t size, int access)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_SET_ACCESS);
    if (st != VS_OK)
        return st;
    if (access != SIMDEV_ACCESS_NONE && access != SIMDEV_ACCESS_RW) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "set_access: unknown access %d", access);
        goto out;
    }
    if (access == SIMDEV_ACCESS_NONE)
        sim_wait_not_busy(dev, va, va + size);
    sim_resv *r = NULL;
    if ((st = find_resv_range(dev, "set_access", va, size, &r)) != VS_OK)
        goto out;
    uint64_t g0 = (va - r->base) / dev->gran, n = size / dev->gran;
    for (uint64_t g = g0; g < g0 + n; g++)
        if (!r->gmap[g]) {
            st = sim_fail(VS_ERR_INVALID_ARGUMENT, "set_access: 0x%llx is not mapped",
                          (unsigned long long)(r->base + g * dev->gran));
            goto out;
        }
    if ((st = sim_injected(dev, VS_SIM_OP_SET_ACCESS, "set_access")) != VS_OK)
        goto out;
    if (mprotect((void *)(uintptr_t)va, (size_t)size,
                 access == SIMDEV_ACCESS_RW ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) {
        int err = errno;
        st = sim_fail(errno_status(err), "set_access: mprotect failed: %s", strerror(err));
        goto out;
    }
    memset(&r->gacc[g0], access, (size_t)n);
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_unmap(simdev_t *dev, uint64_t va, uint64_t size)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_UNMAP);
    if (st != VS_OK)
        return st;
    if (size <= UINT64_MAX - va)
        sim_wait_not_busy(dev, va, va + size);
    sim_resv *r = NULL;
    if ((st = find_resv_range(dev, "unmap", va, size, &r)) != VS_OK)
        goto out;
    uint64_t g0 = (va - r->base) / dev->gran, g1 = g0 + size / dev->gran;
    uint64_t found = 0;
    for (uint64_t g = g0; g < g1; g++) {
        sim_map *m = r->gmap[g];
        if (!m)
            continue;
        if (m->va < va || m->va + m->size > va + size) {
            st = sim_fail(VS_ERR_INVALID_ARGUMENT,
                          "unmap: [0x%llx, +%llu) cuts the mapping [0x%llx, +%llu)",
                          (unsigned long long)va, (unsigned long long)size,
                          (unsigned long long)m->va, (unsigned long long)m->size);
            goto out;
        }
        found++;
        g += m->size / dev->gran - 1;
    }
    if (found == 0) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "unmap: nothing is mapped in [0x%llx, +%llu)",
                      (unsigned long long)va, (unsigned long long)size);
        goto out;
    }
    if ((st = sim_injected(dev, VS_SIM_OP_UNMAP, "unmap")) != VS_OK)
        goto out;
    int err = unmap_range(va, size);
    if (err) {
        st = sim_fail(VS_ERR_BACKEND, "unmap: mmap failed: %s", strerror(err));
        goto out;
    }
    for (uint64_t g = g0; g < g1;) {
        sim_map *m = r->gmap[g];
        if (!m) {
            g++;
            continue;
        }
        uint64_t n = m->size / dev->gran;
        memset(&r->gmap[g], 0, (size_t)n * sizeof *r->gmap);
        memset(&r->gacc[g], SIMDEV_ACCESS_NONE, (size_t)n);
        g += n;
        r->nmaps--;
        dev->ctr.mapped_bytes -= m->size;
        sim_chunk *c = m->chunk;
        free(m);
        if (--c->nmaps == 0 && c->released)
            chunk_destroy(dev, c);
    }
out:
    sim_leave(dev);
    return st;
}

/* ---------------------------------------------------------------- allocations */

vs_status simdev_malloc(simdev_t *dev, uint64_t size, uint64_t *ptr)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_ALLOC);
    if (st != VS_OK)
        return st;
    uint64_t used = dev->ctr.phys_bytes + dev->external + dev->malloc_bytes;
    uint64_t span = 0;
    if (!ptr || size == 0 || size > UINT64_MAX - dev->gran) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "malloc: bad size %llu or NULL ptr",
                      (unsigned long long)size);
        goto out;
    }
    span = (size + dev->gran - 1) / dev->gran * dev->gran;
    if (used > dev->total || span > dev->total - used)
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "malloc: %llu bytes do not fit (%llu of %llu used)",
                      (unsigned long long)span, (unsigned long long)used,
                      (unsigned long long)dev->total);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_ALLOC, "malloc");
    if (st != VS_OK)
        goto out;
    sim_resv *r = calloc(1, sizeof *r);
    uint64_t base;
    if (!r) {
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "malloc: no host memory");
        goto out;
    }
    if ((st = map_aligned(span, dev->gran, PROT_READ | PROT_WRITE, &base)) != VS_OK) {
        free(r);
        goto out;
    }
    r->base = base;
    r->size = size;
    r->span = span;
    r->kind = SIMDEV_RANGE_ALLOCATION;
    if ((st = resv_insert(dev, r)) != VS_OK) {
        munmap((void *)(uintptr_t)base, (size_t)span);
        free(r);
        goto out;
    }
    dev->malloc_bytes += span;
    *ptr = base;
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_free(simdev_t *dev, uint64_t ptr)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_resv *r;
    for (;;) {
        r = sim_mem_find(dev, ptr);
        if (!r || r->base != ptr || r->kind != SIMDEV_RANGE_ALLOCATION) {
            st = sim_fail(VS_ERR_INVALID_ARGUMENT, "free: 0x%llx is not an allocation",
                          (unsigned long long)ptr);
            goto out;
        }
        if (!sim_wait_unused(dev, r->base, r->base + r->span))
            break;  /* the lock was held throughout: r is still valid */
    }
    munmap((void *)(uintptr_t)r->base, (size_t)r->span);
    resv_remove(dev, r);
    dev->malloc_bytes -= r->span;
    free(r);
out:
    sim_leave(dev);
    return st;
}

/* ---------------------------------------------------------------- host registration */

/* Index of the first registration with base > p. */
static size_t host_upper(const simdev_t *dev, uintptr_t p)
{
    size_t lo = 0, hi = dev->nhostreg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (dev->hostreg[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

vs_status simdev_host_register(simdev_t *dev, void *ptr, uint64_t size)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_HOST_REGISTER);
    if (st != VS_OK)
        return st;
    uintptr_t p = (uintptr_t)ptr;
    size_t i = 0;
    if (!ptr || size == 0 || size > UINTPTR_MAX - p) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "host_register: bad range %p +%llu", ptr,
                      (unsigned long long)size);
        goto out;
    }
    i = host_upper(dev, p);
    if ((i > 0 && dev->hostreg[i - 1].base + dev->hostreg[i - 1].size > p) ||
        (i < dev->nhostreg && dev->hostreg[i].base < p + size)) {
        st = sim_fail(VS_ERR_BUSY, "host_register: %p +%llu overlaps a registered range", ptr,
                      (unsigned long long)size);
        goto out;
    }
    if ((st = sim_injected(dev, VS_SIM_OP_HOST_REGISTER, "host_register")) != VS_OK)
        goto out;
    if (dev->nhostreg == dev->caphostreg) {
        size_t ncap = dev->caphostreg ? dev->caphostreg * 2 : 16;
        sim_hostreg *a = realloc(dev->hostreg, ncap * sizeof *a);
        if (!a) {
            st = sim_fail(VS_ERR_OUT_OF_MEMORY, "host_register: no host memory");
            goto out;
        }
        dev->hostreg = a;
        dev->caphostreg = ncap;
    }
    memmove(&dev->hostreg[i + 1], &dev->hostreg[i], (dev->nhostreg - i) * sizeof *dev->hostreg);
    dev->hostreg[i].base = p;
    dev->hostreg[i].size = size;
    dev->nhostreg++;
    dev->ctr.host_registrations++;
    dev->ctr.host_registered_bytes += size;
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_host_unregister(simdev_t *dev, void *ptr)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    size_t i = host_upper(dev, (uintptr_t)ptr);
    if (i == 0 || dev->hostreg[i - 1].base != (uintptr_t)ptr) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "host_unregister: %p is not registered", ptr);
    } else {
        i--;
        dev->ctr.host_registrations--;
        dev->ctr.host_registered_bytes -= dev->hostreg[i].size;
        memmove(&dev->hostreg[i], &dev->hostreg[i + 1],
                (dev->nhostreg - i - 1) * sizeof *dev->hostreg);
        dev->nhostreg--;
    }
    sim_leave(dev);
    return st;
}

/* Lock held. */
static bool host_registered_locked(const simdev_t *dev, uintptr_t p, uint64_t size)
{
    size_t i = host_upper(dev, p);
    if (i == 0)
        return false;
    const sim_hostreg *h = &dev->hostreg[i - 1];
    return p - h->base < h->size && size <= h->size - (p - h->base);
}

bool sim_host_registered(const simdev_t *dev, uintptr_t p, uint64_t size)
{
    return host_registered_locked(dev, p, size);
}

vs_status simdev_host_is_registered(simdev_t *dev, const void *ptr, uint64_t size)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    if (!host_registered_locked(dev, (uintptr_t)ptr, size))
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "%p +%llu is not registered", ptr,
                      (unsigned long long)size);
    sim_leave(dev);
    return st;
}
