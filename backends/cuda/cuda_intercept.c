/* Allocation interception for CUDA: inline hooks on libcuda's allocation entry
 * points, reporting to the core's sink (vs_intercept_sink).
 *
 * Note [CUDA allocation hooks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: PyTorch's caching allocator, cuBLAS workspaces and other models
 * allocate device memory behind our back. To keep VBAR pages from being the
 * reason those allocations fail, every allocation first asks the core to make
 * room (evicting unpinned VBAR pages), and a driver out-of-memory evicts more
 * and retries once.
 *
 * Approach: the hook engine (backends/common/hook) patches the first bytes of
 * the real driver functions, resolved through cuGetProcAddress like the
 * runtime resolves them (libcudart calls the very same functions through
 * pointers, so patching the bodies catches every caller, whatever table it
 * took the address from). Hooked: cuMemAlloc_v2, cuMemFree_v2,
 * cuMemAllocAsync, cuMemFreeAsync, cuMemAllocFromPoolAsync, their per-thread
 * default-stream (_ptsz) variants when the driver has distinct functions for
 * them (the same address is hooked once), and cuMemCreate/cuMemRelease, which
 * PyTorch's expandable_segments uses (comfy-aimdo never saw those; for
 * cuMemCreate the tracked "pointer" is the allocation handle).
 *
 * An allocation hook: find the device (cuCtxGetDevice of the current context,
 * or cuMemCreate's location), sink->before_alloc (VS_ERR_OUT_OF_MEMORY: fail
 * with CUDA_ERROR_OUT_OF_MEMORY without calling the driver), call the original,
 * on CUDA_ERROR_OUT_OF_MEMORY sink->on_oom and retry once, on success
 * sink->after_alloc. A free hook: sink->on_free, then the original.
 *
 * Install is all or nothing: if any resolvable entry point cannot be patched
 * (an allocation counted whose free is never seen would stay counted forever),
 * the ones already patched are restored and install answers
 * VS_ERR_NOT_SUPPORTED with the engine's reason; vramswap then runs without
 * interception, budgeting with its periodic cuMemGetInfo poll alone.
 *
 * Note [Own calls bypass the hooks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * The backend's own cuMemCreate/cuMemRelease (VBAR and scratch pages) must not
 * be counted as foreign allocations, and must not call the sink: the core calls
 * the backend with a device lock held and the sink takes device locks. Two
 * mechanisms:
 * - while installed, the table entries of hooked functions hold the engine's
 *   trampolines (the original code), so calls through the table never reach a
 *   hook; they are swapped with atomic stores and read with atomic loads
 *   (VS_CUDA_HOOKED_ENTRY);
 * - a thread-local guard is set around the backend's own calls and around the
 *   sink and driver calls a hook makes. A hook entered with the guard set calls
 *   the original at once. This covers the instant between patching and the
 *   table swap, and any driver-internal or sink-side allocation a hook causes
 *   (no recursion, no double counting).
 *
 * Limitations: cuMemAllocAsync and cuMemAllocFromPoolAsync are attributed to
 * the current context's device, not to the stream's or pool's; memory a pool
 * keeps after cuMemFreeAsync is seen only through the free-memory poll. Frees
 * are attributed with cuPointerGetAttribute / the handle's properties when more
 * than one device exists. On failure of the driver's free, the pointer is
 * already uncounted.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/hook/hook.h"
#include "cuda/cuda_internal.h"

/* Each hooked entry point: its field in the table and our replacement
 * (vs_cuda_hook_<field> below). */
