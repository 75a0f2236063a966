/* The reference model of one simulated device for the property test.
 *
 * It follows the "Semantics" section of docs/design.md and the comments of
 * vramswap.h: pages with pin counts, VBARs in a priority list (index 0 = most
 * important), the watermark and floor rules, the budget (total, headroom, own
 * usage, usage by others), and the order in which a fault, a reclaim or a
 * free_memory picks its victims. Where vramswap.h leaves a choice, it follows the
 * library's: a fault decides up front whether the free budget plus the victims
 * less important than its highest missing page cover every missing page (and any
 * usage already above the budget, which is paid first); if not it changes nothing
 * (vramswap.h: pages mapped on the way "may" stay mapped). Reclaim is all or
 * nothing, free_memory best effort. Given the same operations as the library, it
 * predicts exactly which pages are resident and pinned afterwards, every figure
 * of vs_memory_info, and every answer.
 *
 * What it cannot know it leaves open and learns from the library: the generation
 * number a new mapping gets (only "larger than every earlier one, increasing in
 * mapping order" is checked), and the outcome of operations run while a driver
 * failure is injected (see pm_resync: only the allowed transitions are checked).
 */
#ifndef VS_PROPERTY_MODEL_H
#define VS_PROPERTY_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "vramswap.h"

#define PM_MAXV 6
#define PM_PENDING UINT64_MAX   /* generation of a page mapped by the current step */

typedef struct pm_page {
    uint8_t resident;
    uint32_t pins;
    uint64_t gen;          /* generation (per-page signature); 0 when not resident */
    uint64_t map_seq;      /* order of mapping within the current step */
    uint64_t data_gen;     /* generation at which data_seed was written; 0 = none */
    uint64_t data_seed;    /* pattern written into the page (vt_fill seed) */
} pm_page;

typedef struct pm_vbar {
    vs_vbar_t *h;
    uint32_t id;           /* unique per run */
    uint64_t npages;
    uint64_t size;         /* bytes, npages * page */
    uint64_t watermark;    /* bytes; size = none */
    uint64_t floor;        /* bytes, page multiple */
    uint64_t alloc_next;   /* next free sub-allocation offset */
    vs_devptr_t base;
    pm_page *pages;
} pm_vbar;

typedef struct pm_model {
    uint64_t page;         /* VBAR page size, bytes */
    uint64_t capacity;     /* simulated device memory, bytes */
    uint64_t limit;        /* 0 = none */
    uint64_t headroom;
    uint64_t external;     /* vs_sim_set_external_usage */
    uint64_t intercepted;  /* live vs_sim_malloc bytes counted by interception */
    uint64_t uncounted;    /* live vs_sim_malloc bytes not intercepted (others) */
    uint64_t scratch;      /* bytes mapped in the (one) scratch buffer, page multiple */
    pm_vbar *order[PM_MAXV];   /* priority list, 0 = most important */
    int nv;
    uint64_t max_gen;      /* largest generation seen so far */
    uint64_t map_seq;
    /* What the current step did (reset by pm_step_begin). */
    uint64_t step_mapped;
    uint64_t step_evicted;
} pm_model;

void pm_init(pm_model *m, uint64_t page, uint64_t capacity, uint64_t limit, uint64_t headroom);
void pm_step_begin(pm_model *m);

uint64_t pm_total(const pm_model *m);
uint64_t pm_budget(const pm_model *m);
uint64_t pm_weights(const pm_model *m);
uint64_t pm_own(const pm_model *m);
uint64_t pm_others(const pm_model *m);
uint64_t pm_available(const pm_model *m);
uint64_t pm_evictable_bytes(const pm_model *m);
/* Free memory as the simulated driver sees it. */
uint64_t pm_driver_free(const pm_model *m);
int pm_is_evictable(const pm_model *m, const pm_vbar *v, uint64_t p);
int pm_index(const pm_model *m, const pm_vbar *v);
int pm_any_pinned(const pm_vbar *v);

pm_vbar *pm_vbar_add(pm_model *m, vs_vbar_t *h, uint32_t id, uint64_t size, vs_devptr_t base);
void pm_vbar_remove(pm_model *m, pm_vbar *v);
void pm_prioritize(pm_model *m, pm_vbar *v);
void pm_deprioritize(pm_model *m, pm_vbar *v);

/* Eviction and mapping primitives. */
void pm_evict(pm_model *m, pm_vbar *v, uint64_t p);
void pm_map(pm_model *m, pm_vbar *v, uint64_t p);
/* Least important evictable page, strictly less important than page p of VBAR
 * index vi (vi < 0: any). 1 if found. */
int pm_find_victim(const pm_model *m, int vi, uint64_t p, pm_vbar **out_v, uint64_t *out_p);

typedef enum pm_fault_result {
    PM_FAULT_OK,
    PM_FAULT_FAST_FAIL,   /* watermark */
    PM_FAULT_NO_ROOM      /* VS_NOT_RESIDENT after trying */
} pm_fault_result;

/* Pages [first, last] of v. */
pm_fault_result pm_fault(pm_model *m, pm_vbar *v, uint64_t first, uint64_t last);
/* 0, or -1 (NOT_PINNED, nothing changed). */
int pm_unpin(pm_model *m, pm_vbar *v, uint64_t first, uint64_t last);
/* 0 with *freed, or -1 (OUT_OF_MEMORY after evicting everything evictable). */
int pm_reclaim(pm_model *m, uint64_t bytes, uint64_t *freed);
/* Evict least important first until `bytes` were released; returns what was. */
uint64_t pm_free_memory(pm_model *m, uint64_t bytes);
uint64_t pm_vbar_free_memory(pm_model *m, pm_vbar *v, uint64_t bytes);
/* After a limit/headroom change: evict until own + others fit the budget. 0 or -1. */
int pm_fit_budget(pm_model *m);

/* Resize the scratch buffer to cover `bytes`: growing reclaims the growth (all
 * or nothing). 0, or -1 (OUT_OF_MEMORY, nothing changed). */
int pm_scratch_resize(pm_model *m, uint64_t bytes);

/* An intercepted allocation of `size` (interception installed). 0 = allocated,
 * -1 = OUT_OF_MEMORY. *refused is set when it was refused under the limit,
 * *driver_oom when the driver ran out and the hook's on_oom path ran. */
int pm_intercepted_malloc(pm_model *m, uint64_t size, int *refused, int *driver_oom);

#endif /* VS_PROPERTY_MODEL_H */
