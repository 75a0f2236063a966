/* The hook engine: registry of installed hooks and the install/remove sequence.
 *
 * Install, under the engine lock:
 *   1. check the arguments and that the target is executable, not yet hooked;
 *   2. ask the architecture for the short "near" patch with a slot in reach
 *      (x86_64); if no slot is in reach or the prologue cannot be relocated
 *      that way, plan the absolute patch with a slot anywhere;
 *   3. write the slot (relay + trampoline), publish the trampoline in
 *      *original_out, then write the patch over the live target (Note
 *      [Patching live code], hook_patch.c);
 *   4. record the hook.
 * Nothing is left behind on failure except an executable region kept for later
 * hooks (Note [Trampoline memory], hook_mem.c).
 *
 * Note [Hook registry]
 * --------------------
 * Code is process-wide, so is this state: one static engine with one mutex,
 * the list of installed hooks and the trampoline memory. A target is hooked at
 * most once, and windows never overlap (the second would relocate the first's
 * jump). It is not fork-aware beyond what fork gives: the child inherits the
 * patched code and this registry together, which stay consistent.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hook_internal.h"

struct vs_hook {
    vs_hook_t *next;                     /* next installed hook */
    uint8_t *target;                     /* the patched function */
    uint8_t *slot;                       /* its relay + trampoline (never freed) */
    void *trampoline;                    /* the relocated original, inside slot */
    vs_hook_kind kind;
    size_t patch_len;                    /* bytes overwritten at target */
    size_t window_len;                   /* bytes of instructions relocated */
    uint8_t original[VS_HOOK_MAX_PATCH]; /* target's bytes before the patch */
    uint8_t patch[VS_HOOK_MAX_PATCH];    /* what we wrote there */
};

typedef struct vs_hook_engine {
    pthread_mutex_t lock; /* serializes install/remove/get_info */
    vs_hook_t *hooks;     /* installed hooks */
    vs_hook_mem mem;      /* slots for relays and trampolines */
} vs_hook_engine;

static vs_hook_engine g_engine = {PTHREAD_MUTEX_INITIALIZER, NULL, {NULL}};

void vs_hook_set_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

int vs_hook_engine_available(void)
{
    return 1;
}

/* The installed hook whose window overlaps [start, start+len), or NULL. */
static vs_hook_t *find_overlap(vs_hook_engine *e, const uint8_t *start, size_t len)
{
    for (vs_hook_t *h = e->hooks; h; h = h->next)
        if (start < h->target + h->window_len && h->target < start + len)
            return h;
    return NULL;
}

static int is_installed(vs_hook_engine *e, const vs_hook_t *hook)
{
    for (vs_hook_t *h = e->hooks; h; h = h->next)
        if (h == hook)
            return 1;
    return 0;
}

/* Plan with a slot in [lo, hi); the slot is given back if planning fails. */
static vs_status plan_in(vs_hook_engine *e, const vs_hook_maps *maps, uint8_t *target, size_t readable,
                         void *replacement, int near, uintptr_t lo, uintptr_t hi, uint8_t **slot,
                         vs_hook_plan *plan, char *why, size_t why_len)
{
    vs_status st = vs_hook_mem_alloc(&e->mem, maps, (uintptr_t)target, lo, hi, slot);
    if (st != VS_OK)
        return st;
    st = vs_hook_arch_plan(target, readable, replacement, *slot, near, plan, why, why_len);
    if (st != VS_OK)
        vs_hook_mem_unalloc(&e->mem, *slot);
    return st;
}

/* Steps 2 and 3 of the install sequence; see the top of the file. */
static vs_status install_locked(vs_hook_engine *e, const vs_hook_maps *maps, uint8_t *target,
                                void *replacement, void **original_out, vs_hook_t *h, char *why,
                                size_t why_len)
{
    const vs_hook_map *m = vs_hook_maps_find(maps, (uintptr_t)target);
    if (!m || !(m->prot & PROT_EXEC)) {
        vs_hook_set_why(why, why_len, "target %p is not in executable memory", (void *)target);
        return VS_ERR_INVALID_ARGUMENT;
    }
    size_t readable = vs_hook_maps_readable(maps, (uintptr_t)target);

    /* The near plan's reason is kept if the far plan fails too: it is the
     * preferred patch and its window is the smaller one. */
    vs_hook_plan plan;
    uint8_t *slot = NULL;
    vs_status st = VS_ERR_OUT_OF_MEMORY;
    int near_refused = 0;
    uintptr_t lo, hi;
    if (vs_hook_arch_near_range((uintptr_t)target, &lo, &hi)) {
        st = plan_in(e, maps, target, readable, replacement, 1, lo, hi, &slot, &plan, why, why_len);
        near_refused = st == VS_ERR_NOT_SUPPORTED;
        if (st != VS_OK && st != VS_ERR_OUT_OF_MEMORY && st != VS_ERR_NOT_SUPPORTED)
            return st;
    }
    if (st != VS_OK) {
        char far_why[256] = "";
        st = plan_in(e, maps, target, readable, replacement, 0, 0, UINTPTR_MAX, &slot, &plan, far_why,
                     sizeof far_why);
        if (st == VS_ERR_OUT_OF_MEMORY)
            vs_hook_set_why(why, why_len, "no memory for the trampoline");
        else if (st != VS_OK && !near_refused)
            vs_hook_set_why(why, why_len, "%s", far_why);
        if (st != VS_OK)
            return st;
    }
    vs_hook_t *other = find_overlap(e, target, plan.window_len);
    if (other) {
        vs_hook_mem_unalloc(&e->mem, slot);
        vs_hook_set_why(why, why_len, "the bytes at %p overlap the hook on %p", (void *)target,
                        (void *)other->target);
        return VS_ERR_BUSY;
    }
    st = vs_hook_mem_write(slot, plan.code, plan.code_len, why, why_len);
    if (st != VS_OK) {
        vs_hook_mem_unalloc(&e->mem, slot);
        return st;
    }
    memcpy(h->original, target, plan.patch_len);
    /* The replacement may run as soon as the patch is live and will call the
     * original: publish the trampoline first. */
    void *previous = __atomic_load_n(original_out, __ATOMIC_ACQUIRE);
    __atomic_store_n(original_out, (void *)(slot + plan.tramp_offset), __ATOMIC_RELEASE);
    st = vs_hook_patch_live(maps, target, plan.patch, plan.patch_len, why, why_len);
    if (st != VS_OK) {
        __atomic_store_n(original_out, previous, __ATOMIC_RELEASE); /* nothing ran the patch */
        vs_hook_mem_unalloc(&e->mem, slot); /* nothing can have jumped to it */
        return st;
    }
    h->target = target;
    h->slot = slot;
    h->trampoline = slot + plan.tramp_offset;
    h->kind = plan.kind;
    h->patch_len = plan.patch_len;
    h->window_len = plan.window_len;
    memcpy(h->patch, plan.patch, plan.patch_len);
    return VS_OK;
}

