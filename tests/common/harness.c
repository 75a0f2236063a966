/* The shared test harness; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The devices this test opened (one process per test, so a plain array). */
static vt_env vt_envs[VT_MAX_DEVICES];
static int vt_env_used[VT_MAX_DEVICES];
/* Ordinals whose simulator counters vt_fini checks. */
static int vt_touched[VT_MAX_DEVICES];

void vt_init(void)
{
    unsetenv("VRAMSWAP_CONF");
    unsetenv("VRAMSWAP_SIM");
    memset(vt_envs, 0, sizeof vt_envs);
    memset(vt_env_used, 0, sizeof vt_env_used);
    memset(vt_touched, 0, sizeof vt_touched);
}

void vt_assert_sim_clean(int ordinal)
{
    vs_sim_counters c = vt_counters(ordinal);
    cr_assert_eq(c.reservations, 0, "sim %d: %llu reservations left", ordinal,
                 (unsigned long long)c.reservations);
    cr_assert_eq(c.reserved_bytes, 0, "sim %d: reserved bytes left", ordinal);
    cr_assert_eq(c.phys_chunks, 0, "sim %d: %llu physical chunks left", ordinal,
                 (unsigned long long)c.phys_chunks);
    cr_assert_eq(c.phys_bytes, 0, "sim %d: physical bytes left", ordinal);
    cr_assert_eq(c.mapped_bytes, 0, "sim %d: %llu bytes still mapped", ordinal,
                 (unsigned long long)c.mapped_bytes);
    cr_assert_eq(c.host_registrations, 0, "sim %d: %llu host registrations left", ordinal,
                 (unsigned long long)c.host_registrations);
    cr_assert_eq(c.host_registered_bytes, 0, "sim %d: host registered bytes left", ordinal);
    cr_assert_eq(c.streams, 0, "sim %d: %llu streams left", ordinal,
                 (unsigned long long)c.streams);
    cr_assert_eq(c.events, 0, "sim %d: %llu events left", ordinal,
                 (unsigned long long)c.events);
}

void vt_check(vt_env *env)
{
    VT_OK(vs_device_check_invariants(env->dev));
}

void vt_fini(void)
{
    for (int o = 0; o < VT_MAX_DEVICES; o++)
        if (vt_touched[o])
            vs_sim_inject_clear(o);
    for (int i = 0; i < VT_MAX_DEVICES; i++) {
        if (!vt_env_used[i])
            continue;
        vt_env *env = &vt_envs[i];
        vt_env_used[i] = 0;
        VT_OK(vs_device_check_invariants(env->dev));
        VT_OK(vs_device_close(env->dev));
    }
    /* Whatever a test set on the side is released before checking the counters. */
    for (int o = 0; o < VT_MAX_DEVICES; o++) {
        if (!vt_touched[o])
            continue;
        VT_OK(vs_sim_set_external_usage(o, 0));
        vt_assert_sim_clean(o);
    }
}

void vt_configure_sim(const vt_params *p)
{
    vs_sim_config sc;
    VT_OK(vs_sim_config_default(&sc));
    uint64_t gran = p->granularity ? p->granularity : 64 * VT_KIB;
    uint64_t page = p->page_size ? p->page_size : gran;
    uint64_t cap = p->capacity ? p->capacity : (p->pages ? p->pages : 32) * page;
    int count = p->device_count ? p->device_count : (p->ordinal + 1);
    sc.device_count = count;
    sc.integrated = p->integrated;
    sc.total_memory = cap;
    sc.granularity = gran;
    sc.preferred_page_size = page;
    sc.copy_bandwidth = p->copy_bandwidth;
    VT_OK(vs_sim_configure(&sc));
    for (int o = 0; o < count && o < VT_MAX_DEVICES; o++)
        vt_touched[o] = 1;
}

