/* Streams, events, copies, and Note [Page lifetime and events]: a page unpinned on
 * a stream with a copy in flight is not unmapped before the copy completes. The
 * simulator's copy engine is throttled (copy_bandwidth) to keep copies in flight. */
#include <string.h>

#include "harness.h"

TestSuite(events, .init = vt_init, .fini = vt_fini, .timeout = 60);

/* 256 KiB/s: one 64 KiB page takes about 250 ms to copy, far longer than any
 * scheduling hiccup between enqueueing a copy and checking that it is pending. */
#define VT_SLOW (256 * VT_KIB)

static void *vt_host_buf(vt_env *e, vs_host_buffer_t **hb, uint64_t size)
{
    VT_OK(vs_host_buffer_create(e->dev, size, hb));
    VT_OK(vs_host_buffer_resize(*hb, size));
    void *p = NULL;
    uint64_t sz = 0, max = 0;
    VT_OK(vs_host_buffer_get(*hb, &p, &sz, &max));
    cr_assert_not_null(p);
    return p;
}

Test(events, create_record_query_synchronize)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8, .copy_bandwidth = VT_SLOW});
    uintptr_t s = 0, ev = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vs_event_create(e->dev, &ev));
    cr_assert_eq(vt_counters(e->ordinal).streams, 1);
    cr_assert_eq(vt_counters(e->ordinal).events, 1);
    VT_OK(vs_event_query(e->dev, ev));   /* never recorded: complete */
    vs_vbar_t *v = vt_vbar(e, 1);
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    vs_host_buffer_t *hb = NULL;
    void *h = vt_host_buf(e, &hb, e->page);
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)h, vt_base(v), e->page, s));
    VT_OK(vs_event_record(e->dev, ev, s));
    VT_EXPECT(VS_ERR_NOT_READY, vs_event_query(e->dev, ev));
    VT_OK(vs_event_synchronize(e->dev, ev));
    VT_OK(vs_event_query(e->dev, ev));
    VT_OK(vs_stream_synchronize(e->dev, s));
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    /* (The unpin may keep an event of its own for the page's last use, and the
     * host buffer one for the copies that used it: destroyed with it.) */
    VT_OK(vs_host_buffer_destroy(hb));
    vs_sim_counters c0 = vt_counters(e->ordinal);
    VT_OK(vs_event_destroy(e->dev, ev));
    VT_OK(vs_stream_destroy(e->dev, s));
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.streams, c0.streams - 1);
    cr_assert_eq(c.events, c0.events - 1);
    cr_assert_geq(c.copies, 1);
}

Test(events, copies_move_data)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    vs_host_buffer_t *hb = NULL;
    unsigned char *h = vt_host_buf(e, &hb, 2 * e->page);
    uintptr_t s = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    vt_fill(h, e->page, 21);
    vs_devptr_t d = vt_base(v);
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_HOST_TO_DEVICE, d, (uintptr_t)h, e->page, s));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_DEVICE, d + e->page, d, e->page, s));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)(h + e->page),
                          d + e->page, e->page, s));
    VT_OK(vs_stream_synchronize(e->dev, s));
    cr_assert_eq(vt_verify(vt_host(d), e->page, 21), -1);
    cr_assert_eq(vt_verify(vt_host(d + e->page), e->page, 21), -1);
    cr_assert_eq(vt_verify(h + e->page, e->page, 21), -1);
    /* Pageable memory works too (default stream). */
    static unsigned char pageable[4096];
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)pageable, d, 4096, 0));
    VT_OK(vs_stream_synchronize(e->dev, 0));
    cr_assert_eq(vt_verify(pageable, 4096, 21), -1);
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vs_stream_destroy(e->dev, s));
    VT_OK(vs_host_buffer_destroy(hb));
}

