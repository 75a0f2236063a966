/* The HIP backend's private types: the loaded runtime, its devices, the
 * current-device scope every runtime call runs in, physical chunks, the
 * reservation cache and interception.
 *
 * Everything is hidden inside libvramswap. Two objects are process-wide,
 * because there is one HIP runtime per process and the allocation hooks, called
 * with HIP's signatures, have no other way to reach them: the runtime (vs_hip,
 * hip_backend.c) and the interception state (private to hip_intercept.c).
 * Every other function takes the runtime (or a vs_bdev pointing at it)
 * explicitly.
 */
#ifndef VS_HIP_INTERNAL_H
#define VS_HIP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hip/hip_api.h"

/* Devices we can address (HIP ordinals); more are ignored with a warning. */
#define VS_HIP_MAX_DEVICES 64

/* Note [HIP VMM attribute]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * hipDeviceAttributeVirtualMemoryManagementSupported entered the headers after
 * ROCm 5.2 (Debian 12 ships 5.2), right after hipDeviceAttributeMemoryPoolsSupported
 * in the CUDA-compatible block, where it has kept the value 89 since. We build
 * against whichever headers are installed, so we name the value ourselves and
 * check it against the neighbour the 5.2 headers do have. A runtime too old to
 * know the attribute answers hipErrorInvalidValue: its VMM API was a beta
 * without this capability report, and we do not use it (the device is not
 * exposed, with a reason). */
#define VS_HIP_ATTR_VMM_SUPPORTED ((hipDeviceAttribute_t)89)
_Static_assert((int)hipDeviceAttributeMemoryPoolsSupported == 88,
               "hipDeviceAttributeVirtualMemoryManagementSupported is assumed to be 89");

/* Note [HIP page size]
 * ~~~~~~~~~~~~~~~~~~~~
 * The preferred VBAR page is the runtime's RECOMMENDED granularity, but at
 * least this much: every hipMemCreate + hipMemMap + hipMemSetAccess is a
 * round trip through ROCclr and the KFD, so small pages make a large layer cost
 * milliseconds; larger pages evict coarser. The core's config (page_size)
 * overrides it per device. Same figure as the CUDA backend; tune here. */
#define VS_HIP_PAGE_SIZE_MIN (2ull << 20)

/* Note [HIP reservation cache] (hip_va.c): default number of freed address
 * ranges kept per device for reuse; VRAMSWAP_HIP_VA_CACHE overrides, 0 disables. */
#define VS_HIP_VA_CACHE_DEFAULT 8

/* What hipMemRelease does to memory whose address range is still reserved
 * (Note [HIP stranded memory] in hip_va.c). */
typedef enum vs_hip_release_mode {
    VS_HIP_RELEASE_UNKNOWN = 0,   /* not measured yet: assume it may strand */
    VS_HIP_RELEASE_RETURNS = 1,   /* the memory comes back at hipMemRelease */
    VS_HIP_RELEASE_STRANDS = 2,   /* it comes back only at hipMemAddressFree */
} vs_hip_release_mode;

/* The loaded runtime and the devices it exposes to vramswap. Written once by
 * init (before any device can be opened), read-only afterwards. */
typedef struct vs_hip {
    vs_hip_lib lib;
    vs_hip_api api;                        /* Note [HIP runtime table] */
    int runtime_version;                   /* hipRuntimeGetVersion, e.g. 50221153 */
    int hip_count;                         /* devices the runtime has */
    int count;                             /* devices exposed (VMM-capable) */
    int hip_ordinal[VS_HIP_MAX_DEVICES];   /* exposed ordinal -> runtime ordinal */
    int integrated[VS_HIP_MAX_DEVICES];    /* exposed ordinal -> APU (shares host memory) */
    size_t va_cache_max;                   /* ranges kept per device (Note [HIP reservation cache]) */
    vs_hip_release_mode release_forced;    /* VRAMSWAP_HIP_RELEASE, else UNKNOWN */
} vs_hip;

/* One address range the backend reserved from the runtime. */
typedef struct vs_hip_range {
    uint64_t base;          /* device address */
    uint64_t size;          /* bytes reserved (>= what the core asked for when reused) */
    uint64_t mapped;        /* bytes mapped in it now */
    uint64_t released;      /* bytes of chunks last mapped here and released while it was held */
    uint64_t cached_seq;    /* 0: the core uses it; else its arrival order in the cache */
} vs_hip_range;

/* A physical chunk: the runtime's handle and where it was last mapped, for
 * Note [HIP stranded memory]. */
