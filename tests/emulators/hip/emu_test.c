/* Helpers shared by the HIP emulator tests; see emu_test.h. */
#include "emu_test.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static ht_emu ht_the_emu;

void ht_setup(const char *sim_spec, const char *emu_spec)
{
    unsetenv("VRAMSWAP_CONF");
    unsetenv("VRAMSWAP_HIP_VA_CACHE");
    unsetenv("VRAMSWAP_HIP_RELEASE");
    setenv("VRAMSWAP_SIM", sim_spec ? sim_spec : HT_SIM_DEFAULT, 1);
    if (emu_spec)
        setenv("VRAMSWAP_EMU_HIP", emu_spec, 1);
    else
        unsetenv("VRAMSWAP_EMU_HIP");
}

void ht_init(void)
{
    ht_setup(NULL, NULL);
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    cr_assert_not_null(p, "emulator lacks %s", name);
    return p;
}

ht_emu *ht_emu_get(void)
{
    ht_emu *e = &ht_the_emu;
    if (e->lib)
        return e;
    const char *path = getenv("VRAMSWAP_LIBHIP");
    cr_assert(path && *path, "VRAMSWAP_LIBHIP must name the emulator");
    e->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(e->lib, "cannot load %s: %s", path, dlerror());
    /* The typed pointers are filled from dlsym's void *. */
#define HT_SYM(field, name) do { void *p_ = sym(e->lib, name); memcpy(&e->field, &p_, sizeof p_); } while (0)
    HT_SYM(Init, "hipInit");
    HT_SYM(SetDevice, "hipSetDevice");
    HT_SYM(GetDevice, "hipGetDevice");
    HT_SYM(MemGetInfo, "hipMemGetInfo");
    HT_SYM(Malloc, "hipMalloc");
    HT_SYM(Free, "hipFree");
    HT_SYM(ExtMallocWithFlags, "hipExtMallocWithFlags");
    HT_SYM(MallocAsync, "hipMallocAsync");
    HT_SYM(FreeAsync, "hipFreeAsync");
    HT_SYM(inject, "vsemu_inject");
    HT_SYM(inject_clear, "vsemu_inject_clear");
    HT_SYM(calls, "vsemu_calls");
    HT_SYM(counters, "vsemu_counters");
#undef HT_SYM
    cr_assert_eq(e->Init(0), hipSuccess);
    return e;
}

size_t ht_hip_index(void)
{
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info info;
        VT_OK(vs_backend_get_info(i, &info));
        if (strcmp(info.name, "hip") == 0)
            return i;
    }
    cr_assert_fail("the hip backend is not compiled in");
    return 0;
}

vs_backend_info ht_hip_info(void)
{
    vs_backend_info info;
    VT_OK(vs_backend_get_info(ht_hip_index(), &info));
    return info;
}

vs_device_t *ht_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size)
{
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.flags = flags;
    cfg.headroom = 0;
    cfg.limit = limit;
    cfg.page_size = page_size;
    cfg.mem_poll_ns = 0;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("hip", ordinal, &cfg, &dev));
    return dev;
}

uint64_t ht_free_bytes(int ordinal)
{
    ht_emu *e = ht_emu_get();
    int prev = 0;
    size_t fr = 0, tot = 0;
    cr_assert_eq(e->GetDevice(&prev), hipSuccess);
    cr_assert_eq(e->SetDevice(ordinal), hipSuccess);
    cr_assert_eq(e->MemGetInfo(&fr, &tot), hipSuccess);
    cr_assert_eq(e->SetDevice(prev), hipSuccess);
    return fr;
}

uint64_t ht_reserve_calls(void)
{
    return ht_emu_get()->calls(VS_SIM_OP_VA_RESERVE);
}

void ht_assert_clean(int ordinal)
{
    vs_sim_counters c;
    cr_assert_eq(ht_emu_get()->counters(ordinal, &c), hipSuccess);
    cr_assert_eq(c.reservations, 0, "%llu reservations left", (unsigned long long)c.reservations);
    cr_assert_eq(c.phys_chunks, 0, "%llu physical chunks left", (unsigned long long)c.phys_chunks);
    cr_assert_eq(c.mapped_bytes, 0, "%llu bytes still mapped", (unsigned long long)c.mapped_bytes);
    cr_assert_eq(c.host_registrations, 0, "%llu host registrations left",
                 (unsigned long long)c.host_registrations);
    cr_assert_eq(c.streams, 0, "%llu streams left", (unsigned long long)c.streams);
    cr_assert_eq(c.events, 0, "%llu events left", (unsigned long long)c.events);
    cr_assert_eq(c.external_bytes, 0, "%llu bytes of allocations left",
                 (unsigned long long)c.external_bytes);
}
