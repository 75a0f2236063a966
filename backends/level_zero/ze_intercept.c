/* Allocation interception for Level Zero: inline hooks on the loader's
 * exported allocation entry points, reporting to the core's sink
 * (vs_intercept_sink).
 *
 * Note [Level Zero allocation hooks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Rationale: PyTorch's XPU caching allocator (through SYCL and its Level Zero
 * adapter), oneDNN/oneMKL scratch and other models allocate device memory
 * behind our back. Every such allocation first asks the core to make room
 * (evicting unpinned VBAR pages), and a driver out-of-memory evicts more and
 * retries once -- as for CUDA (Note [CUDA allocation hooks] in cuda_intercept.c).
 *
 * Where to patch: the SYCL runtime's Level Zero adapter calls the loader's
 * exported functions (zeMemAllocDevice...), which look up the driver's
 * function in the loader's DDI table and call it. The hook engine patches the
 * first bytes of those exports in libze_loader.so, so every caller of the
 * exported symbol is seen, whether it linked the loader or took the address
 * with dlsym. Not seen: code that fetched the DDI tables itself
 * (zeGetMemProcAddrTable) and calls the driver's functions through them, and
 * code that loads a driver directly without the loader; none of the PyTorch
 * XPU stack does either (docs/backends-level-zero.md).
 *
 * Hooked: zeMemAllocDevice, zeMemAllocShared (counted only when placed on a
 * device: hDevice != NULL), zeMemFree, zeMemFreeExt (when the loader has it),
 * and zePhysicalMemCreate / zePhysicalMemDestroy (virtual-memory allocators,
 * e.g. an expandable-segments style allocator; the tracked "pointer" is the
 * physical memory handle; host-placed physical memory is not counted).
 *
 * An allocation hook: find the device (the call's hDevice), sink->before_alloc
 * (VS_ERR_OUT_OF_MEMORY: fail with ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY without
 * calling the driver), call the original, on ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY
 * sink->on_oom and retry once, on success sink->after_alloc. A free hook:
 * sink->on_free, then the original. A free's device comes from
 * zeMemGetAllocProperties; when it cannot be known (a physical memory handle
 * on a machine with several devices) every device is told, and the ones that
 * do not know the pointer ignore it.
 *
 * Install is all or nothing, as for CUDA: an allocation counted whose free is
 * never seen would stay counted forever.
 *
 * Note [Own calls bypass the hooks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * The backend's own zePhysicalMemCreate/Destroy (VBAR and scratch pages) must
 * not be counted as foreign allocations and must not call the sink (the core
 * calls the backend with a device lock held and the sink takes device locks):
 * - while installed, the table entries of hooked functions hold the engine's
 *   trampolines (the original code), swapped with atomic stores and read with
 *   atomic loads (VS_ZE_HOOKED_ENTRY);
 * - a thread-local guard is set around the backend's own calls and around the
 *   sink and driver calls a hook makes; a hook entered with the guard set calls
 *   the original at once (no recursion, no double counting).
 *
 * Limitations: an allocation on a sub-device (tile) handle, or on a device
 * vramswap does not expose, is not counted. Frees are uncounted before the
 * driver's free runs, even if it then fails.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/hook/hook.h"
#include "level_zero/ze_internal.h"

/* Spec 1.x: physical memory placed in host memory (newer than our headers). */
#define VS_ZE_PHYSICAL_MEM_FLAG_ALLOCATE_ON_HOST ((ze_physical_mem_flags_t)(1u << 1))

/* Each hooked entry point: its field in the table and our replacement
 * (vs_ze_hook_<field> below). */
#define VS_ZE_HOOKS(_)                                                         \
    _(MemAllocDevice, "zeMemAllocDevice")                                      \
    _(MemAllocShared, "zeMemAllocShared")                                      \
    _(MemFree, "zeMemFree")                                                    \
    _(MemFreeExt, "zeMemFreeExt")                                              \
    _(PhysicalMemCreate, "zePhysicalMemCreate")                                \
    _(PhysicalMemDestroy, "zePhysicalMemDestroy")

enum {
#define VS_ZE_HOOK_ENUM_(field, name) VS_ZE_HOOK_##field,
    VS_ZE_HOOKS(VS_ZE_HOOK_ENUM_)
#undef VS_ZE_HOOK_ENUM_
    VS_ZE_HOOK_COUNT_
};

