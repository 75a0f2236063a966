/* HIP allocation interception on the libamdhip64 emulator: the hook engine
 * patches the emulator's real exported functions (hipMalloc & co.), and calls
 * through pointers taken with dlsym -- as torch's hipified runtime calls
 * them -- are counted, make room by evicting VBAR pages, and are refused
 * beyond the limit. Skipped when the library was built without the hook
 * engine. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "emu_test.h"

TestSuite(intercept, .init = ht_init, .timeout = 60);

#define LIMIT (32 * HT_MIB) /* 16 pages of the 64 MiB emulated device */

/* Open device `ordinal` intercepting under `limit` (skips the test without hooks). */
static vs_device_t *open_intercepting(int ordinal, uint64_t limit)
{
    vs_device_t *dev = ht_open(ordinal, VS_DEVICE_INTERCEPT, limit, 0);
    vs_device_props p;
    VT_OK(vs_device_get_props(dev, &p));
    if (!p.intercepting) {
        VT_OK(vs_device_close(dev));
        cr_skip_test("interception unavailable in this build (no hook engine)");
    }
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
    VT_OK(vs_vbar_create(dev, pages * HT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, pages * HT_PAGE, NULL));
    VT_OK(vs_vbar_unpin(vb, 0, pages * HT_PAGE, VS_STREAM_NONE));
    return vb;
}

static void close_all(vs_device_t *dev, int ordinal)
{
    VT_OK(vs_device_check_invariants(dev));
    VT_OK(vs_device_close(dev));
    ht_assert_clean(ordinal);
}

Test(intercept, hipMalloc_is_counted_and_hipFree_uncounts)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    ht_emu *emu = ht_emu_get();
    void *p = NULL;
    cr_assert_eq(emu->Malloc(&p, 8 * HT_MIB), hipSuccess);
    cr_assert_not_null(p);
    cr_assert_eq(meminfo(dev).used_intercepted, 8 * HT_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 1);
    cr_assert_eq(emu->Free(p), hipSuccess);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(stats(dev).intercepted_frees, 1);
    /* hipFree(NULL) is passed through untouched. */
    cr_assert_eq(emu->Free(NULL), hipSuccess);
    cr_assert_eq(stats(dev).intercepted_frees, 1);
    close_all(dev, 0);
}

Test(intercept, allocations_evict_unpinned_vbar_pages)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    ht_emu *emu = ht_emu_get();
    vs_vbar_t *vb = loaded_vbar(dev, 16); /* the whole budget */
    cr_assert_eq(meminfo(dev).available, 0);
    void *p = NULL;
    cr_assert_eq(emu->Malloc(&p, 8 * HT_MIB), hipSuccess);
    cr_assert_eq(loaded(vb), 12 * HT_PAGE, "4 pages made room");
    cr_assert_eq(stats(dev).pages_evicted, 4);
    uint64_t wm = 0;
    VT_OK(vs_vbar_get_watermark(vb, &wm));
    cr_assert_eq(wm, 12 * HT_PAGE);
    cr_assert_eq(emu->Free(p), hipSuccess);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, 0);
}

Test(intercept, beyond_the_limit_the_runtime_is_not_called)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    ht_emu *emu = ht_emu_get();
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 16 * HT_PAGE, &vb));
    VT_OK(vs_vbar_fault(vb, 0, 16 * HT_PAGE, NULL)); /* pinned: nothing evictable */
    uint64_t runtime_calls = emu->calls(VS_SIM_OP_ALLOC);
    void *p = NULL;
    cr_assert_eq(emu->Malloc(&p, 4 * HT_MIB), hipErrorOutOfMemory);
    cr_assert_eq(emu->ExtMallocWithFlags(&p, 4 * HT_MIB, hipDeviceMallocDefault), hipErrorOutOfMemory);
    cr_assert_eq(emu->MallocAsync(&p, 4 * HT_MIB, NULL), hipErrorOutOfMemory);
    cr_assert_eq(emu->calls(VS_SIM_OP_ALLOC), runtime_calls, "refused before the runtime");
    cr_assert_eq(stats(dev).intercepted_oom, 3);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(loaded(vb), 16 * HT_PAGE, "pinned pages are never evicted");

    /* Unpinned, the same allocation fits by evicting. */
    VT_OK(vs_vbar_unpin(vb, 0, 16 * HT_PAGE, VS_STREAM_NONE));
    cr_assert_eq(emu->Malloc(&p, 4 * HT_MIB), hipSuccess);
    cr_assert_eq(emu->Free(p), hipSuccess);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, 0);
}

