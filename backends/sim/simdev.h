/* simdev: a simulated GPU in host memory, usable without the vramswap core.
 *
 * This is the machine under the "sim" backend (backends/sim/backend.c) and under
 * the driver emulators (a fake libcuda.so.1, libamdhip64.so, a Level Zero
 * driver). It depends on nothing of the core: it only uses the vs_status codes
 * of <vramswap.h> and the vs_sim_config / vs_sim_counters / vs_sim_op types of
 * <vramswap/sim.h>. Link the static library `vs_simdev` (PIC) to use it.
 *
 * The model
 * ---------
 * - Up to SIMDEV_MAX_DEVICES devices live in a process-wide table indexed by
 *   ordinal. A device exists for the whole process (simdev_get never allocates);
 *   the configuration (simdev_configure) decides how many are present and their
 *   sizes. Every function below works on a present device whether or not it is
 *   "open"; opening only pins the configuration and closing the last reference
 *   drains every stream and joins the worker threads.
 * - Device addresses are host addresses. A reservation is a PROT_NONE mapping
 *   (MAP_NORESERVE); a physical chunk is a range of one per-device memfd;
 *   mapping places the chunk at an address of a reservation (still PROT_NONE,
 *   like a fresh CUDA mapping); set_access makes it readable and writable;
 *   unmap puts PROT_NONE anonymous memory back, so touching it faults (SIGSEGV),
 *   as a GPU access to unmapped memory would. New chunks read as zeros; a chunk
 *   keeps its contents across unmap/map (as VRAM does).
 * - Memory accounting: used = live chunk bytes + external usage + simdev_malloc
 *   bytes (rounded up to the granularity). A request that would make
 *   used > total_memory gives VS_ERR_OUT_OF_MEMORY. free = total - used.
 * - Streams are in-order queues; each stream has its own worker thread (started
 *   at its first operation), so a stream blocked on an event or a slow host
 *   function never holds up another stream. Handle 0 is the device's default
 *   stream (an ordinary stream: it does not synchronize with the others).
 * - Copies validate at enqueue AND again when they execute that every device
 *   address they touch is mapped with read/write access; a copy whose memory was
 *   unmapped in between is skipped and its stream reports VS_ERR_INVALID_ARGUMENT
 *   at the next stream/device synchronize (a sticky async error, cleared when
 *   reported). The worker never faults on a bad device address. Unmapping memory
 *   that a copy is executing on waits for that copy to finish.
 * - Fault injection (simdev_inject) per vs_sim_op, in the style of SQLite's
 *   fault simulator: after `skip` good calls, `count` calls fail with `error`.
 *   Injection is consulted after argument validation, so an injected failure
 *   always hits a call that would otherwise have succeeded, and leaves nothing
 *   behind.
 * - Counters (vs_sim_counters): live counts return to zero when everything is
 *   released; totals (calls, copies, bytes_copied, injected_failures) add up
 *   until simdev_reset_totals or simdev_configure. calls[] counts every call
 *   on a present device, valid or not.
 * - Limitations: no peer access between devices; the default stream does not
 *   serialize with other streams (CUDA's legacy default stream does); a child
 *   process forked while workers run cannot use the simulator (like a GPU
 *   driver); worker threads started on a device that is never opened live
 *   until the process exits.
 *
 * Handles
 * -------
 * Physical chunks, streams and events are 64-bit handles (simdev_handle), never
 * pointers: [63..60 kind][59..56 ordinal][55..32 generation][31..0 slot]. A
 * released handle, a handle of another kind or of another device is rejected
 * with VS_ERR_INVALID_HANDLE, never a crash. simdev_handle_ordinal() tells which
 * device a handle belongs to (drivers like CUDA pass streams without a device).
 *
 * Return codes
 * ------------
 * VS_OK; VS_ERR_INVALID_ARGUMENT (bad size/alignment/address/range, unmapping
 * something not mapped, double free...); VS_ERR_INVALID_HANDLE (bad device
 * pointer or handle); VS_ERR_BUSY (resource in use: freeing a reservation with
 * live mappings, overlapping host registration, configure while open);
 * VS_ERR_OUT_OF_MEMORY; VS_ERR_NOT_READY (query of pending work); VS_ERR_NO_DEVICE
 * (ordinal not present); VS_ERR_BACKEND (the OS refused: mmap, memfd...). Any of
 * them may also come from injection. On failure simdev_last_error() describes
 * the reason (like a driver's last-error string).
 *
 * Threads and locks (Note [simdev locks])
 * ---------------------------------------
 * Every function is thread-safe. Each device has one mutex that guards all of its
 * state (tables, queues, counters, injection); stream workers take it to pop an
 * operation and release it while copying or running a host function. One
 * process-wide mutex guards the configuration. Order: configuration lock ->
 * device lock (ascending ordinal when several). simdev never calls out while
 * holding a lock, except the OS; host functions (simdev_launch_host_fn) run on a
 * worker with no lock held and may call simdev, but must not synchronize their
 * own stream.
 */
