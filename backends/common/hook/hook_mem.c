/* Executable memory for relays and trampolines.
 *
 * Note [Trampoline memory]
 * ------------------------
 * Every hook gets one fixed-size slot (VS_HOOK_SLOT_SIZE bytes) of executable
 * memory holding its relay (x86_64 near patches: an absolute jump to the
 * replacement) and its trampoline (the relocated prologue plus a jump back).
 * Slots are cut from 64 KiB regions mapped read+execute.
 *
 * Near. x86_64's preferred patch is a 5-byte `jmp rel32`, which reaches only
 * +-2 GiB, and a relocated RIP-relative operand keeps its 32-bit displacement
 * only if the trampoline is within +-2 GiB of the data. So a slot for a near
 * patch must lie in a given window around the target. We first look for room
 * in regions already mapped; otherwise we list the free gaps of
 * /proc/self/maps that intersect the window, order candidate addresses by
 * distance to the target, and try each with mmap(MAP_FIXED_NOREPLACE), which
 * never clobbers a mapping and fails if someone got there first (the snapshot
 * may be stale). Kernels older than 4.17 ignore the flag and treat the address
 * as a hint, so we also check the address we got and unmap a miss. The gap
 * below the main stack is left alone (the stack grows into it). If nothing is
 * free in reach, the caller falls back to the 14-byte absolute patch.
 *
 * Lifetime. Slots are never unmapped or reused once written: after
 * vs_hook_remove() a thread may still be running in the trampoline (it entered
 * before the original bytes were restored, or it is in the replacement and
 * about to call the original). A few hundred bytes per hook ever installed is
 * the price. A slot that was allocated but never written (the plan failed) is
 * given back at once.
 *
 * Writing. Other slots of the same page may be running, so the page is made
 * read+write+execute while a new slot is written, never read+write only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hook_internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux 4.17; older kernels take the address as a hint */
#endif

#define REGION_SIZE ((size_t)64 * 1024)          /* bytes per region */
#define REGION_ALIGN ((uintptr_t)64 * 1024)      /* candidate addresses are multiples of this */
#define STACK_GROWTH ((uintptr_t)64 * 1024 * 1024) /* gap kept free below [stack] */
#define LOWEST_ADDR ((uintptr_t)16 * 1024 * 1024)  /* never map below (NULL-page range) */
#define HIGHEST_ADDR ((uintptr_t)0x7ffffffff000ull) /* top of the 47-bit user address space */
#define MAX_TRIES 32                               /* candidate addresses tried per request */

struct vs_hook_region {
    vs_hook_region *next;
    uint8_t *base;  /* start of the mapping */
    size_t size;    /* bytes mapped */
    size_t used;    /* bytes handed out from base on */
};

typedef struct candidate {
    uintptr_t addr;     /* where to try mapping a region */
    uintptr_t distance; /* |addr - near|, bytes */
} candidate;

static uintptr_t distance_to(uintptr_t a, uintptr_t b)
{
    return a > b ? a - b : b - a;
}

static int cmp_candidates(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    return (a->distance > b->distance) - (a->distance < b->distance);
}

static vs_status add_region(vs_hook_mem *mem, uint8_t *base, vs_hook_region **out)
{
    vs_hook_region *r = calloc(1, sizeof *r);
    if (!r)
        return VS_ERR_OUT_OF_MEMORY;
    r->base = base;
    r->size = REGION_SIZE;
    r->next = mem->regions;
    mem->regions = r;
    *out = r;
    return VS_OK;
}

