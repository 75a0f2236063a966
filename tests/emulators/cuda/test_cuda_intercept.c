/* CUDA allocation interception on the libcuda emulator: the hook engine
 * patches the emulator's real exported functions (cuMemAlloc_v2 & co.), and
 * calls through pointers taken with dlsym -- as torch's runtime holds them --
 * are counted, make room by evicting VBAR pages, and are refused beyond the
 * limit. Skipped when the library was built without the hook engine. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(intercept, .init = et_init, .timeout = 60);

#define LIMIT (32 * ET_MIB) /* 16 pages of the 64 MiB emulated device */

/* Open device 0 intercepting under LIMIT (skips the test without hooks) and
 * make its context current on this thread, as torch would. */
static vs_device_t *open_intercepting(uint64_t limit)
{
    vs_device_t *dev = et_open(0, VS_DEVICE_INTERCEPT, limit, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    if (!p.intercepting) {
        VT_OK(vs_device_close(dev));
        cr_skip_test("interception unavailable in this build (no hook engine)");
    }
    et_use_ctx(0);
    return dev;
}

static vs_memory_info meminfo(vs_device_t *dev)
{
    vs_memory_info m;
    VT_OK(vs_device_memory_info(dev, &m));
    return m;
}

static vs_stats stats(vs_device_t *dev)
{
    vs_stats s;
    VT_OK(vs_device_get_stats(dev, &s));
    return s;
}

static uint64_t loaded(vs_vbar_t *vb)
{
    uint64_t b = 0;
    VT_OK(vs_vbar_loaded_size(vb, &b));
    return b;
}

/* A VBAR of `pages` pages, all resident and unpinned. */
static vs_vbar_t *loaded_vbar(vs_device_t *dev, uint64_t pages)
{
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, pages * ET_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, pages * ET_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, pages * ET_PAGE, VS_STREAM_NONE));
    return vb;
}

static void close_all(vs_device_t *dev)
{
    et_release_ctx(0);
    VT_OK(vs_device_check_invariants(dev));
    VT_OK(vs_device_close(dev));
    et_assert_clean(0);
}

Test(intercept, cuMemAlloc_is_counted_and_freed)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 8 * ET_MIB), CUDA_SUCCESS);
    cr_assert_neq(p, 0);
    cr_assert_eq(meminfo(dev).used_intercepted, 8 * ET_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 1);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(stats(dev).intercepted_frees, 1);
    close_all(dev);
}

Test(intercept, allocations_evict_unpinned_vbar_pages)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb = loaded_vbar(dev, 16); /* the whole budget */
    cr_assert_eq(meminfo(dev).available, 0);
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 8 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(loaded(vb), 12 * ET_PAGE, "4 pages made room");
    cr_assert_eq(stats(dev).pages_evicted, 4);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(vb, &wm));
    cr_assert_eq(wm, 12 * ET_PAGE);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev);
}

Test(intercept, beyond_the_limit_the_driver_is_not_called)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 16 * ET_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 16 * ET_PAGE, NULL)); /* pinned: nothing evictable */
    uint64_t driver_calls = emu->calls(VS_SIM_OP_ALLOC);
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 4 * ET_MIB), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(emu->MemAllocAsync(&p, 4 * ET_MIB, 0), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(emu->calls(VS_SIM_OP_ALLOC), driver_calls, "refused before the driver");
    cr_assert_eq(stats(dev).intercepted_oom, 2);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(loaded(vb), 16 * ET_PAGE, "pinned pages are never evicted");

    /* Unpinned, the same allocation fits by evicting. */
    VT_OK(vs_vbar_unpin(vb, 0, 16 * ET_PAGE, VS_STREAM_NONE));
    cr_assert_eq(emu->MemAlloc(&p, 4 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev);
}

Test(intercept, driver_out_of_memory_evicts_and_retries_once)
{
    vs_device_t *dev = open_intercepting(0); /* no limit: the driver decides */
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    cr_assert_eq(emu->inject(VS_SIM_OP_ALLOC, 0, 1, CUDA_ERROR_OUT_OF_MEMORY), CUDA_SUCCESS);
    uint64_t before = emu->calls(VS_SIM_OP_ALLOC);
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 2 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(emu->calls(VS_SIM_OP_ALLOC), before + 2, "one failure, one retry");
    cr_assert_lt(loaded(vb), 8 * ET_PAGE, "the driver's OOM evicted");
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);

    /* Twice out of memory: the error reaches the caller, nothing is counted. */
    cr_assert_eq(emu->inject(VS_SIM_OP_ALLOC, 0, 2, CUDA_ERROR_OUT_OF_MEMORY), CUDA_SUCCESS);
    cr_assert_eq(emu->MemAlloc(&p, 2 * ET_MIB), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev);
}

