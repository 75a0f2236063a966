/* Regression tests for the error paths a random-op fuzzer found (issue 16):
 * failed releases and unmaps during eviction (Note [Stuck chunks]), the
 * destroy/close contract, host buffers destroyed under queued copies (Note
 * [Host buffers and pending copies]), close racing other threads (Note
 * [Closing]), VRAMSWAP_SIM typos, absurd VBAR sizes and the page size message. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(robust, .init = vt_init, .fini = vt_fini);

/* Fault page 0 and unpin it without an event: resident, evictable. */
static void load_one(vt_env *e, vs_vbar_t *v)
{
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    VT_OK(vs_vbar_unpin(v, 0, e->page, VS_STREAM_NONE));
}

static void release_failure_keeps_sync(vs_status injected)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    load_one(e, v);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_RELEASE, 0, 1000, injected));
    uint64_t freed = 0;
    /* The page is unmapped, so the eviction happened: the chunk is kept as stuck. */
    VT_OK(vs_device_free_memory(e->dev, e->page, &freed));
    cr_assert_eq(freed, e->page);
    VT_OK(vs_device_check_invariants(e->dev));
    cr_assert_eq(vt_loaded(v), 0, "the core still counts the unmapped page");
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.mapped_bytes, 0, "the driver still maps the page");
    cr_assert_eq(c.phys_chunks, 1, "the chunk should be held (stuck), not lost");
    cr_assert_eq(vt_stats(e).stuck_chunks, 1);
    /* The next fault really maps the page (before the fix it answered VS_OK for
     * memory that was no longer mapped). */
    uint64_t sig = 0;
    VT_OK(vs_vbar_prioritize(v)); /* lift the watermark the eviction lowered */
    VT_OK(vt_fault_pages(e, v, 0, 1, &sig));
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, e->page, "VS_OK for a page that is not mapped");
    memset(vt_host(vt_base(v)), 0x5a, (size_t)e->page); /* touching it must not fault */
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    /* Once the driver cooperates the stuck chunk goes back (retried before a map). */
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vs_device_free_memory(e->dev, e->page, NULL));
    VT_OK(vs_vbar_prioritize(v));
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    cr_assert_eq(vt_stats(e).stuck_chunks, 0);
    VT_OK(vs_vbar_destroy(v));
    cr_assert_eq(vt_stats(e).leaked_bytes, 0);
}

Test(robust, release_not_ready_during_eviction)
{
    release_failure_keeps_sync(VS_ERR_NOT_READY);
}

Test(robust, release_oom_during_eviction)
{
    release_failure_keeps_sync(VS_ERR_OUT_OF_MEMORY);
}

Test(robust, release_transient_is_retried)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    load_one(e, v);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_PHYS_RELEASE, 0, 2, VS_ERR_NOT_READY));
    vs_stats s0 = vt_stats(e);
    VT_OK(vs_device_free_memory(e->dev, e->page, NULL));
    cr_assert_geq(vt_stats(e).transient_retries - s0.transient_retries, 2);
    cr_assert_eq(vt_stats(e).stuck_chunks, 0);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, 0);
}

Test(robust, unmap_failure_during_eviction_leaves_page_mapped)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    load_one(e, v);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_UNMAP, 0, 1000, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_device_free_memory(e->dev, e->page, NULL));
    VT_OK(vs_device_check_invariants(e->dev));
    cr_assert_eq(vt_loaded(v), e->page);
    cr_assert_eq(vt_counters(e->ordinal).mapped_bytes, e->page);
    VT_OK(vs_sim_inject_clear(e->ordinal));
}

/* Finding 6: set-access fails for good, and the clean-up unmap meets one
 * NOT_READY. The unmap must be retried before the chunk is released. */
Test(robust, set_access_cleanup_unmap_is_retried)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 1000, VS_ERR_BACKEND));
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_UNMAP, 0, 1, VS_ERR_NOT_READY));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 0, 1, NULL));
    vs_sim_counters c = vt_counters(e->ordinal);
    cr_assert_eq(c.mapped_bytes, 0, "the clean-up left the page mapped");
    cr_assert_eq(c.phys_chunks, 0, "the chunk leaked");
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL)); /* the page can be mapped again */
    VT_OK(vt_unpin_pages(e, v, 0, 1));
}

