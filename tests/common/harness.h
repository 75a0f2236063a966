/* The shared test harness: open a simulated device with a chosen shape, check on
 * teardown that everything went back to the simulator, and make random data.
 *
 * Every Criterion test runs in its own forked process, so each test starts with a
 * fresh library and simulator. A test opens its device with vt_open(); the suite's
 * .fini (vt_fini) checks the device's invariants, closes whatever is still open and
 * asserts that the simulator's live counters (reservations, physical chunks,
 * mappings, host registrations, streams, events, external usage) are back to zero.
 *
 *     TestSuite(vbar, .init = vt_init, .fini = vt_fini);
 *     Test(vbar, basics) {
 *         vt_env *e = vt_open(&(vt_params){.pages = 16});
 *         ...
 *     }
 *
 * Note [Harness defaults]
 * The harness opens devices with headroom 0 (the default 256 MiB would swallow a
 * small simulated device), mem_poll_ns 0 (every budget decision sees the driver's
 * current free figure, so tests are deterministic) and granularity = page size
 * = 64 KiB unless asked otherwise. Watermark regrowth is off (it depends on
 * time) unless vt_params.regrow asks for it, with the delays and margin given. VRAMSWAP_CONF and VRAMSWAP_SIM are unset by
 * vt_init so the caller's environment cannot change a test.
 */
#ifndef VS_TEST_HARNESS_H
#define VS_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef VT_NO_CRITERION
#include "nocriterion.h"   /* Note [Criterion under ThreadSanitizer] */
#else
#include <criterion/criterion.h>
#endif

#include "vramswap.h"
#include "vramswap/sim.h"

#define VT_KIB ((uint64_t)1024)
#define VT_MIB ((uint64_t)1024 * 1024)
#define VT_MAX_DEVICES 4