#define VS_CUDA_HOOKS(_)                                                       \
    _(MemAlloc, "cuMemAlloc_v2", -1)                                           \
    _(MemFree, "cuMemFree_v2", -1)                                             \
    _(MemAllocAsync, "cuMemAllocAsync", -1)                                    \
    _(MemFreeAsync, "cuMemFreeAsync", -1)                                      \
    _(MemAllocFromPoolAsync, "cuMemAllocFromPoolAsync", -1)                    \
    _(MemAllocAsync_ptsz, "cuMemAllocAsync_ptsz", VS_CUDA_HOOK_MemAllocAsync)  \
    _(MemFreeAsync_ptsz, "cuMemFreeAsync_ptsz", VS_CUDA_HOOK_MemFreeAsync)     \
    _(MemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync_ptsz",              \
      VS_CUDA_HOOK_MemAllocFromPoolAsync)                                      \
    _(MemCreate, "cuMemCreate", -1)                                            \
    _(MemRelease, "cuMemRelease", -1)

enum {
#define VS_CUDA_HOOK_ENUM_(field, name, plain) VS_CUDA_HOOK_##field,
    VS_CUDA_HOOKS(VS_CUDA_HOOK_ENUM_)
#undef VS_CUDA_HOOK_ENUM_
    VS_CUDA_HOOK_COUNT_
};

typedef struct vs_cuda_hook_slot {
    const char *name;      /* driver function, for messages */
    size_t field;          /* offsetof(vs_cuda_api, <field>) */
    int plain;             /* for a _ptsz variant: the slot of the plain one, else -1 */
    void *replacement;     /* vs_cuda_hook_<field> */
    void *target;          /* the driver function, as resolved at init */
    void *original;        /* trampoline (the original code); read atomically */
    vs_hook_t *hook;       /* installed by this slot; NULL for aliases and when off */
} vs_cuda_hook_slot;

/* Interception state. `lock` serializes install and remove; hooks read `active`
 * (acquire) and only then `sink`, which install writes before publishing. */
typedef struct vs_cuda_intercept {
    pthread_mutex_t lock;
    int installed;                     /* hooks are in place (under lock) */
    int active;                        /* hooks report to the sink; atomic */
    vs_intercept_sink sink;            /* copy of the core's sink */
    vs_cuda_hook_slot slots[VS_CUDA_HOOK_COUNT_];
} vs_cuda_intercept;

static vs_cuda_intercept vs_cuda_hooks = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .slots = {
#define VS_CUDA_HOOK_SLOT_(f, name_, plain_) \
    [VS_CUDA_HOOK_##f] = {.name = name_, .field = offsetof(vs_cuda_api, f), .plain = plain_},
        VS_CUDA_HOOKS(VS_CUDA_HOOK_SLOT_)
#undef VS_CUDA_HOOK_SLOT_
    },
};

/* ---------------------------------------------------------------- the guard */

static _Thread_local int vs_cuda_guard_depth;

void vs_cuda_guard_enter(void)
{
    vs_cuda_guard_depth++;
}

void vs_cuda_guard_leave(void)
{
    vs_cuda_guard_depth--;
}

/* ---------------------------------------------------------------- helpers */

static void **table_field(vs_cuda *c, const vs_cuda_hook_slot *s)
{
    return (void **)((char *)&c->api + s->field);
}

/* The original code of a hooked function. The engine publishes the trampoline
 * when it returns from install; a hook entered in that instant waits for it. */
static void *original_of(vs_cuda_hook_slot *s)
{
    void *fn = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    while (!fn) {
        sched_yield();
        fn = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    }
    return fn;
}

/* The hooks report only when active and not re-entered (Note [Own calls bypass the hooks]). */
static const vs_intercept_sink *reporting_sink(void)
{
    if (vs_cuda_guard_depth > 0)
        return NULL;
    if (!__atomic_load_n(&vs_cuda_hooks.active, __ATOMIC_ACQUIRE))
        return NULL;
    return &vs_cuda_hooks.sink;
}

/* vramswap's ordinal of a driver ordinal (CUmemLocation.id), -1 if not exposed. */
static int ordinal_of_cuda(const vs_cuda *c, int cuda_ordinal)
{
    for (int i = 0; i < c->count; i++)
        if (c->cuda_ordinal[i] == cuda_ordinal)
            return i;
    return -1;
}

/* With a single device there is nothing to find out. */
static bool single_device(const vs_cuda *c)
{
    return c->count == 1 && c->cuda_count == 1;
}

/* The device of the calling thread's current context. */
static int current_ordinal(const vs_cuda *c)
{
    if (single_device(c))
        return 0;
    CUdevice d;
    if (c->api.CtxGetDevice(&d) != CUDA_SUCCESS)
        return -1;
    return vs_cuda_ordinal_of(c, d);
}

/* The device a device pointer belongs to (for frees). */
static int pointer_ordinal(const vs_cuda *c, CUdeviceptr p)
{
    if (single_device(c))
        return 0;
    int ord = -1;
    if (c->api.PointerGetAttribute &&
        c->api.PointerGetAttribute(&ord, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p) == CUDA_SUCCESS)
        return ordinal_of_cuda(c, ord);
    return current_ordinal(c);
}

/* The device a cuMemCreate handle's memory lives on, -1 when not device memory. */
static int handle_ordinal(const vs_cuda *c, CUmemGenericAllocationHandle h)
{
    if (single_device(c))
        return 0;
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    if (c->api.MemGetAllocationPropertiesFromHandle &&
        c->api.MemGetAllocationPropertiesFromHandle(&prop, h) == CUDA_SUCCESS) {
        if (prop.location.type != CU_MEM_LOCATION_TYPE_DEVICE)
            return -1;
        return ordinal_of_cuda(c, prop.location.id);
    }
    return current_ordinal(c);
}

/* One allocation through the driver, retried by intercept_alloc. */
typedef CUresult (*vs_cuda_attempt_fn)(void *call);

/* The allocation protocol (Note [CUDA allocation hooks]); `result` is read
 * after a successful attempt (the new pointer or handle). */
static CUresult intercept_alloc(const vs_intercept_sink *sink, int ordinal, uint64_t size,
                                vs_cuda_attempt_fn attempt, void *call,
                                const unsigned long long *result)
{
    if (!sink || ordinal < 0 || size == 0)
        return attempt(call);
    vs_cuda_guard_enter();
    if (sink->before_alloc(sink->user, ordinal, size) == VS_ERR_OUT_OF_MEMORY) {
        vs_cuda_guard_leave();
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CUresult r = attempt(call);
    if (r == CUDA_ERROR_OUT_OF_MEMORY && sink->on_oom(sink->user, ordinal, size) == VS_OK)
        r = attempt(call);
    if (r == CUDA_SUCCESS)
        sink->after_alloc(sink->user, ordinal, (uintptr_t)*result, size);
    vs_cuda_guard_leave();
    return r;
}

/* A free: uncount, then the driver. */
static CUresult intercept_free(const vs_intercept_sink *sink, int ordinal, uintptr_t ptr,
                               vs_cuda_attempt_fn attempt, void *call)
{
    if (!sink || ordinal < 0 || ptr == 0)
        return attempt(call);
    vs_cuda_guard_enter();
    sink->on_free(sink->user, ordinal, ptr);
    CUresult r = attempt(call);
    vs_cuda_guard_leave();
    return r;
}

static vs_cuda_hook_slot *slot(int i)
{
    return &vs_cuda_hooks.slots[i];
}

/* ---------------------------------------------------------------- replacements */

/* cuMemAlloc_v2 */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUdeviceptr *dptr;
    size_t size;
} vs_cuda_call_alloc;

static CUresult attempt_alloc(void *p)
{
    vs_cuda_call_alloc *a = p;
    __typeof__(cuMemAlloc_v2) *fn = (__typeof__(cuMemAlloc_v2) *)original_of(a->slot);
    return fn(a->dptr, a->size);
}

static CUresult vs_cuda_hook_MemAlloc(CUdeviceptr *dptr, size_t size)
{
    vs_cuda_call_alloc a = {slot(VS_CUDA_HOOK_MemAlloc), dptr, size};
    const vs_intercept_sink *sink = dptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_cuda_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_alloc, &a, dptr);
}

