/* Stuck chunks: driver memory that would not go back.
 *
 * Note [Stuck chunks]
 * ~~~~~~~~~~~~~~~~~~~
 * Freeing a page is two driver calls: unmap, then release the physical chunk.
 * Both are retried while the driver answers NOT_READY (Note [Transient driver
 * errors] in vbar.c). When one still fails, the core must not lose track of
 * what the driver holds, or the two drift apart (a fault answering VS_OK for a
 * page that is no longer mapped: comfy-aimdo's "Fault failed: 2" class):
 *  - the unmap failed: during eviction the page stays resident and mapped
 *    (nothing changed, the eviction reports the error); where the caller must
 *    let go (destroying a VBAR or shrinking a scratch buffer) the chunk is kept
 *    here as `mapped`;
 *  - the unmap worked but the release failed: the page is gone (it is no
 *    longer mapped, so the core clears it) and the chunk is kept here.
 * Kept chunks are counted in stats.stuck_chunks, retried once each before a
 * page is mapped (a mapped one may sit where that page goes) and at destroy
 * and close. A VBAR destroy or device close that still cannot return them, or
 * cannot free a reservation, gives them up: the handle is consumed all the
 * same (callers cannot do better than the library), the bytes are added to
 * stats.leaked_bytes, an error is logged, and the call returns VS_ERR_BACKEND.
 * The invariant checker verifies the count and that no mapped stuck chunk
 * overlaps a page the core believes resident.
 */
#include <stdlib.h>

#include "internal.h"

void vs_leak(vs_device_t *dev, uint64_t bytes, const char *what)
{
    dev->stats.leaked_bytes += bytes;
    vs_log(VS_LOG_ERROR, "leaked %llu bytes of driver memory (%s); %llu leaked on this device so far",
           (unsigned long long)bytes, what, (unsigned long long)dev->stats.leaked_bytes);
}

void vs_orphan_add(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk, bool mapped)
{
    dev->stats.backend_failures++;
    if (dev->norphans == dev->caporphans) {
        size_t cap = dev->caporphans ? dev->caporphans * 2 : 8;
        vs_orphan *n = realloc(dev->orphans, cap * sizeof *n);
        if (!n) {
            vs_leak(dev, size, "no memory to remember a stuck chunk");
            return;
        }
        dev->orphans = n;
        dev->caporphans = cap;
    }
    dev->orphans[dev->norphans++] = (vs_orphan){va, size, chunk, mapped};
    dev->stats.stuck_chunks = dev->norphans;
    vs_log(VS_LOG_ERROR, "the driver would not %s a chunk at 0x%llx; kept to retry (%zu stuck)",
           mapped ? "unmap" : "release", (unsigned long long)va, dev->norphans);
}

void vs_orphans_retry(vs_device_t *dev)
{
    size_t keep = 0;
    for (size_t i = 0; i < dev->norphans; i++) {
        vs_orphan o = dev->orphans[i];
        if (o.mapped && dev->ops->unmap(dev->bdev, o.va, o.size) == VS_OK)
            o.mapped = false;
        if (!o.mapped && dev->ops->phys_release(dev->bdev, o.chunk) == VS_OK) {
            dev->stats.chunks_released++;
            vs_log(VS_LOG_INFO, "released a stuck chunk on retry");
            continue;
        }
        dev->orphans[keep++] = o;
    }
    dev->norphans = keep;
    dev->stats.stuck_chunks = keep;
}

uint64_t vs_orphans_drop(vs_device_t *dev, vs_devptr_t va, uint64_t size)
{
    uint64_t dropped = 0;
    size_t keep = 0;
    for (size_t i = 0; i < dev->norphans; i++) {
        vs_orphan o = dev->orphans[i];
        /* Within a range, only mappings are given up (the address space is
         * going); a chunk that is merely unreleased can still be retried. */
        if (size == 0 || (o.mapped && o.va >= va && o.va - va < size)) {
            dropped += o.size;
            continue;
        }
        dev->orphans[keep++] = o;
    }
    dev->norphans = keep;
    dev->stats.stuck_chunks = keep;
    if (dropped)
        vs_leak(dev, dropped, "chunks the driver would not unmap or release");
    return dropped;
}
