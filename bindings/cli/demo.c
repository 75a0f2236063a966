/* `vramswap demo`: options, choosing the device, building the synthetic model
 * and tearing everything down. The passes themselves are in demo_pass.c; see
 * Note [Demo pipeline] in demo.h. */
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "vramswap/sim.h"

static const char demo_usage[] =
    "usage: vramswap demo [--backend NAME] [--device N] [--layers N] [--layer-size BYTES]\n"
    "                     [--budget BYTES] [--passes N] [--seed N] [--no-prefetch] [--json]\n"
    "\n"
    "Stream a synthetic model larger than the budget through vramswap, layer by\n"
    "layer, as an application would: fault each layer into a VBAR, copy it from\n"
    "pinned host memory only when its signature changed, stream it through a\n"
    "scratch buffer when it cannot be resident, read it back and verify its\n"
    "checksum, unpin it. Prints per-pass time, bytes copied, hit rate, streamed\n"
    "layers, evictions and the final residency. Exits 1 on any error or checksum\n"
    "mismatch.\n"
    "\n"
    "options:\n"
    "  --backend NAME      backend to use (default: the first available, GPUs\n"
    "                      before the simulator)\n"
    "  --device N          device ordinal (default 0)\n"
    "  --layers N          number of layers (default 24)\n"
    "  --layer-size BYTES  bytes per layer, suffixes K M G (default 8M)\n"
    "  --budget BYTES      device memory the demo may use, as a limit on top of\n"
    "                      what others already use; 0 = the device's own budget\n"
    "                      (default 96M); at least three layers\n"
    "  --passes N          passes over the model (default 3)\n"
    "  --seed N            seed of the synthetic weights (default 1)\n"
    "  --no-prefetch       do not stage the next layer while one is in use\n"
    "  --json              print one JSON object instead of text\n";

static int run_demo(int argc, char **argv);

const vs_cli_command vs_cli_cmd_demo = {
    .name = "demo",
    .summary = "stream a synthetic model larger than the budget, verify it",
    .usage = demo_usage,
    .run = run_demo,
};

enum { OPT_BACKEND, OPT_DEVICE, OPT_LAYERS, OPT_LAYER_SIZE, OPT_BUDGET, OPT_PASSES, OPT_SEED, OPT_NO_PREFETCH, OPT_JSON };

static int parse_options(int argc, char **argv, demo_options *o)
{
    static const vs_cli_option opts[] = {
        [OPT_BACKEND] = {"backend", true},   [OPT_DEVICE] = {"device", true},
        [OPT_LAYERS] = {"layers", true},     [OPT_LAYER_SIZE] = {"layer-size", true},
        [OPT_BUDGET] = {"budget", true},     [OPT_PASSES] = {"passes", true},
        [OPT_SEED] = {"seed", true},         [OPT_NO_PREFETCH] = {"no-prefetch", false},
        [OPT_JSON] = {"json", false},        {NULL, false},
    };
    *o = (demo_options){.backend = NULL, .device = 0, .layers = 24, .layer_size = 8ull << 20,
                        .budget = 96ull << 20, .passes = 3, .seed = 1, .prefetch = true, .json = false};
    const vs_cli_command *cmd = &vs_cli_cmd_demo;
    vs_cli_args args;
    vs_cli_args_init(&args, argc, argv);
    for (;;) {
        const char *v;
        long long n;
        int opt = vs_cli_next_option(&args, opts, &v);
        if (opt == -1)
            break;
        switch (opt) {
        case -2:
            return vs_cli_usage_error(cmd, "%s", args.error);
        case OPT_BACKEND:
            o->backend = strcmp(v, "auto") == 0 ? NULL : v;
            break;
        case OPT_DEVICE:
            if (!vs_cli_parse_int(v, 0, 1023, &n))
                return vs_cli_usage_error(cmd, "--device: expected an ordinal 0..1023, got '%s'", v);
            o->device = (int)n;
            break;
        case OPT_LAYERS:
            if (!vs_cli_parse_int(v, 1, 1 << 20, &n))
                return vs_cli_usage_error(cmd, "--layers: expected 1..%d, got '%s'", 1 << 20, v);
            o->layers = (uint32_t)n;
            break;
        case OPT_LAYER_SIZE:
            if (!vs_cli_parse_size(v, &o->layer_size) || o->layer_size == 0)
                return vs_cli_usage_error(cmd, "--layer-size: expected a positive byte count, got '%s'", v);
            break;
        case OPT_BUDGET:
            if (!vs_cli_parse_size(v, &o->budget))
                return vs_cli_usage_error(cmd, "--budget: expected a byte count, got '%s'", v);
            break;
        case OPT_PASSES:
            if (!vs_cli_parse_int(v, 1, 1000000, &n))
                return vs_cli_usage_error(cmd, "--passes: expected 1..1000000, got '%s'", v);
            o->passes = (uint32_t)n;
            break;
        case OPT_SEED:
            if (!vs_cli_parse_int(v, 0, INT64_MAX, &n))
                return vs_cli_usage_error(cmd, "--seed: expected a non-negative integer, got '%s'", v);
            o->seed = (uint64_t)n;
            break;
        case OPT_NO_PREFETCH:
            o->prefetch = false;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        }
    }
    if (o->layer_size > (1ull << 40) || (uint64_t)o->layers * o->layer_size > (1ull << 42))
        return vs_cli_usage_error(cmd, "the model is too large (at most 1 TiB per layer, 4 TiB in all)");
    if (o->budget != 0 && o->budget / 3 < o->layer_size)
        return vs_cli_usage_error(cmd, "--budget must hold at least three layers (one pinned, two scratch)");
    return VS_CLI_EXIT_OK;
}

