/* The conformance suite's own small harness: what every test file uses.
 *
 * Note [Conformance suite]
 * ~~~~~~~~~~~~~~~~~~~~~~~~
 * One suite, instantiated per backend (as rmm instantiates one test suite for
 * every memory resource): the tests below speak only the public API
 * (vramswap.h) and are run against whatever backend `--backend` names: the
 * simulator in CI, a driver emulator, a real GPU. The few things the public API
 * cannot do in a backend-neutral way -- allocate through the backend's native
 * allocator (for interception), count the driver objects still alive after
 * close (for leak checks), slow the copy engine down -- go through one small
 * table of per-backend hooks (vsc_backend, backends.c). A backend without a
 * hook gets SKIP for the tests that need it, never a PASS.
 *
 * It needs nothing but libvramswap and the C library, because it runs on GPU
 * machines that have no test framework installed.
 *
 * Each test gets a fresh device (vs_device_open on the chosen backend and
 * ordinal) in a forked process, so a crash is that test's failure; the harness
 * then checks the device's invariants, closes it and compares the backend's
 * live-object counters with the ones taken before the open (Note [Conformance
 * sizes] in util.c says how memory is sized on big devices).
 *
 * Checks are macros taking the test context first; a failed check records
 * file:line and the expression (statuses by name) and leaves the test at once
 * (longjmp back to the harness: helpers may check too). Checks are for the
 * thread running the test function only; worker threads (stress) record their
 * errors and the test function checks them after joining.
 */
#ifndef VSC_SUITE_H
#define VSC_SUITE_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vramswap.h"
#include "vramswap/sim.h"

#define VSC_KIB ((uint64_t)1 << 10)
#define VSC_MIB ((uint64_t)1 << 20)
#define VSC_GIB ((uint64_t)1 << 30)

/* ---------------------------------------------------------------- tests and groups */

typedef struct vsc_ctx vsc_ctx;
typedef void (*vsc_test_fn)(vsc_ctx *t);

/* What a test asks of the harness before its device is opened. */
enum vsc_needs {
    VSC_NEED_SLOW_COPIES = 1u << 0, /* copies slow enough to still be in flight (sim: throttled) */
    VSC_NEED_INTERCEPT = 1u << 1    /* open the device with VS_DEVICE_INTERCEPT */
};

typedef struct vsc_test {
    const char *name;       /* "create_destroy" */
    vsc_test_fn fn;
    uint32_t needs;         /* enum vsc_needs bits */
    const char *what;       /* one line: what it checks (--list -v) */
} vsc_test;

typedef struct vsc_group {
    const char *name;       /* "reservation" */
    const char *what;       /* one line */
    const vsc_test *tests;
    size_t count;
} vsc_group;

#define VSC_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The groups, in run order (groups.c). */
extern const vsc_group *const vsc_groups[];
extern const size_t vsc_group_count;

extern const vsc_group vsc_group_reservation;
extern const vsc_group vsc_group_mapping;
extern const vsc_group vsc_group_eviction;
extern const vsc_group vsc_group_events;
extern const vsc_group vsc_group_host;
extern const vsc_group vsc_group_scratch;
extern const vsc_group vsc_group_interception;
extern const vsc_group vsc_group_errors;
extern const vsc_group vsc_group_stress;

/* ---------------------------------------------------------------- per-backend hooks */

/* Backend-specific pieces (backends.c, native_*.c). Any member may be NULL. */
typedef struct vsc_backend {
    const char *name;
    /* Before the device is opened, in the test's process (sim: configure the
     * simulator, throttling copies for VSC_NEED_SLOW_COPIES). */
    vs_status (*prepare)(int ordinal, uint32_t needs, char *why, size_t why_len);
    /* Live driver objects of the device (the simulator's counters), for leak
     * checks: true when available. */
    bool (*counters)(int ordinal, vs_sim_counters *out);
    /* The backend's native allocator, which interception sees (sim: vs_sim_malloc;
     * cuda: cuMemAlloc_v2 in the primary context; hip: hipMalloc; level_zero:
     * zeMemAllocDevice in a context of the suite's own). begin gives a state the other
     * three take, or VS_ERR_NOT_SUPPORTED with a reason. alloc answers
     * VS_ERR_OUT_OF_MEMORY when the allocation was refused. */
    vs_status (*native_begin)(int ordinal, void **state, char *why, size_t why_len);
    vs_status (*native_alloc)(void *state, uint64_t size, uintptr_t *ptr);
    vs_status (*native_free)(void *state, uintptr_t ptr);
    void (*native_end)(void *state);
} vsc_backend;

