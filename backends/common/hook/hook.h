/* Inline hooks: redirect a function of another library (libcuda's cuMemAlloc_v2,
 * hipMalloc, zeMemAllocDevice...) to a replacement, in process, by patching the
 * first bytes of its code. Internal to libvramswap (hidden symbols), shared by
 * every backend that intercepts allocations.
 *
 *     static vs_hook_t *g_alloc_hook;
 *     static CUresult (*real_alloc)(CUdeviceptr *, size_t);
 *     char why[256];
 *     vs_status st = vs_hook_install((void *)cuMemAlloc_v2, (void *)my_alloc,
 *                                    (void **)&real_alloc, &g_alloc_hook, why, sizeof why);
 *     if (st == VS_ERR_NOT_SUPPORTED) log why and run without interception;
 *     ... my_alloc() calls real_alloc() to reach the driver ...
 *     vs_hook_remove(g_alloc_hook);
 *
 * The target's first instructions are copied ("relocated") into a trampoline
 * that ends with a jump back to the rest of the function; *original_out points
 * at it and behaves like the unpatched function. The engine decodes the prologue
 * with Capstone and refuses (VS_ERR_NOT_SUPPORTED, reason in `why`) whatever it
 * cannot move safely; see Note [Relocating a prologue] in hook_x86_64.c and
 * hook_aarch64.c, Note [Trampoline memory] in hook_mem.c and Note [Patching
 * live code] in hook_patch.c.
 *
 * All functions may be called from any thread; one process-wide lock serializes
 * install and remove (code is a process-wide resource). Built without Capstone
 * (VS_HOOKS=OFF, or AUTO without it) every install returns VS_ERR_NOT_SUPPORTED.
 */
#ifndef VS_HOOK_H
#define VS_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include <vramswap.h>

typedef struct vs_hook vs_hook_t;

/* How the target was patched. */
typedef enum vs_hook_kind {
    VS_HOOK_KIND_NONE = 0,
    VS_HOOK_KIND_X86_REL32 = 1, /* x86_64: 5-byte `jmp rel32` to a relay within +-2 GiB */
    VS_HOOK_KIND_X86_ABS64 = 2, /* x86_64: 14-byte `jmp [rip+0]; .quad replacement` */
    VS_HOOK_KIND_A64_ABS = 3,   /* aarch64: 16-byte `ldr x16, #8; br x16; .quad replacement` */
    VS_HOOK_KIND_A64_B = 4,     /* aarch64: 4-byte `b rel26` to a relay within +-128 MiB */
} vs_hook_kind;

typedef struct vs_hook_info {
    vs_hook_kind kind;
    void *target;       /* the patched function */
    void *trampoline;   /* what *original_out points at */
    size_t patch_len;   /* bytes overwritten at the target */
    size_t window_len;  /* bytes of whole instructions relocated into the trampoline (>= patch_len) */
} vs_hook_info;

/* Patch `target` so that calls to it run `replacement`; *original_out receives a
 * callable trampoline that runs the original function. *original_out is
 * stored (atomically, release) *before* the patch goes live, because another
 * thread may enter the replacement at once and call the original: point it at
 * the variable the replacement reads (load it with acquire, or at least
 * atomically). On success *out is the hook. Errors (nothing patched, *out
 * untouched, *original_out holds its previous value again):
 *   VS_ERR_INVALID_ARGUMENT  a NULL argument, target == replacement, or target
 *                            not in executable memory;
 *   VS_ERR_BUSY              target (or the bytes right after it) already hooked;
 *   VS_ERR_NOT_SUPPORTED     the prologue cannot be relocated safely, the code
 *                            cannot be made writable, or no hook engine;
 *   VS_ERR_OUT_OF_MEMORY     no memory for the trampoline.
 * `why` (may be NULL when why_len is 0) receives a one-line reason on failure. */
vs_status vs_hook_install(void *target, void *replacement, void **original_out, vs_hook_t **out,
                          char *why, size_t why_len);

/* Restore the target's original bytes and free the hook. The trampoline stays
 * valid (its memory is never reused) because another thread may still be in
 * it. If the target's code is no longer mapped (library unloaded) the hook is
 * just forgotten (VS_OK). VS_ERR_INVALID_HANDLE for NULL or a hook that is not
 * installed; VS_ERR_BUSY (hook kept) if the patched bytes were changed by
 * someone else. */
vs_status vs_hook_remove(vs_hook_t *hook);

/* Describe an installed hook. VS_ERR_INVALID_HANDLE / VS_ERR_INVALID_ARGUMENT. */
vs_status vs_hook_get_info(vs_hook_t *hook, vs_hook_info *info);

/* 1 when this build has the hook engine (Capstone), else 0. */
int vs_hook_engine_available(void);

#endif /* VS_HOOK_H */
