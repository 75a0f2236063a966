/* The CUDA backend, end to end through the real backend code, on the libcuda
 * emulator: driver loading and its failure modes, device properties, VBAR
 * fault / unpin / evict, copies checked byte for byte, transient and hard
 * driver failures, and context handling across threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(cuda, .init = et_init, .timeout = 60);

static vs_backend_info cuda_info(void)
{
    vs_backend_info info;
    VT_OK(vs_backend_get_info(et_cuda_index(), &info));
    return info;
}

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

/* ---------------------------------------------------------------- loading */

Test(cuda, registry_reports_the_emulated_device)
{
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 1, "unavailable: %s", info.why);
    cr_assert_eq(info.device_count, 1);
}

Test(cuda, props_come_from_the_driver)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_str_eq(p.backend, "cuda");
    cr_assert(strstr(p.name, "CUDA emulator 0") != NULL, "name %s", p.name);
    cr_assert_eq(p.total_memory, 64 * ET_MIB);
    cr_assert_eq(p.granularity, 64 * 1024);
    cr_assert_eq(p.page_size, ET_PAGE, "preferred page: max(recommended, 2 MiB)");
    cr_assert_eq(p.integrated, 0);
    cr_assert_eq(p.intercepting, 0);
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

Test(cuda, page_size_scales_with_the_card)
{
    /* Note [CUDA page size]: 1/256 of the card, at most 32 MiB. */
    et_setup("memory:16G,granularity:2M,page:2M", NULL);
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_eq(p.page_size, 32 * ET_MIB, "16 GiB card: 32 MiB pages, got %llu", (unsigned long long)p.page_size);
    VT_OK(vs_device_close(dev));
}

Test(cuda, page_size_scales_down_on_small_cards)
{
    et_setup("memory:2G,granularity:2M,page:2M", NULL); /* read once per process: own test */
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_eq(p.page_size, 8 * ET_MIB, "2 GiB card: 8 MiB pages, got %llu", (unsigned long long)p.page_size);
    VT_OK(vs_device_close(dev));
}

Test(cuda, integrated_and_small_recommended_granularity)
{
    et_setup("memory:64M,granularity:64K,page:256K,integrated:1", NULL);
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_eq(p.integrated, 1);
    cr_assert_eq(p.page_size, ET_PAGE, "a 256 KiB recommendation is raised to 2 MiB");
    VT_OK(vs_device_close(dev));
}

Test(cuda, missing_libcuda_leaves_the_library_usable)
{
    setenv("VRAMSWAP_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 0);
    cr_assert_eq(info.device_count, 0);
    cr_assert(strstr(info.why, "/nonexistent/libcuda.so.1") && strstr(info.why, "not found"),
              "why: %s", info.why);
    vs_device_t *dev = NULL;
    cr_assert_neq(vs_device_open("cuda", 0, NULL, &dev), VS_OK);
    /* The simulator still works, and "auto" falls back to it. */
    VT_OK(vs_device_open(NULL, 0, NULL, &dev));
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_str_eq(p.backend, "sim");
    VT_OK(vs_device_close(dev));
}

Test(cuda, no_vmm_support_makes_the_backend_unavailable)
{
    et_setup(NULL, "vmm:0");
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "virtual memory management") != NULL, "why: %s", info.why);
    vs_device_t *dev = NULL;
    cr_assert_neq(vs_device_open("cuda", 0, NULL, &dev), VS_OK);
    VT_OK(vs_device_open("sim", 0, NULL, &dev));
    VT_OK(vs_device_close(dev));
}