/* Pick the backend as "auto" would (first available with a device, in the
 * library's order, GPU backends before the simulator) so that we know its name
 * before opening, and note whether any GPU backend had a device. */
static bool choose_backend(demo_run *run)
{
    const char *wanted = run->opt->backend;
    bool found = false;
    size_t n = vs_backend_count();
    run->gpu_found = false;
    for (size_t i = 0; i < n; i++) {
        vs_backend_info b;
        vs_status st = vs_backend_get_info(i, &b);
        if (st != VS_OK)
            return demo_fail(run, "vs_backend_get_info", st);
        bool usable = b.available && b.device_count > 0;
        if (usable && strcmp(b.name, "sim") != 0)
            run->gpu_found = true;
        if (found)
            continue;
        if (wanted && strcmp(wanted, b.name) == 0) {
            if (!b.available) {
                snprintf(run->failure, sizeof run->failure, "backend '%s' is unavailable: %.160s", b.name, b.why);
                return false;
            }
            found = true;
        } else if (!wanted && usable) {
            found = true;
        }
        if (found)
            snprintf(run->backend, sizeof run->backend, "%s", b.name);
    }
    if (!found) {
        if (wanted)
            snprintf(run->failure, sizeof run->failure, "no backend named '%.64s' in this build (see `vramswap info`)",
                     wanted);
        else
            snprintf(run->failure, sizeof run->failure, "no backend has a device (see `vramswap info`)");
    }
    return found;
}

/* The simulator's device must be at least as large as the budget. */
static bool size_simulator(demo_run *run)
{
    vs_sim_config sc;
    vs_status st = vs_sim_config_default(&sc);
    if (st != VS_OK)
        return demo_fail(run, "vs_sim_config_default", st);
    if (sc.total_memory >= run->opt->budget)
        return true;
    uint64_t g = sc.granularity ? sc.granularity : 1;
    sc.total_memory = (run->opt->budget + g - 1) / g * g;
    st = vs_sim_configure(&sc);
    return st == VS_OK ? true : demo_fail(run, "vs_sim_configure", st);
}

/* Open the device; with a budget, limit the device to what others use now plus
 * the budget, with no headroom, so that vs_memory_info.budget is the budget. */
static bool open_device(demo_run *run)
{
    const demo_options *o = run->opt;
    vs_device_config cfg;
    vs_status st = vs_device_config_init(&cfg);
    if (st != VS_OK)
        return demo_fail(run, "vs_device_config_init", st);
    if (o->budget) {
        cfg.limit = o->budget;
        cfg.headroom = 0;
    }
    st = vs_device_open(run->backend, o->device, &cfg, &run->dev);
    if (st != VS_OK)
        return demo_fail(run, "vs_device_open", st);
    st = vs_device_get_props(run->dev, &run->props);
    if (st != VS_OK)
        return demo_fail(run, "vs_device_get_props", st);
    st = vs_device_memory_info(run->dev, &run->mem_start);
    if (st != VS_OK)
        return demo_fail(run, "vs_device_memory_info", st);
    if (o->budget && run->mem_start.used_others) {
        st = vs_device_set_limit(run->dev, o->budget + run->mem_start.used_others, 0);
        if (st != VS_OK)
            return demo_fail(run, "vs_device_set_limit", st);
        st = vs_device_memory_info(run->dev, &run->mem_start);
        if (st != VS_OK)
            return demo_fail(run, "vs_device_memory_info", st);
    }
    run->budget = run->mem_start.available;
    return true;
}

