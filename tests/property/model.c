/* The reference model; see model.h. Plain, slow and obviously right is the goal:
 * every victim search scans everything. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

void pm_init(pm_model *m, uint64_t page, uint64_t capacity, uint64_t limit, uint64_t headroom)
{
    memset(m, 0, sizeof *m);
    m->page = page;
    m->capacity = capacity;
    m->limit = limit;
    m->headroom = headroom;
}

void pm_step_begin(pm_model *m)
{
    m->step_mapped = 0;
    m->step_evicted = 0;
    m->map_seq = 0;
}

uint64_t pm_total(const pm_model *m)
{
    return m->limit && m->limit < m->capacity ? m->limit : m->capacity;
}

uint64_t pm_budget(const pm_model *m)
{
    uint64_t t = pm_total(m);
    return t > m->headroom ? t - m->headroom : 0;
}

uint64_t pm_weights(const pm_model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->nv; i++)
        for (uint64_t p = 0; p < m->order[i]->npages; p++)
            n += m->order[i]->pages[p].resident;
    return n * m->page;
}

uint64_t pm_own(const pm_model *m)
{
    return pm_weights(m) + m->scratch + m->intercepted;
}

uint64_t pm_others(const pm_model *m)
{
    return m->external + m->uncounted;
}

uint64_t pm_available(const pm_model *m)
{
    uint64_t used = pm_own(m) + pm_others(m);
    uint64_t b = pm_budget(m);
    return b > used ? b - used : 0;
}

uint64_t pm_driver_free(const pm_model *m)
{
    uint64_t used = pm_weights(m) + m->scratch + m->external + m->intercepted + m->uncounted;
    return m->capacity > used ? m->capacity - used : 0;
}

int pm_is_evictable(const pm_model *m, const pm_vbar *v, uint64_t p)
{
    const pm_page *pg = &v->pages[p];
    return pg->resident && pg->pins == 0 && p * m->page >= v->floor;
}

uint64_t pm_evictable_bytes(const pm_model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->nv; i++)
        for (uint64_t p = 0; p < m->order[i]->npages; p++)
            n += (uint64_t)pm_is_evictable(m, m->order[i], p);
    return n * m->page;
}

int pm_index(const pm_model *m, const pm_vbar *v)
{
    for (int i = 0; i < m->nv; i++)
        if (m->order[i] == v)
            return i;
    return -1;
}

int pm_any_pinned(const pm_vbar *v)
{
    for (uint64_t p = 0; p < v->npages; p++)
        if (v->pages[p].pins)
            return 1;
    return 0;
}

pm_vbar *pm_vbar_add(pm_model *m, vs_vbar_t *h, uint32_t id, uint64_t size, vs_devptr_t base)
{
    pm_vbar *v = calloc(1, sizeof *v);
    if (!v)
        abort();
    v->h = h;
    v->id = id;
    v->npages = (size + m->page - 1) / m->page;
    v->size = v->npages * m->page;
    v->watermark = v->size;
    v->base = base;
    v->pages = calloc(v->npages, sizeof *v->pages);
    if (!v->pages)
        abort();
    memmove(&m->order[1], &m->order[0], (size_t)m->nv * sizeof m->order[0]);
    m->order[0] = v;
    m->nv++;
    return v;
}

void pm_vbar_remove(pm_model *m, pm_vbar *v)
{
    int i = pm_index(m, v);
    memmove(&m->order[i], &m->order[i + 1], (size_t)(m->nv - i - 1) * sizeof m->order[0]);
    m->nv--;
    free(v->pages);
    free(v);
}

void pm_prioritize(pm_model *m, pm_vbar *v)
{
    int i = pm_index(m, v);
    memmove(&m->order[1], &m->order[0], (size_t)i * sizeof m->order[0]);
    m->order[0] = v;
    v->watermark = v->size;
}

void pm_deprioritize(pm_model *m, pm_vbar *v)
{
    int i = pm_index(m, v);
    memmove(&m->order[i], &m->order[i + 1], (size_t)(m->nv - i - 1) * sizeof m->order[0]);
    m->order[m->nv - 1] = v;
}

void pm_evict(pm_model *m, pm_vbar *v, uint64_t p)
{
    pm_page *pg = &v->pages[p];
    pg->resident = 0;
    pg->gen = 0;
    pg->data_gen = 0;
    if (p * m->page < v->watermark)
        v->watermark = p * m->page;
    m->step_evicted++;
}

void pm_map(pm_model *m, pm_vbar *v, uint64_t p)
{
    pm_page *pg = &v->pages[p];
    pg->resident = 1;
    pg->gen = PM_PENDING;
    pg->map_seq = ++m->map_seq;
    pg->data_gen = 0;
    m->step_mapped++;
}

int pm_find_victim(const pm_model *m, int vi, uint64_t p, pm_vbar **out_v, uint64_t *out_p)
{
    for (int i = m->nv - 1; i >= 0 && (vi < 0 || i >= vi); i--) {
        pm_vbar *v = m->order[i];
        for (uint64_t q = v->npages; q-- > 0;) {
            if (vi >= 0 && i == vi && q <= p)
                break;
            if (pm_is_evictable(m, v, q)) {
                *out_v = v;
                *out_p = q;
                return 1;
            }
        }
    }
    return 0;
}

static uint64_t pm_count_victims(const pm_model *m, int vi, uint64_t p)
{
    uint64_t n = 0;
    for (int i = m->nv - 1; i >= vi; i--) {
        const pm_vbar *v = m->order[i];
        for (uint64_t q = (i == vi ? p + 1 : 0); q < v->npages; q++)
            n += (uint64_t)pm_is_evictable(m, v, q);
    }
    return n;
}

pm_fault_result pm_fault(pm_model *m, pm_vbar *v, uint64_t first, uint64_t last)
{
    /* 1. The watermark. */
    for (uint64_t p = first; p <= last; p++)
        if (!v->pages[p].resident && p * m->page >= v->watermark)
            return PM_FAULT_FAST_FAIL;
    /* 2. Pin what is resident. */
    uint64_t missing = 0, highest_missing = first;
    for (uint64_t p = first; p <= last; p++) {
        if (v->pages[p].resident) {
            v->pages[p].pins++;
        } else {
            missing++;
            highest_missing = p;
        }
    }
    if (missing == 0)
        return PM_FAULT_OK;
    /* 3. Room, decided up front (all or nothing): free budget in whole pages, plus
     * victims less important than the highest missing page. Usage already above
     * the budget (others grew, the limit shrank) is paid first, by such victims. */
    int vi = pm_index(m, v);
    uint64_t used = pm_own(m) + pm_others(m), budget = pm_budget(m);
    uint64_t deficit_pages = used > budget ? (used - budget + m->page - 1) / m->page : 0;
    uint64_t avail_pages = pm_available(m) / m->page;
    uint64_t need = deficit_pages + (missing > avail_pages ? missing - avail_pages : 0);
    if (need && pm_count_victims(m, vi, highest_missing) < need) {
        for (uint64_t q = first; q <= last; q++)
            if (v->pages[q].resident)
                v->pages[q].pins--;
        return PM_FAULT_NO_ROOM;
    }
    for (uint64_t d = 0; d < deficit_pages; d++) {
        pm_vbar *vv;
        uint64_t vp;
        if (pm_find_victim(m, vi, highest_missing, &vv, &vp))
            pm_evict(m, vv, vp);
    }
    /* 4. Map the missing pages, lowest first: free budget, else a victim's chunk. */
    for (uint64_t p = first; p <= last; p++) {
        if (v->pages[p].resident)
            continue;
        if (pm_available(m) >= m->page) {
            pm_map(m, v, p);
        } else {
            pm_vbar *vv;
            uint64_t vp;
            if (!pm_find_victim(m, vi, p, &vv, &vp)) {
                /* Undo the pins of steps 2 and 3 (pages mapped stay mapped):
                 * every resident page of the range holds one from this call. */
                for (uint64_t q = first; q <= last; q++)
                    if (v->pages[q].resident)
                        v->pages[q].pins--;
                return PM_FAULT_NO_ROOM;
            }
            pm_evict(m, vv, vp);
            pm_map(m, v, p);
        }
        v->pages[p].pins++;
    }
    return PM_FAULT_OK;
}

