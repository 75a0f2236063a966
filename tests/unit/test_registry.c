/* The registry of backends and devices: listing, opening, closing, one open per
 * device, bad names and ordinals, the simulator's configuration. */
#include <string.h>

#include "harness.h"

TestSuite(registry, .init = vt_init, .fini = vt_fini);

static int vt_find_backend(const char *name, vs_backend_info *out)
{
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info info;
        memset(&info, 0x5a, sizeof info);
        VT_OK(vs_backend_get_info(i, &info));
        cr_assert(memchr(info.name, 0, sizeof info.name) != NULL, "name not terminated");
        cr_assert(memchr(info.why, 0, sizeof info.why) != NULL, "why not terminated");
        if (strcmp(info.name, name) == 0) {
            if (out)
                *out = info;
            return (int)i;
        }
    }
    return -1;
}

Test(registry, sim_is_listed_and_available)
{
    cr_assert_geq(vs_backend_count(), 1);
    vs_backend_info info;
    cr_assert_geq(vt_find_backend("sim", &info), 0, "no sim backend");
    cr_assert_eq(info.available, 1, "sim unavailable: %s", info.why);
    cr_assert_geq(info.device_count, 1);
}

Test(registry, backends_are_distinct_and_unavailable_ones_say_why)
{
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info a;
        VT_OK(vs_backend_get_info(i, &a));
        cr_assert_gt(strlen(a.name), 0);
        if (!a.available) {
            cr_assert_eq(a.device_count, 0, "%s unavailable with devices", a.name);
            cr_assert_gt(strlen(a.why), 0, "%s unavailable without a reason", a.name);
        }
        for (size_t j = 0; j < i; j++) {
            vs_backend_info b;
            VT_OK(vs_backend_get_info(j, &b));
            cr_assert_str_neq(a.name, b.name);
        }
    }
}

Test(registry, get_info_bad_arguments)
{
    vs_backend_info info;
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT,
               vs_backend_get_info(vs_backend_count(), &info));
    VT_EXPECT2(VS_ERR_OUT_OF_RANGE, VS_ERR_INVALID_ARGUMENT,
               vs_backend_get_info((size_t)-1, &info));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_backend_get_info(0, NULL));
}

Test(registry, sim_device_count_follows_config)
{
    vt_configure_sim(&(vt_params){.device_count = 3});
    vs_backend_info info;
    cr_assert_geq(vt_find_backend("sim", &info), 0);
    cr_assert_eq(info.device_count, 3);
}

Test(registry, open_and_close)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    cr_assert_str_eq(e->props.backend, "sim");
    cr_assert_eq(e->props.ordinal, 0);
    cr_assert_eq(e->props.total_memory, 16 * 64 * VT_KIB);
    cr_assert_eq(e->props.granularity, 64 * VT_KIB);
    cr_assert_eq(e->props.page_size, 64 * VT_KIB);
    cr_assert_eq(e->props.intercepting, 0);
    cr_assert_eq(e->props.integrated, 0);
    cr_assert(memchr(e->props.name, 0, sizeof e->props.name) != NULL);
    vt_close(e);
    /* And again: the device was released. */
    e = vt_open(&(vt_params){.pages = 16});
    vt_close(e);
}

Test(registry, preferred_page_size_when_not_asked)
{
    vt_configure_sim(&(vt_params){.granularity = 64 * VT_KIB, .page_size = 256 * VT_KIB});
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.headroom = 0;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("sim", 0, &cfg, &dev));
    vs_device_props props;
    VT_OK(vs_device_get_props(dev, &props));
    cr_assert_eq(props.page_size, 256 * VT_KIB);
    cr_assert_eq(props.granularity, 64 * VT_KIB);
    VT_OK(vs_device_close(dev));
}

Test(registry, integrated_flag_reported)
{
    vt_env *e = vt_open(&(vt_params){.integrated = 1});
    cr_assert_eq(e->props.integrated, 1);
}