Test(intercept, runtime_out_of_memory_evicts_and_retries_once)
{
    vs_device_t *dev = open_intercepting(0, 0); /* no limit: the runtime decides */
    ht_emu *emu = ht_emu_get();
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    cr_assert_eq(emu->inject(VS_SIM_OP_ALLOC, 0, 1, hipErrorOutOfMemory), hipSuccess);
    uint64_t before = emu->calls(VS_SIM_OP_ALLOC);
    void *p = NULL;
    cr_assert_eq(emu->Malloc(&p, 2 * HT_MIB), hipSuccess);
    cr_assert_eq(emu->calls(VS_SIM_OP_ALLOC), before + 2, "one failure, one retry");
    cr_assert_lt(loaded(vb), 8 * HT_PAGE, "the runtime's OOM evicted");
    cr_assert_eq(emu->Free(p), hipSuccess);

    /* Twice out of memory: the error reaches the caller, nothing is counted. */
    cr_assert_eq(emu->inject(VS_SIM_OP_ALLOC, 0, 2, hipErrorOutOfMemory), hipSuccess);
    cr_assert_eq(emu->Malloc(&p, 2 * HT_MIB), hipErrorOutOfMemory);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    VT_OK(vs_vbar_destroy(vb));
    close_all(dev, 0);
}

Test(intercept, ext_and_stream_ordered_allocations)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    ht_emu *emu = ht_emu_get();
    void *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(emu->ExtMallocWithFlags(&a, 2 * HT_MIB, hipDeviceMallocFinegrained), hipSuccess);
    cr_assert_eq(emu->MallocAsync(&b, 4 * HT_MIB, NULL), hipSuccess);
    cr_assert_eq(emu->MallocAsync(&c, 6 * HT_MIB, hipStreamPerThread), hipSuccess);
    cr_assert_eq(meminfo(dev).used_intercepted, 12 * HT_MIB);
    cr_assert_eq(stats(dev).intercepted_allocs, 3);
    cr_assert_eq(emu->FreeAsync(a, NULL), hipSuccess);
    cr_assert_eq(emu->Free(b), hipSuccess);
    cr_assert_eq(emu->FreeAsync(c, hipStreamPerThread), hipSuccess);
    cr_assert_eq(meminfo(dev).used_intercepted, 0);
    cr_assert_eq(stats(dev).intercepted_frees, 3);
    close_all(dev, 0);
}

Test(intercept, own_pages_are_never_counted_as_intercepted)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    vs_vbar_t *vb = loaded_vbar(dev, 8);
    vs_scratch_t *sc;
    VT_OK(vs_scratch_create(dev, 4 * HT_PAGE, &sc));
    VT_OK(vs_scratch_resize(sc, 4 * HT_PAGE));
    vs_stats s = stats(dev);
    cr_assert_eq(s.intercepted_allocs, 0);
    cr_assert_eq(s.intercepted_frees, 0);
    vs_memory_info m = meminfo(dev);
    cr_assert_eq(m.used_intercepted, 0);
    cr_assert_eq(m.used_weights, 8 * HT_PAGE);
    cr_assert_eq(m.used_scratch, 4 * HT_PAGE);
    VT_OK(vs_scratch_destroy(sc));
    VT_OK(vs_vbar_destroy(vb));
    cr_assert_eq(stats(dev).intercepted_frees, 0);
    close_all(dev, 0);
}

Test(intercept, closing_the_device_removes_the_hooks)
{
    ht_emu *emu = ht_emu_get();
    uint8_t before[16], during[16], after[16];
    memcpy(before, (const void *)(uintptr_t)emu->Malloc, sizeof before);
    vs_device_t *dev = open_intercepting(0, LIMIT);
    memcpy(during, (const void *)(uintptr_t)emu->Malloc, sizeof during);
    cr_assert_neq(memcmp(before, during, sizeof before), 0, "hipMalloc is patched");
    close_all(dev, 0);
    memcpy(after, (const void *)(uintptr_t)emu->Malloc, sizeof after);
    cr_assert_eq(memcmp(before, after, sizeof before), 0, "hipMalloc is restored");

    /* Reopened without interception: allocations are not seen any more. */
    vs_device_t *plain = ht_open(0, 0, LIMIT, 0);
    void *p = NULL;
    cr_assert_eq(emu->Malloc(&p, 4 * HT_MIB), hipSuccess);
    cr_assert_eq(meminfo(plain).used_intercepted, 0);
    cr_assert_eq(stats(plain).intercepted_allocs, 0);
    cr_assert_eq(emu->Free(p), hipSuccess);

    /* And interception can be installed again. */
    VT_OK(vs_device_close(plain));
    vs_device_t *again = open_intercepting(0, LIMIT);
    cr_assert_eq(emu->Malloc(&p, 4 * HT_MIB), hipSuccess);
    cr_assert_eq(meminfo(again).used_intercepted, 4 * HT_MIB);
    cr_assert_eq(emu->Free(p), hipSuccess);
    close_all(again, 0);
}

