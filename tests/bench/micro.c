/* vs_bench_micro: microbenchmarks of vramswap's hot paths, on any backend.
 *
 *   vs_bench_micro [--backend auto|sim|cuda|hip|level_zero] [--ordinal N]
 *                  [--range SIZE] [--page-size SIZE] [--iters N] [--slow-iters N]
 *                  [--json PATH] [--quiet]
 *
 * One VBAR holds exactly one allocation of --range bytes (N pages; default 128 MiB
 * on a GPU backend -- one 8192x8192 bf16 layer -- and 4 MiB on the simulator).
 * Every figure is a median over many samples; docs/performance.md has the
 * targets they are compared with.
 *
 * Note [Micro timing]
 * ~~~~~~~~~~~~~~~~~~~
 * Fast operations (fault+unpin of a resident range, ~100 ns to a few us) are
 * timed in batches of BATCH calls with CLOCK_MONOTONIC, so the clock's own cost
 * (~20 ns) is spread over the batch; one sample = batch time / BATCH, and the
 * reported figure is the median sample. Slow operations (a page map, a miss, an
 * eviction: tens of microseconds to milliseconds) are timed one call per sample.
 * Whatever a test needs first (mapping the range, evicting it, clearing the
 * watermark that an eviction leaves with vs_vbar_prioritize) happens outside the
 * timed region. Each test also reports how the device's counters moved
 * (chunks created / reused, evictions that waited for an event), because the
 * same operation costs very different amounts depending on whether a physical
 * chunk was created or reused.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, when built by hand with -std=c11 */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vramswap.h>

#define BATCH 64          /* fast operations timed per clock read */
#define MAX_TESTS 16

typedef struct bench_opts {
    const char *backend;  /* NULL = auto */
    int ordinal;
    uint64_t range;       /* bytes; 0 = backend default */
    uint64_t page_size;   /* bytes; 0 = backend's preferred */
    uint64_t iters;       /* fast-operation calls per test */
    uint64_t slow_iters;  /* samples of slow operations */
    const char *json;     /* path or NULL */
    int quiet;
} bench_opts;

typedef struct bench_result {
    const char *name;
    const char *what;     /* one-line description */
    double median_ns, min_ns, p90_ns;
    uint64_t samples;
    vs_stats delta;       /* counters moved by the test (timed and untimed parts) */
    int failed;
} bench_result;