Test(cuda, devices_without_vmm_are_not_exposed)
{
    /* Driver device 0 lacks VMM, device 1 has it: vramswap's ordinal 0 is driver device 1. */
    et_setup("devices:2,memory:64M,granularity:64K,page:2M", "vmm:2");
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 1, "why: %s", info.why);
    cr_assert_eq(info.device_count, 1);
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert(strstr(p.name, "CUDA emulator 1") != NULL, "name %s", p.name);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 2 * ET_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 2 * ET_PAGE, NULL));
    vs_sim_counters c;
    cr_assert_eq(et_emu_get()->counters(1, &c), CUDA_SUCCESS);
    cr_assert_eq(c.phys_chunks, 2, "the chunks live on driver device 1");
    VT_OK(vs_vbar_unpin(vb, 0, 2 * ET_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    et_assert_clean(1);
}

Test(cuda, failing_cuinit_is_reported)
{
    et_setup(NULL, "init:100"); /* CUDA_ERROR_NO_DEVICE */
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "CUDA_ERROR_NO_DEVICE") != NULL, "why: %s", info.why);
}

Test(cuda, old_driver_without_async_allocations_still_works)
{
    /* A CUDA 11.0 driver has no cuMemAllocAsync: optional entry points stay NULL. */
    et_setup(NULL, "driver:11000");
    vs_backend_info info = cuda_info();
    cr_assert_eq(info.available, 1, "why: %s", info.why);
    vs_device_t *dev = et_open(0, 0, 0, 0);
    VT_OK(vs_device_close(dev));
}

/* ---------------------------------------------------------------- VBARs */

Test(cuda, fault_unpin_and_evict_through_the_driver)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    et_emu *emu = et_emu_get();
    vs_vbar_t *a, *b;
    VT_OK(vs_vbar_create(dev, 24 * ET_PAGE, &a));
    uint64_t sig_a = 0;
    VT_OK(vs_vbar_fault(a, 0, 24 * ET_PAGE, &sig_a));
    cr_assert_neq(sig_a, 0);
    VT_OK(vs_vbar_unpin(a, 0, 24 * ET_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * ET_PAGE);

    vs_sim_counters c;
    cr_assert_eq(emu->counters(0, &c), CUDA_SUCCESS);
    cr_assert_eq(c.phys_chunks, 24);
    cr_assert_eq(c.mapped_bytes, 24 * ET_PAGE);

    /* A newer VBAR is more important: it takes the 8 missing pages from a's top. */
    VT_OK(vs_vbar_create(dev, 16 * ET_PAGE, &b));
    VT_OK(vs_vbar_fault(b, 0, 16 * ET_PAGE, NULL));
    cr_assert_eq(loaded(b), 16 * ET_PAGE);
    cr_assert_eq(loaded(a), 16 * ET_PAGE);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(a, &wm));
    cr_assert_eq(wm, 16 * ET_PAGE);
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.pages_evicted, 8);
    cr_assert_eq(emu->counters(0, &c), CUDA_SUCCESS);
    cr_assert_eq(c.mapped_bytes, 32 * ET_PAGE, "the whole device is mapped");
    cr_assert(c.phys_chunks <= 32);

    /* Above a's watermark faults fail fast; the untouched prefix keeps its signature. */
    cr_assert_eq(vs_vbar_fault(a, 20 * ET_PAGE, ET_PAGE, NULL), VS_NOT_RESIDENT);
    uint64_t sig = 0;
    VT_OK(vs_vbar_fault(a, 0, ET_PAGE, &sig));
    VT_OK(vs_vbar_unpin(a, 0, ET_PAGE, VS_STREAM_NONE));

    /* Prioritized again, a evicts b's top pages (b unpinned first). */
    VT_OK(vs_vbar_unpin(b, 0, 16 * ET_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_prioritize(a));
    VT_OK(vs_vbar_fault(a, 16 * ET_PAGE, 8 * ET_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 16 * ET_PAGE, 8 * ET_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * ET_PAGE);
    cr_assert_eq(loaded(b), 8 * ET_PAGE);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(a));
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

Test(cuda, closing_the_device_releases_everything)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 8 * ET_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 8 * ET_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 8 * ET_PAGE, VS_STREAM_NONE));
    vs_scratch_t *sc;
    VT_OK(vs_scratch_create(dev, 8 * ET_PAGE, &sc));
    VT_OK(vs_scratch_resize(sc, 3 * ET_PAGE));
    vs_host_buffer_t *hb;
    VT_OK(vs_host_buffer_create(dev, 8 * ET_MIB, &hb));
    VT_OK(vs_host_buffer_resize(hb, 5 * ET_MIB));
    uintptr_t s, ev;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_record(dev, ev, s));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s));
    /* Left open on purpose: close destroys the VBAR and the buffers. */
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

