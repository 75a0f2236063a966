/* Watermark regrowth: a VBAR takes memory back when the pressure that evicted
 * it went away, without waiting for vs_vbar_prioritize.
 *
 * Note [Watermark regrowth]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * Problem. Eviction lowers a VBAR's watermark (Note [Eviction order] in
 * evict.c) so that, under steady pressure, faults above it fail fast and the
 * application streams those pages instead of thrashing. If only prioritize
 * raises it again, a single burst of pressure (a long prompt, a VAE decode that
 * held 2 GiB for a moment) leaves the model streaming for the rest of the
 * session although the memory is free again: on an H200, 16-token passes of an
 * 8 GiB stack went from 63 ms to 127 ms for good.
 *
 * Rule. When a fault needs a non-resident page at or above the watermark
 * (the fast-fail path), the watermark may rise if
 *   1. the VBAR has had no page evicted for its current quiet time
 *      (v->regrow_delay_ns, starting at cfg.regrow_delay_ns), and
 *   2. the budget has free memory beyond cfg.regrow_margin.
 * It then rises over as many non-resident pages as that free memory
 * (minus the margin, minus the non-resident pages already below the watermark:
 * they are owed it) holds -- never more, so a regrowth never evicts anything:
 * it only lets later faults map into memory that is free now. Pages are mapped
 * by the faults themselves, in the order the application asks for them.
 * Margin. cfg.regrow_margin defaults to 0: the budget already leaves the
 * headroom to others, and the first fill of a VBAR maps until less than a page
 * of the budget is free. A margin on top would make the regrown set smaller
 * than the first fill by margin/page rounded up: with 32 MiB pages (an H200)
 * and a 64 MiB margin, 3 of 26 resident 32 MiB units of a 1 GiB model never
 * came back (with the double count of owed pages, see vs_regrow, which made the
 * faults evict the VBAR's own pages and back the quiet time off) -- 50% more
 * streamed bytes per pass, "recovery" in name only. An
 * allocation that needs the memory a regrowth took (activations re-reserved
 * after the binding emptied PyTorch's cache) evicts a page as usual and backs
 * the quiet time off; the steady state is then the first fill's.
 * Cost. Under steady pressure every streamed range takes the fast-fail path;
 * an attempt that finds no room is not repeated for a quiet time, so steady
 * streaming pays at most one free-memory query per quiet time per VBAR (the
 * fast-fail path itself stays free of driver calls otherwise).
 * Hysteresis. If a page of the VBAR is evicted again less than the quiet time
 * after a regrowth, that regrowth was premature (the pressure is periodic):
 * the quiet time doubles, up to cfg.regrow_delay_max_ns, and
 * stats.regrow_backoffs counts it. After a calm of four quiet times before a
 * regrowth, it halves again (never below cfg.regrow_delay_ns). So a workload
 * whose pressure comes and goes with period P costs at most
 * log2(P / delay) + T / delay_max regrowth-and-eviction cycles over a time T,
 * and a workload whose pressure ended recovers within one quiet time (at most
 * delay_max) of its last eviction.
 *
 * Failure modes. (a) Pressure that returns after exactly the quiet time each
 * time keeps paying one map+copy+evict cycle per delay_max; delay_max bounds
 * the damage, VS_DEVICE_NO_REGROW removes it. (b) Memory held by someone who
 * does not give it back (PyTorch's caching allocator) is not free to us: no
 * regrowth happens until they release it (the Python binding empties the
 * cache at pass boundaries, Note [Residency cooperation] in _residency.py).
 * (c) The free figure may be up to cfg.mem_poll_ns old; a stale figure can
 * raise the watermark into memory someone took meanwhile: the faults that map
 * there then evict less important pages as usual (never pinned or protected
 * ones), which is the ordinary fault path, and count as an eviction here.
 * (d) Several VBARs regrow in the order their faults come; the one running
 * faults first and gets the memory, the idle ones keep their lower watermarks
 * until they run (and are prioritized) again.
 * (e) Pages below the watermark that are never faulted (a unit the workload
 * does not use) stay owed: each such page lowers every later regrowth by a
 * page. Prioritize or vs_vbar_set_watermark resets the picture.
 */