#ifndef VRAMSWAP_SIMDEV_H
#define VRAMSWAP_SIMDEV_H

#include <stddef.h>
#include <stdint.h>

#include <vramswap.h>
#include <vramswap/sim.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIMDEV_MAX_DEVICES 16

typedef struct simdev simdev_t;   /* one simulated GPU (an entry of the process table) */
typedef uint64_t simdev_handle;   /* chunk, stream or event; see "Handles" above */

/* ---------------------------------------------------------------- configuration */

/* Built-in defaults: 1 device, 1 GiB, 64 KiB granularity, 256 KiB preferred
 * page, unthrottled copies, discrete. Reads no environment. */
vs_status simdev_config_default(vs_sim_config *cfg);
/* Apply a spec such as "devices:2,memory:512M,granularity:64K,page:256K,
 * bandwidth:10G,integrated:1" on top of *cfg. Sizes take K/M/G/T suffixes
 * (binary: 1K = 1024); bandwidth is bytes per second with the same suffixes.
 * NULL or "" changes nothing. VS_ERR_INVALID_ARGUMENT (cfg unchanged) for an
 * unknown key or bad value. */
vs_status simdev_config_parse(vs_sim_config *cfg, const char *spec);
/* VS_OK if the configuration is usable: 0..16 devices, granularity a power of
 * two and a multiple of the OS page, total_memory and preferred_page_size
 * non-zero multiples of the granularity. */
vs_status simdev_config_check(const vs_sim_config *cfg);
/* Install a configuration. VS_ERR_BUSY if any device is open or still holds
 * anything (reservations, chunks, registrations, streams, events, allocations,
 * external usage). Resets every device's totals and injections. */
vs_status simdev_configure(const vs_sim_config *cfg);
vs_status simdev_get_config(vs_sim_config *cfg);
/* 1 once simdev_configure succeeded (a layer above uses this to apply its
 * environment default only when nobody configured explicitly). */
int simdev_is_configured(void);
/* Devices present under the current configuration. */
int simdev_device_count(void);

/* Thread-local description of the last failure of a simdev call on this thread
 * ("" if none yet). Never NULL. */
const char *simdev_last_error(void);

/* ---------------------------------------------------------------- devices */

/* The device of `ordinal` without opening it. VS_ERR_NO_DEVICE if not present. */
vs_status simdev_get(int ordinal, simdev_t **out);
/* Take a reference (the configuration cannot change while any is held). */
vs_status simdev_open(int ordinal, simdev_t **out);
/* Drop a reference. The last one waits for every stream to drain and joins the
 * worker threads; objects still alive stay (and show in the counters) and their
 * streams restart on next use. VS_ERR_INVALID_HANDLE if not open. */
vs_status simdev_close(simdev_t *dev);
int simdev_ordinal(const simdev_t *dev);   /* -1 for an invalid pointer */

typedef struct simdev_props {
    char name[64];                 /* "vramswap simulated GPU <ordinal>" */
    int ordinal;
    int integrated;                /* 1: reports an integrated GPU */
    uint64_t total_memory;         /* bytes */
    uint64_t granularity;          /* bytes; mapping unit */
    uint64_t preferred_page_size;  /* bytes */
    uint64_t copy_bandwidth;       /* bytes/s; 0 = unthrottled */
} simdev_props;

