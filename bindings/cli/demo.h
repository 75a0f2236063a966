/* `vramswap demo`: a synthetic model larger than the budget, streamed layer by
 * layer through the library. Shared by demo.c (options, setup, teardown),
 * demo_weights.c (seeded weights and checksums), demo_pass.c (one pass over the
 * layers) and demo_report.c (text and JSON output).
 *
 * Note [Demo pipeline]
 * --------------------
 * The model is `layers` weight blocks of `layer_size` bytes kept in one pinned
 * host buffer. On the device there is one VBAR with one sub-allocation per layer,
 * in order, each starting on a page boundary so that layers never share a page.
 * Two streams: copies go on the copy stream, "compute" on the compute stream.
 *
 * Staging layer i (ahead of its use when prefetching):
 *   vs_vbar_fault(layer i)
 *     VS_OK, signature unchanged  -> nothing to copy (a hit)
 *     VS_OK, signature changed    -> H2D copy into the VBAR on the copy stream
 *     VS_NOT_RESIDENT             -> H2D copy into a scratch buffer of a ring of
 *                                    two, after that slot's previous use finished
 *   record the slot's "ready" event on the copy stream.
 * Using layer i: the compute stream waits for "ready", then the computation reads
 * the weights on the device: a D2H copy into a pinned check buffer, whose
 * checksum the CPU compares with the one computed when the weights were made
 * (correct on every backend: the CPU never touches device memory). Then
 * vs_vbar_unpin on the compute stream (pinned layers) or a "scratch free" event
 * (streamed layers), and the compute stream is synchronized for the checksum.
 * With prefetch, layer i+1 is staged before layer i is used, so its copy overlaps
 * layer i's computation; within a pass only, so that pass times stay separate.
 */
#ifndef VS_CLI_DEMO_H
#define VS_CLI_DEMO_H

#include "cli.h"

#define DEMO_RING 2   /* staging slots and scratch buffers */

typedef struct demo_options {
    const char *backend;       /* NULL: the first available backend, GPUs first */
    int device;                /* ordinal */
    uint32_t layers;
    uint64_t layer_size;       /* bytes per layer */
    uint64_t budget;           /* bytes the demo may use on the device; 0: the device's own budget */
    uint32_t passes;
    uint64_t seed;
    bool prefetch;
    bool json;
} demo_options;

typedef struct demo_layer {
    uint64_t host_offset;      /* bytes into the host weights buffer */
    uint64_t vbar_offset;      /* bytes into the VBAR (page aligned) */
    uint64_t checksum;         /* of the weights as generated */
    uint64_t signature;        /* from the last VS_OK fault that copied; 0 = none */
} demo_layer;

/* A layer made ready on the device and not used yet. */
typedef struct demo_staged {
    bool active;
    uint32_t layer;
    bool pinned;               /* faulted into the VBAR: unpin after use */
    int scratch_slot;          /* -1, or the scratch buffer holding the weights */
    int ready_slot;            /* index into ready_events */
    vs_devptr_t ptr;           /* device address of the weights */
} demo_staged;

typedef struct demo_pass {
    double seconds;            /* wall time of the pass, work finished */
    uint64_t bytes_h2d;        /* host-to-device bytes copied (VBAR and scratch) */
    uint64_t bytes_d2h;        /* device-to-host bytes read back for checksums */
    uint32_t uses;             /* layer uses */
    uint32_t hits;             /* VS_OK with the signature unchanged: copy skipped */
    uint32_t copied;           /* VS_OK with a new signature: copied into the VBAR */
    uint32_t streamed;         /* VS_NOT_RESIDENT: streamed through scratch */
    uint32_t mismatches;       /* checksum failures */
    uint64_t pages_evicted;    /* vs_stats delta over the pass */
    uint64_t bytes_evicted;
    uint64_t fast_fails;       /* vs_stats delta: faults refused by the watermark */
} demo_pass;

typedef struct demo_run {
    const demo_options *opt;
    char backend[32];          /* the backend actually used */
    bool gpu_found;            /* some non-simulated backend had a device */
    vs_device_t *dev;
    vs_device_props props;
    vs_memory_info mem_start;  /* after configuration, before any allocation */
    uint64_t budget;           /* bytes the demo can use: mem_start.available (the
                                  limit minus what others use, or the device's budget) */
    uintptr_t copy_stream, compute_stream;
    uintptr_t ready_events[DEMO_RING];
    uint32_t next_ready;       /* staging counter, mod DEMO_RING */
    uintptr_t scratch_free[DEMO_RING];        /* compute finished with the slot */
    bool scratch_free_recorded[DEMO_RING];
    vs_scratch_t *scratch[DEMO_RING];
    vs_devptr_t scratch_ptr[DEMO_RING];
    bool scratch_sized[DEMO_RING];
    uint32_t next_scratch;     /* scratch use counter, mod DEMO_RING */
    vs_host_buffer_t *weights; /* every layer, back to back */
    uint8_t *weights_ptr;
    vs_host_buffer_t *check;   /* one layer, read back from the device */
    uint8_t *check_ptr;
    vs_vbar_t *vbar;
    vs_devptr_t vbar_base;
    uint64_t vbar_size;
    demo_layer *layer;         /* [opt->layers] */
    demo_staged staged[2];     /* the layer being used and the one prefetched */
    demo_pass *pass;           /* [opt->passes] */
    uint32_t passes_done;
    vs_stats stats;            /* at the end */
    uint8_t *residency;        /* per page, at the end */
    size_t residency_pages;
    char failure[256];         /* what went wrong, "" if nothing */
} demo_run;

/* demo_weights.c */
void demo_fill_weights(uint8_t *dst, uint64_t size, uint64_t seed, uint32_t layer);
uint64_t demo_checksum(const uint8_t *src, uint64_t size);

/* demo_pass.c: run pass p (0-based). false (and run->failure set) on an error;
 * checksum mismatches are counted, not errors. */
bool demo_run_pass(demo_run *run, uint32_t p);
/* Unpin whatever a failed pass left pinned. */
void demo_release_staged(demo_run *run);
/* Record a failing call in run->failure; returns false. */
bool demo_fail(demo_run *run, const char *what, vs_status st);

/* demo_report.c */
void demo_print_header(const demo_run *run);
void demo_print_pass(const demo_run *run, uint32_t p);
void demo_print_summary(const demo_run *run, bool ok);
void demo_print_json(const demo_run *run, bool ok);

#endif /* VS_CLI_DEMO_H */
