/* The CUDA backend's private types: the loaded driver, its devices, the
 * context scope every driver call runs in, and interception.
 *
 * Everything is hidden inside libvramswap. Two objects are process-wide,
 * because there is one libcuda per process and the allocation hooks, called
 * with CUDA's signatures, have no other way to reach them: the driver
 * (vs_cuda, cuda_backend.c) and the interception state (private to
 * cuda_intercept.c). Every other function takes the driver (or a vs_bdev
 * pointing at it) explicitly.
 */
#ifndef VS_CUDA_INTERNAL_H
#define VS_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cuda/cuda_api.h"

/* Devices we can address (CUDA ordinals); more are ignored with a warning. */
#define VS_CUDA_MAX_DEVICES 64

/* Note [CUDA page size]
 * ~~~~~~~~~~~~~~~~~~~~~
 * The preferred VBAR page is the driver's RECOMMENDED granularity, but at least
 * VS_CUDA_PAGE_SIZE_MIN, and 1/256 of the card up to VS_CUDA_PAGE_SIZE_MAX. Measured on an H200 (driver 580, 2026-11-27, vs_bench_micro,
 * docs/runs/2026-11-27-h200-micro*.txt): mapping one evicted 2 MiB page costs
 * 43.5 us (21.7 us per MiB) and one 32 MiB page 59.5 us (1.9 us per MiB); a
 * 128 MiB miss spends 2.1 ms in the driver with 2 MiB pages and 0.29 ms with
 * 32 MiB ones, evicting it 2.16 ms versus 0.22 ms. 32 MiB pages make mapping
 * cost ~10x less per byte than the copy that follows (2.4 ms per 128 MiB at
 * 55 GB/s) instead of nearly equal, at the price of evicting in 32 MiB steps,
 * which is fine on cards of 8 GiB and more. The core's config (page_size)
 * overrides it per device. */
#define VS_CUDA_PAGE_SIZE_MIN (2ull << 20)
#define VS_CUDA_PAGE_SIZE_MAX (32ull << 20)

/* The loaded driver and the devices it exposes to vramswap. Written once by
 * init (before any device can be opened), read-only afterwards except `hooks`. */
typedef struct vs_cuda {
    vs_cuda_lib lib;
    vs_cuda_api api;                       /* Note [CUDA driver table] */
    int driver_version;                    /* cuDriverGetVersion, e.g. 12080 */
    int cuda_count;                        /* devices the driver has */
    int count;                             /* devices exposed (VMM-capable) */
    CUdevice devices[VS_CUDA_MAX_DEVICES]; /* exposed ordinal -> CUdevice */
    int cuda_ordinal[VS_CUDA_MAX_DEVICES]; /* exposed ordinal -> driver ordinal */
} vs_cuda;

/* One opened device. */
struct vs_bdev {
    vs_cuda *cuda;
    int ordinal;                  /* vramswap's ordinal (among exposed devices) */
    CUdevice device;
    CUcontext ctx;                /* the retained primary context */
    vs_bdev_props props;          /* cached at open */
};

/* Note [CUDA context scope]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * The driver needs a current context for most calls and the core calls from any
 * thread, including threads that never touched CUDA or that have another
 * device's context current (torch's device guard). Each backend function that
 * talks to the driver enters the device's primary context and leaves it
 * restored: when it is already current (the common case, torch's thread on
 * that device) this costs one cuCtxGetCurrent; otherwise it is set and the
 * caller's context put back afterwards. */
typedef struct vs_cuda_scope {
    CUcontext prev;               /* the caller's current context */
    bool switched;                /* we changed it and must restore it */
} vs_cuda_scope;

vs_status vs_cuda_enter(vs_bdev *dev, vs_cuda_scope *scope);
void vs_cuda_leave(vs_bdev *dev, const vs_cuda_scope *scope);

/* The exposed ordinal of a driver device, or -1 when it is not exposed. */
int vs_cuda_ordinal_of(const vs_cuda *cuda, CUdevice device);

/* The process's driver (cuda_backend.c). */
vs_cuda *vs_cuda_instance(void);

/* Note [Own calls bypass the hooks] (cuda_intercept.c): the backend's own
 * cuMemCreate/cuMemRelease run with this thread's guard set so that, even in the
 * instant a hook is being installed, they never re-enter the core. */
void vs_cuda_guard_enter(void);
void vs_cuda_guard_leave(void);
/* The table entry of a hooked function, read atomically (install swaps it). */
#define VS_CUDA_HOOKED_ENTRY(cuda, field) __atomic_load_n(&(cuda)->api.field, __ATOMIC_ACQUIRE)

/* ops (cuda_vmm.c, cuda_stream.c, cuda_intercept.c) */
vs_status vs_cuda_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out);
vs_status vs_cuda_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_cuda_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out);
vs_status vs_cuda_phys_release(vs_bdev *dev, vs_bphys *chunk);
vs_status vs_cuda_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk);
vs_status vs_cuda_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_cuda_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size);
vs_status vs_cuda_host_register(vs_bdev *dev, void *ptr, uint64_t size);
vs_status vs_cuda_host_unregister(vs_bdev *dev, void *ptr);

vs_status vs_cuda_stream_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_cuda_stream_destroy(vs_bdev *dev, uintptr_t stream);
vs_status vs_cuda_stream_synchronize(vs_bdev *dev, uintptr_t stream);
vs_status vs_cuda_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                             uintptr_t stream);
vs_status vs_cuda_event_create(vs_bdev *dev, uintptr_t *out);
vs_status vs_cuda_event_destroy(vs_bdev *dev, uintptr_t event);
vs_status vs_cuda_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream);
vs_status vs_cuda_event_query(vs_bdev *dev, uintptr_t event);
vs_status vs_cuda_event_synchronize(vs_bdev *dev, uintptr_t event);
vs_status vs_cuda_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event);

vs_status vs_cuda_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len);
vs_status vs_cuda_intercept_remove(void);

#endif /* VS_CUDA_INTERNAL_H */
