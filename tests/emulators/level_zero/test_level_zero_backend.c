/* The Level Zero backend, end to end through the real backend code and
 * Debian's real oneAPI loader, on the Level Zero driver emulator: loading and
 * its failure modes, device properties, VBAR fault / unpin / evict, copies
 * checked byte for byte, events and stream order, transient and hard driver
 * failures, reservations, host registration and free memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(level_zero, .init = zt_init, .timeout = 60);

static uint64_t loaded(vs_vbar_t *vb)
{
    uint64_t b = 0;
    VT_OK(vs_vbar_loaded_size(vb, &b));
    return b;
}

static vs_devptr_t base_of(vs_vbar_t *vb)
{
    vs_devptr_t base = 0;
    uint64_t size = 0;
    VT_OK(vs_vbar_get_base(vb, &base, &size));
    return base;
}

static vs_sim_counters counters(int ordinal)
{
    vs_sim_counters c;
    cr_assert_eq(zt_emu_get()->counters(ordinal, &c), ZE_RESULT_SUCCESS);
    return c;
}

/* ---------------------------------------------------------------- loading */

Test(level_zero, the_loader_loads_the_emulated_driver)
{
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 1, "unavailable: %s", info.why);
    cr_assert_eq(info.device_count, 1);
    /* The backend went through the real loader, which loaded our driver. */
    zt_emu *e = zt_emu_get();
    cr_assert_not_null(e->driver);
    /* ZES_ENABLE_SYSMAN was not set by ctest: the backend set it before zeInit. */
    const char *sysman = getenv("ZES_ENABLE_SYSMAN");
    cr_assert(sysman && strcmp(sysman, "1") == 0);
}

Test(level_zero, props_come_from_the_driver)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_str_eq(p.backend, "level_zero");
    cr_assert(strstr(p.name, "Level Zero emulator 0") != NULL, "name %s", p.name);
    cr_assert_eq(p.total_memory, 64 * ZT_MIB);
    cr_assert_eq(p.granularity, ZT_PAGE, "the driver's page size for 2 MiB");
    cr_assert_eq(p.page_size, ZT_PAGE);
    cr_assert_eq(p.integrated, 0);
    cr_assert_eq(p.intercepting, 0);
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, integrated_device_with_small_pages)
{
    zt_setup("memory:64M,granularity:64K,page:256K,integrated:1", NULL);
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_eq(p.integrated, 1);
    cr_assert_eq(p.granularity, 256 * 1024);
    cr_assert_eq(p.page_size, ZT_PAGE, "the page is raised to 2 MiB");
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 4 * ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 4 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

static void assert_sim_still_works(void)
{
    vs_device_t *dev = NULL;
    cr_assert_neq(vs_device_open("level_zero", 0, NULL, &dev), VS_OK);
    /* The simulator still works, and "auto" falls back to it (or to another
     * available GPU backend, which this machine does not have). */
    VT_OK(vs_device_open("sim", 0, NULL, &dev));
    VT_OK(vs_device_close(dev));
}

Test(level_zero, no_driver_makes_the_backend_unavailable_with_a_reason)
{
    setenv("ZE_ENABLE_ALT_DRIVERS", "/nonexistent/libze_vramswap_emu.so.1", 1);
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 0);
    cr_assert_eq(info.device_count, 0);
    cr_assert(strstr(info.why, "zeInit") && strstr(info.why, "no Level Zero GPU driver"),
              "why: %s", info.why);
    assert_sim_still_works();
}

Test(level_zero, a_driver_without_gpu_is_dropped_by_the_loader)
{
    zt_setup(NULL, "gpu:0");
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "ZE_RESULT_ERROR_UNINITIALIZED") != NULL, "why: %s", info.why);
    assert_sim_still_works();
}

Test(level_zero, a_failing_driver_init_is_reported)
{
    zt_setup(NULL, "init:0x70000001"); /* ZE_RESULT_ERROR_DEVICE_LOST */
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "ZE_RESULT_ERROR_DEVICE_LOST") != NULL, "why: %s", info.why);
}

