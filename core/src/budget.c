/* The budget of a device: what vramswap may use, and what it uses.
 *
 * Note [Budget]
 * ~~~~~~~~~~~~~
 * total      = the driver's total memory, or the configured limit when lower;
 * budget     = total - headroom;
 * own        = weights (VBAR pages mapped) + scratch + intercepted allocations,
 *              counted exactly as they change;
 * others     = (driver total - driver free) - own, sampled when the driver's
 *              free figure is polled; the driver is asked again once the
 *              figure is older than cfg.mem_poll_ns (default 2 ms, one
 *              cuMemGetInfo costs ~8 us), never from a multi-second stale cache;
 * available  = budget - own - others (0 when negative).
 * Between polls only `others` is frozen; own usage is always current, so our
 * own mappings never make the figure stale. Integrated GPUs report host memory
 * through their backend's mem_info (the backend's job, not the core's).
 */
#include "internal.h"

uint64_t vs_budget_total(vs_device_t *dev)
{
    uint64_t t = dev->driver_total;
    if (dev->cfg.limit && dev->cfg.limit < t)
        t = dev->cfg.limit;
    return t;
}

uint64_t vs_budget_own(vs_device_t *dev)
{
    return dev->own_weights + dev->own_scratch + dev->own_intercepted;
}

void vs_budget_invalidate(vs_device_t *dev)
{
    dev->last_poll_ns = 0;
}

static void poll(vs_device_t *dev)
{
    uint64_t now = vs_now_ns();
    if (dev->last_poll_ns && now - dev->last_poll_ns < dev->cfg.mem_poll_ns)
        return;
    uint64_t free_b = 0, total_b = 0;
    vs_status st = dev->ops->mem_info(dev->bdev, &free_b, &total_b);
    dev->stats.mem_polls++;
    if (st != VS_OK) {
        /* Keep the last figure; a failing query must not make room appear. */
        dev->stats.backend_failures++;
        vs_log(VS_LOG_WARN, "free-memory query failed (%s); using the last figure", vs_status_name(st));
        dev->last_poll_ns = now;
        return;
    }
    if (total_b)
        dev->driver_total = total_b;
    uint64_t used = total_b > free_b ? total_b - free_b : 0;
    uint64_t own = vs_budget_own(dev);
    dev->others = used > own ? used - own : 0;
    dev->last_poll_ns = now;
}

uint64_t vs_budget_available(vs_device_t *dev)
{
    poll(dev);
    uint64_t total = vs_budget_total(dev);
    uint64_t budget = total > dev->cfg.headroom ? total - dev->cfg.headroom : 0;
    uint64_t used = vs_budget_own(dev) + dev->others;
    return budget > used ? budget - used : 0;
}

uint64_t vs_budget_shortfall(vs_device_t *dev, uint64_t bytes)
{
    poll(dev);
    uint64_t total = vs_budget_total(dev);
    uint64_t budget = total > dev->cfg.headroom ? total - dev->cfg.headroom : 0;
    uint64_t used = vs_budget_own(dev) + dev->others;
    /* Over budget already (others grew, the limit shrank): that deficit counts too. */
    if (used > budget)
        return bytes > UINT64_MAX - (used - budget) ? UINT64_MAX : bytes + (used - budget);
    return bytes > budget - used ? bytes - (budget - used) : 0;
}

static void track(uint64_t *cur, uint64_t *peak, int64_t delta)
{
    *cur = (uint64_t)((int64_t)*cur + delta);
    if (*cur > *peak)
        *peak = *cur;
}

void vs_budget_add(vs_device_t *dev, int what, int64_t delta)
{
    vs_stats *s = &dev->stats;
    switch (what) {
    case VS_USE_WEIGHTS:
        dev->own_weights = (uint64_t)((int64_t)dev->own_weights + delta);
        track(&s->cur_weights, &s->peak_weights, delta);
        break;
    case VS_USE_SCRATCH:
        dev->own_scratch = (uint64_t)((int64_t)dev->own_scratch + delta);
        track(&s->cur_scratch, &s->peak_scratch, delta);
        break;
    case VS_USE_INTERCEPTED:
        dev->own_intercepted = (uint64_t)((int64_t)dev->own_intercepted + delta);
        track(&s->cur_intercepted, &s->peak_intercepted, delta);
        break;
    case VS_USE_HOST:
        track(&s->cur_host_registered, &s->peak_host_registered, delta);
        break;
    }
}
