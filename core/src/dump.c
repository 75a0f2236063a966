/* vs_device_dump: a readable report of a device (comfy-aimdo's analyze). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct out {
    char *buf;
    size_t cap, len;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = o->len < o->cap ? o->buf + o->len : NULL;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

VS_API vs_status vs_device_dump(vs_device_t *dev, char *buf, size_t cap, size_t *len)
{
    if (cap && !buf)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status st = vs_dev_acquire(dev);
    if (st != VS_OK)
        return st;
    out o = {buf, cap, 0};
    uint64_t avail = vs_budget_available(dev);
    uint64_t total = vs_budget_total(dev);
    put(&o, "device %s:%d  %s\n", dev->ops->name, dev->ordinal, dev->bprops.name);
    put(&o, "  memory %.1f MiB%s, headroom %.1f MiB, page %.0f KiB%s\n", mib(total),
        dev->cfg.limit ? " (limit)" : "", mib(dev->cfg.headroom), (double)dev->page_size / 1024.0,
        dev->intercepting ? ", intercepting" : "");
    put(&o, "  used: weights %.1f MiB, scratch %.1f MiB, intercepted %.1f MiB, others %.1f MiB; available %.1f MiB\n",
        mib(dev->own_weights), mib(dev->own_scratch), mib(dev->own_intercepted), mib(dev->others), mib(avail));
    const vs_stats *s = &dev->stats;
    put(&o, "  faults %llu (hits %llu, maps %llu, not resident %llu, fast fails %llu); evicted %llu pages\n",
        (unsigned long long)s->faults, (unsigned long long)s->fault_hits, (unsigned long long)s->fault_maps,
        (unsigned long long)s->fault_not_resident, (unsigned long long)s->fault_fast_fails,
        (unsigned long long)s->pages_evicted);
    int rank = 0;
    for (struct vs_vbar *v = dev->most; v; v = v->less, rank++) {
        put(&o, "  vbar #%d (priority %d) at 0x%llx: %.1f MiB, %zu/%zu pages resident, %zu pinned", rank, rank,
            (unsigned long long)v->base, mib(v->size), v->resident, v->npages, v->pinned);
        if (v->watermark < v->size)
            put(&o, ", watermark %.1f MiB", mib(v->watermark));
        if (v->floor)
            put(&o, ", floor %.1f MiB", mib(v->floor));
        put(&o, "\n    ");
        for (size_t i = 0; i < v->npages; i++) {
            const vs_page *pg = &v->pages[i];
            put(&o, "%c", pg->pins ? 'P' : pg->chunk ? 'R' : '.');
            if (i % 64 == 63 && i + 1 < v->npages)
                put(&o, "\n    ");
        }
        put(&o, "\n");
    }
    for (struct vs_scratch *b = dev->scratches; b; b = b->next)
        put(&o, "  scratch at 0x%llx: %.1f of %.1f MiB mapped\n", (unsigned long long)b->base,
            mib(b->chunks.n * dev->page_size), mib(b->max_size));
    for (struct vs_host_buffer *b = dev->hosts; b; b = b->next)
        put(&o, "  host buffer at %p: %.1f of %.1f MiB registered\n", (void *)b->base, mib(b->committed),
            mib(b->max_size));
    vs_dev_release(dev);
    if (cap)
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    if (len)
        *len = o.len;
    return VS_OK;
}