typedef struct bench_ctx {
    vs_device_t *dev;
    vs_vbar_t *vbar;
    vs_host_buffer_t *host;
    void *host_ptr;
    vs_devptr_t base;
    uintptr_t stream;     /* a created stream ("real stream") */
    uint64_t page;        /* bytes */
    uint64_t range;       /* bytes, a page multiple */
    double *samples;      /* scratch, max(iters / BATCH, slow_iters) entries */
    bench_opts opts;
    bench_result results[MAX_TESTS];
    int nresults;
} bench_ctx;

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int check(vs_status st, const char *what)
{
    if (st == VS_OK)
        return 0;
    fprintf(stderr, "vs_bench_micro: %s: %s (%s)\n", what, vs_status_name(st), vs_status_str(st));
    return -1;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarize(bench_result *r, double *s, uint64_t n)
{
    r->samples = n;
    if (n == 0) {
        r->failed = 1;
        return;
    }
    qsort(s, n, sizeof *s, cmp_double);
    r->min_ns = s[0];
    r->median_ns = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    r->p90_ns = s[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
}

/* c = a - b, field by field over the counters (peaks and currents included;
 * only the counters are printed). */
static void stats_delta(vs_stats *c, const vs_stats *a, const vs_stats *b)
{
    const uint64_t *pa = (const uint64_t *)a, *pb = (const uint64_t *)b;
    uint64_t *pc = (uint64_t *)c;
    for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)
        pc[i] = pa[i] - pb[i];
}

static bench_result *begin(bench_ctx *b, const char *name, const char *what, vs_stats *before)
{
    bench_result *r = &b->results[b->nresults++];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->what = what;
    if (check(vs_device_get_stats(b->dev, before), "vs_device_get_stats"))
        r->failed = 1;
    return r;
}

static int end(bench_ctx *b, bench_result *r, const vs_stats *before, uint64_t n, int failed)
{
    vs_stats after;
    if (check(vs_device_get_stats(b->dev, &after), "vs_device_get_stats"))
        failed = 1;
    else
        stats_delta(&r->delta, &after, before);
    if (failed) {
        r->failed = 1;
        return -1;
    }
    summarize(r, b->samples, n);
    return 0;
}

/* Evict the whole range (nothing pinned) and clear the watermark it leaves. */
static int evict_all(bench_ctx *b)
{
    uint64_t freed = 0;
    if (check(vs_device_free_memory(b->dev, b->range, &freed), "vs_device_free_memory"))
        return -1;
    return check(vs_vbar_prioritize(b->vbar), "vs_vbar_prioritize");
}

static int make_resident(bench_ctx *b, uint64_t size)
{
    if (check(vs_vbar_fault(b->vbar, 0, size, NULL), "vs_vbar_fault (setup)"))
        return -1;
    return check(vs_vbar_unpin(b->vbar, 0, size, VS_STREAM_NONE), "vs_vbar_unpin (setup)");
}

/* ---------------------------------------------------------------- tests */

/* fault + unpin of a resident range; Note [Micro timing] for batching. */
static int t_fault_unpin(bench_ctx *b, const char *name, const char *what, uint64_t size,
                         uintptr_t stream)
{
    vs_stats before;
    bench_result *r = begin(b, name, what, &before);
    int failed = r->failed || make_resident(b, size);
    uint64_t nb = b->opts.iters / BATCH ? b->opts.iters / BATCH : 1, n = 0;
    for (uint64_t i = 0; i < nb && !failed; i++) {
        uint64_t t0 = now_ns();
        for (int k = 0; k < BATCH; k++) {
            uint64_t sig;
            vs_status st = vs_vbar_fault(b->vbar, 0, size, &sig);
            if (st == VS_OK)
                st = vs_vbar_unpin(b->vbar, 0, size, stream);
            if (st != VS_OK) {
                failed = 1;
                check(st, name);
                break;
            }
        }
        b->samples[n++] = (double)(now_ns() - t0) / BATCH;
    }
    if (!failed && stream != VS_STREAM_NONE)
        failed = check(vs_stream_synchronize(b->dev, stream), "vs_stream_synchronize");
    return end(b, r, &before, n, failed);
}

/* Fault of one evicted page: the map alone (no copy). */
static int t_map_page(bench_ctx *b)
{
    vs_stats before;
    bench_result *r = begin(b, "map_1page", "fault of 1 evicted page (map, no copy) + unpin",
                            &before);
    int failed = r->failed;
    uint64_t n = 0;
    for (uint64_t i = 0; i < b->opts.slow_iters && !failed; i++) {
        if (make_resident(b, b->page) || evict_all(b)) {
            failed = 1;
            break;
        }
        uint64_t t0 = now_ns();
        vs_status st = vs_vbar_fault(b->vbar, 0, b->page, NULL);
        uint64_t t1 = now_ns();
        if (check(st, "vs_vbar_fault (map)")
            || check(vs_vbar_unpin(b->vbar, 0, b->page, VS_STREAM_NONE), "vs_vbar_unpin")) {
            failed = 1;
            break;
        }
        b->samples[n++] = (double)(t1 - t0);
    }
    return end(b, r, &before, n, failed);
}

/* A miss: the range was evicted; fault maps N pages, the weights are copied in
 * from a registered host buffer, and the stream is synchronized. The fault part
 * alone is reported as a second result. */
static int t_miss(bench_ctx *b)
{
    vs_stats before;
    bench_result *r = begin(b, "miss_range",
                            "evicted range: fault (maps N pages) + H2D copy + sync", &before);
    bench_result *rf = &b->results[b->nresults++];
    memset(rf, 0, sizeof *rf);
    rf->name = "miss_range_fault_part";
    rf->what = "  of which the fault (maps N pages)";
    double *fault_ns = malloc(sizeof(double) * (b->opts.slow_iters + 1));
    int failed = r->failed || !fault_ns;
    uint64_t n = 0;
    for (uint64_t i = 0; i < b->opts.slow_iters && !failed; i++) {
        if (make_resident(b, b->range) || evict_all(b)) {
            failed = 1;
            break;
        }
        uint64_t t0 = now_ns();
        vs_status st = vs_vbar_fault(b->vbar, 0, b->range, NULL);
        uint64_t t1 = now_ns();
        if (st == VS_OK)
            st = vs_memcpy_async(b->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)b->base,
                                 (uintptr_t)b->host_ptr, b->range, b->stream);
        if (st == VS_OK)
            st = vs_stream_synchronize(b->dev, b->stream);
        uint64_t t2 = now_ns();
        if (check(st, "miss") ||
            check(vs_vbar_unpin(b->vbar, 0, b->range, VS_STREAM_NONE), "vs_vbar_unpin")) {
            failed = 1;
            break;
        }
        fault_ns[n] = (double)(t1 - t0);
        b->samples[n++] = (double)(t2 - t0);
    }
    int rc = end(b, r, &before, n, failed);
    rf->delta = r->delta;
    if (failed)
        rf->failed = 1;
    else
        summarize(rf, fault_ns, n);
    free(fault_ns);
    return rc;
}

