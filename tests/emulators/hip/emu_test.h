/* Helpers shared by the HIP emulator tests: shape the emulated devices, reach
 * the emulator's own functions (the very code the backend calls and the hooks
 * patch) and check that teardown gave everything back.
 *
 * Every Criterion test runs in its own process, so each one starts with a fresh
 * libvramswap, HIP backend and emulator; a test that needs another shape or
 * knob calls ht_setup() before its first vramswap call.
 */
#ifndef VS_HIP_EMU_TEST_H
#define VS_HIP_EMU_TEST_H

#include <stdint.h>

#include <hip/hip_runtime_api.h>
#include <criterion/criterion.h>

#include "harness.h"
#include "vramswap.h"
#include "vramswap/sim.h"

#define HT_MIB ((uint64_t)1 << 20)
/* The default emulated device: 64 MiB, 64 KiB granularity, 2 MiB recommended
 * granularity, so the backend's preferred page is 2 MiB and the device holds
 * 32 pages. */
#define HT_SIM_DEFAULT "memory:64M,granularity:64K,page:2M"
#define HT_PAGE (2 * HT_MIB)

/* The emulator's entry points, taken with dlsym from the loaded libamdhip64. */
typedef struct ht_emu {
    void *lib;
    hipError_t (*Init)(unsigned int);
    hipError_t (*SetDevice)(int);
    hipError_t (*GetDevice)(int *);
    hipError_t (*MemGetInfo)(size_t *, size_t *);
    hipError_t (*Malloc)(void **, size_t);
    hipError_t (*Free)(void *);
    hipError_t (*ExtMallocWithFlags)(void **, size_t, unsigned int);
    hipError_t (*MallocAsync)(void **, size_t, hipStream_t);
    hipError_t (*FreeAsync)(void *, hipStream_t);
    hipError_t (*inject)(int op, uint32_t skip, uint32_t count, hipError_t error);
    hipError_t (*inject_clear)(void);
    uint64_t (*calls)(int op);
    hipError_t (*counters)(int ordinal, vs_sim_counters *out);
} ht_emu;

/* Set the emulated devices (VRAMSWAP_SIM; NULL = HT_SIM_DEFAULT) and emulator
 * knobs (VRAMSWAP_EMU_HIP; NULL = none), and clear the backend's knobs. Call
 * before any vramswap call. */
void ht_setup(const char *sim_spec, const char *emu_spec);
/* The Criterion suite .init: ht_setup(NULL, NULL). */
void ht_init(void);
/* Load (or find) the emulator named by VRAMSWAP_LIBHIP and its functions (asserts). */
ht_emu *ht_emu_get(void);
/* Index of the "hip" backend in the registry (asserts it is compiled in). */
size_t ht_hip_index(void);
vs_backend_info ht_hip_info(void);
/* Open HIP device `ordinal` with headroom 0, mem_poll_ns 0 and the given
 * flags, limit and page size (0 = defaults). Asserts success. */
vs_device_t *ht_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size);
/* Free bytes of a device as the emulated runtime reports them. */
uint64_t ht_free_bytes(int ordinal);
/* hipMemAddressReserve calls so far. */
uint64_t ht_reserve_calls(void);
/* Assert the emulated device's live objects are all gone. */
void ht_assert_clean(int ordinal);

#endif /* VS_HIP_EMU_TEST_H */
