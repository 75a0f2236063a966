/* Loading libamdhip64 at run time and resolving the runtime table
 * (Note [HIP runtime table] in hip_api.h).
 */
#include "hip/hip_api.h"

#include <dlfcn.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
               "function pointers are stored through void * (dlsym)");

/* One resolvable entry of the table. */
typedef struct vs_hip_entry {
    const char *symbol;       /* exported name */
    size_t offset;            /* of the field in vs_hip_api */
    int required;             /* 1: missing makes the backend unavailable */
} vs_hip_entry;

static const vs_hip_entry vs_hip_entries[] = {
#define VS_HIP_REQ_(field, symbol, proto) {symbol, offsetof(vs_hip_api, field), 1},
#define VS_HIP_OPT_(field, symbol, proto) {symbol, offsetof(vs_hip_api, field), 0},
    VS_HIP_REQUIRED(VS_HIP_REQ_)
    VS_HIP_OPTIONAL(VS_HIP_OPT_)
#undef VS_HIP_REQ_
#undef VS_HIP_OPT_
};

/* Note [One HIP runtime per process]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Two copies of the HIP runtime in one process do not share devices, streams
 * or allocations: VBAR memory mapped through one is unknown to kernels
 * launched through the other, and the hooks would patch the copy nobody calls.
 * PyTorch's ROCm wheels bundle their own libamdhip64 (in torch/lib), which is
 * not the system's. So the copy already in the process wins, found by file
 * name among the loaded objects (whatever its directory or soname), then by
 * soname with RTLD_NOLOAD; only when none is loaded is a fresh one opened, by
 * the names below. $VRAMSWAP_LIBHIP names the one library to use (the tests
 * load the emulator that way) and disables the search. */

/* The sonames to try, newest ABI first after the development symlink. */
static const char *const vs_hip_names[] = {
    "libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5",
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

/* dl_iterate_phdr callback: the path of the first loaded object whose file
 * name starts with "libamdhip64" (copied into the vs_hip_lib's path). */
static int find_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    vs_hip_lib *lib = arg;
    const char *path = info->dlpi_name;
    if (!path || !*path)
        return 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "libamdhip64", 11) != 0)
        return 0;
    snprintf(lib->path, sizeof lib->path, "%s", path);
    return 1;
}

/* dlopen the runtime (Note [One HIP runtime per process]).
 * RTLD_LOCAL: its symbols do not become global through us. */
static void *open_runtime(vs_hip_lib *lib, char *why, size_t why_len)
{
    const char *env = secure_getenv("VRAMSWAP_LIBHIP");
    const char *const *names = vs_hip_names;
    size_t n = sizeof vs_hip_names / sizeof vs_hip_names[0];
    if (env && *env) {
        names = &env;
        n = 1;
    } else if (dl_iterate_phdr(find_loaded, lib)) {
        void *h = dlopen(lib->path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (h) {
            lib->preloaded = 1;
            return h;
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (h) {
            snprintf(lib->path, sizeof lib->path, "%s", names[i]);
            lib->preloaded = 1;
            return h;
        }
    }
    const char *first_err = NULL;
    char err[192] = "";
    for (size_t i = 0; i < n; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) {
            snprintf(lib->path, sizeof lib->path, "%s", names[i]);
            return h;
        }
        if (!first_err) {
            first_err = dlerror();
            snprintf(err, sizeof err, "%s", first_err ? first_err : "dlopen failed");
            first_err = err;
        }
    }
    snprintf(lib->path, sizeof lib->path, "%s", names[0]);
    if (n == 1)
        set_why(why, why_len, "%s not found (%s)", names[0], err);
    else
        set_why(why, why_len, "libamdhip64 not found (tried %s, .so.7, .so.6, .so.5: %s)",
                names[0], err);
    return NULL;
}

vs_status vs_hip_api_load(vs_hip_lib *lib, vs_hip_api *api, char *why, size_t why_len)
{
    if (!lib || !api)
        return VS_ERR_INVALID_ARGUMENT;
    memset(lib, 0, sizeof *lib);
    memset(api, 0, sizeof *api);
    void *h = open_runtime(lib, why, why_len);
    if (!h)
        return VS_ERR_NOT_SUPPORTED;
    for (size_t i = 0; i < sizeof vs_hip_entries / sizeof vs_hip_entries[0]; i++) {
        const vs_hip_entry *e = &vs_hip_entries[i];
        void *fn = dlsym(h, e->symbol);
        if (!fn && e->required) {
            /* The handle stays open: a library the process loaded is not ours to unload. */
            set_why(why, why_len, "the HIP runtime (%s) lacks %s (ROCm older than 5.1?)",
                    lib->path, e->symbol);
            memset(api, 0, sizeof *api);
            return VS_ERR_NOT_SUPPORTED;
        }
        memcpy((char *)api + e->offset, &fn, sizeof fn);
    }
    lib->handle = h;
    return VS_OK;
}

const char *vs_hip_error_name(const vs_hip_api *api, hipError_t r)
{
    const char *name = api && api->GetErrorName ? api->GetErrorName(r) : NULL;
    return name ? name : "hipError?";
}

/* Note [HIP result mapping]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * hipErrorOutOfMemory (also spelled hipErrorMemoryAllocation) is a normal
 * answer (the core evicts and retries), so it becomes VS_ERR_OUT_OF_MEMORY
 * without an error log. hipErrorNotReady is transient: hipEventQuery returns it
 * while work is pending, and a VMM call that returns it is retried by the core
 * (bounded, counted), as CUDA's NOT_READY from cuMemSetAccess after forced
 * evictions is. Every other code is a failure: logged with the runtime's own
 * name and text, then VS_ERR_BACKEND. HIP keeps a sticky per-thread "last
 * error"; we never read it (every call's result is checked where it is made),
 * so the application's hipGetLastError is not disturbed beyond what the
 * runtime itself records.
 */
vs_status vs_hip_result(const vs_hip_api *api, hipError_t r, const char *what)
{
    switch (r) {
    case hipSuccess:
        return VS_OK;
    case hipErrorOutOfMemory:
        vs_backend_log(VS_LOG_DEBUG, "hip: %s: hipErrorOutOfMemory", what);
        return VS_ERR_OUT_OF_MEMORY;
    case hipErrorNotReady:
        return VS_ERR_NOT_READY;
    default:
        break;
    }
    const char *text = api && api->GetErrorString ? api->GetErrorString(r) : NULL;
    /* At exit the runtime may be torn down before us: not worth an error. */
    int level = r == hipErrorDeinitialized ? VS_LOG_INFO : VS_LOG_ERROR;
    vs_backend_log(level, "hip: %s failed: %s (%d): %s", what, vs_hip_error_name(api, r), (int)r,
                   text ? text : "unknown error");
    return VS_ERR_BACKEND;
}
