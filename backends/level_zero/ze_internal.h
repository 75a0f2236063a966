/* The Level Zero backend's private types: the loaded loader and its drivers,
 * opened devices, event slots, and interception.
 *
 * Everything is hidden inside libvramswap. Two objects are process-wide,
 * because there is one loader per process and the allocation hooks, called
 * with Level Zero's signatures, have no other way to reach them: the loader
 * state (vs_ze, ze_backend.c) and the interception state (private to
 * ze_intercept.c). Every other function takes the state (or a vs_bdev
 * pointing at it) explicitly.
 *
 * Locks: each device has two backend locks, `submit` (appends to command
 * lists) and `lock` (event slots, reservations). They rank below the core's
 * device lock, are never held together and never while calling the core.
 */
#ifndef VS_ZE_INTERNAL_H
#define VS_ZE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "level_zero/ze_table.h"

/* Devices and drivers we can address; more are ignored with a warning. */
#define VS_ZE_MAX_DEVICES 64
#define VS_ZE_MAX_DRIVERS 16

/* Note [Level Zero page size]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * zeVirtualMemQueryPageSize(size) answers the page size for an allocation of
 * that size, and Intel's driver (NEO) derives it from the size (64 KiB for
 * small sizes, 2 MiB or a power of two for large ones). The backend asks for
 * the page size of VS_ZE_PAGE_SIZE_MIN and reports it as the granularity; the
 * preferred VBAR page is that, but at least VS_ZE_PAGE_SIZE_MIN. Every
 * physical chunk the core creates is one page, so every chunk size is a
 * multiple of the page size the driver wants for it. Reservations are rounded
 * up to the page size the driver answers for their own size (older NEO
 * accepted only power-of-two reservation sizes; rounding to the answered page
 * size gives exactly that) -- see Note [Level Zero reservations] in ze_vmm.c.
 * Mapping a page costs driver time; the core's config (page_size) overrides
 * the page per device. */
#define VS_ZE_PAGE_SIZE_MIN (2ull << 20)

/* Events per event pool; pools are added as needed (Note [Level Zero events]). */
#define VS_ZE_EVENTS_PER_POOL 64u
/* Command lists whose wait on one event slot is tracked (ze_event.c). */
#define VS_ZE_SLOT_WAITERS 4u

/* One driver (a ze_driver_handle_t; Intel's GPU driver is usually the only one). */
typedef struct vs_ze_driver {
    ze_driver_handle_t handle;              /* as the loader hands it out */
    ze_api_version_t api_version;           /* zeDriverGetApiVersion */
    /* Intel's host-pointer import extension; NULL when the driver lacks it
     * (Note [Level Zero host registration] in ze_vmm.c). */
    vs_zex_DriverImportExternalPointer_t *import_ptr;
    vs_zex_DriverReleaseImportedPointer_t *release_ptr;
    ze_driver_handle_t ext_handle;          /* the driver's own handle, for extensions */
} vs_ze_driver;

/* The loaded loader and the devices it exposes to vramswap. Written once by
 * init (before any device can be opened), read-only afterwards. */
typedef struct vs_ze {
    vs_ze_lib lib;
    vs_ze_api api;                               /* Note [Level Zero loader table] */
    int sysman;                                  /* ZES_ENABLE_SYSMAN=1 held at zeInit */
    int sysman_set_by_us;                        /* we put it in the environment */
    uint32_t ndrivers;
    vs_ze_driver drivers[VS_ZE_MAX_DRIVERS];
    int gpu_count;                               /* GPU devices the drivers have */
    int count;                                   /* devices exposed (virtual memory works) */
    ze_device_handle_t devices[VS_ZE_MAX_DEVICES]; /* exposed ordinal -> device */
    uint32_t driver_of[VS_ZE_MAX_DEVICES];       /* exposed ordinal -> drivers[] index */
} vs_ze;

/* An event slot: one Level Zero event of a pool (Note [Level Zero events]).
 * All fields under the device's `lock`. */
typedef struct vs_ze_slot {
    ze_event_handle_t event;                /* NULL until created */
    struct vs_ze_slot *next;                /* free or retired list */
    uint32_t holds;                         /* host threads using it outside the lock */
    uint32_t nwaiters;                      /* command lists with an unpassed wait on it */
    ze_command_list_handle_t waiters[VS_ZE_SLOT_WAITERS];
    uint64_t waiter_epoch[VS_ZE_SLOT_WAITERS]; /* dev->wait_epoch when the wait was appended */
    bool overflow;                          /* more waiters than tracked: kept until close */
    bool retired;                           /* on the retired list */
} vs_ze_slot;

typedef struct vs_ze_pool {
    ze_event_pool_handle_t handle;
    uint32_t created;                       /* events created from it (slots[0..created)) */
    vs_ze_slot slots[VS_ZE_EVENTS_PER_POOL];
} vs_ze_pool;

/* What a vramswap event handle (uintptr_t) points at. */
typedef struct vs_ze_event {
    uint32_t magic;                         /* VS_ZE_EVENT_MAGIC while alive */
    vs_ze_slot *current;                    /* last record; NULL: never recorded */
} vs_ze_event;
#define VS_ZE_EVENT_MAGIC 0x7a657665u       /* "zeve" */

/* A physical chunk (what vs_bphys * points at). */
typedef struct vs_ze_chunk {
    ze_physical_mem_handle_t handle;
    uint64_t size;                          /* bytes */
} vs_ze_chunk;