Test(intercept, stream_ordered_allocations_and_ptsz_variants)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    CUdeviceptr a = 0, b = 0, c = 0;
    cr_assert_eq(emu->MemAllocAsync(&a, 2 * ET_MIB, 0), CUDA_SUCCESS);
    cr_assert_eq(emu->MemAllocAsync_ptsz(&b, 4 * ET_MIB, CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    cr_assert_eq(emu->MemAllocFromPoolAsync(&c, 6 * ET_MIB, (CUmemoryPool)(uintptr_t)1, 0),
                 CUDA_SUCCESS);
    cr_assert_eq(emu->ptsz_calls(), 1);
    cr_assert_eq(meminfo(dev).used_intercepted, 12 * ET_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 3);
    cr_assert_eq(emu->MemFreeAsync_ptsz(a, 0), CUDA_SUCCESS);
    cr_assert_eq(emu->MemFreeAsync(b, 0), CUDA_SUCCESS);
    cr_assert_eq(emu->MemFree(c), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(stats(dev).intercepted_frees, 3);
    close_all(dev);
}

Test(intercept, ptsz_aliases_are_hooked_once)
{
    et_setup(NULL, "ptsz:alias");
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    void *plain = NULL, *ptsz = NULL;
    cr_assert_eq(emu->GetProcAddress_v2("cuMemAllocAsync", &plain, 12000, 0, NULL), CUDA_SUCCESS);
    cr_assert_eq(emu->GetProcAddress_v2("cuMemAllocAsync", &ptsz, 12000,
                                        CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, NULL),
                 CUDA_SUCCESS);
    cr_assert_eq(plain, ptsz);
    CUdeviceptr a = 0;
    cr_assert_eq(emu->MemAllocAsync(&a, 2 * ET_MIB, 0), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 2 * ET_MIB);
    cr_assert_eq(emu->MemFreeAsync(a, 0), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    close_all(dev);
}

Test(intercept, a_driver_without_async_allocations_hooks_the_rest)
{
    /* A CUDA 11.0 driver: cuGetProcAddress finds no cuMemAllocAsync, so only
     * the other entry points are hooked and stream-ordered calls are not seen. */
    et_setup(NULL, "driver:11000");
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    CUdeviceptr p = 0, q = 0;
    cr_assert_eq(emu->MemAlloc(&p, 2 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(emu->MemAllocAsync(&q, 4 * ET_MIB, 0), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 2 * ET_MIB);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    cr_assert_eq(emu->MemFreeAsync(q, 0), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    close_all(dev);
}

Test(intercept, expandable_segments_cuMemCreate_is_counted)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    et_emu *emu = et_emu_get();
    vs_vbar_t *vb = loaded_vbar(dev, 16);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    CUmemGenericAllocationHandle h = 0;
    cr_assert_eq(emu->MemCreate(&h, 4 * ET_MIB, &prop, 0), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 4 * ET_MIB);
    cr_assert_eq(loaded(vb), 14 * ET_PAGE, "2 pages made room");
    /* The backend's own cuMemCreate calls (VBAR pages) were not counted. */
    cr_assert_eq(stats(dev).intercepted_allocs, 1);
    cr_assert_eq(meminfo(dev).used_weights, 14 * ET_PAGE);
    cr_assert_eq(emu->MemRelease(h), CUDA_SUCCESS);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev);
}

Test(intercept, own_pages_are_never_counted_as_intercepted)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    vs_scratch_t *sc;
    VT_OK(vs_scratch_create(dev, 4 * ET_PAGE, &sc));
    VT_OK(vs_scratch_resize(sc, 4 * ET_PAGE));
    vs_stats s = stats(dev);
    cr_assert_eq(s.intercepted_allocs, 0);
    cr_assert_eq(s.intercepted_frees, 0);
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_intercepted, 0);
    cr_assert_eq(m.used_weights, 8 * ET_PAGE);
    cr_assert_eq(m.used_scratch, 4 * ET_PAGE);
    VT_OK(vs_scratch_destroy(sc));
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(stats(dev).intercepted_frees, 0);
    close_all(dev);
}

Test(intercept, closing_the_device_removes_the_hooks)
{
    et_emu *emu = et_emu_get();
    uint8_t before[16], during[16], after[16];
    memcpy(before, (const void *)(uintptr_t)emu->MemAlloc, sizeof before);
    vs_device_t *dev = open_intercepting(LIMIT);
    memcpy(during, (const void *)(uintptr_t)emu->MemAlloc, sizeof during);
    cr_assert_neq(memcmp(before, during, sizeof before), 0, "cuMemAlloc_v2 is patched");
    close_all(dev);
    memcpy(after, (const void *)(uintptr_t)emu->MemAlloc, sizeof after);
    cr_assert_eq(memcmp(before, after, sizeof before), 0, "cuMemAlloc_v2 is restored");

    /* Reopened without interception: allocations are not seen any more. */
    vs_device_t *plain = et_open(0, 0, LIMIT, 0);
    et_use_ctx(0);
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 4 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(meminfo(plain).used_intercepted, 0);
    cr_assert_eq(stats(plain).intercepted_allocs, 0);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);

    /* And interception can be installed again. */
    VT_OK(vs_device_close(plain));
    vs_device_t *again = et_open(0, VS_DEVICE_INTERCEPT, LIMIT, 0);
    vs_device_props props;
    VT_OK(vs_device_get_props(again, &props));
    cr_assert_eq(props.intercepting, 1);
    cr_assert_eq(emu->MemAlloc(&p, 4 * ET_MIB), CUDA_SUCCESS);
    cr_assert_eq(meminfo(again).used_intercepted, 4 * ET_MIB);
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    close_all(again);
}

/* Threads allocating and freeing while the main thread faults VBAR pages. */
typedef struct {
    int seed;
    int failures;
} churn_job;

static void *churn(void *p)
{
    churn_job *job = p;
    et_emu *emu = et_emu_get();
    et_use_ctx(0);
    vt_rng rng;
    vt_rng_seed(&rng, (uint64_t)job->seed);
    CUdeviceptr live[4] = {0};
    for (int i = 0; i < 400; i++) {
        int k = (int)vt_rng_below(&rng, 4);
        if (live[k]) {
            if (emu->MemFree(live[k]) != CUDA_SUCCESS)
                job->failures++;
            live[k] = 0;
        } else {
            CUresult r = (i & 1) ? emu->MemAlloc(&live[k], ET_MIB)
                                 : emu->MemAllocAsync(&live[k], ET_MIB, 0);
            if (r != CUDA_SUCCESS && r != CUDA_ERROR_OUT_OF_MEMORY)
                job->failures++;
            if (r != CUDA_SUCCESS)
                live[k] = 0;
        }
    }
    for (int k = 0; k < 4; k++)
        if (live[k] && emu->MemFree(live[k]) != CUDA_SUCCESS)
            job->failures++;
    et_release_ctx(0);
    return NULL;
}

Test(intercept, concurrent_allocations_and_faults)
{
    vs_device_t *dev = open_intercepting(LIMIT);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 16 * ET_PAGE, &vb));
    enum { N = 4 };
    pthread_t t[N];
    churn_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (churn_job){i + 1, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, churn, &jobs[i]), 0);
    }
    for (int round = 0; round < 200; round++) {
        uint64_t page = (uint64_t)(round % 16);
        vs_status st = vs_vbar_fault(vb, page * ET_PAGE, ET_PAGE, NULL);
        cr_assert(st == VS_OK || st == VS_NOT_RESIDENT, "fault: %s", vs_status_name(st));
        if (st == VS_OK)
            VT_OK(vs_vbar_unpin(vb, page * ET_PAGE, ET_PAGE, VS_STREAM_NONE));
        if (round % 16 == 15)
            VT_OK(vs_vbar_prioritize(vb));
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(jobs[i].failures, 0, "thread %d", i);
    }
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    vs_stats s = stats(dev);
    cr_assert_eq(s.intercepted_allocs, s.intercepted_frees);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev);
}

