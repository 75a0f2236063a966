/* libFuzzer harness: the public C API as an op interpreter on the simulator.
 *
 * The input is a program: each op is one byte (which call) followed by the
 * bytes its arguments need (fuzz.h reads past the end as zeros). A device
 * under a small limit runs VBARs, faults and unpins, priorities, watermarks and
 * floors, reclaim and free_memory, scratch and host buffers, streams, events
 * and copies, simulator fault injection, calls on stale and foreign handles,
 * and close/reopen. After every op the invariant checker must pass and no call
 * may answer VS_ERR_INTERNAL. At the end everything is unpinned and closed:
 * a close that answers VS_OK must leave the simulator's live counters where
 * they were before the device opened (nothing leaked); VS_ERR_BACKEND is the
 * documented answer when the driver kept memory (Note [Stuck chunks]).
 * Any violation aborts (a crash for libFuzzer, a failed test for the replay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vramswap.h>
#include <vramswap/sim.h>

#include "fuzz.h"

#define PAGE ((uint64_t)64 << 10)
#define NV 4
#define NPIN 16
#define NB 2

typedef struct pin {
    int v;
    uint64_t off, size;
} pin;

typedef struct state {
    vs_device_t *dev;
    vs_vbar_t *vbar[NV];
    vs_scratch_t *scratch[NB];
    vs_host_buffer_t *host[NB];
    uintptr_t stream[NB], event[NB];
    pin pins[NPIN];
    int npins;
    void *stale[8]; /* destroyed handles, to call again */
    int nstale;
    vs_sim_counters base;
} state;

static void fail(const char *what, vs_status st)
{
    fprintf(stderr, "fuzz_api: %s: %s\n", what, vs_status_name(st));
    abort();
}

/* Every status a call may legitimately answer; VS_ERR_INTERNAL never. */
static vs_status ok_status(const char *what, vs_status st)
{
    if (st == VS_ERR_INTERNAL)
        fail(what, st);
    return st;
}

static void check(state *s)
{
    if (!s->dev)
        return;
    vs_status st = vs_device_check_invariants(s->dev);
    if (st != VS_OK)
        fail("invariants", st);
}

/* The pool recycles slots: a stale pointer may name one of our live objects again. */
static int is_live(const state *s, const void *h)
{
    if (h == (const void *)s->dev)
        return 1;
    for (int i = 0; i < NV; i++)
        if (h == (const void *)s->vbar[i])
            return 1;
    for (int i = 0; i < NB; i++)
        if (h == (const void *)s->scratch[i] || h == (const void *)s->host[i])
            return 1;
    return 0;
}

static void stale(state *s, void *h)
{
    s->stale[s->nstale++ % 8] = h;
}

static uint64_t pick_size(vs_fuzz_in *in)
{
    static const uint64_t extreme[] = {0, 1, PAGE - 1, PAGE, PAGE + 1, UINT64_MAX, UINT64_MAX - PAGE + 2,
                                       (uint64_t)1 << 40, (uint64_t)1 << 63};
    uint8_t k = vs_fuzz_u8(in);
    if (k < 16)
        return extreme[k % (sizeof extreme / sizeof extreme[0])];
    return (uint64_t)vs_fuzz_u16(in) * 257 % (24 * PAGE) + 1;
}

static void open_dev(state *s, vs_fuzz_in *in)
{
    vs_device_config c;
    vs_device_config_init(&c);
    c.headroom = 0;
    c.limit = (uint64_t)(vs_fuzz_u8(in) % 16 + 2) * PAGE;
    if (vs_sim_get_counters(0, &s->base) != VS_OK)
        fail("sim counters", VS_ERR_INTERNAL);
    vs_status st = vs_device_open("sim", 0, &c, &s->dev);
    if (st != VS_OK)
        fail("open", st);
}

static void unpin_all(state *s)
{
    for (int i = 0; i < s->npins; i++) {
        pin *p = &s->pins[i];
        if (s->vbar[p->v])
            ok_status("unpin", vs_vbar_unpin(s->vbar[p->v], p->off, p->size, VS_STREAM_NONE));
    }
    s->npins = 0;
}

static void drop_pins_of(state *s, int v)
{
    int k = 0;
    for (int i = 0; i < s->npins; i++)
        if (s->pins[i].v != v)
            s->pins[k++] = s->pins[i];
    s->npins = k;
}

