/* The HIP backend, end to end through the real backend code, on the
 * libamdhip64 emulator: runtime loading and its failure modes, device
 * properties, VBAR fault / unpin / evict, copies checked byte for byte,
 * transient and hard runtime failures, the per-thread current device, the
 * reservation cache and stranded memory. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(hip, .init = ht_init, .timeout = 60);

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
    cr_assert_eq(ht_emu_get()->counters(ordinal, &c), hipSuccess);
    return c;
}

/* A VBAR of `pages` pages, all resident and unpinned. */
static vs_vbar_t *loaded_vbar(vs_device_t *dev, uint64_t pages)
{
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, pages * HT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, pages * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, pages * HT_PAGE, VS_STREAM_NONE));
    return vb;
}

/* ---------------------------------------------------------------- loading */

Test(hip, registry_reports_the_emulated_device)
{
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 1, "unavailable: %s", info.why);
    cr_assert_eq(info.device_count, 1);
}

Test(hip, props_come_from_the_runtime)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_str_eq(p.backend, "hip");
    cr_assert(strstr(p.name, "HIP emulator 0") != NULL, "name %s", p.name);
    cr_assert_eq(p.total_memory, 64 * HT_MIB);
    cr_assert_eq(p.granularity, 64 * 1024);
    cr_assert_eq(p.page_size, HT_PAGE, "preferred page: max(recommended, 2 MiB)");
    cr_assert_eq(p.integrated, 0);
    cr_assert_eq(p.intercepting, 0);
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    cr_assert_eq(m.total, 64 * HT_MIB);
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, integrated_and_small_recommended_granularity)
{
    ht_setup("memory:64M,granularity:64K,page:256K,integrated:1", NULL);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert_eq(p.integrated, 1);
    cr_assert_eq(p.page_size, HT_PAGE, "a 256 KiB recommendation is raised to 2 MiB");
    /* An APU's free figure is also capped by the host's MemAvailable. */
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    cr_assert_leq(m.available, 64 * HT_MIB);
    VT_OK(vs_device_close(dev));
}

Test(hip, missing_runtime_leaves_the_library_usable)
{
    setenv("VRAMSWAP_LIBHIP", "/nonexistent/libamdhip64.so", 1);
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 0);
    cr_assert_eq(info.device_count, 0);
    cr_assert(strstr(info.why, "/nonexistent/libamdhip64.so") && strstr(info.why, "not found"),
              "why: %s", info.why);
    vs_device_t *dev = NULL;
    cr_assert_neq(vs_device_open("hip", 0, NULL, &dev), VS_OK);
    /* The simulator still works. */
    VT_OK(vs_device_open("sim", 0, NULL, &dev));
    VT_OK(vs_device_close(dev));
}

Test(hip, the_runtime_already_in_the_process_is_used)
{
    /* As torch's ROCm wheel does: its own libamdhip64, loaded from a directory
     * nobody searches. Without VRAMSWAP_LIBHIP the backend finds that copy
     * among the loaded objects instead of loading the system's. */
    ht_emu_get();
    unsetenv("VRAMSWAP_LIBHIP");
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 1, "unavailable: %s", info.why);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert(strstr(p.name, "HIP emulator 0") != NULL, "name %s", p.name);
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, no_vmm_support_makes_the_backend_unavailable)
{
    ht_setup(NULL, "vmm:0");
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "virtual memory management") != NULL, "why: %s", info.why);
    vs_device_t *dev = NULL;
    cr_assert_neq(vs_device_open("hip", 0, NULL, &dev), VS_OK);
    VT_OK(vs_device_open("sim", 0, NULL, &dev));
    VT_OK(vs_device_close(dev));
}

Test(hip, a_runtime_without_the_vmm_attribute_is_not_used)
{
    ht_setup(NULL, "vmmattr:unknown,runtime:50221153");
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "does not report virtual memory management") &&
                  strstr(info.why, "5.2"),
              "why: %s", info.why);
}

