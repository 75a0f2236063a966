/* vramswap: run PyTorch models larger than GPU memory.
 *
 * The public C API. Everything a program, the CLI and the Python bindings use is
 * declared here and nowhere else; backend authors read vramswap/backend.h.
 *
 * The model
 * ---------
 * A *device* (vs_device_t) is one GPU seen through one backend (sim, cuda, hip,
 * level_zero). All state lives in it; it has one lock and every function here
 * may be called from any thread.
 *
 * A *VBAR* (virtual base address register, vs_vbar_t) is a reserved range of device
 * virtual addresses, one per model. Reserving costs only address space. The
 * application sub-allocates its weights inside it with vs_vbar_alloc(), most
 * important first (low addresses are kept longest). Physical VRAM is mapped page by
 * page (vs_device_props.page_size) when vs_vbar_fault() asks for a range:
 *
 *     uint64_t sig;
 *     vs_status st = vs_vbar_fault(vbar, off, len, &sig);
 *     if (st == VS_OK) {                 // resident and pinned
 *         if (sig != my_last_sig[i])     // pages were (re)mapped: data is gone
 *             copy weights in, my_last_sig[i] = sig;
 *         run the layer on (base + off);
 *         vs_vbar_unpin(vbar, off, len, stream);   // evictable once the stream passes here
 *     } else if (st == VS_NOT_RESIDENT) {
 *         stream the weights through a scratch buffer instead;
 *     } else error;
 *
 * Under memory pressure (another allocation in the process, a more important
 * VBAR faulting, vs_device_reclaim()) unpinned pages are evicted: least important
 * VBAR first, highest pages first. A VBAR that lost pages gets a *watermark* at
 * the lowest evicted offset: faults that need a non-resident page at or above it
 * fail fast with VS_NOT_RESIDENT (no mapping attempted) until the VBAR is
 * prioritized again. A *floor* protects a prefix from eviction.
 *
 * Conventions
 * -----------
 * - Every function returns vs_status. VS_OK is 0. VS_NOT_RESIDENT is a normal
 *   answer of vs_vbar_fault(). VS_ERR_OUT_OF_MEMORY is a normal result (the
 *   budget or the device is full), distinct from failures (VS_ERR_BACKEND...).
 * - A function that fails leaves no partial work behind and its out-parameters
 *   untouched unless documented otherwise.
 * - Handles are validated: a NULL, foreign or destroyed handle gives
 *   VS_ERR_INVALID_HANDLE, never a crash (a destroyed handle's memory is kept
 *   and recycled only after a quarantine, see Note [Handles] in core/src/handle.c).
 * - Sizes and offsets are bytes (uint64_t). Device addresses are vs_devptr_t.
 * - Streams and events are the backend's native handles as uintptr_t (a CUstream,
 *   hipStream_t, ze_command_list_handle_t, or the simulator's); 0 is the
 *   backend's default stream.
 */
#ifndef VRAMSWAP_H
#define VRAMSWAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VS_BUILDING_LIBRARY)
#define VS_API __attribute__((visibility("default")))
#else
#define VS_API
#endif

#define VS_VERSION_MAJOR 0
#define VS_VERSION_MINOR 1
#define VS_VERSION_PATCH 0

/* ---------------------------------------------------------------- status */

typedef enum vs_status {
    VS_OK = 0,
    VS_NOT_RESIDENT = 1,          /* fault: the range cannot be resident now (normal) */
    VS_ERR_OUT_OF_MEMORY = 2,     /* budget, limit or device memory exhausted (normal) */
    VS_ERR_INVALID_ARGUMENT = 3,  /* NULL out-pointer, zero or huge size, bad flag... */
    VS_ERR_INVALID_HANDLE = 4,    /* NULL, foreign or destroyed handle */
    VS_ERR_OUT_OF_RANGE = 5,      /* offset/size outside the VBAR or buffer */
    VS_ERR_NOT_PINNED = 6,        /* unpin of a range that is not pinned */
    VS_ERR_BUSY = 7,              /* object still in use (pinned pages, open device) */
    VS_ERR_NOT_READY = 8,         /* work still pending (event query); transient driver state */
    VS_ERR_NOT_SUPPORTED = 9,     /* the backend or device lacks the feature */
    VS_ERR_NO_DEVICE = 10,        /* no such backend or device ordinal */
    VS_ERR_BACKEND = 11,          /* the driver failed; see the log for its error */
    VS_ERR_INTERNAL = 12,         /* invariant broken: a bug in vramswap */
    VS_STATUS_COUNT_ = 13
} vs_status;