/* ---------------------------------------------------------------- copies */

Test(cuda, copies_round_trip_byte_for_byte)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    const uint64_t len = 8 * ET_MIB;
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

    /* Random unaligned pieces, alternating our stream and the legacy default stream. */
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
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

Test(cuda, events_order_streams)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, ET_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, ET_PAGE, NULL));
    vs_devptr_t base = base_of(vb);
    uint8_t *src = malloc(ET_PAGE), *dst = malloc(ET_PAGE);
    cr_assert(src && dst);
    vt_fill(src, ET_PAGE, 7);
    memset(dst, 0, ET_PAGE);

    uintptr_t s1, s2, ev;
    VT_OK(vs_stream_create(dev, &s1));
    VT_OK(vs_stream_create(dev, &s2));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_query(dev, ev)); /* never recorded: complete */
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)src, ET_PAGE, s1));
    VT_OK(vs_event_record(dev, ev, s1));
    VT_OK(vs_stream_wait_event(dev, s2, ev));
    VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, base, ET_PAGE, s2));
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_query(dev, ev));
    VT_OK(vs_stream_synchronize(dev, s2));
    cr_assert_eq(vt_verify(dst, ET_PAGE, 7), -1);

    VT_OK(vs_vbar_unpin(vb, 0, ET_PAGE, s2));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s1));
    VT_OK(vs_stream_destroy(dev, s2));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    free(src);
    free(dst);
    et_assert_clean(0);
}

/* ---------------------------------------------------------------- driver failures */