Test(hip, devices_without_vmm_are_not_exposed)
{
    /* Runtime device 0 lacks VMM, device 1 has it: vramswap's ordinal 0 is device 1. */
    ht_setup("devices:2,memory:64M,granularity:64K,page:2M", "vmm:2");
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 1, "why: %s", info.why);
    cr_assert_eq(info.device_count, 1);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    cr_assert(strstr(p.name, "HIP emulator 1") != NULL, "name %s", p.name);
    vs_vbar_t *vb = loaded_vbar(dev, 2);
    cr_assert_eq(counters(1).phys_chunks, 2, "the chunks live on runtime device 1");
    cr_assert_eq(counters(0).phys_chunks, 0);
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(1);
}

Test(hip, failing_hipinit_is_reported)
{
    ht_setup(NULL, "init:100"); /* hipErrorNoDevice */
    vs_backend_info info = ht_hip_info();
    cr_assert_eq(info.available, 0);
    cr_assert(strstr(info.why, "hipErrorNoDevice") != NULL, "why: %s", info.why);
}

Test(hip, an_explicit_alignment_the_runtime_refuses_is_retried_with_the_default)
{
    ht_setup(NULL, "align:reject");
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * HT_PAGE, &vb));
    cr_assert_eq(ht_reserve_calls(), r0 + 2, "refused, then the default alignment");
    cr_assert_eq(base_of(vb) % HT_PAGE, 0);
    VT_OK(vs_vbar_fault(vb, 0, 4 * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 4 * HT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

/* ---------------------------------------------------------------- VBARs */

Test(hip, fault_unpin_and_evict_through_the_runtime)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *a, *b;
    VT_OK(vs_vbar_create(dev, 24 * HT_PAGE, &a));
    uint64_t sig_a = 0;
    VT_OK(vs_vbar_fault(a, 0, 24 * HT_PAGE, &sig_a));
    cr_assert_neq(sig_a, 0);
    VT_OK(vs_vbar_unpin(a, 0, 24 * HT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * HT_PAGE);
    vs_sim_counters c = counters(0);
    cr_assert_eq(c.phys_chunks, 24);
    cr_assert_eq(c.mapped_bytes, 24 * HT_PAGE);

    /* A newer VBAR is more important: it takes the 8 missing pages from a's top,
     * moving a's chunks (VBAR to VBAR: no release). */
    VT_OK(vs_vbar_create(dev, 16 * HT_PAGE, &b));
    VT_OK(vs_vbar_fault(b, 0, 16 * HT_PAGE, NULL));
    cr_assert_eq(loaded(b), 16 * HT_PAGE);
    cr_assert_eq(loaded(a), 16 * HT_PAGE);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(a, &wm));
    cr_assert_eq(wm, 16 * HT_PAGE);
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.pages_evicted, 8);
    c = counters(0);
    cr_assert_eq(c.mapped_bytes, 32 * HT_PAGE, "the whole device is mapped");
    cr_assert(c.phys_chunks <= 32);

    /* Above a's watermark faults fail fast; the untouched prefix keeps working. */
    cr_assert_eq(vs_vbar_fault(a, 20 * HT_PAGE, HT_PAGE, NULL), VS_NOT_RESIDENT);
    VT_OK(vs_vbar_fault(a, 0, HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 0, HT_PAGE, VS_STREAM_NONE));

    /* Prioritized again, a evicts b's top pages (b unpinned first). */
    VT_OK(vs_vbar_unpin(b, 0, 16 * HT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_prioritize(a));
    VT_OK(vs_vbar_fault(a, 16 * HT_PAGE, 8 * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 16 * HT_PAGE, 8 * HT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(loaded(a), 24 * HT_PAGE);
    cr_assert_eq(loaded(b), 8 * HT_PAGE);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(a));
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, closing_the_device_releases_everything)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    (void)vb;
    vs_scratch_t *sc;
    VT_OK(vs_scratch_create(dev, 8 * HT_PAGE, &sc));
    VT_OK(vs_scratch_resize(sc, 3 * HT_PAGE));
    vs_host_buffer_t *hb;
    VT_OK(vs_host_buffer_create(dev, 8 * HT_MIB, &hb));
    VT_OK(vs_host_buffer_resize(hb, 5 * HT_MIB));
    uintptr_t s, ev;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_record(dev, ev, s));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s));
    /* Left open on purpose: close destroys the VBAR and the buffers, and frees
     * the cached address ranges. */
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

