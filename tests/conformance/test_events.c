/* Group "events": page events (eviction waits for the last use recorded at
 * unpin, and only for it), event query/synchronize semantics, ordering between
 * streams with vs_stream_wait_event.
 *
 * Copies are queued page by page so that later ones are still waiting when the
 * test acts; host memory is a registered host buffer, because copies to or from
 * pageable memory are synchronous on some drivers (CUDA D2H) and would be over
 * before the test could race them. On the simulator these tests run with a
 * throttled copy engine (VSC_NEED_SLOW_COPIES). */
#include <string.h>

#include "suite.h"

/* Registered host memory of `len` bytes. */
static uint8_t *pinned(vsc_ctx *t, uint64_t len, vs_host_buffer_t **hb)
{
    void *ptr = NULL;
    VSC_OK(t, vs_host_buffer_create(t->dev, len, hb));
    VSC_OK(t, vs_host_buffer_resize(*hb, len));
    VSC_OK(t, vs_host_buffer_get(*hb, &ptr, NULL, NULL));
    VSC_CHECK(t, ptr != NULL);
    return ptr;
}

/* Queue page-sized copies of [0, len) on stream s. */
static void copy_pages(vsc_ctx *t, int kind, uintptr_t dst, uintptr_t src, uint64_t len, uintptr_t s)
{
    for (uint64_t off = 0; off < len; off += t->page) {
        uint64_t n = len - off < t->page ? len - off : t->page;
        VSC_OK(t, vs_memcpy_async(t->dev, kind, dst + off, src + off, n, s));
    }
}

static uint64_t pages_for(vsc_ctx *t, uint64_t max)
{
    vs_memory_info m = vsc_meminfo(t);
    uint64_t n = m.available / t->page;
    return n < max ? n : max;
}

/* Copies still reading pages when they are unpinned (with an event) and then
 * evicted: the eviction must wait, and the copies complete with the right data. */
static void eviction_waits_for_last_use(vsc_ctx *t)
{
    vsc_need_pages(t, 8);
    const uint64_t n = pages_for(t, 64), len = n * t->page;
    vs_vbar_t *v = vsc_vbar(t, n);
    vs_devptr_t base = vsc_base(t, v);
    VSC_OK(t, vs_vbar_fault(v, 0, len, NULL));
    uint8_t *data = vsc_alloc(t, len);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, data, len);
    vsc_write(t, base, data, len);

    vs_host_buffer_t *hb = NULL;
    uint8_t *out = pinned(t, len, &hb);
    memset(out, 0, len);
    uintptr_t s = 0, mine = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));
    VSC_OK(t, vs_event_create(t->dev, &mine));
    copy_pages(t, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, (uintptr_t)base, len, s);
    VSC_OK(t, vs_event_record(t->dev, mine, s));
    VSC_OK(t, vs_vbar_unpin(v, 0, len, s)); /* the pages' last use: after the copies */
    vs_status pending = vs_event_query(t->dev, mine);
    vs_stats s0 = vsc_stats(t);
    uint64_t freed = 0;
    VSC_OK(t, vs_device_free_memory(t->dev, len, &freed));
    VSC_EQ(t, freed, len);
    VSC_OK(t, vs_event_query(t->dev, mine)); /* eviction waited for the unpin's point */
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_BYTES(t, out, data, len, "data copied out of pages evicted meanwhile");
    vs_stats s1 = vsc_stats(t);
    vsc_note(t, "copies were %s at eviction; %llu eviction(s) waited", pending == VS_ERR_NOT_READY ? "pending" : "done",
             (unsigned long long)(s1.event_waits - s0.event_waits));
    VSC_OK(t, vs_event_destroy(t->dev, mine));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_host_buffer_destroy(hb));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Work that finished before the eviction is not waited for. */