/* A static, human-readable name such as "VS_ERR_OUT_OF_MEMORY" ("VS_UNKNOWN" for others). */
VS_API const char *vs_status_name(int status);
/* A static one-line description ("out of memory"). */
VS_API const char *vs_status_str(int status);

/* Look a named constant up at run time so that bindings never copy values:
 * every VS_* status, log level, residency flag, copy kind and config key's
 * numeric value is available by its C name, e.g. vs_constant("VS_ERR_BUSY", &v).
 * VS_ERR_INVALID_ARGUMENT for an unknown name. */
VS_API vs_status vs_constant(const char *name, int64_t *value);
/* Enumerate the constant table: name and value of entry i; VS_ERR_OUT_OF_RANGE past the end. */
VS_API vs_status vs_constant_at(size_t i, const char **name, int64_t *value);

/* "0.1.0" */
VS_API const char *vs_version(void);

/* Whether this build has the hook engine that allocation interception on the
 * GPU backends needs (VS_DEVICE_INTERCEPT; the sim backend intercepts without
 * it): *available 1 or 0; desc (may be NULL with desc_len 0) gets how it was
 * built or why it was left out, e.g. "left out: Capstone not found at build
 * time (Debian/Ubuntu: libcapstone-dev)". VS_ERR_INVALID_ARGUMENT. */
VS_API vs_status vs_hook_engine_info(int *available, char *desc, size_t desc_len);

/* ---------------------------------------------------------------- logging */

typedef enum vs_log_level {
    VS_LOG_OFF = 0,
    VS_LOG_ERROR = 1,
    VS_LOG_WARN = 2,
    VS_LOG_INFO = 3,
    VS_LOG_DEBUG = 4,
    VS_LOG_TRACE = 5
} vs_log_level;

/* Receives one formatted message (no trailing newline). Never called while a
 * device lock is held (messages produced under a lock are delivered after it is
 * released), so it may call back into vramswap or take other locks (the GIL). */
typedef void (*vs_log_fn)(int level, const char *message, void *user);

/* Default level: VS_LOG_WARN, or the VRAMSWAP_LOG environment variable
 * (error|warn|info|debug|trace|off or 0-5) read at first use. */
VS_API vs_status vs_set_log_level(int level);
VS_API int vs_get_log_level(void);
/* NULL restores the default sink (stderr, prefixed "vramswap: "). */
VS_API vs_status vs_set_log_callback(vs_log_fn fn, void *user);

/* ---------------------------------------------------------------- registry */

typedef struct vs_backend_info {
    char name[32];          /* "sim", "cuda", "hip", "level_zero" */
    int available;          /* 1 if the driver loaded and the API is usable */
    int device_count;       /* devices it exposes (0 when unavailable) */
    char why[256];          /* when unavailable: the reason, e.g. "libcuda.so.1 not found" */
} vs_backend_info;

/* Number of backends compiled into this library (loaded lazily; never fails). */
VS_API size_t vs_backend_count(void);
/* Probe backend i (loading its driver the first time) and describe it. */
VS_API vs_status vs_backend_get_info(size_t i, vs_backend_info *info);

/* ---------------------------------------------------------------- devices */

typedef struct vs_device vs_device_t;
typedef uint64_t vs_devptr_t;

typedef enum vs_device_flag {
    VS_DEVICE_INTERCEPT = 1u << 0,  /* install allocation interception for this backend */
    VS_DEVICE_NO_REGROW = 1u << 1,  /* watermarks rise only on prioritize/set_watermark
                                       (Note [Watermark regrowth] in regrow.c) */
    VS_DEVICE_LIMIT_PROCESS = 1u << 2 /* `limit` caps this process's own usage, not the
                                       device's (Note [Process quota] in budget.c) */
} vs_device_flag;

