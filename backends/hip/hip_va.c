/* HIP address ranges: hipMemAddressReserve / hipMemAddressFree behind a small
 * per-device cache, and the bookkeeping of memory that hipMemRelease may leave
 * stranded in a reserved range.
 *
 * Note [HIP reservation cache]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: repeated reserve/free of large address ranges is the least
 * exercised path of ROCm's VMM, and it has broken: on some stacks the VA state
 * corrupts after a number of hipMemAddressReserve/hipMemAddressFree rounds (the
 * reserve then fails or the runtime crashes; reported from comfy-aimdo's
 * model-swap loop, ROCm/rocm-systems#6191, #9823), and freeing a range has
 * segfaulted inside libamdhip64 (ROCm/ROCR-Runtime#287). An application that
 * swaps models reserves and frees a VBAR per load, and scratch buffers come and
 * go per step.
 *
 * Approach: va_free does not give a range back at once. It keeps up to
 * vs_hip.va_cache_max ranges per device (VS_HIP_VA_CACHE_DEFAULT, environment
 * VRAMSWAP_HIP_VA_CACHE; 0 turns the cache off), and va_reserve hands out a
 * cached range before asking the runtime: the smallest one that is large
 * enough, no more than twice the size asked for (so a small scratch buffer
 * does not pin a model-sized range) and aligned as asked. When the cache is
 * full the range cached longest ago is really freed; close frees them all. The
 * core never sees the difference: a reused range is inaccessible until mapped,
 * like a fresh one, and va_free takes the size the core reserved.
 *
 * A reservation refused with an explicit alignment is retried with the default
 * one and kept if it happens to be aligned (some stacks refuse alignments,
 * vllm-project/vllm#43022).
 *
 * A range is not cached (it is really freed) when it still has mappings (the
 * runtime's own answer is then the right one) or when it holds stranded
 * memory (Note [HIP stranded memory]): keeping such a range would keep that
 * memory from everyone.
 *
 * Note [HIP stranded memory]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: on several ROCm stacks on Linux, physical memory released with
 * hipMemRelease is not given back to the device while the address range it
 * was mapped in is still reserved; it comes back at hipMemAddressFree
 * (ROCm/hip#3781, ROCm 6.4.0, fixed in 6.4.2; the same seen again with ROCm
 * 7.2 by comfy-aimdo's ROCm port, ROCm/legacy-rocm-build#6021; vLLM's sleep
 * mode hit it, vllm-project/vllm#46203). hipMemGetInfo keeps counting such
 * memory as used, so free-memory figures lag behind evictions.
 *
 * What it means for vramswap: the core already avoids the release where it
 * can -- a VBAR-to-VBAR eviction moves the chunk to the new page without
 * releasing it (chunks_reused) -- and releases chunks only under external
 * pressure (an intercepted allocation, vs_device_reclaim/free_memory) or when
 * a VBAR or scratch buffer is destroyed. On a stack that strands memory, an
 * eviction made for someone else's allocation frees nothing until the VBAR's
 * range goes, and a destroyed VBAR's memory comes back only when its range is
 * really freed.
 *
 * What the backend does:
 * - mem_info reports hipMemGetInfo as it is. Stranded memory appears there as
 *   used, which the core's budget counts as "others" (Note [Budget]): the
 *   figure is already conservative, and never claims room that is not there.
 * - It learns whether this stack strands memory: the first few times a chunk
 *   whose range is still held is released, hipMemGetInfo is read just before
 *   and after hipMemRelease (two ~10 us calls; at most VS_HIP_PROBE_MAX
 *   times per device). Memory that comes back votes "returns", memory that
 *   does not votes "strands"; three unanimous votes (or a clear majority of
 *   VS_HIP_PROBE_MAX) decide. Other threads allocating at the same moment can
 *   blur a vote, which is why one vote is not enough. VRAMSWAP_HIP_RELEASE=
 *   returns|strands skips the measurement.
 * - Until the stack is known to return memory, a range in which chunks were
 *   released is really freed by va_free (not cached), so a destroyed VBAR's
 *   memory comes back at once. Ranges never mapped, or whose chunks all moved
 *   on to other ranges, are cached.
 * - Once the stack is known to return memory, cached ranges may have held
 *   chunks. Should the verdict be wrong, their memory would be stranded in the
 *   cache; so when the device runs short -- hipMemGetInfo's free figure below
 *   what those ranges had released, or hipMemCreate out of memory -- they are
 *   really freed first (vs_hip_va_relieve from mem_info, vs_hip_va_flush from
 *   phys_create, which then retries once). With a right verdict this costs
 *   only the cache's benefit, and only when memory is short.
 * - Mappings are unmapped exactly as they were made, one hipMemUnmap per
 *   hipMemMap (the core maps and unmaps one page at a time): unmapping several
 *   mappings with one call has left ROCr believing the range still in use, so
 *   that hipMemAddressFree failed (ROCm/ROCR-Runtime#285).
 * Limitations: a chunk is attributed to the last range it was mapped in; a
 * wrong "returns" verdict strands memory in a *reused* range until that VBAR
 * is destroyed (only cached ranges are given back under pressure).
 */
