/* Stress: many threads on one device. Faulting threads pin, write, verify and
 * unpin random ranges of shared VBARs (each thread writes only its own slice of
 * pages, so the data check is race-free), copy pages out on their own streams and
 * unpin on those streams; a reclaimer evicts; an allocator churns intercepted
 * vs_sim_malloc/free; a prioritizer reorders VBARs and moves watermarks and
 * floors. At the end every pin is gone and the invariants hold. A second test
 * destroys a VBAR while other threads keep using its handle.
 *
 * Iterations are smaller under ThreadSanitizer; VS_STRESS_ITERS (per faulting
 * thread) and VS_STRESS_ROUNDS (destroy rounds) override. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define ST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ST_TSAN 1
#endif
#endif
#ifndef ST_TSAN
#define ST_TSAN 0
#endif

TestSuite(stress, .init = vt_init, .fini = vt_fini, .timeout = 900);

#define ST_FAULTERS 5
#define ST_VBARS 3
#define ST_VBAR_PAGES 40
#define ST_SLICE (ST_VBAR_PAGES / ST_FAULTERS)   /* pages each faulter writes */

typedef struct st_shared {
    vt_env *e;
    vs_vbar_t *vbars[ST_VBARS];
    vs_devptr_t base[ST_VBARS];
    long iters;                     /* per faulting thread */
    atomic_int faulters_left;       /* helpers run until the faulters finish */
    atomic_long errors;
    atomic_long faults_ok, faults_nr, data_checks, copies;
    pthread_mutex_t msg_lock;
    char first_error[512];
} st_shared;