Test(robust, set_access_cleanup_unmap_failing_keeps_chunk)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_SET_ACCESS, 0, 1000, VS_ERR_BACKEND));
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_UNMAP, 0, 1000, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 0, 1, NULL));
    VT_OK(vs_device_check_invariants(e->dev));
    cr_assert_eq(vt_stats(e).stuck_chunks, 1, "a mapped chunk must be kept, not released");
    VT_OK(vs_sim_inject_clear(e->ordinal));
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL)); /* the stuck mapping is undone first */
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    cr_assert_eq(vt_stats(e).stuck_chunks, 0);
}

/* Finding 2, the transient half: a NOT_READY from va_free is retried. */
Test(robust, vbar_destroy_retries_va_free)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_VA_FREE, 0, 2, VS_ERR_NOT_READY));
    VT_OK(vs_vbar_destroy(v));
    cr_assert_eq(vt_counters(e->ordinal).reservations, 0);
}

/* Opened without vt_open: these tests leak simulator memory on purpose, which
 * vt_fini would (rightly) reject. */
static vs_device_t *open_plain(void)
{
    vs_sim_config sc;
    VT_OK(vs_sim_config_default(&sc));
    sc.total_memory = 64 * VT_MIB;
    sc.granularity = sc.preferred_page_size = 64 * VT_KIB;
    VT_OK(vs_sim_configure(&sc));
    vs_device_config c;
    VT_OK(vs_device_config_init(&c));
    c.headroom = 0;
    vs_device_t *d = NULL;
    VT_OK(vs_device_open("sim", 0, &c, &d));
    return d;
}

/* Finding 2, the contract: destroy always consumes the handle; what the driver
 * will not take back is kept and retried (stats.stuck_chunks); close gives up on
 * what is still refused, reports it (VS_ERR_BACKEND) and closes anyway. */
Test(robust, vbar_destroy_failing_va_free_is_kept_then_freed)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_VA_FREE, 0, 1000, VS_ERR_BACKEND));
    VT_OK(vs_vbar_destroy(v));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_get_base(v, NULL, &(uint64_t){0}));
    cr_assert_eq(vt_stats(e).stuck_chunks, 1, "the reservation must be kept, not forgotten");
    cr_assert_eq(vt_counters(e->ordinal).reservations, 1);
    VT_OK(vs_device_check_invariants(e->dev));
    VT_OK(vs_sim_inject_clear(e->ordinal)); /* vt_fini's close retries and frees it: sim clean */
}

Test(robust, vbar_destroy_failing_va_free_is_accounted)
{
    vs_device_t *d = open_plain();
    vs_vbar_t *v;
    VT_OK(vs_vbar_create(d, 4 * 64 * VT_KIB, &v));
    VT_OK(vs_sim_inject(0, VS_SIM_OP_VA_FREE, 0, 1000, VS_ERR_BACKEND));
    VT_OK(vs_vbar_destroy(v));
    vs_stats s;
    VT_OK(vs_device_get_stats(d, &s));
    cr_assert_eq(s.stuck_chunks, 1);
    VT_OK(vs_device_check_invariants(d));
    /* Close reports what the driver still refuses, and still closes. */
    VT_EXPECT(VS_ERR_BACKEND, vs_device_close(d));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_check_invariants(d));
    VT_OK(vs_sim_inject_clear(0));
}

Test(robust, close_with_stuck_chunk_reports_leak)
{
    vs_device_t *d = open_plain();
    vs_vbar_t *v;
    VT_OK(vs_vbar_create(d, 4 * 64 * VT_KIB, &v));
    VT_OK(vs_vbar_fault(v, 0, 1, NULL));
    VT_OK(vs_vbar_unpin(v, 0, 1, VS_STREAM_NONE));
    VT_OK(vs_sim_inject(0, VS_SIM_OP_PHYS_RELEASE, 0, 100000, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vs_device_close(d));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_check_invariants(d));
    VT_OK(vs_sim_inject_clear(0));
}