Test(cuda, not_ready_from_set_access_is_retried)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ET_PAGE, &vb));
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 3, CUDA_ERROR_NOT_READY), CUDA_SUCCESS);
    VT_OK(vs_vbar_fault(vb, 0, ET_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.transient_retries, 3);
    cr_assert_eq(st.backend_failures, 0);
    cr_assert_eq(loaded(vb), ET_PAGE);

    /* A NOT_READY that never clears becomes a failure, and leaves nothing behind. */
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 1000, CUDA_ERROR_NOT_READY), CUDA_SUCCESS);
    cr_assert_eq(vs_vbar_fault(vb, ET_PAGE, ET_PAGE, NULL), VS_ERR_BACKEND);
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_geq(st.backend_failures, 1);
    cr_assert_eq(loaded(vb), ET_PAGE);
    cr_assert_eq(emu->inject_clear(), CUDA_SUCCESS);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_fault(vb, ET_PAGE, ET_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 2 * ET_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

Test(cuda, hard_driver_failures_are_backend_errors)
{
    vs_device_t *dev = et_open(0, 0, 0, 0);
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ET_PAGE, &vb));

    cr_assert_eq(emu->inject(VS_SIM_OP_MAP, 0, 1, CUDA_ERROR_UNKNOWN), CUDA_SUCCESS);
    cr_assert_eq(vs_vbar_fault(vb, 0, ET_PAGE, NULL), VS_ERR_BACKEND);
    vs_sim_counters c;
    cr_assert_eq(emu->counters(0, &c), CUDA_SUCCESS);
    cr_assert_eq(c.phys_chunks, 0, "the chunk of the failed map was released");
    cr_assert_eq(c.mapped_bytes, 0);

    /* Out of memory from the driver is a normal answer, not a failure. */
    cr_assert_eq(emu->inject(VS_SIM_OP_PHYS_CREATE, 0, 1, CUDA_ERROR_OUT_OF_MEMORY), CUDA_SUCCESS);
    VT_EXPECT2(VS_NOT_RESIDENT, VS_OK, vs_vbar_fault(vb, 0, ET_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.backend_failures, 1, "only the map failure counts");
    if (loaded(vb))
        VT_OK(vs_vbar_unpin(vb, 0, ET_PAGE, VS_STREAM_NONE));

    cr_assert_eq(emu->inject(VS_SIM_OP_STREAM_CREATE, 0, 1, CUDA_ERROR_INVALID_VALUE), CUDA_SUCCESS);
    uintptr_t s = 0;
    cr_assert_eq(vs_stream_create(dev, &s), VS_ERR_BACKEND);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

/* ---------------------------------------------------------------- contexts */

typedef struct {
    vs_vbar_t *vb;
    uint64_t offset;
    vs_status st;
    CUcontext after;
} fault_job;

static void *fault_on_fresh_thread(void *p)
{
    fault_job *job = p;
    job->st = vs_vbar_fault(job->vb, job->offset, ET_PAGE, NULL);
    if (job->st == VS_OK)
        job->st = vs_vbar_unpin(job->vb, job->offset, ET_PAGE, VS_STREAM_NONE);
    et_emu_get()->CtxGetCurrent(&job->after);
    return NULL;
}

Test(cuda, calls_work_from_any_thread_and_restore_its_context)
{
    et_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *dev = et_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * ET_PAGE, &vb));

    /* A thread that never touched CUDA: works, and is left without a context. */
    fault_job job = {vb, 0, VS_ERR_INTERNAL, (CUcontext)1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fault_on_fresh_thread, &job), 0);
    pthread_join(t, NULL);
    VT_OK(job.st);
    cr_assert_null(job.after);

    /* A thread with another device's context current (torch's device guard on
     * device 1): the call works on device 0 and device 1 stays current. */
    et_use_ctx(1);
    CUcontext mine = NULL;
    et_emu_get()->CtxGetCurrent(&mine);
    cr_assert_not_null(mine);
    VT_OK(vs_vbar_fault(vb, ET_PAGE, ET_PAGE, NULL));
    CUcontext now = NULL;
    et_emu_get()->CtxGetCurrent(&now);
    cr_assert_eq(now, mine);
    vs_sim_counters c;
    cr_assert_eq(et_emu_get()->counters(0, &c), CUDA_SUCCESS);
    cr_assert_eq(c.phys_chunks, 2, "both pages were created on device 0");
    VT_OK(vs_vbar_unpin(vb, ET_PAGE, ET_PAGE, VS_STREAM_NONE));
    et_release_ctx(1);

    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
    et_assert_clean(1);
}

Test(cuda, two_devices_open_at_once)
{
    et_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *d0 = et_open(0, 0, 0, 0);
    vs_device_t *d1 = et_open(1, 0, 0, 0);
    vs_vbar_t *v0, *v1;
    VT_OK(vs_vbar_create(d0, 4 * ET_PAGE, &v0));
    VT_OK(vs_vbar_create(d1, 6 * ET_PAGE, &v1));
    VT_OK(vs_vbar_fault(v0, 0, 4 * ET_PAGE, NULL));
    VT_OK(vs_vbar_fault(v1, 0, 6 * ET_PAGE, NULL));
    vs_sim_counters c0, c1;
    cr_assert_eq(et_emu_get()->counters(0, &c0), CUDA_SUCCESS);
    cr_assert_eq(et_emu_get()->counters(1, &c1), CUDA_SUCCESS);
    cr_assert_eq(c0.phys_chunks, 4);
    cr_assert_eq(c1.phys_chunks, 6);
    vs_memory_info m;
    VT_OK(vs_device_memory_info(d1, &m));
    cr_assert_eq(m.used_weights, 6 * ET_PAGE);
    VT_OK(vs_vbar_unpin(v0, 0, 4 * ET_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_unpin(v1, 0, 6 * ET_PAGE, VS_STREAM_NONE));
    VT_OK(vs_device_close(d0));
    VT_OK(vs_device_close(d1));
    et_assert_clean(0);
    et_assert_clean(1);
}
