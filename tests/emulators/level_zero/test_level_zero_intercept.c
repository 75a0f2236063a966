/* Level Zero allocation interception on the emulator: the hook engine patches
 * the real loader's exported functions (zeMemAllocDevice & co. in Debian's
 * libze_loader.so.1), and calls an application makes through them -- here
 * through pointers taken with dlsym, as any caller of the exported symbol --
 * are counted, make room by evicting VBAR pages, and are refused beyond the
 * limit. Skipped when the library was built without the hook engine. */
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(intercept, .init = zt_init, .timeout = 60);

#define LIMIT (32 * ZT_MIB) /* 16 pages of the 64 MiB emulated device */

static const ze_device_mem_alloc_desc_t dev_desc = {.stype = ZE_STRUCTURE_TYPE_DEVICE_MEM_ALLOC_DESC};
static const ze_host_mem_alloc_desc_t host_desc = {.stype = ZE_STRUCTURE_TYPE_HOST_MEM_ALLOC_DESC};

/* Open device 0 intercepting under `limit` (skips the test without hooks). */
static vs_device_t *open_intercepting(uint64_t limit)
{
    vs_device_t *dev = zt_open(0, VS_DEVICE_INTERCEPT, limit, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    if (!p.intercepting) {
        VT_OK(vs_device_close(dev));
        cr_skip_test("interception unavailable in this build (no hook engine)");
    }
    return dev;
}

static vs_memory_info meminfo(vs_device_t *dev)
{
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    return m;
}

static vs_stats stats(vs_device_t *dev)
{
    vs_stats s;
    VT_OK(vs_device_get_stats(dev, &s));
    return s;
}

static uint64_t loaded(vs_vbar_t *vb)
{
    uint64_t b = 0;
    VT_OK(vs_vbar_loaded_size(vb, &b));
    return b;
}

/* A VBAR of `pages` pages, all resident and unpinned. */
static vs_vbar_t *loaded_vbar(vs_device_t *dev, uint64_t pages)
{
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, pages * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, pages * ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, pages * ZT_PAGE, VS_STREAM_NONE));
    return vb;
}

static void close_all(vs_device_t *dev, zt_app *app)
{
    zt_app_end(app);
    VT_OK(vs_device_check_invariants(dev));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(intercept, zeMemAllocDevice_through_the_loader_is_counted_and_freed)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    void *p = NULL;
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 8 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_not_null(p);
    cr_assert_eq(meminfo(dev).used_intercepted, 8 * ZT_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 1);
    cr_assert_eq(e->MemFree(app.ctx, p), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(stats(dev).intercepted_frees, 1);
    close_all(dev, &app);
}

Test(intercept, the_backends_own_pages_are_not_counted)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_app app = zt_app_begin(0);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_intercepted, 0, "our zePhysicalMemCreate bypasses the hooks");
    cr_assert_eq(m.used_weights, 8 * ZT_PAGE);
    cr_assert_eq(stats(dev).intercepted_allocs, 0);
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(stats(dev).intercepted_frees, 0);
    close_all(dev, &app);
}

Test(intercept, allocations_evict_unpinned_vbar_pages)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    vs_vbar_t *vb = loaded_vbar(dev, 16); /* the whole budget */
    cr_assert_eq(meminfo(dev).available, 0);
    void *p = NULL;
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 8 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(loaded(vb), 12 * ZT_PAGE, "4 pages made room");
    cr_assert_eq(stats(dev).pages_evicted, 4);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(vb, &wm));
    cr_assert_eq(wm, 12 * ZT_PAGE);
    cr_assert_eq(e->MemFree(app.ctx, p), ZE_RESULT_SUCCESS);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, &app);
}

