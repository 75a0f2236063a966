/* simdev_stream.c: streams, their workers, copies and events.
 *
 * Note [Sim streams]
 * A stream is a FIFO of operations (copy, memset, host function, event marker,
 * wait) numbered 1, 2, ... (seq). Its worker thread, started at the first
 * operation, pops the head under the device lock, runs it with the lock
 * released (copies, host functions), and on completion sets done_seq and
 * broadcasts the device's cv_done. Every "has X completed" question is then
 * "is stream.done_seq >= seq": an event is (stream handle, seq of its marker);
 * a wait operation holds a snapshot of that pair, so re-recording the event
 * later does not change what an earlier wait waits for. A stream that no longer
 * exists was drained before it was destroyed, so anything recorded on it is
 * complete. A worker whose head is a wait sleeps on cv_done; other streams keep
 * running since each has its own thread.
 *
 * Note [Copies never fault]
 * A copy is validated when enqueued and again when it starts executing, under
 * the lock: every device byte it touches must be mapped read/write. While it
 * executes, its device ranges are published in stream.busy_*; simdev_unmap,
 * simdev_set_access(NONE) and simdev_free wait (sim_wait_not_busy) until no
 * executing copy overlaps the range they are about to take away. So the worker
 * only ever touches accessible memory; a copy whose memory went away while it
 * was queued is skipped and reported as the stream's async error.
 *
 * Note [Copy engine throttle]
 * With copy_bandwidth set, each direction (H2D, D2H, D2D) is one engine with a
 * timeline: a copy of n bytes occupies [start, start + n/bandwidth) where start
 * is max(now, engine free). Its worker sleeps until the end of that slot, so
 * concurrent streams share the bandwidth, and copies from pageable host memory
 * take four times as long.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simdev_internal.h"

/* ---------------------------------------------------------------- lookups */

static sim_stream *stream_get(simdev_t *dev, simdev_handle h)
{
    if (h == 0)
        return &dev->defstream;
    return sim_slots_get(&dev->streams, dev->ordinal, h);
}

/* A live stream that accepts work. */
static vs_status stream_usable(simdev_t *dev, simdev_handle h, const char *what, sim_stream **out)
{
    sim_stream *s = stream_get(dev, h);
    if (!s || s->dying)
        return sim_fail(VS_ERR_INVALID_HANDLE, "%s: unknown stream 0x%llx", what,
                        (unsigned long long)h);
    *out = s;
    return VS_OK;
}

static bool target_done(simdev_t *dev, simdev_handle stream, uint64_t seq)
{
    sim_stream *s = stream_get(dev, stream);
    return !s || s->done_seq >= seq;
}

static bool event_done(simdev_t *dev, const sim_event *ev)
{
    return !ev->recorded || target_done(dev, ev->stream, ev->seq);
}

static void wait_target(simdev_t *dev, simdev_handle stream, uint64_t seq)
{
    while (!target_done(dev, stream, seq))
        pthread_cond_wait(&dev->cv_done, &dev->lock);
}

/* ---------------------------------------------------------------- busy ranges */

static bool stream_busy_on(const sim_stream *s, uint64_t lo, uint64_t hi)
{
    for (int i = 0; i < s->nbusy; i++)
        if (s->busy_lo[i] < hi && lo < s->busy_hi[i])
            return true;
    return false;
}

static bool any_busy_on(const simdev_t *dev, uint64_t lo, uint64_t hi)
{
    if (stream_busy_on(&dev->defstream, lo, hi))
        return true;
    for (uint32_t i = 0; i < dev->streams.cap; i++) {
        const sim_stream *s = dev->streams.items[i];
        if (s && stream_busy_on(s, lo, hi))
            return true;
    }
    return false;
}

bool sim_wait_not_busy(simdev_t *dev, uint64_t lo, uint64_t hi)
{
    bool waited = false;
    while (any_busy_on(dev, lo, hi)) {
        pthread_cond_wait(&dev->cv_done, &dev->lock);
        waited = true;
    }
    return waited;
}

/* ---------------------------------------------------------------- copies */

