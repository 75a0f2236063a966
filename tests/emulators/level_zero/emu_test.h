/* Helpers shared by the Level Zero emulator tests: shape the emulated
 * devices, reach the loader's exports (what an application calls) and the
 * emulator's test-only functions, act as an application with its own context,
 * and check that teardown gave everything back.
 *
 * The tests run as on an Intel machine: libvramswap's Level Zero backend opens
 * Debian's real loader ($VRAMSWAP_LIBZE, else libze_loader.so.1), and the
 * loader loads the emulator as its GPU driver ($ZE_ENABLE_ALT_DRIVERS, set by
 * ctest). Every Criterion test runs in its own process, so each one starts
 * with a fresh loader, backend and emulator; a test that needs another shape
 * or knob calls zt_setup() before its first vramswap call.
 */
#ifndef VS_EMU_ZE_TEST_H
#define VS_EMU_ZE_TEST_H

#include <stdint.h>

#include <criterion/criterion.h>
#include <level_zero/ze_api.h>
#include <level_zero/ze_ddi.h>

#include "emu_ze.h"
#include "harness.h"
#include "vramswap.h"
#include "vramswap/sim.h"

#define ZT_MIB ((uint64_t)1 << 20)
/* The default emulated device: 64 MiB, 64 KiB granularity, 2 MiB large page.
 * The driver answers 2 MiB for allocations of 2 MiB and more, so the backend's
 * granularity and preferred page are 2 MiB and the device holds 32 pages. */
#define ZT_SIM_DEFAULT "memory:64M,granularity:64K,page:2M"
#define ZT_PAGE (2 * ZT_MIB)

/* The loader's exports and the emulator's test-only functions. */
typedef struct zt_emu {
    void *loader;                   /* the loader library the backend uses */
    void *driver;                   /* the emulator, as loaded by the loader */
    __typeof__(zeInit) *Init;
    __typeof__(zeDriverGet) *DriverGet;
    __typeof__(zeDeviceGet) *DeviceGet;
    __typeof__(zeContextCreate) *ContextCreate;
    __typeof__(zeContextDestroy) *ContextDestroy;
    __typeof__(zeMemAllocDevice) *MemAllocDevice;
    __typeof__(zeMemAllocShared) *MemAllocShared;
    __typeof__(zeMemAllocHost) *MemAllocHost;
    __typeof__(zeMemFree) *MemFree;
    __typeof__(zeMemFreeExt) *MemFreeExt;
    __typeof__(zePhysicalMemCreate) *PhysicalMemCreate;
    __typeof__(zePhysicalMemDestroy) *PhysicalMemDestroy;
    __typeof__(zeGetMemProcAddrTable) *GetMemProcAddrTable;
    __typeof__(vsze_inject) *inject;
    __typeof__(vsze_inject_clear) *inject_clear;
    __typeof__(vsze_calls) *calls;
    __typeof__(vsze_counters) *counters;
    __typeof__(vsze_objects) *objects;
    __typeof__(vsze_external_usage) *external_usage;
} zt_emu;

/* An application's own view of device `ordinal`: its context, like SYCL's. */
typedef struct zt_app {
    ze_driver_handle_t driver;
    ze_device_handle_t device;
    ze_context_handle_t ctx;
} zt_app;

/* Set the emulated devices (VRAMSWAP_SIM; NULL = ZT_SIM_DEFAULT) and emulator
 * knobs (VRAMSWAP_EMU_ZE; NULL = none). Call before any vramswap call. */
void zt_setup(const char *sim_spec, const char *emu_spec);
/* The Criterion suite .init: zt_setup(NULL, NULL). */
void zt_init(void);
/* The loader and the emulator it loaded (asserts; initializes Level Zero). */
zt_emu *zt_emu_get(void);
/* Index of the "level_zero" backend in the registry (asserts it is compiled in). */
size_t zt_index(void);
vs_backend_info zt_info(void);
/* Open Level Zero device `ordinal` with headroom 0, mem_poll_ns 0 and the given
 * flags, limit and page size (0 = defaults). Asserts success. */
vs_device_t *zt_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size);
/* An application context on device `ordinal` (through the loader's exports). */
zt_app zt_app_begin(int ordinal);
void zt_app_end(zt_app *app);
/* Assert the emulated device's simdev objects and the emulator's live objects
 * are all gone. */
void zt_assert_clean(int ordinal);

#endif /* VS_EMU_ZE_TEST_H */
