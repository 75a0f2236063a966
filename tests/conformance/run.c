/* Running one test: a fresh device, the test function, the end-of-test checks
 * (invariants, close, leak check), in a forked child with a timeout.
 *
 * Note [Conformance isolation]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
 * Each test runs in its own child process (fork), so a crash -- a GPU driver
 * fault, a SIGSEGV on the simulator's unmapped memory -- is that test's
 * failure, reported with the signal and the last checkpoint (file:line of the
 * last check reached). The result lives in a MAP_SHARED page that the child
 * fills as it goes. The parent never opens a device or probes a backend
 * itself: GPU drivers (CUDA) cannot be used in a child forked after they were
 * initialised, so even the probe that names the device runs in a child. The
 * parent polls the child and kills it (SIGKILL) after --timeout seconds.
 * --no-fork runs everything in the calling process, for a debugger.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* ---------------------------------------------------------------- checkpoints and outcomes */

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void vsc_mark(vsc_ctx *t, const char *file, int line)
{
    snprintf(t->res->where, sizeof t->res->where, "%s:%d", base_name(file), line);
}

_Noreturn void vsc_fail(vsc_ctx *t, const char *file, int line, const char *fmt, ...)
{
    vsc_result *r = t->res;
    if (r->outcome != VSC_FAIL) { /* keep the first failure */
        r->outcome = VSC_FAIL;
        int n = snprintf(r->message, sizeof r->message, "%s:%d: ", base_name(file), line);
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < sizeof r->message)
            vsnprintf(r->message + n, sizeof r->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    longjmp(*t->abort, 1);
}

_Noreturn void vsc_skip(vsc_ctx *t, const char *fmt, ...)
{
    vsc_result *r = t->res;
    r->outcome = VSC_SKIP;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    longjmp(*t->abort, 1);
}

void vsc_note(vsc_ctx *t, const char *fmt, ...)
{
    if (!t->verbose)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "    note: %s\n", buf);
}

/* ---------------------------------------------------------------- log capture */

typedef struct log_sink {
    char *buf;          /* keeps the latest lines, oldest dropped first */
    size_t cap;
    bool echo;          /* -v: also to stderr */
} log_sink;

static void capture_log(int level, const char *message, void *user)
{
    (void)level;
    log_sink *s = user;
    if (s->echo)
        fprintf(stderr, "    log: %s\n", message);
    size_t have = strlen(s->buf), add = strlen(message) + 1;
    if (add >= s->cap) {
        message += add - s->cap + 1;
        add = s->cap - 1;
    }
    if (have + add >= s->cap) { /* drop whole old lines to make room */
        size_t drop = have + add - s->cap + 1;
        const char *nl = strchr(s->buf + drop - 1, '\n');
        drop = nl ? (size_t)(nl - s->buf) + 1 : have;
        memmove(s->buf, s->buf + drop, have - drop + 1);
        have -= drop;
    }
    snprintf(s->buf + have, s->cap - have, "%s\n", message);
}

/* ---------------------------------------------------------------- opening the test device */

vs_status vsc_open_device(vsc_ctx *t, uint32_t flags)
{
    vs_device_config c;
    vs_status st = vs_device_config_init(&c); /* VRAMSWAP_CONF may choose the page size */
    if (st != VS_OK)
        return st;
    c.flags = flags | VS_DEVICE_NO_REGROW; /* the watermark tests check the bare rule */
    c.headroom = 0;     /* Note [Conformance sizes] */
    c.limit = 0;
    c.mem_poll_ns = 0;
    st = vs_device_open(t->backend, t->ordinal, &c, &t->dev);
    if (st != VS_OK)
        return st;
    t->cfg = c;
    vs_memory_info m;
    if ((st = vs_device_get_props(t->dev, &t->props)) != VS_OK ||
        (st = vs_device_memory_info(t->dev, &m)) != VS_OK)
        return st;
    t->page = t->props.page_size;
    uint64_t own = m.used_weights + m.used_scratch + m.used_intercepted;
    if (t->props.total_memory > m.used_others + own + VSC_GIB + 256 * VSC_MIB) {
        st = vs_device_set_limit(t->dev, m.used_others + own + VSC_GIB, 0);
        if (st != VS_OK || (st = vs_device_memory_info(t->dev, &m)) != VS_OK)
            return st;
    }
    t->work = m.available;
    return VS_OK;
}

