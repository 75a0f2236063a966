/* The HIP runtime emulator: a libamdhip64.so for CI machines without an AMD GPU.
 *
 * It implements the subset of the HIP runtime API that vramswap's HIP backend
 * and its tests use, on the simulated device (backends/sim/simdev.h): device
 * addresses are host addresses, VMM reservations/chunks/mappings are simdev's,
 * streams and events are simdev handles, copies really copy (asynchronously, on
 * simdev's stream workers). The HIP backend loads it exactly as it loads the
 * real runtime (dlopen + dlsym), and the hook engine patches its real exported
 * allocation functions.
 *
 * Configuration (read at the first call, as HIP initializes implicitly)
 * - VRAMSWAP_SIM: the simulated devices (simdev_config_parse syntax:
 *   "devices:2,memory:512M,granularity:2M,page:2M"), unless simdev was
 *   configured already.
 * - VRAMSWAP_EMU_HIP: emulator knobs, comma separated:
 *     vmm:<mask>       devices whose bit is set report VMM support (default all)
 *     vmmattr:unknown  hipDeviceGetAttribute does not know the VMM attribute
 *                      (hipErrorInvalidValue), as runtimes before it existed
 *     init:<code>      every call fails with this hipError_t (default 0)
 *     runtime:<ver>    hipRuntimeGetVersion (default 60400000, "6.4")
 *     align:reject     hipMemAddressReserve refuses an explicit alignment
 *                      (hipErrorInvalidValue) but aligns default reservations
 *                      to the recommended granularity, as some stacks do
 *     strand:1         hipMemRelease keeps the memory of a chunk whose last
 *                      reservation is still reserved until hipMemAddressFree
 *                      of that reservation (the ROCm bug of Note [HIP
 *                      stranded memory] in backends/hip/hip_va.c)
 *
 * Test-only exports (looked up with dlsym; declared below; the same names and
 * signatures as the CUDA emulator's, hipError_t in place of CUresult, both 0
 * on success):
 *   vsemu_inject   fault injection per vs_sim_op, with a hipError_t
 *   vsemu_inject_clear, vsemu_calls, vsemu_counters
 * vsemu_calls(VS_SIM_OP_VA_RESERVE) counts hipMemAddressReserve calls.
 *
 * Devices: HIP's current device is per thread and starts at 0 on every thread
 * (hipSetDevice / hipGetDevice). Every simulated device is opened at
 * initialization and stays open for the life of the process.
 *
 * Limitations (by design): no kernels, no pools (hipMallocAsync allocates at
 * once and hipFreeAsync waits for its stream), a chunk can only be mapped in a
 * reservation of its own device, peer access is refused, hipMemcpyAsync with
 * hipMemcpyDefault is not supported.
 */
#ifndef VS_EMU_HIP_H
#define VS_EMU_HIP_H

#include <stdint.h>

#include <hip/hip_runtime_api.h>

#include "simdev.h"

#define EMU_API __attribute__((visibility("default")))

/* The attribute the 5.2 headers lack (Note [HIP VMM attribute] in
 * backends/hip/hip_internal.h). */
#define EMU_ATTR_VMM_SUPPORTED ((hipDeviceAttribute_t)89)

/* ---------------------------------------------------------------- test-only API */

/* After `skip` good calls of `op` (vs_sim_op; VS_SIM_OP_ALLOC covers every
 * allocation entry point), fail `count` calls with `error`, on any device.
 * count 0 disarms. hipErrorInvalidValue for a bad op. */
EMU_API hipError_t vsemu_inject(int op, uint32_t skip, uint32_t count, hipError_t error);
EMU_API hipError_t vsemu_inject_clear(void);
/* Calls of an op's entry points that passed validation (injected ones included). */
EMU_API uint64_t vsemu_calls(int op);
/* simdev's counters of device `ordinal` (live objects, totals). */
EMU_API hipError_t vsemu_counters(int ordinal, vs_sim_counters *out);

/* ---------------------------------------------------------------- internals */

/* Initialize on first use (knobs, simdev); hipSuccess or the init error. */
hipError_t emu_ready(void);
/* The device of an ordinal (after emu_ready). */
hipError_t emu_device(int ordinal, simdev_t **sd);
/* The calling thread's current device. */
hipError_t emu_current(simdev_t **sd, int *ordinal);
/* Number of devices (after emu_ready). */
int emu_device_count(void);
/* The device owning a device address (reservation or allocation), -1 if none. */
int emu_owner(uint64_t ptr, int kind);
/* Count a call of `op` and apply injection: hipSuccess or the injected error. */
hipError_t emu_injected(int op);
/* simdev status -> hipError_t. */
hipError_t emu_result(vs_status st);
/* The stream's device and simdev handle (0 and hipStreamPerThread: the current
 * device's default stream). */
hipError_t emu_stream(hipStream_t s, simdev_t **sd, simdev_handle *h);
/* Knobs. */
int emu_has_vmm(int ordinal);
int emu_vmm_attr_unknown(void);
int emu_strands(void);
int emu_align_reject(void);
int emu_runtime_version(void);

#endif /* VS_EMU_HIP_H */