/* One reservation: what va_reserve handed out and what the driver reserved. */
typedef struct vs_ze_resv {
    vs_devptr_t va;                         /* returned to the core (aligned) */
    uint64_t size;                          /* bytes the core asked for */
    void *base;                             /* the driver's reservation */
    uint64_t reserved;                      /* its size in bytes */
} vs_ze_resv;

#define VS_ZE_MAX_MEM_MODULES 8

/* One opened device. */
struct vs_bdev {
    vs_ze *ze;
    int ordinal;                            /* vramswap's ordinal */
    ze_device_handle_t device;
    vs_ze_driver *driver;
    ze_context_handle_t ctx;                /* this device's own context */
    vs_bdev_props props;                    /* cached at open */
    uint32_t copy_group;                    /* queue group ordinal used for streams */
    uint32_t copy_queues;                   /* queues in that group */
    bool in_order;                          /* lists created IN_ORDER (API >= 1.7) */
    ze_command_list_handle_t default_list;  /* stream 0 */
    pthread_mutex_t submit;                 /* serializes appends to command lists */
    pthread_mutex_t lock;                   /* slots, pools, reservations */
    /* event slots */
    vs_ze_pool **pools;
    uint32_t npools, pools_cap;
    vs_ze_slot *free_slots;                 /* reset, unsignaled, unreferenced */
    vs_ze_slot *retired;                    /* replaced; recycled once safe */
    uint64_t live_events;                   /* vs_ze_event objects */
    uint64_t wait_epoch;                    /* counts appended waits (vs_ze_list_passed) */
    /* reservations */
    vs_ze_resv *resv;
    size_t nresv, resv_cap;
    /* memory figures */
    uint32_t nmem;                          /* Sysman memory modules (0: no Sysman) */
    zes_mem_handle_t mem[VS_ZE_MAX_MEM_MODULES];
    uint64_t own_phys;                      /* bytes of our chunks (atomic) */
    uint64_t host_noop;                     /* registrations accepted without the extension */
};

/* The process's loader state (ze_backend.c). */
vs_ze *vs_ze_instance(void);
/* The exposed ordinal of a device handle, or -1 when it is not exposed. */
int vs_ze_ordinal_of(const vs_ze *ze, ze_device_handle_t device);

/* Note [Own calls bypass the hooks] (ze_intercept.c): the backend's own
 * zePhysicalMemCreate/Destroy run with this thread's guard set. */
void vs_ze_guard_enter(void);
void vs_ze_guard_leave(void);
/* The table entry of a hooked function, read atomically (install swaps it). */
#define VS_ZE_HOOKED_ENTRY(ze, field) __atomic_load_n(&(ze)->api.field, __ATOMIC_ACQUIRE)

/* The command list of a stream handle (0: the device's default list). */
ze_command_list_handle_t vs_ze_list(vs_bdev *dev, uintptr_t stream);

/* Event slots (ze_event.c). */
vs_status vs_ze_slots_init(vs_bdev *dev);
void vs_ze_slots_fini(vs_bdev *dev);
/* Append "signal this slot once everything before is done" to a list
 * (caller holds no lock). */
ze_result_t vs_ze_append_signal(vs_bdev *dev, ze_command_list_handle_t list, vs_ze_slot *slot);
/* Take a reset slot / give one back unused (under no lock). */
vs_status vs_ze_slot_get(vs_bdev *dev, vs_ze_slot **out);
void vs_ze_slot_put(vs_bdev *dev, vs_ze_slot *slot);
/* Synchronizing a list: take the epoch before, and once everything appended
 * before that point has executed, report the waits up to it as passed. */
uint64_t vs_ze_wait_epoch(vs_bdev *dev);
void vs_ze_list_passed(vs_bdev *dev, ze_command_list_handle_t list, uint64_t epoch);

/* The driver's page size for an allocation of `size` bytes (a power of two). */
vs_status vs_ze_page_size(vs_bdev *dev, uint64_t size, uint64_t *out);

/* ops (ze_vmm.c, ze_stream.c, ze_event.c, ze_intercept.c) */
vs_status vs_ze_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out);
vs_status vs_ze_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_ze_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out);
vs_status vs_ze_phys_release(vs_bdev *dev, vs_bphys *chunk);
vs_status vs_ze_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk);
vs_status vs_ze_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_ze_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_ze_host_register(vs_bdev *dev, void *ptr, uint64_t size);
vs_status vs_ze_host_unregister(vs_bdev *dev, void *ptr);
void vs_ze_resv_fini(vs_bdev *dev);

vs_status vs_ze_stream_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_ze_stream_destroy(vs_bdev *dev, uintptr_t stream);
vs_status vs_ze_stream_synchronize(vs_bdev *dev, uintptr_t stream);
vs_status vs_ze_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                           uintptr_t stream);
vs_status vs_ze_create_list(vs_bdev *dev, uint32_t queue_index, ze_command_list_handle_t *out);

vs_status vs_ze_event_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_ze_event_destroy(vs_bdev *dev, uintptr_t event);
vs_status vs_ze_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream);
vs_status vs_ze_event_query(vs_bdev *dev, uintptr_t event);
vs_status vs_ze_event_synchronize(vs_bdev *dev, uintptr_t event);
vs_status vs_ze_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event);

vs_status vs_ze_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len);
vs_status vs_ze_intercept_remove(void);

#endif /* VS_ZE_INTERNAL_H */