struct vs_bphys {
    hipMemGenericAllocationHandle_t handle;
    uint64_t size;          /* bytes */
    uint64_t mapped_in;     /* base of the range it was last mapped in, 0 = never mapped */
};

/* One opened device. */
struct vs_bdev {
    vs_hip *hip;
    int ordinal;                  /* vramswap's ordinal (among exposed devices) */
    int hip_ordinal;              /* the runtime's device ordinal */
    vs_bdev_props props;          /* cached at open */

    /* Address ranges (Note [HIP reservation cache]); `lock` guards this block.
     * It is a leaf lock: held across runtime calls, never while calling the core. */
    pthread_mutex_t lock;
    vs_hip_range *ranges;         /* in use and cached, unordered */
    size_t nranges, cap_ranges;
    size_t ncached;               /* ranges with cached_seq != 0 */
    uint64_t cache_seq;           /* last cached_seq handed out */
    vs_hip_release_mode release;  /* learned or forced (Note [HIP stranded memory]) */
    int probe_returns;            /* release probes that saw the memory come back */
    int probe_strands;            /* ... that did not */
};

/* Note [HIP current device]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * HIP's "current device" is per thread and decides where hipMemGetInfo,
 * hipStreamCreate, stream 0 and the allocation functions act. The core calls
 * from any thread, including threads that never touched HIP (their current
 * device is 0) and torch threads whose device guard chose another device. Each
 * backend function that talks to the runtime enters the device: when it is
 * already current (the common case) this costs one hipGetDevice; otherwise
 * hipSetDevice, and the caller's device is put back afterwards. */
typedef struct vs_hip_scope {
    int prev;                     /* the caller's current device */
    bool switched;                /* we changed it and must restore it */
} vs_hip_scope;

vs_status vs_hip_enter(vs_bdev *dev, vs_hip_scope *scope);
void vs_hip_leave(vs_bdev *dev, const vs_hip_scope *scope);

/* The exposed ordinal of a runtime ordinal, or -1 when it is not exposed. */
int vs_hip_ordinal_of(const vs_hip *hip, int hip_ordinal);

/* The process's runtime (hip_backend.c). */
vs_hip *vs_hip_instance(void);

/* Reservation cache (hip_va.c). */
vs_status vs_hip_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out);
vs_status vs_hip_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size);
/* Record that `chunk` was mapped at va / that [va, va+size) was unmapped. */
void vs_hip_va_note_map(vs_bdev *dev, vs_bphys *chunk, vs_devptr_t va);
void vs_hip_va_note_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size);
/* Release a chunk, measuring the first few releases (Note [HIP stranded memory]). */
hipError_t vs_hip_va_release_chunk(vs_bdev *dev, vs_bphys *chunk);
/* Really free every cached range that holds released memory (all of them when
 * `all`); the number freed. */
size_t vs_hip_va_flush(vs_bdev *dev, bool all);
/* Under pressure (free memory below what cached ranges released), really free
 * those ranges; the number freed (Note [HIP stranded memory]). */
size_t vs_hip_va_relieve(vs_bdev *dev, uint64_t free_bytes);
/* Set up and tear down the per-device state (open / close). */
vs_status vs_hip_va_init(vs_bdev *dev);
void vs_hip_va_fini(vs_bdev *dev);

/* ops (hip_vmm.c, hip_stream.c, hip_intercept.c) */
vs_status vs_hip_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out);
vs_status vs_hip_phys_release(vs_bdev *dev, vs_bphys *chunk);
vs_status vs_hip_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk);
vs_status vs_hip_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_hip_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_hip_host_register(vs_bdev *dev, void *ptr, uint64_t size);
vs_status vs_hip_host_unregister(vs_bdev *dev, void *ptr);

vs_status vs_hip_stream_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_hip_stream_destroy(vs_bdev *dev, uintptr_t stream);
vs_status vs_hip_stream_synchronize(vs_bdev *dev, uintptr_t stream);
vs_status vs_hip_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                            uintptr_t stream);
vs_status vs_hip_event_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_hip_event_destroy(vs_bdev *dev, uintptr_t event);
vs_status vs_hip_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream);
vs_status vs_hip_event_query(vs_bdev *dev, uintptr_t event);
vs_status vs_hip_event_synchronize(vs_bdev *dev, uintptr_t event);
vs_status vs_hip_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event);

vs_status vs_hip_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len);
vs_status vs_hip_intercept_remove(void);

#endif /* VS_HIP_INTERNAL_H */
