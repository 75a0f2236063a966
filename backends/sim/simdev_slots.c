/* simdev_slots.c: handle tables.
 *
 * Note [simdev handles]
 * A handle is [63..60 kind][59..56 ordinal][55..32 generation][31..0 slot].
 * The kind and ordinal let a lookup reject a stream passed as an event or a
 * handle of another device; the generation (bumped when a slot is freed,
 * skipping 0) rejects a stale handle whose slot was reused. Lookups are O(1)
 * and never dereference anything the caller passed. Handles are never 0 (the
 * kind is non-zero), which leaves 0 for "the default stream".
 */
#include <stdlib.h>

#include "simdev_internal.h"

#define GEN_MASK 0xffffffu

static simdev_handle make_handle(int kind, int ordinal, uint32_t gen, uint32_t slot)
{
    return ((uint64_t)kind << 60) | ((uint64_t)(ordinal & 0xf) << 56) |
           ((uint64_t)(gen & GEN_MASK) << 32) | slot;
}

int simdev_handle_ordinal(simdev_handle h)
{
    int kind = (int)(h >> 60);
    if (kind < SIM_KIND_CHUNK || kind > SIM_KIND_EVENT)
        return -1;
    return (int)((h >> 56) & 0xf);
}

void sim_slots_init(sim_slots *t, int kind)
{
    t->items = NULL;
    t->gens = NULL;
    t->free_slots = NULL;
    t->nfree = t->cap = t->live = 0;
    t->kind = kind;
}

void sim_slots_fini(sim_slots *t)
{
    free(t->items);
    free(t->gens);
    free(t->free_slots);
    sim_slots_init(t, t->kind);
}

static vs_status grow(sim_slots *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 16;
    if (ncap <= t->cap)
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "handle table full");
    void **items = realloc(t->items, ncap * sizeof *items);
    if (!items)
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "no host memory for handles");
    t->items = items;
    uint32_t *gens = realloc(t->gens, ncap * sizeof *gens);
    if (!gens)
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "no host memory for handles");
    t->gens = gens;
    uint32_t *fs = realloc(t->free_slots, ncap * sizeof *fs);
    if (!fs)
        return sim_fail(VS_ERR_OUT_OF_MEMORY, "no host memory for handles");
    t->free_slots = fs;
    /* Push the new slots so that the lowest is popped first. */
    for (uint32_t i = ncap; i > t->cap; i--) {
        t->items[i - 1] = NULL;
        t->gens[i - 1] = 1;
        t->free_slots[t->nfree++] = i - 1;
    }
    t->cap = ncap;
    return VS_OK;
}

vs_status sim_slots_add(sim_slots *t, int ordinal, void *obj, simdev_handle *out)
{
    if (t->nfree == 0) {
        vs_status st = grow(t);
        if (st != VS_OK)
            return st;
    }
    uint32_t slot = t->free_slots[--t->nfree];
    t->items[slot] = obj;
    t->live++;
    *out = make_handle(t->kind, ordinal, t->gens[slot], slot);
    return VS_OK;
}

void *sim_slots_get(const sim_slots *t, int ordinal, simdev_handle h)
{
    if ((int)(h >> 60) != t->kind || (int)((h >> 56) & 0xf) != ordinal)
        return NULL;
    uint32_t slot = (uint32_t)h;
    uint32_t gen = (uint32_t)(h >> 32) & GEN_MASK;
    if (slot >= t->cap || t->gens[slot] != gen)
        return NULL;
    return t->items[slot];
}

void sim_slots_remove(sim_slots *t, simdev_handle h)
{
    uint32_t slot = (uint32_t)h;
    if (slot >= t->cap || !t->items[slot])
        return;
    t->items[slot] = NULL;
    uint32_t g = (t->gens[slot] + 1) & GEN_MASK;
    t->gens[slot] = g ? g : 1;
    t->free_slots[t->nfree++] = slot;
    t->live--;
}