typedef struct vs_device_config {
    uint32_t struct_size;   /* sizeof(vs_device_config); set by vs_device_config_init */
    uint32_t flags;         /* vs_device_flag bits */
    uint64_t page_size;     /* VBAR page in bytes; 0 = backend's preferred; must be a
                               multiple of the device's granularity */
    uint64_t headroom;      /* bytes always left free on the device (default 256 MiB) */
    uint64_t limit;         /* 0 = none; else the device behaves as one with this
                               much memory in total (usage by others included) */
    uint64_t mem_poll_ns;   /* longest age of the driver's free-memory figure before it
                               is asked again (default 2 ms; 0 = every time) */
    /* Watermark regrowth (Note [Watermark regrowth] in core/src/regrow.c): */
    uint64_t regrow_delay_ns;     /* quiet time after a VBAR's last eviction before its
                                     watermark may rise again (default 20 ms) */
    uint64_t regrow_delay_max_ns; /* the quiet time doubles, up to this, whenever a regrowth
                                     is evicted again within it (default 320 ms) */
    uint64_t regrow_margin;       /* bytes of the free budget a regrowth leaves free
                                     (default 0: the headroom already is) */
} vs_device_config;

/* Fill defaults, then apply the VRAMSWAP_CONF environment variable
 * ("limit:8G,headroom:512M,page_size:32M,log:info"). */
VS_API vs_status vs_device_config_init(vs_device_config *cfg);

/* Open device `ordinal` of backend `backend` (NULL or "auto": the first available
 * backend with a device, GPU backends before "sim"). One open per device per
 * process: a second open of the same device gives VS_ERR_BUSY. cfg may be NULL
 * (defaults). */
VS_API vs_status vs_device_open(const char *backend, int ordinal,
                                const vs_device_config *cfg, vs_device_t **out);
/* Destroys every VBAR, scratch and host buffer still open on it (logging a
 * warning for each), removes interception and releases the device. Pinned pages
 * give VS_ERR_BUSY and nothing is released. Calls racing close on other threads
 * either finish first (close waits for them) or get VS_ERR_INVALID_HANDLE.
 * Otherwise the device is always closed: VS_ERR_BACKEND means the driver kept
 * memory the library could not give back by then (logged with its size;
 * Note [Stuck chunks]). */
VS_API vs_status vs_device_close(vs_device_t *dev);

typedef struct vs_device_props {
    char name[256];
    char backend[32];
    int ordinal;
    int integrated;             /* shares system memory (budget from host memory) */
    uint64_t total_memory;      /* as the driver reports it */
    uint64_t granularity;       /* smallest mapping unit */
    uint64_t page_size;         /* VBAR page size in use */
    int intercepting;           /* allocation interception installed */
} vs_device_props;

VS_API vs_status vs_device_get_props(vs_device_t *dev, vs_device_props *props);

typedef struct vs_memory_info {
    uint64_t total;             /* device memory, or the limit when one is set */
    uint64_t headroom;
    uint64_t budget;            /* total - headroom */
    uint64_t used_weights;      /* VBAR pages mapped */
    uint64_t used_scratch;      /* scratch buffers mapped */
    uint64_t used_intercepted;  /* live allocations seen by interception */
    uint64_t used_others;       /* in use on the device by anything not counted above */
    uint64_t available;         /* what can still be taken without evicting */
    uint64_t evictable;         /* resident, unpinned, above floors: reclaimable now */
} vs_memory_info;

/* A fresh view: asks the driver for free memory unless its figure is younger
 * than cfg.mem_poll_ns. */
VS_API vs_status vs_device_memory_info(vs_device_t *dev, vs_memory_info *info);
/* Change the limit (0 = none) and headroom at run time; evicts to fit if needed. */
VS_API vs_status vs_device_set_limit(vs_device_t *dev, uint64_t limit, uint64_t headroom);

