/* vs_device_config_init: defaults and the VRAMSWAP_CONF variable. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(config, .init = vt_init, .fini = vt_fini);

Test(config, defaults)
{
    vs_device_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    VT_OK(vs_device_config_init(&cfg));
    cr_assert_eq(cfg.struct_size, sizeof(vs_device_config));
    cr_assert_eq(cfg.flags, 0);
    cr_assert_eq(cfg.page_size, 0);
    cr_assert_eq(cfg.headroom, 256 * VT_MIB);
    cr_assert_eq(cfg.limit, 0);
    cr_assert_eq(cfg.mem_poll_ns, 2000000);
}

Test(config, null_config)
{
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_config_init(NULL));
}

Test(config, environment_overrides)
{
    setenv("VRAMSWAP_CONF", "limit:8G,headroom:512M,page_size:32M,log:info", 1);
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cr_assert_eq(cfg.limit, 8 * 1024 * VT_MIB);
    cr_assert_eq(cfg.headroom, 512 * VT_MIB);
    cr_assert_eq(cfg.page_size, 32 * VT_MIB);
    cr_assert_eq(cfg.mem_poll_ns, 2000000, "untouched keys keep their defaults");
    cr_assert_eq(vs_get_log_level(), VS_LOG_INFO);
}

Test(config, plain_bytes_and_kilobytes)
{
    setenv("VRAMSWAP_CONF", "headroom:4096,limit:64K", 1);
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cr_assert_eq(cfg.headroom, 4096);
    cr_assert_eq(cfg.limit, 64 * VT_KIB);
}

Test(config, empty_variable_means_defaults)
{
    setenv("VRAMSWAP_CONF", "", 1);
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    cr_assert_eq(cfg.headroom, 256 * VT_MIB);
    cr_assert_eq(cfg.limit, 0);
}

Test(config, environment_applies_to_open)
{
    /* The config a program builds with vs_device_config_init carries the variable. */
    vt_configure_sim(&(vt_params){.capacity = 64 * VT_MIB});
    setenv("VRAMSWAP_CONF", "limit:32M,headroom:1M", 1);
    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    vs_device_t *dev = NULL;
    VT_OK(vs_device_open("sim", 0, &cfg, &dev));
    vs_memory_info mi;
    VT_OK(vs_device_memory_info(dev, &mi));
    cr_assert_eq(mi.total, 32 * VT_MIB);
    cr_assert_eq(mi.headroom, VT_MIB);
    cr_assert_eq(mi.budget, 31 * VT_MIB);
    VT_OK(vs_device_close(dev));
}

static void vt_expect_bad(const char *conf)
{
    setenv("VRAMSWAP_CONF", conf, 1);
    vs_device_config cfg;
    vs_status st = vs_device_config_init(&cfg);
    cr_assert_eq(st, VS_ERR_INVALID_ARGUMENT, "VRAMSWAP_CONF=\"%s\" gave %s", conf,
                 vs_status_name(st));
}

Test(config, bad_values_are_errors)
{
    vt_expect_bad("limit:abc");
    vt_expect_bad("limit:");
    vt_expect_bad("limit:12Q");
    vt_expect_bad("limit:-5");
    vt_expect_bad("headroom:1.5G");
    vt_expect_bad("limit:99999999999999999999999");
    vt_expect_bad("limit:20000000000G");
    vt_expect_bad("log:loud");
    vt_expect_bad("page_size:12X");
}

Test(config, malformed_entries_are_errors)
{
    vt_expect_bad("limit");
    vt_expect_bad("limit=8G");
    vt_expect_bad(":8G");
    vt_expect_bad("no_such_key:1");
}