/* Finding 3: destroying a host buffer waits for the copies that use it. */
Test(robust, host_buffer_destroy_waits_for_copies)
{
    const uint64_t len = 2 * VT_MIB;
    vt_env *e = vt_open(&(vt_params){.pages = 64, .copy_bandwidth = 20 * VT_MIB}); /* ~100 ms */
    vs_vbar_t *v = vt_vbar(e, len / e->page);
    VT_OK(vt_fault_pages(e, v, 0, len / e->page, NULL));
    vs_host_buffer_t *h;
    VT_OK(vs_host_buffer_create(e->dev, len, &h));
    VT_OK(vs_host_buffer_resize(h, len));
    void *p;
    VT_OK(vs_host_buffer_get(h, &p, NULL, NULL));
    vt_fill(p, (size_t)len, 7);
    uintptr_t s, ev;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vs_event_create(e->dev, &ev));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_HOST_TO_DEVICE, vt_base(v), (uintptr_t)p, len, s));
    VT_OK(vs_event_record(e->dev, ev, s));
    VT_OK(vs_host_buffer_destroy(h));
    /* The copy finished before the buffer went (not merely later). */
    VT_OK(vs_event_query(e->dev, ev));
    VT_OK(vs_stream_synchronize(e->dev, s));
    cr_assert_eq(vt_verify(vt_host(vt_base(v)), (size_t)len, 7), -1, "the copy read freed memory");
    VT_OK(vs_event_destroy(e->dev, ev));
    VT_OK(vs_stream_destroy(e->dev, s));
    VT_OK(vt_unpin_pages(e, v, 0, len / e->page));
}

Test(robust, host_buffer_shrink_waits_for_copies)
{
    const uint64_t len = 2 * VT_MIB;
    vt_env *e = vt_open(&(vt_params){.pages = 64, .copy_bandwidth = 20 * VT_MIB});
    vs_vbar_t *v = vt_vbar(e, len / e->page);
    VT_OK(vt_fault_pages(e, v, 0, len / e->page, NULL));
    vs_host_buffer_t *h;
    VT_OK(vs_host_buffer_create(e->dev, len, &h));
    VT_OK(vs_host_buffer_resize(h, len));
    void *p;
    VT_OK(vs_host_buffer_get(h, &p, NULL, NULL));
    uintptr_t s, ev;
    VT_OK(vs_stream_create(e->dev, &s));
    VT_OK(vs_event_create(e->dev, &ev));
    VT_OK(vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)p, vt_base(v), len, s));
    VT_OK(vs_event_record(e->dev, ev, s));
    VT_OK(vs_host_buffer_resize(h, 0));
    VT_OK(vs_event_query(e->dev, ev));
    VT_OK(vs_host_buffer_destroy(h));
    VT_OK(vs_event_destroy(e->dev, ev));
    VT_OK(vs_stream_destroy(e->dev, s));
    VT_OK(vt_unpin_pages(e, v, 0, len / e->page));
}

/* Finding 7: close while other threads use the device. No call may touch a
 * freed backend device, and close either closes or (BUSY) leaves the device
 * fully open. */
struct racer {
    vs_device_t *dev;
    vs_vbar_t *v;
    uintptr_t stream;
    _Atomic int stop;
    _Atomic long calls;
};

static void *race_streams(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(&r->stop)) {
        vs_status st = vs_stream_synchronize(r->dev, r->stream);
        cr_assert(st == VS_OK || st == VS_ERR_INVALID_HANDLE, "synchronize gave %s", vs_status_name(st));
        vs_memory_info mi;
        if (st == VS_OK)
            st = vs_device_memory_info(r->dev, &mi);
        atomic_fetch_add(&r->calls, 1);
        if (st == VS_ERR_INVALID_HANDLE)
            break;
    }
    return NULL;
}