/* ---------------------------------------------------------------- one test, in this process */

static uint64_t test_seed(uint64_t seed, const vsc_group *g, const vsc_test *tc)
{
    uint64_t h = 1469598103934665603ull ^ seed; /* FNV-1a over "group/test" */
    for (const char *s = g->name; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    h = (h ^ '/') * 1099511628211ull;
    for (const char *s = tc->name; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Live-object counters that must be back where they were. */
static void compare_counters(vsc_ctx *t, const vs_sim_counters *a, const vs_sim_counters *b)
{
    char msg[512] = "";
    size_t n = 0;
#define VSC_CMP(field)                                                                              \
    if (a->field != b->field && n < sizeof msg)                                                     \
        n += (size_t)snprintf(msg + n, sizeof msg - n, " %s %llu -> %llu", #field,                  \
                              (unsigned long long)a->field, (unsigned long long)b->field);
    VSC_CMP(reservations)
    VSC_CMP(reserved_bytes)
    VSC_CMP(phys_chunks)
    VSC_CMP(phys_bytes)
    VSC_CMP(mapped_bytes)
    VSC_CMP(host_registrations)
    VSC_CMP(host_registered_bytes)
    VSC_CMP(streams)
    VSC_CMP(events)
    VSC_CMP(external_bytes)
#undef VSC_CMP
    if (n)
        vsc_fail(t, __FILE__, __LINE__, "driver objects leaked after close:%s", msg);
}

static void run_here(const vsc_options *o, const char *backend, const vsc_group *g, const vsc_test *tc,
                     vsc_result *res)
{
    memset(res, 0, sizeof *res);
    /* Heap-allocated: its fields change between setjmp and longjmp. */
    vsc_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        res->outcome = VSC_FAIL;
        snprintf(res->message, sizeof res->message, "out of host memory");
        res->finished = 1;
        return;
    }
    jmp_buf jb;
    t->backend = backend;
    t->ordinal = o->ordinal;
    t->hooks = vsc_backend_find(backend);
    t->needs = tc->needs;
    t->seed = test_seed(o->seed, g, tc);
    t->verbose = o->verbose;
    t->res = res;
    t->abort = &jb;
    log_sink sink = {res->log, sizeof res->log, o->verbose};
    vs_set_log_callback(capture_log, &sink);

    vs_sim_counters before, after;
    bool counted = false;
    volatile double started = 0; /* read after longjmp */
    if (setjmp(jb) == 0) {
        char why[256] = "";
        vsc_mark(t, __FILE__, __LINE__);
        if (t->hooks->prepare) {
            vs_status st = t->hooks->prepare(o->ordinal, tc->needs, why, sizeof why);
            if (st != VS_OK)
                vsc_fail(t, __FILE__, __LINE__, "preparing backend %s: %s (%s)", backend, why,
                         vs_status_name(st));
        }
        counted = t->hooks->counters && t->hooks->counters(o->ordinal, &before);
        vs_status st = vsc_open_device(t, (tc->needs & VSC_NEED_INTERCEPT) ? VS_DEVICE_INTERCEPT : 0);
        if (st != VS_OK)
            vsc_fail(t, __FILE__, __LINE__, "opening %s:%d failed: %s", backend, o->ordinal, vs_status_name(st));
        started = vsc_now_ms();
        tc->fn(t);
        res->ms = vsc_now_ms() - started;
        /* Every test ends with the invariants intact and a clean close. */
        if (t->dev) {
            VSC_OK(t, vs_device_check_invariants(t->dev));
            vsc_close(t);
        }
        if (counted && t->hooks->counters(o->ordinal, &after))
            compare_counters(t, &before, &after);
        res->outcome = VSC_PASS;
    } else {
        if (started > 0 && res->ms == 0)
            res->ms = vsc_now_ms() - started;
        if (t->dev) {
            (void)vs_device_close(t->dev);
            t->dev = NULL;
        }
    }
    if (t->native && t->hooks->native_end)
        t->hooks->native_end(t->native);
    vs_set_log_callback(NULL, NULL);
    for (size_t i = 0; i < t->nallocs; i++)
        free(t->allocs[i]);
    free(t);
    res->finished = 1;
}

/* ---------------------------------------------------------------- in a child */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wait for pid up to timeout_s; returns false on timeout (the child is killed). */
static bool wait_child(pid_t pid, int timeout_s, int *status)
{
    double deadline = now_ms() + timeout_s * 1000.0;
    struct timespec tick = {0, 1000000}; /* 1 ms */
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR) {
            *status = 0;
            return true;
        }
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
            }
            return false;
        }
        nanosleep(&tick, NULL);
    }
}