vt_env *vt_open(const vt_params *p)
{
    int slot = -1;
    for (int i = 0; i < VT_MAX_DEVICES; i++) {
        if (!vt_env_used[i]) {
            slot = i;
            break;
        }
    }
    cr_assert(slot >= 0, "too many devices open in one test");
    int any_open = 0;
    for (int i = 0; i < VT_MAX_DEVICES; i++)
        any_open |= vt_env_used[i];
    if (!any_open)
        vt_configure_sim(p);

    vs_device_config cfg;
    VT_OK(vs_device_config_init(&cfg));
    uint64_t gran = p->granularity ? p->granularity : 64 * VT_KIB;
    cfg.flags = p->flags | (p->regrow ? 0u : (uint32_t)VS_DEVICE_NO_REGROW);
    cfg.regrow_delay_ns = p->regrow_delay_ns;
    cfg.regrow_delay_max_ns = p->regrow_delay_max_ns;
    cfg.regrow_margin = p->regrow_margin;
    cfg.page_size = p->page_size ? p->page_size : gran;
    cfg.headroom = p->headroom;
    cfg.limit = p->limit;
    cfg.mem_poll_ns = 0;

    vt_env *env = &vt_envs[slot];
    memset(env, 0, sizeof *env);
    env->ordinal = p->ordinal;
    VT_OK(vs_device_open("sim", p->ordinal, &cfg, &env->dev));
    cr_assert_not_null(env->dev);
    vt_env_used[slot] = 1;
    VT_OK(vs_device_get_props(env->dev, &env->props));
    env->page = env->props.page_size;
    env->capacity = env->props.total_memory;
    cr_assert_eq(env->page, cfg.page_size, "page size %llu, asked %llu",
                 (unsigned long long)env->page, (unsigned long long)cfg.page_size);
    return env;
}

void vt_forget(vt_env *env)
{
    for (int i = 0; i < VT_MAX_DEVICES; i++)
        if (&vt_envs[i] == env)
            vt_env_used[i] = 0;
}

void vt_close(vt_env *env)
{
    int ordinal = env->ordinal;
    vs_sim_inject_clear(ordinal);
    vt_check(env);
    VT_OK(vs_device_close(env->dev));
    vt_forget(env);
    VT_OK(vs_sim_set_external_usage(ordinal, 0));
    vt_assert_sim_clean(ordinal);
}

vs_memory_info vt_meminfo(vt_env *env)
{
    vs_memory_info mi;
    VT_OK(vs_device_memory_info(env->dev, &mi));
    return mi;
}

vs_stats vt_stats(vt_env *env)
{
    vs_stats s;
    VT_OK(vs_device_get_stats(env->dev, &s));
    return s;
}

vs_sim_counters vt_counters(int ordinal)
{
    vs_sim_counters c;
    VT_OK(vs_sim_get_counters(ordinal, &c));
    return c;
}

uint64_t vt_loaded(vs_vbar_t *vbar)
{
    uint64_t b = 0;
    VT_OK(vs_vbar_loaded_size(vbar, &b));
    return b;
}

size_t vt_residency(vs_vbar_t *vbar, uint8_t *map, size_t n)
{
    size_t count = 0;
    VT_OK(vs_vbar_residency(vbar, map, n, &count));
    cr_assert_leq(count, n, "residency map of %zu pages does not fit %zu", count, n);
    return count;
}

size_t vt_count_pages(vs_vbar_t *vbar, uint8_t flags)
{
    size_t count = 0;
    VT_OK(vs_vbar_residency(vbar, NULL, 0, &count));
    uint8_t *map = calloc(count ? count : 1, 1);
    cr_assert_not_null(map);
    VT_OK(vs_vbar_residency(vbar, map, count, &count));
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if ((map[i] & flags) == flags)
            n++;
    free(map);
    return n;
}

void *vt_host(vs_devptr_t p)
{
    return (void *)(uintptr_t)p;
}

vs_devptr_t vt_base(vs_vbar_t *vbar)
{
    vs_devptr_t base = 0;
    uint64_t size = 0;
    VT_OK(vs_vbar_get_base(vbar, &base, &size));
    return base;
}

vs_vbar_t *vt_vbar(vt_env *env, uint64_t pages)
{
    vs_vbar_t *v = NULL;
    VT_OK(vs_vbar_create(env->dev, pages * env->page, &v));
    cr_assert_not_null(v);
    return v;
}

vs_status vt_fault_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n, uint64_t *sig)
{
    return vs_vbar_fault(vbar, first * env->page, n * env->page, sig);
}

vs_status vt_unpin_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n)
{
    return vs_vbar_unpin(vbar, first * env->page, n * env->page, 0);
}