/* The hooks for `name`; a table with every member NULL for a backend without any. */
const vsc_backend *vsc_backend_find(const char *name);
/* The GPU backends' pieces (native_cuda.c, native_hip.c, native_level_zero.c):
 * dlsym'd entry points of the library the backend loaded, no vendor headers. */
extern const vsc_backend vsc_backend_cuda;
extern const vsc_backend vsc_backend_hip;
extern const vsc_backend vsc_backend_level_zero;

/* ---------------------------------------------------------------- results */

enum vsc_outcome { VSC_PASS = 0, VSC_FAIL = 1, VSC_SKIP = 2 };

/* One test's result. Lives in memory shared with the parent when tests fork, so
 * that even a crashed test leaves its last checkpoint behind. */
typedef struct vsc_result {
    int outcome;            /* enum vsc_outcome */
    int finished;           /* the harness reached the end of the test */
    double ms;              /* wall time of the test function, milliseconds */
    char where[160];        /* last checkpoint reached: "test_mapping.c:120" */
    char message[1024];     /* failure or skip reason */
    char log[2048];         /* the library's last log lines during the test */
} vsc_result;

/* ---------------------------------------------------------------- the test context */

#define VSC_MAX_ALLOCS 64

struct vsc_ctx {
    const char *backend;          /* resolved backend name ("sim", "cuda"...) */
    int ordinal;                  /* device ordinal */
    const vsc_backend *hooks;     /* per-backend pieces */
    uint32_t needs;               /* of the running test */
    vs_device_t *dev;             /* the open device; NULL once a test closed it */
    vs_device_config cfg;         /* how it was opened */
    vs_device_props props;
    uint64_t page;                /* VBAR page size in use, bytes */
    uint64_t work;                /* bytes available to the test at its start */
    uint64_t seed;                /* for this test's random data */
    bool verbose;
    vsc_result *res;
    jmp_buf *abort;               /* where a failed check returns to */
    void *allocs[VSC_MAX_ALLOCS]; /* host memory from vsc_alloc, freed by the harness */
    size_t nallocs;
    void *native;                 /* native allocator state (vsc_native_begin), ended by the harness */
};

/* ---------------------------------------------------------------- checks */

