/* Writing over code that other threads may be running.
 *
 * Note [Patching live code]
 * -------------------------
 * A hook is installed into a running process: PyTorch's threads may call the
 * target while we patch it. Three things must hold.
 *
 * 1. Protection. Library text is mapped read+execute. We make the pages of the
 *    patch read+write+execute, write, and restore the protection that
 *    /proc/self/maps showed. The pages never lose execute permission, so a
 *    thread running elsewhere on the same page is unaffected. (A system that
 *    forbids writable+executable pages -- SELinux execmod, PaX -- makes
 *    mprotect fail and the install is refused with the reason.)
 *
 * 2. No torn instruction for a thread that enters the target while we write.
 *    The patch is 4, 5, 14 or 16 bytes and no store of that size is atomic for
 *    instruction fetch. The architecture file does it in steps:
 *    - x86_64: if the patch fits in one aligned 8-byte word, a single 8-byte
 *      store (the word's other bytes are rewritten with their own values).
 *      Otherwise first a 2-byte store of `EB FE` (`jmp .`, a jump to itself) at
 *      the entry, so that a thread arriving there spins; then the rest of the
 *      patch (bytes 2..N-1, which nobody can reach now); then a 2-byte store of
 *      the patch's first two bytes, which releases the spinners into the
 *      complete patch. A 2-byte store is atomic unless it straddles a 64-byte
 *      line (function entries are 16-byte aligned in practice).
 *    - aarch64: the near patch is one aligned word (`b rel26`), a single
 *      store. The far patch (16 bytes) goes in the same steps as above with
 *      `b .` (0x14000000) as the parking first word. The data cache is cleaned
 *      and the instruction cache invalidated (__builtin___clear_cache) after
 *      each step.
 *    Between steps every thread of the process is made to serialize its
 *    instruction stream with membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)
 *    where the kernel supports it (x86_64 and arm64 since Linux 4.16), which
 *    is what the architecture manuals ask of cross-modifying code; where the
 *    kernel lacks it we rely on the hardware's
 *    coherence of stores with instruction fetch (x86 snoops; arm64 cache
 *    maintenance broadcasts to the inner-shareable domain).
 *    Removal restores the original bytes through the same steps.
 *
 * 3. Threads already past the entry. A thread that was preempted *between two
 *    instructions of the patched window* (say after the 1-byte `push rbp` of a
 *    5-byte window) resumes in the middle of our jump and crashes. We cannot
 *    see other threads' program counters from inside the process without
 *    stopping them (signals or ptrace), which a library must not do to its
 *    host, so this is a documented limitation: the window is a few nanoseconds
 *    of a function's first instructions, and backends install their hooks when
 *    a device is first opened, normally before the application allocates.
 *    The near patches are a single instruction each (x86_64 `jmp rel32`,
 *    aarch64 `b`), so removal has no such window, and on aarch64 the near
 *    window is one instruction, so install has none either. The aarch64 far
 *    patch is two instructions (`ldr x16; br x16`): a thread preempted between
 *    them while the hook is removed resumes in the restored original code at
 *    +4, having skipped the first instruction -- another reason far patches
 *    are only the fallback. Threads that are inside the trampoline or the
 *    replacement are safe: that memory is never unmapped (Note [Trampoline
 *    memory] in hook_mem.c).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/membarrier.h>
#endif

#include "hook_internal.h"

#if defined(__linux__) && defined(SYS_membarrier) && defined(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)
#define HAVE_SYNC_CORE 1
/* Whether membarrier SYNC_CORE is usable: 0 not asked yet, 1 yes, -1 no.
 * Only touched under the engine lock (hook.c), like everything here. */
static int g_sync_core_state;
#endif

void vs_hook_sync_cores(void)
{
#if defined(HAVE_SYNC_CORE)
    if (g_sync_core_state == 0) {
        long ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
        g_sync_core_state = ok == 0 ? 1 : -1;
    }
    if (g_sync_core_state == 1)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0);
#endif
    /* Compiler barrier only: the architecture's stores are ordered by their
     * own means (x86 TSO; release stores and DSB on aarch64). */
    __asm__ volatile("" : : : "memory");
}

/* Restore each mapping's own protection over [first, last). */
static void restore_protection(const vs_hook_maps *maps, uintptr_t first, uintptr_t last)
{
    for (uintptr_t a = first; a < last;) {
        const vs_hook_map *m = vs_hook_maps_find(maps, a);
        uintptr_t end = m && m->end < last ? m->end : last;
        if (m)
            mprotect((void *)a, end - a, m->prot);
        a = end;
    }
}

vs_status vs_hook_patch_live(const vs_hook_maps *maps, uint8_t *dst, const uint8_t *bytes, size_t len,
                             char *why, size_t why_len)
{
    if (!maps || !dst || !bytes || len == 0 || len > VS_HOOK_MAX_PATCH)
        return VS_ERR_INVALID_ARGUMENT;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)dst & ~(page - 1);
    uintptr_t last = ((uintptr_t)dst + len + page - 1) & ~(page - 1);
    for (uintptr_t a = first; a < last; a += page) {
        const vs_hook_map *m = vs_hook_maps_find(maps, a);
        if (!m || !(m->prot & PROT_EXEC)) {
            vs_hook_set_why(why, why_len, "the %zu bytes at %p are not all in executable memory", len,
                            (void *)dst);
            return VS_ERR_NOT_SUPPORTED;
        }
    }
    if (mprotect((void *)first, last - first, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        int err = errno;
        restore_protection(maps, first, last);
        vs_hook_set_why(why, why_len, "cannot make the code at %p writable: mprotect: %s", (void *)dst,
                        strerror(err));
        return VS_ERR_NOT_SUPPORTED;
    }
    vs_hook_arch_store_live(dst, bytes, len);
    restore_protection(maps, first, last);
    return VS_OK;
}