typedef struct vs_ze_hook_slot {
    const char *name;      /* loader function, for messages */
    size_t field;          /* offsetof(vs_ze_api, <field>) */
    int alias;             /* another slot with the same target (hooked there), else -1 */
    void *replacement;     /* vs_ze_hook_<field> */
    void *target;          /* the loader's export, as resolved at init */
    void *original;        /* trampoline (the original code); read atomically */
    vs_hook_t *hook;       /* installed by this slot; NULL for aliases and when off */
} vs_ze_hook_slot;

/* Interception state. `lock` serializes install and remove; hooks read `active`
 * (acquire) and only then `sink`, which install writes before publishing. */
typedef struct vs_ze_intercept {
    pthread_mutex_t lock;
    int installed;                     /* hooks are in place (under lock) */
    int active;                        /* hooks report to the sink; atomic */
    vs_intercept_sink sink;            /* copy of the core's sink */
    vs_ze_hook_slot slots[VS_ZE_HOOK_COUNT_];
} vs_ze_intercept;

static vs_ze_intercept vs_ze_hooks = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .slots = {
#define VS_ZE_HOOK_SLOT_(f, name_) \
    [VS_ZE_HOOK_##f] = {.name = name_, .field = offsetof(vs_ze_api, f), .alias = -1},
        VS_ZE_HOOKS(VS_ZE_HOOK_SLOT_)
#undef VS_ZE_HOOK_SLOT_
    },
};

/* ---------------------------------------------------------------- the guard */

static _Thread_local int vs_ze_guard_depth;

void vs_ze_guard_enter(void)
{
    vs_ze_guard_depth++;
}

void vs_ze_guard_leave(void)
{
    vs_ze_guard_depth--;
}

/* ---------------------------------------------------------------- helpers */

static void **table_field(vs_ze *ze, const vs_ze_hook_slot *s)
{
    return (void **)((char *)&ze->api + s->field);
}

/* The original code of a hooked function. The engine publishes the trampoline
 * before the patch goes live, so this never waits in practice; an alias slot
 * copies its target's after install. */
static void *original_of(vs_ze_hook_slot *s)
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
    if (vs_ze_guard_depth > 0)
        return NULL;
    if (!__atomic_load_n(&vs_ze_hooks.active, __ATOMIC_ACQUIRE))
        return NULL;
    return &vs_ze_hooks.sink;
}

/* "Every device": a free whose device is unknown (see the Note). */
#define VS_ZE_ANY_DEVICE (-2)

static bool single_device(const vs_ze *ze)
{
    return ze->count == 1 && ze->gpu_count == 1;
}

/* The device a pointer of the context belongs to (for frees). */
static int pointer_ordinal(const vs_ze *ze, ze_context_handle_t ctx, const void *ptr)
{
    if (single_device(ze))
        return 0;
    ze_memory_allocation_properties_t p = {.stype = ZE_STRUCTURE_TYPE_MEMORY_ALLOCATION_PROPERTIES};
    ze_device_handle_t dev = NULL;
    if (ze->api.MemGetAllocProperties(ctx, ptr, &p, &dev) != ZE_RESULT_SUCCESS)
        return VS_ZE_ANY_DEVICE;
    if (p.type == ZE_MEMORY_TYPE_HOST || p.type == ZE_MEMORY_TYPE_UNKNOWN)
        return -1;
    return dev ? vs_ze_ordinal_of(ze, dev) : VS_ZE_ANY_DEVICE;
}

/* One allocation through the loader, retried by intercept_alloc. */
typedef ze_result_t (*vs_ze_attempt_fn)(void *call);

/* The allocation protocol (Note [Level Zero allocation hooks]); `result` (a
 * pointer-sized out-parameter: the new pointer or handle) is read after a
 * successful attempt. */
static ze_result_t intercept_alloc(const vs_intercept_sink *sink, int ordinal, uint64_t size,
                                   vs_ze_attempt_fn attempt, void *call, const void *result)
{
    if (!sink || ordinal < 0 || size == 0)
        return attempt(call);
    vs_ze_guard_enter();
    if (sink->before_alloc(sink->user, ordinal, size) == VS_ERR_OUT_OF_MEMORY) {
        vs_ze_guard_leave();
        return ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY;
    }
    ze_result_t r = attempt(call);
    if (r == ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY && sink->on_oom(sink->user, ordinal, size) == VS_OK)
        r = attempt(call);
    if (r == ZE_RESULT_SUCCESS) {
        void *p = NULL;
        memcpy(&p, result, sizeof p);
        sink->after_alloc(sink->user, ordinal, (uintptr_t)p, size);
    }
    vs_ze_guard_leave();
    return r;
}