static void st_error(st_shared *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void st_error(st_shared *sh, const char *fmt, ...)
{
    if (atomic_fetch_add(&sh->errors, 1) == 0) {
        pthread_mutex_lock(&sh->msg_lock);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(sh->first_error, sizeof sh->first_error, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&sh->msg_lock);
    }
}

#define ST_CHECK(sh, cond, ...)              \
    do {                                     \
        if (!(cond))                         \
            st_error((sh), __VA_ARGS__);     \
    } while (0)

typedef struct st_faulter {
    st_shared *sh;
    int index;
    uint64_t seed;
    /* What this thread last wrote into its pages: signature and pattern seed. */
    uint64_t sig[ST_VBARS][ST_SLICE];
    uint64_t data[ST_VBARS][ST_SLICE];
} st_faulter;

static void *st_faulter_main(void *arg)
{
    st_faulter *f = arg;
    st_shared *sh = f->sh;
    vt_env *e = sh->e;
    uint64_t page = e->page;
    vt_rng rng;
    vt_rng_seed(&rng, f->seed);
    uintptr_t stream = 0, event = 0;
    ST_CHECK(sh, vs_stream_create(e->dev, &stream) == VS_OK, "stream_create");
    ST_CHECK(sh, vs_event_create(e->dev, &event) == VS_OK, "event_create");
    unsigned char *out = malloc(page);
    uint64_t first_page = (uint64_t)f->index * ST_SLICE;
    for (long it = 0; it < sh->iters && atomic_load(&sh->errors) == 0; it++) {
        int vi = (int)vt_rng_below(&rng, ST_VBARS);
        vs_vbar_t *v = sh->vbars[vi];
        uint64_t n = vt_rng_range(&rng, 1, 3);
        uint64_t p0 = first_page + vt_rng_below(&rng, ST_SLICE - n + 1);
        uint64_t sig = 0;
        vs_status st = vs_vbar_fault(v, p0 * page, n * page, &sig);
        if (st == VS_NOT_RESIDENT) {
            atomic_fetch_add(&sh->faults_nr, 1);
            ST_CHECK(sh, sig == 0, "signature %llu with NOT_RESIDENT", (unsigned long long)sig);
            /* Like an application starting its next iteration: lift the watermark
             * (or take the front of the list) so that faults keep mapping. */
            vs_status ws = VS_OK;
            if (vt_rng_chance(&rng, 1, 2))
                ws = vs_vbar_set_watermark(v, ST_VBAR_PAGES * page);
            else if (vt_rng_chance(&rng, 1, 4))
                ws = vs_vbar_prioritize(v);
            ST_CHECK(sh, ws == VS_OK, "watermark/prioritize gave %s", vs_status_name(ws));
            continue;
        }
        if (st != VS_OK) {
            st_error(sh, "fault gave %s", vs_status_name(st));
            break;
        }
        atomic_fetch_add(&sh->faults_ok, 1);
        uint64_t sigs[4];
        size_t count = 0;
        vs_status s2 = vs_vbar_page_signatures(v, p0 * page, n * page, sigs, 4, &count);
        ST_CHECK(sh, s2 == VS_OK && count == n, "page_signatures gave %s", vs_status_name(s2));
        uint64_t maxsig = 0;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t slot = p0 + k - first_page;
            unsigned char *p = vt_host(sh->base[vi] + (p0 + k) * page);
            ST_CHECK(sh, sigs[k] != 0, "pinned page with signature 0");
            if (sigs[k] > maxsig)
                maxsig = sigs[k];
            if (sigs[k] == f->sig[vi][slot]) {
                long bad = vt_verify(p, page, f->data[vi][slot]);
                ST_CHECK(sh, bad < 0, "thread %d VBAR %d page %llu lost data at %ld (sig %llu)",
                         f->index, vi, (unsigned long long)(p0 + k), bad,
                         (unsigned long long)sigs[k]);
                atomic_fetch_add(&sh->data_checks, 1);
            } else {
                ST_CHECK(sh, sigs[k] > f->sig[vi][slot], "signature went backwards");
                f->data[vi][slot] = vt_rng_next(&rng);
                vt_fill(p, page, f->data[vi][slot]);
                f->sig[vi][slot] = sigs[k];
            }
        }
        ST_CHECK(sh, sig == maxsig, "fault signature %llu, newest page %llu",
                 (unsigned long long)sig, (unsigned long long)maxsig);
        uintptr_t unpin_stream = 0;
        if (vt_rng_chance(&rng, 1, 4)) {
            /* Copy the first page out on our stream and unpin on it: evictions
             * must wait for the copy. */
            uint64_t slot = p0 - first_page;
            vs_status cs = vs_memcpy_async(e->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)out,
                                           sh->base[vi] + p0 * page, page, stream);
            ST_CHECK(sh, cs == VS_OK, "memcpy gave %s", vs_status_name(cs));
            unpin_stream = stream;
            vs_status us = vs_vbar_unpin(v, p0 * page, n * page, unpin_stream);
            ST_CHECK(sh, us == VS_OK, "unpin gave %s", vs_status_name(us));
            ST_CHECK(sh, vs_event_record(e->dev, event, stream) == VS_OK, "event_record");
            ST_CHECK(sh, vs_event_synchronize(e->dev, event) == VS_OK, "event_synchronize");
            long bad = vt_verify(out, page, f->data[vi][slot]);
            ST_CHECK(sh, bad < 0, "copied-out page differs at %ld", bad);
            atomic_fetch_add(&sh->copies, 1);
        } else {
            vs_status us = vs_vbar_unpin(v, p0 * page, n * page, 0);
            ST_CHECK(sh, us == VS_OK, "unpin gave %s", vs_status_name(us));
        }
    }
    vs_stream_synchronize(e->dev, stream);
    ST_CHECK(sh, vs_event_destroy(e->dev, event) == VS_OK, "event_destroy");
    ST_CHECK(sh, vs_stream_destroy(e->dev, stream) == VS_OK, "stream_destroy");
    free(out);
    atomic_fetch_sub(&sh->faulters_left, 1);
    return NULL;
}

static int st_running(st_shared *sh)
{
    return atomic_load(&sh->faulters_left) > 0 && atomic_load(&sh->errors) == 0;
}

static void st_pause(void)
{
    struct timespec ts = {0, 200000};   /* 0.2 ms */
    nanosleep(&ts, NULL);
}