vs_status simdev_get_props(simdev_t *dev, simdev_props *out);
/* free = total - (chunks + external usage + allocations); never negative. */
vs_status simdev_mem_info(simdev_t *dev, uint64_t *free_bytes, uint64_t *total_bytes);
/* Pretend something else uses `bytes` (replaces the previous value).
 * VS_ERR_OUT_OF_MEMORY (unchanged) if it does not fit beside what is in use. */
vs_status simdev_set_external_usage(simdev_t *dev, uint64_t bytes);

vs_status simdev_get_counters(simdev_t *dev, vs_sim_counters *out);
/* Zero the totals (calls, copies, bytes_copied, injected_failures). */
vs_status simdev_reset_totals(simdev_t *dev);

/* After `skip` successful-looking calls of `op`, fail `count` calls with `error`
 * (any status other than VS_OK and VS_NOT_RESIDENT). count 0 disarms `op`. */
vs_status simdev_inject(simdev_t *dev, int op, uint32_t skip, uint32_t count, vs_status error);
vs_status simdev_inject_clear(simdev_t *dev);

/* ---------------------------------------------------------------- virtual memory */

/* Reserve `size` bytes aligned to `align` (0 = granularity); both multiples of
 * the granularity. The range is inaccessible until mapped. */
vs_status simdev_va_reserve(simdev_t *dev, uint64_t size, uint64_t align, uint64_t *va);
/* Free a whole reservation (va and size exactly as reserved). VS_ERR_BUSY if
 * anything is still mapped in it. */
vs_status simdev_va_free(simdev_t *dev, uint64_t va, uint64_t size);

/* Create a physical chunk of `size` bytes (granularity multiple) of device memory. */
vs_status simdev_phys_create(simdev_t *dev, uint64_t size, simdev_handle *out);
/* Release the handle. As with cuMemRelease, memory still mapped stays usable and
 * counted until its last mapping is unmapped. */
vs_status simdev_phys_release(simdev_t *dev, simdev_handle chunk);

/* Map [offset, offset+size) of `chunk` at va. va must lie in one reservation
 * with every granule of the range unmapped; va, size and offset are granularity
 * multiples. The mapping starts with no access. */
vs_status simdev_map(simdev_t *dev, uint64_t va, uint64_t size, simdev_handle chunk,
                     uint64_t offset);

#define SIMDEV_ACCESS_NONE 0
#define SIMDEV_ACCESS_RW 3
/* Set the access of a fully mapped range (granularity multiples). */
vs_status simdev_set_access(simdev_t *dev, uint64_t va, uint64_t size, int access);
/* Unmap every mapping in [va, va+size). The range must consist of whole
 * mappings and contain at least one; unmapped holes inside it are allowed.
 * Waits for copies executing on it. */
vs_status simdev_unmap(simdev_t *dev, uint64_t va, uint64_t size);

#define SIMDEV_RANGE_RESERVED 1    /* a reservation (simdev_va_reserve) */
#define SIMDEV_RANGE_ALLOCATION 2  /* an allocation (simdev_malloc) */
/* Which reservation or allocation contains ptr: its base, size and kind
 * (any out-pointer may be NULL). VS_ERR_INVALID_ARGUMENT if none. */
vs_status simdev_find_range(simdev_t *dev, uint64_t ptr, uint64_t *base, uint64_t *size,
                            int *kind);
/* VS_OK if [ptr, ptr+size) is device memory of this device that is mapped with
 * read/write access (an allocation, or mapped granules of a reservation). */
vs_status simdev_check_access(simdev_t *dev, uint64_t ptr, uint64_t size);

/* ---------------------------------------------------------------- allocations */

/* cuMemAlloc-like: reserve and back a fresh read/write region of `size` bytes
 * (accounted rounded up to the granularity, as external usage). */
vs_status simdev_malloc(simdev_t *dev, uint64_t size, uint64_t *ptr);
/* Free an allocation by its base address. VS_ERR_INVALID_ARGUMENT for anything
 * else (unknown pointer, double free). First waits for every queued or running
 * copy/memset that touches it (like cuMemFree's implicit synchronization), so
 * a later allocation at the same address never receives a stale copy. */