Test(events, stream_waits_for_event)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8, .copy_bandwidth = VT_SLOW});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    vs_devptr_t d = vt_base(v);
    vt_fill(vt_host(d), e->page, 1);
    vt_fill(vt_host(d + e->page), e->page, 2);
    vs_host_buffer_t *hb = NULL;
    unsigned char *h = vt_host_buf(e, &hb, e->page);
    uintptr_t s1 = 0, s2 = 0, ev = 0;
    VT_OK(vs_stream_create(e->dev, &s1));
    VT_OK(vs_stream_create(e->dev, &s2));
    VT_OK(vs_event_create(e->dev, &ev));
    /* s1: slow copy of pattern 1; s2 waits, then copies pattern 2 over it. */
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)h, d, e->page, s1));
    VT_OK(vs_event_record(e->dev, ev, s1));
    VT_OK(vs_stream_wait_event(e->dev, s2, ev));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)h, d + e->page, e->page, s2));
    VT_OK(vs_stream_synchronize(e->dev, s2));
    cr_assert_eq(vt_verify(h, e->page, 2), -1, "the second copy ran before the first");
    VT_OK(vs_stream_synchronize(e->dev, s1));
    VT_OK(vt_unpin_pages(e, v, 0, 2));
    VT_OK(vs_event_destroy(e->dev, ev));
    VT_OK(vs_stream_destroy(e->dev, s1));
    VT_OK(vs_stream_destroy(e->dev, s2));
    VT_OK(vs_host_buffer_destroy(hb));
}

/* The scenario of Note [Page lifetime and events]: copy out of a page on a stream,
 * unpin on that stream, evict at once. A slow copy from another (pinned) VBAR is
 * queued first, so the page's copy is still waiting in the queue, not running,
 * when the eviction comes: only the event wait can keep the page mapped for it
 * (the simulator's unmap waits for a copy that is executing, not for queued ones). */
static void vt_evict_during_copy(int how)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8, .copy_bandwidth = VT_SLOW});
    vs_vbar_t *filler = vt_vbar(e, 1);
    VT_OK(vt_fault_pages(e, filler, 0, 1, NULL));
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    vs_devptr_t d = vt_base(v);
    vt_fill(vt_host(d), 2 * e->page, 33);
    vs_host_buffer_t *hb = NULL, *hb2 = NULL;
    unsigned char *h = vt_host_buf(e, &hb, 2 * e->page);
    unsigned char *h2 = vt_host_buf(e, &hb2, e->page);
    memset(h, 0, 2 * e->page);
    uintptr_t s = 0, probe = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vs_event_create(e->dev, &probe));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)h2, vt_base(filler), e->page,
                          s));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)h, d, 2 * e->page, s));
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, s));
    VT_OK(vs_event_record(e->dev, probe, s));
    VT_EXPECT(VS_ERR_NOT_READY, vs_event_query(e->dev, probe));   /* still copying */
    vs_stats s0 = vt_stats(e);
    uint64_t freed = 0;
    if (how == 0) {
        VT_OK(vs_vbar_free_memory(v, 2 * e->page, &freed));
        cr_assert_eq(freed, 2 * e->page);
    } else if (how == 1) {
        VT_OK(vs_device_free_memory(e->dev, 2 * e->page, &freed));
        cr_assert_eq(freed, 2 * e->page);
    } else if (how == 2) {
        /* 3 pages ours, 4 others, 1 free: asking for 2 evicts v's top page. */
        VT_OK(vs_sim_set_external_usage(e->ordinal, 4 * e->page));
        VT_OK(vs_device_reclaim(e->dev, 2 * e->page, &freed));
        cr_assert_eq(freed, e->page);
    } else {
        VT_OK(vs_vbar_destroy(v));
        v = NULL;
    }
    /* The copy has landed: the eviction waited for the page's last use. */
    cr_assert_eq(vt_verify(h, 2 * e->page, 33), -1, "page unmapped before its copy finished");
    vs_stats s1 = vt_stats(e);
    if (how != 3)
        cr_assert_gt(s1.event_waits, s0.event_waits, "no eviction waited");
    VT_OK(vs_stream_synchronize(e->dev, s));
    VT_OK(vt_unpin_pages(e, filler, 0, 1));
    VT_OK(vs_event_destroy(e->dev, probe));
    VT_OK(vs_stream_destroy(e->dev, s));
    VT_OK(vs_host_buffer_destroy(hb));
    VT_OK(vs_host_buffer_destroy(hb2));
}

Test(events, vbar_free_memory_waits_for_copy)
{
    vt_evict_during_copy(0);
}

Test(events, device_free_memory_waits_for_copy)
{
    vt_evict_during_copy(1);
}

Test(events, reclaim_waits_for_copy)
{
    vt_evict_during_copy(2);
}

Test(events, vbar_destroy_waits_for_copy)
{
    vt_evict_during_copy(3);
}