/* Make `bytes` available (free within the budget): evicts unpinned VBAR pages,
 * least important first, only as many as needed. *freed (may be NULL) gets what
 * was released. All or nothing: VS_ERR_OUT_OF_MEMORY, with nothing evicted, if
 * even evicting everything evictable would fall short. The allocation hooks
 * call this before every allocation. */
VS_API vs_status vs_device_reclaim(vs_device_t *dev, uint64_t bytes, uint64_t *freed);
/* Evict from every VBAR, least important first, until `bytes` are released or
 * nothing evictable is left (comfy-aimdo's vbars_free_memory); VS_OK either
 * way, *freed says how much. Unlike reclaim it ignores what is already free. */
VS_API vs_status vs_device_free_memory(vs_device_t *dev, uint64_t bytes, uint64_t *freed);
/* Clear every VBAR's floor. */
VS_API vs_status vs_device_reset_floors(vs_device_t *dev);

typedef struct vs_stats {
    uint64_t faults;                 /* vs_vbar_fault calls that were valid */
    uint64_t fault_hits;             /* all pages already resident */
    uint64_t fault_maps;             /* faults that mapped at least one page */
    uint64_t fault_not_resident;     /* answered VS_NOT_RESIDENT */
    uint64_t fault_fast_fails;       /* of those, refused by the watermark */
    uint64_t pages_mapped;
    uint64_t pages_evicted;
    uint64_t bytes_mapped;
    uint64_t bytes_evicted;
    uint64_t chunks_created;         /* physical pages created in the driver */
    uint64_t chunks_released;
    uint64_t chunks_reused;          /* taken from an evicted page, no driver create/release */
    uint64_t event_waits;            /* evictions that had to wait for a page's last use */
    uint64_t reclaims;               /* vs_device_reclaim calls (hooks included) */
    uint64_t reclaim_failures;       /* reclaims that could not free enough */
    uint64_t intercepted_allocs;
    uint64_t intercepted_frees;
    uint64_t intercepted_oom;        /* allocations refused under the limit */
    uint64_t transient_retries;      /* driver NOT_READY retried */
    uint64_t backend_failures;       /* driver calls that failed for good */
    uint64_t mem_polls;              /* free-memory queries to the driver */
    uint64_t cur_weights, peak_weights;
    uint64_t cur_scratch, peak_scratch;
    uint64_t cur_intercepted, peak_intercepted;
    uint64_t cur_host_registered, peak_host_registered;
    uint64_t regrowths;              /* watermarks raised without prioritize */
    uint64_t regrown_bytes;          /* by how much, in total */
    uint64_t regrow_backoffs;        /* regrowths evicted again within their quiet time */
    /* Driver memory the library could not give back (Note [Stuck chunks]):
     * chunks whose unmap or release failed and reservations whose free failed,
     * kept and retried (current count), and bytes given up for good at close. */
    uint64_t stuck_chunks;
    uint64_t leaked_bytes;
} vs_stats;

VS_API vs_status vs_device_get_stats(vs_device_t *dev, vs_stats *stats);
/* Zero the counters and set every peak to its current value. */
VS_API vs_status vs_device_reset_stats(vs_device_t *dev);

/* Check every invariant of the device and its objects; VS_ERR_INTERNAL (and an
 * error log naming the broken invariant) if one fails. Debug and test builds run
 * it after every operation. */
VS_API vs_status vs_device_check_invariants(vs_device_t *dev);

/* Write a readable report (budget, VBARs in priority order, residency maps) into
 * buf (NUL-terminated, truncated to cap). *len (may be NULL) gets the full length
 * without the NUL, so a caller can size a second call. buf may be NULL if cap is 0. */
VS_API vs_status vs_device_dump(vs_device_t *dev, char *buf, size_t cap, size_t *len);

/* ---------------------------------------------------------------- streams, events, copies */

VS_API vs_status vs_stream_create(vs_device_t *dev, uintptr_t *stream);
VS_API vs_status vs_stream_destroy(vs_device_t *dev, uintptr_t stream);
VS_API vs_status vs_stream_synchronize(vs_device_t *dev, uintptr_t stream);

