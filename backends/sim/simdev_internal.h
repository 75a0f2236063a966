/* simdev internals: the structures behind simdev.h, shared by its source files.
 *
 *   simdev.c         the device table, configuration, open/close, counters,
 *                    injection, last-error text
 *   simdev_slots.c   handle tables (slot + generation)
 *   simdev_mem.c     reservations, physical chunks, mappings, allocations,
 *                    host registration
 *   simdev_stream.c  streams, their worker threads, copies, events
 *
 * Every field of struct simdev and of the objects it owns is guarded by the
 * device's `lock` (Note [simdev locks] in simdev.h), except where noted.
 */
#ifndef VRAMSWAP_SIMDEV_INTERNAL_H
#define VRAMSWAP_SIMDEV_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "simdev.h"

/* Handle kinds (top 4 bits of a simdev_handle). */
enum { SIM_KIND_CHUNK = 1, SIM_KIND_STREAM = 2, SIM_KIND_EVENT = 3 };

/* A table of objects addressed by handles. A slot's generation changes when it
 * is freed, so a stale handle never finds the slot's next occupant. */
typedef struct sim_slots {
    void **items;          /* slot -> object; NULL when free */
    uint32_t *gens;        /* slot -> generation (24 bits used, never 0) */
    uint32_t *free_slots;  /* stack of free slot numbers */
    uint32_t nfree;        /* entries on the stack */
    uint32_t cap;          /* slots allocated */
    uint32_t live;         /* occupied slots */
    int kind;              /* SIM_KIND_* stamped into handles */
} sim_slots;

/* A physical chunk: a range of the device's memory file. */
typedef struct sim_chunk {
    uint64_t size;         /* bytes */
    uint64_t file_off;     /* bytes into sim_physfile.fd */
    uint32_t nmaps;        /* live mappings of this chunk */
    bool released;         /* handle released; freed when nmaps drops to 0 */
} sim_chunk;

/* One simdev_map(): [va, va+size) shows [chunk_off, chunk_off+size) of chunk. */
typedef struct sim_map {
    uint64_t va, size;     /* bytes */
    uint64_t chunk_off;    /* bytes into the chunk */
    sim_chunk *chunk;
} sim_map;

/* A reservation or an allocation. */
typedef struct sim_resv {
    uint64_t base;         /* device (= host) address */
    uint64_t size;         /* bytes reserved, or requested for an allocation */
    uint64_t span;         /* bytes of address space actually mapped (>= size) */
    int kind;              /* SIMDEV_RANGE_RESERVED or SIMDEV_RANGE_ALLOCATION */
    sim_map **gmap;        /* reservations: per granule, its mapping or NULL */
    uint8_t *gacc;         /* reservations: per granule, SIMDEV_ACCESS_* */
    uint64_t nmaps;        /* reservations: live mappings */
} sim_resv;

/* A free range of the memory file. */
typedef struct sim_extent {
    uint64_t off, len;     /* bytes */
} sim_extent;

/* All physical chunks of a device live in one memfd (one descriptor per
 * device however many chunks; see Note [One memory file] in simdev_mem.c). */
typedef struct sim_physfile {
    int fd;                /* -1 until the first chunk */
    uint64_t file_size;    /* bytes the file was truncated to */
    uint64_t end;          /* bytes: everything at or above is free */
    sim_extent *free;      /* free extents below `end`, sorted by offset */
    size_t nfree, capfree;
} sim_physfile;

typedef struct sim_hostreg {
    uintptr_t base;
    uint64_t size;         /* bytes */
} sim_hostreg;

enum sim_op_type { SIM_OP_COPY, SIM_OP_MEMSET, SIM_OP_HOSTFN, SIM_OP_MARKER, SIM_OP_WAIT };

/* A queued stream operation. */
typedef struct sim_op {
    struct sim_op *next;
    int type;                          /* enum sim_op_type */
    uint64_t seq;                      /* position in its stream (1, 2, ...) */
    union {
        struct { int kind; uint64_t dst, src, size; bool pageable; } copy;
        struct { uint64_t dst, size; uint8_t value; } memset;
        struct { void (*fn)(void *); void *arg; } hostfn;
        struct { simdev_handle event; uint64_t serial; } marker;
        struct { simdev_handle stream; uint64_t seq; } wait;  /* until stream's done_seq >= seq */
    } u;
} sim_op;