typedef enum evict_mode {
    EVICT_NO_EVENTS,      /* unpinned with VS_STREAM_NONE */
    EVICT_DONE_EVENTS,    /* unpinned on a stream that has been synchronized */
    EVICT_PENDING_EVENTS  /* unpinned on a stream still copying into the range */
} evict_mode;

static int t_evict(bench_ctx *b, const char *name, const char *what, evict_mode mode)
{
    vs_stats before;
    bench_result *r = begin(b, name, what, &before);
    int failed = r->failed;
    uint64_t n = 0;
    for (uint64_t i = 0; i < b->opts.slow_iters && !failed; i++) {
        vs_status st = vs_vbar_fault(b->vbar, 0, b->range, NULL);
        if (st == VS_OK && mode == EVICT_PENDING_EVENTS)
            st = vs_memcpy_async(b->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)b->base,
                                 (uintptr_t)b->host_ptr, b->range, b->stream);
        if (st == VS_OK)
            st = vs_vbar_unpin(b->vbar, 0, b->range,
                               mode == EVICT_NO_EVENTS ? VS_STREAM_NONE : b->stream);
        if (st == VS_OK && mode == EVICT_DONE_EVENTS)
            st = vs_stream_synchronize(b->dev, b->stream);
        if (check(st, "eviction setup")) {
            failed = 1;
            break;
        }
        uint64_t freed = 0;
        uint64_t t0 = now_ns();
        st = vs_device_free_memory(b->dev, b->range, &freed);
        uint64_t t1 = now_ns();
        if (check(st, "vs_device_free_memory") || check(vs_vbar_prioritize(b->vbar), "prioritize")
            || check(vs_stream_synchronize(b->dev, b->stream), "vs_stream_synchronize")) {
            failed = 1;
            break;
        }
        if (freed < b->range) {
            fprintf(stderr, "vs_bench_micro: %s: evicted %llu of %llu bytes\n", name,
                    (unsigned long long)freed, (unsigned long long)b->range);
            failed = 1;
            break;
        }
        b->samples[n++] = (double)(t1 - t0);
    }
    return end(b, r, &before, n, failed);
}

/* ---------------------------------------------------------------- output */

static void fmt_ns(char *buf, size_t cap, double ns)
{
    if (ns < 10e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 10e6)
        snprintf(buf, cap, "%.1f us", ns / 1e3);
    else
        snprintf(buf, cap, "%.2f ms", ns / 1e6);
}

