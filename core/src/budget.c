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

/* Note [Process quota]
 * ~~~~~~~~~~~~~~~~~~~~
 * By default the limit caps the device: own + others <= min(driver total,
 * limit) - headroom, so memory another process takes is room this one loses.
 * With VS_DEVICE_LIMIT_PROCESS (`limit_scope:process`) the limit is this
 * process's quota instead: own <= limit, whatever others hold -- several
 * processes sharing one large GPU each get a fixed share, and one growing does
 * not evict the others' weights. The device still bounds it: own + others <=
 * driver total - headroom, so the figure used is the smaller room of the two
 * (and the larger shortfall). Without a limit the scopes are the same. */
static bool quota(const vs_device_t *dev)
{
    return (dev->cfg.flags & VS_DEVICE_LIMIT_PROCESS) && dev->cfg.limit;
}

/* The room left (>= 0) or the deficit (> 0) against one cap. */
static void against(uint64_t cap, uint64_t used, uint64_t *room, uint64_t *deficit)
{
    *room = cap > used ? cap - used : 0;
    *deficit = used > cap ? used - cap : 0;
}

static void figures(vs_device_t *dev, uint64_t *room, uint64_t *deficit)
{
    poll(dev);
    uint64_t own = vs_budget_own(dev);
    uint64_t total = quota(dev) ? dev->driver_total : vs_budget_total(dev);
    uint64_t budget = total > dev->cfg.headroom ? total - dev->cfg.headroom : 0;
    against(budget, own + dev->others, room, deficit);
    if (quota(dev)) {
        uint64_t qr, qd;
        against(dev->cfg.limit, own, &qr, &qd);
        if (qr < *room)
            *room = qr;
        if (qd > *deficit)
            *deficit = qd;
    }
}

uint64_t vs_budget_available(vs_device_t *dev)
{
    uint64_t room, deficit;
    figures(dev, &room, &deficit);
    return room;
}

uint64_t vs_budget_shortfall(vs_device_t *dev, uint64_t bytes)
{
    uint64_t room, deficit;
    figures(dev, &room, &deficit);
    /* Over budget already (others grew, the limit shrank): that deficit counts too. */
    if (deficit)
        return bytes > UINT64_MAX - deficit ? UINT64_MAX : bytes + deficit;
    return bytes > room ? bytes - room : 0;
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