Test(registry, page_size_must_be_a_granularity_multiple)
{
    vt_configure_sim(&(vt_params){.granularity = 64 * VT_KIB});
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cfg.headroom = 0;
    vs_device_t *dev = (vs_device_t *)0x1;
    cfg.page_size = 96 * VT_KIB;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, &cfg, &dev));
    cfg.page_size = 32 * VT_KIB;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, &cfg, &dev));
    cr_assert_eq(dev, (vs_device_t *)0x1, "out-pointer written on failure");
    cfg.page_size = 128 * VT_KIB;
    VT_OK(vs_device_open("sim", 0, &cfg, &dev));
    VT_OK(vs_device_close(dev));
}

Test(registry, config_is_validated)
{
    vt_configure_sim(&(vt_params){0});
    vs_device_config cfg;
    vs_device_t *dev = NULL;
    VT_OK(vs_device_config_init(&cfg));
    cfg.struct_size = 3;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, &cfg, &dev));
    VT_OK(vs_device_config_init(&cfg));
    cfg.flags = 1u << 17;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, &cfg, &dev));
    cr_assert_null(dev);
    vt_assert_sim_clean(0);
}

Test(registry, default_config_when_null)
{
    /* cfg NULL: defaults (256 MiB headroom on a 1 GiB simulated device). */
    vt_configure_sim(&(vt_params){.capacity = 1024 * VT_MIB});
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("sim", 0, NULL, &dev));
    vs_memory_info mi;
    VT_OK(vs_device_memory_info(dev, &mi));
    cr_assert_eq(mi.headroom, 256 * VT_MIB);
    cr_assert_eq(mi.total, 1024 * VT_MIB);
    cr_assert_eq(mi.budget, 768 * VT_MIB);
    VT_OK(vs_device_close(dev));
}

Test(registry, second_open_is_busy)
{
    vt_env *e = vt_open(&(vt_params){0});
    vs_device_t *dev = (vs_device_t *)0x1;
    VT_EXPECT(VS_ERR_BUSY, vs_device_open("sim", 0, NULL, &dev));
    cr_assert_eq(dev, (vs_device_t *)0x1);
    /* The first handle still works. */
    vs_vbar_t *v = vt_vbar(e, 1);
    VT_OK(vs_vbar_destroy(v));
}

Test(registry, two_devices_at_once)
{
    vt_env *a = vt_open(&(vt_params){.device_count = 2, .ordinal = 0});
    vt_env *b = vt_open(&(vt_params){.device_count = 2, .ordinal = 1});
    cr_assert_neq(a->dev, b->dev);
    cr_assert_eq(b->props.ordinal, 1);
    vs_vbar_t *va = vt_vbar(a, 2);
    vs_vbar_t *vb = vt_vbar(b, 3);
    vt_load_pages(a, va, 0, 2);
    vt_load_pages(b, vb, 0, 3);
    cr_assert_eq(vt_counters(0).mapped_bytes, 2 * a->page);
    cr_assert_eq(vt_counters(1).mapped_bytes, 3 * b->page);
    vt_close(b);
    cr_assert_eq(vt_loaded(va), 2 * a->page);
}

Test(registry, bad_backend_name)
{
    vs_device_t *dev = (vs_device_t *)0x1;
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("no-such-backend", 0, NULL, &dev));
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("", 0, NULL, &dev));
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("SIM", 0, NULL, &dev));
    cr_assert_eq(dev, (vs_device_t *)0x1);
}

Test(registry, bad_ordinal)
{
    vt_configure_sim(&(vt_params){.device_count = 1});
    vs_device_t *dev = (vs_device_t *)0x1;
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("sim", 1, NULL, &dev));
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("sim", -1, NULL, &dev));
    VT_EXPECT(VS_ERR_NO_DEVICE, vs_device_open("sim", 1 << 30, NULL, &dev));
    cr_assert_eq(dev, (vs_device_t *)0x1);
}

Test(registry, open_needs_an_out_pointer)
{
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, NULL, NULL));
    vt_assert_sim_clean(0);
}