static bool create_streams(demo_run *run)
{
    vs_status st = vs_stream_create(run->dev, &run->copy_stream);
    if (st == VS_OK)
        st = vs_stream_create(run->dev, &run->compute_stream);
    for (int k = 0; k < DEMO_RING && st == VS_OK; k++) {
        st = vs_event_create(run->dev, &run->ready_events[k]);
        if (st == VS_OK)
            st = vs_event_create(run->dev, &run->scratch_free[k]);
    }
    return st == VS_OK ? true : demo_fail(run, "vs_stream_create/vs_event_create", st);
}

static bool host_buffer(demo_run *run, uint64_t size, vs_host_buffer_t **buf, uint8_t **ptr)
{
    vs_status st = vs_host_buffer_create(run->dev, size, buf);
    if (st == VS_OK)
        st = vs_host_buffer_resize(*buf, size);
    void *p = NULL;
    uint64_t cur, max;
    if (st == VS_OK)
        st = vs_host_buffer_get(*buf, &p, &cur, &max);
    if (st != VS_OK)
        return demo_fail(run, "vs_host_buffer_create/resize/get", st);
    *ptr = p;
    return true;
}

/* Host weights with their checksums, the VBAR with one page-aligned allocation
 * per layer in order, the check buffer and the (still empty) scratch ring. */
static bool build_model(demo_run *run)
{
    const demo_options *o = run->opt;
    run->layer = calloc(o->layers, sizeof *run->layer);
    run->pass = calloc(o->passes, sizeof *run->pass);
    if (!run->layer || !run->pass)
        return demo_fail(run, "calloc", VS_ERR_OUT_OF_MEMORY);
    if (!host_buffer(run, (uint64_t)o->layers * o->layer_size, &run->weights, &run->weights_ptr) ||
        !host_buffer(run, o->layer_size, &run->check, &run->check_ptr))
        return false;

    const uint64_t page = run->props.page_size;
    const uint64_t stride = (o->layer_size + page - 1) / page * page;
    /* At worst one layer is pinned in the VBAR while
     * both scratch buffers of the ring hold a layer each. */
    if (run->budget / 3 < stride) {
        char b1[32], b2[32];
        snprintf(run->failure, sizeof run->failure,
                 "the budget (%s) must hold three layers of %s (layers use whole pages): one pinned, two scratch",
                 vs_cli_format_size(run->budget, b1, sizeof b1), vs_cli_format_size(stride, b2, sizeof b2));
        return false;
    }
    vs_status st = vs_vbar_create(run->dev, stride * o->layers, &run->vbar);
    if (st == VS_OK)
        st = vs_vbar_get_base(run->vbar, &run->vbar_base, &run->vbar_size);
    if (st != VS_OK)
        return demo_fail(run, "vs_vbar_create", st);
    /* vs_vbar_alloc aligns to powers of two only; a page-multiple stride keeps
     * layers on page boundaries whatever the page size, so the offsets must be
     * exactly i * stride. */
    for (uint32_t i = 0; i < o->layers; i++) {
        demo_layer *l = &run->layer[i];
        uint64_t off;
        st = vs_vbar_alloc(run->vbar, stride, 0, &off);
        if (st != VS_OK)
            return demo_fail(run, "vs_vbar_alloc", st);
        if (off != (uint64_t)i * stride) {
            snprintf(run->failure, sizeof run->failure, "vs_vbar_alloc gave offset %llu for layer %u, expected %llu",
                     (unsigned long long)off, i, (unsigned long long)i * stride);
            return false;
        }
        l->vbar_offset = off;
        l->host_offset = (uint64_t)i * o->layer_size;
        demo_fill_weights(run->weights_ptr + l->host_offset, o->layer_size, o->seed, i);
        l->checksum = demo_checksum(run->weights_ptr + l->host_offset, o->layer_size);
    }
    for (int k = 0; k < DEMO_RING; k++) {
        st = vs_scratch_create(run->dev, o->layer_size, &run->scratch[k]);
        if (st != VS_OK)
            return demo_fail(run, "vs_scratch_create", st);
    }
    return true;
}