/* Threads allocating and freeing while the main thread faults VBAR pages. */
typedef struct {
    int seed;
    int failures;
} churn_job;

static void *churn(void *p)
{
    churn_job *job = p;
    ht_emu *emu = ht_emu_get();
    vt_rng rng;
    vt_rng_seed(&rng, (uint64_t)job->seed);
    void *live[4] = {0};
    for (int i = 0; i < 400; i++) {
        int k = (int)vt_rng_below(&rng, 4);
        if (live[k]) {
            if (emu->Free(live[k]) != hipSuccess)
                job->failures++;
            live[k] = NULL;
        } else {
            hipError_t r = (i & 1) ? emu->Malloc(&live[k], HT_MIB)
                                   : emu->ExtMallocWithFlags(&live[k], HT_MIB, 0);
            if (r != hipSuccess && r != hipErrorOutOfMemory)
                job->failures++;
            if (r != hipSuccess)
                live[k] = NULL;
        }
    }
    for (int k = 0; k < 4; k++)
        if (live[k] && emu->Free(live[k]) != hipSuccess)
            job->failures++;
    return NULL;
}

Test(intercept, concurrent_allocations_and_faults)
{
    vs_device_t *dev = open_intercepting(0, LIMIT);
    vs_vbar_t *vb;
    VT_OK(vs_vbar_create(dev, 16 * HT_PAGE, &vb));
    enum { N = 4 };
    pthread_t t[N];
    churn_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (churn_job){i + 1, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, churn, &jobs[i]), 0);
    }
    for (int round = 0; round < 200; round++) {
        uint64_t page = (uint64_t)(round % 16);
        vs_status st = vs_vbar_fault(vb, page * HT_PAGE, HT_PAGE, NULL);
        cr_assert(st == VS_OK || st == VS_NOT_RESIDENT, "fault: %s", vs_status_name(st));
        if (st == VS_OK)
            VT_OK(vs_vbar_unpin(vb, page * HT_PAGE, HT_PAGE, VS_STREAM_NONE));
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
    close_all(dev, 0);
}

Test(intercept, allocations_are_attributed_to_the_current_device)
{
    ht_setup("devices:2,memory:64M,granularity:64K,page:2M", NULL);
    vs_device_t *d0 = open_intercepting(0, LIMIT);
    vs_device_t *d1 = open_intercepting(1, LIMIT);
    ht_emu *emu = ht_emu_get();

    /* Allocated with device 1 current (torch's device guard)... */
    cr_assert_eq(emu->SetDevice(1), hipSuccess);
    void *p = NULL, *q = NULL;
    cr_assert_eq(emu->Malloc(&p, 6 * HT_MIB), hipSuccess);
    cr_assert_eq(emu->ExtMallocWithFlags(&q, 4 * HT_MIB, 0), hipSuccess);
    cr_assert_eq(meminfo(d1).used_intercepted, 10 * HT_MIB);
    cr_assert_eq(meminfo(d0).used_intercepted, 0);

    /* ...freed with device 0 current: still uncounted from device 1. */
    cr_assert_eq(emu->SetDevice(0), hipSuccess);
    cr_assert_eq(emu->Free(p), hipSuccess);
    cr_assert_eq(emu->FreeAsync(q, NULL), hipSuccess);
    cr_assert_eq(meminfo(d1).used_intercepted, 0);
    cr_assert_eq(stats(d1).intercepted_frees, 2);
    cr_assert_eq(stats(d0).intercepted_frees, 0);

    VT_OK(vs_device_close(d1));
    close_all(d0, 0);
    ht_assert_clean(1);
}