static void completed_use_no_wait(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    const uint64_t len = 4 * t->page;
    vs_vbar_t *v = vsc_vbar(t, 4);
    vs_devptr_t base = vsc_base(t, v);
    uint8_t *buf = vsc_alloc(t, len);
    memset(buf, 0x5a, len);
    uintptr_t s = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));
    VSC_OK(t, vs_vbar_fault(v, 0, len, NULL));
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)buf, len, s));
    VSC_OK(t, vs_vbar_unpin(v, 0, len, s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    vs_stats s0 = vsc_stats(t);
    uint64_t freed = 0;
    VSC_OK(t, vs_vbar_free_memory(v, len, &freed));
    VSC_EQ(t, freed, len);
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.event_waits, s0.event_waits);
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void query_synchronize(vsc_ctx *t)
{
    vsc_need_pages(t, 8);
    const uint64_t n = pages_for(t, 16), len = n * t->page;
    vs_vbar_t *v = vsc_vbar(t, n);
    vs_devptr_t base = vsc_base(t, v);
    VSC_OK(t, vs_vbar_fault(v, 0, len, NULL));
    vs_host_buffer_t *hb = NULL;
    uint8_t *src = pinned(t, 2 * len, &hb), *out = src + len;
    uint8_t *got = vsc_alloc(t, len);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, src, len);
    uintptr_t s = 0, e = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));
    VSC_OK(t, vs_event_create(t->dev, &e));

    copy_pages(t, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)src, len, s);
    VSC_OK(t, vs_event_record(t->dev, e, s));
    vs_status st = vs_event_query(t->dev, e);
    VSC_EXPECT2(t, VS_OK, VS_ERR_NOT_READY, st);
    vsc_note(t, "query right after record: %s", vs_status_name(st));
    VSC_OK(t, vs_event_synchronize(t->dev, e));
    VSC_OK(t, vs_event_query(t->dev, e));
    vsc_read(t, got, base, len);
    VSC_BYTES(t, got, src, len, "copies before the event, after event_synchronize");

    /* Re-recording moves the event: synchronize waits for the newer work. */
    memset(out, 0, len);
    copy_pages(t, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, (uintptr_t)base, len, s);
    VSC_OK(t, vs_event_record(t->dev, e, s));
    VSC_OK(t, vs_event_synchronize(t->dev, e));
    VSC_BYTES(t, out, src, len, "copies before the re-recorded event");
    VSC_OK(t, vs_event_query(t->dev, e));

    VSC_OK(t, vs_vbar_unpin(v, 0, len, s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_OK(t, vs_event_destroy(t->dev, e));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_host_buffer_destroy(hb));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* An event never recorded is complete, and waiting on it does not block. */
static void never_recorded(vsc_ctx *t)
{
    vsc_need_pages(t, 1);
    uintptr_t e = 0, s = 0;
    VSC_OK(t, vs_event_create(t->dev, &e));
    VSC_OK(t, vs_event_query(t->dev, e));
    VSC_OK(t, vs_event_synchronize(t->dev, e));
    VSC_OK(t, vs_stream_create(t->dev, &s));
    VSC_OK(t, vs_stream_wait_event(t->dev, s, e));
    vs_vbar_t *v = vsc_vbar(t, 1);
    vs_devptr_t base = vsc_base(t, v);
    VSC_OK(t, vs_vbar_fault(v, 0, 64, NULL));
    uint8_t buf[64], got[64];
    memset(buf, 0x3c, sizeof buf);
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)buf, sizeof buf, s));
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)got, (uintptr_t)base, sizeof got, s));
    VSC_OK(t, vs_event_record(t->dev, e, s));
    VSC_OK(t, vs_event_synchronize(t->dev, e));
    VSC_BYTES(t, got, buf, sizeof got, "copy after waiting on a never-recorded event");
    VSC_OK(t, vs_vbar_unpin(v, 0, 64, VS_STREAM_NONE));
    VSC_OK(t, vs_event_destroy(t->dev, e));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Stream 1 copies A->B and records an event; stream 2 waits for it, then
 * copies B->C. C must equal A. */
static void stream_wait_order(vsc_ctx *t)
{
    vsc_need_pages(t, 6);
    const uint64_t n = pages_for(t, 24) / 3, len = n * t->page;
    vs_vbar_t *v = vsc_vbar(t, 3 * n);
    vs_devptr_t a = vsc_base(t, v), b = a + len, c = b + len;
    VSC_OK(t, vs_vbar_fault(v, 0, 3 * len, NULL));
    uint8_t *data = vsc_alloc(t, len), *fill = vsc_alloc(t, len), *got = vsc_alloc(t, len);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, data, len);
    memset(fill, 0xee, len);
    vsc_write(t, a, data, len);
    vsc_write(t, b, fill, len);
    vsc_write(t, c, fill, len);
    uintptr_t s1 = 0, s2 = 0, e = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s1));
    VSC_OK(t, vs_stream_create(t->dev, &s2));
    VSC_OK(t, vs_event_create(t->dev, &e));
    copy_pages(t, VS_COPY_DEVICE_TO_DEVICE, (uintptr_t)b, (uintptr_t)a, len, s1);
    VSC_OK(t, vs_event_record(t->dev, e, s1));
    VSC_OK(t, vs_stream_wait_event(t->dev, s2, e));
    copy_pages(t, VS_COPY_DEVICE_TO_DEVICE, (uintptr_t)c, (uintptr_t)b, len, s2);
    VSC_OK(t, vs_stream_synchronize(t->dev, s2));
    vsc_read(t, got, c, len);
    VSC_BYTES(t, got, data, len, "C after A->B (stream 1), wait, B->C (stream 2)");
    VSC_OK(t, vs_stream_synchronize(t->dev, s1));
    VSC_OK(t, vs_vbar_unpin(v, 0, 3 * len, VS_STREAM_NONE));
    VSC_OK(t, vs_event_destroy(t->dev, e));
    VSC_OK(t, vs_stream_destroy(t->dev, s1));
    VSC_OK(t, vs_stream_destroy(t->dev, s2));
    VSC_OK(t, vs_vbar_destroy(v));
}

static const vsc_test tests[] = {
    {"eviction_waits_for_last_use", eviction_waits_for_last_use, VSC_NEED_SLOW_COPIES,
     "evicting pages still read by queued copies waits for them; the copies complete intact"},
    {"completed_use_no_wait", completed_use_no_wait, 0, "eviction after the last use completed does not wait"},
    {"query_synchronize", query_synchronize, VSC_NEED_SLOW_COPIES,
     "query is OK or NOT_READY, synchronize waits for the latest record"},
    {"never_recorded", never_recorded, 0, "an event never recorded is complete; waiting on it does not block"},
    {"stream_wait_order", stream_wait_order, VSC_NEED_SLOW_COPIES,
     "stream_wait_event orders a copy on stream 2 after one on stream 1"},
};

const vsc_group vsc_group_events = {"events", "page events, event semantics, cross-stream order", tests,
                                    VSC_COUNT(tests)};