static bool record_final_state(demo_run *run)
{
    vs_status st = vs_device_get_stats(run->dev, &run->stats);
    if (st != VS_OK)
        return demo_fail(run, "vs_device_get_stats", st);
    size_t pages = 0;
    st = vs_vbar_residency(run->vbar, NULL, 0, &pages);
    if (st != VS_OK)
        return demo_fail(run, "vs_vbar_residency", st);
    run->residency = calloc(pages ? pages : 1, 1);
    if (!run->residency)
        return demo_fail(run, "calloc", VS_ERR_OUT_OF_MEMORY);
    st = vs_vbar_residency(run->vbar, run->residency, pages, &run->residency_pages);
    if (st != VS_OK) {
        free(run->residency);
        run->residency = NULL;
        return demo_fail(run, "vs_vbar_residency", st);
    }
    return true;
}

/* Release every library object, in reverse order of creation; false if a
 * destroy failed. The results (passes, residency) stay for the report. */
static bool teardown(demo_run *run)
{
    bool ok = true;
    vs_status st;
    demo_release_staged(run);
    for (int k = 0; k < DEMO_RING; k++)
        if (run->scratch[k] && (st = vs_scratch_destroy(run->scratch[k])) != VS_OK)
            ok = demo_fail(run, "vs_scratch_destroy", st);
    if (run->vbar && (st = vs_vbar_destroy(run->vbar)) != VS_OK)
        ok = demo_fail(run, "vs_vbar_destroy", st);
    if (run->check && (st = vs_host_buffer_destroy(run->check)) != VS_OK)
        ok = demo_fail(run, "vs_host_buffer_destroy", st);
    if (run->weights && (st = vs_host_buffer_destroy(run->weights)) != VS_OK)
        ok = demo_fail(run, "vs_host_buffer_destroy", st);
    if (run->dev) {
        for (int k = 0; k < DEMO_RING; k++) {
            if (run->ready_events[k] && (st = vs_event_destroy(run->dev, run->ready_events[k])) != VS_OK)
                ok = demo_fail(run, "vs_event_destroy", st);
            if (run->scratch_free[k] && (st = vs_event_destroy(run->dev, run->scratch_free[k])) != VS_OK)
                ok = demo_fail(run, "vs_event_destroy", st);
        }
        if (run->compute_stream && (st = vs_stream_destroy(run->dev, run->compute_stream)) != VS_OK)
            ok = demo_fail(run, "vs_stream_destroy", st);
        if (run->copy_stream && (st = vs_stream_destroy(run->dev, run->copy_stream)) != VS_OK)
            ok = demo_fail(run, "vs_stream_destroy", st);
        if ((st = vs_device_close(run->dev)) != VS_OK)
            ok = demo_fail(run, "vs_device_close", st);
        run->dev = NULL;
    }
    return ok;
}

static int run_demo(int argc, char **argv)
{
    demo_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc != VS_CLI_EXIT_OK)
        return rc;
    demo_run run;
    memset(&run, 0, sizeof run);
    run.opt = &opt;

    bool ok = choose_backend(&run);
    if (ok && strcmp(run.backend, "sim") == 0 && opt.budget)
        ok = size_simulator(&run);
    ok = ok && open_device(&run) && create_streams(&run) && build_model(&run);
    bool printed_header = false;
    if (ok && !opt.json) {
        demo_print_header(&run);
        printed_header = true;
    }
    for (uint32_t p = 0; ok && p < opt.passes; p++) {
        ok = demo_run_pass(&run, p);
        if (ok) {
            run.passes_done++;
            if (!opt.json)
                demo_print_pass(&run, p);
        }
    }
    if (ok)
        ok = record_final_state(&run);
    for (uint32_t p = 0; p < run.passes_done; p++)
        if (run.pass[p].mismatches)
            ok = false;
    /* Teardown before printing so that its failures show. */
    ok = teardown(&run) && ok;
    if (opt.json) {
        demo_print_json(&run, ok);
        if (run.failure[0])
            fprintf(stderr, "vramswap demo: %s\n", run.failure);
    } else if (printed_header) {
        demo_print_summary(&run, ok);
    } else {
        fprintf(stderr, "vramswap demo: %s\n", run.failure[0] ? run.failure : "failed");
    }
    free(run.layer);
    free(run.pass);
    free(run.residency);
    return ok ? VS_CLI_EXIT_OK : VS_CLI_EXIT_FAILURE;
}
