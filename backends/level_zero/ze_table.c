/* Loading the Level Zero loader at run time and resolving the table
 * (Note [Level Zero loader table] in ze_table.h).
 */
#include "level_zero/ze_table.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
               "function pointers are stored through void * (dlsym)");

/* One resolvable entry of the table. */
typedef struct vs_ze_entry {
    const char *symbol;       /* exported name */
    size_t offset;            /* of the field in vs_ze_api */
    int required;             /* 1: missing makes the backend unavailable */
} vs_ze_entry;

static const vs_ze_entry vs_ze_entries[] = {
#define VS_ZE_REQ_(field, symbol, type) {symbol, offsetof(vs_ze_api, field), 1},
#define VS_ZE_OPT_(field, symbol, type) {symbol, offsetof(vs_ze_api, field), 0},
    VS_ZE_REQUIRED(VS_ZE_REQ_)
    VS_ZE_OPTIONAL(VS_ZE_OPT_)
#undef VS_ZE_REQ_
#undef VS_ZE_OPT_
};

static void set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || !why_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

/* dlopen the loader: the copy the process already has (torch's XPU build
 * links it), else a fresh load. RTLD_LOCAL: its symbols do not become global
 * through us. */
static void *open_loader(vs_ze_lib *lib, char *why, size_t why_len)
{
    const char *env = secure_getenv("VRAMSWAP_LIBZE");
    const char *name = (env && *env) ? env : "libze_loader.so.1";
    snprintf(lib->path, sizeof lib->path, "%s", name);
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!h)
        h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *err = dlerror();
        set_why(why, why_len, "%s not found (%s)", name, err ? err : "dlopen failed");
    }
    return h;
}

vs_status vs_ze_api_load(vs_ze_lib *lib, vs_ze_api *api, char *why, size_t why_len)
{
    if (!lib || !api)
        return VS_ERR_INVALID_ARGUMENT;
    memset(lib, 0, sizeof *lib);
    memset(api, 0, sizeof *api);
    void *h = open_loader(lib, why, why_len);
    if (!h)
        return VS_ERR_NOT_SUPPORTED;
    for (size_t i = 0; i < sizeof vs_ze_entries / sizeof vs_ze_entries[0]; i++) {
        const vs_ze_entry *e = &vs_ze_entries[i];
        void *fn = dlsym(h, e->symbol);
        if (!fn && e->required) {
            /* The handle stays open: a library the process loaded is not ours to unload. */
            set_why(why, why_len, "the Level Zero loader (%s) lacks %s", lib->path, e->symbol);
            memset(api, 0, sizeof *api);
            return VS_ERR_NOT_SUPPORTED;
        }
        memcpy((char *)api + e->offset, &fn, sizeof fn);
    }
    lib->handle = h;
    return VS_OK;
}

const char *vs_ze_result_name(ze_result_t r)
{
    switch (r) {
#define VS_ZE_NAME_(code) \
    case code:            \
        return #code;
        VS_ZE_NAME_(ZE_RESULT_SUCCESS)
        VS_ZE_NAME_(ZE_RESULT_NOT_READY)
        VS_ZE_NAME_(ZE_RESULT_ERROR_DEVICE_LOST)
        VS_ZE_NAME_(ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY)
        VS_ZE_NAME_(ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY)
        VS_ZE_NAME_(ZE_RESULT_ERROR_DEVICE_REQUIRES_RESET)
        VS_ZE_NAME_(ZE_RESULT_ERROR_DEVICE_IN_LOW_POWER_STATE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS)
        VS_ZE_NAME_(ZE_RESULT_ERROR_NOT_AVAILABLE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_DEPENDENCY_UNAVAILABLE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNINITIALIZED)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNSUPPORTED_VERSION)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNSUPPORTED_FEATURE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_ARGUMENT)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_NULL_HANDLE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_HANDLE_OBJECT_IN_USE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_NULL_POINTER)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_SIZE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNSUPPORTED_SIZE)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNSUPPORTED_ALIGNMENT)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_SYNCHRONIZATION_OBJECT)
        VS_ZE_NAME_(ZE_RESULT_ERROR_INVALID_ENUMERATION)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNSUPPORTED_ENUMERATION)
        VS_ZE_NAME_(ZE_RESULT_ERROR_OVERLAPPING_REGIONS)
        VS_ZE_NAME_(ZE_RESULT_ERROR_UNKNOWN)
#undef VS_ZE_NAME_
    default:
        return "ZE_RESULT_?";
    }
}

/* Note [Level Zero result mapping]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY and ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY
 * are normal answers (the core evicts and retries, or reports out of memory):
 * VS_ERR_OUT_OF_MEMORY, logged at debug level only. ZE_RESULT_NOT_READY is
 * transient (an event not yet signaled; the analogue of CUDA_ERROR_NOT_READY
 * from a mapping call): VS_ERR_NOT_READY, which the core retries and counts.
 * Every other code is a failure: logged with its name and hexadecimal value (Level Zero has no
 * error-string call in spec 1.4), then VS_ERR_BACKEND.
 */
vs_status vs_ze_result(ze_result_t r, const char *what)
{
    switch (r) {
    case ZE_RESULT_SUCCESS:
        return VS_OK;
    case ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY:
    case ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY:
        vs_backend_log(VS_LOG_DEBUG, "level_zero: %s: %s", what, vs_ze_result_name(r));
        return VS_ERR_OUT_OF_MEMORY;
    case ZE_RESULT_NOT_READY:
        return VS_ERR_NOT_READY;
    default:
        break;
    }
    /* At exit the driver may be torn down before us: not worth an error. */
    int level = r == ZE_RESULT_ERROR_UNINITIALIZED ? VS_LOG_INFO : VS_LOG_ERROR;
    vs_backend_log(level, "level_zero: %s failed: %s (0x%x)", what, vs_ze_result_name(r),
                   (unsigned)r);
    return VS_ERR_BACKEND;
}