/* ---------------------------------------------------------------- copies */

Test(hip, copies_round_trip_byte_for_byte)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    const uint64_t len = 8 * HT_MIB;
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

    const uint64_t seed = 0x41d0c0dau;
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

    /* Random unaligned pieces, alternating our stream and the null stream. */
    vt_rng rng;
    vt_rng_seed(&rng, 43);
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
    ht_assert_clean(0);
}

Test(hip, events_order_streams)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, HT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, HT_PAGE, NULL));
    vs_devptr_t base = base_of(vb);
    uint8_t *src = malloc(HT_PAGE), *dst = malloc(HT_PAGE);
    cr_assert(src && dst);
    vt_fill(src, HT_PAGE, 7);
    memset(dst, 0, HT_PAGE);

    uintptr_t s1, s2, ev;
    VT_OK(vs_stream_create(dev, &s1));
    VT_OK(vs_stream_create(dev, &s2));
    VT_OK(vs_event_create(dev, &ev));
    VT_OK(vs_event_query(dev, ev)); /* never recorded: complete */
    VT_OK(vs_memcpy_async(dev, VS_COPY_HOST_TO_DEVICE, base, (uintptr_t)src, HT_PAGE, s1));
    VT_OK(vs_event_record(dev, ev, s1));
    VT_OK(vs_stream_wait_event(dev, s2, ev));
    VT_OK(vs_memcpy_async(dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)dst, base, HT_PAGE, s2));
    VT_OK(vs_event_synchronize(dev, ev));
    VT_OK(vs_event_query(dev, ev));
    VT_OK(vs_stream_synchronize(dev, s2));
    cr_assert_eq(vt_verify(dst, HT_PAGE, 7), -1);

    VT_OK(vs_vbar_unpin(vb, 0, HT_PAGE, s2));
    VT_OK(vs_event_destroy(dev, ev));
    VT_OK(vs_stream_destroy(dev, s1));
    VT_OK(vs_stream_destroy(dev, s2));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    free(src);
    free(dst);
    ht_assert_clean(0);
}

/* ---------------------------------------------------------------- runtime failures */

Test(hip, not_ready_from_set_access_is_retried)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    ht_emu *emu = ht_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * HT_PAGE, &vb));
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 3, hipErrorNotReady), hipSuccess);
    VT_OK(vs_vbar_fault(vb, 0, HT_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.transient_retries, 3);
    cr_assert_eq(st.backend_failures, 0);
    cr_assert_eq(loaded(vb), HT_PAGE);

    /* A NOT_READY from hipMemMap is retried the same way. */
    cr_assert_eq(emu->inject(VS_SIM_OP_MAP, 0, 2, hipErrorNotReady), hipSuccess);
    VT_OK(vs_vbar_fault(vb, HT_PAGE, HT_PAGE, NULL));
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.transient_retries, 5);

    /* A NOT_READY that never clears becomes a failure, and leaves nothing behind. */
    cr_assert_eq(emu->inject(VS_SIM_OP_SET_ACCESS, 0, 1000, hipErrorNotReady), hipSuccess);
    cr_assert_eq(vs_vbar_fault(vb, 2 * HT_PAGE, HT_PAGE, NULL), VS_ERR_BACKEND);
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_geq(st.backend_failures, 1);
    cr_assert_eq(loaded(vb), 2 * HT_PAGE);
    cr_assert_eq(counters(0).phys_chunks, 2);
    cr_assert_eq(emu->inject_clear(), hipSuccess);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_fault(vb, 2 * HT_PAGE, HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 3 * HT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, hard_runtime_failures_are_backend_errors)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    ht_emu *emu = ht_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * HT_PAGE, &vb));

    cr_assert_eq(emu->inject(VS_SIM_OP_MAP, 0, 1, hipErrorUnknown), hipSuccess);
    cr_assert_eq(vs_vbar_fault(vb, 0, HT_PAGE, NULL), VS_ERR_BACKEND);
    vs_sim_counters c = counters(0);
    cr_assert_eq(c.phys_chunks, 0, "the chunk of the failed map was released");
    cr_assert_eq(c.mapped_bytes, 0);

    /* Out of memory from the runtime is a normal answer, not a failure. */
    cr_assert_eq(emu->inject(VS_SIM_OP_PHYS_CREATE, 0, 1, hipErrorOutOfMemory), hipSuccess);
    VT_EXPECT2(VS_NOT_RESIDENT, VS_OK, vs_vbar_fault(vb, 0, HT_PAGE, NULL));
    vs_stats st;
    VT_OK(vs_device_get_stats(dev, &st));
    cr_assert_eq(st.backend_failures, 1, "only the map failure counts");
    if (loaded(vb))
        VT_OK(vs_vbar_unpin(vb, 0, HT_PAGE, VS_STREAM_NONE));

    cr_assert_eq(emu->inject(VS_SIM_OP_STREAM_CREATE, 0, 1, hipErrorInvalidValue), hipSuccess);
    uintptr_t s = 0;
    cr_assert_eq(vs_stream_create(dev, &s), VS_ERR_BACKEND);

    /* A failing reservation leaves no VBAR and no reservation. */
    cr_assert_eq(emu->inject(VS_SIM_OP_VA_RESERVE, 0, 1, hipErrorOutOfMemory), hipSuccess);
    vs_vbar_t *none = NULL;
    cr_assert_neq(vs_vbar_create(dev, 64 * HT_PAGE, &none), VS_OK);
    VT_OK(vs_device_check_invariants(dev));

    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

