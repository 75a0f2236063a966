/* Group "stress" (short): threads faulting, copying into, and unpinning
 * random ranges of three VBARs while another thread reclaims, frees, reorders
 * and resizes a scratch buffer, all on one device under a budget smaller than
 * the VBARs. Afterwards the invariants hold, no pin is left, every successful
 * fault was matched by an unpin, and data written into pinned pages always
 * read back intact (a pinned page was never evicted under a copy). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "suite.h"

#define STRESS_WORKERS 3
#define STRESS_VBARS 3
#define STRESS_PAGES 16  /* per VBAR */
#define STRESS_BUDGET 24 /* pages, for 48 pages of VBARs */
#define STRESS_MS 1500.0
#define STRESS_SLOT 64   /* bytes each worker writes, at worker * 64 in a page */

typedef struct stress_shared {
    vs_device_t *dev;
    uint64_t page;
    vs_vbar_t *vbars[STRESS_VBARS];
    vs_devptr_t bases[STRESS_VBARS];
    vs_scratch_t *scratch;
    double deadline;            /* vsc_now_ms() */
    atomic_int stop;
    pthread_mutex_t lock;
    char error[512];            /* the first error of any thread */
} stress_shared;

typedef struct stress_thread {
    stress_shared *sh;
    int id;
    uint64_t seed;
    uint64_t faults_ok, not_resident, unpins, copies, ops;
} stress_thread;

/* Record the first error (st VS_OK: a failed check, no status) and stop everyone. */
static void stress_error(stress_shared *sh, const char *what, vs_status st)
{
    pthread_mutex_lock(&sh->lock);
    if (!sh->error[0]) {
        if (st == VS_OK)
            snprintf(sh->error, sizeof sh->error, "%s", what);
        else
            snprintf(sh->error, sizeof sh->error, "%s gave %s", what, vs_status_name(st));
    }
    pthread_mutex_unlock(&sh->lock);
    atomic_store(&sh->stop, 1);
}

static bool running(stress_shared *sh)
{
    return !atomic_load(&sh->stop) && vsc_now_ms() < sh->deadline;
}

/* Check that pages [first, first + n) are resident and pinned (we hold a pin). */
static bool held(stress_shared *sh, vs_vbar_t *v, uint64_t first, uint64_t n)
{
    uint8_t map[STRESS_PAGES];
    size_t count = 0;
    if (vs_vbar_residency(v, map, STRESS_PAGES, &count) != VS_OK || count != STRESS_PAGES)
        return false;
    for (uint64_t i = first; i < first + n; i++)
        if ((map[i] & (VS_PAGE_RESIDENT | VS_PAGE_PINNED)) != (VS_PAGE_RESIDENT | VS_PAGE_PINNED))
            return false;
    return true;
}

static void *worker(void *arg)
{
    stress_thread *w = arg;
    stress_shared *sh = w->sh;
    vsc_rng rng;
    vsc_rng_init(&rng, w->seed);
    uintptr_t stream = 0;
    vs_status st = vs_stream_create(sh->dev, &stream);
    if (st != VS_OK) {
        stress_error(sh, "vs_stream_create", st);
        return NULL;
    }
    uint8_t out[STRESS_SLOT], back[STRESS_SLOT];
    while (running(sh)) {
        int vi = (int)vsc_rng_below(&rng, STRESS_VBARS);
        vs_vbar_t *v = sh->vbars[vi];
        uint64_t first = vsc_rng_below(&rng, STRESS_PAGES);
        uint64_t maxn = STRESS_PAGES - first < 4 ? STRESS_PAGES - first : 4;
        uint64_t n = 1 + vsc_rng_below(&rng, maxn);
        st = vs_vbar_fault(v, first * sh->page, n * sh->page, NULL);
        if (st == VS_NOT_RESIDENT) {
            w->not_resident++;
            if (vsc_rng_below(&rng, 4) == 0 && (st = vs_vbar_prioritize(v)) != VS_OK) {
                stress_error(sh, "vs_vbar_prioritize", st);
                break;
            }
            continue;
        }
        if (st != VS_OK) {
            stress_error(sh, "vs_vbar_fault", st);
            break;
        }
        w->faults_ok++;
        if (!held(sh, v, first, n)) {
            stress_error(sh, "a faulted range was not resident and pinned", VS_OK);
            break;
        }
        uintptr_t unpin_stream = VS_STREAM_NONE;
        if (vsc_rng_below(&rng, 2)) { /* write our slot of the first page, read it back */
            vs_devptr_t at = sh->bases[vi] + first * sh->page + (uint64_t)w->id * STRESS_SLOT;
            vsc_fill_random(&rng, out, sizeof out);
            memset(back, 0, sizeof back);
            st = vs_memcpy_async(sh->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)at, (uintptr_t)out, sizeof out, stream);
            if (st == VS_OK)
                st = vs_memcpy_async(sh->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)back, (uintptr_t)at, sizeof back,
                                     stream);
            if (st == VS_OK)
                st = vs_stream_synchronize(sh->dev, stream);
            if (st != VS_OK) {
                stress_error(sh, "a copy into pinned pages", st);
                break;
            }
            if (memcmp(out, back, sizeof out) != 0) {
                stress_error(sh, "data written into a pinned page did not read back", VS_OK);
                break;
            }
            w->copies++;
            unpin_stream = stream;
        }
        st = vs_vbar_unpin(v, first * sh->page, n * sh->page, unpin_stream);
        if (st != VS_OK) {
            stress_error(sh, "vs_vbar_unpin", st);
            break;
        }
        w->unpins++;
    }
    st = vs_stream_synchronize(sh->dev, stream);
    if (st == VS_OK)
        st = vs_stream_destroy(sh->dev, stream);
    if (st != VS_OK)
        stress_error(sh, "destroying the worker's stream", st);
    return NULL;
}

