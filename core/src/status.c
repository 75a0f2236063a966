/* Status names, descriptions and the table of named constants.
 *
 * Bindings read every constant from vs_constant() instead of copying values, so
 * this table is the single place where names meet numbers.
 */
#include <string.h>

#include "internal.h"

static const struct {
    const char *name;
    const char *text;
} status_table[VS_STATUS_COUNT_] = {
    [VS_OK] = {"VS_OK", "success"},
    [VS_NOT_RESIDENT] = {"VS_NOT_RESIDENT", "range cannot be made resident now"},
    [VS_ERR_OUT_OF_MEMORY] = {"VS_ERR_OUT_OF_MEMORY", "out of memory"},
    [VS_ERR_INVALID_ARGUMENT] = {"VS_ERR_INVALID_ARGUMENT", "invalid argument"},
    [VS_ERR_INVALID_HANDLE] = {"VS_ERR_INVALID_HANDLE", "invalid, foreign or destroyed handle"},
    [VS_ERR_OUT_OF_RANGE] = {"VS_ERR_OUT_OF_RANGE", "offset or size out of range"},
    [VS_ERR_NOT_PINNED] = {"VS_ERR_NOT_PINNED", "range is not pinned"},
    [VS_ERR_BUSY] = {"VS_ERR_BUSY", "object is in use"},
    [VS_ERR_NOT_READY] = {"VS_ERR_NOT_READY", "operation not complete yet"},
    [VS_ERR_NOT_SUPPORTED] = {"VS_ERR_NOT_SUPPORTED", "not supported by this backend or device"},
    [VS_ERR_NO_DEVICE] = {"VS_ERR_NO_DEVICE", "no such backend or device"},
    [VS_ERR_BACKEND] = {"VS_ERR_BACKEND", "driver call failed"},
    [VS_ERR_INTERNAL] = {"VS_ERR_INTERNAL", "internal error (invariant broken)"},
};

VS_API const char *vs_status_name(int status)
{
    if (status < 0 || status >= VS_STATUS_COUNT_)
        return "VS_UNKNOWN";
    return status_table[status].name;
}

VS_API const char *vs_status_str(int status)
{
    if (status < 0 || status >= VS_STATUS_COUNT_)
        return "unknown status";
    return status_table[status].text;
}

VS_API const char *vs_version(void)
{
    return "0.1.0";
}

#define C(x) {#x, (int64_t)(x)}
static const struct {
    const char *name;
    int64_t value;
} constants[] = {
    C(VS_OK), C(VS_NOT_RESIDENT), C(VS_ERR_OUT_OF_MEMORY), C(VS_ERR_INVALID_ARGUMENT),
    C(VS_ERR_INVALID_HANDLE), C(VS_ERR_OUT_OF_RANGE), C(VS_ERR_NOT_PINNED), C(VS_ERR_BUSY),
    C(VS_ERR_NOT_READY), C(VS_ERR_NOT_SUPPORTED), C(VS_ERR_NO_DEVICE), C(VS_ERR_BACKEND),
    C(VS_ERR_INTERNAL), C(VS_STATUS_COUNT_),
    C(VS_LOG_OFF), C(VS_LOG_ERROR), C(VS_LOG_WARN), C(VS_LOG_INFO), C(VS_LOG_DEBUG), C(VS_LOG_TRACE),
    C(VS_DEVICE_INTERCEPT),
    C(VS_DEVICE_NO_REGROW),
    C(VS_DEVICE_LIMIT_PROCESS),
    C(VS_COPY_HOST_TO_DEVICE), C(VS_COPY_DEVICE_TO_HOST), C(VS_COPY_DEVICE_TO_DEVICE),
    C(VS_PAGE_RESIDENT), C(VS_PAGE_PINNED), C(VS_PAGE_PROTECTED),
    C(VS_VERSION_MAJOR), C(VS_VERSION_MINOR), C(VS_VERSION_PATCH),
    {"VS_STREAM_NONE", (int64_t)-1},
    {"VS_DEFAULT_HEADROOM", (int64_t)256 << 20},
};
#undef C

#define NCORE (sizeof constants / sizeof constants[0])

/* Entry i of the core's table followed by every backend's (registry order). */
static bool entry(size_t i, const char **name, int64_t *value)
{
    if (i < NCORE) {
        *name = constants[i].name;
        *value = constants[i].value;
        return true;
    }
    i -= NCORE;
    for (size_t b = 0; b < vs_registry_backend_count(); b++) {
        const vs_backend_constant *c = vs_registry_backend(b)->constants;
        for (; c && c->name; c++) {
            if (i-- == 0) {
                *name = c->name;
                *value = c->value;
                return true;
            }
        }
    }
    return false;
}

VS_API vs_status vs_constant(const char *name, int64_t *value)
{
    if (!name || !value)
        return VS_ERR_INVALID_ARGUMENT;
    const char *n;
    int64_t v;
    for (size_t i = 0; entry(i, &n, &v); i++) {
        if (strcmp(n, name) == 0) {
            *value = v;
            return VS_OK;
        }
    }
    return VS_ERR_INVALID_ARGUMENT;
}

VS_API vs_status vs_constant_at(size_t i, const char **name, int64_t *value)
{
    if (!name || !value)
        return VS_ERR_INVALID_ARGUMENT;
    return entry(i, name, value) ? VS_OK : VS_ERR_OUT_OF_RANGE;
}