vs_status vs_hook_install(void *target, void *replacement, void **original_out, vs_hook_t **out,
                          char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!target || !replacement || !original_out || !out || (!why && why_len)) {
        vs_hook_set_why(why, why_len, "NULL argument");
        return VS_ERR_INVALID_ARGUMENT;
    }
    if (target == replacement) {
        vs_hook_set_why(why, why_len, "target and replacement are the same function");
        return VS_ERR_INVALID_ARGUMENT;
    }
    vs_hook_t *h = calloc(1, sizeof *h);
    if (!h) {
        vs_hook_set_why(why, why_len, "out of memory");
        return VS_ERR_OUT_OF_MEMORY;
    }
    vs_hook_engine *e = &g_engine;
    pthread_mutex_lock(&e->lock);
    vs_status st = VS_ERR_BUSY;
    vs_hook_t *other = find_overlap(e, target, 1);
    if (other) {
        vs_hook_set_why(why, why_len, "%p is already hooked", target);
    } else {
        vs_hook_maps maps;
        st = vs_hook_maps_read(&maps);
        if (st == VS_OK) {
            st = install_locked(e, &maps, target, replacement, original_out, h, why, why_len);
            vs_hook_maps_free(&maps);
        } else {
            vs_hook_set_why(why, why_len, "cannot read /proc/self/maps");
        }
    }
    if (st == VS_OK) {
        h->next = e->hooks;
        e->hooks = h;
        *out = h;
    }
    pthread_mutex_unlock(&e->lock);
    if (st != VS_OK)
        free(h);
    return st;
}

/* Put the original bytes back (under the lock). */
static vs_status restore_locked(vs_hook_t *hook)
{
    vs_hook_maps maps;
    vs_status st = vs_hook_maps_read(&maps);
    if (st != VS_OK)
        return st;
    /* The library may have been unloaded: then there is nothing to restore. */
    int mapped = vs_hook_maps_readable(&maps, (uintptr_t)hook->target) >= hook->patch_len;
    if (mapped && memcmp(hook->target, hook->patch, hook->patch_len) != 0)
        st = VS_ERR_BUSY; /* someone patched over us: leave their bytes alone */
    else if (mapped)
        st = vs_hook_patch_live(&maps, hook->target, hook->original, hook->patch_len, NULL, 0);
    vs_hook_maps_free(&maps);
    return st;
}

vs_status vs_hook_remove(vs_hook_t *hook)
{
    if (!hook)
        return VS_ERR_INVALID_HANDLE;
    vs_hook_engine *e = &g_engine;
    pthread_mutex_lock(&e->lock);
    vs_status st = is_installed(e, hook) ? restore_locked(hook) : VS_ERR_INVALID_HANDLE;
    if (st == VS_OK) {
        vs_hook_t **pp = &e->hooks;
        while (*pp != hook)
            pp = &(*pp)->next;
        *pp = hook->next;
    }
    pthread_mutex_unlock(&e->lock);
    if (st == VS_OK)
        free(hook);
    return st;
}

vs_status vs_hook_get_info(vs_hook_t *hook, vs_hook_info *info)
{
    if (!hook)
        return VS_ERR_INVALID_HANDLE;
    if (!info)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hook_engine *e = &g_engine;
    pthread_mutex_lock(&e->lock);
    vs_status st = VS_ERR_INVALID_HANDLE;
    if (is_installed(e, hook)) {
        info->kind = hook->kind;
        info->target = hook->target;
        info->trampoline = hook->trampoline;
        info->patch_len = hook->patch_len;
        info->window_len = hook->window_len;
        st = VS_OK;
    }
    pthread_mutex_unlock(&e->lock);
    return st;
}
