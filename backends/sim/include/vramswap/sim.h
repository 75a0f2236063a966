/* The simulated device: a GPU in host memory, the reference backend ("sim").
 *
 * Device memory is ordinary host address space: a reservation is an inaccessible
 * mapping, a physical chunk is a shared-memory object, mapping makes the range
 * readable and writable, unmapping makes touching it fault (SIGSEGV) as a GPU
 * access to unmapped memory would. Device addresses are therefore host pointers
 * and a mapped range can be read by the CPU. Copies run asynchronously on a
 * worker thread, in stream order, with events.
 *
 * These functions configure it, inject failures and read its counters. They
 * address sim devices by ordinal and work whether or not a vs_device_t is open.
 */
#ifndef VRAMSWAP_SIM_H
#define VRAMSWAP_SIM_H

#include <vramswap.h>  /* core/include in the tree, <prefix>/include installed */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vs_sim_config {
    int device_count;              /* default 1 (max 16) */
    int integrated;                /* report an integrated GPU (default 0) */
    uint64_t total_memory;         /* per device, default 1 GiB */
    uint64_t granularity;          /* mapping granularity, default 64 KiB (multiple of the OS page) */
    uint64_t preferred_page_size;  /* default 256 KiB */
    uint64_t copy_bandwidth;       /* bytes/s the copy engine is throttled to; 0 = memcpy speed */
} vs_sim_config;

/* Defaults, then the VRAMSWAP_SIM environment variable
 * ("devices:2,memory:512M,granularity:64K,page:256K,bandwidth:10G,integrated:1"). */
VS_API vs_status vs_sim_config_default(vs_sim_config *cfg);
/* Applies to devices opened afterwards. VS_ERR_BUSY while a sim device is open;
 * VS_ERR_INVALID_ARGUMENT for a bad value. */
VS_API vs_status vs_sim_configure(const vs_sim_config *cfg);
VS_API vs_status vs_sim_get_config(vs_sim_config *cfg);

typedef enum vs_sim_op {
    VS_SIM_OP_VA_RESERVE = 0,
    VS_SIM_OP_VA_FREE,
    VS_SIM_OP_PHYS_CREATE,
    VS_SIM_OP_PHYS_RELEASE,
    VS_SIM_OP_MAP,
    VS_SIM_OP_SET_ACCESS,
    VS_SIM_OP_UNMAP,
    VS_SIM_OP_HOST_REGISTER,
    VS_SIM_OP_COPY,
    VS_SIM_OP_MEM_INFO,
    VS_SIM_OP_STREAM_CREATE,
    VS_SIM_OP_EVENT_CREATE,
    VS_SIM_OP_ALLOC,               /* vs_sim_malloc */
    VS_SIM_OP_COUNT_
} vs_sim_op;

/* Fault injection in the style of SQLite's fault simulator: let the next `skip`
 * calls of `op` on device `ordinal` succeed, then fail the following `count`
 * calls with `error` (VS_ERR_OUT_OF_MEMORY, VS_ERR_NOT_READY for a transient
 * failure, VS_ERR_BACKEND...). count 0 disarms. */
VS_API vs_status vs_sim_inject(int ordinal, int op, uint32_t skip, uint32_t count, vs_status error);
/* Disarm every injection on the device. */
VS_API vs_status vs_sim_inject_clear(int ordinal);

typedef struct vs_sim_counters {
    uint64_t reservations, reserved_bytes;            /* live */
    uint64_t phys_chunks, phys_bytes;                 /* live physical memory */
    uint64_t mapped_bytes;                            /* live mappings */
    uint64_t host_registrations, host_registered_bytes;
    uint64_t streams, events;                         /* live */
    uint64_t external_bytes;                          /* vs_sim_set_external_usage + vs_sim_malloc */
    uint64_t copies, bytes_copied;                    /* totals */
    uint64_t calls[VS_SIM_OP_COUNT_];                 /* calls per op (totals) */
    uint64_t injected_failures;                       /* totals */
} vs_sim_counters;

/* Counters of device `ordinal`; they outlive vs_device_close so a test can check
 * that teardown returned everything. */
VS_API vs_status vs_sim_get_counters(int ordinal, vs_sim_counters *out);

/* Pretend something else in the process (or another process) uses `bytes` of the
 * device: lowers the free memory the device reports; VS_ERR_OUT_OF_MEMORY if it
 * does not fit. */
VS_API vs_status vs_sim_set_external_usage(int ordinal, uint64_t bytes);

/* The simulator's own allocation entry points, standing in for cuMemAlloc/
 * cuMemFree: they go through interception when it is installed for "sim" (the
 * core is told before and after, and a limit can refuse them), so interception
 * logic is testable without patching code. */
VS_API vs_status vs_sim_malloc(int ordinal, uint64_t size, uintptr_t *ptr);
VS_API vs_status vs_sim_free(int ordinal, uintptr_t ptr);

#ifdef __cplusplus
}
#endif
#endif /* VRAMSWAP_SIM_H */