static void close_dev(state *s)
{
    if (!s->dev)
        return;
    vs_sim_inject_clear(0);
    unpin_all(s);
    for (int i = 0; i < NB; i++) {
        if (s->event[i])
            vs_event_destroy(s->dev, s->event[i]);
        if (s->stream[i]) {
            vs_stream_synchronize(s->dev, s->stream[i]);
            vs_stream_destroy(s->dev, s->stream[i]);
        }
        s->event[i] = s->stream[i] = 0;
    }
    check(s);
    vs_stats stats;
    vs_device_get_stats(s->dev, &stats);
    vs_status st = vs_device_close(s->dev);
    if (st != VS_OK && st != VS_ERR_BACKEND)
        fail("close", st);
    if (vs_device_check_invariants(s->dev) != VS_ERR_INVALID_HANDLE)
        fail("closed device still answers", VS_ERR_INTERNAL);
    vs_sim_counters c;
    vs_sim_get_counters(0, &c);
    if (st == VS_OK && (c.reservations != s->base.reservations || c.phys_chunks != s->base.phys_chunks ||
                        c.mapped_bytes != s->base.mapped_bytes ||
                        c.host_registrations != s->base.host_registrations || c.streams != s->base.streams ||
                        c.events != s->base.events)) {
        fprintf(stderr, "fuzz_api: close said OK but the simulator holds more: reservations %llu->%llu chunks "
                        "%llu->%llu mapped %llu->%llu host %llu->%llu streams %llu->%llu events %llu->%llu\n",
                (unsigned long long)s->base.reservations, (unsigned long long)c.reservations,
                (unsigned long long)s->base.phys_chunks, (unsigned long long)c.phys_chunks,
                (unsigned long long)s->base.mapped_bytes, (unsigned long long)c.mapped_bytes,
                (unsigned long long)s->base.host_registrations, (unsigned long long)c.host_registrations,
                (unsigned long long)s->base.streams, (unsigned long long)c.streams,
                (unsigned long long)s->base.events, (unsigned long long)c.events);
        abort();
    }
    if (st == VS_ERR_BACKEND && stats.leaked_bytes == 0 && stats.stuck_chunks == 0 &&
        c.reservations == s->base.reservations && c.phys_chunks == s->base.phys_chunks)
        fail("close reported a leak that is nowhere", st);
    for (int i = 0; i < NV; i++)
        if (s->vbar[i])
            stale(s, s->vbar[i]);
    stale(s, s->dev);
    memset(s->vbar, 0, sizeof s->vbar);
    memset(s->scratch, 0, sizeof s->scratch);
    memset(s->host, 0, sizeof s->host);
    s->dev = NULL;
}

/* A copy between two things we know to be valid: a pinned range, a scratch
 * buffer's mapped part, a host buffer's committed part. */
static void do_copy(state *s, vs_fuzz_in *in)
{
    int b = vs_fuzz_u8(in) % NB;
    if (!s->npins || !s->host[b] || !s->stream[b])
        return;
    pin *p = &s->pins[vs_fuzz_u8(in) % s->npins];
    void *hp;
    uint64_t hsize;
    if (vs_host_buffer_get(s->host[b], &hp, &hsize, NULL) != VS_OK || hsize == 0)
        return;
    vs_devptr_t base;
    if (vs_vbar_get_base(s->vbar[p->v], &base, NULL) != VS_OK)
        return;
    uint64_t n = p->size < hsize ? p->size : hsize;
    int kind = vs_fuzz_u8(in) & 1 ? VS_COPY_HOST_TO_DEVICE : VS_COPY_DEVICE_TO_HOST;
    uintptr_t dst = kind == VS_COPY_HOST_TO_DEVICE ? base + p->off : (uintptr_t)hp;
    uintptr_t src = kind == VS_COPY_HOST_TO_DEVICE ? (uintptr_t)hp : base + p->off;
    ok_status("memcpy", vs_memcpy_async(s->dev, kind, dst, src, n, s->stream[b]));
    /* A pin may be dropped with VS_STREAM_NONE next: wait, as an application
     * must before it unpins without a stream. */
    ok_status("stream_sync", vs_stream_synchronize(s->dev, s->stream[b]));
}