static void print_table(const bench_ctx *b, const vs_device_props *p)
{
    printf("vramswap %s micro-benchmarks: %s (%s:%d), page %llu KiB, range %llu KiB = %llu pages\n",
           vs_version(), p->name, p->backend, p->ordinal, (unsigned long long)(b->page >> 10),
           (unsigned long long)(b->range >> 10), (unsigned long long)(b->range / b->page));
    printf("%-27s %11s %11s %11s %8s  %-7s %-7s %-5s  %s\n", "test", "median", "min", "p90",
           "samples", "created", "reused", "waits", "what");
    for (int i = 0; i < b->nresults; i++) {
        const bench_result *r = &b->results[i];
        char m[32], lo[32], hi[32];
        if (r->failed) {
            printf("%-27s %11s %11s %11s %8s  %-7s %-7s %-5s  %s\n", r->name, "FAILED", "-", "-",
                   "-", "-", "-", "-", r->what);
            continue;
        }
        fmt_ns(m, sizeof m, r->median_ns);
        fmt_ns(lo, sizeof lo, r->min_ns);
        fmt_ns(hi, sizeof hi, r->p90_ns);
        printf("%-27s %11s %11s %11s %8llu  %-7llu %-7llu %-5llu  %s\n", r->name, m, lo, hi,
               (unsigned long long)r->samples, (unsigned long long)r->delta.chunks_created,
               (unsigned long long)r->delta.chunks_reused, (unsigned long long)r->delta.event_waits,
               r->what);
    }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static int write_json(const bench_ctx *b, const vs_device_props *p, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "vs_bench_micro: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"tool\": \"vs_bench_micro\",\n  \"version\": ");
    json_string(f, vs_version());
    fprintf(f, ",\n  \"backend\": ");
    json_string(f, p->backend);
    fprintf(f, ",\n  \"device\": ");
    json_string(f, p->name);
    fprintf(f, ",\n  \"ordinal\": %d,\n  \"page_size\": %llu,\n  \"range_bytes\": %llu,\n"
               "  \"pages\": %llu,\n  \"batch\": %d,\n  \"results\": [\n",
            p->ordinal, (unsigned long long)b->page, (unsigned long long)b->range,
            (unsigned long long)(b->range / b->page), BATCH);
    for (int i = 0; i < b->nresults; i++) {
        const bench_result *r = &b->results[i];
        fprintf(f, "    {\"name\": ");
        json_string(f, r->name);
        fprintf(f, ", \"what\": ");
        json_string(f, r->what);
        if (r->failed)
            fprintf(f, ", \"failed\": true");
        else
            fprintf(f, ", \"failed\": false, \"median_ns\": %.1f, \"min_ns\": %.1f, "
                       "\"p90_ns\": %.1f, \"samples\": %llu",
                    r->median_ns, r->min_ns, r->p90_ns, (unsigned long long)r->samples);
        fprintf(f, ", \"chunks_created\": %llu, \"chunks_reused\": %llu, \"event_waits\": %llu, "
                   "\"pages_mapped\": %llu, \"pages_evicted\": %llu}%s\n",
                (unsigned long long)r->delta.chunks_created,
                (unsigned long long)r->delta.chunks_reused,
                (unsigned long long)r->delta.event_waits,
                (unsigned long long)r->delta.pages_mapped,
                (unsigned long long)r->delta.pages_evicted, i + 1 < b->nresults ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vs_bench_micro [--backend auto|sim|cuda|hip|level_zero] [--ordinal N]\n"
            "                      [--range SIZE] [--page-size SIZE] [--iters N] [--slow-iters N]\n"
            "                      [--json PATH] [--quiet]\n"
            "  --range       bytes faulted per miss/eviction (default 128M on a GPU, 4M on sim)\n"
            "  --iters       fault+unpin calls per fast test (default 200000)\n"
            "  --slow-iters  samples of map/miss/eviction tests (default 30)\n");
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->iters = 200000;
    o->slow_iters = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        } else if (strcmp(a, "--backend") && strcmp(a, "--json") && strcmp(a, "--ordinal")
                   && strcmp(a, "--range") && strcmp(a, "--page-size") && strcmp(a, "--iters")
                   && strcmp(a, "--slow-iters")) {
            fprintf(stderr, "vs_bench_micro: unknown option %s\n", a);
            usage(stderr);
            return -1;
        } else if (!v) {
            fprintf(stderr, "vs_bench_micro: %s needs a value\n", a);
            return -1;
        } else if (!strcmp(a, "--backend")) {
            o->backend = strcmp(v, "auto") ? v : NULL;
        } else if (!strcmp(a, "--json")) {
            o->json = v;
        } else if (!strcmp(a, "--ordinal") && !parse_size(v, &x) && x < 1024) {
            o->ordinal = (int)x;
        } else if (!strcmp(a, "--range") && !parse_size(v, &x) && x) {
            o->range = x;
        } else if (!strcmp(a, "--page-size") && !parse_size(v, &x)) {
            o->page_size = x;
        } else if (!strcmp(a, "--iters") && !parse_size(v, &x) && x) {
            o->iters = x;
        } else if (!strcmp(a, "--slow-iters") && !parse_size(v, &x) && x) {
            o->slow_iters = x;
        } else {
            fprintf(stderr, "vs_bench_micro: bad option or value: %s %s\n", a, v);
            usage(stderr);
            return -1;
        }
        i++;
    }
    return 0;
}

