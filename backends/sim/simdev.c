/* simdev.c: the table of simulated devices, their configuration and lifetime,
 * counters, fault injection and the last-error text.
 *
 * The table is a static array of SIMDEV_MAX_DEVICES entries initialized once
 * (pthread_once); a simdev_t pointer stays valid for the whole process, so the
 * layers above can keep it and every entry point validates it by address. The
 * configuration may only change while every device is idle (nothing open,
 * nothing allocated), which is what lets the hot paths read a device's sizes
 * under its own lock without the configuration lock.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "simdev_internal.h"

static struct simdev g_devs[SIMDEV_MAX_DEVICES];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_cfg_lock = PTHREAD_MUTEX_INITIALIZER;  /* ranks above device locks */
static vs_sim_config g_cfg;       /* guarded by g_cfg_lock */
static int g_configured;          /* guarded by g_cfg_lock */
static _Thread_local char t_last_error[256];

/* ---------------------------------------------------------------- helpers */

vs_status sim_fail(vs_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_last_error, sizeof t_last_error, fmt, ap);
    va_end(ap);
    return st;
}

const char *simdev_last_error(void)
{
    return t_last_error;
}

uint64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sim_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

static void apply_config(simdev_t *d, const vs_sim_config *c)
{
    d->present = d->ordinal < c->device_count;
    d->total = c->total_memory;
    d->gran = c->granularity;
    d->page = c->preferred_page_size;
    d->bandwidth = c->copy_bandwidth;
    d->integrated = c->integrated;
    memset(d->engine_free_ns, 0, sizeof d->engine_free_ns);
    memset(d->inject, 0, sizeof d->inject);
    d->ctr.copies = d->ctr.bytes_copied = d->ctr.injected_failures = 0;
    memset(d->ctr.calls, 0, sizeof d->ctr.calls);
}

static void init_table(void)
{
    simdev_config_default(&g_cfg);
    for (int i = 0; i < SIMDEV_MAX_DEVICES; i++) {
        simdev_t *d = &g_devs[i];
        pthread_mutex_init(&d->lock, NULL);
        sim_cond_init(&d->cv_done);
        d->ordinal = i;
        sim_slots_init(&d->chunks, SIM_KIND_CHUNK);
        sim_slots_init(&d->streams, SIM_KIND_STREAM);
        sim_slots_init(&d->events, SIM_KIND_EVENT);
        d->phys.fd = -1;
        sim_stream_init_default(d);
        apply_config(d, &g_cfg);
    }
}

static bool dev_valid(const simdev_t *dev)
{
    if (dev < g_devs || dev >= g_devs + SIMDEV_MAX_DEVICES)
        return false;
    return ((const char *)dev - (const char *)g_devs) % sizeof *dev == 0;
}

vs_status sim_enter(simdev_t *dev, int op)
{
    if (!dev_valid(dev))
        return sim_fail(VS_ERR_INVALID_HANDLE, "not a simdev device");
    pthread_mutex_lock(&dev->lock);
    if (!dev->present) {
        pthread_mutex_unlock(&dev->lock);
        return sim_fail(VS_ERR_NO_DEVICE, "sim device %d is not present", dev->ordinal);
    }
    if (op >= 0)
        dev->ctr.calls[op]++;
    return VS_OK;
}

void sim_leave(simdev_t *dev)
{
    pthread_mutex_unlock(&dev->lock);
}

/* simdev cannot use the core's vs_status_name(). */
static const char *status_name(vs_status st)
{
    static const char *const names[VS_STATUS_COUNT_] = {
        "VS_OK", "VS_NOT_RESIDENT", "VS_ERR_OUT_OF_MEMORY", "VS_ERR_INVALID_ARGUMENT",
        "VS_ERR_INVALID_HANDLE", "VS_ERR_OUT_OF_RANGE", "VS_ERR_NOT_PINNED", "VS_ERR_BUSY",
        "VS_ERR_NOT_READY", "VS_ERR_NOT_SUPPORTED", "VS_ERR_NO_DEVICE", "VS_ERR_BACKEND",
        "VS_ERR_INTERNAL"};
    return (int)st >= 0 && (int)st < VS_STATUS_COUNT_ ? names[st] : "VS_UNKNOWN";
}

vs_status sim_injected(simdev_t *dev, int op, const char *what)
{
    sim_inject *in = &dev->inject[op];
    if (in->count == 0)
        return VS_OK;
    if (in->skip > 0) {
        in->skip--;
        return VS_OK;
    }
    in->count--;
    dev->ctr.injected_failures++;
    return sim_fail(in->error, "%s: injected failure (%s)", what, status_name(in->error));
}

/* ---------------------------------------------------------------- configuration */

vs_status simdev_config_default(vs_sim_config *cfg)
{
    if (!cfg)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->device_count = 1;
    cfg->integrated = 0;
    cfg->total_memory = 1ull << 30;
    cfg->granularity = 64ull << 10;
    cfg->preferred_page_size = 256ull << 10;
    cfg->copy_bandwidth = 0;
    return VS_OK;
}

