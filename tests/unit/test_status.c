/* Status names and descriptions, the constant table, the version string. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(status, .init = vt_init, .fini = vt_fini);

static const struct {
    const char *name;
    int value;
} vt_statuses[] = {
    {"VS_OK", VS_OK},
    {"VS_NOT_RESIDENT", VS_NOT_RESIDENT},
    {"VS_ERR_OUT_OF_MEMORY", VS_ERR_OUT_OF_MEMORY},
    {"VS_ERR_INVALID_ARGUMENT", VS_ERR_INVALID_ARGUMENT},
    {"VS_ERR_INVALID_HANDLE", VS_ERR_INVALID_HANDLE},
    {"VS_ERR_OUT_OF_RANGE", VS_ERR_OUT_OF_RANGE},
    {"VS_ERR_NOT_PINNED", VS_ERR_NOT_PINNED},
    {"VS_ERR_BUSY", VS_ERR_BUSY},
    {"VS_ERR_NOT_READY", VS_ERR_NOT_READY},
    {"VS_ERR_NOT_SUPPORTED", VS_ERR_NOT_SUPPORTED},
    {"VS_ERR_NO_DEVICE", VS_ERR_NO_DEVICE},
    {"VS_ERR_BACKEND", VS_ERR_BACKEND},
    {"VS_ERR_INTERNAL", VS_ERR_INTERNAL},
};
#define VT_NSTATUS (sizeof vt_statuses / sizeof vt_statuses[0])

Test(status, every_status_has_its_name)
{
    cr_assert_eq(VT_NSTATUS, VS_STATUS_COUNT_);
    for (size_t i = 0; i < VT_NSTATUS; i++)
        cr_assert_str_eq(vs_status_name(vt_statuses[i].value), vt_statuses[i].name);
}

Test(status, unknown_statuses_are_named_unknown)
{
    const int unknown[] = {-1, VS_STATUS_COUNT_, 99, -1000, 0x7fffffff};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(vs_status_name(unknown[i]), "VS_UNKNOWN");
        const char *s = vs_status_str(unknown[i]);
        cr_assert_not_null(s);
    }
}

Test(status, descriptions_are_distinct_one_liners)
{
    for (size_t i = 0; i < VT_NSTATUS; i++) {
        const char *s = vs_status_str(vt_statuses[i].value);
        cr_assert_not_null(s);
        cr_assert_gt(strlen(s), 0);
        cr_assert_null(strchr(s, '\n'), "description of %s has a newline", vt_statuses[i].name);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(s, vs_status_str(vt_statuses[j].value));
    }
}

Test(status, status_constants_by_name)
{
    for (size_t i = 0; i < VT_NSTATUS; i++) {
        int64_t v = -12345;
        VT_OK(vs_constant(vt_statuses[i].name, &v));
        cr_assert_eq(v, vt_statuses[i].value, "%s", vt_statuses[i].name);
    }
}

Test(status, other_constants_by_name)
{
    static const struct {
        const char *name;
        int64_t value;
    } other[] = {
        {"VS_LOG_OFF", VS_LOG_OFF},       {"VS_LOG_ERROR", VS_LOG_ERROR},
        {"VS_LOG_WARN", VS_LOG_WARN},     {"VS_LOG_INFO", VS_LOG_INFO},
        {"VS_LOG_DEBUG", VS_LOG_DEBUG},   {"VS_LOG_TRACE", VS_LOG_TRACE},
        {"VS_PAGE_RESIDENT", VS_PAGE_RESIDENT}, {"VS_PAGE_PINNED", VS_PAGE_PINNED},
        {"VS_PAGE_PROTECTED", VS_PAGE_PROTECTED},
        {"VS_COPY_HOST_TO_DEVICE", VS_COPY_HOST_TO_DEVICE},
        {"VS_COPY_DEVICE_TO_HOST", VS_COPY_DEVICE_TO_HOST},
        {"VS_COPY_DEVICE_TO_DEVICE", VS_COPY_DEVICE_TO_DEVICE},
        {"VS_DEVICE_INTERCEPT", VS_DEVICE_INTERCEPT},
        {"VS_STREAM_NONE", (int64_t)VS_STREAM_NONE},
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        int64_t v = -12345;
        VT_OK(vs_constant(other[i].name, &v));
        cr_assert_eq(v, other[i].value, "%s is %lld, expected %lld", other[i].name,
                     (long long)v, (long long)other[i].value);
    }
}

Test(status, table_round_trips)
{
    size_t i = 0;
    for (;; i++) {
        const char *name = NULL;
        int64_t v = 0;
        vs_status st = vs_constant_at(i, &name, &v);
        if (st == VS_ERR_OUT_OF_RANGE)
            break;
        VT_OK(st);
        cr_assert_not_null(name);
        cr_assert(strncmp(name, "VS_", 3) == 0, "constant %zu is named %s", i, name);
        int64_t again = -12345;
        VT_OK(vs_constant(name, &again));
        cr_assert_eq(again, v, "%s: table %lld, lookup %lld", name, (long long)v, (long long)again);
        for (size_t j = 0; j < i; j++) {
            const char *other = NULL;
            int64_t ov = 0;
            VT_OK(vs_constant_at(j, &other, &ov));
            cr_assert_str_neq(name, other, "%s listed twice", name);
        }
        cr_assert_lt(i, 10000, "constant table does not end");
    }
    cr_assert_geq(i, VT_NSTATUS + 6, "only %zu constants", i);
    /* Past the end stays past the end. */
    const char *name = NULL;
    int64_t v = 0;
    VT_EXPECT(VS_ERR_OUT_OF_RANGE, vs_constant_at(i + 1, &name, &v));
    VT_EXPECT(VS_ERR_OUT_OF_RANGE, vs_constant_at((size_t)-1, &name, &v));
}

Test(status, bad_constant_lookups)
{
    int64_t v = 77;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant("VS_NO_SUCH_THING", &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant("", &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant("vs_err_busy", &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant("VS_ERR_BUSY ", &v));
    cr_assert_eq(v, 77, "value written on failure");
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant(NULL, &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant("VS_ERR_BUSY", NULL));
    const char *name = NULL;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant_at(0, NULL, &v));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_constant_at(0, &name, NULL));
}

Test(status, version_matches_macros)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", VS_VERSION_MAJOR, VS_VERSION_MINOR, VS_VERSION_PATCH);
    cr_assert_not_null(vs_version());
    cr_assert_str_eq(vs_version(), want);
}