/* A free: uncount, then the loader. */
static ze_result_t intercept_free(const vs_intercept_sink *sink, int ordinal, uintptr_t ptr,
                                  vs_ze_attempt_fn attempt, void *call)
{
    if (!sink || ordinal == -1 || ptr == 0)
        return attempt(call);
    vs_ze_guard_enter();
    if (ordinal == VS_ZE_ANY_DEVICE) {
        for (int i = 0; i < vs_ze_instance()->count; i++)
            sink->on_free(sink->user, i, ptr);
    } else {
        sink->on_free(sink->user, ordinal, ptr);
    }
    ze_result_t r = attempt(call);
    vs_ze_guard_leave();
    return r;
}

static vs_ze_hook_slot *slot(int i)
{
    return &vs_ze_hooks.slots[i];
}

/* ---------------------------------------------------------------- replacements */

/* zeMemAllocDevice */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    const ze_device_mem_alloc_desc_t *desc;
    size_t size, alignment;
    ze_device_handle_t dev;
    void **pptr;
} vs_ze_call_alloc_device;

static ze_result_t attempt_alloc_device(void *p)
{
    vs_ze_call_alloc_device *a = p;
    __typeof__(zeMemAllocDevice) *fn = (__typeof__(zeMemAllocDevice) *)original_of(a->slot);
    return fn(a->ctx, a->desc, a->size, a->alignment, a->dev, a->pptr);
}

static ze_result_t vs_ze_hook_MemAllocDevice(ze_context_handle_t hContext,
                                             const ze_device_mem_alloc_desc_t *device_desc,
                                             size_t size, size_t alignment,
                                             ze_device_handle_t hDevice, void **pptr)
{
    vs_ze_call_alloc_device a = {slot(VS_ZE_HOOK_MemAllocDevice), hContext, device_desc, size,
                                 alignment, hDevice, pptr};
    const vs_intercept_sink *sink = pptr ? reporting_sink() : NULL;
    int ord = sink ? vs_ze_ordinal_of(vs_ze_instance(), hDevice) : -1;
    return intercept_alloc(sink, ord, size, attempt_alloc_device, &a, pptr);
}

/* zeMemAllocShared */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    const ze_device_mem_alloc_desc_t *ddesc;
    const ze_host_mem_alloc_desc_t *hdesc;
    size_t size, alignment;
    ze_device_handle_t dev;
    void **pptr;
} vs_ze_call_alloc_shared;

static ze_result_t attempt_alloc_shared(void *p)
{
    vs_ze_call_alloc_shared *a = p;
    __typeof__(zeMemAllocShared) *fn = (__typeof__(zeMemAllocShared) *)original_of(a->slot);
    return fn(a->ctx, a->ddesc, a->hdesc, a->size, a->alignment, a->dev, a->pptr);
}

static ze_result_t vs_ze_hook_MemAllocShared(ze_context_handle_t hContext,
                                             const ze_device_mem_alloc_desc_t *device_desc,
                                             const ze_host_mem_alloc_desc_t *host_desc, size_t size,
                                             size_t alignment, ze_device_handle_t hDevice,
                                             void **pptr)
{
    vs_ze_call_alloc_shared a = {slot(VS_ZE_HOOK_MemAllocShared), hContext, device_desc, host_desc,
                                 size, alignment, hDevice, pptr};
    /* Without a device the allocation lives in host memory: not counted. */
    const vs_intercept_sink *sink = pptr && hDevice ? reporting_sink() : NULL;
    int ord = sink ? vs_ze_ordinal_of(vs_ze_instance(), hDevice) : -1;
    return intercept_alloc(sink, ord, size, attempt_alloc_shared, &a, pptr);
}

/* zeMemFree */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    void *ptr;
} vs_ze_call_free;

static ze_result_t attempt_free(void *p)
{
    vs_ze_call_free *a = p;
    __typeof__(zeMemFree) *fn = (__typeof__(zeMemFree) *)original_of(a->slot);
    return fn(a->ctx, a->ptr);
}

static ze_result_t vs_ze_hook_MemFree(ze_context_handle_t hContext, void *ptr)
{
    vs_ze_call_free a = {slot(VS_ZE_HOOK_MemFree), hContext, ptr};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_ze_instance(), hContext, ptr) : -1;
    return intercept_free(sink, ord, (uintptr_t)ptr, attempt_free, &a);
}

