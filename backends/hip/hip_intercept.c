/* Allocation interception for HIP: inline hooks on libamdhip64's allocation
 * entry points, reporting to the core's sink (vs_intercept_sink).
 *
 * Note [HIP allocation hooks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: PyTorch's ROCm caching allocator, hipBLAS/rocBLAS workspaces and
 * other models allocate device memory behind our back. To keep VBAR pages from
 * being the reason those allocations fail, every allocation first asks the core
 * to make room (evicting unpinned VBAR pages), and a runtime out-of-memory
 * evicts more and retries once.
 *
 * Approach: the hook engine (backends/common/hook) patches the first bytes of
 * the runtime's exported functions, found with dlsym in the copy of
 * libamdhip64 the process uses (torch's hipified c10 calls those very
 * functions, so patching the bodies catches every caller, whatever table it
 * took the address from). Hooked: hipMalloc, hipFree, hipExtMallocWithFlags
 * (the AMD extension ROCm builds of PyTorch allocate with), hipMallocAsync and
 * hipFreeAsync (stream-ordered, ROCm 5.1+); the last three are hooked when the
 * runtime has them.
 *
 * An allocation hook: find the device (the calling thread's current device,
 * hipGetDevice), sink->before_alloc (VS_ERR_OUT_OF_MEMORY: fail with
 * hipErrorOutOfMemory without calling the runtime), call the original, on
 * hipErrorOutOfMemory sink->on_oom and retry once, on success
 * sink->after_alloc. A free hook: sink->on_free, then the original.
 *
 * Install is all or nothing: if any resolvable entry point cannot be patched
 * (an allocation counted whose free is never seen would stay counted forever),
 * the ones already patched are restored and install answers
 * VS_ERR_NOT_SUPPORTED with the engine's reason; vramswap then runs without
 * interception, budgeting with its periodic hipMemGetInfo poll alone.
 *
 * The engine stores each trampoline (the original code) into the slot's
 * `original` atomically *before* the patch goes live, so a thread entering a
 * hook at once finds it there; hooks read it with an acquire load.
 *
 * Note [HIP own calls]
 * ~~~~~~~~~~~~~~~~~~~~
 * The backend itself never calls a hooked function: its pages come from
 * hipMemCreate and go back with hipMemRelease, which are not hooked. So its
 * own memory is never counted as an intercepted allocation and never calls
 * the sink (which takes device locks the core may hold while calling the
 * backend). A thread-local guard covers the other way round: it is set around
 * the sink and runtime calls a hook makes, and a hook entered with it set calls
 * the original at once, so an allocation the runtime or the sink makes from
 * inside a hook is neither re-entered nor counted twice.
 *
 * Limitations: hipMallocAsync is attributed to the current device, not to the
 * stream's; memory a pool keeps after hipFreeAsync is seen only through the
 * free-memory poll; PyTorch's expandable_segments on ROCm (hipMemCreate) is not
 * intercepted. Frees are attributed with hipPointerGetAttribute when more than
 * one device exists. On failure of the runtime's free, the pointer is already
 * uncounted.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/hook/hook.h"
#include "hip/hip_internal.h"

/* Each hooked entry point: its field in the table and our replacement
 * (vs_hip_hook_<field> below). */
#define VS_HIP_HOOKS(_)                                                        \
    _(Malloc, "hipMalloc")                                                     \
    _(Free, "hipFree")                                                         \
    _(ExtMallocWithFlags, "hipExtMallocWithFlags")                             \
    _(MallocAsync, "hipMallocAsync")                                           \
    _(FreeAsync, "hipFreeAsync")

enum {
#define VS_HIP_HOOK_ENUM_(field, name) VS_HIP_HOOK_##field,
    VS_HIP_HOOKS(VS_HIP_HOOK_ENUM_)
#undef VS_HIP_HOOK_ENUM_
    VS_HIP_HOOK_COUNT_
};