#include "internal.h"

static uint64_t quiet_time(const vs_device_t *dev, struct vs_vbar *v)
{
    if (v->regrow_delay_ns < dev->cfg.regrow_delay_ns)
        v->regrow_delay_ns = dev->cfg.regrow_delay_ns;
    return v->regrow_delay_ns;
}

void vs_regrow_note_eviction(vs_device_t *dev, struct vs_vbar *v)
{
    uint64_t now = vs_now_ns();
    uint64_t delay = quiet_time(dev, v);
    if (v->last_regrow_ns && now - v->last_regrow_ns < delay) {
        uint64_t max = dev->cfg.regrow_delay_max_ns;
        uint64_t next = delay > UINT64_MAX / 2 ? UINT64_MAX : delay * 2;
        v->regrow_delay_ns = next < max ? next : (max > delay ? max : delay);
        dev->stats.regrow_backoffs++;
    }
    v->last_regrow_ns = 0;
    v->last_evict_ns = now ? now : 1;
}

bool vs_regrow(vs_device_t *dev, struct vs_vbar *v, size_t idx)
{
    uint64_t page = dev->page_size;
    if ((dev->cfg.flags & VS_DEVICE_NO_REGROW) || v->watermark >= v->size)
        return false;
    uint64_t now = vs_now_ns();
    uint64_t delay = quiet_time(dev, v);
    uint64_t calm = v->last_evict_ns ? now - v->last_evict_ns : UINT64_MAX;
    if (calm < delay)
        return false;
    /* Under steady pressure every streamed range fast-fails here: ask for room at
     * most once per quiet time, not once per fault (a poll of the driver). */
    if (v->regrow_tried_ns && now - v->regrow_tried_ns < delay)
        return false;
    uint64_t avail = vs_budget_available(dev);
    uint64_t free_pages = avail > dev->cfg.regrow_margin ? (avail - dev->cfg.regrow_margin) / page : 0;
    /* Non-resident pages below the watermark are owed that memory already (an
     * earlier regrowth whose faults did not all come yet, e.g. a pass that
     * faults in execution order, not in VBAR order): counting it twice would
     * raise the watermark past what fits, and the faults would then evict the
     * VBAR's own pages to map others (churn, and a backoff for nothing). */
    size_t below = (size_t)(v->watermark / page), owed = 0;
    for (size_t k = 0; k < below && k < v->npages; k++)
        owed += v->pages[k].chunk == NULL;
    if (free_pages <= owed) {
        v->regrow_tried_ns = now ? now : 1;
        return false;
    }
    v->regrow_tried_ns = 0;
    uint64_t pages = free_pages - owed;
    /* Raise over `pages` non-resident pages; resident ones above it cost nothing. */
    size_t i = (size_t)(v->watermark / page), n = 0;
    while (i < v->npages && n < pages) {
        n += v->pages[i].chunk == NULL;
        i++;
    }
    uint64_t wm = i >= v->npages ? v->size : (uint64_t)i * page;
    if (calm / 4 >= delay && delay / 2 >= dev->cfg.regrow_delay_ns)
        v->regrow_delay_ns = delay / 2;
    dev->stats.regrowths++;
    dev->stats.regrown_bytes += wm - v->watermark;
    vs_log(VS_LOG_DEBUG, "VBAR 0x%llx: watermark %llu -> %llu MiB (%llu MiB free)",
           (unsigned long long)v->base, (unsigned long long)(v->watermark >> 20),
           (unsigned long long)(wm >> 20), (unsigned long long)(avail >> 20));
    v->watermark = wm;
    v->last_regrow_ns = now ? now : 1;
    return (uint64_t)idx * page < wm;
}