/* "512M" -> bytes; binary suffixes K, M, G, T (optionally followed by "B" or "iB"). */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    if (n == 0)
        return false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return false;
    unsigned shift = 0;
    if (i < n) {
        switch (s[i] | 0x20) {
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        case 'b': shift = 0; break;
        default: return false;
        }
        i++;
        if (shift && i < n && (s[i] | 0x20) == 'i')
            i++;
        if (shift && i < n && (s[i] | 0x20) == 'b')
            i++;
        if (i != n)
            return false;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = v << shift;
    return true;
}

vs_status simdev_config_parse(vs_sim_config *cfg, const char *spec)
{
    if (!cfg)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "cfg is NULL");
    if (!spec)
        return VS_OK;
    vs_sim_config c = *cfg;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        if (len == 0) {
            p += end ? 1 : 0;
            continue;
        }
        if (!colon)
            return sim_fail(VS_ERR_INVALID_ARGUMENT, "sim config: '%.*s' is not key:value",
                            (int)len, p);
        size_t klen = (size_t)(colon - p);
        const char *val = colon + 1;
        size_t vlen = len - klen - 1;
        uint64_t v;
        if (!parse_size(val, vlen, &v))
            return sim_fail(VS_ERR_INVALID_ARGUMENT, "sim config: bad value in '%.*s'", (int)len, p);
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(p, k, klen) == 0)
        if (KEY("devices")) {
            if (v > SIMDEV_MAX_DEVICES)
                return sim_fail(VS_ERR_INVALID_ARGUMENT, "sim config: at most %d devices",
                                SIMDEV_MAX_DEVICES);
            c.device_count = (int)v;
        } else if (KEY("memory")) {
            c.total_memory = v;
        } else if (KEY("granularity")) {
            c.granularity = v;
        } else if (KEY("page")) {
            c.preferred_page_size = v;
        } else if (KEY("bandwidth")) {
            c.copy_bandwidth = v;
        } else if (KEY("integrated")) {
            c.integrated = v != 0;
        } else {
            return sim_fail(VS_ERR_INVALID_ARGUMENT, "sim config: unknown key '%.*s'", (int)klen, p);
        }
#undef KEY
        p += len + (end ? 1 : 0);
    }
    *cfg = c;
    return VS_OK;
}

vs_status simdev_config_check(const vs_sim_config *c)
{
    uint64_t os_page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (!c)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "cfg is NULL");
    if (c->device_count < 0 || c->device_count > SIMDEV_MAX_DEVICES)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "device_count %d not in 0..%d", c->device_count,
                        SIMDEV_MAX_DEVICES);
    if (c->granularity == 0 || (c->granularity & (c->granularity - 1)) ||
        c->granularity % os_page)
        return sim_fail(VS_ERR_INVALID_ARGUMENT,
                        "granularity %llu is not a power-of-two multiple of the OS page",
                        (unsigned long long)c->granularity);
    if (c->total_memory == 0 || c->total_memory % c->granularity)
        return sim_fail(VS_ERR_INVALID_ARGUMENT,
                        "total_memory %llu is not a non-zero multiple of the granularity",
                        (unsigned long long)c->total_memory);
    if (c->preferred_page_size == 0 || c->preferred_page_size % c->granularity)
        return sim_fail(VS_ERR_INVALID_ARGUMENT,
                        "preferred_page_size %llu is not a non-zero multiple of the granularity",
                        (unsigned long long)c->preferred_page_size);
    return VS_OK;
}

vs_status simdev_configure(const vs_sim_config *cfg)
{
    vs_status st = simdev_config_check(cfg);
    if (st != VS_OK)
        return st;
    pthread_once(&g_once, init_table);
    pthread_mutex_lock(&g_cfg_lock);
    int locked = 0;
    for (; locked < SIMDEV_MAX_DEVICES; locked++) {
        simdev_t *d = &g_devs[locked];
        pthread_mutex_lock(&d->lock);
        if (d->refs > 0 || !sim_mem_idle(d) || !sim_streams_idle(d)) {
            st = sim_fail(VS_ERR_BUSY, "sim device %d is open or holds resources", d->ordinal);
            pthread_mutex_unlock(&d->lock);
            break;
        }
    }
    if (st == VS_OK) {
        g_cfg = *cfg;
        g_configured = 1;
        for (int i = 0; i < SIMDEV_MAX_DEVICES; i++)
            apply_config(&g_devs[i], cfg);
    }
    for (int i = locked - 1; i >= 0; i--)
        pthread_mutex_unlock(&g_devs[i].lock);
    pthread_mutex_unlock(&g_cfg_lock);
    return st;
}

vs_status simdev_get_config(vs_sim_config *cfg)
{
    if (!cfg)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "cfg is NULL");
    pthread_once(&g_once, init_table);
    pthread_mutex_lock(&g_cfg_lock);
    *cfg = g_cfg;
    pthread_mutex_unlock(&g_cfg_lock);
    return VS_OK;
}

int simdev_is_configured(void)
{
    pthread_once(&g_once, init_table);
    pthread_mutex_lock(&g_cfg_lock);
    int v = g_configured;
    pthread_mutex_unlock(&g_cfg_lock);
    return v;
}

