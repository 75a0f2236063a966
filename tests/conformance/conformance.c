/* vs_conformance_main: options, the device probe, every selected test, the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "harness.h"

static void list_tests(const vsc_options *o)
{
    for (size_t gi = 0; gi < vsc_group_count; gi++) {
        const vsc_group *g = vsc_groups[gi];
        bool any = false;
        for (size_t ti = 0; ti < g->count; ti++)
            any |= vsc_selected(o, g, &g->tests[ti]);
        if (!any)
            continue;
        if (o->verbose)
            printf("%s: %s\n", g->name, g->what);
        for (size_t ti = 0; ti < g->count; ti++) {
            const vsc_test *tc = &g->tests[ti];
            if (!vsc_selected(o, g, tc))
                continue;
            if (o->verbose)
                printf("  %s/%s: %s\n", g->name, tc->name, tc->what);
            else
                printf("%s/%s\n", g->name, tc->name);
        }
    }
}

int vs_conformance_main(int argc, char **argv)
{
    vsc_options *o = calloc(1, sizeof *o);
    if (!o) {
        fprintf(stderr, "vramswap conformance: out of memory\n");
        return 1;
    }
    char err[256];
    if (!vsc_parse_options(argc, argv, o, err, sizeof err) || vsc_check_filters(o, err, sizeof err)) {
        fprintf(stderr, "vramswap conformance: %s\n%s", err, vs_conformance_usage);
        free(o);
        return 2;
    }
    if (o->help) {
        fputs(vs_conformance_usage, stdout);
        free(o);
        return 0;
    }
    if (o->list) {
        list_tests(o);
        free(o);
        return 0;
    }

    vsc_probe probe;
    vsc_run_probe(o, &probe);
    if (!probe.opened) {
        vsc_print_open_failure(stdout, o, &probe);
        free(o);
        return 1;
    }
    size_t total = 0;
    for (size_t gi = 0; gi < vsc_group_count; gi++)
        total += vsc_groups[gi]->count;
    vsc_record *recs = calloc(total ? total : 1, sizeof *recs);
    if (!recs) {
        fprintf(stderr, "vramswap conformance: out of memory\n");
        free(o);
        return 1;
    }
    if (!o->json)
        vsc_print_header(stdout, o, &probe);
    size_t n = 0;
    int failed = 0;
    for (size_t gi = 0; gi < vsc_group_count; gi++) {
        const vsc_group *g = vsc_groups[gi];
        for (size_t ti = 0; ti < g->count; ti++) {
            const vsc_test *tc = &g->tests[ti];
            if (!vsc_selected(o, g, tc))
                continue;
            vsc_record *r = &recs[n++];
            r->group = g;
            r->test = tc;
            if (o->verbose)
                fprintf(stderr, "RUN  %s/%s\n", g->name, tc->name);
            vsc_run_test(o, probe.backend, g, tc, &r->res);
            failed |= r->res.outcome == VSC_FAIL;
            if (!o->json)
                vsc_print_test(stdout, o, r);
            else if (o->verbose)
                vsc_print_test(stderr, o, r);
        }
    }
    if (o->json)
        vsc_print_json(stdout, o, &probe, recs, n);
    else
        vsc_print_summary(stdout, recs, n);
    fflush(stdout);
    free(recs);
    free(o);
    return failed ? 1 : 0;
}