/* zeMemFreeExt */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    const ze_memory_free_ext_desc_t *desc;
    void *ptr;
} vs_ze_call_free_ext;

static ze_result_t attempt_free_ext(void *p)
{
    vs_ze_call_free_ext *a = p;
    __typeof__(zeMemFreeExt) *fn = (__typeof__(zeMemFreeExt) *)original_of(a->slot);
    return fn(a->ctx, a->desc, a->ptr);
}

static ze_result_t vs_ze_hook_MemFreeExt(ze_context_handle_t hContext,
                                         const ze_memory_free_ext_desc_t *pMemFreeDesc, void *ptr)
{
    vs_ze_call_free_ext a = {slot(VS_ZE_HOOK_MemFreeExt), hContext, pMemFreeDesc, ptr};
    const vs_intercept_sink *sink = ptr ? reporting_sink() : NULL;
    int ord = sink ? pointer_ordinal(vs_ze_instance(), hContext, ptr) : -1;
    return intercept_free(sink, ord, (uintptr_t)ptr, attempt_free_ext, &a);
}

/* zePhysicalMemCreate */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    ze_device_handle_t dev;
    ze_physical_mem_desc_t *desc;
    ze_physical_mem_handle_t *out;
} vs_ze_call_phys_create;

static ze_result_t attempt_phys_create(void *p)
{
    vs_ze_call_phys_create *a = p;
    __typeof__(zePhysicalMemCreate) *fn = (__typeof__(zePhysicalMemCreate) *)original_of(a->slot);
    return fn(a->ctx, a->dev, a->desc, a->out);
}

static ze_result_t vs_ze_hook_PhysicalMemCreate(ze_context_handle_t hContext,
                                                ze_device_handle_t hDevice,
                                                ze_physical_mem_desc_t *desc,
                                                ze_physical_mem_handle_t *phPhysicalMemory)
{
    vs_ze_call_phys_create a = {slot(VS_ZE_HOOK_PhysicalMemCreate), hContext, hDevice, desc,
                                phPhysicalMemory};
    const vs_intercept_sink *sink = desc && phPhysicalMemory ? reporting_sink() : NULL;
    int ord = -1;
    if (sink && !(desc->flags & VS_ZE_PHYSICAL_MEM_FLAG_ALLOCATE_ON_HOST))
        ord = vs_ze_ordinal_of(vs_ze_instance(), hDevice);
    return intercept_alloc(sink, ord, sink ? desc->size : 0, attempt_phys_create, &a,
                           phPhysicalMemory);
}

/* zePhysicalMemDestroy */
typedef struct {
    vs_ze_hook_slot *slot;
    ze_context_handle_t ctx;
    ze_physical_mem_handle_t handle;
} vs_ze_call_phys_destroy;

static ze_result_t attempt_phys_destroy(void *p)
{
    vs_ze_call_phys_destroy *a = p;
    __typeof__(zePhysicalMemDestroy) *fn = (__typeof__(zePhysicalMemDestroy) *)original_of(a->slot);
    return fn(a->ctx, a->handle);
}

static ze_result_t vs_ze_hook_PhysicalMemDestroy(ze_context_handle_t hContext,
                                                 ze_physical_mem_handle_t hPhysicalMemory)
{
    vs_ze_call_phys_destroy a = {slot(VS_ZE_HOOK_PhysicalMemDestroy), hContext, hPhysicalMemory};
    const vs_intercept_sink *sink = hPhysicalMemory ? reporting_sink() : NULL;
    /* Level Zero cannot tell a physical memory handle's device. */
    int ord = single_device(vs_ze_instance()) ? 0 : VS_ZE_ANY_DEVICE;
    return intercept_free(sink, ord, (uintptr_t)hPhysicalMemory, attempt_phys_destroy, &a);
}

/* Our replacement for slot i as a code address. The initialization checks
 * that each replacement has exactly the loader function's type. */
static void *replacement_of(int i)
{
    void *p = NULL;
    switch (i) {
#define VS_ZE_HOOK_CASE_(field, name)                                              \
    case VS_ZE_HOOK_##field: {                                                     \
        __typeof__(((vs_ze_api *)0)->field) fn = vs_ze_hook_##field;               \
        memcpy(&p, &fn, sizeof p);                                                 \
        break;                                                                     \
    }
        VS_ZE_HOOKS(VS_ZE_HOOK_CASE_)
#undef VS_ZE_HOOK_CASE_
    default:
        break;
    }
    return p;
}

/* ---------------------------------------------------------------- install / remove */