static bool op_touches(const sim_op *op, uint64_t lo, uint64_t hi)
{
    if (op->type == SIM_OP_MEMSET)
        return op->u.memset.dst < hi && lo < op->u.memset.dst + op->u.memset.size;
    if (op->type != SIM_OP_COPY)
        return false;
    return (op->u.copy.dst < hi && lo < op->u.copy.dst + op->u.copy.size) ||
           (op->u.copy.src < hi && lo < op->u.copy.src + op->u.copy.size);
}

/* The first queued or executing op of s touching [lo, hi); 0 if none. */
static uint64_t stream_pending_on(const sim_stream *s, uint64_t lo, uint64_t hi)
{
    for (const sim_op *op = s->head; op; op = op->next)
        if (op_touches(op, lo, hi))
            return op->seq;
    return 0;
}

bool sim_wait_unused(simdev_t *dev, uint64_t lo, uint64_t hi)
{
    bool waited = false;
    for (;;) {
        simdev_handle h = 0;
        uint64_t seq = stream_pending_on(&dev->defstream, lo, hi);
        for (uint32_t i = 0; i < dev->streams.cap && !seq; i++) {
            const sim_stream *s = dev->streams.items[i];
            if (s && (seq = stream_pending_on(s, lo, hi)) != 0)
                h = s->handle;
        }
        if (!seq)
            return waited;
        wait_target(dev, h, seq);
        waited = true;
    }
}

/* ---------------------------------------------------------------- copies */

/* Check one side of a copy. Device memory (required for a device side, and for
 * a host side that lies in device memory) must be mapped read/write; it is
 * recorded as a busy range. */
static vs_status check_side(simdev_t *dev, uint64_t p, uint64_t size, bool device, sim_op *op,
                            sim_stream *s)
{
    if (size > UINT64_MAX - p || p == 0)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "copy: bad address 0x%llx +%llu",
                        (unsigned long long)p, (unsigned long long)size);
    if (!device && !sim_mem_overlaps(dev, p, size))
        return VS_OK;
    vs_status st = sim_mem_check_rw(dev, p, size);
    if (st != VS_OK)
        return st;
    if (s) {
        s->busy_lo[s->nbusy] = p;
        s->busy_hi[s->nbusy] = p + size;
        s->nbusy++;
    }
    (void)op;
    return VS_OK;
}