static void *st_reclaimer_main(void *arg)
{
    st_shared *sh = arg;
    vt_env *e = sh->e;
    vt_rng rng;
    vt_rng_seed(&rng, 101);
    while (st_running(sh)) {
        uint64_t bytes = vt_rng_below(&rng, 8 * e->page);
        uint64_t freed = 0;
        vs_status st;
        switch (vt_rng_below(&rng, 3)) {
        case 0:
            st = vs_device_reclaim(e->dev, bytes, &freed);
            break;
        case 1:
            st = vs_device_free_memory(e->dev, bytes, &freed);
            break;
        default:
            st = vs_vbar_free_memory(sh->vbars[vt_rng_below(&rng, ST_VBARS)], bytes, &freed);
            break;
        }
        ST_CHECK(sh, st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "reclaim gave %s",
                 vs_status_name(st));
        st_pause();
    }
    return NULL;
}

static void *st_allocator_main(void *arg)
{
    st_shared *sh = arg;
    vt_env *e = sh->e;
    vt_rng rng;
    vt_rng_seed(&rng, 202);
    uintptr_t live[8];
    int n = 0;
    while (st_running(sh)) {
        if (n < 8 && (n == 0 || vt_rng_chance(&rng, 1, 2))) {
            uintptr_t p = 0;
            vs_status st = vs_sim_malloc(e->ordinal, vt_rng_range(&rng, 1, 4) * e->page, &p);
            ST_CHECK(sh, st == VS_OK || st == VS_ERR_OUT_OF_MEMORY, "sim_malloc gave %s",
                     vs_status_name(st));
            if (st == VS_OK)
                live[n++] = p;
        } else {
            int i = (int)vt_rng_below(&rng, (uint64_t)n);
            ST_CHECK(sh, vs_sim_free(e->ordinal, live[i]) == VS_OK, "sim_free");
            live[i] = live[--n];
        }
        st_pause();
    }
    while (n > 0)
        ST_CHECK(sh, vs_sim_free(e->ordinal, live[--n]) == VS_OK, "sim_free");
    return NULL;
}

static void *st_prioritizer_main(void *arg)
{
    st_shared *sh = arg;
    vt_env *e = sh->e;
    vt_rng rng;
    vt_rng_seed(&rng, 303);
    static char dump[16384];
    while (st_running(sh)) {
        vs_vbar_t *v = sh->vbars[vt_rng_below(&rng, ST_VBARS)];
        vs_status st = VS_OK;
        switch (vt_rng_below(&rng, 8)) {
        case 0:
        case 1:
            st = vs_vbar_prioritize(v);
            break;
        case 2:
            st = vs_vbar_deprioritize(v);
            break;
        case 3:
            st = vs_vbar_set_watermark(v, ST_VBAR_PAGES * e->page);
            break;
        case 4:
            st = vs_vbar_set_floor(v, vt_rng_below(&rng, 4) * e->page);
            break;
        case 5:
            st = vs_device_reset_floors(e->dev);
            break;
        case 6: {
            vs_memory_info mi;
            st = vs_device_memory_info(e->dev, &mi);
            if (st == VS_OK)
                ST_CHECK(sh, mi.used_weights <= ST_VBARS * ST_VBAR_PAGES * e->page,
                         "weights %llu", (unsigned long long)mi.used_weights);
            break;
        }
        default: {
            size_t len = 0;
            st = vs_device_dump(e->dev, dump, sizeof dump, &len);
            if (st == VS_OK)
                st = vs_device_check_invariants(e->dev);
            break;
        }
        }
        ST_CHECK(sh, st == VS_OK, "prioritizer call gave %s", vs_status_name(st));
        st_pause();
    }
    return NULL;
}

static long st_iters(long normal)
{
    long tsan = normal / 4;
    return (long)vt_env_u64("VS_STRESS_ITERS", (uint64_t)(ST_TSAN ? tsan : normal), NULL);
}

