/* Loading libcuda at run time and resolving the driver table
 * (Note [CUDA driver table] in cuda_api.h).
 */
#include "cuda/cuda_api.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The two bootstrap entry points, the only symbols taken with dlsym. v2 (CUDA
 * 12.0+) reports why a symbol is missing; v1 (11.3-11.8) does not. */
typedef CUresult (*vs_cuda_getproc_v2)(const char *symbol, void **pfn, int cuda_version,
                                       cuuint64_t flags, CUdriverProcAddressQueryResult *status);
typedef CUresult (*vs_cuda_getproc_v1)(const char *symbol, void **pfn, int cuda_version,
                                       cuuint64_t flags);

_Static_assert(sizeof(void *) == sizeof(void (*)(void)),
               "function pointers are stored through void * (dlsym, cuGetProcAddress)");

/* One resolvable entry of the table. */
typedef struct vs_cuda_entry {
    const char *symbol;       /* base name known to cuGetProcAddress */
    size_t offset;            /* of the field in vs_cuda_api */
    cuuint64_t flags;         /* CU_GET_PROC_ADDRESS_* */
    int required;             /* 1: missing makes the backend unavailable */
} vs_cuda_entry;

static const vs_cuda_entry vs_cuda_entries[] = {
#define VS_CUDA_REQ_(field, symbol, proto) \
    {symbol, offsetof(vs_cuda_api, field), CU_GET_PROC_ADDRESS_DEFAULT, 1},
#define VS_CUDA_OPT_(field, symbol, proto) \
    {symbol, offsetof(vs_cuda_api, field), CU_GET_PROC_ADDRESS_DEFAULT, 0},
#define VS_CUDA_PTSZ_(field, symbol, proto) \
    {symbol, offsetof(vs_cuda_api, field), CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, 0},
    VS_CUDA_REQUIRED(VS_CUDA_REQ_)
    VS_CUDA_OPTIONAL(VS_CUDA_OPT_)
    VS_CUDA_OPTIONAL_PTSZ(VS_CUDA_PTSZ_)
#undef VS_CUDA_REQ_
#undef VS_CUDA_OPT_
#undef VS_CUDA_PTSZ_
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

/* dlopen the driver: the copy the process already has (torch loaded it), else
 * a fresh load. RTLD_LOCAL: its symbols do not become global through us. */
static void *open_driver(vs_cuda_lib *lib, char *why, size_t why_len)
{
    const char *env = secure_getenv("VRAMSWAP_LIBCUDA");
    const char *name = (env && *env) ? env : "libcuda.so.1";
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

vs_status vs_cuda_api_load(vs_cuda_lib *lib, vs_cuda_api *api, char *why, size_t why_len)
{
    if (!lib || !api)
        return VS_ERR_INVALID_ARGUMENT;
    memset(lib, 0, sizeof *lib);
    memset(api, 0, sizeof *api);
    void *h = open_driver(lib, why, why_len);
    if (!h)
        return VS_ERR_NOT_SUPPORTED;

    vs_cuda_getproc_v2 getproc2 = (vs_cuda_getproc_v2)dlsym(h, "cuGetProcAddress_v2");
    vs_cuda_getproc_v1 getproc1 = getproc2 ? NULL : (vs_cuda_getproc_v1)dlsym(h, "cuGetProcAddress");
    if (!getproc2 && !getproc1) {
        /* The handle stays open: a library the process loaded is not ours to unload. */
        set_why(why, why_len, "%s has no cuGetProcAddress (driver older than CUDA 11.3)",
                lib->path);
        return VS_ERR_NOT_SUPPORTED;
    }
    lib->handle = h;
    lib->via_v2 = getproc2 != NULL;

    for (size_t i = 0; i < sizeof vs_cuda_entries / sizeof vs_cuda_entries[0]; i++) {
        const vs_cuda_entry *e = &vs_cuda_entries[i];
        void *fn = NULL;
        CUresult r;
        if (getproc2) {
            CUdriverProcAddressQueryResult qs = CU_GET_PROC_ADDRESS_SUCCESS;
            r = getproc2(e->symbol, &fn, VS_CUDA_ABI_VERSION, e->flags, &qs);
            if (qs != CU_GET_PROC_ADDRESS_SUCCESS)
                fn = NULL;
        } else {
            r = getproc1(e->symbol, &fn, VS_CUDA_ABI_VERSION, e->flags);
        }
        if (r != CUDA_SUCCESS)
            fn = NULL;
        if (!fn && e->required) {
            set_why(why, why_len, "the CUDA driver (%s) lacks %s", lib->path, e->symbol);
            memset(api, 0, sizeof *api);
            return VS_ERR_NOT_SUPPORTED;
        }
        memcpy((char *)api + e->offset, &fn, sizeof fn);
    }
    return VS_OK;
}

/* Note [CUDA result mapping]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~
 * CUDA_ERROR_OUT_OF_MEMORY is a normal answer (the core evicts and retries), so
 * it becomes VS_ERR_OUT_OF_MEMORY without an error log. CUDA_ERROR_NOT_READY is
 * transient: cuMemSetAccess returns it after forced evictions on consumer cards
 * (comfy-aimdo's "Fault failed: 2", cleared by a retry) and cuEventQuery returns
 * it while work is pending; the core retries and counts it. Every other code is
 * a failure: logged with the driver's own name and text, then VS_ERR_BACKEND.
 */
vs_status vs_cuda_result(const vs_cuda_api *api, CUresult r, const char *what)
{
    switch (r) {
    case CUDA_SUCCESS:
        return VS_OK;
    case CUDA_ERROR_OUT_OF_MEMORY:
        vs_backend_log(VS_LOG_DEBUG, "cuda: %s: CUDA_ERROR_OUT_OF_MEMORY", what);
        return VS_ERR_OUT_OF_MEMORY;
    case CUDA_ERROR_NOT_READY:
        return VS_ERR_NOT_READY;
    default:
        break;
    }
    const char *name = NULL, *text = NULL;
    if (api && api->GetErrorName && api->GetErrorName(r, &name) != CUDA_SUCCESS)
        name = NULL;
    if (api && api->GetErrorString && api->GetErrorString(r, &text) != CUDA_SUCCESS)
        text = NULL;
    /* At exit the driver may be torn down before us: not worth an error. */
    int level = r == CUDA_ERROR_DEINITIALIZED ? VS_LOG_INFO : VS_LOG_ERROR;
    vs_backend_log(level, "cuda: %s failed: %s (%d): %s", what, name ? name : "CUDA_ERROR_?",
                   (int)r, text ? text : "unknown error");
    return VS_ERR_BACKEND;
}
