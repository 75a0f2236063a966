/* The backend contract: what the core asks of a GPU driver, stated once.
 *
 * A backend is a table of function pointers (vs_backend_ops) that the core calls.
 * The core never includes a vendor header and never tests for a vendor; every
 * vendor API (CUDA driver VMM, HIP VMM, Level Zero virtual memory) and the
 * simulator implement this table. docs/backends.md maps each operation onto the
 * three vendor APIs.
 *
 * Rules every implementation follows
 * ----------------------------------
 * - Return codes: VS_OK; VS_ERR_OUT_OF_MEMORY when the device (or host, for
 *   registration) has no memory for the request -- the core treats it as a normal
 *   result, evicts and retries; VS_ERR_NOT_READY for a transient driver state
 *   that a retry may clear (the core retries a bounded number of times and counts
 *   it); VS_ERR_NOT_SUPPORTED when the feature is absent; VS_ERR_BACKEND for every
 *   other driver failure, after logging the driver's own code and name with
 *   vs_backend_log().
 * - A failing call leaves nothing behind (a map that fails has mapped nothing).
 * - Thread safety: any function may be called from any thread. The core calls
 *   the functions of one device under that device's lock, except the stream,
 *   event and copy functions, which it may call without it. A backend may take
 *   its own internal locks, which rank below the device lock (see the lock order
 *   in docs/design.md); it never calls back into the core while holding them.
 * - The backend's own driver calls must not go through its allocation hooks
 *   (it calls the original entry points).
 * - Context: a backend makes its device's context current itself where the
 *   driver needs that (CUDA's primary context), on every call, on any thread.
 * - Handles (vs_bdev, physical chunks, streams, events) are opaque to the core.
 *   Streams and events are uintptr_t so that an application's native handle (a
 *   CUstream from torch) can be passed through unchanged; stream 0 is the
 *   default stream.
 */
#ifndef VRAMSWAP_BACKEND_H
#define VRAMSWAP_BACKEND_H

#include "../vramswap.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VS_BACKEND_ABI_VERSION 1

typedef struct vs_bdev vs_bdev;       /* a backend's device: defined by each backend */
typedef struct vs_bphys vs_bphys;     /* a physical memory chunk */

typedef struct vs_bdev_props {
    char name[256];
    int integrated;
    uint64_t total_memory;
    uint64_t granularity;          /* minimum mapping granularity (bytes, power of two) */
    uint64_t preferred_page_size;  /* a good VBAR page size for this device */
} vs_bdev_props;

/* What interception reports to the core. The backend's hooks call these; the
 * core finds the device by (backend, ordinal). Each returns quickly when no
 * vramswap device is open on that ordinal. Never called with a backend lock held. */
typedef struct vs_intercept_sink {
    /* Before an allocation of `size` bytes on device `ordinal`: make room
     * (evict) so that it fits within the budget. VS_OK: go ahead.
     * VS_ERR_OUT_OF_MEMORY: under a limit this allocation cannot fit even after
     * evicting everything evictable; the hook fails it with the driver's
     * out-of-memory code without calling the driver. */
    vs_status (*before_alloc)(void *user, int ordinal, uint64_t size);
    /* The driver itself ran out of memory for `size`: evict `size` more. VS_OK
     * if something was evicted (the hook retries once), else VS_ERR_OUT_OF_MEMORY. */
    vs_status (*on_oom)(void *user, int ordinal, uint64_t size);
    /* The allocation succeeded: count it until its free. */
    void (*after_alloc)(void *user, int ordinal, uintptr_t ptr, uint64_t size);
    /* A pointer is being freed (before the driver call). Unknown pointers are ignored. */
    void (*on_free)(void *user, int ordinal, uintptr_t ptr);
    void *user;
} vs_intercept_sink;

typedef struct vs_backend_constant {
    const char *name;
    int64_t value;
} vs_backend_constant;

