/* The demo's output: a header, one line per pass, a summary (text), or one JSON
 * object (--json, printed alone on stdout). */
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static double hit_rate(const demo_pass *p)
{
    return p->uses ? (double)p->hits / (double)p->uses : 0.0;
}

/* One character per layer (layers start on page boundaries and have the same
 * number of pages, so the groups are exactly the layers). */
static void residency_string(const demo_run *run, char *out, size_t *resident_layers)
{
    vs_cli_render_residency(run->residency, run->residency_pages, run->opt->layers, out);
    size_t n = 0;
    for (const char *c = out; *c; c++)
        n += *c == 'R' || *c == 'P';
    *resident_layers = n;
}

static uint32_t total_mismatches(const demo_run *run)
{
    uint32_t n = 0;
    for (uint32_t p = 0; p < run->passes_done; p++)
        n += run->pass[p].mismatches;
    return n;
}

void demo_print_header(const demo_run *run)
{
    const demo_options *o = run->opt;
    char s1[32], s2[32], s3[32];
    if (strcmp(run->backend, "sim") == 0)
        printf("running on the simulated device (%s)\n",
               run->gpu_found ? "chosen with --backend sim" : "no GPU found");
    printf("device   %s:%d  %s\n", run->backend, o->device, run->props.name);
    printf("model    %u layers x %s = %s\n", o->layers, vs_cli_format_size(o->layer_size, s1, sizeof s1),
           vs_cli_format_size((uint64_t)o->layers * o->layer_size, s2, sizeof s2));
    printf("budget   %s (the model is %.2fx the budget), page size %s\n",
           vs_cli_format_size(run->budget, s1, sizeof s1),
           run->budget ? (double)o->layers * (double)o->layer_size / (double)run->budget : 0.0,
           vs_cli_format_size(run->props.page_size, s3, sizeof s3));
    if (run->mem_start.used_others)
        printf("         (device limit %s: %s already in use by others + the budget)\n",
               vs_cli_format_size(run->mem_start.total, s1, sizeof s1),
               vs_cli_format_size(run->mem_start.used_others, s2, sizeof s2));
    printf("options  %u pass%s, seed %llu, prefetch %s\n\n", o->passes, o->passes == 1 ? "" : "es",
           (unsigned long long)o->seed,
           o->prefetch ? "on" : "off");
    printf("pass   time ms   copied H2D   hits    hit rate   streamed   evicted pages   checksums\n");
}

void demo_print_pass(const demo_run *run, uint32_t p)
{
    const demo_pass *d = &run->pass[p];
    char s1[32];
    printf("%4u %9.1f %12s %4u/%-4u %7.1f%% %10u %15llu   %s\n", p + 1, d->seconds * 1e3,
           vs_cli_format_size(d->bytes_h2d, s1, sizeof s1), d->hits, d->uses, 100.0 * hit_rate(d), d->streamed,
           (unsigned long long)d->pages_evicted, d->mismatches ? "MISMATCH" : "ok");
}

void demo_print_summary(const demo_run *run, bool ok)
{
    char s1[32], s2[32];
    if (run->residency) {
        char *map = malloc(run->opt->layers + 1u);
        if (map) {
            size_t resident;
            residency_string(run, map, &resident);
            printf("\nfinal residency, one character per layer (R resident, r partly, P pinned, . not resident):\n"
                   "  %s\n  %zu of %u layers resident\n", map, resident, run->opt->layers);
            free(map);
        }
        const vs_stats *s = &run->stats;
        printf("device   faults %llu (hits %llu, mapped %llu, not resident %llu, of which fast fails %llu)\n"
               "         pages mapped %llu, evicted %llu; peak weights %s, peak scratch %s\n",
               (unsigned long long)s->faults, (unsigned long long)s->fault_hits,
               (unsigned long long)s->fault_maps, (unsigned long long)s->fault_not_resident,
               (unsigned long long)s->fault_fast_fails, (unsigned long long)s->pages_mapped,
               (unsigned long long)s->pages_evicted, vs_cli_format_size(s->peak_weights, s1, sizeof s1),
               vs_cli_format_size(s->peak_scratch, s2, sizeof s2));
    }
    uint32_t mismatches = total_mismatches(run);
    uint64_t uses = 0;
    for (uint32_t p = 0; p < run->passes_done; p++)
        uses += run->pass[p].uses;
    printf("checks   %llu layer uses verified, %u checksum mismatch%s\n", (unsigned long long)uses, mismatches,
           mismatches == 1 ? "" : "es");
    if (run->failure[0])
        fprintf(stderr, "vramswap demo: %s\n", run->failure);
    printf("%s\n", ok ? "demo OK" : "demo FAILED");
}

void demo_print_json(const demo_run *run, bool ok)
{
    const demo_options *o = run->opt;
    printf("{\"ok\": %s, \"version\": ", ok ? "true" : "false");
    vs_cli_json_string(stdout, vs_version());
    printf(", \"backend\": ");
    vs_cli_json_string(stdout, run->backend);
    printf(", \"simulated\": %s, \"gpu_found\": %s, \"device\": %d, \"device_name\": ",
           strcmp(run->backend, "sim") == 0 ? "true" : "false", run->gpu_found ? "true" : "false", o->device);
    vs_cli_json_string(stdout, run->props.name);
    printf(", \"layers\": %u, \"layer_size\": %llu, \"budget\": %llu, \"page_size\": %llu, \"prefetch\": %s, "
           "\"seed\": %llu, \"passes\": [",
           o->layers, (unsigned long long)o->layer_size, (unsigned long long)run->budget,
           (unsigned long long)run->props.page_size, o->prefetch ? "true" : "false", (unsigned long long)o->seed);
    for (uint32_t p = 0; p < run->passes_done; p++) {
        const demo_pass *d = &run->pass[p];
        printf("%s{\"pass\": %u, \"seconds\": %.6f, \"bytes_h2d\": %llu, \"bytes_d2h\": %llu, \"uses\": %u, "
               "\"hits\": %u, \"hit_rate\": %.4f, \"copied\": %u, \"streamed\": %u, \"pages_evicted\": %llu, "
               "\"bytes_evicted\": %llu, \"fast_fails\": %llu, \"checksum_mismatches\": %u}",
               p ? ", " : "", p + 1, d->seconds, (unsigned long long)d->bytes_h2d, (unsigned long long)d->bytes_d2h,
               d->uses, d->hits, hit_rate(d), d->copied, d->streamed, (unsigned long long)d->pages_evicted,
               (unsigned long long)d->bytes_evicted, (unsigned long long)d->fast_fails, d->mismatches);
    }
    printf("], \"residency\": ");
    char *map = run->residency ? malloc(o->layers + 1u) : NULL;
    if (map) {
        size_t resident;
        residency_string(run, map, &resident);
        vs_cli_json_string(stdout, map);
        printf(", \"resident_layers\": %zu", resident);
        free(map);
    } else {
        printf("null, \"resident_layers\": null");
    }
    printf(", \"pages_evicted\": %llu, \"checksum_mismatches\": %u, \"error\": ",
           (unsigned long long)run->stats.pages_evicted, total_mismatches(run));
    if (run->failure[0])
        vs_cli_json_string(stdout, run->failure);
    else
        printf("null");
    printf("}\n");
}