Test(level_zero, missing_loader_leaves_the_library_usable)
{
    setenv("VRAMSWAP_LIBZE", "/nonexistent/libze_loader.so.1", 1);
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "/nonexistent/libze_loader.so.1") && strstr(info.why, "not found"),
              "why: %s", info.why);
    assert_sim_still_works();
}

Test(level_zero, no_virtual_memory_makes_the_backend_unavailable)
{
    zt_setup(NULL, "vmm:0");
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "virtual memory") != NULL, "why: %s", info.why);
    assert_sim_still_works();
}

Test(level_zero, devices_without_virtual_memory_are_not_exposed)
{
    /* Device 0 lacks virtual memory, device 1 has it: ordinal 0 is device 1. */
    zt_setup("devices:2,memory:64M,granularity:64K,page:2M", "vmm:2");
    vs_backend_info info = zt_info();
    cr_assert_eq(info.available, 1, "why: %s", info.why);
    cr_assert_eq(info.device_count, 1);
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert(strstr(p.name, "emulator 1") != NULL, "name %s", p.name);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 2 * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 2 * ZT_PAGE, NULL));
    cr_assert_eq(counters(1).phys_chunks, 2, "the chunks live on driver device 1");
    cr_assert_eq(counters(0).phys_chunks, 0);
    VT_OK(vs_vbar_unpin(vb, 0, 2 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(1);
}

/* ---------------------------------------------------------------- VBARs */

Test(level_zero, fault_unpin_and_evict_through_the_driver)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_vbar_t *a, *b;
    VT_OK(vs_vbar_create(dev, 24 * ZT_PAGE, &a));
    uint64_t sig_a = 0;
    VT_OK(vs_vbar_fault(a, 0, 24 * ZT_PAGE, &sig_a));
    cr_assert_neq(sig_a, 0);
    VT_OK(vs_vbar_unpin(a, 0, 24 * ZT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * ZT_PAGE);
    vs_sim_counters c = counters(0);
    cr_assert_eq(c.phys_chunks, 24);
    cr_assert_eq(c.mapped_bytes, 24 * ZT_PAGE);

    /* A newer VBAR is more important: it takes the 8 missing pages from a's top. */
    VT_OK(vs_vbar_create(dev, 16 * ZT_PAGE, &b));
    VT_OK(vs_vbar_fault(b, 0, 16 * ZT_PAGE, NULL));
    cr_assert_eq(loaded(b), 16 * ZT_PAGE);
    cr_assert_eq(loaded(a), 16 * ZT_PAGE);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(a, &wm));
    cr_assert_eq(wm, 16 * ZT_PAGE);
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.pages_evicted, 8);
    c = counters(0);
    cr_assert_eq(c.mapped_bytes, 32 * ZT_PAGE, "the whole device is mapped");
    cr_assert(c.phys_chunks <= 32);

    /* Above a's watermark faults fail fast. */
    cr_assert_eq(vs_vbar_fault(a, 20 * ZT_PAGE, ZT_PAGE, NULL), VS_NOT_RESIDENT);
    VT_OK(vs_vbar_fault(a, 0, ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 0, ZT_PAGE, VS_STREAM_NONE));

    /* Prioritized again, a evicts b's top pages (b unpinned first). */
    VT_OK(vs_vbar_unpin(b, 0, 16 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_prioritize(a));
    VT_OK(vs_vbar_fault(a, 16 * ZT_PAGE, 8 * ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 16 * ZT_PAGE, 8 * ZT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * ZT_PAGE);
    cr_assert_eq(loaded(b), 8 * ZT_PAGE);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(a));
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, closing_the_device_releases_everything)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 8 * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 8 * ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 8 * ZT_PAGE, VS_STREAM_NONE));
    vs_scratch_t *sc;
    VT_OK(vs_scratch_create(dev, 8 * ZT_PAGE, &sc));
    VT_OK(vs_scratch_resize(sc, 3 * ZT_PAGE));
    vs_host_buffer_t *hb;
    VT_OK(vs_host_buffer_create(dev, 8 * ZT_MIB, &hb));
    VT_OK(vs_host_buffer_resize(hb, 5 * ZT_MIB));
    uintptr_t s, ev;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_record(dev, ev, s));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s));
    /* Left open on purpose: close destroys the VBAR and the buffers. */
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* Note [Level Zero reservations]: the driver's addresses are only 64 KiB
 * aligned here, so the backend over-reserves to hand out page-aligned VBARs,
 * and frees exactly what the driver reserved. */