/* Map a region at exactly addr, or return NULL. */
static uint8_t *map_exactly(uintptr_t addr)
{
    void *p = mmap((void *)addr, REGION_SIZE, PROT_READ | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if ((uintptr_t)p != addr) {
        munmap(p, REGION_SIZE);
        return NULL;
    }
    return p;
}

/* Candidate addresses for a region inside [lo, hi), nearest to `near` first. */
static vs_status list_candidates(const vs_hook_maps *maps, uintptr_t near, uintptr_t lo, uintptr_t hi,
                                 candidate **out, size_t *count)
{
    candidate *c = calloc(maps->n + 1, sizeof *c);
    if (!c)
        return VS_ERR_OUT_OF_MEMORY;
    size_t n = 0;
    uintptr_t gap_start = LOWEST_ADDR;
    for (size_t i = 0; i <= maps->n; i++) {
        uintptr_t gap_end = HIGHEST_ADDR;
        if (i < maps->n) {
            gap_end = maps->v[i].start;
            if (maps->v[i].is_stack)
                gap_end = gap_end > STACK_GROWTH ? gap_end - STACK_GROWTH : 0;
        }
        uintptr_t a = gap_start > lo ? gap_start : lo;
        uintptr_t b = gap_end < hi ? gap_end : hi;
        a = (a + REGION_ALIGN - 1) & ~(REGION_ALIGN - 1);
        if (b > a && b - a >= REGION_SIZE) {
            uintptr_t last = (b - REGION_SIZE) & ~(REGION_ALIGN - 1);
            uintptr_t pick = near <= a ? a : near >= last ? last : (near & ~(REGION_ALIGN - 1));
            c[n].addr = pick;
            c[n].distance = distance_to(pick, near);
            n++;
        }
        if (i < maps->n && maps->v[i].end > gap_start)
            gap_start = maps->v[i].end;
    }
    qsort(c, n, sizeof *c, cmp_candidates);
    *out = c;
    *count = n;
    return VS_OK;
}

static vs_status map_near(vs_hook_mem *mem, const vs_hook_maps *maps, uintptr_t near, uintptr_t lo,
                          uintptr_t hi, vs_hook_region **out)
{
    candidate *c;
    size_t n;
    vs_status st = list_candidates(maps, near, lo, hi, &c, &n);
    if (st != VS_OK)
        return st;
    st = VS_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n && i < MAX_TRIES; i++) {
        uint8_t *base = map_exactly(c[i].addr);
        if (!base)
            continue;
        st = add_region(mem, base, out);
        if (st != VS_OK)
            munmap(base, REGION_SIZE);
        break;
    }
    free(c);
    return st;
}

static vs_status map_anywhere(vs_hook_mem *mem, vs_hook_region **out)
{
    void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return VS_ERR_OUT_OF_MEMORY;
    vs_status st = add_region(mem, p, out);
    if (st != VS_OK)
        munmap(p, REGION_SIZE);
    return st;
}

static int slot_fits(const vs_hook_region *r, uintptr_t lo, uintptr_t hi)
{
    if (r->size - r->used < VS_HOOK_SLOT_SIZE)
        return 0;
    uintptr_t s = (uintptr_t)r->base + r->used;
    return s >= lo && s <= hi && hi - s >= VS_HOOK_SLOT_SIZE;
}

vs_status vs_hook_mem_alloc(vs_hook_mem *mem, const vs_hook_maps *maps, uintptr_t near,
                            uintptr_t lo, uintptr_t hi, uint8_t **slot)
{
    if (!mem || !maps || !slot || hi <= lo)
        return VS_ERR_INVALID_ARGUMENT;
    vs_hook_region *best = NULL;
    for (vs_hook_region *r = mem->regions; r; r = r->next) {
        if (!slot_fits(r, lo, hi))
            continue;
        uintptr_t s = (uintptr_t)r->base + r->used;
        if (!best || distance_to(s, near) < distance_to((uintptr_t)best->base + best->used, near))
            best = r;
    }
    if (!best) {
        int anywhere = lo == 0 && hi == UINTPTR_MAX;
        vs_status st = anywhere ? map_anywhere(mem, &best) : map_near(mem, maps, near, lo, hi, &best);
        if (st != VS_OK)
            return st;
        if (!slot_fits(best, lo, hi))
            return VS_ERR_OUT_OF_MEMORY; /* the region is kept for later hooks */
    }
    *slot = best->base + best->used;
    best->used += VS_HOOK_SLOT_SIZE;
    return VS_OK;
}

void vs_hook_mem_unalloc(vs_hook_mem *mem, uint8_t *slot)
{
    if (!mem || !slot)
        return;
    for (vs_hook_region *r = mem->regions; r; r = r->next) {
        if (r->used >= VS_HOOK_SLOT_SIZE && r->base + r->used - VS_HOOK_SLOT_SIZE == slot) {
            r->used -= VS_HOOK_SLOT_SIZE;
            return;
        }
    }
}

vs_status vs_hook_mem_write(uint8_t *slot, const uint8_t *code, size_t len, char *why, size_t why_len)
{
    if (!slot || !code || len > VS_HOOK_SLOT_SIZE)
        return VS_ERR_INVALID_ARGUMENT;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)slot & ~(page - 1);
    uintptr_t last = ((uintptr_t)slot + VS_HOOK_SLOT_SIZE + page - 1) & ~(page - 1);
    if (mprotect((void *)first, last - first, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        vs_hook_set_why(why, why_len, "cannot make trampoline memory writable+executable: %s",
                        strerror(errno));
        return VS_ERR_NOT_SUPPORTED;
    }
    memcpy(slot, code, len);
    vs_hook_arch_flush_icache(slot, len);
    mprotect((void *)first, last - first, PROT_READ | PROT_EXEC);
    return VS_OK;
}