/* cuMemFree_v2 */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUdeviceptr ptr;
} vs_cuda_call_free;

static CUresult attempt_free(void *p)
{
    vs_cuda_call_free *a = p;
    __typeof__(cuMemFree_v2) *fn = (__typeof__(cuMemFree_v2) *)original_of(a->slot);
    return fn(a->ptr);
}

static CUresult vs_cuda_hook_MemFree(CUdeviceptr ptr)
{
    vs_cuda_call_free a = {slot(VS_CUDA_HOOK_MemFree), ptr};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_cuda_instance(), ptr) : -1;
    return intercept_free(sink, ord, (uintptr_t)ptr, attempt_free, &a);
}

/* cuMemAllocAsync and its _ptsz variant */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUdeviceptr *dptr;
    size_t size;
    CUstream stream;
} vs_cuda_call_alloc_async;

static CUresult attempt_alloc_async(void *p)
{
    vs_cuda_call_alloc_async *a = p;
    __typeof__(cuMemAllocAsync) *fn = (__typeof__(cuMemAllocAsync) *)original_of(a->slot);
    return fn(a->dptr, a->size, a->stream);
}

static CUresult alloc_async(int which, CUdeviceptr *dptr, size_t size, CUstream stream)
{
    vs_cuda_call_alloc_async a = {slot(which), dptr, size, stream};
    const vs_intercept_sink *sink = dptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_cuda_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_alloc_async, &a, dptr);
}