void vsc_run_test(const vsc_options *o, const char *backend, const vsc_group *g, const vsc_test *tc,
                  vsc_result *res)
{
    if (o->no_fork) {
        run_here(o, backend, g, tc, res);
        return;
    }
    vsc_result *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(res, 0, sizeof *res);
    if (shared == MAP_FAILED) {
        res->outcome = VSC_FAIL;
        snprintf(res->message, sizeof res->message, "mmap of the result page failed: %s", strerror(errno));
        return;
    }
    memset(shared, 0, sizeof *shared);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        run_here(o, backend, g, tc, shared);
        fflush(stderr);
        _exit(0);
    }
    if (pid < 0) {
        res->outcome = VSC_FAIL;
        snprintf(res->message, sizeof res->message, "fork failed: %s", strerror(errno));
        munmap(shared, sizeof *shared);
        return;
    }
    double t0 = now_ms();
    int status = 0;
    bool exited = wait_child(pid, o->timeout_s, &status);
    *res = *shared;
    munmap(shared, sizeof *shared);
    const char *where = res->where[0] ? res->where : "the start";
    if (!exited) {
        res->outcome = VSC_FAIL;
        res->ms = now_ms() - t0;
        snprintf(res->message, sizeof res->message, "timed out after %d s (last checkpoint %s)", o->timeout_s,
                 where);
    } else if (WIFSIGNALED(status)) {
        res->outcome = VSC_FAIL;
        res->ms = now_ms() - t0;
        snprintf(res->message, sizeof res->message, "crashed: signal %d (%s) after %s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), where);
    } else if (!res->finished) {
        res->outcome = VSC_FAIL;
        res->ms = now_ms() - t0;
        snprintf(res->message, sizeof res->message, "exited with status %d before finishing (after %s)",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1, where);
    }
}

/* ---------------------------------------------------------------- the probe */

static void probe_here(const vsc_options *o, vsc_probe *p)
{
    memset(p, 0, sizeof *p);
    log_sink sink = {p->log, sizeof p->log, o->verbose};
    vs_set_log_callback(capture_log, &sink);
    vs_device_config c;
    vs_device_t *dev = NULL;
    vs_status st = vs_device_config_init(&c);
    if (st == VS_OK) {
        c.headroom = 0;
        c.limit = 0;
        c.flags = 0;
        st = vs_device_open(o->backend, o->ordinal, &c, &dev);
    }
    if (st == VS_OK) {
        st = vs_device_get_props(dev, &p->props);
        if (st == VS_OK)
            st = vs_device_memory_info(dev, &p->mem);
        vs_status cst = vs_device_close(dev);
        if (st == VS_OK)
            st = cst;
    }
    vs_sim_counters counters;
    const vsc_backend *hooks = vsc_backend_find(st == VS_OK ? p->props.backend : o->backend);
    p->leak_check = hooks->counters && hooks->counters(o->ordinal, &counters);
    p->status = st;
    p->opened = st == VS_OK;
    snprintf(p->backend, sizeof p->backend, "%s", p->opened ? p->props.backend : o->backend);
    vs_set_log_callback(NULL, NULL);
}

void vsc_run_probe(const vsc_options *o, vsc_probe *p)
{
    if (o->no_fork) {
        probe_here(o, p);
        return;
    }
    vsc_probe *shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(p, 0, sizeof *p);
    p->status = VS_ERR_INTERNAL;
    snprintf(p->backend, sizeof p->backend, "%s", o->backend);
    if (shared == MAP_FAILED)
        return;
    memset(shared, 0, sizeof *shared);
    shared->status = VS_ERR_INTERNAL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        probe_here(o, shared);
        _exit(0);
    }
    if (pid > 0) {
        int status = 0;
        if (wait_child(pid, o->timeout_s, &status) && WIFEXITED(status))
            *p = *shared;
        else
            snprintf(p->log, sizeof p->log, "the probe process %s\n",
                     WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "did not finish");
    }
    munmap(shared, sizeof *shared);
}
