/* Helpers shared by the CUDA emulator tests; see emu_test.h. */
#include "emu_test.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static et_emu et_the_emu;

void et_setup(const char *sim_spec, const char *emu_spec)
{
    unsetenv("VRAMSWAP_CONF");
    setenv("VRAMSWAP_SIM", sim_spec ? sim_spec : ET_SIM_DEFAULT, 1);
    if (emu_spec)
        setenv("VRAMSWAP_EMU_CUDA", emu_spec, 1);
    else
        unsetenv("VRAMSWAP_EMU_CUDA");
}

void et_init(void)
{
    et_setup(NULL, NULL);
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    cr_assert_not_null(p, "emulator lacks %s", name);
    return p;
}

et_emu *et_emu_get(void)
{
    et_emu *e = &et_the_emu;
    if (e->lib)
        return e;
    const char *path = getenv("VRAMSWAP_LIBCUDA");
    cr_assert(path && *path, "VRAMSWAP_LIBCUDA must name the emulator");
    e->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(e->lib, "cannot load %s: %s", path, dlerror());
    /* The typed pointers are filled from dlsym's void *. */
#define ET_SYM(field, name) do { void *p_ = sym(e->lib, name); memcpy(&e->field, &p_, sizeof p_); } while (0)
    ET_SYM(Init, "cuInit");
    ET_SYM(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
    ET_SYM(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
    ET_SYM(CtxSetCurrent, "cuCtxSetCurrent");
    ET_SYM(CtxGetCurrent, "cuCtxGetCurrent");
    ET_SYM(MemAlloc, "cuMemAlloc_v2");
    ET_SYM(MemFree, "cuMemFree_v2");
    ET_SYM(MemAllocAsync, "cuMemAllocAsync");
    ET_SYM(MemFreeAsync, "cuMemFreeAsync");
    ET_SYM(MemAllocAsync_ptsz, "cuMemAllocAsync_ptsz");
    ET_SYM(MemFreeAsync_ptsz, "cuMemFreeAsync_ptsz");
    ET_SYM(MemAllocFromPoolAsync, "cuMemAllocFromPoolAsync");
    ET_SYM(MemCreate, "cuMemCreate");
    ET_SYM(MemRelease, "cuMemRelease");
    ET_SYM(GetProcAddress_v2, "cuGetProcAddress_v2");
    ET_SYM(inject, "vsemu_inject");
    ET_SYM(inject_clear, "vsemu_inject_clear");
    ET_SYM(calls, "vsemu_calls");
    ET_SYM(ptsz_calls, "vsemu_ptsz_calls");
    ET_SYM(counters, "vsemu_counters");
#undef ET_SYM
    cr_assert_eq(e->Init(0), CUDA_SUCCESS);
    return e;
}

size_t et_cuda_index(void)
{
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info info;
        VT_OK(vs_backend_get_info(i, &info));
        if (strcmp(info.name, "cuda") == 0)
            return i;
    }
    cr_assert_fail("the cuda backend is not compiled in");
    return 0;
}

vs_device_t *et_open(int ordinal, uint32_t flags, uint64_t limit, uint64_t page_size)
{
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.flags = flags;
    cfg.headroom = 0;
    cfg.limit = limit;
    cfg.page_size = page_size;
    cfg.mem_poll_ns = 0;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("cuda", ordinal, &cfg, &dev));
    return dev;
}

void et_use_ctx(int ordinal)
{
    et_emu *e = et_emu_get();
    CUcontext ctx = NULL;
    cr_assert_eq(e->DevicePrimaryCtxRetain(&ctx, ordinal), CUDA_SUCCESS);
    cr_assert_eq(e->CtxSetCurrent(ctx), CUDA_SUCCESS);
}

void et_release_ctx(int ordinal)
{
    et_emu *e = et_emu_get();
    cr_assert_eq(e->CtxSetCurrent(NULL), CUDA_SUCCESS);
    cr_assert_eq(e->DevicePrimaryCtxRelease(ordinal), CUDA_SUCCESS);
}

void et_assert_clean(int ordinal)
{
    vs_sim_counters c;
    cr_assert_eq(et_emu_get()->counters(ordinal, &c), CUDA_SUCCESS);
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