static void *race_faults(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(&r->stop)) {
        vs_status st = vs_vbar_fault(r->v, 0, 1, NULL);
        if (st == VS_OK)
            vs_vbar_unpin(r->v, 0, 1, VS_STREAM_NONE);
        atomic_fetch_add(&r->calls, 1);
        if (st == VS_ERR_INVALID_HANDLE)
            break;
    }
    return NULL;
}

Test(robust, close_races_other_threads)
{
    for (int round = 0; round < 20; round++) {
        vt_params p = {.pages = 8};
        vt_configure_sim(&p);
        vs_device_t *d;
        VT_OK(vs_device_open("sim", 0, NULL, &d));
        struct racer r = {.dev = d};
        VT_OK(vs_vbar_create(d, 64 * VT_KIB, &r.v));
        r.stream = 0; /* the default stream: nothing to destroy after close */
        pthread_t t[3];
        pthread_create(&t[0], NULL, race_streams, &r);
        pthread_create(&t[1], NULL, race_faults, &r);
        pthread_create(&t[2], NULL, race_faults, &r);
        while (atomic_load(&r.calls) < 50)
            sched_yield();
        vs_status st;
        while ((st = vs_device_close(d)) == VS_ERR_BUSY) {
            /* BUSY: nothing was destroyed, the device is still usable. */
            VT_OK(vs_device_check_invariants(d));
        }
        cr_assert(st == VS_OK, "close gave %s", vs_status_name(st));
        atomic_store(&r.stop, 1);
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        vt_assert_sim_clean(0);
    }
}

/* Finding 5: a VRAMSWAP_SIM typo is an error, as a VRAMSWAP_CONF typo is. */
Test(robust, sim_env_typo_is_an_error)
{
    setenv("VRAMSWAP_SIM", "devicez:2", 1);
    vs_device_t *d = NULL;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, NULL, &d));
    unsetenv("VRAMSWAP_SIM");
    vt_params p = {.pages = 8};
    vt_configure_sim(&p); /* an explicit configuration replaces it */
    VT_OK(vs_device_open("sim", 0, NULL, &d));
    VT_OK(vs_device_close(d));
}

/* Finding 9: an absurd VBAR is refused before its page table is allocated. */
Test(robust, huge_vbar_refused)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = NULL;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_create(e->dev, (uint64_t)64 << 40, &v));
    cr_assert_null(v);
}

/* The page_size message names the value given. */
static char last_error[512];
static void keep_error(int level, const char *msg, void *user)
{
    (void)user;
    if (level == VS_LOG_ERROR)
        snprintf(last_error, sizeof last_error, "%s", msg);
}

Test(robust, page_size_message_names_given_value)
{
    vt_params p = {.pages = 8};
    vt_configure_sim(&p);
    VT_OK(vs_set_log_callback(keep_error, NULL));
    vs_device_config c;
    VT_OK(vs_device_config_init(&c));
    c.page_size = 3;
    vs_device_t *d = NULL;
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_open("sim", 0, &c, &d));
    VT_OK(vs_set_log_callback(NULL, NULL));
    cr_assert(strstr(last_error, "page size 3 ") != NULL, "message: %s", last_error);
}

/* Finding 9: a host buffer growth larger than the memory left is refused with
 * VS_ERR_OUT_OF_MEMORY instead of being committed and touched (an OOM kill). */
Test(robust, host_buffer_growth_past_memory_refused)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    FILE *f = fopen("/proc/meminfo", "r");
    cr_assert_not_null(f);
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    cr_assert_gt(kb, 0);
    uint64_t want = (uint64_t)kb * 1024 * 2;
    vs_host_buffer_t *h;
    VT_OK(vs_host_buffer_create(e->dev, want, &h));
    VT_EXPECT(VS_ERR_OUT_OF_MEMORY, vs_host_buffer_resize(h, want));
    uint64_t size = 1;
    VT_OK(vs_host_buffer_get(h, NULL, &size, NULL));
    cr_assert_eq(size, 0);
    VT_OK(vs_host_buffer_resize(h, 1 << 20)); /* a small one still works */
    VT_OK(vs_host_buffer_destroy(h));
}