Test(intercept, beyond_the_limit_the_driver_is_not_called)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 16 * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 16 * ZT_PAGE, NULL)); /* pinned: nothing evictable */
    uint64_t driver_calls = e->calls(VS_SIM_OP_ALLOC);
    void *p = NULL;
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 4 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY);
    cr_assert_eq(e->MemAllocShared(app.ctx, &dev_desc, &host_desc, 4 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY);
    cr_assert_eq(e->calls(VS_SIM_OP_ALLOC), driver_calls, "refused before the driver");
    cr_assert_eq(stats(dev).intercepted_oom, 2);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(loaded(vb), 16 * ZT_PAGE, "pinned pages are never evicted");

    /* Unpinned, the same allocation fits by evicting. */
    VT_OK(vs_vbar_unpin(vb, 0, 16 * ZT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 4 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(e->MemFree(app.ctx, p), ZE_RESULT_SUCCESS);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, &app);
}

Test(intercept, driver_out_of_memory_evicts_and_retries_once)
{
    vs_device_t *dev = open_intercepting(0); /* no limit: the driver decides */
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    cr_assert_eq(e->inject(VS_SIM_OP_ALLOC, 0, 1, ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY),
                 ZE_RESULT_SUCCESS);
    uint64_t before = e->calls(VS_SIM_OP_ALLOC);
    void *p = NULL;
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 2 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(e->calls(VS_SIM_OP_ALLOC), before + 2, "one failure, one retry");
    cr_assert_lt(loaded(vb), 8 * ZT_PAGE, "the driver's out-of-memory evicted");
    cr_assert_eq(e->MemFree(app.ctx, p), ZE_RESULT_SUCCESS);

    /* Twice out of memory: the error reaches the caller, nothing is counted. */
    cr_assert_eq(e->inject(VS_SIM_OP_ALLOC, 0, 2, ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 2 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, &app);
}

Test(intercept, shared_allocations_count_only_when_placed_on_the_device)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    void *on_dev = NULL, *on_host = NULL, *host = NULL;
    cr_assert_eq(e->MemAllocShared(app.ctx, &dev_desc, &host_desc, 4 * ZT_MIB, 0, app.device, &on_dev),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(e->MemAllocShared(app.ctx, &dev_desc, &host_desc, 4 * ZT_MIB, 0, NULL, &on_host),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(e->MemAllocHost(app.ctx, &host_desc, 4 * ZT_MIB, 0, &host), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 4 * ZT_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 1);
    cr_assert_eq(e->MemFree(app.ctx, on_host), ZE_RESULT_SUCCESS);
    cr_assert_eq(e->MemFree(app.ctx, host), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 4 * ZT_MIB, "host frees change nothing");
    ze_memory_free_ext_desc_t fd = {.stype = ZE_STRUCTURE_TYPE_MEMORY_FREE_EXT_DESC};
    cr_assert_eq(e->MemFreeExt(app.ctx, &fd, on_dev), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0, "zeMemFreeExt uncounts");
    close_all(dev, &app);
}

Test(intercept, physical_memory_of_the_application_is_counted)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    vs_vbar_t *vb = loaded_vbar(dev, 16);
    ze_physical_mem_desc_t pd = {.stype = ZE_STRUCTURE_TYPE_PHYSICAL_MEM_DESC, .size = 2 * ZT_PAGE};
    ze_physical_mem_handle_t h = NULL;
    cr_assert_eq(e->PhysicalMemCreate(app.ctx, app.device, &pd, &h), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 2 * ZT_PAGE);
    cr_assert_eq(loaded(vb), 14 * ZT_PAGE, "made room for it");
    cr_assert_eq(e->PhysicalMemDestroy(app.ctx, h), ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, &app);
}

/* Note [Level Zero allocation hooks]: what is *not* seen. A caller that took
 * the loader's DDI table calls the driver directly (with one driver the table
 * holds the driver's own functions), bypassing the exports. */
Test(intercept, calls_through_the_ddi_table_bypass_the_exports)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    zt_emu *e = zt_emu_get();
    zt_app app = zt_app_begin(0);
    ze_mem_dditable_t t;
    memset(&t, 0, sizeof t);
    cr_assert_eq(e->GetMemProcAddrTable(ZE_API_VERSION_CURRENT, &t), ZE_RESULT_SUCCESS);
    cr_assert_not_null(t.pfnAllocDevice);
    void *p = NULL;
    cr_assert_eq(t.pfnAllocDevice(app.ctx, &dev_desc, 2 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0, "documented limitation");
    cr_assert_eq(t.pfnFree(app.ctx, p), ZE_RESULT_SUCCESS);
    close_all(dev, &app);
}

Test(intercept, closing_removes_the_hooks)
{
    zt_emu *e = zt_emu_get();
    uint8_t before[16];
    memcpy(before, (const void *)(uintptr_t)e->MemAllocDevice, sizeof before);
    vs_device_t *dev = open_intercepting(LIMIT);
    cr_assert_neq(memcmp(before, (const void *)(uintptr_t)e->MemAllocDevice, sizeof before), 0,
                  "the loader's zeMemAllocDevice is patched while intercepting");
    VT_OK(vs_device_close(dev));
    cr_assert_eq(memcmp(before, (const void *)(uintptr_t)e->MemAllocDevice, sizeof before), 0,
                 "the loader's code is restored");

    /* A device opened without interception sees nothing. */
    dev = zt_open(0, 0, LIMIT, 0);
    zt_app app = zt_app_begin(0);
    void *p = NULL;
    cr_assert_eq(e->MemAllocDevice(app.ctx, &dev_desc, 4 * ZT_MIB, 0, app.device, &p),
                 ZE_RESULT_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(e->MemFree(app.ctx, p), ZE_RESULT_SUCCESS);
    close_all(dev, &app);
}