typedef struct vs_hip_hook_slot {
    const char *name;      /* runtime function, for messages */
    size_t field;          /* offsetof(vs_hip_api, <field>) */
    void *target;          /* the runtime function, as resolved at init */
    void *original;        /* trampoline (the original code); written by the engine, read atomically */
    vs_hook_t *hook;       /* installed by this slot; NULL when off */
} vs_hip_hook_slot;

/* Interception state. `lock` serializes install and remove; hooks read `active`
 * (acquire) and only then `sink`, which install writes before publishing. */
typedef struct vs_hip_intercept {
    pthread_mutex_t lock;
    int installed;                     /* hooks are in place (under lock) */
    int active;                        /* hooks report to the sink; atomic */
    vs_intercept_sink sink;            /* copy of the core's sink */
    vs_hip_hook_slot slots[VS_HIP_HOOK_COUNT_];
} vs_hip_intercept;

static vs_hip_intercept vs_hip_hooks = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .slots = {
#define VS_HIP_HOOK_SLOT_(f, name_) [VS_HIP_HOOK_##f] = {.name = name_, .field = offsetof(vs_hip_api, f)},
        VS_HIP_HOOKS(VS_HIP_HOOK_SLOT_)
#undef VS_HIP_HOOK_SLOT_
    },
};

/* ---------------------------------------------------------------- the guard */

static _Thread_local int vs_hip_guard_depth;

/* ---------------------------------------------------------------- helpers */

static vs_hip_hook_slot *slot(int i)
{
    return &vs_hip_hooks.slots[i];
}

/* The original code of a hooked function. The engine publishes it before the
 * patch is live, so the loop never spins in practice; it guards against a
 * reader that saw the patch through another path first. */
static void *original_of(vs_hip_hook_slot *s)
{
    void *fn = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    while (!fn) {
        sched_yield();
        fn = __atomic_load_n(&s->original, __ATOMIC_ACQUIRE);
    }
    return fn;
}

/* The hooks report only when active and not re-entered (Note [HIP own calls]). */
static const vs_intercept_sink *reporting_sink(void)
{
    if (vs_hip_guard_depth > 0)
        return NULL;
    if (!__atomic_load_n(&vs_hip_hooks.active, __ATOMIC_ACQUIRE))
        return NULL;
    return &vs_hip_hooks.sink;
}

/* With a single device there is nothing to find out. */
static bool single_device(const vs_hip *h)
{
    return h->count == 1 && h->hip_count == 1;
}

/* The calling thread's current device. */
static int current_ordinal(const vs_hip *h)
{
    if (single_device(h))
        return 0;
    int d = 0;
    if (h->api.GetDevice(&d) != hipSuccess)
        return -1;
    return vs_hip_ordinal_of(h, d);
}

/* The device a device pointer belongs to (for frees). */
static int pointer_ordinal(const vs_hip *h, void *p)
{
    if (single_device(h))
        return 0;
    int ord = -1;
    if (h->api.PointerGetAttribute &&
        h->api.PointerGetAttribute(&ord, HIP_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p) == hipSuccess)
        return vs_hip_ordinal_of(h, ord);
    return current_ordinal(h);
}

/* One allocation through the runtime, retried by intercept_alloc. */
typedef hipError_t (*vs_hip_attempt_fn)(void *call);

/* The allocation protocol (Note [HIP allocation hooks]); *result is read after
 * a successful attempt (the new pointer). */
static hipError_t intercept_alloc(const vs_intercept_sink *sink, int ordinal, uint64_t size,
                                  vs_hip_attempt_fn attempt, void *call, void *const *result)
{
    if (!sink || ordinal < 0 || size == 0)
        return attempt(call);
    vs_hip_guard_depth++;
    hipError_t r;
    if (sink->before_alloc(sink->user, ordinal, size) == VS_ERR_OUT_OF_MEMORY) {
        r = hipErrorOutOfMemory;
    } else {
        r = attempt(call);
        if (r == hipErrorOutOfMemory && sink->on_oom(sink->user, ordinal, size) == VS_OK)
            r = attempt(call);
        if (r == hipSuccess)
            sink->after_alloc(sink->user, ordinal, (uintptr_t)*result, size);
    }
    vs_hip_guard_depth--;
    return r;
}