VS_API vs_status vs_event_create(vs_device_t *dev, uintptr_t *event);
VS_API vs_status vs_event_destroy(vs_device_t *dev, uintptr_t event);
VS_API vs_status vs_event_record(vs_device_t *dev, uintptr_t event, uintptr_t stream);
/* VS_OK when complete, VS_ERR_NOT_READY while pending. */
VS_API vs_status vs_event_query(vs_device_t *dev, uintptr_t event);
VS_API vs_status vs_event_synchronize(vs_device_t *dev, uintptr_t event);
VS_API vs_status vs_stream_wait_event(vs_device_t *dev, uintptr_t stream, uintptr_t event);

typedef enum vs_copy_kind {
    VS_COPY_HOST_TO_DEVICE = 1,
    VS_COPY_DEVICE_TO_HOST = 2,
    VS_COPY_DEVICE_TO_DEVICE = 3
} vs_copy_kind;

/* Asynchronous copy in stream order. Host memory should be a registered host
 * buffer for full speed (pageable memory works but is slower). Device addresses
 * must be mapped. */
VS_API vs_status vs_memcpy_async(vs_device_t *dev, int kind, uintptr_t dst, uintptr_t src,
                                 uint64_t size, uintptr_t stream);

/* ---------------------------------------------------------------- VBARs */

typedef struct vs_vbar vs_vbar_t;

/* Reserve `size` bytes (rounded up to the page size) of device address space.
 * The new VBAR becomes the most important one. */
VS_API vs_status vs_vbar_create(vs_device_t *dev, uint64_t size, vs_vbar_t **out);
/* Unmaps everything (waiting for each page's last use) and frees the reservation.
 * VS_ERR_BUSY if any page is pinned (nothing changes). Otherwise the handle is
 * consumed; what the driver refuses to unmap, release or free is kept by the
 * device, counted in stats.stuck_chunks and retried (at the latest by
 * vs_device_close, which reports what is still refused then). The same holds
 * for vs_scratch_destroy. */
VS_API vs_status vs_vbar_destroy(vs_vbar_t *vbar);

/* Base address and size (page multiple). */
VS_API vs_status vs_vbar_get_base(vs_vbar_t *vbar, vs_devptr_t *base, uint64_t *size);

/* Sub-allocate `size` bytes at the next free offset aligned to `align` (a power of
 * two; 0 = 256). Allocations are handed out in increasing offsets: allocate in
 * load-priority order. VS_ERR_OUT_OF_MEMORY when the VBAR is full. */
VS_API vs_status vs_vbar_alloc(vs_vbar_t *vbar, uint64_t size, uint64_t align, uint64_t *offset);
/* Bytes sub-allocated so far (the next free offset). */
VS_API vs_status vs_vbar_allocated(vs_vbar_t *vbar, uint64_t *bytes);

/* Make [offset, offset+size) resident and pin it.
 * VS_OK: every page is mapped and pinned; *signature identifies the mappings (it
 *   changes whenever any page of the range was mapped anew since it was last
 *   returned, and stays the same otherwise). Pins nest: each successful fault
 *   must be matched by one vs_vbar_unpin of the same range.
 * VS_NOT_RESIDENT: nothing was pinned (pages mapped on the way may stay mapped,
 *   unpinned); *signature is 0. Happens when a needed page lies at or above the
 *   watermark, or when room cannot be made by evicting less important pages.
 * signature may be NULL. */
VS_API vs_status vs_vbar_fault(vs_vbar_t *vbar, uint64_t offset, uint64_t size, uint64_t *signature);

/* Unpin with no device work to wait for (the caller synchronized, or only the
 * CPU touched the pages): no event is recorded. */
#define VS_STREAM_NONE ((uintptr_t)-1)

/* Release one pin of every page in the range. The pages become evictable once
 * `stream` has passed this point (an event is recorded on it; VS_STREAM_NONE:
 * at once). VS_ERR_NOT_PINNED,
 * with nothing changed, if any page of the range is not pinned. */
VS_API vs_status vs_vbar_unpin(vs_vbar_t *vbar, uint64_t offset, uint64_t size, uintptr_t stream);