vs_status simdev_free(simdev_t *dev, uint64_t ptr);

/* ---------------------------------------------------------------- host memory */

/* Record [ptr, ptr+size) as page-locked for this device (no mlock is done:
 * registration is validated and counted, and copies from it run at full
 * bandwidth). VS_ERR_BUSY if it overlaps a registered range. */
vs_status simdev_host_register(simdev_t *dev, void *ptr, uint64_t size);
/* ptr must be the start of a registered range. */
vs_status simdev_host_unregister(simdev_t *dev, void *ptr);
/* VS_OK if [ptr, ptr+size) lies inside one registered range. */
vs_status simdev_host_is_registered(simdev_t *dev, const void *ptr, uint64_t size);

/* ---------------------------------------------------------------- streams */

vs_status simdev_stream_create(simdev_t *dev, simdev_handle *out);
/* Waits for the stream's work, then destroys it (events recorded on it count
 * as complete afterwards). The default stream (0) cannot be destroyed. */
vs_status simdev_stream_destroy(simdev_t *dev, simdev_handle stream);
/* Wait for everything enqueued so far; returns (and clears) the stream's
 * async error if a copy failed. */
vs_status simdev_stream_synchronize(simdev_t *dev, simdev_handle stream);
/* VS_OK if idle, VS_ERR_NOT_READY if work is pending. */
vs_status simdev_stream_query(simdev_t *dev, simdev_handle stream);
/* Wait for every stream of the device (cuCtxSynchronize); returns the first
 * async error found (clearing every stream's). */
vs_status simdev_synchronize(simdev_t *dev);

/* Copy `size` bytes in stream order. kind is vs_copy_kind. Device sides must be
 * mapped read/write on this device (allocation or reservation); a host side that
 * lies in device memory of this device is checked the same way. With a
 * copy_bandwidth, copies take size/bandwidth (one engine per direction, shared
 * by all streams); pageable host memory (not registered) runs at a quarter. */
vs_status simdev_copy_async(simdev_t *dev, int kind, uint64_t dst, uint64_t src, uint64_t size,
                            simdev_handle stream);
/* Fill device memory with a byte value in stream order. */
vs_status simdev_memset_async(simdev_t *dev, uint64_t dst, uint8_t value, uint64_t size,
                              simdev_handle stream);
/* Run fn(arg) on the stream's worker when the stream reaches this point (a
 * stand-in for a kernel or cuLaunchHostFunc). */
vs_status simdev_launch_host_fn(simdev_t *dev, simdev_handle stream, void (*fn)(void *),
                                void *arg);

/* ---------------------------------------------------------------- events */

vs_status simdev_event_create(simdev_t *dev, simdev_handle *out);
vs_status simdev_event_destroy(simdev_t *dev, simdev_handle event);
/* Mark the current end of `stream`; re-recording moves the event to the new
 * point. */
vs_status simdev_event_record(simdev_t *dev, simdev_handle event, simdev_handle stream);
/* VS_OK once the stream passed the recorded point (or never recorded),
 * VS_ERR_NOT_READY before. */
vs_status simdev_event_query(simdev_t *dev, simdev_handle event);
vs_status simdev_event_synchronize(simdev_t *dev, simdev_handle event);
/* Later work of `stream` waits until the event's current recorded point has
 * completed (a never-recorded event: no wait). The event must belong to the
 * same device. */
vs_status simdev_stream_wait_event(simdev_t *dev, simdev_handle stream, simdev_handle event);
/* Nanoseconds between the completion of two recorded events;
 * VS_ERR_NOT_READY if either has not completed. */
vs_status simdev_event_elapsed_ns(simdev_t *dev, simdev_handle start, simdev_handle end,
                                  uint64_t *ns);

/* ---------------------------------------------------------------- handles */

/* The ordinal a chunk/stream/event handle was created on, or -1 if `h` is not
 * shaped like a simdev handle (0, the default stream, gives -1). */
int simdev_handle_ordinal(simdev_handle h);

#ifdef __cplusplus
}
#endif
#endif /* VRAMSWAP_SIMDEV_H */