/* A free: uncount, then the runtime. */
static hipError_t intercept_free(const vs_intercept_sink *sink, int ordinal, void *ptr,
                                 vs_hip_attempt_fn attempt, void *call)
{
    if (!sink || ordinal < 0 || !ptr)
        return attempt(call);
    vs_hip_guard_depth++;
    sink->on_free(sink->user, ordinal, (uintptr_t)ptr);
    hipError_t r = attempt(call);
    vs_hip_guard_depth--;
    return r;
}

/* ---------------------------------------------------------------- replacements */

/* hipMalloc */
typedef struct {
    void **ptr;
    size_t size;
} vs_hip_call_malloc;

static hipError_t attempt_malloc(void *p)
{
    vs_hip_call_malloc *a = p;
    __typeof__(hipMalloc) *fn = (__typeof__(hipMalloc) *)original_of(slot(VS_HIP_HOOK_Malloc));
    return fn(a->ptr, a->size);
}

static hipError_t vs_hip_hook_Malloc(void **ptr, size_t size)
{
    vs_hip_call_malloc a = {ptr, size};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_hip_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_malloc, &a, ptr);
}

/* hipExtMallocWithFlags */
typedef struct {
    void **ptr;
    size_t size;
    unsigned int flags;
} vs_hip_call_ext_malloc;

static hipError_t attempt_ext_malloc(void *p)
{
    vs_hip_call_ext_malloc *a = p;
    __typeof__(hipExtMallocWithFlags) *fn =
        (__typeof__(hipExtMallocWithFlags) *)original_of(slot(VS_HIP_HOOK_ExtMallocWithFlags));
    return fn(a->ptr, a->size, a->flags);
}

static hipError_t vs_hip_hook_ExtMallocWithFlags(void **ptr, size_t size, unsigned int flags)
{
    vs_hip_call_ext_malloc a = {ptr, size, flags};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_hip_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_ext_malloc, &a, ptr);
}

/* hipMallocAsync */
typedef struct {
    void **ptr;
    size_t size;
    hipStream_t stream;
} vs_hip_call_malloc_async;

static hipError_t attempt_malloc_async(void *p)
{
    vs_hip_call_malloc_async *a = p;
    __typeof__(hipMallocAsync) *fn =
        (__typeof__(hipMallocAsync) *)original_of(slot(VS_HIP_HOOK_MallocAsync));
    return fn(a->ptr, a->size, a->stream);
}

static hipError_t vs_hip_hook_MallocAsync(void **ptr, size_t size, hipStream_t stream)
{
    vs_hip_call_malloc_async a = {ptr, size, stream};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? current_ordinal(vs_hip_instance()) : -1;
    return intercept_alloc(sink, ord, size, attempt_malloc_async, &a, ptr);
}

/* hipFree */
typedef struct {
    void *ptr;
} vs_hip_call_free;

static hipError_t attempt_free(void *p)
{
    vs_hip_call_free *a = p;
    __typeof__(hipFree) *fn = (__typeof__(hipFree) *)original_of(slot(VS_HIP_HOOK_Free));
    return fn(a->ptr);
}

static hipError_t vs_hip_hook_Free(void *ptr)
{
    vs_hip_call_free a = {ptr};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_hip_instance(), ptr) : -1;
    return intercept_free(sink, ord, ptr, attempt_free, &a);
}

/* hipFreeAsync */
typedef struct {
    void *ptr;
    hipStream_t stream;
} vs_hip_call_free_async;

static hipError_t attempt_free_async(void *p)
{
    vs_hip_call_free_async *a = p;
    __typeof__(hipFreeAsync) *fn = (__typeof__(hipFreeAsync) *)original_of(slot(VS_HIP_HOOK_FreeAsync));
    return fn(a->ptr, a->stream);
}

static hipError_t vs_hip_hook_FreeAsync(void *ptr, hipStream_t stream)
{
    vs_hip_call_free_async a = {ptr, stream};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_hip_instance(), ptr) : -1;
    return intercept_free(sink, ord, ptr, attempt_free_async, &a);
}