#include <stdlib.h>
#include <string.h>

#include "hip/hip_internal.h"

/* Release measurements per device (Note [HIP stranded memory]). */
#define VS_HIP_PROBE_MAX 8
#define VS_HIP_PROBE_UNANIMOUS 3

vs_status vs_hip_va_init(vs_bdev *dev)
{
    if (pthread_mutex_init(&dev->lock, NULL) != 0)
        return VS_ERR_OUT_OF_MEMORY;
    dev->ranges = NULL;
    dev->nranges = dev->cap_ranges = dev->ncached = 0;
    dev->cache_seq = 0;
    dev->release = dev->hip->release_forced;
    dev->probe_returns = dev->probe_strands = 0;
    return VS_OK;
}

/* ---------------------------------------------------------------- the range table (under lock) */

static vs_hip_range *range_at(vs_bdev *dev, uint64_t base)
{
    for (size_t i = 0; i < dev->nranges; i++)
        if (dev->ranges[i].base == base)
            return &dev->ranges[i];
    return NULL;
}

/* The range that contains [va, va+size), in use by the core. */
static vs_hip_range *range_containing(vs_bdev *dev, uint64_t va, uint64_t size)
{
    for (size_t i = 0; i < dev->nranges; i++) {
        vs_hip_range *r = &dev->ranges[i];
        if (va >= r->base && va - r->base < r->size && size <= r->size - (va - r->base))
            return r;
    }
    return NULL;
}

static vs_status range_add(vs_bdev *dev, uint64_t base, uint64_t size)
{
    if (dev->nranges == dev->cap_ranges) {
        size_t cap = dev->cap_ranges ? dev->cap_ranges * 2 : 16;
        vs_hip_range *n = realloc(dev->ranges, cap * sizeof *n);
        if (!n)
            return VS_ERR_OUT_OF_MEMORY;
        dev->ranges = n;
        dev->cap_ranges = cap;
    }
    vs_hip_range *r = &dev->ranges[dev->nranges++];
    memset(r, 0, sizeof *r);
    r->base = base;
    r->size = size;
    return VS_OK;
}

static void range_remove(vs_bdev *dev, vs_hip_range *r)
{
    if (r->cached_seq)
        dev->ncached--;
    *r = dev->ranges[--dev->nranges];
}

/* Does a range hold memory that hipMemRelease may have left stranded? */
static bool range_dirty(const vs_bdev *dev, const vs_hip_range *r)
{
    return r->released > 0 && dev->release != VS_HIP_RELEASE_RETURNS;
}

/* hipMemAddressFree the range and forget it (scope entered, lock held). The
 * record is forgotten even when the runtime refuses for a cached range: the
 * core already let go of it and nothing can be done but report it. */
static vs_status really_free(vs_bdev *dev, vs_hip_range *r)
{
    const vs_hip_api *api = &dev->hip->api;
    hipError_t e = api->MemAddressFree((void *)(uintptr_t)r->base, (size_t)r->size);
    vs_status st = vs_hip_result(api, e, "hipMemAddressFree");
    if (st != VS_OK) {
        if (!r->cached_seq)
            return st;
    } else if (range_dirty(dev, r)) {
        vs_backend_log(VS_LOG_DEBUG, "hip: device %d: freed a range holding %llu released bytes",
                       dev->ordinal, (unsigned long long)r->released);
    }
    range_remove(dev, r);
    return st;
}

/* Really free the oldest cached ranges beyond the cache's size. */
static void trim_cache(vs_bdev *dev)
{
    while (dev->ncached > dev->hip->va_cache_max) {
        vs_hip_range *oldest = NULL;
        for (size_t i = 0; i < dev->nranges; i++) {
            vs_hip_range *r = &dev->ranges[i];
            if (r->cached_seq && (!oldest || r->cached_seq < oldest->cached_seq))
                oldest = r;
        }
        if (!oldest)
            break;
        (void)really_free(dev, oldest);
    }
}

/* ---------------------------------------------------------------- reserve / free */

