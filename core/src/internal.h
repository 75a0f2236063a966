/* Internal declarations of the core: the device context, VBARs, pages, buffers.
 *
 * Everything here is private to libvramswap (hidden visibility). The structs are
 * only touched with their device's lock held (Note [Lock order] in device.c),
 * except the handle headers, which are read lock-free to validate handles
 * (Note [Handles] in handle.c).
 */
#ifndef VS_INTERNAL_H
#define VS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vramswap.h"
#include "vramswap/backend.h"

/* ---------------------------------------------------------------- handles */

enum vs_obj_kind {
    VS_KIND_DEVICE = 1,
    VS_KIND_VBAR = 2,
    VS_KIND_SCRATCH = 3,
    VS_KIND_HOST = 4,
};

#define VS_MAGIC_ALIVE 0x7673616cu /* "vsal" */
#define VS_MAGIC_DEAD 0x76736464u  /* "vsdd" */

/* First member of every object handed out as a handle. */
typedef struct vs_obj {
    _Atomic uint32_t magic;      /* VS_MAGIC_ALIVE while the object exists */
    _Atomic uint32_t kind;       /* enum vs_obj_kind */
    _Atomic uint64_t generation; /* bumped on every reuse of the slot */
    void *next_free;             /* quarantine link while dead (pool lock); kept out of the
                                    payload, which stale handles may still read */
} vs_obj;

typedef struct vs_pool vs_pool;
/* Zeroed object of the pool's kind, or NULL when out of memory. */
void *vs_pool_alloc(int kind);
/* Marks the object dead; its slot is reused only after a quarantine. */
void vs_pool_free(void *obj);
/* True when p is a live object of `kind` handed out by the pools. Lock-free. */
bool vs_pool_live(const void *p, int kind);

/* ---------------------------------------------------------------- logging */

void vs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Messages produced while the calling thread holds a device lock are queued and
 * delivered when it releases its last one (Note [Logging under locks] in log.c). */
void vs_log_enter_locked(void);
void vs_log_leave_locked(void);

/* ---------------------------------------------------------------- time, config */

uint64_t vs_now_ns(void);
/* Parse "123", "64K", "512M", "8G", "1T" (binary units). */
bool vs_parse_size(const char *s, uint64_t *out);
/* Parse a log level name or digit. */
bool vs_parse_log_level(const char *s, int *out);

/* ---------------------------------------------------------------- pages */

/* A recorded event shared by the pages unpinned together (Note [Page lifetime and events]). */
typedef struct vs_evref {
    uintptr_t event;         /* backend event handle */
    uint32_t refs;           /* pages pointing here */
    bool done;               /* known complete (no query needed) */
    struct vs_evref *next_free;
} vs_evref;

typedef struct vs_page {
    vs_bphys *chunk;         /* physical memory mapped here; NULL = not resident */
    uint64_t gen;            /* generation of the mapping (0 when not resident) */
    uint32_t pins;           /* outstanding faults */
    vs_evref *last_use;      /* event recorded at the last unpin, or NULL */
} vs_page;

struct vs_vbar {
    vs_obj obj;
    vs_device_t *dev;
    struct vs_vbar *more, *less; /* neighbours in the priority list */
    vs_devptr_t base;            /* reserved device address */
    uint64_t size;               /* bytes, a multiple of the page size */
    size_t npages;
    uint64_t alloc_top;          /* next free sub-allocation offset */
    uint64_t watermark;          /* bytes; size = none */
    uint64_t floor;              /* bytes, page multiple; below is protected */
    size_t resident;             /* pages with a chunk */
    size_t pinned;               /* pages with pins > 0 */
    vs_page *pages;
    /* regrowth (Note [Watermark regrowth] in regrow.c) */
    uint64_t last_evict_ns;      /* when a page of this VBAR was last evicted; 0 = never */
    uint64_t last_regrow_ns;     /* the last regrowth not yet judged; 0 = none */
    uint64_t regrow_delay_ns;    /* current quiet time (starts at cfg.regrow_delay_ns) */
    uint64_t regrow_tried_ns;    /* last attempt that found no room; 0 = none */
    bool watermark_held;         /* set by vs_vbar_set_watermark: no regrowth until
                                    prioritize or the VBAR's next eviction */
};

typedef struct vs_chunkvec {
    vs_bphys **v;
    size_t n, cap;
} vs_chunkvec;

struct vs_scratch {
    vs_obj obj;
    vs_device_t *dev;
    struct vs_scratch *next, *prev;
    vs_devptr_t base;
    uint64_t max_size;       /* reserved bytes (page multiple) */
    uint64_t size;           /* requested size */
    vs_chunkvec chunks;      /* chunk i maps [i*page, (i+1)*page) */
};

typedef struct vs_hostseg {
    uint64_t off, len;       /* registered [off, off+len) of the buffer */
} vs_hostseg;