Test(level_zero, reservations_are_aligned_and_freed_exactly)
{
    zt_setup(NULL, "resvalign:64K");
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_vbar_t *vb[6];
    for (int i = 0; i < 6; i++) {
        VT_OK(vs_vbar_create(dev, (uint64_t)(i + 1) * ZT_PAGE, &vb[i]));
        cr_assert_eq(base_of(vb[i]) % ZT_PAGE, 0, "VBAR %d at %#llx", i,
                     (unsigned long long)base_of(vb[i]));
        VT_OK(vs_vbar_fault(vb[i], 0, ZT_PAGE, NULL));
        VT_OK(vs_vbar_unpin(vb[i], 0, ZT_PAGE, VS_STREAM_NONE));
    }
    cr_assert_eq(counters(0).reservations, 6);
    for (int i = 0; i < 6; i++)
        VT_OK(vs_vbar_destroy(vb[i]));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, power_of_two_reservation_sizes)
{
    /* Older Intel drivers: page size = the largest power of two <= size. */
    zt_setup(NULL, "resvpow2:1");
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 12 * ZT_PAGE, &vb)); /* 24 MiB: reserved as 32 MiB */
    VT_OK(vs_vbar_fault(vb, 0, 12 * ZT_PAGE, NULL));
    vs_sim_counters c = counters(0);
    cr_assert_eq(c.reserved_bytes % (32 * ZT_MIB), 0, "reserved %llu",
                 (unsigned long long)c.reserved_bytes);
    VT_OK(vs_vbar_unpin(vb, 0, 12 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* ---------------------------------------------------------------- copies */

static void round_trip(vs_device_t *dev)
{
    const uint64_t len = 8 * ZT_MIB;
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 2 * len, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 2 * len, NULL));
    vs_devptr_t base = base_of(vb);

    vs_host_buffer_t *in_buf, *out_buf;
    void *in, *out;
    uint64_t sz, max;
    VT_OK(vs_host_buffer_create(dev, len, &in_buf));
    VT_OK(vs_host_buffer_resize(in_buf, len));
    VT_OK(vs_host_buffer_get(in_buf, &in, &sz, &max));
    VT_OK(vs_host_buffer_create(dev, len, &out_buf));
    VT_OK(vs_host_buffer_resize(out_buf, len));
    VT_OK(vs_host_buffer_get(out_buf, &out, &sz, &max));

    const uint64_t seed = 0x5eedc0dau;
    vt_fill(in, len, seed);
    memset(out, 0, len);
    uintptr_t s;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)in, len, s));
    VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_DEVICE, base + len, base, len, s));
    VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out, base + len, len, s));
    VT_OK(vs_stream_synchronize(dev, s));
    cr_assert_eq(vt_verify(out, len, seed), -1, "first difference at byte %ld",
                 vt_verify(out, len, seed));

    /* Random unaligned pieces, alternating our stream and the default stream. */
    vt_rng rng;
    vt_rng_seed(&rng, 42);
    for (int i = 0; i < 64; i++) {
        uint64_t off = vt_rng_below(&rng, len - 1);
        uint64_t n = vt_rng_range(&rng, 1, len - off);
        uintptr_t stream = (i & 1) ? s : 0;
        uint64_t piece_seed = vt_rng_next(&rng);
        vt_fill((uint8_t *)in + off, n, piece_seed);
        memset((uint8_t *)out + off, 0, n);
        VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base + len + off, (uintptr_t)in + off, n,
                              stream));
        VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out + off, base + len + off, n,
                              stream));
        VT_OK(vs_stream_synchronize(dev, stream));
        cr_assert_eq(vt_verify((uint8_t *)out + off, n, piece_seed), -1, "piece %d (%llu+%llu)", i,
                     (unsigned long long)off, (unsigned long long)n);
    }

    VT_OK(vs_vbar_unpin(vb, 0, 2 * len, s));
    VT_OK(vs_stream_destroy(dev, s));
    VT_OK(vs_host_buffer_destroy(in_buf));
    VT_OK(vs_host_buffer_destroy(out_buf));
    VT_OK(vs_vbar_destroy(vb));
}