Test(intercept, allocations_are_attributed_to_their_device)
{
    et_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *d0 = open_intercepting(LIMIT); /* context of device 0 current */
    vs_device_t *d1 = et_open(1, VS_DEVICE_INTERCEPT, LIMIT, 0);
    et_emu *emu = et_emu_get();

    /* Allocated under device 1's context... */
    CUcontext ctx0 = NULL, ctx1 = NULL;
    cr_assert_eq(emu->CtxGetCurrent(&ctx0), CUDA_SUCCESS);
    cr_assert_eq(emu->DevicePrimaryCtxRetain(&ctx1, 1), CUDA_SUCCESS);
    cr_assert_eq(emu->CtxSetCurrent(ctx1), CUDA_SUCCESS);
    CUdeviceptr p = 0;
    cr_assert_eq(emu->MemAlloc(&p, 6 * ET_MIB), CUDA_SUCCESS);
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 1;
    CUmemGenericAllocationHandle h = 0;
    cr_assert_eq(emu->MemCreate(&h, 4 * ET_MIB, &prop, 0), CUDA_SUCCESS);
    cr_assert_eq(emu->CtxSetCurrent(ctx0), CUDA_SUCCESS);
    cr_assert_eq(emu->DevicePrimaryCtxRelease(1), CUDA_SUCCESS);
    cr_assert_eq(meminfo(d1).used_intercepted, 10 * ET_MIB);
    cr_assert_eq(meminfo(d0).used_intercepted, 0);

    /* ...freed under device 0's: still uncounted from device 1. */
    cr_assert_eq(emu->MemFree(p), CUDA_SUCCESS);
    cr_assert_eq(emu->MemRelease(h), CUDA_SUCCESS);
    cr_assert_eq(meminfo(d1).used_intercepted, 0);
    cr_assert_eq(stats(d1).intercepted_frees, 2);
    cr_assert_eq(stats(d0).intercepted_frees, 0);

    VT_OK(vs_device_close(d1));
    close_all(d0);
    et_assert_clean(1);
}