/* Validate a copy/memset op; with s, publish its busy ranges into s. */
static vs_status check_op(simdev_t *dev, sim_op *op, sim_stream *s)
{
    vs_status st;
    if (s)
        s->nbusy = 0;
    if (op->type == SIM_OP_MEMSET)
        st = check_side(dev, op->u.memset.dst, op->u.memset.size, true, op, s);
    else {
        int k = op->u.copy.kind;
        st = check_side(dev, op->u.copy.dst, op->u.copy.size,
                        k == VS_COPY_HOST_TO_DEVICE || k == VS_COPY_DEVICE_TO_DEVICE, op, s);
        if (st == VS_OK)
            st = check_side(dev, op->u.copy.src, op->u.copy.size,
                            k == VS_COPY_DEVICE_TO_HOST || k == VS_COPY_DEVICE_TO_DEVICE, op, s);
    }
    if (st != VS_OK && s)
        s->nbusy = 0;
    return st;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Reserve the copy engine (Note [Copy engine throttle]); lock held. Returns the
 * end of the slot, 0 when unthrottled; *start gets its start. */
static uint64_t engine_slot(simdev_t *dev, const sim_op *op, uint64_t *start)
{
    if (dev->bandwidth == 0)
        return 0;
    int dir = 2;
    uint64_t size = op->u.memset.size;
    double bw = (double)dev->bandwidth;
    if (op->type == SIM_OP_COPY) {
        dir = op->u.copy.kind - 1;
        size = op->u.copy.size;
        if (op->u.copy.pageable)
            bw /= 4;
    }
    uint64_t dur = (uint64_t)((double)size * 1e9 / bw);
    uint64_t now = sim_now_ns();
    *start = dev->engine_free_ns[dir] > now ? dev->engine_free_ns[dir] : now;
    dev->engine_free_ns[dir] = *start + dur;
    return *start + dur;
}

/* ---------------------------------------------------------------- the worker */

/* Run the head operation of s (lock held on entry and exit; released while
 * data moves or a host function runs). */
static void run_op(simdev_t *dev, sim_stream *s, sim_op *op)
{
    switch (op->type) {
    case SIM_OP_COPY:
    case SIM_OP_MEMSET: {
        vs_status st = check_op(dev, op, s);
        if (st != VS_OK) {
            if (s->error == VS_OK)
                s->error = st;
            break;
        }
        uint64_t start = 0, end = engine_slot(dev, op, &start);
        pthread_mutex_unlock(&dev->lock);
        if (end && start > sim_now_ns())
            sleep_until(start);
        if (op->type == SIM_OP_COPY)
            memmove((void *)(uintptr_t)op->u.copy.dst, (const void *)(uintptr_t)op->u.copy.src,
                    (size_t)op->u.copy.size);
        else
            memset((void *)(uintptr_t)op->u.memset.dst, op->u.memset.value,
                   (size_t)op->u.memset.size);
        if (end)
            sleep_until(end);
        pthread_mutex_lock(&dev->lock);
        s->nbusy = 0;
        if (op->type == SIM_OP_COPY) {
            dev->ctr.copies++;
            dev->ctr.bytes_copied += op->u.copy.size;
        }
        break;
    }
    case SIM_OP_HOSTFN:
        pthread_mutex_unlock(&dev->lock);
        op->u.hostfn.fn(op->u.hostfn.arg);
        pthread_mutex_lock(&dev->lock);
        break;
    case SIM_OP_MARKER: {
        sim_event *ev = sim_slots_get(&dev->events, dev->ordinal, op->u.marker.event);
        if (ev && ev->serial == op->u.marker.serial) {
            ev->timed = true;
            ev->done_ns = sim_now_ns();
        }
        break;
    }
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    sim_stream *s = arg;
    simdev_t *dev = s->dev;
    pthread_mutex_lock(&dev->lock);
    for (;;) {
        sim_op *op = s->head;
        if (!op) {
            if (s->stop)
                break;
            pthread_cond_wait(&s->cv_work, &dev->lock);
            continue;
        }
        if (op->type == SIM_OP_WAIT && !target_done(dev, op->u.wait.stream, op->u.wait.seq)) {
            pthread_cond_wait(&dev->cv_done, &dev->lock);
            continue;
        }
        run_op(dev, s, op);
        s->head = op->next;
        if (!s->head)
            s->tail = NULL;
        s->done_seq = op->seq;
        free(op);
        pthread_cond_broadcast(&dev->cv_done);
    }
    pthread_mutex_unlock(&dev->lock);
    return NULL;
}

static void stream_init(sim_stream *s, simdev_t *dev, simdev_handle h)
{
    memset(s, 0, sizeof *s);
    s->dev = dev;
    s->handle = h;
    s->error = VS_OK;
    sim_cond_init(&s->cv_work);
}

void sim_stream_init_default(simdev_t *dev)
{
    stream_init(&dev->defstream, dev, 0);
}

/* Append op (lock held); starts the worker if needed. On failure op is freed. */
static vs_status enqueue(simdev_t *dev, sim_stream *s, sim_op *op)
{
    if (!s->running) {
        int err = pthread_create(&s->thread, NULL, worker_main, s);
        if (err) {
            free(op);
            return sim_fail(err == EAGAIN ? VS_ERR_OUT_OF_MEMORY : VS_ERR_BACKEND,
                            "cannot start a stream worker: %s", strerror(err));
        }
        s->running = true;
        s->stop = false;
    }
    op->next = NULL;
    op->seq = ++s->enq_seq;
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->cv_work);
    return VS_OK;
}

static sim_op *new_op(int type)
{
    sim_op *op = calloc(1, sizeof *op);
    if (op)
        op->type = type;
    else
        sim_fail(VS_ERR_OUT_OF_MEMORY, "no host memory for a stream operation");
    return op;
}

/* Stop and join s's worker once it drained (lock held; released meanwhile).
 * Returns with s possibly freed if someone destroyed it concurrently: callers
 * re-look it up by handle. */
static void stop_worker(simdev_t *dev, sim_stream *s)
{
    if (!s->running)
        return;
    s->stop = true;
    pthread_t t = s->thread;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&dev->lock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&dev->lock);
}