/* Our replacement for slot i as a code address. The initialization checks
 * that each replacement has exactly the runtime function's type. */
static void *replacement_of(int i)
{
    void *p = NULL;
    switch (i) {
#define VS_HIP_HOOK_CASE_(field, name)                                             \
    case VS_HIP_HOOK_##field: {                                                    \
        __typeof__(((vs_hip_api *)0)->field) fn = vs_hip_hook_##field;             \
        memcpy(&p, &fn, sizeof p);                                                 \
        break;                                                                     \
    }
        VS_HIP_HOOKS(VS_HIP_HOOK_CASE_)
#undef VS_HIP_HOOK_CASE_
    default:
        break;
    }
    return p;
}

/* ---------------------------------------------------------------- install / remove */

/* Undo every patch (under lock). Returns the first failure. */
static vs_status unpatch_all(vs_hip_intercept *ic)
{
    vs_status first = VS_OK;
    for (int i = VS_HIP_HOOK_COUNT_ - 1; i >= 0; i--) {
        vs_hip_hook_slot *s = &ic->slots[i];
        if (s->hook) {
            vs_status st = vs_hook_remove(s->hook);
            if (st != VS_OK) {
                /* Still patched: calls keep arriving here and pass through (not active). */
                vs_backend_log(VS_LOG_ERROR, "hip: could not unhook %s: %s", s->name,
                               vs_status_name(st));
                if (first == VS_OK)
                    first = st;
                continue;
            }
            s->hook = NULL;
        }
        /* A thread still inside a hook calls the restored function. */
        if (s->target)
            __atomic_store_n(&s->original, s->target, __ATOMIC_RELEASE);
    }
    return first;
}

vs_status vs_hip_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len)
{
    if (!sink || !sink->before_alloc || !sink->on_oom || !sink->after_alloc || !sink->on_free)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hip *h = vs_hip_instance();
    if (h->count == 0) {
        if (why && why_len)
            snprintf(why, why_len, "the HIP backend is not initialized");
        return VS_ERR_NOT_SUPPORTED;
    }
    vs_hip_intercept *ic = &vs_hip_hooks;
    pthread_mutex_lock(&ic->lock);
    if (ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    for (int i = 0; i < VS_HIP_HOOK_COUNT_; i++) {
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
    for (int i = 0; i < VS_HIP_HOOK_COUNT_ && st == VS_OK; i++) {
        vs_hip_hook_slot *s = &ic->slots[i];
        memcpy(&s->target, (const char *)&h->api + s->field, sizeof s->target);
        __atomic_store_n(&s->original, NULL, __ATOMIC_RELEASE);
        s->hook = NULL;
        if (!s->target)
            continue; /* optional and absent */
        char reason[192] = "";
        /* The engine writes the trampoline into s->original before patching. */
        st = vs_hook_install(s->target, replacement_of(i), &s->original, &s->hook, reason,
                             sizeof reason);
        if (st != VS_OK) {
            s->hook = NULL;
            if (why && why_len)
                snprintf(why, why_len, "cannot hook %s: %s", s->name,
                         reason[0] ? reason : vs_status_name(st));
        }
    }
    if (st != VS_OK) {
        (void)unpatch_all(ic);
        pthread_mutex_unlock(&ic->lock);
        vs_backend_log(VS_LOG_WARN, "hip: interception not installed: %s", why ? why : "");
        return st == VS_ERR_OUT_OF_MEMORY ? st : VS_ERR_NOT_SUPPORTED;
    }
    ic->installed = 1;
    __atomic_store_n(&ic->active, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ic->lock);
    vs_backend_log(VS_LOG_INFO, "hip: allocation interception installed");
    return VS_OK;
}

vs_status vs_hip_intercept_remove(void)
{
    vs_hip_intercept *ic = &vs_hip_hooks;
    pthread_mutex_lock(&ic->lock);
    if (!ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    __atomic_store_n(&ic->active, 0, __ATOMIC_RELEASE);
    vs_status st = unpatch_all(ic);
    ic->installed = 0;
    pthread_mutex_unlock(&ic->lock);
    return st;
}
