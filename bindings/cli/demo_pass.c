/* One pass of the demo over every layer: stage (fault + copy), use (read back
 * and checksum), unpin. See Note [Demo pipeline] in demo.h. */
#include <string.h>

#include "demo.h"

bool demo_fail(demo_run *run, const char *what, vs_status st)
{
    if (run->failure[0] == '\0')
        snprintf(run->failure, sizeof run->failure, "%s: %s (%s)", what, vs_status_name(st), vs_status_str(st));
    return false;
}

/* A scratch slot for a layer that cannot be resident: grown to one layer the
 * first time it is used (growing counts in the budget and may evict VBAR pages). */
static bool take_scratch(demo_run *run, int *slot_out)
{
    int slot = (int)(run->next_scratch++ % DEMO_RING);
    if (!run->scratch_sized[slot]) {
        vs_status st = vs_scratch_resize(run->scratch[slot], run->opt->layer_size);
        if (st != VS_OK)
            return demo_fail(run, "vs_scratch_resize (is the budget smaller than two layers?)", st);
        uint64_t size, max;
        st = vs_scratch_get(run->scratch[slot], &run->scratch_ptr[slot], &size, &max);
        if (st != VS_OK)
            return demo_fail(run, "vs_scratch_get", st);
        run->scratch_sized[slot] = true;
    }
    /* The previous layer streamed through this slot must be done with it. */
    if (run->scratch_free_recorded[slot]) {
        vs_status st = vs_stream_wait_event(run->dev, run->copy_stream, run->scratch_free[slot]);
        if (st != VS_OK)
            return demo_fail(run, "vs_stream_wait_event (scratch)", st);
    }
    *slot_out = slot;
    return true;
}

static bool stage(demo_run *run, uint32_t i, demo_staged *s, demo_pass *pass)
{
    demo_layer *layer = &run->layer[i];
    const uint64_t size = run->opt->layer_size;
    memset(s, 0, sizeof *s);
    s->layer = i;
    s->scratch_slot = -1;
    s->ready_slot = (int)(run->next_ready++ % DEMO_RING);

    uint64_t sig = 0;
    vs_status st = vs_vbar_fault(run->vbar, layer->vbar_offset, size, &sig);
    bool copy = true;
    if (st == VS_OK) {
        s->pinned = true;
        s->ptr = run->vbar_base + layer->vbar_offset;
        if (sig == layer->signature) {
            copy = false;
            pass->hits++;
        } else {
            pass->copied++;
        }
    } else if (st == VS_NOT_RESIDENT) {
        /* Pages mapped on the way keep nothing we copied: copy again next time. */
        layer->signature = 0;
        if (!take_scratch(run, &s->scratch_slot))
            return false;
        s->ptr = run->scratch_ptr[s->scratch_slot];
        pass->streamed++;
    } else {
        return demo_fail(run, "vs_vbar_fault", st);
    }
    s->active = true;   /* from here on, demo_release_staged undoes the pin */

    if (copy) {
        st = vs_memcpy_async(run->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)s->ptr,
                             (uintptr_t)(run->weights_ptr + layer->host_offset), size, run->copy_stream);
        if (st != VS_OK)
            return demo_fail(run, "vs_memcpy_async (host to device)", st);
        pass->bytes_h2d += size;
        if (s->pinned)
            layer->signature = sig;
    }
    st = vs_event_record(run->dev, run->ready_events[s->ready_slot], run->copy_stream);
    if (st != VS_OK)
        return demo_fail(run, "vs_event_record (ready)", st);
    return true;
}

static bool use(demo_run *run, demo_staged *s, demo_pass *pass)
{
    demo_layer *layer = &run->layer[s->layer];
    const uint64_t size = run->opt->layer_size;
    vs_status st = vs_stream_wait_event(run->dev, run->compute_stream, run->ready_events[s->ready_slot]);
    if (st != VS_OK)
        return demo_fail(run, "vs_stream_wait_event (ready)", st);
    /* The "computation": read the weights where they are on the device. */
    st = vs_memcpy_async(run->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)run->check_ptr, (uintptr_t)s->ptr, size,
                         run->compute_stream);
    if (st != VS_OK)
        return demo_fail(run, "vs_memcpy_async (device to host)", st);
    pass->bytes_d2h += size;
    if (s->pinned) {
        st = vs_vbar_unpin(run->vbar, layer->vbar_offset, size, run->compute_stream);
        if (st != VS_OK)
            return demo_fail(run, "vs_vbar_unpin", st);
        s->pinned = false;
    } else {
        st = vs_event_record(run->dev, run->scratch_free[s->scratch_slot], run->compute_stream);
        if (st != VS_OK)
            return demo_fail(run, "vs_event_record (scratch free)", st);
        run->scratch_free_recorded[s->scratch_slot] = true;
    }
    s->active = false;
    st = vs_stream_synchronize(run->dev, run->compute_stream);
    if (st != VS_OK)
        return demo_fail(run, "vs_stream_synchronize (compute)", st);
    pass->uses++;
    if (demo_checksum(run->check_ptr, size) != layer->checksum) {
        pass->mismatches++;
        fprintf(stderr, "vramswap demo: checksum mismatch in layer %u (read from %s)\n", s->layer,
                s->scratch_slot >= 0 ? "a scratch buffer" : "the VBAR");
    }
    return true;
}

static bool stats_now(demo_run *run, vs_stats *stats)
{
    vs_status st = vs_device_get_stats(run->dev, stats);
    return st == VS_OK ? true : demo_fail(run, "vs_device_get_stats", st);
}

bool demo_run_pass(demo_run *run, uint32_t p)
{
    demo_pass *pass = &run->pass[p];
    const uint32_t n = run->opt->layers;
    vs_stats before, after;
    memset(pass, 0, sizeof *pass);
    if (!stats_now(run, &before))
        return false;
    double t0 = vs_cli_now();

    demo_staged *cur = &run->staged[0], *next = &run->staged[1];
    if (!stage(run, 0, cur, pass))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (run->opt->prefetch && i + 1 < n && !stage(run, i + 1, next, pass))
            return false;
        if (!use(run, cur, pass))
            return false;
        if (i + 1 < n) {
            if (!run->opt->prefetch && !stage(run, i + 1, next, pass))
                return false;
            demo_staged *t = cur;
            cur = next;
            next = t;
        }
    }
    vs_status st = vs_stream_synchronize(run->dev, run->copy_stream);
    if (st != VS_OK)
        return demo_fail(run, "vs_stream_synchronize (copy)", st);
    pass->seconds = vs_cli_now() - t0;

    if (!stats_now(run, &after))
        return false;
    pass->pages_evicted = after.pages_evicted - before.pages_evicted;
    pass->bytes_evicted = after.bytes_evicted - before.bytes_evicted;
    pass->fast_fails = after.fault_fast_fails - before.fault_fast_fails;
    return true;
}

void demo_release_staged(demo_run *run)
{
    if (!run->dev)
        return;
    (void)vs_stream_synchronize(run->dev, run->copy_stream);
    (void)vs_stream_synchronize(run->dev, run->compute_stream);
    for (int k = 0; k < 2; k++) {
        demo_staged *s = &run->staged[k];
        if (s->active && s->pinned)
            (void)vs_vbar_unpin(run->vbar, run->layer[s->layer].vbar_offset, run->opt->layer_size,
                                run->compute_stream);
        s->active = false;
        s->pinned = false;
    }
    (void)vs_stream_synchronize(run->dev, run->compute_stream);
}