static void *pressure(void *arg)
{
    stress_thread *w = arg;
    stress_shared *sh = w->sh;
    vsc_rng rng;
    vsc_rng_init(&rng, w->seed);
    const uint64_t p = sh->page;
    while (running(sh)) {
        vs_status st;
        const char *what;
        uint64_t freed;
        vs_memory_info m;
        switch (vsc_rng_below(&rng, 7)) {
        case 0:
            what = "vs_device_reclaim";
            st = vs_device_reclaim(sh->dev, (1 + vsc_rng_below(&rng, 6)) * p, &freed);
            if (st == VS_ERR_OUT_OF_MEMORY)
                st = VS_OK;
            break;
        case 1:
            what = "vs_device_free_memory";
            st = vs_device_free_memory(sh->dev, (1 + vsc_rng_below(&rng, 3)) * p, &freed);
            break;
        case 2:
            what = "vs_vbar_free_memory";
            st = vs_vbar_free_memory(sh->vbars[vsc_rng_below(&rng, STRESS_VBARS)], p, &freed);
            break;
        case 3:
            what = "vs_vbar_deprioritize";
            st = vs_vbar_deprioritize(sh->vbars[vsc_rng_below(&rng, STRESS_VBARS)]);
            break;
        case 4:
            what = "vs_device_check_invariants";
            st = vs_device_check_invariants(sh->dev);
            break;
        case 5:
            what = "vs_scratch_resize";
            st = vs_scratch_resize(sh->scratch, vsc_rng_below(&rng, 4) * p);
            if (st == VS_ERR_OUT_OF_MEMORY)
                st = VS_OK;
            break;
        default:
            what = "vs_device_memory_info";
            st = vs_device_memory_info(sh->dev, &m);
            break;
        }
        if (st != VS_OK) {
            stress_error(sh, what, st);
            break;
        }
        w->ops++;
    }
    return NULL;
}

static void threads(vsc_ctx *t)
{
    vsc_budget_pages(t, STRESS_BUDGET);
    stress_shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.lock, NULL);
    sh.dev = t->dev;
    sh.page = t->page;
    for (int i = 0; i < STRESS_VBARS; i++) {
        sh.vbars[i] = vsc_vbar(t, STRESS_PAGES);
        sh.bases[i] = vsc_base(t, sh.vbars[i]);
    }
    VSC_OK(t, vs_scratch_create(t->dev, 4 * t->page, &sh.scratch));
    vs_stats s0 = vsc_stats(t);
    sh.deadline = vsc_now_ms() + STRESS_MS;

    stress_thread th[STRESS_WORKERS + 1];
    pthread_t tid[STRESS_WORKERS + 1];
    memset(th, 0, sizeof th);
    int started = 0;
    for (int i = 0; i <= STRESS_WORKERS; i++) {
        th[i].sh = &sh;
        th[i].id = i;
        th[i].seed = t->seed + (uint64_t)i * 7919;
        if (pthread_create(&tid[i], NULL, i < STRESS_WORKERS ? worker : pressure, &th[i]) != 0) {
            atomic_store(&sh.stop, 1);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    VSC_CHECKF(t, started == STRESS_WORKERS + 1, "could only start %d threads", started);
    VSC_CHECKF(t, !sh.error[0], "%s", sh.error);

    uint64_t faults = 0, unpins = 0, copies = 0, nr = 0;
    for (int i = 0; i < STRESS_WORKERS; i++) {
        faults += th[i].faults_ok;
        unpins += th[i].unpins;
        copies += th[i].copies;
        nr += th[i].not_resident;
    }
    vsc_note(t, "%llu faults, %llu not resident, %llu copies, %llu pressure operations", (unsigned long long)faults,
             (unsigned long long)nr, (unsigned long long)copies, (unsigned long long)th[STRESS_WORKERS].ops);
    VSC_EQ(t, faults, unpins);
    VSC_CHECKF(t, faults > 0, "no fault succeeded in %.0f ms", STRESS_MS);
    VSC_OK(t, vs_device_check_invariants(t->dev));
    vs_stats s1 = vsc_stats(t);
    VSC_EQ(t, s1.faults - s0.faults, faults + nr);
    for (int i = 0; i < STRESS_VBARS; i++) {
        VSC_EQ(t, vsc_count_pages(t, sh.vbars[i], VS_PAGE_PINNED), 0);
        VSC_OK(t, vs_vbar_destroy(sh.vbars[i]));
    }
    VSC_OK(t, vs_scratch_destroy(sh.scratch));
    vs_memory_info m = vsc_meminfo(t);
    VSC_EQ(t, m.used_weights, 0);
    VSC_EQ(t, m.used_scratch, 0);
    pthread_mutex_destroy(&sh.lock);
}

static const vsc_test tests[] = {
    {"threads", threads, 0, "4 threads fault/copy/unpin/reclaim for 1.5 s; invariants and pins intact after"},
};

const vsc_group vsc_group_stress = {"stress", "short multi-threaded stress", tests, VSC_COUNT(tests)};