/* hipMemAddressReserve with an alignment. Some ROCm stacks refuse an explicit
 * alignment that a reservation with the default alignment would satisfy
 * anyway (vllm-project/vllm#43022): on failure, try the default and keep the
 * range only if it happens to be aligned. */
static hipError_t reserve_aligned(const vs_hip_api *api, uint64_t size, uint64_t align, void **va)
{
    hipError_t e = api->MemAddressReserve(va, (size_t)size, (size_t)align, NULL, 0);
    if (e == hipSuccess || align == 0 || e == hipErrorOutOfMemory)
        return e;
    void *any = NULL;
    if (api->MemAddressReserve(&any, (size_t)size, 0, NULL, 0) != hipSuccess)
        return e;
    if (any && (uint64_t)(uintptr_t)any % align == 0) {
        *va = any;
        return hipSuccess;
    }
    (void)api->MemAddressFree(any, (size_t)size);
    return e;
}

vs_status vs_hip_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out)
{
    if (!dev || !out || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&dev->lock);
    vs_hip_range *best = NULL;
    for (size_t i = 0; i < dev->nranges; i++) {
        vs_hip_range *r = &dev->ranges[i];
        if (!r->cached_seq || r->size < size || r->size / 2 > size)
            continue;
        if (align && r->base % align != 0)
            continue;
        if (!best || r->size < best->size)
            best = r;
    }
    if (best) {
        best->cached_seq = 0;
        dev->ncached--;
        *out = (vs_devptr_t)best->base;
        pthread_mutex_unlock(&dev->lock);
        return VS_OK;
    }
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK) {
        pthread_mutex_unlock(&dev->lock);
        return st;
    }
    const vs_hip_api *api = &dev->hip->api;
    void *va = NULL;
    hipError_t e = reserve_aligned(api, size, align, &va);
    st = vs_hip_result(api, e, "hipMemAddressReserve");
    if (st == VS_OK && !va) {
        vs_backend_log(VS_LOG_ERROR, "hip: hipMemAddressReserve returned a null range");
        st = VS_ERR_BACKEND;
    }
    if (st == VS_OK) {
        st = range_add(dev, (uint64_t)(uintptr_t)va, size);
        if (st != VS_OK)
            (void)api->MemAddressFree(va, (size_t)size);
    }
    vs_hip_leave(dev, &scope);
    pthread_mutex_unlock(&dev->lock);
    if (st == VS_OK)
        *out = (vs_devptr_t)(uintptr_t)va;
    return st;
}

vs_status vs_hip_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev || !va || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    pthread_mutex_lock(&dev->lock);
    vs_hip_range *r = range_at(dev, (uint64_t)va);
    if (r && (r->cached_seq || size > r->size)) {
        pthread_mutex_unlock(&dev->lock);
        return VS_ERR_INVALID_ARGUMENT; /* freed twice, or not the size reserved */
    }
    bool cache = r && r->mapped == 0 && !range_dirty(dev, r) && dev->hip->va_cache_max > 0;
    if (cache) {
        r->cached_seq = ++dev->cache_seq;
        dev->ncached++;
        if (dev->ncached <= dev->hip->va_cache_max) {
            pthread_mutex_unlock(&dev->lock);
            return VS_OK;
        }
    }
    vs_hip_scope scope;
    vs_status st = vs_hip_enter(dev, &scope);
    if (st != VS_OK) {
        pthread_mutex_unlock(&dev->lock);
        return cache ? VS_OK : st; /* a cache over its size is trimmed next time */
    }
    const vs_hip_api *api = &dev->hip->api;
    if (cache)
        trim_cache(dev);
    else if (r)
        st = really_free(dev, r);
    else /* not reserved through us: let the runtime judge */
        st = vs_hip_result(api, api->MemAddressFree((void *)(uintptr_t)va, (size_t)size),
                           "hipMemAddressFree");
    vs_hip_leave(dev, &scope);
    pthread_mutex_unlock(&dev->lock);
    return st;
}

size_t vs_hip_va_flush(vs_bdev *dev, bool all)
{
    size_t n = 0;
    pthread_mutex_lock(&dev->lock);
    vs_hip_scope scope;
    if (vs_hip_enter(dev, &scope) != VS_OK) {
        pthread_mutex_unlock(&dev->lock);
        return 0;
    }
    for (size_t i = dev->nranges; i-- > 0;) {
        vs_hip_range *r = &dev->ranges[i];
        if (r->cached_seq && (all || r->released > 0)) {
            (void)really_free(dev, r); /* swaps the last record into i: already visited */
            n++;
        }
    }
    vs_hip_leave(dev, &scope);
    pthread_mutex_unlock(&dev->lock);
    return n;
}