Test(level_zero, copies_round_trip_byte_for_byte)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    round_trip(dev);
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, copies_on_an_in_order_driver_without_copy_engine)
{
    /* API 1.7: lists are created IN_ORDER (no barriers); no dedicated copy group. */
    zt_setup(NULL, "api:1.7,copyengine:0");
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    round_trip(dev);
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, host_registration_imports_or_falls_back)
{
    /* With the extension, a host buffer's pages are imported (registered). */
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_host_buffer_t *hb;
    VT_OK(vs_host_buffer_create(dev, 8 * ZT_MIB, &hb));
    VT_OK(vs_host_buffer_resize(hb, 4 * ZT_MIB));
    vs_sim_counters c = counters(0);
    cr_assert_geq(c.host_registrations, 1);
    cr_assert_eq(c.host_registered_bytes, 4 * ZT_MIB);
    VT_OK(vs_host_buffer_resize(hb, 0));
    cr_assert_eq(counters(0).host_registrations, 0);
    VT_OK(vs_host_buffer_destroy(hb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, host_registration_without_the_extension)
{
    zt_setup(NULL, "import:0");
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_host_buffer_t *hb;
    VT_OK(vs_host_buffer_create(dev, 8 * ZT_MIB, &hb));
    VT_OK(vs_host_buffer_resize(hb, 4 * ZT_MIB)); /* accepted, nothing pinned */
    cr_assert_eq(counters(0).host_registrations, 0);
    VT_OK(vs_host_buffer_destroy(hb));
    round_trip(dev); /* copies from pageable memory still work */
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* ---------------------------------------------------------------- events */

/* Copies throttled to 1 GiB/s: a 16 MiB copy takes 16 ms (64 ms from pageable). */
#define SLOW_SIM "memory:64M,granularity:64K,page:2M,bandwidth:1G"

Test(level_zero, events_order_streams)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, ZT_PAGE, NULL));
    vs_devptr_t base = base_of(vb);
    uint8_t *src = malloc(ZT_PAGE), *dst = malloc(ZT_PAGE);
    cr_assert(src && dst);
    vt_fill(src, ZT_PAGE, 7);
    memset(dst, 0, ZT_PAGE);

    uintptr_t s1, s2, ev;
    VT_OK(vs_stream_create(dev, &s1));
    VT_OK(vs_stream_create(dev, &s2));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_query(dev, ev)); /* never recorded: complete */
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_stream_wait_event(dev, s2, ev)); /* never recorded: no wait */
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)src, ZT_PAGE, s1));
    VT_OK(vs_event_record(dev, ev, s1));
    VT_OK(vs_stream_wait_event(dev, s2, ev));
    VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, base, ZT_PAGE, s2));
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_query(dev, ev));
    VT_OK(vs_stream_synchronize(dev, s2));
    cr_assert_eq(vt_verify(dst, ZT_PAGE, 7), -1);

    VT_OK(vs_vbar_unpin(vb, 0, ZT_PAGE, s2));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s1));
    VT_OK(vs_stream_destroy(dev, s2));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    free(src);
    free(dst);
    zt_assert_clean(0);
}

/* Note [Level Zero events]: re-recording moves the event to the new point
 * even while its previous signal is still pending. */