/* ---------------------------------------------------------------- the current device */

typedef struct {
    vs_vbar_t *vb;
    uint64_t offset;
    int set_device;      /* -1: leave the thread's current device alone */
    vs_status st;
    int after;           /* the thread's current device afterwards */
} fault_job;

static void *fault_on_a_thread(void *p)
{
    fault_job *job = p;
    ht_emu *emu = ht_emu_get();
    if (job->set_device >= 0)
        emu->SetDevice(job->set_device);
    job->st = vs_vbar_fault(job->vb, job->offset, HT_PAGE, NULL);
    if (job->st == VS_OK)
        job->st = vs_vbar_unpin(job->vb, job->offset, HT_PAGE, VS_STREAM_NONE);
    job->after = -1;
    emu->GetDevice(&job->after);
    return NULL;
}

Test(hip, calls_work_from_any_thread_and_keep_its_current_device)
{
    ht_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *dev = ht_open(1, 0, 0, 0);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 4 * HT_PAGE, &vb));

    /* A thread that never touched HIP (current device 0) faults device 1's
     * pages and is left on device 0. */
    fault_job job = {vb, 0, -1, VS_ERR_INTERNAL, -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fault_on_a_thread, &job), 0);
    pthread_join(t, NULL);
    VT_OK(job.st);
    cr_assert_eq(job.after, 0);

    /* The same from a thread whose device guard chose device 0 explicitly. */
    fault_job job2 = {vb, HT_PAGE, 0, VS_ERR_INTERNAL, -1};
    cr_assert_eq(pthread_create(&t, NULL, fault_on_a_thread, &job2), 0);
    pthread_join(t, NULL);
    VT_OK(job2.st);
    cr_assert_eq(job2.after, 0);

    cr_assert_eq(counters(1).phys_chunks, 2, "both pages were created on device 1");
    cr_assert_eq(counters(0).phys_chunks, 0);

    /* Streams and the null stream act on the VBAR's device too. */
    uintptr_t s;
    VT_OK(vs_stream_create(dev, &s));
    VT_OK(vs_stream_synchronize(dev, 0));
    cr_assert_eq(counters(1).streams, 1);
    VT_OK(vs_stream_destroy(dev, s));
    int cur = -1;
    ht_emu_get()->GetDevice(&cur);
    cr_assert_eq(cur, 0, "the main thread's current device was not changed");

    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
    ht_assert_clean(1);
}

