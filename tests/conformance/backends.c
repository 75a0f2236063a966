/* Per-backend hooks of the conformance suite (vsc_backend in suite.h): the
 * simulator's here, the GPU backends' in native_cuda.c, native_hip.c and
 * native_level_zero.c. Everything else in the suite is backend-neutral. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suite.h"

/* Copy engine speed for tests that need copies still in flight (events): 16 MiB
 * take 16 ms, pageable memory four times longer (Note [Conformance sizes]). */
#define VSC_SIM_SLOW_BANDWIDTH ((uint64_t)1 << 30)

/* The simulator keeps its configuration (VRAMSWAP_SIM applies) but is
 * reconfigured before each test: fresh totals, no injection left over, and
 * throttled copies when the test asks for them. */
static vs_status sim_prepare(int ordinal, uint32_t needs, char *why, size_t why_len)
{
    (void)ordinal;
    vs_sim_config c;
    vs_status st = vs_sim_config_default(&c);
    if (st != VS_OK) {
        snprintf(why, why_len, "VRAMSWAP_SIM is not a valid simulator configuration");
        return st;
    }
    if ((needs & VSC_NEED_SLOW_COPIES) && c.copy_bandwidth == 0)
        c.copy_bandwidth = VSC_SIM_SLOW_BANDWIDTH;
    st = vs_sim_configure(&c);
    if (st != VS_OK)
        snprintf(why, why_len, "vs_sim_configure refused (a simulated device is still open or holds memory)");
    return st;
}

static bool sim_counters(int ordinal, vs_sim_counters *out)
{
    return vs_sim_get_counters(ordinal, out) == VS_OK;
}

typedef struct sim_native {
    int ordinal;
} sim_native;

static vs_status sim_native_begin(int ordinal, void **state, char *why, size_t why_len)
{
    sim_native *s = malloc(sizeof *s);
    if (!s) {
        snprintf(why, why_len, "out of host memory");
        return VS_ERR_OUT_OF_MEMORY;
    }
    s->ordinal = ordinal;
    *state = s;
    return VS_OK;
}

static vs_status sim_native_alloc(void *state, uint64_t size, uintptr_t *ptr)
{
    return vs_sim_malloc(((sim_native *)state)->ordinal, size, ptr);
}

static vs_status sim_native_free(void *state, uintptr_t ptr)
{
    return vs_sim_free(((sim_native *)state)->ordinal, ptr);
}

static void sim_native_end(void *state)
{
    free(state);
}

static const vsc_backend vsc_backend_sim = {
    .name = "sim",
    .prepare = sim_prepare,
    .counters = sim_counters,
    .native_begin = sim_native_begin,
    .native_alloc = sim_native_alloc,
    .native_free = sim_native_free,
    .native_end = sim_native_end,
};

static const vsc_backend vsc_backend_none = {.name = "other"};

const vsc_backend *vsc_backend_find(const char *name)
{
    static const vsc_backend *const known[] = {&vsc_backend_sim, &vsc_backend_cuda, &vsc_backend_hip,
                                                 &vsc_backend_level_zero};
    for (size_t i = 0; i < VSC_COUNT(known); i++)
        if (strcmp(known[i]->name, name) == 0)
            return known[i];
    return &vsc_backend_none;
}