int pm_unpin(pm_model *m, pm_vbar *v, uint64_t first, uint64_t last)
{
    (void)m;
    for (uint64_t p = first; p <= last; p++)
        if (v->pages[p].pins == 0)
            return -1;
    for (uint64_t p = first; p <= last; p++)
        v->pages[p].pins--;
    return 0;
}

int pm_reclaim(pm_model *m, uint64_t bytes, uint64_t *freed)
{
    *freed = 0;
    if (pm_available(m) >= bytes)
        return 0;
    /* All or nothing: the deficit counts usage above the budget too. */
    uint64_t used = pm_own(m) + pm_others(m), budget = pm_budget(m);
    if (budget < bytes || pm_evictable_bytes(m) < used - (budget - bytes))
        return -1;
    while (pm_available(m) < bytes) {
        pm_vbar *v;
        uint64_t p;
        if (!pm_find_victim(m, -1, 0, &v, &p))
            return -1;
        pm_evict(m, v, p);
        *freed += m->page;
    }
    return 0;
}

uint64_t pm_free_memory(pm_model *m, uint64_t bytes)
{
    uint64_t freed = 0;
    while (freed < bytes) {
        pm_vbar *v;
        uint64_t p;
        if (!pm_find_victim(m, -1, 0, &v, &p))
            break;
        pm_evict(m, v, p);
        freed += m->page;
    }
    return freed;
}

uint64_t pm_vbar_free_memory(pm_model *m, pm_vbar *v, uint64_t bytes)
{
    uint64_t freed = 0;
    for (uint64_t p = v->npages; p-- > 0 && freed < bytes;) {
        if (pm_is_evictable(m, v, p)) {
            pm_evict(m, v, p);
            freed += m->page;
        }
    }
    return freed;
}

int pm_fit_budget(pm_model *m)
{
    while (pm_own(m) + pm_others(m) > pm_budget(m)) {
        pm_vbar *v;
        uint64_t p;
        if (!pm_find_victim(m, -1, 0, &v, &p))
            return -1;
        pm_evict(m, v, p);
    }
    return 0;
}

int pm_intercepted_malloc(pm_model *m, uint64_t size, int *refused, int *driver_oom)
{
    *refused = 0;
    *driver_oom = 0;
    uint64_t freed = 0;
    if (pm_reclaim(m, size, &freed) != 0) {
        if (m->limit) {
            *refused = 1;
            return -1;
        }
        /* No limit: the driver decides, after the hook made what room it could. */
        pm_free_memory(m, size);
    }
    if (pm_driver_free(m) < size) {
        /* The driver's out-of-memory: evict `size` more and retry once. */
        *driver_oom = 1;
        if (pm_free_memory(m, size) == 0 || pm_driver_free(m) < size)
            return -1;
    }
    m->intercepted += size;
    return 0;
}

int pm_scratch_resize(pm_model *m, uint64_t bytes)
{
    uint64_t want = (bytes + m->page - 1) / m->page * m->page;
    if (want > m->scratch) {
        uint64_t freed = 0;
        if (pm_reclaim(m, want - m->scratch, &freed) != 0)
            return -1;
    }
    m->scratch = want;
    return 0;
}
