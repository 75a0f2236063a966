/* The hook engine's internal boundary.
 *
 * hook.c is the arch-neutral engine: the registry of installed hooks and the
 * install/remove sequence. It relies on
 *   hook_maps.c   a snapshot of /proc/self/maps (what is mapped, with which protection);
 *   hook_mem.c    executable slots for relays and trampolines, near a target if asked;
 *   hook_patch.c  writing over live code (protection toggling, core serialization);
 * and on exactly one architecture file, chosen by CMake, implementing the
 * vs_hook_arch_* functions below: hook_x86_64.c or hook_aarch64.c.
 */
#ifndef VS_HOOK_INTERNAL_H
#define VS_HOOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hook.h"

#define VS_HOOK_MAX_PATCH 16   /* bytes, the largest patch any architecture writes */
#define VS_HOOK_SLOT_SIZE 256  /* bytes of executable memory per hook: relay + trampoline */

/* One-line reason for a failure; why may be NULL when why_len is 0. */
void vs_hook_set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- /proc/self/maps (hook_maps.c) ---------------------------------------- */

typedef struct vs_hook_map {
    uintptr_t start;  /* first byte of the mapping */
    uintptr_t end;    /* one past its last byte */
    int prot;         /* PROT_READ | PROT_WRITE | PROT_EXEC as mapped */
    int is_stack;     /* the main thread's [stack] (grows down into the gap below it) */
} vs_hook_map;

typedef struct vs_hook_maps {
    vs_hook_map *v;   /* sorted by start, non-overlapping */
    size_t n;         /* entries in v */
} vs_hook_maps;

/* VS_ERR_OUT_OF_MEMORY, or VS_ERR_NOT_SUPPORTED when /proc/self/maps is unreadable. */
vs_status vs_hook_maps_read(vs_hook_maps *maps);
void vs_hook_maps_free(vs_hook_maps *maps);
/* The mapping containing addr, or NULL. */
const vs_hook_map *vs_hook_maps_find(const vs_hook_maps *maps, uintptr_t addr);
/* Bytes readable from addr on, through adjacent readable mappings (0 if none). */
size_t vs_hook_maps_readable(const vs_hook_maps *maps, uintptr_t addr);

/* ---- executable slots (hook_mem.c) ---------------------------------------- */

typedef struct vs_hook_region vs_hook_region;

typedef struct vs_hook_mem {
    vs_hook_region *regions;  /* every region ever mapped; none is unmapped */
} vs_hook_mem;

/* A slot of VS_HOOK_SLOT_SIZE bytes lying wholly in [lo, hi), preferring
 * addresses close to `near`; lo = 0 and hi = UINTPTR_MAX mean anywhere.
 * VS_ERR_OUT_OF_MEMORY when no such memory can be had. */
vs_status vs_hook_mem_alloc(vs_hook_mem *mem, const vs_hook_maps *maps, uintptr_t near,
                            uintptr_t lo, uintptr_t hi, uint8_t **slot);
/* Give back the slot just allocated, which was never written or executed. */
void vs_hook_mem_unalloc(vs_hook_mem *mem, uint8_t *slot);
/* Fill a fresh slot with code (len <= VS_HOOK_SLOT_SIZE). VS_ERR_NOT_SUPPORTED
 * if the memory cannot be made writable. */
vs_status vs_hook_mem_write(uint8_t *slot, const uint8_t *code, size_t len, char *why, size_t why_len);

/* ---- writing over live code (hook_patch.c) -------------------------------- */

/* Replace len bytes at dst (code other threads may be running) with bytes;
 * see Note [Patching live code]. VS_ERR_NOT_SUPPORTED if dst cannot be made
 * writable (the protection is restored either way). */
vs_status vs_hook_patch_live(const vs_hook_maps *maps, uint8_t *dst, const uint8_t *bytes, size_t len,
                             char *why, size_t why_len);
/* Make every thread of the process serialize its instruction stream before it
 * runs on (membarrier SYNC_CORE where the kernel has it; else nothing). */
void vs_hook_sync_cores(void);

/* ---- the architecture (hook_x86_64.c or hook_aarch64.c) ------------------- */

/* What the architecture decided for one target, for one slot address. */
typedef struct vs_hook_plan {
    vs_hook_kind kind;
    size_t patch_len;                 /* bytes to write at the target */
    uint8_t patch[VS_HOOK_MAX_PATCH]; /* those bytes */
    size_t window_len;                /* bytes of whole instructions relocated (>= patch_len) */
    size_t code_len;                  /* bytes of the slot used */
    uint8_t code[VS_HOOK_SLOT_SIZE];  /* slot contents; position-dependent: only valid at the slot */
    size_t tramp_offset;              /* offset of the trampoline (the "original") in the slot */
} vs_hook_plan;

/* Where a slot must lie for the short "near" patch: sets [*lo, *hi) and
 * returns 1, or returns 0 when the architecture only patches absolute jumps. */
int vs_hook_arch_near_range(uintptr_t target, uintptr_t *lo, uintptr_t *hi);

/* Decode the target's prologue (readable: bytes that may be read from target
 * on) and plan the patch and the slot's code for a slot at `slot`; near says
 * whether the slot is in the near range. VS_ERR_NOT_SUPPORTED with a reason
 * when the prologue cannot be relocated. */
vs_status vs_hook_arch_plan(const uint8_t *target, size_t readable, const void *replacement,
                            const uint8_t *slot, int near, vs_hook_plan *plan, char *why,
                            size_t why_len);

/* Store len bytes over live code at dst (already writable) so that no thread
 * that enters at dst runs a torn instruction; see Note [Patching live code]. */
void vs_hook_arch_store_live(uint8_t *dst, const uint8_t *bytes, size_t len);

/* Make freshly written code at [begin, begin+len) visible to instruction fetch. */
void vs_hook_arch_flush_icache(void *begin, size_t len);

#endif /* VS_HOOK_INTERNAL_H */