/* Assert that `expr` (a vs_status expression) gives `expected`, naming both. */
#define VT_EXPECT(expected, expr)                                                          \
    do {                                                                                   \
        vs_status vt_got_ = (expr);                                                        \
        vs_status vt_want_ = (expected);                                                   \
        cr_assert_eq(vt_got_, vt_want_, "%s:%d: %s gave %s, expected %s", __FILE__,        \
                     __LINE__, #expr, vs_status_name(vt_got_), vs_status_name(vt_want_));  \
    } while (0)
#define VT_OK(expr) VT_EXPECT(VS_OK, expr)
/* Either of two acceptable answers (where the spec allows both). */
#define VT_EXPECT2(a, b, expr)                                                             \
    do {                                                                                   \
        vs_status vt_got_ = (expr);                                                        \
        cr_assert(vt_got_ == (a) || vt_got_ == (b), "%s:%d: %s gave %s, expected %s or %s", \
                  __FILE__, __LINE__, #expr, vs_status_name(vt_got_), vs_status_name(a),   \
                  vs_status_name(b));                                                      \
    } while (0)

/* The shape of a simulated device to open. Zero fields take the defaults below. */
typedef struct vt_params {
    uint64_t pages;           /* device memory in pages (default 32) */
    uint64_t capacity;        /* device memory in bytes; overrides pages when set */
    uint64_t granularity;     /* simulator mapping granularity, bytes (default 64 KiB) */
    uint64_t page_size;       /* VBAR page size, bytes (default = granularity) */
    uint64_t headroom;        /* bytes (default 0, see Note [Harness defaults]) */
    uint64_t limit;           /* bytes, 0 = none */
    uint64_t copy_bandwidth;  /* bytes/s of the simulated copy engine, 0 = memcpy */
    uint32_t flags;           /* vs_device_flag bits */
    int ordinal;              /* which simulated device (default 0) */
    int device_count;         /* simulated devices (default max(1, ordinal + 1)) */
    int integrated;           /* report an integrated GPU */
    int regrow;               /* watermark regrowth on (default off, see Note [Harness defaults]) */
    uint64_t regrow_delay_ns, regrow_delay_max_ns, regrow_margin; /* with regrow (default 0) */
} vt_params;

/* One open device and what a test usually needs about it. */
typedef struct vt_env {
    vs_device_t *dev;
    int ordinal;
    uint64_t page;            /* VBAR page size in use, bytes */
    uint64_t capacity;        /* simulated device memory, bytes */
    vs_device_props props;
} vt_env;

/* Suite fixtures: vt_init resets the environment, vt_fini tears down and checks. */
void vt_init(void);
void vt_fini(void);

/* Configure the simulator and open a device (asserts success). The returned env
 * lives until vt_close or vt_fini. Several devices may be open at once when they
 * are configured identically (one vs_sim_configure applies to all of them). */
vt_env *vt_open(const vt_params *params);
/* Configure the simulator only (no device opened); for registry tests. */
void vt_configure_sim(const vt_params *params);
/* Check invariants, close the device (must succeed) and check the simulator
 * counters of its ordinal are back to zero. */
void vt_close(vt_env *env);
/* Assert the live counters of simulated device `ordinal` are all zero. */
void vt_assert_sim_clean(int ordinal);
/* Forget a device that the test closed itself (so vt_fini does not close it again). */
void vt_forget(vt_env *env);

/* Small accessors that assert VS_OK. */
vs_memory_info vt_meminfo(vt_env *env);
vs_stats vt_stats(vt_env *env);
vs_sim_counters vt_counters(int ordinal);
uint64_t vt_loaded(vs_vbar_t *vbar);
/* Residency map of the whole VBAR into map (capacity n); returns the page count. */
size_t vt_residency(vs_vbar_t *vbar, uint8_t *map, size_t n);
/* Number of pages in the VBAR with all of `flags` set. */
size_t vt_count_pages(vs_vbar_t *vbar, uint8_t flags);
/* The host pointer for a device address (simulated devices only). */
void *vt_host(vs_devptr_t p);
vs_devptr_t vt_base(vs_vbar_t *vbar);
/* Create a VBAR of `pages` pages (asserts). */
vs_vbar_t *vt_vbar(vt_env *env, uint64_t pages);
/* Fault then unpin pages [first, first + n) of the VBAR one page at a time
 * (asserts VS_OK), leaving them resident and evictable. */
void vt_load_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n);
/* Fault one page range expressed in pages (returns the status; signature optional). */
vs_status vt_fault_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n, uint64_t *sig);
vs_status vt_unpin_pages(vt_env *env, vs_vbar_t *vbar, uint64_t first, uint64_t n);
/* Assert the device's invariant check passes. */
void vt_check(vt_env *env);

/* ------------------------------------------------------------ log capture */

/* Route the library's log into a ring of the last messages (instead of stderr),
 * for tests that produce expected errors (busy destroys) and want the log only
 * when they fail. Thread-safe. */
void vt_log_capture(void);
/* Print the captured messages to stderr (oldest first). */
void vt_log_print_captured(void);
/* Messages captured at `level` so far. */
long vt_log_count(int level);

/* ------------------------------------------------------------ random data */

/* splitmix64: small, seedable, good enough for tests. */
typedef struct vt_rng {
    uint64_t state;
} vt_rng;

void vt_rng_seed(vt_rng *rng, uint64_t seed);
uint64_t vt_rng_next(vt_rng *rng);
/* Uniform in [0, bound) (bound > 0). */
uint64_t vt_rng_below(vt_rng *rng, uint64_t bound);
/* Uniform in [lo, hi]. */
uint64_t vt_rng_range(vt_rng *rng, uint64_t lo, uint64_t hi);
/* True with probability num/den. */
int vt_rng_chance(vt_rng *rng, uint64_t num, uint64_t den);

/* Fill `len` bytes with a pattern determined by `seed`. */
void vt_fill(void *dst, size_t len, uint64_t seed);
/* Index of the first byte that differs from vt_fill's pattern, or -1 if all match. */
long vt_verify(const void *src, size_t len, uint64_t seed);

/* Read an unsigned integer from the environment (decimal or 0x hex); `fallback`
 * when unset. *from_env (may be NULL) tells which. */
uint64_t vt_env_u64(const char *name, uint64_t fallback, int *from_env);

#endif /* VS_TEST_HARNESS_H */
