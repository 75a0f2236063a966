/* The CUDA driver emulator: a libcuda.so.1 for CI machines without a GPU.
 *
 * It implements the subset of the CUDA driver API that vramswap's CUDA backend
 * and its tests use, on the simulated device (backends/sim/simdev.h): device
 * addresses are host addresses, VMM reservations/chunks/mappings are simdev's,
 * streams and events are simdev handles, copies really copy (asynchronously, on
 * simdev's stream workers). The CUDA backend loads it exactly as it loads the
 * real driver (dlopen + cuGetProcAddress_v2), and the hook engine patches its
 * real exported allocation functions.
 *
 * Configuration (read at cuInit)
 * - VRAMSWAP_SIM: the simulated devices (simdev_config_parse syntax:
 *   "devices:2,memory:512M,granularity:2M,page:2M"), unless simdev was
 *   configured already.
 * - VRAMSWAP_EMU_CUDA: emulator knobs, comma separated:
 *     vmm:<mask>     devices whose bit is set report VMM support (default all)
 *     driver:<ver>   cuDriverGetVersion, and entry points newer than it are not
 *                    found by cuGetProcAddress (default 13000)
 *     init:<code>    cuInit fails with this CUresult (default 0)
 *     ptsz:alias     cuGetProcAddress returns the plain function for the
 *                    per-thread variants (default: distinct _ptsz functions)
 *
 * Test-only exports (looked up with dlsym; declared below):
 *   vsemu_inject   fault injection per vs_sim_op, with a CUresult
 *   vsemu_inject_clear, vsemu_calls, vsemu_ptsz_calls, vsemu_counters
 *
 * Contexts: one primary context per device (a CUcontext points into a static
 * table), a per-thread stack of current contexts. A released primary context
 * (retain count 0) is unusable until retained again.
 *
 * Limitations (by design): no kernels, no pools (cuMemAllocFromPoolAsync
 * ignores its pool), stream-ordered allocations are not stream ordered, a
 * chunk can only be mapped in a reservation of its own device, peer access is
 * refused.
 */
#ifndef VS_EMU_CUDA_H
#define VS_EMU_CUDA_H

#include <stdint.h>

#include <cuda.h>

#include "simdev.h"

#define EMU_API __attribute__((visibility("default")))

/* ---------------------------------------------------------------- test-only API */

/* After `skip` good calls of `op` (vs_sim_op; VS_SIM_OP_ALLOC covers every
 * cuMemAlloc* entry point), fail `count` calls with `error`, on any device.
 * count 0 disarms. Returns CUDA_ERROR_INVALID_VALUE for a bad op. */
EMU_API CUresult vsemu_inject(int op, uint32_t skip, uint32_t count, CUresult error);
EMU_API CUresult vsemu_inject_clear(void);
/* Calls of an op's entry points that passed validation (injected ones included). */
EMU_API uint64_t vsemu_calls(int op);
/* Calls of the _ptsz allocation entry points. */
EMU_API uint64_t vsemu_ptsz_calls(void);
/* simdev's counters of device `ordinal` (live objects, totals). */
EMU_API CUresult vsemu_counters(int ordinal, vs_sim_counters *out);

/* Entry points cuda.h does not declare in this configuration (it renames
 * cuGetProcAddress to the _v2 form; the emulator exports both). */
#undef cuGetProcAddress
EMU_API CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                  cuuint64_t flags);
EMU_API CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytesize, CUstream hStream);
EMU_API CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
EMU_API CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytesize,
                                              CUmemoryPool pool, CUstream hStream);

/* ---------------------------------------------------------------- internals */

/* A primary context. */
typedef struct emu_ctx {
    int ordinal;
    int retains;          /* cuDevicePrimaryCtxRetain count (atomic) */
    simdev_t *sd;         /* the simulated device */
} emu_ctx;

/* cuInit has run successfully. */
int emu_initialized(void);
/* CUDA_SUCCESS and the device for a device ordinal (after cuInit). */
CUresult emu_device(int ordinal, simdev_t **sd);
/* The calling thread's current context, if retained. */
CUresult emu_current(emu_ctx **ctx);
/* The device owning a device address (reservation or allocation), -1 if none. */
int emu_owner(uint64_t ptr, int kind);
/* Count a call of `op` and apply injection: CUDA_SUCCESS or the injected error. */
CUresult emu_injected(int op);
/* simdev status -> CUresult. */
CUresult emu_result(vs_status st);
/* The stream's device and simdev handle (0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD:
 * the current context's default stream). */
CUresult emu_stream(CUstream s, simdev_t **sd, simdev_handle *h);
/* Knobs. */
int emu_driver_version(void);
int emu_has_vmm(int ordinal);
int emu_ptsz_alias(void);

#endif /* VS_EMU_CUDA_H */