Test(level_zero, re_recording_moves_the_event)
{
    zt_setup(SLOW_SIM, NULL);
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    const uint64_t len = 16 * ZT_MIB;
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, len, &vb));
    VT_OK(vs_vbar_fault(vb, 0, len, NULL));
    vs_devptr_t base = base_of(vb);
    uint8_t *host = malloc(len);
    cr_assert_not_null(host);
    memset(host, 1, len);

    uintptr_t s1, s2, ev;
    VT_OK(vs_stream_create(dev, &s1));
    VT_OK(vs_stream_create(dev, &s2));
    VT_OK(vs_event_create(dev, &ev));
    /* First record on s1 after a slow copy, then re-record on idle s2: the
     * event now means "s2 reached this point", which is at once. */
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)host, len, s1));
    VT_OK(vs_event_record(dev, ev, s1));
    VT_OK(vs_event_record(dev, ev, s2));
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_query(dev, ev));
    /* And the other way round: recorded on idle s2, then re-recorded behind a
     * slow copy on s1: pending until that copy is done. */
    VT_OK(vs_event_record(dev, ev, s2));
    VT_OK(vs_stream_synchronize(dev, s2));
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)host, len, s1));
    VT_OK(vs_event_record(dev, ev, s1));
    cr_assert_eq(vs_event_query(dev, ev), VS_ERR_NOT_READY);
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_query(dev, ev));

    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s1));
    VT_OK(vs_stream_destroy(dev, s2));
    VT_OK(vs_vbar_unpin(vb, 0, len, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    free(host);
    zt_assert_clean(0);
}

Test(level_zero, event_pools_grow_and_slots_are_recycled)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    enum { N = 150 };
    uintptr_t ev[N];
    for (int i = 0; i < N; i++) {
        VT_OK(vs_event_create(dev, &ev[i]));
        VT_OK(vs_event_record(dev, ev[i], 0));
    }
    vsze_objects_t o;
    cr_assert_eq(zt_emu_get()->objects(&o), ZE_RESULT_SUCCESS);
    cr_assert_geq(o.event_pools, 3, "150 live records need 3 pools of 64");
    uint64_t events_peak = o.events;
    VT_OK(vs_stream_synchronize(dev, 0));
    /* Re-recording many times reuses completed slots: no new pools, no growth. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++)
            VT_OK(vs_event_record(dev, ev[i], 0));
        VT_OK(vs_stream_synchronize(dev, 0));
    }
    cr_assert_eq(zt_emu_get()->objects(&o), ZE_RESULT_SUCCESS);
    cr_assert_leq(o.events, events_peak + 64, "slots are recycled (%llu events)",
                  (unsigned long long)o.events);
    for (int i = 0; i < N; i++) {
        VT_OK(vs_event_query(dev, ev[i]));
        VT_OK(vs_event_destroy(dev, ev[i]));
    }
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* A page event the core recorded on unpin keeps eviction waiting for the copy
 * that used the page. */
Test(level_zero, eviction_waits_for_the_last_use)
{
    zt_setup(SLOW_SIM, NULL);
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    const uint64_t len = 16 * ZT_MIB;
    uint8_t *host = malloc(len);
    cr_assert_not_null(host);
    vt_fill(host, len, 99);
    vs_vbar_t *a, *b;
    VT_OK(vs_vbar_create(dev, 32 * ZT_PAGE, &a));
    VT_OK(vs_vbar_fault(a, 0, 32 * ZT_PAGE, NULL));
    uintptr_t s;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base_of(a) + 16 * ZT_MIB, (uintptr_t)host,
                          len, s));
    VT_OK(vs_vbar_unpin(a, 0, 32 * ZT_PAGE, s));
    /* b needs a's top pages: eviction must wait for the copy, which then
     * completes without touching unmapped memory. */
    VT_OK(vs_vbar_create(dev, 8 * ZT_PAGE, &b));
    VT_OK(vs_vbar_fault(b, 0, 8 * ZT_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_geq(st.event_waits, 1, "eviction waited on the page event");
    VT_OK(vs_stream_synchronize(dev, s));
    VT_OK(vs_vbar_unpin(b, 0, 8 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_stream_destroy(dev, s));
    VT_OK(vs_vbar_destroy(a));
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_device_close(dev));
    free(host);
    zt_assert_clean(0);
}

/* ---------------------------------------------------------------- driver failures */

Test(level_zero, not_ready_from_set_access_is_retried)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    zt_emu *emu = zt_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ZT_PAGE, &vb));
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 3, ZE_RESULT_NOT_READY), ZE_RESULT_SUCCESS);
    VT_OK(vs_vbar_fault(vb, 0, ZT_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.transient_retries, 3);
    cr_assert_eq(st.backend_failures, 0);
    cr_assert_eq(loaded(vb), ZT_PAGE);

    /* A NOT_READY that never clears becomes a failure, and leaves nothing behind. */
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 1000, ZE_RESULT_NOT_READY), ZE_RESULT_SUCCESS);
    cr_assert_eq(vs_vbar_fault(vb, ZT_PAGE, ZT_PAGE, NULL), VS_ERR_BACKEND);
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_geq(st.backend_failures, 1);
    cr_assert_eq(loaded(vb), ZT_PAGE);
    cr_assert_eq(emu->inject_clear(), ZE_RESULT_SUCCESS);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_fault(vb, ZT_PAGE, ZT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 2 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, hard_driver_failures_are_backend_errors)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    zt_emu *emu = zt_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ZT_PAGE, &vb));

    cr_assert_eq(emu->inject(VS_SIM_OP_MAP, 0, 1, ZE_RESULT_ERROR_UNKNOWN), ZE_RESULT_SUCCESS);
    cr_assert_eq(vs_vbar_fault(vb, 0, ZT_PAGE, NULL), VS_ERR_BACKEND);
    vs_sim_counters c = counters(0);
    cr_assert_eq(c.phys_chunks, 0, "the chunk of the failed map was released");
    cr_assert_eq(c.mapped_bytes, 0);

    /* Out of device memory is a normal answer, not a failure. */
    cr_assert_eq(emu->inject(VS_SIM_OP_PHYS_CREATE, 0, 1, ZE_RESULT_ERROR_OUT_OF_DEVICE_MEMORY),
                 ZE_RESULT_SUCCESS);
    VT_EXPECT2(VS_NOT_RESIDENT, VS_OK, vs_vbar_fault(vb, 0, ZT_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.backend_failures, 1, "only the map failure counts");
    if (loaded(vb))
        VT_OK(vs_vbar_unpin(vb, 0, ZT_PAGE, VS_STREAM_NONE));

    cr_assert_eq(emu->inject(VS_SIM_OP_STREAM_CREATE, 0, 1, ZE_RESULT_ERROR_DEVICE_LOST),
                 ZE_RESULT_SUCCESS);
    uintptr_t s = 0;
    cr_assert_eq(vs_stream_create(dev, &s), VS_ERR_BACKEND);
    /* A failing event slot (event creation) fails the record, not the library. */
    cr_assert_eq(emu->inject(VS_SIM_OP_EVENT_CREATE, 0, 1, ZE_RESULT_ERROR_OUT_OF_HOST_MEMORY),
                 ZE_RESULT_SUCCESS);
    uintptr_t ev;
    VT_OK(vs_event_create(dev, &ev));
    cr_assert_eq(vs_event_record(dev, ev, 0), VS_ERR_OUT_OF_MEMORY);
    VT_OK(vs_event_query(dev, ev));
    VT_OK(vs_event_record(dev, ev, 0));
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* ---------------------------------------------------------------- free memory */

static vs_memory_info meminfo(vs_device_t *dev)
{
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    return m;
}

Test(level_zero, sysman_reports_memory_used_by_others)
{
    /* vramswap initializes Level Zero first, so its ZES_ENABLE_SYSMAN=1 counts. */
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    zt_emu *emu = zt_emu_get();
    cr_assert_eq(emu->external_usage(0, 16 * ZT_MIB), ZE_RESULT_SUCCESS);
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_others, 16 * ZT_MIB, "others %llu", (unsigned long long)m.used_others);
    cr_assert_eq(m.available, 48 * ZT_MIB);
    cr_assert_eq(emu->external_usage(0, 0), ZE_RESULT_SUCCESS);
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, without_sysman_free_memory_is_estimated)
{
    setenv("ZES_ENABLE_SYSMAN", "0", 1); /* the user's choice is kept */
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    zt_emu *emu = zt_emu_get();
    cr_assert_str_eq(getenv("ZES_ENABLE_SYSMAN"), "0");
    cr_assert_eq(emu->external_usage(0, 16 * ZT_MIB), ZE_RESULT_SUCCESS);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 4 * ZT_PAGE, NULL));
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_others, 0, "another process's memory is invisible without Sysman");
    cr_assert_eq(m.used_weights, 4 * ZT_PAGE);
    cr_assert_eq(m.available, 64 * ZT_MIB - 4 * ZT_PAGE);
    cr_assert_eq(emu->external_usage(0, 0), ZE_RESULT_SUCCESS);
    VT_OK(vs_vbar_unpin(vb, 0, 4 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

Test(level_zero, an_application_that_initialized_first_gets_the_estimate)
{
    /* torch initialized Level Zero before vramswap, without ZES_ENABLE_SYSMAN:
     * Sysman does not answer, and the backend falls back to its estimate. */
    zt_emu *emu = zt_emu_get();
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    cr_assert_eq(emu->external_usage(0, 8 * ZT_MIB), ZE_RESULT_SUCCESS);
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_others, 0);
    cr_assert_eq(m.available, 64 * ZT_MIB);
    cr_assert_eq(emu->external_usage(0, 0), ZE_RESULT_SUCCESS);
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}

/* ---------------------------------------------------------------- several devices, threads */

Test(level_zero, two_devices_open_at_once)
{
    zt_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *d0 = zt_open(0, 0, 0, 0);
    vs_device_t *d1 = zt_open(1, 0, 0, 0);
    vs_vbar_t *v0, *v1;
    VT_OK(vs_vbar_create(d0, 4 * ZT_PAGE, &v0));
    VT_OK(vs_vbar_create(d1, 6 * ZT_PAGE, &v1));
    VT_OK(vs_vbar_fault(v0, 0, 4 * ZT_PAGE, NULL));
    VT_OK(vs_vbar_fault(v1, 0, 6 * ZT_PAGE, NULL));
    cr_assert_eq(counters(0).phys_chunks, 4);
    cr_assert_eq(counters(1).phys_chunks, 6);
    cr_assert_eq(meminfo(d1).used_weights, 6 * ZT_PAGE);
    VT_OK(vs_vbar_unpin(v0, 0, 4 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_unpin(v1, 0, 6 * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(v0));
    VT_OK(vs_device_close(d0));
    cr_assert_eq(counters(1).phys_chunks, 6, "closing device 0 leaves device 1 alone");
    VT_OK(vs_vbar_destroy(v1));
    VT_OK(vs_device_close(d1));
    zt_assert_clean(0);
    zt_assert_clean(1);
}

typedef struct {
    vs_device_t *dev;
    vs_vbar_t *vb;
    int index;
    vs_status st;
} copy_job;

static void *copy_on_own_stream(void *p)
{
    copy_job *job = p;
    const uint64_t off = (uint64_t)job->index * ZT_PAGE;
    uint8_t *src = malloc(ZT_PAGE), *dst = malloc(ZT_PAGE);
    uintptr_t s = 0;
    job->st = src && dst ? VS_OK : VS_ERR_OUT_OF_MEMORY;
    if (job->st == VS_OK)
        job->st = vs_stream_create(job->dev, &s);
    for (int round = 0; job->st == VS_OK && round < 20; round++) {
        uint64_t seed = (uint64_t)job->index * 1000u + (uint64_t)round;
        vt_fill(src, ZT_PAGE, seed);
        job->st = vs_memcpy_async(job->dev, VS_COPY_HOST_TO_DEVICE, base_of(job->vb) + off,
                                  (uintptr_t)src, ZT_PAGE, s);
        if (job->st == VS_OK)
            job->st = vs_memcpy_async(job->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst,
                                      base_of(job->vb) + off, ZT_PAGE, s);
        if (job->st == VS_OK)
            job->st = vs_stream_synchronize(job->dev, s);
        if (job->st == VS_OK && vt_verify(dst, ZT_PAGE, seed) != -1)
            job->st = VS_ERR_INTERNAL;
    }
    if (s)
        (void)vs_stream_destroy(job->dev, s);
    free(src);
    free(dst);
    return NULL;
}

Test(level_zero, copies_from_several_threads)
{
    vs_device_t *dev = zt_open(0, 0, 0, 0);
    enum { T = 4 };
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, T * ZT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, T * ZT_PAGE, NULL));
    pthread_t th[T];
    copy_job jobs[T];
    for (int i = 0; i < T; i++) {
        jobs[i] = (copy_job){dev, vb, i, VS_ERR_INTERNAL};
        cr_assert_eq(pthread_create(&th[i], NULL, copy_on_own_stream, &jobs[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        VT_OK(jobs[i].st);
    }
    VT_OK(vs_vbar_unpin(vb, 0, T * ZT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    zt_assert_clean(0);
}