static CUresult vs_cuda_hook_MemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream stream)
{
    return alloc_async(VS_CUDA_HOOK_MemAllocAsync, dptr, size, stream);
}

static CUresult vs_cuda_hook_MemAllocAsync_ptsz(CUdeviceptr *dptr, size_t size, CUstream stream)
{
    return alloc_async(VS_CUDA_HOOK_MemAllocAsync_ptsz, dptr, size, stream);
}

/* cuMemFreeAsync and its _ptsz variant */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUdeviceptr ptr;
    CUstream stream;
} vs_cuda_call_free_async;

static CUresult attempt_free_async(void *p)
{
    vs_cuda_call_free_async *a = p;
    __typeof__(cuMemFreeAsync) *fn = (__typeof__(cuMemFreeAsync) *)original_of(a->slot);
    return fn(a->ptr, a->stream);
}

static CUresult free_async(int which, CUdeviceptr ptr, CUstream stream)
{
    vs_cuda_call_free_async a = {slot(which), ptr, stream};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_cuda_instance(), ptr) : -1;
    return intercept_free(sink, ord, (uintptr_t)ptr, attempt_free_async, &a);
}

static CUresult vs_cuda_hook_MemFreeAsync(CUdeviceptr ptr, CUstream stream)
{
    return free_async(VS_CUDA_HOOK_MemFreeAsync, ptr, stream);
}

static CUresult vs_cuda_hook_MemFreeAsync_ptsz(CUdeviceptr ptr, CUstream stream)
{
    return free_async(VS_CUDA_HOOK_MemFreeAsync_ptsz, ptr, stream);
}

/* cuMemAllocFromPoolAsync and its _ptsz variant */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUdeviceptr *dptr;
    size_t size;
    CUmemoryPool pool;
    CUstream stream;
} vs_cuda_call_alloc_pool;

static CUresult attempt_alloc_pool(void *p)
{
    vs_cuda_call_alloc_pool *a = p;
    __typeof__(cuMemAllocFromPoolAsync) *fn =
        (__typeof__(cuMemAllocFromPoolAsync) *)original_of(a->slot);
    return fn(a->dptr, a->size, a->pool, a->stream);
}

static CUresult alloc_pool(int which, CUdeviceptr *dptr, size_t size, CUmemoryPool pool,
                           CUstream stream)
{
    vs_cuda_call_alloc_pool a = {slot(which), dptr, size, pool, stream};
    const vs_intercept_sink *sink = dptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_cuda_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_alloc_pool, &a, dptr);
}

