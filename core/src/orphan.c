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
 * and close. Destroying a VBAR or scratch buffer consumes the handle; if a
 * stuck mapping still sits in its address range, or the driver refuses to free
 * the reservation, the reservation is kept the same way (counted in
 * stats.stuck_chunks, freed on a later retry). Only vs_device_close gives up:
 * what is still stuck then is added to stats.leaked_bytes, logged with its
 * size, and close returns VS_ERR_BACKEND (the device is closed all the same).
 * The invariant checker verifies the count and that no stuck mapping lies under
 * a page the core believes resident.
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
    dev->orphans[dev->norphans++] = (vs_orphan){va, size, chunk, mapped, false};
    dev->stats.stuck_chunks = dev->norphans;
    vs_log(VS_LOG_ERROR, "the driver would not %s a chunk at 0x%llx; kept to retry (%zu stuck)",
           mapped ? "unmap" : "release", (unsigned long long)va, dev->norphans);
}

static bool mapping_inside(const vs_device_t *dev, vs_devptr_t va, uint64_t size)
{
    for (size_t i = 0; i < dev->norphans; i++) {
        const vs_orphan *o = &dev->orphans[i];
        if (!o->reservation && o->mapped && o->va >= va && o->va - va < size)
            return true;
    }
    return false;
}

void vs_orphans_retry(vs_device_t *dev)
{
    size_t keep = 0;
    for (size_t i = 0; i < dev->norphans; i++) { /* chunks first: they may sit in a reservation */
        vs_orphan o = dev->orphans[i];
        if (!o.reservation) {
            if (o.mapped && dev->ops->unmap(dev->bdev, o.va, o.size) == VS_OK)
                o.mapped = false;
            if (!o.mapped && dev->ops->phys_release(dev->bdev, o.chunk) == VS_OK) {
                dev->stats.chunks_released++;
                vs_log(VS_LOG_INFO, "released a stuck chunk on retry");
                continue;
            }
        }
        dev->orphans[keep++] = o;
    }
    dev->norphans = keep;
    keep = 0;
    for (size_t i = 0; i < dev->norphans; i++) {
        vs_orphan o = dev->orphans[i];
        if (o.reservation && !mapping_inside(dev, o.va, o.size) &&
            dev->ops->va_free(dev->bdev, o.va, o.size) == VS_OK) {
            vs_log(VS_LOG_INFO, "freed a stuck reservation on retry");
            continue;
        }
        dev->orphans[keep++] = o;
    }
    dev->norphans = keep;
    dev->stats.stuck_chunks = keep;
}

void vs_free_reservation(vs_device_t *dev, vs_devptr_t va, uint64_t size)
{
    if (dev->norphans)
        vs_orphans_retry(dev);
    if (!mapping_inside(dev, va, size) && vs_va_free_retry(dev, va, size) == VS_OK)
        return;
    if (dev->norphans == dev->caporphans) {
        size_t cap = dev->caporphans ? dev->caporphans * 2 : 8;
        vs_orphan *n = realloc(dev->orphans, cap * sizeof *n);
        if (!n) {
            vs_leak(dev, size, "no memory to remember a stuck reservation");
            return;
        }
        dev->orphans = n;
        dev->caporphans = cap;
    }
    dev->orphans[dev->norphans++] = (vs_orphan){va, size, NULL, false, true};
    dev->stats.stuck_chunks = dev->norphans;
    vs_log(VS_LOG_ERROR, "an address reservation at 0x%llx could not be freed yet; kept to retry",
           (unsigned long long)va);
}

uint64_t vs_orphans_drop(vs_device_t *dev)
{
    uint64_t dropped = 0;
    for (size_t i = 0; i < dev->norphans; i++)
        dropped += dev->orphans[i].size;
    dev->norphans = 0;
    dev->stats.stuck_chunks = 0;
    if (dropped)
        vs_leak(dev, dropped, "chunks and reservations the driver would not take back");
    return dropped;
}