/* Per-page signatures of the pages covering the range (0 = not resident); n is
 * the capacity of sigs, *count gets the number of pages. */
VS_API vs_status vs_vbar_page_signatures(vs_vbar_t *vbar, uint64_t offset, uint64_t size,
                                         uint64_t *sigs, size_t n, size_t *count);

/* Most important (as a new VBAR is); clears the watermark. */
VS_API vs_status vs_vbar_prioritize(vs_vbar_t *vbar);
/* Least important: evicted first. */
VS_API vs_status vs_vbar_deprioritize(vs_vbar_t *vbar);

/* Faults needing a non-resident page at or above `bytes` fail fast. The VBAR's
 * size means no watermark. Rounded down to a page. */
VS_API vs_status vs_vbar_set_watermark(vs_vbar_t *vbar, uint64_t bytes);
VS_API vs_status vs_vbar_get_watermark(vs_vbar_t *vbar, uint64_t *bytes);
/* Pages below `bytes` (rounded up to a page) are never evicted by pressure.
 * 0 clears it. */
VS_API vs_status vs_vbar_set_floor(vs_vbar_t *vbar, uint64_t bytes);
VS_API vs_status vs_vbar_get_floor(vs_vbar_t *vbar, uint64_t *bytes);

/* Evict unpinned pages of this VBAR, highest first (above its floor), until
 * `bytes` were released; *freed gets the amount (may be NULL). */
VS_API vs_status vs_vbar_free_memory(vs_vbar_t *vbar, uint64_t bytes, uint64_t *freed);

/* Bytes of this VBAR currently mapped. */
VS_API vs_status vs_vbar_loaded_size(vs_vbar_t *vbar, uint64_t *bytes);

#define VS_PAGE_RESIDENT 1u
#define VS_PAGE_PINNED 2u
#define VS_PAGE_PROTECTED 4u   /* below the floor */
/* One byte per page (VS_PAGE_* flags); n is the capacity of map, *count gets the
 * VBAR's page count (call with n = 0 to size the map). */
VS_API vs_status vs_vbar_residency(vs_vbar_t *vbar, uint8_t *map, size_t n, size_t *count);

/* ---------------------------------------------------------------- scratch buffers */

/* Growable device buffers: the address range (max_size) is reserved up front and
 * stays stable; memory is mapped in pages as the buffer grows and counts in the
 * budget like any allocation (growing evicts VBAR pages if needed). */
typedef struct vs_scratch vs_scratch_t;

VS_API vs_status vs_scratch_create(vs_device_t *dev, uint64_t max_size, vs_scratch_t **out);
VS_API vs_status vs_scratch_destroy(vs_scratch_t *buf);
/* Map or unmap pages so that exactly the pages covering `size` are mapped.
 * Growing may give VS_ERR_OUT_OF_MEMORY (nothing new stays mapped). Shrinking
 * waits for the device to finish with the pages (stream synchronize of nothing:
 * the caller must not have work in flight on the released part). */
VS_API vs_status vs_scratch_resize(vs_scratch_t *buf, uint64_t size);
VS_API vs_status vs_scratch_get(vs_scratch_t *buf, vs_devptr_t *ptr, uint64_t *size, uint64_t *max_size);

/* ---------------------------------------------------------------- host buffers */

/* Growable pinned host memory: address space reserved up front, committed,
 * pre-touched and registered with the device's driver in chunks as it grows;
 * unregistered and decommitted as it shrinks. Its contents survive growth. */
typedef struct vs_host_buffer vs_host_buffer_t;

VS_API vs_status vs_host_buffer_create(vs_device_t *dev, uint64_t max_size, vs_host_buffer_t **out);
VS_API vs_status vs_host_buffer_destroy(vs_host_buffer_t *buf);
VS_API vs_status vs_host_buffer_resize(vs_host_buffer_t *buf, uint64_t size);
VS_API vs_status vs_host_buffer_get(vs_host_buffer_t *buf, void **ptr, uint64_t *size, uint64_t *max_size);

#ifdef __cplusplus
}
#endif
#endif /* VRAMSWAP_H */