typedef struct vs_backend_ops {
    uint32_t abi_version;          /* VS_BACKEND_ABI_VERSION */
    const char *name;              /* "sim", "cuda", "hip", "level_zero" */
    int is_gpu;                    /* preferred over the simulator by "auto" */

    /* Load the driver and check it offers what the contract needs. On failure
     * return VS_ERR_NOT_SUPPORTED (or NO_DEVICE) and write a reason into why;
     * the library then keeps working without this backend. Called once. */
    vs_status (*init)(char *why, size_t why_len);
    int (*device_count)(void);

    vs_status (*open)(int ordinal, vs_bdev **out);
    void (*close)(vs_bdev *dev);
    vs_status (*props)(vs_bdev *dev, vs_bdev_props *out);
    /* Free and total memory as the driver sees them now. */
    vs_status (*mem_info)(vs_bdev *dev, uint64_t *free_bytes, uint64_t *total_bytes);

    /* Virtual address space: inaccessible until mapped. size and align are
     * multiples of the granularity. */
    vs_status (*va_reserve)(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out);
    vs_status (*va_free)(vs_bdev *dev, vs_devptr_t va, uint64_t size);

    /* Physical memory: one chunk of `size` (granularity multiple) of device memory. */
    vs_status (*phys_create)(vs_bdev *dev, uint64_t size, vs_bphys **out);
    vs_status (*phys_release)(vs_bdev *dev, vs_bphys *chunk);

    /* Map a whole chunk at va (inside a reservation), then grant this device
     * read/write access. After unmap, touching va faults. */
    vs_status (*map)(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk);
    vs_status (*set_access)(vs_bdev *dev, vs_devptr_t va, uint64_t size);
    vs_status (*unmap)(vs_bdev *dev, vs_devptr_t va, uint64_t size);

    /* Page-lock host memory (page-aligned) for DMA with this device. */
    vs_status (*host_register)(vs_bdev *dev, void *ptr, uint64_t size);
    vs_status (*host_unregister)(vs_bdev *dev, void *ptr);

    /* Streams: in-order queues. */
    vs_status (*stream_create)(vs_bdev *dev, uintptr_t *out);
    vs_status (*stream_destroy)(vs_bdev *dev, uintptr_t stream);
    vs_status (*stream_synchronize)(vs_bdev *dev, uintptr_t stream);
    /* Asynchronous copy (vs_copy_kind) ordered on the stream. */
    vs_status (*copy_async)(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                            uintptr_t stream);

    /* Events: record marks a point in a stream; query is VS_OK once the stream
     * passed it (and for an event never recorded), VS_ERR_NOT_READY before. */
    vs_status (*event_create)(vs_bdev *dev, uintptr_t *out);
    vs_status (*event_destroy)(vs_bdev *dev, uintptr_t event);
    vs_status (*event_record)(vs_bdev *dev, uintptr_t event, uintptr_t stream);
    vs_status (*event_query)(vs_bdev *dev, uintptr_t event);
    vs_status (*event_synchronize)(vs_bdev *dev, uintptr_t event);
    vs_status (*stream_wait_event)(vs_bdev *dev, uintptr_t stream, uintptr_t event);

    /* Allocation interception for the whole backend (all its devices). Optional
     * (NULL = VS_ERR_NOT_SUPPORTED). install may refuse (a prologue it cannot
     * patch safely) with VS_ERR_NOT_SUPPORTED and a reason; the library then runs
     * without it. Called with no device lock held; install/remove are counted by
     * the core (first install, last remove). */
    vs_status (*intercept_install)(const vs_intercept_sink *sink, char *why, size_t why_len);
    vs_status (*intercept_remove)(void);

    /* Optional: the backend's own named constants (e.g. the simulator's
     * VS_SIM_OP_* values), terminated by a {NULL, 0} entry; vs_constant() and
     * vs_constant_at() list them after the core's, so bindings never copy them. */
    const vs_backend_constant *constants;
} vs_backend_ops;

/* Logging for backends (same sink and levels as the core). */
void vs_backend_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif /* VRAMSWAP_BACKEND_H */