static CUresult vs_cuda_hook_MemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size,
                                                   CUmemoryPool pool, CUstream stream)
{
    return alloc_pool(VS_CUDA_HOOK_MemAllocFromPoolAsync, dptr, size, pool, stream);
}

static CUresult vs_cuda_hook_MemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t size,
                                                        CUmemoryPool pool, CUstream stream)
{
    return alloc_pool(VS_CUDA_HOOK_MemAllocFromPoolAsync_ptsz, dptr, size, pool, stream);
}

/* cuMemCreate: PyTorch's expandable segments. */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUmemGenericAllocationHandle *handle;
    size_t size;
    const CUmemAllocationProp *prop;
    unsigned long long flags;
} vs_cuda_call_create;

static CUresult attempt_create(void *p)
{
    vs_cuda_call_create *a = p;
    __typeof__(cuMemCreate) *fn = (__typeof__(cuMemCreate) *)original_of(a->slot);
    return fn(a->handle, a->size, a->prop, a->flags);
}

static CUresult vs_cuda_hook_MemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                                       const CUmemAllocationProp *prop, unsigned long long flags)
{
    vs_cuda_call_create a = {slot(VS_CUDA_HOOK_MemCreate), handle, size, prop, flags};
    const vs_intercept_sink *sink = handle && prop ? reporting_sink() : NULL;
    int ord = -1;
    /* Only device memory counts against a device (not host or host-NUMA locations). */
    if (sink && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE)
        ord = ordinal_of_cuda(vs_cuda_instance(), prop->location.id);
    return intercept_alloc(sink, ord, size, attempt_create, &a, handle);
}

/* cuMemRelease */
typedef struct {
    vs_cuda_hook_slot *slot;
    CUmemGenericAllocationHandle handle;
} vs_cuda_call_release;

static CUresult attempt_release(void *p)
{
    vs_cuda_call_release *a = p;
    __typeof__(cuMemRelease) *fn = (__typeof__(cuMemRelease) *)original_of(a->slot);
    return fn(a->handle);
}

static CUresult vs_cuda_hook_MemRelease(CUmemGenericAllocationHandle handle)
{
    vs_cuda_call_release a = {slot(VS_CUDA_HOOK_MemRelease), handle};
    const vs_intercept_sink *sink = handle ? reporting_sink() : NULL;
    int ord = sink ? handle_ordinal(vs_cuda_instance(), handle) : -1;
    return intercept_free(sink, ord, (uintptr_t)handle, attempt_release, &a);
}

/* Our replacement for slot i as a code address. The initialization checks
 * that each replacement has exactly the driver function's type. */
static void *replacement_of(int i)
{
    void *p = NULL;
    switch (i) {
#define VS_CUDA_HOOK_CASE_(field, name, plain)                                     \
    case VS_CUDA_HOOK_##field: {                                                   \
        __typeof__(((vs_cuda_api *)0)->field) fn = vs_cuda_hook_##field;           \
        memcpy(&p, &fn, sizeof p);                                                 \
        break;                                                                     \
    }
        VS_CUDA_HOOKS(VS_CUDA_HOOK_CASE_)
#undef VS_CUDA_HOOK_CASE_
    default:
        break;
    }
    return p;
}

/* ---------------------------------------------------------------- install / remove */

/* Undo every patch (under lock). Returns the first failure. */
static vs_status unpatch_all(vs_cuda *c, vs_cuda_intercept *ic)
{
    vs_status first = VS_OK;
    for (int i = VS_CUDA_HOOK_COUNT_ - 1; i >= 0; i--) {
        vs_cuda_hook_slot *s = &ic->slots[i];
        if (s->hook) {
            vs_status st = vs_hook_remove(s->hook);
            if (st != VS_OK) {
                /* Still patched: calls keep arriving here, pass through (not
                 * active) and our table keeps the trampoline. */
                vs_backend_log(VS_LOG_ERROR, "cuda: could not unhook %s: %s", s->name,
                               vs_status_name(st));
                if (first == VS_OK)
                    first = st;
                continue;
            }
            s->hook = NULL;
        }
        if (s->target) {
            /* A thread still inside a hook calls the restored function. */
            __atomic_store_n(table_field(c, s), s->target, __ATOMIC_RELEASE);
            __atomic_store_n(&s->original, s->target, __ATOMIC_RELEASE);
        }
    }
    return first;
}