Test(registry, auto_opens_something)
{
    vt_configure_sim(&(vt_params){0});
    int gpus = 0;
    size_t n = vs_backend_count();
    for (size_t i = 0; i < n; i++) {
        vs_backend_info info;
        VT_OK(vs_backend_get_info(i, &info));
        if (strcmp(info.name, "sim") != 0 && info.available && info.device_count > 0)
            gpus++;
    }
    const char *names[] = {NULL, "auto"};
    for (int k = 0; k < 2; k++) {
        vs_device_t *dev = NULL;
        VT_OK(vs_device_open(names[k], 0, NULL, &dev));
        vs_device_props props;
        VT_OK(vs_device_get_props(dev, &props));
        if (gpus == 0)
            cr_assert_str_eq(props.backend, "sim");
        else
            cr_assert_str_neq(props.backend, "sim", "auto chose the simulator over a GPU");
        VT_OK(vs_device_close(dev));
    }
}

Test(registry, sim_configure_busy_while_open)
{
    vt_open(&(vt_params){0});
    vs_sim_config sc;
    VT_OK(vs_sim_get_config(&sc));
    VT_EXPECT(VS_ERR_BUSY, vs_sim_configure(&sc));
}

Test(registry, sim_config_validated)
{
    vs_sim_config sc, before;
    VT_OK(vs_sim_config_default(&sc));
    VT_OK(vs_sim_configure(&sc));
    VT_OK(vs_sim_get_config(&before));
    vs_sim_config bad = sc;
    bad.device_count = 17;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_sim_configure(&bad));
    bad = sc;
    bad.granularity = 1000;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_sim_configure(&bad));
    bad = sc;
    bad.granularity = 0;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_sim_configure(&bad));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_sim_configure(NULL));
    vs_sim_config after;
    VT_OK(vs_sim_get_config(&after));
    cr_assert_eq(memcmp(&before, &after, sizeof before), 0, "a refused config was applied");
}

Test(registry, sim_config_from_environment)
{
    setenv("VRAMSWAP_SIM", "devices:2,memory:512M,granularity:128K,page:512K,integrated:1", 1);
    vs_sim_config sc;
    VT_OK(vs_sim_config_default(&sc));
    cr_assert_eq(sc.device_count, 2);
    cr_assert_eq(sc.total_memory, 512 * VT_MIB);
    cr_assert_eq(sc.granularity, 128 * VT_KIB);
    cr_assert_eq(sc.preferred_page_size, 512 * VT_KIB);
    cr_assert_eq(sc.integrated, 1);
    unsetenv("VRAMSWAP_SIM");
}

Test(registry, close_twice_and_null)
{
    vt_env *e = vt_open(&(vt_params){0});
    vs_device_t *dev = e->dev;
    vt_close(e);
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_close(dev));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_close(NULL));
}

Test(registry, close_releases_everything_left_open)
{
    vt_env *e = vt_open(&(vt_params){.pages = 16});
    vs_vbar_t *v1 = vt_vbar(e, 4), *v2 = vt_vbar(e, 4);
    vt_load_pages(e, v1, 0, 4);
    vt_load_pages(e, v2, 0, 2);
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    VT_OK(vs_scratch_resize(s, 2 * e->page));
    vs_host_buffer_t *h = NULL;
    VT_OK(vs_host_buffer_create(e->dev, VT_MIB, &h));
    VT_OK(vs_host_buffer_resize(h, 100 * VT_KIB));
    uintptr_t stream = 0, event = 0;
    VT_OK(vs_stream_create(e->dev, &stream));
    VT_OK(vs_event_create(e->dev, &event));
    VT_OK(vs_event_destroy(e->dev, event));
    VT_OK(vs_stream_destroy(e->dev, stream));
    vt_close(e);
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_destroy(v1));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_scratch_destroy(s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_host_buffer_destroy(h));
}

Test(registry, close_with_pinned_pages_is_busy)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vt_fault_pages(e, v, 1, 2, NULL));
    VT_EXPECT(VS_ERR_BUSY, vs_device_close(e->dev));
    /* Nothing was released: the device and the VBAR still work. */
    cr_assert_eq(vt_loaded(v), 2 * e->page);
    cr_assert_eq(vt_count_pages(v, VS_PAGE_PINNED), 2);
    vt_check(e);
    VT_OK(vt_unpin_pages(e, v, 1, 2));
    vt_close(e);
}