Test(hip, two_devices_open_at_once)
{
    ht_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *d0 = ht_open(0, 0, 0, 0);
    vs_device_t *d1 = ht_open(1, 0, 0, 0);
    vs_vbar_t *v0 = loaded_vbar(d0, 4);
    vs_vbar_t *v1 = loaded_vbar(d1, 6);
    cr_assert_eq(counters(0).phys_chunks, 4);
    cr_assert_eq(counters(1).phys_chunks, 6);
    cr_assert_eq(counters(1).reservations, 1);
    vs_memory_info m;
    VT_OK(vs_device_memory_info(d1, &m));
    cr_assert_eq(m.used_weights, 6 * HT_PAGE);
    VT_OK(vs_vbar_destroy(v0));
    VT_OK(vs_vbar_destroy(v1));
    VT_OK(vs_device_close(d0));
    VT_OK(vs_device_close(d1));
    ht_assert_clean(0);
    ht_assert_clean(1);
}

/* ---------------------------------------------------------------- the reservation cache */

Test(hip, freed_ranges_are_reused)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    vs_vbar_t *a, *b, *c;
    VT_OK(vs_vbar_create(dev, 8 * HT_PAGE, &a));
    vs_devptr_t base_a = base_of(a);
    cr_assert_eq(ht_reserve_calls(), r0 + 1);
    VT_OK(vs_vbar_destroy(a));
    cr_assert_eq(counters(0).reservations, 1, "kept in the cache");

    /* Same size: the cached range comes back, without hipMemAddressReserve. */
    VT_OK(vs_vbar_create(dev, 8 * HT_PAGE, &b));
    cr_assert_eq(base_of(b), base_a);
    cr_assert_eq(ht_reserve_calls(), r0 + 1);
    /* The cache is empty again: a second VBAR needs a new range. */
    VT_OK(vs_vbar_create(dev, 8 * HT_PAGE, &c));
    cr_assert_eq(ht_reserve_calls(), r0 + 2);
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_vbar_destroy(c));
    cr_assert_eq(counters(0).reservations, 2);

    /* A smaller request takes a larger range (up to twice its size)... */
    VT_OK(vs_vbar_create(dev, 6 * HT_PAGE, &a));
    cr_assert_eq(ht_reserve_calls(), r0 + 2);
    VT_OK(vs_vbar_fault(a, 0, 6 * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(a, 0, 6 * HT_PAGE, VS_STREAM_NONE));
    /* ...but a much smaller one does not pin a big range. */
    VT_OK(vs_vbar_create(dev, 2 * HT_PAGE, &b));
    cr_assert_eq(ht_reserve_calls(), r0 + 3);
    VT_OK(vs_vbar_destroy(b));
    VT_OK(vs_vbar_destroy(a));
    VT_OK(vs_device_check_invariants(dev));

    /* Close gives every cached range back. */
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, scratch_buffers_reuse_ranges_too)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    for (int i = 0; i < 20; i++) {
        vs_scratch_t *sc;
        VT_OK(vs_scratch_create(dev, 4 * HT_PAGE, &sc));
        VT_OK(vs_scratch_resize(sc, 2 * HT_PAGE));
        VT_OK(vs_scratch_destroy(sc));
    }
    /* Every round released its chunks: the first rounds measure whether the
     * memory came back (it does here), after which ranges that held chunks are
     * cached as well. */
    cr_assert_lt(ht_reserve_calls() - r0, 20, "%llu reservations for 20 rounds",
                 (unsigned long long)(ht_reserve_calls() - r0));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, the_cache_is_bounded_and_can_be_turned_off)
{
    setenv("VRAMSWAP_HIP_VA_CACHE", "2", 1);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *v[4];
    for (int i = 0; i < 4; i++)
        VT_OK(vs_vbar_create(dev, (uint64_t)(i + 1) * 4 * HT_PAGE, &v[i]));
    for (int i = 0; i < 4; i++)
        VT_OK(vs_vbar_destroy(v[i]));
    cr_assert_eq(counters(0).reservations, 2, "only two ranges are kept");
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, no_cache_when_turned_off)
{
    setenv("VRAMSWAP_HIP_VA_CACHE", "0", 1);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    for (int i = 0; i < 3; i++) {
        vs_vbar_t *vb;
        VT_OK(vs_vbar_create(dev, 8 * HT_PAGE, &vb));
        VT_OK(vs_vbar_destroy(vb));
        cr_assert_eq(counters(0).reservations, 0);
    }
    cr_assert_eq(ht_reserve_calls(), r0 + 3);
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

/* ---------------------------------------------------------------- stranded memory */

Test(hip, a_stack_that_returns_memory_caches_used_ranges)
{
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    vs_devptr_t base = base_of(vb);
    VT_OK(vs_vbar_destroy(vb)); /* 8 releases: measured, memory came back */
    cr_assert_eq(ht_free_bytes(0), 64 * HT_MIB);
    cr_assert_eq(counters(0).reservations, 1, "the range is cached");
    VT_OK(vs_vbar_create(dev, 8 * HT_PAGE, &vb));
    cr_assert_eq(base_of(vb), base);
    cr_assert_eq(ht_reserve_calls(), r0 + 1);
    VT_OK(vs_vbar_fault(vb, 0, 8 * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, 8 * HT_PAGE, VS_STREAM_NONE));
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, a_stranding_stack_gets_its_memory_back_when_a_vbar_goes)
{
    ht_setup(NULL, "strand:1");
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    uint64_t r0 = ht_reserve_calls();
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    cr_assert_eq(ht_free_bytes(0), 48 * HT_MIB);
    VT_OK(vs_vbar_destroy(vb));
    /* hipMemRelease kept the memory while the range was reserved; the backend
     * measured that, so it freed the range instead of caching it. */
    cr_assert_eq(counters(0).reservations, 0);
    cr_assert_eq(counters(0).phys_chunks, 0);
    cr_assert_eq(ht_free_bytes(0), 64 * HT_MIB);

    /* The whole device is usable again. */
    vb = loaded_vbar(dev, 32);
    cr_assert_eq(ht_reserve_calls(), r0 + 2);
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(ht_free_bytes(0), 64 * HT_MIB);

    /* A range that never held memory is still cached on such a stack. */
    VT_OK(vs_vbar_create(dev, 4 * HT_PAGE, &vb));
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(counters(0).reservations, 1);
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, stranded_memory_shows_as_used_and_eviction_under_pressure_cannot_free_it)
{
    ht_setup(NULL, "strand:1");
    setenv("VRAMSWAP_HIP_RELEASE", "strands", 1);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    /* External pressure: the core unmaps and releases 4 pages. */
    VT_OK(vs_device_free_memory(dev, 8 * HT_MIB, NULL));
    cr_assert_eq(loaded(vb), 4 * HT_PAGE);
    /* The runtime still holds them: mem_info says so, the budget counts them
     * as someone else's, and nothing claims room that is not there. */
    cr_assert_eq(ht_free_bytes(0), 48 * HT_MIB);
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    cr_assert_eq(m.used_weights, 4 * HT_PAGE);
    cr_assert_eq(m.available, 48 * HT_MIB);
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(ht_free_bytes(0), 64 * HT_MIB);
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}

Test(hip, a_wrong_verdict_is_repaired_under_pressure)
{
    /* The stack strands memory but the backend is told it does not: the used
     * range goes into the cache with its memory. When the device runs short,
     * the cache is emptied and the memory comes back. */
    ht_setup(NULL, "strand:1");
    setenv("VRAMSWAP_HIP_RELEASE", "returns", 1);
    vs_device_t *dev = ht_open(0, 0, 0, 0);
    vs_vbar_t *vb = loaded_vbar(dev, 32);
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(counters(0).reservations, 1, "cached, with its memory");
    cr_assert_eq(ht_free_bytes(0), 0);
    vb = loaded_vbar(dev, 12); /* too small to take the cached range */
    cr_assert_eq(loaded(vb), 12 * HT_PAGE);
    cr_assert_eq(counters(0).phys_chunks, 12);
    VT_OK(vs_vbar_destroy(vb));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(0);
}
