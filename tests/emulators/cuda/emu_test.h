/* Helpers shared by the CUDA emulator tests: shape the emulated devices, reach
 * the emulator's own functions (the very code the backend calls and the hooks
 * patch) and check that teardown gave everything back.
 *
 * Every Criterion test runs in its own process, so each one starts with a fresh
 * libvramswap, CUDA backend and emulator; a test that needs another shape or
 * knob calls et_setup() before its first vramswap call.
 */
#ifndef VS_EMU_TEST_H
#define VS_EMU_TEST_H

#include <stdint.h>

#include <cuda.h>
#include <criterion/criterion.h>

#include "harness.h"
#include "vramswap.h"
#include "vramswap/sim.h"

#define ET_MIB ((uint64_t)1 << 20)
/* The default emulated device: 64 MiB, 64 KiB granularity, 2 MiB recommended
 * granularity, so the backend's preferred page is 2 MiB and the device holds
 * 32 pages. */
#define ET_SIM_DEFAULT "memory:64M,granularity:64K,page:2M"
#define ET_PAGE (2 * ET_MIB)

/* The emulator's entry points, taken with dlsym from the loaded libcuda.so.1. */
typedef struct et_emu {
    void *lib;
    CUresult (*Init)(unsigned int);
    CUresult (*DevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*DevicePrimaryCtxRelease)(CUdevice);
    CUresult (*CtxSetCurrent)(CUcontext);
    CUresult (*CtxGetCurrent)(CUcontext *);
    CUresult (*MemAlloc)(CUdeviceptr *, size_t);
    CUresult (*MemFree)(CUdeviceptr);
    CUresult (*MemAllocAsync)(CUdeviceptr *, size_t, CUstream);
    CUresult (*MemFreeAsync)(CUdeviceptr, CUstream);
    CUresult (*MemAllocAsync_ptsz)(CUdeviceptr *, size_t, CUstream);
    CUresult (*MemFreeAsync_ptsz)(CUdeviceptr, CUstream);
    CUresult (*MemAllocFromPoolAsync)(CUdeviceptr *, size_t, CUmemoryPool, CUstream);
    CUresult (*MemCreate)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                          unsigned long long);
    CUresult (*MemRelease)(CUmemGenericAllocationHandle);
    CUresult (*GetProcAddress_v2)(const char *, void **, int, cuuint64_t,
                                  CUdriverProcAddressQueryResult *);
    CUresult (*inject)(int op, uint32_t skip, uint32_t count, CUresult error);
    CUresult (*inject_clear)(void);
    uint64_t (*calls)(int op);
    uint64_t (*ptsz_calls)(void);
    CUresult (*counters)(int ordinal, vs_sim_counters *out);
} et_emu;

/* Set the emulated devices (VRAMSWAP_SIM; NULL = ET_SIM_DEFAULT) and emulator
 * knobs (VRAMSWAP_EMU_CUDA; NULL = none). Call before any vramswap call. */
void et_setup(const char *sim_spec, const char *emu_spec);
/* The Criterion suite .init: et_setup(NULL, NULL). */
void et_init(void);
/* Load (or find) the emulator named by VRAMSWAP_LIBCUDA and its functions (asserts). */
et_emu *et_emu_get(void);
/* Index of the "cuda" backend in the registry (asserts it is compiled in). */
size_t et_cuda_index(void);
/* Open CUDA device `ordinal` with headroom 0, mem_poll_ns 0 and the given
 * flags, limit and page size (0 = defaults). Asserts success. */
vs_device_t *et_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size);
/* Make the primary context of `ordinal` current on this thread (retained once;
 * released by et_release_ctx) -- what torch does before allocating. */
void et_use_ctx(int ordinal);
void et_release_ctx(int ordinal);
/* Assert the emulated device's live objects are all gone. */
void et_assert_clean(int ordinal);

#endif /* VS_EMU_TEST_H */