struct vs_host_buffer {
    vs_obj obj;
    vs_device_t *dev;
    struct vs_host_buffer *next, *prev;
    uint8_t *base;           /* reserved host address space */
    uint64_t max_size;       /* reserved bytes (chunk multiple) */
    uint64_t size;           /* requested size */
    uint64_t committed;      /* bytes committed, and registered unless `unregistered`
                                (chunk multiple) */
    bool unregistered;       /* a failed re-registration left [0, committed) without
                                one (Note [One registration] in buffers.c) */
    vs_hostseg *segs;        /* registrations, in address order */
    size_t nsegs, capsegs;
    /* Copies that read or write the buffer (Note [Host buffers and pending
     * copies] in buffers.c): one event per stream, re-recorded after each copy. */
    struct vs_hostcopy { uintptr_t stream, event; } *copies;
    size_t ncopies, capcopies;
};

/* A chunk the driver would not give back (Note [Stuck chunks] in orphan.c). */
typedef struct vs_orphan {
    vs_devptr_t va;          /* where it is (or was) mapped */
    uint64_t size;
    vs_bphys *chunk;
    bool mapped;             /* the unmap failed too: va still maps it */
    bool reservation;        /* not a chunk: the address reservation [va, va+size) to free */
} vs_orphan;

/* ---------------------------------------------------------------- the device */

/* Open-addressing table of live intercepted allocations: pointer -> size. */
typedef struct vs_ptrmap {
    uintptr_t *keys;         /* 0 = empty, 1 = tombstone */
    uint64_t *vals;
    size_t cap, used, live;
} vs_ptrmap;

struct vs_device {
    vs_obj obj;
    pthread_mutex_t lock;        /* the device lock: guards everything below */
    const vs_backend_ops *ops;
    size_t backend_index;
    vs_bdev *bdev;
    int ordinal;
    vs_device_config cfg;
    vs_bdev_props bprops;
    uint64_t page_size;
    bool intercepting;           /* published under the lock */
    bool closing;                /* vs_device_close started: every new call is refused */
    size_t users;                /* calls running outside the lock (Note [Closing]) */
    pthread_cond_t idle;         /* signalled when users drops to 0 while closing */

    /* budget (budget.c) */
    uint64_t driver_total;       /* the driver's total memory */
    uint64_t others;             /* usage by others at the last poll */
    uint64_t last_poll_ns;       /* 0 = never */
    uint64_t own_weights, own_scratch, own_intercepted;

    /* VBARs, most important first */
    struct vs_vbar *most, *least;
    size_t nvbars;
    uint64_t next_gen;           /* next mapping generation (starts at 1) */
    struct vs_scratch *scratches;
    struct vs_host_buffer *hosts;
    vs_ptrmap allocs;            /* intercepted allocations */
    vs_evref *free_evrefs;       /* recycled recorded events */
    size_t nevrefs;              /* events created */
    vs_orphan *orphans;          /* stuck chunks, retried later (orphan.c) */
    size_t norphans, caporphans;

    vs_stats stats;
};

/* Lock helpers: validate a handle and take its device lock. They return
 * VS_ERR_INVALID_HANDLE for anything that is not a live object of that kind. */
vs_status vs_dev_acquire(vs_device_t *dev);
vs_status vs_vbar_acquire(struct vs_vbar *vbar, vs_device_t **dev);
vs_status vs_scratch_acquire(struct vs_scratch *buf, vs_device_t **dev);
vs_status vs_host_acquire(struct vs_host_buffer *buf, vs_device_t **dev);
/* Release (runs the invariant checker first in VS_DEBUG_INVARIANTS builds). */
void vs_dev_release(vs_device_t *dev);
/* Lock without validation (the caller knows the device is alive). */
void vs_dev_lock(vs_device_t *dev);
void vs_dev_unlock(vs_device_t *dev);

/* ---------------------------------------------------------------- budget */

/* Total after the limit, budget, own usage. */
uint64_t vs_budget_total(vs_device_t *dev);
uint64_t vs_budget_own(vs_device_t *dev);
/* What can be taken without evicting; polls the driver when stale. */
uint64_t vs_budget_available(vs_device_t *dev);
/* Bytes that must be freed before `bytes` fit (0 when they fit now); includes
 * any amount by which usage already exceeds the budget. */
uint64_t vs_budget_shortfall(vs_device_t *dev, uint64_t bytes);
/* Forget the driver figure so the next query polls. */
void vs_budget_invalidate(vs_device_t *dev);
void vs_budget_add(vs_device_t *dev, int what, int64_t delta);
enum { VS_USE_WEIGHTS, VS_USE_SCRATCH, VS_USE_INTERCEPTED, VS_USE_HOST };

/* ---------------------------------------------------------------- eviction (evict.c) */

/* Evictable bytes in the whole device (pages resident, unpinned, above floors). */
uint64_t vs_evictable_bytes(vs_device_t *dev);
/* Count of evictable pages less important than page `idx` of `vbar` (a NULL
 * vbar means every evictable page), at most `want`. */
