/* sim_api.c: the exported vs_sim_* functions of <vramswap/sim.h> (configuration,
 * injection, counters, external usage, simulated allocations) and the sim
 * backend's allocation interception.
 *
 * Note [Sim interception]
 * The simulator has no driver entry points to patch: its "cuMemAlloc" is
 * vs_sim_malloc, which calls the installed sink the way the CUDA hooks do:
 * before_alloc (a refusal fails the allocation with VS_ERR_OUT_OF_MEMORY without
 * allocating), the allocation, on_oom + one retry if the device is out of
 * memory, after_alloc on success; vs_sim_free calls on_free before freeing.
 * The sink is copied by value under a small lock and called with no lock held
 * (the sink takes the core's registry and device locks). intercept_remove only
 * clears it and does not wait for calls in flight: the core calls remove while
 * holding its registry lock, which an in-flight sink call may be waiting for,
 * and the core's sink tolerates a call after removal (it finds no device).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sim_backend.h"

/* ---------------------------------------------------------------- configuration */

static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;
/* A malformed VRAMSWAP_SIM is an error, like a malformed VRAMSWAP_CONF: devices
 * refuse to open (VS_ERR_INVALID_ARGUMENT) until vs_sim_configure sets a valid
 * configuration explicitly. The rest of the simulator runs on defaults. */
static atomic_int g_env_bad;

static void apply_env_config(void)
{
    if (simdev_is_configured())
        return;
    vs_sim_config c;
    vs_status st = vs_sim_config_default(&c);
    if (st != VS_OK) {
        vs_backend_log(VS_LOG_ERROR, "sim: VRAMSWAP_SIM: %s", simdev_last_error());
        atomic_store(&g_env_bad, 1);
    }
    if (simdev_configure(&c) != VS_OK) {
        /* Bad values that parse (e.g. a granularity that is not a power of two). */
        vs_backend_log(VS_LOG_ERROR, "sim: VRAMSWAP_SIM: %s", simdev_last_error());
        atomic_store(&g_env_bad, 1);
        simdev_config_default(&c);
        simdev_configure(&c);
    }
}

vs_status sim_env_status(void)
{
    sim_ensure_config();
    return atomic_load(&g_env_bad) ? VS_ERR_INVALID_ARGUMENT : VS_OK;
}

void sim_ensure_config(void)
{
    pthread_once(&g_env_once, apply_env_config);
}

VS_API vs_status vs_sim_config_default(vs_sim_config *cfg)
{
    vs_status st = simdev_config_default(cfg);
    if (st != VS_OK)
        return st;
    return simdev_config_parse(cfg, getenv("VRAMSWAP_SIM"));
}

VS_API vs_status vs_sim_configure(const vs_sim_config *cfg)
{
    sim_ensure_config();
    vs_status st = simdev_configure(cfg);
    if (st == VS_OK)
        atomic_store(&g_env_bad, 0);
    return st;
}

VS_API vs_status vs_sim_get_config(vs_sim_config *cfg)
{
    sim_ensure_config();
    return simdev_get_config(cfg);
}

static vs_status device(int ordinal, simdev_t **out)
{
    sim_ensure_config();
    return simdev_get(ordinal, out);
}

VS_API vs_status vs_sim_inject(int ordinal, int op, uint32_t skip, uint32_t count, vs_status error)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    return st != VS_OK ? st : simdev_inject(d, op, skip, count, error);
}

VS_API vs_status vs_sim_inject_clear(int ordinal)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    return st != VS_OK ? st : simdev_inject_clear(d);
}

VS_API vs_status vs_sim_get_counters(int ordinal, vs_sim_counters *out)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    return st != VS_OK ? st : simdev_get_counters(d, out);
}

VS_API vs_status vs_sim_set_external_usage(int ordinal, uint64_t bytes)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    return st != VS_OK ? st : simdev_set_external_usage(d, bytes);
}

/* ---------------------------------------------------------------- interception */

static pthread_mutex_t g_sink_lock = PTHREAD_MUTEX_INITIALIZER;  /* leaf lock */
static vs_intercept_sink g_sink;   /* guarded by g_sink_lock */
static bool g_sink_set;            /* guarded by g_sink_lock */

vs_status sim_intercept_install(const vs_intercept_sink *sink, char *why, size_t why_len)
{
    if (!sink || !sink->before_alloc || !sink->on_oom || !sink->after_alloc || !sink->on_free) {
        if (why && why_len)
            snprintf(why, why_len, "incomplete interception sink");
        return VS_ERR_INVALID_ARGUMENT;
    }
    pthread_mutex_lock(&g_sink_lock);
    g_sink = *sink;
    g_sink_set = true;
    pthread_mutex_unlock(&g_sink_lock);
    return VS_OK;
}

vs_status sim_intercept_remove(void)
{
    pthread_mutex_lock(&g_sink_lock);
    g_sink_set = false;
    memset(&g_sink, 0, sizeof g_sink);
    pthread_mutex_unlock(&g_sink_lock);
    return VS_OK;
}

static bool current_sink(vs_intercept_sink *out)
{
    pthread_mutex_lock(&g_sink_lock);
    bool set = g_sink_set;
    if (set)
        *out = g_sink;
    pthread_mutex_unlock(&g_sink_lock);
    return set;
}

VS_API vs_status vs_sim_malloc(int ordinal, uint64_t size, uintptr_t *ptr)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    if (st != VS_OK)
        return st;
    if (!ptr || size == 0)
        return VS_ERR_INVALID_ARGUMENT;
    vs_intercept_sink sink;
    bool hooked = current_sink(&sink);
    if (hooked) {
        st = sink.before_alloc(sink.user, ordinal, size);
        if (st != VS_OK)
            return st == VS_ERR_OUT_OF_MEMORY ? st : sim_report(st, "malloc (before_alloc)");
    }
    uint64_t p = 0;
    st = simdev_malloc(d, size, &p);
    if (st == VS_ERR_OUT_OF_MEMORY && hooked && sink.on_oom(sink.user, ordinal, size) == VS_OK)
        st = simdev_malloc(d, size, &p);
    if (st != VS_OK)
        return sim_report(st, "malloc");
    if (hooked)
        sink.after_alloc(sink.user, ordinal, (uintptr_t)p, size);
    *ptr = (uintptr_t)p;
    return VS_OK;
}

VS_API vs_status vs_sim_free(int ordinal, uintptr_t ptr)
{
    simdev_t *d = NULL;
    vs_status st = device(ordinal, &d);
    if (st != VS_OK)
        return st;
    uint64_t base;
    int kind;
    if (simdev_find_range(d, ptr, &base, NULL, &kind) != VS_OK || base != ptr ||
        kind != SIMDEV_RANGE_ALLOCATION)
        return sim_report(VS_ERR_INVALID_ARGUMENT, "free (not an allocation)");
    vs_intercept_sink sink;
    if (current_sink(&sink))
        sink.on_free(sink.user, ordinal, ptr);
    return sim_report(simdev_free(d, ptr), "free");
}