static int setup(bench_ctx *b, vs_device_props *p)
{
    vs_device_config cfg;
    if (check(vs_device_config_init(&cfg), "vs_device_config_init"))
        return -1;
    if (b->opts.page_size)
        cfg.page_size = b->opts.page_size;
    if (check(vs_device_open(b->opts.backend, b->opts.ordinal, &cfg, &b->dev), "vs_device_open")
        || check(vs_device_get_props(b->dev, p), "vs_device_get_props"))
        return -1;
    b->page = p->page_size;
    uint64_t range = b->opts.range ? b->opts.range
                                   : (strcmp(p->backend, "sim") ? (128u << 20) : (4u << 20));
    b->range = (range + b->page - 1) / b->page * b->page;
    uint64_t off = 0, size = 0;
    if (check(vs_vbar_create(b->dev, b->range, &b->vbar), "vs_vbar_create")
        || check(vs_vbar_alloc(b->vbar, b->range, 0, &off), "vs_vbar_alloc")
        || check(vs_vbar_get_base(b->vbar, &b->base, &size), "vs_vbar_get_base")
        || check(vs_host_buffer_create(b->dev, b->range, &b->host), "vs_host_buffer_create")
        || check(vs_host_buffer_resize(b->host, b->range), "vs_host_buffer_resize")
        || check(vs_host_buffer_get(b->host, &b->host_ptr, NULL, NULL), "vs_host_buffer_get")
        || check(vs_stream_create(b->dev, &b->stream), "vs_stream_create"))
        return -1;
    memset(b->host_ptr, 0x5a, b->range);
    uint64_t n = b->opts.iters / BATCH + 1;
    if (n < b->opts.slow_iters + 1)
        n = b->opts.slow_iters + 1;
    b->samples = malloc(sizeof(double) * n);
    return b->samples ? 0 : -1;
}

static void teardown(bench_ctx *b)
{
    if (b->stream)
        (void)check(vs_stream_destroy(b->dev, b->stream), "vs_stream_destroy");
    if (b->host)
        (void)check(vs_host_buffer_destroy(b->host), "vs_host_buffer_destroy");
    if (b->vbar)
        (void)check(vs_vbar_destroy(b->vbar), "vs_vbar_destroy");
    if (b->dev)
        (void)check(vs_device_close(b->dev), "vs_device_close");
    free(b->samples);
}

static int run_all(bench_ctx *b)
{
    uint64_t R = b->range, P = b->page;
    int bad = 0;
    bad |= t_fault_unpin(b, "fault_unpin_1page_none", "resident 1 page, unpin VS_STREAM_NONE", P,
                         VS_STREAM_NONE);
    bad |= t_fault_unpin(b, "fault_unpin_1page_stream", "resident 1 page, unpin on a stream", P,
                         b->stream);
    bad |= t_fault_unpin(b, "fault_unpin_range_none", "resident N pages, unpin VS_STREAM_NONE", R,
                         VS_STREAM_NONE);
    bad |= t_fault_unpin(b, "fault_unpin_range_default", "resident N pages, unpin on stream 0", R,
                         0);
    bad |= t_fault_unpin(b, "fault_unpin_range_stream", "resident N pages, unpin on a stream", R,
                         b->stream);
    bad |= evict_all(b);
    bad |= t_map_page(b);
    bad |= t_miss(b);
    bad |= t_evict(b, "evict_range_none", "free_memory(N pages), unpinned with no event",
                   EVICT_NO_EVENTS);
    bad |= t_evict(b, "evict_range_done_events", "free_memory(N pages), events complete",
                   EVICT_DONE_EVENTS);
    bad |= t_evict(b, "evict_range_pending", "free_memory(N pages), H2D copy still running",
                   EVICT_PENDING_EVENTS);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    bench_ctx b;
    memset(&b, 0, sizeof b);
    if (parse_args(argc, argv, &b.opts))
        return 2;
    vs_device_props props;
    int rc = 1;
    if (setup(&b, &props) == 0) {
        rc = run_all(&b) ? 1 : 0;
        if (!b.opts.quiet)
            print_table(&b, &props);
        if (b.opts.json && write_json(&b, &props, b.opts.json))
            rc = 1;
    }
    teardown(&b);
    return rc;
}