Test(stress, threads_on_shared_vbars)
{
    static st_shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.msg_lock, NULL);
    vt_log_capture();
    sh.e = vt_open(&(vt_params){.pages = 48,
                                .granularity = 16 * VT_KIB,
                                .copy_bandwidth = 2048 * VT_MIB,
                                .flags = VS_DEVICE_INTERCEPT});
    sh.iters = st_iters(20000);
    for (int i = 0; i < ST_VBARS; i++) {
        sh.vbars[i] = vt_vbar(sh.e, ST_VBAR_PAGES);
        sh.base[i] = vt_base(sh.vbars[i]);
    }
    fprintf(stderr, "stress: %d faulting threads x %ld iterations%s\n", ST_FAULTERS, sh.iters,
            ST_TSAN ? " (TSan)" : "");
    atomic_store(&sh.faulters_left, ST_FAULTERS);
    static st_faulter f[ST_FAULTERS];
    pthread_t ft[ST_FAULTERS], helpers[3];
    for (int i = 0; i < ST_FAULTERS; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].sh = &sh;
        f[i].index = i;
        f[i].seed = 1000 + (uint64_t)i;
        cr_assert_eq(pthread_create(&ft[i], NULL, st_faulter_main, &f[i]), 0);
    }
    cr_assert_eq(pthread_create(&helpers[0], NULL, st_reclaimer_main, &sh), 0);
    cr_assert_eq(pthread_create(&helpers[1], NULL, st_allocator_main, &sh), 0);
    cr_assert_eq(pthread_create(&helpers[2], NULL, st_prioritizer_main, &sh), 0);
    for (int i = 0; i < ST_FAULTERS; i++)
        pthread_join(ft[i], NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(helpers[i], NULL);
    fprintf(stderr, "stress: %ld faults ok, %ld not resident, %ld data checks, %ld copies\n",
            atomic_load(&sh.faults_ok), atomic_load(&sh.faults_nr),
            atomic_load(&sh.data_checks), atomic_load(&sh.copies));
    if (atomic_load(&sh.errors))
        vt_log_print_captured();
    cr_assert_eq(atomic_load(&sh.errors), 0, "%ld errors, first: %s", atomic_load(&sh.errors),
                 sh.first_error);
    cr_assert_gt(atomic_load(&sh.faults_ok), 0, "no fault ever succeeded");
    vt_check(sh.e);
    for (int i = 0; i < ST_VBARS; i++)
        cr_assert_eq(vt_count_pages(sh.vbars[i], VS_PAGE_PINNED), 0, "pins left in VBAR %d", i);
    vs_memory_info mi = vt_meminfo(sh.e);
    cr_assert_eq(mi.used_intercepted, 0);
    uint64_t loaded = 0;
    for (int i = 0; i < ST_VBARS; i++)
        loaded += vt_loaded(sh.vbars[i]);
    cr_assert_eq(mi.used_weights, loaded);
    cr_assert_eq(vt_counters(sh.e->ordinal).mapped_bytes, loaded);
    for (int i = 0; i < ST_VBARS; i++)
        VT_OK(vs_vbar_destroy(sh.vbars[i]));
    vt_close(sh.e);
}

/* ------------------------------------------------------------ destroy in use */

typedef struct st_user {
    st_shared *sh;
    _Atomic(vs_vbar_t *) *target;  /* the handle under attack (changes per round) */
    atomic_int *round;
    int index;
    atomic_long invalid_seen;
} st_user;

static void *st_user_main(void *arg)
{
    st_user *u = arg;
    st_shared *sh = u->sh;
    uint64_t page = sh->e->page;
    vt_rng rng;
    vt_rng_seed(&rng, 777 + (uint64_t)u->index);
    int last_round = -1;
    while (atomic_load(&sh->errors) == 0) {
        int round = atomic_load(u->round);
        if (round < 0)
            break;
        if (round == last_round) {
            st_pause();
            continue;
        }
        vs_vbar_t *v = atomic_load(u->target);
        /* Hammer this round's VBAR until its handle goes invalid. */
        for (;;) {
            vs_status st;
            uint64_t u64 = 0;
            size_t count = 0;
            uint8_t map[8];
            uint64_t p0 = vt_rng_below(&rng, 6);
            switch (vt_rng_below(&rng, 6)) {
            case 0:
            case 1:
                st = vs_vbar_fault(v, p0 * page, 2 * page, &u64);
                if (st == VS_OK) {
                    vs_status us = vs_vbar_unpin(v, p0 * page, 2 * page, 0);
                    ST_CHECK(sh, us == VS_OK, "unpin after a good fault gave %s (the VBAR was "
                             "destroyed while pinned?)", vs_status_name(us));
                }
                ST_CHECK(sh, st == VS_OK || st == VS_NOT_RESIDENT || st == VS_ERR_INVALID_HANDLE,
                         "fault gave %s", vs_status_name(st));
                break;
            case 2:
                st = vs_vbar_residency(v, map, sizeof map, &count);
                break;
            case 3:
                st = vs_vbar_loaded_size(v, &u64);
                break;
            case 4:
                st = vs_vbar_prioritize(v);
                break;
            default:
                st = vs_vbar_free_memory(v, page, &u64);
                if (st == VS_ERR_OUT_OF_MEMORY)
                    st = VS_OK;
                break;
            }
            if (st == VS_ERR_INVALID_HANDLE) {
                atomic_fetch_add(&u->invalid_seen, 1);
                break;
            }
            ST_CHECK(sh, st == VS_OK || st == VS_NOT_RESIDENT, "call on a live VBAR gave %s",
                     vs_status_name(st));
            if (atomic_load(&sh->errors))
                break;
        }
        last_round = round;
    }
    return NULL;
}