int simdev_device_count(void)
{
    pthread_once(&g_once, init_table);
    pthread_mutex_lock(&g_cfg_lock);
    int n = g_cfg.device_count;
    pthread_mutex_unlock(&g_cfg_lock);
    return n;
}

/* ---------------------------------------------------------------- devices */

vs_status simdev_get(int ordinal, simdev_t **out)
{
    if (!out)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "out is NULL");
    if (ordinal < 0 || ordinal >= SIMDEV_MAX_DEVICES)
        return sim_fail(VS_ERR_NO_DEVICE, "no sim device %d", ordinal);
    pthread_once(&g_once, init_table);
    simdev_t *d = &g_devs[ordinal];
    pthread_mutex_lock(&d->lock);
    bool present = d->present;
    pthread_mutex_unlock(&d->lock);
    if (!present)
        return sim_fail(VS_ERR_NO_DEVICE, "no sim device %d", ordinal);
    *out = d;
    return VS_OK;
}

vs_status simdev_open(int ordinal, simdev_t **out)
{
    simdev_t *d = NULL;
    vs_status st = simdev_get(ordinal, &d);
    if (st != VS_OK)
        return st;
    if ((st = sim_enter(d, -1)) != VS_OK)
        return st;
    d->refs++;
    sim_leave(d);
    *out = d;
    return VS_OK;
}

vs_status simdev_close(simdev_t *dev)
{
    if (!dev_valid(dev))
        return sim_fail(VS_ERR_INVALID_HANDLE, "not a simdev device");
    pthread_mutex_lock(&dev->lock);
    if (dev->refs <= 0) {
        pthread_mutex_unlock(&dev->lock);
        return sim_fail(VS_ERR_INVALID_HANDLE, "sim device %d is not open", dev->ordinal);
    }
    if (--dev->refs == 0)
        sim_streams_quiesce(dev);
    pthread_mutex_unlock(&dev->lock);
    return VS_OK;
}

int simdev_ordinal(const simdev_t *dev)
{
    return dev_valid(dev) ? dev->ordinal : -1;
}

vs_status simdev_get_props(simdev_t *dev, simdev_props *out)
{
    if (!out)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "out is NULL");
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "vramswap simulated GPU %d", dev->ordinal);
    out->ordinal = dev->ordinal;
    out->integrated = dev->integrated;
    out->total_memory = dev->total;
    out->granularity = dev->gran;
    out->preferred_page_size = dev->page;
    out->copy_bandwidth = dev->bandwidth;
    sim_leave(dev);
    return VS_OK;
}

static uint64_t used_bytes(const simdev_t *d)
{
    return d->ctr.phys_bytes + d->external + d->malloc_bytes;
}

vs_status simdev_mem_info(simdev_t *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!free_bytes && !total_bytes)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "both out-pointers are NULL");
    vs_status st = sim_enter(dev, VS_SIM_OP_MEM_INFO);
    if (st != VS_OK)
        return st;
    st = sim_injected(dev, VS_SIM_OP_MEM_INFO, "mem_info");
    if (st == VS_OK) {
        uint64_t used = used_bytes(dev);
        if (free_bytes)
            *free_bytes = used >= dev->total ? 0 : dev->total - used;
        if (total_bytes)
            *total_bytes = dev->total;
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_set_external_usage(simdev_t *dev, uint64_t bytes)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    uint64_t others = dev->ctr.phys_bytes + dev->malloc_bytes;
    if (others > dev->total || bytes > dev->total - others)
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "external usage %llu does not fit",
                      (unsigned long long)bytes);
    else
        dev->external = bytes;
    sim_leave(dev);
    return st;
}

vs_status simdev_get_counters(simdev_t *dev, vs_sim_counters *out)
{
    if (!out)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "out is NULL");
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    *out = dev->ctr;
    out->external_bytes = dev->external + dev->malloc_bytes;
    sim_leave(dev);
    return VS_OK;
}

vs_status simdev_reset_totals(simdev_t *dev)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    dev->ctr.copies = dev->ctr.bytes_copied = dev->ctr.injected_failures = 0;
    memset(dev->ctr.calls, 0, sizeof dev->ctr.calls);
    sim_leave(dev);
    return VS_OK;
}

vs_status simdev_inject(simdev_t *dev, int op, uint32_t skip, uint32_t count, vs_status error)
{
    if (op < 0 || op >= VS_SIM_OP_COUNT_)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "unknown sim op %d", op);
    if (count > 0 && ((int)error <= VS_NOT_RESIDENT || (int)error >= VS_STATUS_COUNT_))
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "status %d cannot be injected", (int)error);
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    dev->inject[op].skip = count ? skip : 0;
    dev->inject[op].count = count;
    dev->inject[op].error = count ? error : VS_OK;
    sim_leave(dev);
    return VS_OK;
}

vs_status simdev_inject_clear(simdev_t *dev)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    memset(dev->inject, 0, sizeof dev->inject);
    sim_leave(dev);
    return VS_OK;
}