Test(events, fault_eviction_waits_for_copy_into_page)
{
    /* A copy INTO a page is in flight when a more important VBAR's fault takes the
     * page's chunk: the fault must wait, else the copy would write into the page
     * now mapped for the other VBAR (or into unmapped memory). */
    vt_env *e = vt_open(&(vt_params){.pages = 2, .copy_bandwidth = VT_SLOW});
    vs_vbar_t *a = vt_vbar(e, 2);
    vs_vbar_t *b = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, a, 0, 2, NULL));
    vs_host_buffer_t *hb = NULL;
    unsigned char *h = vt_host_buf(e, &hb, e->page);
    vt_fill(h, e->page, 44);
    uintptr_t s = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_HOST_TO_DEVICE, vt_base(a) + e->page, (uintptr_t)h,
                          e->page, s));
    VT_OK(vs_vbar_unpin(a, 0, 2 * e->page, s));
    vs_stats s0 = vt_stats(e);
    uint64_t sig = 0;
    VT_OK(vt_fault_pages(e, b, 0, 1, &sig));
    vs_stats s1 = vt_stats(e);
    cr_assert_gt(s1.event_waits, s0.event_waits);
    cr_assert_eq(s1.chunks_reused - s0.chunks_reused, 1);
    /* B's fresh page is B's: write it and check nothing late overwrites it. */
    vt_fill(vt_host(vt_base(b)), e->page, 45);
    VT_OK(vs_stream_synchronize(e->dev, s));
    cr_assert_eq(vt_verify(vt_host(vt_base(b)), e->page, 45), -1, "a late copy landed in B");
    VT_OK(vt_unpin_pages(e, b, 0, 1));
    VT_OK(vs_stream_destroy(e->dev, s));
    VT_OK(vs_host_buffer_destroy(hb));
}

Test(events, finished_work_needs_no_wait)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    uintptr_t s = 0;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, s));
    VT_OK(vs_stream_synchronize(e->dev, s));
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, NULL));
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.event_waits, s0.event_waits, "waited for finished work");
    VT_OK(vs_stream_destroy(e->dev, s));
}

Test(events, unpin_without_a_stream_records_nothing)
{
    /* VS_STREAM_NONE: the caller promises no device work; the pages are evictable
     * at once and no event is recorded or waited for. */
    vt_env *e = vt_open(&(vt_params){.pages = 8, .copy_bandwidth = VT_SLOW});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 2, NULL));
    vt_fill(vt_host(vt_base(v)), 2 * e->page, 3);
    vs_sim_counters c0 = vt_counters(e->ordinal);
    VT_OK(vs_vbar_unpin(v, 0, 2 * e->page, VS_STREAM_NONE));
    vs_sim_counters c1 = vt_counters(e->ordinal);
    cr_assert_eq(c1.events, c0.events, "an event was created for VS_STREAM_NONE");
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, NULL));
    vs_stats s1 = vt_stats(e);
    cr_assert_eq(s1.event_waits, s0.event_waits);
    cr_assert_eq(vt_loaded(v), 0);
    /* The stream calls do not take it. */
    uintptr_t ev = 0;
    VT_OK(vs_event_create(e->dev, &ev));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_event_record(e->dev, ev, VS_STREAM_NONE));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_synchronize(e->dev, VS_STREAM_NONE));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_wait_event(e->dev, VS_STREAM_NONE, ev));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_destroy(e->dev, VS_STREAM_NONE));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_destroy(e->dev, 0));
    static unsigned char buf[64];
    VT_OK(vs_vbar_prioritize(v));   /* lift the watermark the eviction set */
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST,
                                                       (uintptr_t)buf, vt_base(v), 64,
                                                       VS_STREAM_NONE));
    VT_OK(vs_vbar_unpin(v, 0, e->page, VS_STREAM_NONE));
    VT_OK(vs_event_destroy(e->dev, ev));
}

Test(events, bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    uintptr_t s = 0;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_stream_create(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_event_create(e->dev, NULL));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_stream_create(NULL, &s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_event_create(NULL, &s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_stream_synchronize(NULL, 0));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_event_query(NULL, 1));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_memcpy_async(NULL, VS_COPY_HOST_TO_DEVICE, 1, 1, 1, 0));
    vs_vbar_t *v = vt_vbar(e, 1);
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    static unsigned char buf[256];
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT,
              vs_memcpy_async(e->dev, 0, (uintptr_t)buf, vt_base(v), sizeof buf, 0));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT,
              vs_memcpy_async(e->dev, 7, (uintptr_t)buf, vt_base(v), sizeof buf, 0));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT,
              vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, 0, vt_base(v), sizeof buf, 0));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT,
              vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)buf, 0, sizeof buf, 0));
    VT_OK(vt_unpin_pages(e, v, 0, 1));
}