/* Undo every patch (under lock). Returns the first failure. */
static vs_status unpatch_all(vs_ze *ze, vs_ze_intercept *ic)
{
    vs_status first = VS_OK;
    for (int i = VS_ZE_HOOK_COUNT_ - 1; i >= 0; i--) {
        vs_ze_hook_slot *s = &ic->slots[i];
        if (s->hook) {
            vs_status st = vs_hook_remove(s->hook);
            if (st != VS_OK) {
                /* Still patched: calls keep arriving here, pass through (not
                 * active) and our table keeps the trampoline. */
                vs_backend_log(VS_LOG_ERROR, "level_zero: could not unhook %s: %s", s->name,
                               vs_status_name(st));
                if (first == VS_OK)
                    first = st;
                continue;
            }
            s->hook = NULL;
        }
        if (s->target) {
            /* A thread still inside a hook calls the restored function. */
            __atomic_store_n(table_field(ze, s), s->target, __ATOMIC_RELEASE);
            __atomic_store_n(&s->original, s->target, __ATOMIC_RELEASE);
        }
    }
    return first;
}

vs_status vs_ze_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len)
{
    if (!sink || !sink->before_alloc || !sink->on_oom || !sink->after_alloc || !sink->on_free)
        return VS_ERR_INVALID_ARGUMENT;
    vs_ze *ze = vs_ze_instance();
    if (ze->count == 0) {
        if (why && why_len)
            snprintf(why, why_len, "the Level Zero backend is not initialized");
        return VS_ERR_NOT_SUPPORTED;
    }
    vs_ze_intercept *ic = &vs_ze_hooks;
    pthread_mutex_lock(&ic->lock);
    if (ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    for (int i = 0; i < VS_ZE_HOOK_COUNT_; i++) {
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
    for (int i = 0; i < VS_ZE_HOOK_COUNT_ && st == VS_OK; i++) {
        vs_ze_hook_slot *s = &ic->slots[i];
        s->target = *table_field(ze, s);
        s->original = NULL;
        s->hook = NULL;
        s->alias = -1;
        if (!s->target)
            continue; /* optional and absent */
        for (int j = 0; j < i; j++) {
            if (ic->slots[j].target == s->target) {
                /* Two names, one function: hooked once (the first replacement
                 * handles both; they have the same meaning by construction). */
                s->alias = j;
                s->original = ic->slots[j].original;
                break;
            }
        }
        if (s->alias >= 0)
            continue;
        s->replacement = replacement_of(i);
        char reason[192] = "";
        /* The engine stores the trampoline into s->original (atomically)
         * before the patch goes live; hooks load it with acquire. */
        st = vs_hook_install(s->target, s->replacement, &s->original, &s->hook, reason,
                             sizeof reason);
        if (st != VS_OK) {
            s->hook = NULL;
            if (why && why_len)
                snprintf(why, why_len, "cannot hook %s: %s", s->name,
                         reason[0] ? reason : vs_status_name(st));
            break;
        }
    }
    if (st != VS_OK) {
        (void)unpatch_all(ze, ic);
        pthread_mutex_unlock(&ic->lock);
        vs_backend_log(VS_LOG_WARN, "level_zero: interception not installed: %s", why ? why : "");
        return st == VS_ERR_OUT_OF_MEMORY ? st : VS_ERR_NOT_SUPPORTED;
    }
    /* Our own calls now go to the original code (Note [Own calls bypass the hooks]). */
    for (int i = 0; i < VS_ZE_HOOK_COUNT_; i++) {
        vs_ze_hook_slot *s = &ic->slots[i];
        if (s->target)
            __atomic_store_n(table_field(ze, s), s->original, __ATOMIC_RELEASE);
    }
    ic->installed = 1;
    __atomic_store_n(&ic->active, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ic->lock);
    vs_backend_log(VS_LOG_INFO, "level_zero: allocation interception installed");
    return VS_OK;
}

vs_status vs_ze_intercept_remove(void)
{
    vs_ze *ze = vs_ze_instance();
    vs_ze_intercept *ic = &vs_ze_hooks;
    pthread_mutex_lock(&ic->lock);
    if (!ic->installed) {
        pthread_mutex_unlock(&ic->lock);
        return VS_OK;
    }
    __atomic_store_n(&ic->active, 0, __ATOMIC_RELEASE);
    vs_status st = unpatch_all(ze, ic);
    ic->installed = 0;
    pthread_mutex_unlock(&ic->lock);
    return st;
}