size_t vs_count_victims(vs_device_t *dev, struct vs_vbar *vbar, size_t idx, size_t want);
/* Evict one page; its chunk goes to *keep when keep != NULL, else is released. */
vs_status vs_evict_page(vs_device_t *dev, struct vs_vbar *vbar, size_t idx, vs_bphys **keep);
/* Evict the least important evictable page less important than (vbar, idx)
 * (vbar NULL: any). VS_ERR_OUT_OF_MEMORY when there is none. */
vs_status vs_evict_one(vs_device_t *dev, struct vs_vbar *vbar, size_t idx, vs_bphys **keep);
/* Evict least important first until `bytes` are released or none is left. */
vs_status vs_evict_bytes(vs_device_t *dev, struct vs_vbar *only, uint64_t bytes, uint64_t *freed);
/* Reclaim with the device lock held (vs_device_reclaim's body). */
vs_status vs_reclaim_locked(vs_device_t *dev, uint64_t bytes, uint64_t *freed);
/* Drop one reference to a page's last-use event. */
void vs_evref_put(vs_device_t *dev, vs_evref *ev);
/* Wait until the page's last use completed. */
vs_status vs_page_wait(vs_device_t *dev, vs_page *pg);

/* ---------------------------------------------------------------- regrowth (regrow.c) */

/* A page of v was just evicted: judge the last regrowth, restart the quiet time. */
void vs_regrow_note_eviction(vs_device_t *dev, struct vs_vbar *v);
/* A fault needs page idx of v, not resident, at or above the watermark: raise the
 * watermark if the rule allows. True when page idx is below the watermark now. */
bool vs_regrow(vs_device_t *dev, struct vs_vbar *v, size_t idx);

/* ---------------------------------------------------------------- backend calls with policy */

/* Create a chunk, map it at va and grant access, retrying transient failures
 * (Note [Transient driver errors] in vbar.c). Undoes everything on failure. */
vs_status vs_map_new(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *reuse, vs_bphys **out);
vs_status vs_unmap_release(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk, bool release);

/* ---------------------------------------------------------------- stuck chunks (orphan.c) */

/* Keep a chunk the driver refused to unmap (mapped) or release, to retry later;
 * counted in stats.stuck_chunks. */
void vs_orphan_add(vs_device_t *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk, bool mapped);
/* Try once more to unmap and release every stuck chunk. */
void vs_orphans_retry(vs_device_t *dev);
/* Free a VBAR's or scratch buffer's reservation, or keep it as stuck when a
 * stuck mapping still sits inside it or the driver refuses (retried later). */
void vs_free_reservation(vs_device_t *dev, vs_devptr_t va, uint64_t size);
/* Give up on every stuck chunk and reservation (close): they count in
 * stats.leaked_bytes. Returns the bytes given up. */
uint64_t vs_orphans_drop(vs_device_t *dev);
/* Count `bytes` of driver memory that can no longer be returned. */
void vs_leak(vs_device_t *dev, uint64_t bytes, const char *what);
/* Retry NOT_READY like vs_map_new does (Note [Transient driver errors]). */
vs_status vs_va_free_retry(vs_device_t *dev, vs_devptr_t va, uint64_t size);

/* Calls that run without the device lock (Note [Closing] in device.c): enter
 * validates the handle and counts the call so that close waits for it. */
vs_status vs_dev_enter(vs_device_t *dev);
void vs_dev_leave(vs_device_t *dev);

/* Wait for the copies that use a host buffer (buffers.c). */
vs_status vs_host_wait_copies(vs_device_t *dev, struct vs_host_buffer *b);
/* Record that a copy on `stream` uses the host buffer holding [ptr, ptr+size), if any. */
vs_status vs_host_note_copy(vs_device_t *dev, uintptr_t ptr, uint64_t size, uintptr_t stream);

/* ---------------------------------------------------------------- VBAR internals */

vs_status vs_vbar_destroy_locked(vs_device_t *dev, struct vs_vbar *v);
vs_status vs_scratch_destroy_locked(vs_device_t *dev, struct vs_scratch *b);
vs_status vs_host_destroy_locked(vs_device_t *dev, struct vs_host_buffer *b);

/* ---------------------------------------------------------------- registry */

size_t vs_registry_backend_count(void);
const vs_backend_ops *vs_registry_backend(size_t i);
/* Initialise backend i once; VS_OK when usable. */
vs_status vs_registry_init_backend(size_t i);
vs_status vs_registry_add_device(vs_device_t *dev);
void vs_registry_remove_device(vs_device_t *dev);
/* Intercept install/remove, counted per backend. */
vs_status vs_registry_intercept_ref(size_t backend_index);
void vs_registry_intercept_unref(size_t backend_index);

/* ---------------------------------------------------------------- interception */

extern const vs_intercept_sink vs_core_sink;
void vs_ptrmap_free(vs_ptrmap *m);

/* ---------------------------------------------------------------- invariants */

vs_status vs_check_locked(vs_device_t *dev);

/* Overflow-safe range check: [off, off+size) inside [0, limit). */
static inline bool vs_range_ok(uint64_t off, uint64_t size, uint64_t limit)
{
    return size > 0 && off < limit && size <= limit - off;
}

static inline uint64_t vs_round_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

#endif /* VS_INTERNAL_H */