/* An in-order queue served by its own worker thread. */
typedef struct sim_stream {
    struct simdev *dev;
    simdev_handle handle;              /* 0 for the default stream */
    sim_op *head, *tail;               /* pending operations, head executes next */
    uint64_t enq_seq;                  /* seq of the last enqueued op */
    uint64_t done_seq;                 /* seq of the last completed op */
    pthread_cond_t cv_work;            /* signalled on enqueue and stop */
    pthread_t thread;
    bool running;                      /* worker thread exists */
    bool stop;                         /* worker should exit once the queue is empty */
    bool dying;                        /* being destroyed: refuses new work */
    vs_status error;                   /* sticky async error (VS_OK if none) */
    int nbusy;                         /* device ranges of the executing copy */
    uint64_t busy_lo[2], busy_hi[2];   /* [lo, hi) */
} sim_stream;

typedef struct sim_event {
    bool recorded;
    simdev_handle stream;              /* where it was last recorded */
    uint64_t seq;                      /* marker's seq in that stream */
    uint64_t serial;                   /* bumped by every record */
    bool timed;                        /* done_ns valid for the current record */
    uint64_t done_ns;                  /* CLOCK_MONOTONIC ns at the marker */
} sim_event;

typedef struct sim_inject {
    uint32_t skip, count;              /* calls to let through, then to fail */
    vs_status error;
} sim_inject;

struct simdev {
    pthread_mutex_t lock;              /* guards everything below */
    pthread_cond_t cv_done;            /* broadcast when any op completes */
    int ordinal;
    bool present;                      /* ordinal < configured device count */
    int refs;                          /* simdev_open references */

    /* configuration copy (changes only while idle, see simdev_configure) */
    uint64_t total;                    /* bytes */
    uint64_t gran;                     /* bytes, power of two */
    uint64_t page;                     /* preferred page size, bytes */
    uint64_t bandwidth;                /* bytes/s, 0 = unthrottled */
    int integrated;

    uint64_t external;                 /* bytes from simdev_set_external_usage */
    uint64_t malloc_bytes;             /* bytes of live allocations (rounded) */
    vs_sim_counters ctr;               /* live values kept current, except external_bytes */
    sim_inject inject[VS_SIM_OP_COUNT_];

    sim_slots chunks, streams, events;
    sim_stream defstream;              /* handle 0 */

    sim_resv **resv;                   /* reservations and allocations, sorted by base */
    size_t nresv, capresv;
    sim_hostreg *hostreg;              /* sorted by base, disjoint */
    size_t nhostreg, caphostreg;
    sim_physfile phys;

    uint64_t engine_free_ns[3];        /* per copy direction: when the engine is next idle */
};

/* ---- simdev.c */
/* Validate dev, lock it, check it is present, count a call of `op` (-1: none).
 * On VS_OK the lock is held. */
vs_status sim_enter(simdev_t *dev, int op);
void sim_leave(simdev_t *dev);
/* Consult injection for op (lock held): VS_OK or the injected error. */
vs_status sim_injected(simdev_t *dev, int op, const char *what);
/* Record the reason for a failure in the thread's last error and return st. */
vs_status sim_fail(vs_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t sim_now_ns(void);
void sim_cond_init(pthread_cond_t *cv);

/* ---- simdev_slots.c */
void sim_slots_init(sim_slots *t, int kind);
void sim_slots_fini(sim_slots *t);
vs_status sim_slots_add(sim_slots *t, int ordinal, void *obj, simdev_handle *out);
void *sim_slots_get(const sim_slots *t, int ordinal, simdev_handle h);
void sim_slots_remove(sim_slots *t, simdev_handle h);

/* ---- simdev_mem.c (lock held) */
sim_resv *sim_mem_find(simdev_t *dev, uint64_t ptr);
/* VS_OK if [ptr, ptr+size) is device memory mapped read/write. */
vs_status sim_mem_check_rw(simdev_t *dev, uint64_t ptr, uint64_t size);
/* Some byte of [p, p+size) lies in a reservation or allocation. */
bool sim_mem_overlaps(simdev_t *dev, uint64_t p, uint64_t size);
bool sim_mem_idle(const simdev_t *dev);  /* holds nothing (for configure) */
/* [p, p+size) lies inside one host registration. */
bool sim_host_registered(const simdev_t *dev, uintptr_t p, uint64_t size);

/* ---- simdev_stream.c (lock held) */
void sim_stream_init_default(simdev_t *dev);
/* Wait until no executing copy touches [lo, hi). Returns true if it had to
 * wait (the lock was released meanwhile: revalidate). */
bool sim_wait_not_busy(simdev_t *dev, uint64_t lo, uint64_t hi);
/* Drain every stream and join the workers (the lock is released meanwhile). */
/* Wait until no queued or executing copy/memset touches [lo, hi) (what
 * cuMemFree's implicit synchronization guarantees). Returns true if it waited. */
bool sim_wait_unused(simdev_t *dev, uint64_t lo, uint64_t hi);
void sim_streams_quiesce(simdev_t *dev);
bool sim_streams_idle(const simdev_t *dev);

#endif /* VRAMSWAP_SIMDEV_INTERNAL_H */