void sim_streams_quiesce(simdev_t *dev)
{
    /* Handles of the streams to stop; slot tables may change while unlocked. */
    uint32_t n = dev->streams.cap + 1;
    simdev_handle *hs = malloc(n * sizeof *hs);
    uint32_t k = 0;
    if (!hs)
        return;  /* workers stay; they are harmless and restart nothing */
    hs[k++] = 0;
    for (uint32_t i = 0; i < dev->streams.cap; i++) {
        sim_stream *s = dev->streams.items[i];
        if (s && !s->dying)
            hs[k++] = s->handle;
    }
    for (uint32_t i = 0; i < k; i++) {
        sim_stream *s = stream_get(dev, hs[i]);
        if (!s || !s->running || s->dying)
            continue;
        wait_target(dev, hs[i], s->enq_seq);
        s = stream_get(dev, hs[i]);
        if (!s || !s->running || s->dying)
            continue;
        stop_worker(dev, s);
        if ((s = stream_get(dev, hs[i])) != NULL) {
            s->running = false;
            s->stop = false;
        }
    }
    free(hs);
}

bool sim_streams_idle(const simdev_t *dev)
{
    return dev->defstream.head == NULL && dev->streams.live == 0 && dev->events.live == 0;
}

/* ---------------------------------------------------------------- streams */

vs_status simdev_stream_create(simdev_t *dev, simdev_handle *out)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_STREAM_CREATE);
    if (st != VS_OK)
        return st;
    if (!out)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "stream_create: out is NULL");
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_STREAM_CREATE, "stream_create");
    if (st == VS_OK) {
        sim_stream *s = malloc(sizeof *s);
        if (!s) {
            st = sim_fail(VS_ERR_OUT_OF_MEMORY, "stream_create: no host memory");
        } else {
            stream_init(s, dev, 0);
            if ((st = sim_slots_add(&dev->streams, dev->ordinal, s, &s->handle)) != VS_OK) {
                pthread_cond_destroy(&s->cv_work);
                free(s);
            } else {
                dev->ctr.streams++;
                *out = s->handle;
            }
        }
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_stream_destroy(simdev_t *dev, simdev_handle stream)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_stream *s = NULL;
    if (stream == 0)
        st = sim_fail(VS_ERR_INVALID_HANDLE, "stream_destroy: the default stream cannot be destroyed");
    else if ((st = stream_usable(dev, stream, "stream_destroy", &s)) == VS_OK) {
        s->dying = true;
        while (s->head)  /* s stays valid: only its destroyer (us) frees it */
            pthread_cond_wait(&dev->cv_done, &dev->lock);
        sim_slots_remove(&dev->streams, stream);
        dev->ctr.streams--;
        stop_worker(dev, s);
        pthread_cond_destroy(&s->cv_work);
        free(s);
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_stream_synchronize(simdev_t *dev, simdev_handle stream)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_stream *s = stream_get(dev, stream);
    if (!s) {
        st = sim_fail(VS_ERR_INVALID_HANDLE, "stream_synchronize: unknown stream 0x%llx",
                      (unsigned long long)stream);
    } else {
        wait_target(dev, stream, s->enq_seq);
        if ((s = stream_get(dev, stream)) != NULL && s->error != VS_OK) {
            st = sim_fail(s->error, "stream_synchronize: an earlier copy on this stream failed");
            s->error = VS_OK;
        }
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_stream_query(simdev_t *dev, simdev_handle stream)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_stream *s = stream_get(dev, stream);
    if (!s)
        st = sim_fail(VS_ERR_INVALID_HANDLE, "stream_query: unknown stream 0x%llx",
                      (unsigned long long)stream);
    else if (s->done_seq != s->enq_seq)
        st = VS_ERR_NOT_READY;
    sim_leave(dev);
    return st;
}

vs_status simdev_synchronize(simdev_t *dev)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    uint32_t n = dev->streams.cap + 1, k = 0;
    simdev_handle *hs = malloc(n * sizeof *hs);
    uint64_t *seqs = malloc(n * sizeof *seqs);
    if (!hs || !seqs) {
        st = sim_fail(VS_ERR_OUT_OF_MEMORY, "synchronize: no host memory");
        goto out;
    }
    hs[k] = 0;
    seqs[k++] = dev->defstream.enq_seq;
    for (uint32_t i = 0; i < dev->streams.cap; i++) {
        sim_stream *s = dev->streams.items[i];
        if (s) {
            hs[k] = s->handle;
            seqs[k++] = s->enq_seq;
        }
    }
    for (uint32_t i = 0; i < k; i++)
        wait_target(dev, hs[i], seqs[i]);
    for (uint32_t i = 0; i < k; i++) {
        sim_stream *s = stream_get(dev, hs[i]);
        if (s && s->error != VS_OK) {
            if (st == VS_OK)
                st = sim_fail(s->error, "synchronize: an earlier copy failed");
            s->error = VS_OK;
        }
    }
out:
    free(hs);
    free(seqs);
    sim_leave(dev);
    return st;
}

static vs_status submit_checked(simdev_t *dev, sim_op *op, simdev_handle stream, const char *what)
{
    sim_stream *s = NULL;
    vs_status st = stream_usable(dev, stream, what, &s);
    if (st == VS_OK)
        st = check_op(dev, op, NULL);
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_COPY, what);
    if (st != VS_OK) {
        free(op);
        return st;
    }
    return enqueue(dev, s, op);
}