/* Record a checkpoint (file:line), cheap; crash reports name the last one. */
void vsc_mark(vsc_ctx *t, const char *file, int line);
/* Fail the test (printf-style message) and leave it. */
_Noreturn void vsc_fail(vsc_ctx *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Skip the test with a reason and leave it. Skips never count as passes. */
_Noreturn void vsc_skip(vsc_ctx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Verbose-only note (-v), e.g. what a backend-dependent check observed. */
void vsc_note(vsc_ctx *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* expr (a vs_status expression) must give `want`. */
#define VSC_EXPECT(t, want, expr)                                                              \
    do {                                                                                       \
        vsc_mark((t), __FILE__, __LINE__);                                                     \
        vs_status vsc_got_ = (expr);                                                           \
        vs_status vsc_want_ = (want);                                                          \
        if (vsc_got_ != vsc_want_)                                                             \
            vsc_fail((t), __FILE__, __LINE__, "%s gave %s, expected %s", #expr,                \
                     vs_status_name(vsc_got_), vs_status_name(vsc_want_));                     \
    } while (0)
#define VSC_OK(t, expr) VSC_EXPECT(t, VS_OK, expr)
/* Either of two answers the contract allows. */
#define VSC_EXPECT2(t, a, b, expr)                                                             \
    do {                                                                                       \
        vsc_mark((t), __FILE__, __LINE__);                                                     \
        vs_status vsc_got_ = (expr);                                                           \
        if (vsc_got_ != (a) && vsc_got_ != (b))                                                \
            vsc_fail((t), __FILE__, __LINE__, "%s gave %s, expected %s or %s", #expr,          \
                     vs_status_name(vsc_got_), vs_status_name(a), vs_status_name(b));          \
    } while (0)
#define VSC_CHECK(t, cond)                                                                     \
    do {                                                                                       \
        vsc_mark((t), __FILE__, __LINE__);                                                     \
        if (!(cond))                                                                           \
            vsc_fail((t), __FILE__, __LINE__, "check failed: %s", #cond);                      \
    } while (0)
/* cond with a message explaining the values. */
#define VSC_CHECKF(t, cond, ...)                                                               \
    do {                                                                                       \
        vsc_mark((t), __FILE__, __LINE__);                                                     \
        if (!(cond))                                                                           \
            vsc_fail((t), __FILE__, __LINE__, __VA_ARGS__);                                    \
    } while (0)
/* Two unsigned integers must be equal; both values are printed. */
#define VSC_EQ(t, a, b)                                                                        \
    do {                                                                                       \
        vsc_mark((t), __FILE__, __LINE__);                                                     \
        unsigned long long vsc_a_ = (unsigned long long)(a), vsc_b_ = (unsigned long long)(b); \
        if (vsc_a_ != vsc_b_)                                                                  \
            vsc_fail((t), __FILE__, __LINE__, "%s == %s: %llu != %llu", #a, #b, vsc_a_,        \
                     vsc_b_);                                                                  \
    } while (0)

/* ---------------------------------------------------------------- helpers (util.c) */

/* Host memory freed by the harness after the test. */
void *vsc_alloc(vsc_ctx *t, size_t size);

/* splitmix64 random numbers, seeded per test (--seed). */
typedef struct vsc_rng {
    uint64_t state;
} vsc_rng;
void vsc_rng_init(vsc_rng *r, uint64_t seed);
uint64_t vsc_rng_next(vsc_rng *r);
uint64_t vsc_rng_below(vsc_rng *r, uint64_t bound); /* [0, bound), bound > 0 */
void vsc_fill_random(vsc_rng *r, void *buf, size_t len);

/* Fresh view of the budget / counters (check VS_OK). */
vs_memory_info vsc_meminfo(vsc_ctx *t);
vs_stats vsc_stats(vsc_ctx *t);

/* Set the limit so that exactly `pages` pages plus half a page are available
 * with what is in use now (Note [Conformance sizes]); SKIP when the device
 * cannot give that much. */
void vsc_budget_pages(vsc_ctx *t, uint64_t pages);
/* SKIP unless `pages` pages are available to the test. */
void vsc_need_pages(vsc_ctx *t, uint64_t pages);

/* A VBAR of `pages` pages (checks VS_OK). */
vs_vbar_t *vsc_vbar(vsc_ctx *t, uint64_t pages);
vs_devptr_t vsc_base(vsc_ctx *t, vs_vbar_t *v);
uint64_t vsc_loaded(vsc_ctx *t, vs_vbar_t *v);
/* Fault / unpin pages [first, first + n) (the status is returned). */
vs_status vsc_fault_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n, uint64_t *sig);
vs_status vsc_unpin_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n);
/* Fault then unpin (VS_STREAM_NONE) pages [first, first + n): resident, evictable. */
void vsc_load_pages(vsc_ctx *t, vs_vbar_t *v, uint64_t first, uint64_t n);

/* The residency map as text, one character per page: 'P' resident and pinned,
 * 'R' resident, '.' not resident, 'p' pinned but not resident (never valid);
 * a protected page (below the floor) is written in lower case ('r'). */
void vsc_residency_text(vsc_ctx *t, vs_vbar_t *v, char *out, size_t cap);
/* Check the residency against `want` (same letters, '?' = anything). */
#define VSC_RESIDENCY(t, v, want) vsc_check_residency((t), (v), (want), __FILE__, __LINE__)
void vsc_check_residency(vsc_ctx *t, vs_vbar_t *v, const char *want, const char *file, int line);
/* Pages of the VBAR with all of `flags` (VS_PAGE_*) set. */
size_t vsc_count_pages(vsc_ctx *t, vs_vbar_t *v, uint8_t flags);

/* Copies. vsc_write/vsc_read copy and wait (stream 0). */
void vsc_write(vsc_ctx *t, vs_devptr_t dst, const void *src, uint64_t len);
void vsc_read(vsc_ctx *t, void *dst, vs_devptr_t src, uint64_t len);
/* Compare and report the first differing byte. */
#define VSC_BYTES(t, got, want, len, what) vsc_check_bytes((t), (got), (want), (len), (what), __FILE__, __LINE__)
void vsc_check_bytes(vsc_ctx *t, const void *got, const void *want, uint64_t len, const char *what,
                     const char *file, int line);

/* Milliseconds on a monotonic clock. */
double vsc_now_ms(void);

/* Start the backend's native allocator (interception tests): SKIP with the
 * reason when the backend has none or it is unusable. Ended by the harness. */
void vsc_native_begin(vsc_ctx *t);
vs_status vsc_native_alloc(vsc_ctx *t, uint64_t size, uintptr_t *ptr);
vs_status vsc_native_free(vsc_ctx *t, uintptr_t ptr);

/* Close the test's device (checks VS_OK) / open it again with `flags`. */
void vsc_close(vsc_ctx *t);
void vsc_reopen(vsc_ctx *t, uint32_t flags);

/* ---------------------------------------------------------------- the runner (harness.c) */

/* Open the device for a test as the harness does: configuration, default cap
 * (Note [Conformance sizes]). */
vs_status vsc_open_device(vsc_ctx *t, uint32_t flags);

#endif /* VSC_SUITE_H */