size_t vs_hip_va_relieve(vs_bdev *dev, uint64_t free_bytes)
{
    uint64_t held = 0;
    pthread_mutex_lock(&dev->lock);
    for (size_t i = 0; i < dev->nranges; i++)
        if (dev->ranges[i].cached_seq)
            held += dev->ranges[i].released;
    pthread_mutex_unlock(&dev->lock);
    if (held == 0 || free_bytes >= held)
        return 0;
    return vs_hip_va_flush(dev, false);
}

void vs_hip_va_fini(vs_bdev *dev)
{
    (void)vs_hip_va_flush(dev, true);
    if (dev->nranges)
        vs_backend_log(VS_LOG_WARN, "hip: device %d closed with %zu address range(s) still reserved",
                       dev->ordinal, dev->nranges);
    free(dev->ranges);
    dev->ranges = NULL;
    dev->nranges = dev->cap_ranges = 0;
    pthread_mutex_destroy(&dev->lock);
}

/* ---------------------------------------------------------------- mappings and releases */

void vs_hip_va_note_map(vs_bdev *dev, vs_bphys *chunk, vs_devptr_t va)
{
    pthread_mutex_lock(&dev->lock);
    vs_hip_range *r = range_containing(dev, (uint64_t)va, chunk->size);
    if (r) {
        r->mapped += chunk->size;
        chunk->mapped_in = r->base;
    }
    pthread_mutex_unlock(&dev->lock);
}

void vs_hip_va_note_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    pthread_mutex_lock(&dev->lock);
    vs_hip_range *r = range_containing(dev, (uint64_t)va, size);
    if (r)
        r->mapped = r->mapped > size ? r->mapped - size : 0;
    pthread_mutex_unlock(&dev->lock);
}

/* Count one release measurement and decide when the votes agree. */
static void vote(vs_bdev *dev, int64_t came_back, uint64_t size)
{
    if (came_back >= (int64_t)(size - size / 4))
        dev->probe_returns++;
    else if (came_back <= (int64_t)(size / 4))
        dev->probe_strands++;
    else
        return; /* blurred by someone else's allocation: no vote */
    int ret = dev->probe_returns, str = dev->probe_strands;
    vs_hip_release_mode m = VS_HIP_RELEASE_UNKNOWN;
    if (ret >= VS_HIP_PROBE_UNANIMOUS && str == 0)
        m = VS_HIP_RELEASE_RETURNS;
    else if (str >= VS_HIP_PROBE_UNANIMOUS && ret == 0)
        m = VS_HIP_RELEASE_STRANDS;
    else if (ret + str >= VS_HIP_PROBE_MAX)
        m = ret > 2 * str ? VS_HIP_RELEASE_RETURNS : VS_HIP_RELEASE_STRANDS;
    if (m == VS_HIP_RELEASE_UNKNOWN)
        return;
    dev->release = m;
    if (m == VS_HIP_RELEASE_STRANDS)
        vs_backend_log(VS_LOG_WARN,
                       "hip: device %d: hipMemRelease does not give memory back while its address "
                       "range is reserved (measured %d of %d times); evictions for other "
                       "allocations free nothing until a VBAR is destroyed -- a ROCm bug, fixed in "
                       "some releases (docs/backends-hip.md)",
                       dev->ordinal, str, ret + str);
    else
        vs_backend_log(VS_LOG_INFO, "hip: device %d: hipMemRelease gives memory back (measured %d of %d)",
                       dev->ordinal, ret, ret + str);
}

hipError_t vs_hip_va_release_chunk(vs_bdev *dev, vs_bphys *chunk)
{
    const vs_hip_api *api = &dev->hip->api;
    pthread_mutex_lock(&dev->lock);
    vs_hip_range *r = chunk->mapped_in ? range_at(dev, chunk->mapped_in) : NULL;
    bool probe = r && dev->release == VS_HIP_RELEASE_UNKNOWN &&
                 dev->probe_returns + dev->probe_strands < VS_HIP_PROBE_MAX;
    size_t free0 = 0, free1 = 0, total = 0;
    if (probe && api->MemGetInfo(&free0, &total) != hipSuccess)
        probe = false;
    hipError_t e = api->MemRelease(chunk->handle);
    if (e == hipSuccess && r) {
        r->released += chunk->size;
        if (probe && api->MemGetInfo(&free1, &total) == hipSuccess)
            vote(dev, (int64_t)free1 - (int64_t)free0, chunk->size);
    }
    pthread_mutex_unlock(&dev->lock);
    return e;
}