static void step(state *s, vs_fuzz_in *in)
{
    uint8_t op = vs_fuzz_u8(in) % 30;
    int v = vs_fuzz_u8(in) % NV;
    vs_vbar_t *vb = s->vbar[v];
    vs_status st;
    switch (op) {
    case 0:
        if (!vb) {
            st = ok_status("vbar_create", vs_vbar_create(s->dev, pick_size(in), &s->vbar[v]));
            if (st != VS_OK)
                s->vbar[v] = NULL;
        }
        break;
    case 1:
        if (vb) {
            st = ok_status("vbar_destroy", vs_vbar_destroy(vb));
            if (st != VS_ERR_BUSY) {
                stale(s, vb);
                s->vbar[v] = NULL;
                drop_pins_of(s, v);
            }
        }
        break;
    case 2:
    case 3:
    case 4:
        if (vb && s->npins < NPIN) {
            uint64_t off = pick_size(in) - 1, size = pick_size(in);
            uint64_t sig;
            st = ok_status("fault", vs_vbar_fault(vb, off, size, &sig));
            if (st == VS_OK)
                s->pins[s->npins++] = (pin){v, off, size};
        }
        break;
    case 5:
    case 6:
        if (s->npins) {
            int i = vs_fuzz_u8(in) % s->npins;
            pin p = s->pins[i];
            int b = vs_fuzz_u8(in) % (NB + 1);
            uintptr_t stream = b < NB && s->stream[b] ? s->stream[b] : VS_STREAM_NONE;
            st = ok_status("unpin", vs_vbar_unpin(s->vbar[p.v], p.off, p.size, stream));
            if (st != VS_OK && st != VS_ERR_BACKEND)
                fail("unpin of a pinned range", st);
            s->pins[i] = s->pins[--s->npins];
        }
        break;
    case 7: {
        /* Unpin of ranges never pinned: refused. Only on a VBAR without
         * recorded pins (a random range could release one of ours). */
        int has_pins = 0;
        for (int i = 0; i < s->npins; i++)
            has_pins |= s->pins[i].v == v;
        if (vb && !has_pins && ok_status("unpin unpinned", vs_vbar_unpin(vb, pick_size(in), pick_size(in),
                                                                           VS_STREAM_NONE)) == VS_OK)
            fail("unpin of an unpinned range accepted", VS_OK);
        break;
    }
    case 8:
        if (vb)
            ok_status(vs_fuzz_u8(in) & 1 ? "prioritize" : "deprioritize",
                      vs_fuzz_u8(in) & 1 ? vs_vbar_prioritize(vb) : vs_vbar_deprioritize(vb));
        break;
    case 9:
        if (vb)
            ok_status("watermark", vs_vbar_set_watermark(vb, pick_size(in)));
        break;
    case 10:
        if (vb)
            ok_status("floor", vs_vbar_set_floor(vb, pick_size(in)));
        break;
    case 11:
        if (vb)
            ok_status("vbar_free_memory", vs_vbar_free_memory(vb, pick_size(in), NULL));
        break;
    case 12:
        ok_status("free_memory", vs_device_free_memory(s->dev, pick_size(in), NULL));
        break;
    case 13:
        ok_status("reclaim", vs_device_reclaim(s->dev, pick_size(in), NULL));
        break;
    case 14: {
        uint64_t limit = (uint64_t)(vs_fuzz_u8(in) % 24) * PAGE;
        ok_status("set_limit", vs_device_set_limit(s->dev, limit, limit ? PAGE * (vs_fuzz_u8(in) % 2) : 0));
        break;
    }
    case 15: {
        int b = v % NB;
        if (!s->scratch[b]) {
            if (ok_status("scratch_create", vs_scratch_create(s->dev, pick_size(in), &s->scratch[b])) != VS_OK)
                s->scratch[b] = NULL;
        } else {
            ok_status("scratch_resize", vs_scratch_resize(s->scratch[b], pick_size(in)));
        }
        break;
    }
    case 16: {
        int b = v % NB;
        if (s->scratch[b]) {
            ok_status("scratch_destroy", vs_scratch_destroy(s->scratch[b]));
            stale(s, s->scratch[b]);
            s->scratch[b] = NULL;
        }
        break;
    }
    case 17: {
        int b = v % NB;
        if (!s->host[b]) {
            if (ok_status("host_create", vs_host_buffer_create(s->dev, pick_size(in) % (64 << 20), &s->host[b])) != VS_OK)
                s->host[b] = NULL;
        } else {
            ok_status("host_resize", vs_host_buffer_resize(s->host[b], pick_size(in) % (8 << 20)));
        }
        break;
    }
    case 18: {
        int b = v % NB;
        if (s->host[b]) {
            ok_status("host_destroy", vs_host_buffer_destroy(s->host[b]));
            stale(s, s->host[b]);
            s->host[b] = NULL;
        }
        break;
    }
    case 19: {
        int b = v % NB;
        if (!s->stream[b]) {
            if (ok_status("stream_create", vs_stream_create(s->dev, &s->stream[b])) != VS_OK)
                s->stream[b] = 0;
            if (!s->event[b] && ok_status("event_create", vs_event_create(s->dev, &s->event[b])) != VS_OK)
                s->event[b] = 0;
        } else if (s->event[b]) {
            ok_status("event_record", vs_event_record(s->dev, s->event[b], s->stream[b]));
            ok_status("event_query", vs_event_query(s->dev, s->event[b]));
        }
        break;
    }
    case 20: {
        int b = v % NB;
        if (s->stream[b])
            ok_status("stream_sync", vs_stream_synchronize(s->dev, s->stream[b]));
        if (s->event[b])
            ok_status("event_sync", vs_event_synchronize(s->dev, s->event[b]));
        break;
    }
    case 21:
        do_copy(s, in);
        break;
    case 22: {
        static const vs_status errs[] = {VS_ERR_OUT_OF_MEMORY, VS_ERR_NOT_READY, VS_ERR_BACKEND};
        int sop = vs_fuzz_u8(in) % VS_SIM_OP_COUNT_;
        uint32_t skip = vs_fuzz_u8(in) % 8, count = vs_fuzz_u8(in) % 12;
        vs_sim_inject(0, sop, skip, count, errs[vs_fuzz_u8(in) % 3]);
        break;
    }
    case 23:
        vs_sim_inject_clear(0);
        break;
    case 24:
        if (vb) {
            uint64_t sigs[8];
            size_t count;
            ok_status("page_signatures", vs_vbar_page_signatures(vb, pick_size(in) - 1, pick_size(in), sigs, 8, &count));
            uint8_t map[8];
            ok_status("residency", vs_vbar_residency(vb, map, 8, &count));
            uint64_t off;
            ok_status("alloc", vs_vbar_alloc(vb, pick_size(in), (uint64_t)1 << (vs_fuzz_u8(in) % 64), &off));
        }
        break;
    case 25:
        if (s->nstale) {
            /* Stale handles of every kind, passed as every kind: refused, never followed. */
            void *h = s->stale[vs_fuzz_u8(in) % (s->nstale < 8 ? s->nstale : 8)];
            if (is_live(s, h))
                break;
            if (ok_status("stale vbar", vs_vbar_fault(h, 0, 1, NULL)) == VS_OK)
                fail("stale handle accepted", VS_OK);
            ok_status("stale scratch", vs_scratch_resize(h, 0));
            ok_status("stale host", vs_host_buffer_resize(h, 0));
            if (ok_status("stale device", vs_device_check_invariants(h)) == VS_OK)
                fail("stale device accepted", VS_OK);
        }
        break;
    case 26: {
        /* Foreign pointers: a stack address, an unaligned one, a live object of another kind. */
        char local[64];
        if (vs_vbar_fault((vs_vbar_t *)local, 0, 1, NULL) != VS_ERR_INVALID_HANDLE ||
            vs_device_check_invariants((vs_device_t *)(local + 1)) != VS_ERR_INVALID_HANDLE)
            fail("foreign pointer accepted", VS_OK);
        if (vb && vs_device_check_invariants((vs_device_t *)vb) != VS_ERR_INVALID_HANDLE)
            fail("a VBAR accepted as a device", VS_OK);
        break;
    }
    case 27:
        close_dev(s);
        open_dev(s, in);
        break;
    case 28: {
        vs_memory_info mi;
        ok_status("memory_info", vs_device_memory_info(s->dev, &mi));
        vs_stats st2;
        ok_status("stats", vs_device_get_stats(s->dev, &st2));
        if (st2.stuck_chunks > 4096)
            fail("stuck chunks pile up", VS_ERR_INTERNAL);
        break;
    }
    default:
        ok_status("reset_floors", vs_device_reset_floors(s->dev));
        break;
    }
    check(s);
}

static void setup_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    vs_set_log_level(getenv("VS_FUZZ_LOG") ? VS_LOG_ERROR : VS_LOG_OFF); /* errors are expected */
    vs_sim_config sc;
    vs_sim_config_default(&sc);
    sc.device_count = 1;
    sc.total_memory = 32 * PAGE;
    sc.granularity = sc.preferred_page_size = PAGE;
    sc.copy_bandwidth = 0;
    if (vs_sim_configure(&sc) != VS_OK)
        fail("sim configure", VS_ERR_INTERNAL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    vs_fuzz_in in = {data, size, 0};
    state s;
    memset(&s, 0, sizeof s);
    open_dev(&s, &in);
    for (int ops = 0; ops < 256 && in.pos < in.len; ops++)
        step(&s, &in);
    close_dev(&s);
    return 0;
}
