/* Helpers shared by the Level Zero emulator tests; see emu_test.h. */
#include "emu_test.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static zt_emu zt_the_emu;

void zt_setup(const char *sim_spec, const char *emu_spec)
{
    unsetenv("VRAMSWAP_CONF");
    /* The backend decides (Note [Level Zero free memory]); tests that want
     * another value set it themselves. */
    unsetenv("ZES_ENABLE_SYSMAN");
    setenv("VRAMSWAP_SIM", sim_spec ? sim_spec : ZT_SIM_DEFAULT, 1);
    if (emu_spec)
        setenv("VRAMSWAP_EMU_ZE", emu_spec, 1);
    else
        unsetenv("VRAMSWAP_EMU_ZE");
}

void zt_init(void)
{
    zt_setup(NULL, NULL);
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    cr_assert_not_null(p, "lacks %s", name);
    return p;
}

zt_emu *zt_emu_get(void)
{
    zt_emu *e = &zt_the_emu;
    if (e->driver)
        return e;
    const char *loader = getenv("VRAMSWAP_LIBZE");
    if (!loader || !*loader)
        loader = "libze_loader.so.1";
    e->loader = dlopen(loader, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(e->loader, "cannot load %s: %s", loader, dlerror());
    /* The typed pointers are filled from dlsym's void *. */
#define ZT_SYM(lib, field, name)                   \
    do {                                           \
        void *p_ = sym(lib, name);                 \
        memcpy(&e->field, &p_, sizeof p_);         \
    } while (0)
    ZT_SYM(e->loader, Init, "zeInit");
    ZT_SYM(e->loader, DriverGet, "zeDriverGet");
    ZT_SYM(e->loader, DeviceGet, "zeDeviceGet");
    ZT_SYM(e->loader, ContextCreate, "zeContextCreate");
    ZT_SYM(e->loader, ContextDestroy, "zeContextDestroy");
    ZT_SYM(e->loader, MemAllocDevice, "zeMemAllocDevice");
    ZT_SYM(e->loader, MemAllocShared, "zeMemAllocShared");
    ZT_SYM(e->loader, MemAllocHost, "zeMemAllocHost");
    ZT_SYM(e->loader, MemFree, "zeMemFree");
    ZT_SYM(e->loader, MemFreeExt, "zeMemFreeExt");
    ZT_SYM(e->loader, PhysicalMemCreate, "zePhysicalMemCreate");
    ZT_SYM(e->loader, PhysicalMemDestroy, "zePhysicalMemDestroy");
    ZT_SYM(e->loader, GetMemProcAddrTable, "zeGetMemProcAddrTable");
    cr_assert_eq(e->Init(ZE_INIT_FLAG_GPU_ONLY), ZE_RESULT_SUCCESS);
    /* The loader loaded the emulator by the path in ZE_ENABLE_ALT_DRIVERS;
     * the same path reaches the same, already loaded, library. */
    const char *drv = getenv("ZE_ENABLE_ALT_DRIVERS");
    cr_assert(drv && *drv, "ZE_ENABLE_ALT_DRIVERS must name the emulator");
    e->driver = dlopen(drv, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    cr_assert_not_null(e->driver, "the loader did not load %s", drv);
    ZT_SYM(e->driver, inject, "vsze_inject");
    ZT_SYM(e->driver, inject_clear, "vsze_inject_clear");
    ZT_SYM(e->driver, calls, "vsze_calls");
    ZT_SYM(e->driver, counters, "vsze_counters");
    ZT_SYM(e->driver, objects, "vsze_objects");
    ZT_SYM(e->driver, external_usage, "vsze_external_usage");
#undef ZT_SYM
    return e;
}

size_t zt_index(void)
{
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info info;
        VT_OK(vs_backend_get_info(i, &info));
        if (strcmp(info.name, "level_zero") == 0)
            return i;
    }
    cr_assert_fail("the level_zero backend is not compiled in");
    return 0;
}

vs_backend_info zt_info(void)
{
    vs_backend_info info;
    VT_OK(vs_backend_get_info(zt_index(), &info));
    return info;
}

vs_device_t *zt_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size)
{
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.flags = flags;
    cfg.headroom = 0;
    cfg.limit = limit;
    cfg.page_size = page_size;
    cfg.mem_poll_ns = 0;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("level_zero", ordinal, &cfg, &dev));
    return dev;
}

zt_app zt_app_begin(int ordinal)
{
    zt_emu *e = zt_emu_get();
    zt_app app = {0};
    uint32_t n = 1;
    cr_assert_eq(e->DriverGet(&n, &app.driver), ZE_RESULT_SUCCESS);
    ze_device_handle_t devs[SIMDEV_MAX_DEVICES];
    uint32_t nd = SIMDEV_MAX_DEVICES;
    cr_assert_eq(e->DeviceGet(app.driver, &nd, devs), ZE_RESULT_SUCCESS);
    cr_assert_lt((uint32_t)ordinal, nd);
    app.device = devs[ordinal];
    ze_context_desc_t desc = {.stype = ZE_STRUCTURE_TYPE_CONTEXT_DESC};
    cr_assert_eq(e->ContextCreate(app.driver, &desc, &app.ctx), ZE_RESULT_SUCCESS);
    return app;
}

void zt_app_end(zt_app *app)
{
    cr_assert_eq(zt_emu_get()->ContextDestroy(app->ctx), ZE_RESULT_SUCCESS);
    app->ctx = NULL;
}

void zt_assert_clean(int ordinal)
{
    zt_emu *e = zt_emu_get();
    vs_sim_counters c;
    cr_assert_eq(e->counters(ordinal, &c), ZE_RESULT_SUCCESS);
    cr_assert_eq(c.reservations, 0, "%llu reservations left", (unsigned long long)c.reservations);
    cr_assert_eq(c.phys_chunks, 0, "%llu physical chunks left", (unsigned long long)c.phys_chunks);
    cr_assert_eq(c.mapped_bytes, 0, "%llu bytes still mapped", (unsigned long long)c.mapped_bytes);
    cr_assert_eq(c.host_registrations, 0, "%llu host registrations left",
                 (unsigned long long)c.host_registrations);
    cr_assert_eq(c.streams, 0, "%llu streams left", (unsigned long long)c.streams);
    cr_assert_eq(c.external_bytes, 0, "%llu bytes of allocations left",
                 (unsigned long long)c.external_bytes);
    vsze_objects_t o;
    cr_assert_eq(e->objects(&o), ZE_RESULT_SUCCESS);
    cr_assert_eq(o.contexts, 0, "%llu contexts left", (unsigned long long)o.contexts);
    cr_assert_eq(o.command_lists, 0, "%llu command lists left", (unsigned long long)o.command_lists);
    cr_assert_eq(o.event_pools, 0, "%llu event pools left", (unsigned long long)o.event_pools);
    cr_assert_eq(o.events, 0, "%llu events left", (unsigned long long)o.events);
    cr_assert_eq(o.host_allocations, 0, "%llu host allocations left",
                 (unsigned long long)o.host_allocations);
    cr_assert_eq(o.imported_pointers, 0, "%llu imported host ranges left",
                 (unsigned long long)o.imported_pointers);
}