Test(stress, destroy_while_in_use)
{
    static st_shared sh;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.msg_lock, NULL);
    vt_log_capture();   /* destroys refused while pinned log errors on purpose */
    sh.e = vt_open(&(vt_params){.pages = 16});
    enum { USERS = 4 };
    const int rounds = (int)vt_env_u64("VS_STRESS_ROUNDS", 25, NULL);
    static _Atomic(vs_vbar_t *) target;
    static atomic_int round;
    atomic_store(&target, vt_vbar(sh.e, 8));
    atomic_store(&round, 0);
    static st_user users[USERS];
    pthread_t t[USERS];
    for (int i = 0; i < USERS; i++) {
        memset(&users[i], 0, sizeof users[i]);
        users[i].sh = &sh;
        users[i].target = &target;
        users[i].round = &round;
        users[i].index = i;
        cr_assert_eq(pthread_create(&t[i], NULL, st_user_main, &users[i]), 0);
    }
    vt_rng rng;
    vt_rng_seed(&rng, 99);
    for (int r = 0; r < rounds && atomic_load(&sh.errors) == 0; r++) {
        /* Let the users run a little, then destroy under them. */
        for (int k = 0; k < 10; k++)
            st_pause();
        vs_vbar_t *old = atomic_load(&target);
        vs_status st;
        while ((st = vs_vbar_destroy(old)) == VS_ERR_BUSY)
            ;
        cr_assert_eq(st, VS_OK, "destroy gave %s", vs_status_name(st));
        /* The handle stays dead. */
        VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_vbar_destroy(old));
        vt_check(sh.e);
        /* Wait until every user noticed, then start the next round. */
        for (int i = 0; i < USERS; i++)
            while (atomic_load(&users[i].invalid_seen) < r + 1 && atomic_load(&sh.errors) == 0)
                st_pause();
        /* Churn other VBARs (no one holds the old handle any more), so that freed
         * handle memory gets recycled if it ever would be. */
        for (int k = 0; k < 3; k++) {
            vs_vbar_t *tmp = vt_vbar(sh.e, 2);
            VT_OK(vs_vbar_destroy(tmp));
        }
        atomic_store(&target, vt_vbar(sh.e, 8));
        atomic_fetch_add(&round, 1);
    }
    atomic_store(&round, -1);
    for (int i = 0; i < USERS; i++)
        pthread_join(t[i], NULL);
    if (atomic_load(&sh.errors))
        vt_log_print_captured();
    cr_assert_eq(atomic_load(&sh.errors), 0, "%ld errors, first: %s", atomic_load(&sh.errors),
                 sh.first_error);
    VT_OK(vs_vbar_destroy(atomic_load(&target)));
    vt_check(sh.e);
    vt_close(sh.e);
}

#ifdef VT_NO_CRITERION
/* Note [Criterion under ThreadSanitizer]: run the tests in sequence. */
int main(void)
{
    vt_init();
    vt_test_stress_threads_on_shared_vbars();
    vt_fini();
    fprintf(stderr, "stress: threads_on_shared_vbars passed\n");
    vt_init();
    vt_test_stress_destroy_while_in_use();
    vt_fini();
    fprintf(stderr, "stress: destroy_while_in_use passed\n");
    return 0;
}
#endif