void vt_load_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n)
{
    for (uint64_t i = first; i < first + n; i++) {
        VT_OK(vt_fault_pages(env, vbar, i, 1, NULL));
        VT_OK(vt_unpin_pages(env, vbar, i, 1));
    }
}

#ifdef VT_NO_CRITERION
void vt_assert_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n  ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
#endif

/* ------------------------------------------------------------ log capture */

#define VT_LOG_RING 64

static pthread_mutex_t vt_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char vt_log_ring[VT_LOG_RING][256];
static long vt_log_total;
static long vt_log_by_level[VS_LOG_TRACE + 1];

static void vt_log_sink(int level, const char *message, void *user)
{
    (void)user;
    pthread_mutex_lock(&vt_log_lock);
    snprintf(vt_log_ring[vt_log_total % VT_LOG_RING], sizeof vt_log_ring[0], "[%d] %s", level,
             message ? message : "(null)");
    vt_log_total++;
    if (level >= 0 && level <= VS_LOG_TRACE)
        vt_log_by_level[level]++;
    pthread_mutex_unlock(&vt_log_lock);
}

void vt_log_capture(void)
{
    VT_OK(vs_set_log_callback(vt_log_sink, NULL));
}

void vt_log_print_captured(void)
{
    pthread_mutex_lock(&vt_log_lock);
    long first = vt_log_total > VT_LOG_RING ? vt_log_total - VT_LOG_RING : 0;
    fprintf(stderr, "last %ld of %ld log messages:\n", vt_log_total - first, vt_log_total);
    for (long i = first; i < vt_log_total; i++)
        fprintf(stderr, "  %s\n", vt_log_ring[i % VT_LOG_RING]);
    pthread_mutex_unlock(&vt_log_lock);
}

long vt_log_count(int level)
{
    pthread_mutex_lock(&vt_log_lock);
    long n = level >= 0 && level <= VS_LOG_TRACE ? vt_log_by_level[level] : 0;
    pthread_mutex_unlock(&vt_log_lock);
    return n;
}

/* ------------------------------------------------------------ random data */

void vt_rng_seed(vt_rng *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t vt_rng_next(vt_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t vt_rng_below(vt_rng *rng, uint64_t bound)
{
    return bound ? vt_rng_next(rng) % bound : 0;
}

uint64_t vt_rng_range(vt_rng *rng, uint64_t lo, uint64_t hi)
{
    return lo + vt_rng_below(rng, hi - lo + 1);
}

int vt_rng_chance(vt_rng *rng, uint64_t num, uint64_t den)
{
    return vt_rng_below(rng, den) < num;
}

/* The pattern: 8-byte words of splitmix64 over (seed, word index), so any
 * misplaced or stale word is detected. */
static uint64_t vt_word(uint64_t seed, uint64_t i)
{
    vt_rng r = {seed ^ (i * 0xd1b54a32d192ed03ull)};
    return vt_rng_next(&r);
}

void vt_fill(void *dst, size_t len, uint64_t seed)
{
    unsigned char *p = dst;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = vt_word(seed, i / 8);
        memcpy(p + i, &w, 8);
    }
    if (i < len) {
        uint64_t w = vt_word(seed, i / 8);
        memcpy(p + i, &w, len - i);
    }
}

long vt_verify(const void *src, size_t len, uint64_t seed)
{
    const unsigned char *p = src;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = vt_word(seed, i / 8);
        if (memcmp(p + i, &w, 8) != 0) {
            for (size_t j = 0; j < 8; j++)
                if (p[i + j] != ((unsigned char *)&w)[j])
                    return (long)(i + j);
        }
    }
    if (i < len) {
        uint64_t w = vt_word(seed, i / 8);
        for (size_t j = 0; i + j < len; j++)
            if (p[i + j] != ((unsigned char *)&w)[j])
                return (long)(i + j);
    }
    return -1;
}

uint64_t vt_env_u64(const char *name, uint64_t fallback, int *from_env)
{
    const char *s = getenv(name);
    if (from_env)
        *from_env = 0;
    if (!s || !*s)
        return fallback;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || !end || *end) {
        fprintf(stderr, "ignoring %s=%s (not a number)\n", name, s);
        return fallback;
    }
    if (from_env)
        *from_env = 1;
    return (uint64_t)v;
}