vs_status simdev_copy_async(simdev_t *dev, int kind, uint64_t dst, uint64_t src, uint64_t size,
                            simdev_handle stream)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_COPY);
    if (st != VS_OK)
        return st;
    sim_op *op = NULL;
    sim_stream *s = NULL;
    if (kind != VS_COPY_HOST_TO_DEVICE && kind != VS_COPY_DEVICE_TO_HOST &&
        kind != VS_COPY_DEVICE_TO_DEVICE) {
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "copy: unknown kind %d", kind);
    } else if (size == 0) {
        st = stream_usable(dev, stream, "copy", &s);  /* nothing to move */
    } else if ((op = new_op(SIM_OP_COPY)) == NULL) {
        st = VS_ERR_OUT_OF_MEMORY;
    } else {
        op->u.copy.kind = kind;
        op->u.copy.dst = dst;
        op->u.copy.src = src;
        op->u.copy.size = size;
        uint64_t host = kind == VS_COPY_HOST_TO_DEVICE ? src : dst;
        op->u.copy.pageable = kind != VS_COPY_DEVICE_TO_DEVICE &&
                              !sim_host_registered(dev, (uintptr_t)host, size);
        st = submit_checked(dev, op, stream, "copy");
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_memset_async(simdev_t *dev, uint64_t dst, uint8_t value, uint64_t size,
                              simdev_handle stream)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_COPY);
    if (st != VS_OK)
        return st;
    sim_op *op = NULL;
    sim_stream *s = NULL;
    if (size == 0) {
        st = stream_usable(dev, stream, "memset", &s);
    } else if ((op = new_op(SIM_OP_MEMSET)) == NULL) {
        st = VS_ERR_OUT_OF_MEMORY;
    } else {
        op->u.memset.dst = dst;
        op->u.memset.size = size;
        op->u.memset.value = value;
        st = submit_checked(dev, op, stream, "memset");
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_launch_host_fn(simdev_t *dev, simdev_handle stream, void (*fn)(void *), void *arg)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_stream *s = NULL;
    sim_op *op = NULL;
    if (!fn)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "launch_host_fn: fn is NULL");
    else if ((st = stream_usable(dev, stream, "launch_host_fn", &s)) != VS_OK)
        ;
    else if ((op = new_op(SIM_OP_HOSTFN)) == NULL)
        st = VS_ERR_OUT_OF_MEMORY;
    else {
        op->u.hostfn.fn = fn;
        op->u.hostfn.arg = arg;
        st = enqueue(dev, s, op);
    }
    sim_leave(dev);
    return st;
}

/* ---------------------------------------------------------------- events */

static vs_status event_get(simdev_t *dev, simdev_handle h, const char *what, sim_event **out)
{
    sim_event *ev = sim_slots_get(&dev->events, dev->ordinal, h);
    if (!ev)
        return sim_fail(VS_ERR_INVALID_HANDLE, "%s: unknown event 0x%llx", what,
                        (unsigned long long)h);
    *out = ev;
    return VS_OK;
}