vs_status vs_cuda_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len)
{
    if (!sink || !sink->before_alloc || !sink->on_oom || !sink->after_alloc || !sink->on_free)
        return VS_ERR_INVALID_ARGUMENT;
    vs_cuda *c = vs_cuda_instance();
    if (c->count == 0) {
        if (why && why_len)
            snprintf(why, why_len, "the CUDA backend is not initialized");
        return VS_ERR_NOT_SUPPORTED;
    }
    vs_cuda_intercept *ic = &vs_cuda_hooks;
    pthread_mutex_lock(&ic->lock);
    if (ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    for (int i = 0; i < VS_CUDA_HOOK_COUNT_; i++) {
        if (ic->slots[i].hook) {
            /* An earlier remove failed and the patch is still there. */
            pthread_mutex_unlock(&ic->lock);
            if (why && why_len)
                snprintf(why, why_len, "%s is still hooked from an earlier install",
                         ic->slots[i].name);
            return VS_ERR_NOT_SUPPORTED;
        }
    }
    ic->sink = *sink;
    vs_status st = VS_OK;
    for (int i = 0; i < VS_CUDA_HOOK_COUNT_ && st == VS_OK; i++) {
        vs_cuda_hook_slot *s = &ic->slots[i];
        s->target = *table_field(c, s);
        s->original = NULL;
        s->hook = NULL;
        if (!s->target)
            continue;  /* optional and absent */
        if (s->plain >= 0 && ic->slots[s->plain].target == s->target) {
            /* The driver's _ptsz is the plain function: hooked once, by the plain slot. */
            s->original = ic->slots[s->plain].original;
            continue;
        }
        s->replacement = replacement_of(i);
        void *orig = NULL;
        char reason[192] = "";
        st = vs_hook_install(s->target, s->replacement, &orig, &s->hook, reason, sizeof reason);
        if (st != VS_OK) {
            s->hook = NULL;
            if (why && why_len)
                snprintf(why, why_len, "cannot hook %s: %s", s->name,
                         reason[0] ? reason : vs_status_name(st));
            break;
        }
        __atomic_store_n(&s->original, orig, __ATOMIC_RELEASE);
    }
    if (st != VS_OK) {
        (void)unpatch_all(c, ic);
        pthread_mutex_unlock(&ic->lock);
        vs_backend_log(VS_LOG_WARN, "cuda: interception not installed: %s", why ? why : "");
        return st == VS_ERR_OUT_OF_MEMORY ? st : VS_ERR_NOT_SUPPORTED;
    }
    /* Our own calls now go to the original code (Note [Own calls bypass the hooks]). */
    for (int i = 0; i < VS_CUDA_HOOK_COUNT_; i++) {
        vs_cuda_hook_slot *s = &ic->slots[i];
        if (s->target)
            __atomic_store_n(table_field(c, s), s->original, __ATOMIC_RELEASE);
    }
    ic->installed = 1;
    __atomic_store_n(&ic->active, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ic->lock);
    vs_backend_log(VS_LOG_INFO, "cuda: allocation interception installed");
    return VS_OK;
}

vs_status vs_cuda_intercept_remove(void)
{
    vs_cuda *c = vs_cuda_instance();
    vs_cuda_intercept *ic = &vs_cuda_hooks;
    pthread_mutex_lock(&ic->lock);
    if (!ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    __atomic_store_n(&ic->active, 0, __ATOMIC_RELEASE);
    vs_status st = unpatch_all(c, ic);
    ic->installed = 0;
    pthread_mutex_unlock(&ic->lock);
    return st;
}