vs_status simdev_event_create(simdev_t *dev, simdev_handle *out)
{
    vs_status st = sim_enter(dev, VS_SIM_OP_EVENT_CREATE);
    if (st != VS_OK)
        return st;
    if (!out)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "event_create: out is NULL");
    if (st == VS_OK)
        st = sim_injected(dev, VS_SIM_OP_EVENT_CREATE, "event_create");
    if (st == VS_OK) {
        sim_event *ev = calloc(1, sizeof *ev);
        if (!ev)
            st = sim_fail(VS_ERR_OUT_OF_MEMORY, "event_create: no host memory");
        else if ((st = sim_slots_add(&dev->events, dev->ordinal, ev, out)) != VS_OK)
            free(ev);
        else
            dev->ctr.events++;
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_event_destroy(simdev_t *dev, simdev_handle event)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *ev = NULL;
    if ((st = event_get(dev, event, "event_destroy", &ev)) == VS_OK) {
        sim_slots_remove(&dev->events, event);
        dev->ctr.events--;
        free(ev);
    }
    sim_leave(dev);
    return st;
}

vs_status simdev_event_record(simdev_t *dev, simdev_handle event, simdev_handle stream)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *ev = NULL;
    sim_stream *s = NULL;
    if ((st = event_get(dev, event, "event_record", &ev)) != VS_OK ||
        (st = stream_usable(dev, stream, "event_record", &s)) != VS_OK)
        goto out;
    ev->serial++;
    if (!s->head) {
        /* Idle stream: the point is already reached. No marker, no wakeup (this
         * is the common case of recording after each unpin). */
        ev->seq = s->enq_seq;
        ev->timed = true;
        ev->done_ns = sim_now_ns();
    } else {
        sim_op *op = new_op(SIM_OP_MARKER);
        if (!op) {
            st = VS_ERR_OUT_OF_MEMORY;
            goto out;
        }
        op->u.marker.event = event;
        op->u.marker.serial = ev->serial;
        if ((st = enqueue(dev, s, op)) != VS_OK)
            goto out;
        ev->seq = s->enq_seq;
        ev->timed = false;
    }
    ev->recorded = true;
    ev->stream = stream;
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_event_query(simdev_t *dev, simdev_handle event)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *ev = NULL;
    if ((st = event_get(dev, event, "event_query", &ev)) == VS_OK && !event_done(dev, ev))
        st = VS_ERR_NOT_READY;
    sim_leave(dev);
    return st;
}

vs_status simdev_event_synchronize(simdev_t *dev, simdev_handle event)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *ev = NULL;
    if ((st = event_get(dev, event, "event_synchronize", &ev)) == VS_OK && ev->recorded)
        wait_target(dev, ev->stream, ev->seq);  /* a snapshot: ev may go meanwhile */
    sim_leave(dev);
    return st;
}

vs_status simdev_stream_wait_event(simdev_t *dev, simdev_handle stream, simdev_handle event)
{
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *ev = NULL;
    sim_stream *s = NULL;
    if ((st = stream_usable(dev, stream, "stream_wait_event", &s)) != VS_OK ||
        (st = event_get(dev, event, "stream_wait_event", &ev)) != VS_OK)
        goto out;
    if (event_done(dev, ev))
        goto out;  /* never recorded, or already passed: nothing to wait for */
    sim_op *op = new_op(SIM_OP_WAIT);
    if (!op) {
        st = VS_ERR_OUT_OF_MEMORY;
        goto out;
    }
    op->u.wait.stream = ev->stream;
    op->u.wait.seq = ev->seq;
    st = enqueue(dev, s, op);
out:
    sim_leave(dev);
    return st;
}

vs_status simdev_event_elapsed_ns(simdev_t *dev, simdev_handle start, simdev_handle end,
                                  uint64_t *ns)
{
    if (!ns)
        return sim_fail(VS_ERR_INVALID_ARGUMENT, "event_elapsed: ns is NULL");
    vs_status st = sim_enter(dev, -1);
    if (st != VS_OK)
        return st;
    sim_event *a = NULL, *b = NULL;
    if ((st = event_get(dev, start, "event_elapsed", &a)) != VS_OK ||
        (st = event_get(dev, end, "event_elapsed", &b)) != VS_OK)
        goto out;
    if (!a->recorded || !b->recorded)
        st = sim_fail(VS_ERR_INVALID_ARGUMENT, "event_elapsed: an event was never recorded");
    else if (!a->timed || !b->timed)
        st = VS_ERR_NOT_READY;
    else
        *ns = b->done_ns > a->done_ns ? b->done_ns - a->done_ns : 0;
out:
    sim_leave(dev);
    return st;
}
