/* The runner's internals: options, running one test (in a child process or
 * not), the device probe, and the report. Test files do not include this. */
#ifndef VSC_HARNESS_H
#define VSC_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "suite.h"

#define VSC_MAX_FILTERS 64

typedef struct vsc_options {
    const char *backend;                  /* as given; "auto" by default */
    int ordinal;
    const char *filters[VSC_MAX_FILTERS]; /* "group" or "group/test" */
    size_t nfilters;
    bool list, json, verbose, no_fork, help;
    int timeout_s;                        /* per test */
    uint64_t seed;
    char filter_buf[1024];                /* storage the filters point into */
} vsc_options;

/* Parse argv (argv[0] is the command). false on a usage error, with the reason
 * in err. */
bool vsc_parse_options(int argc, char **argv, vsc_options *o, char *err, size_t errlen);
/* True when test tc of group g is selected by the filters (none: all). */
bool vsc_selected(const vsc_options *o, const vsc_group *g, const vsc_test *tc);
/* An error message when a filter matches no group or test, else NULL. */
const char *vsc_check_filters(const vsc_options *o, char *buf, size_t len);

/* What the probe learned about the device (in a child process, so that the
 * parent never initialises a GPU driver before forking). */
typedef struct vsc_probe {
    int opened;                 /* 1 when the device opened */
    int status;                 /* vs_status of the open otherwise */
    int leak_check;             /* 1 when the backend counts its driver objects */
    char backend[32];           /* resolved ("auto" -> "sim"...) */
    vs_device_props props;
    vs_memory_info mem;
    char log[1024];             /* library log lines, for an open failure */
} vsc_probe;

void vsc_run_probe(const vsc_options *o, vsc_probe *p);

/* Run one test; res gets its result (in a child unless --no-fork). */
void vsc_run_test(const vsc_options *o, const char *backend, const vsc_group *g, const vsc_test *tc,
                  vsc_result *res);

/* ---------------------------------------------------------------- the report (report.c) */

typedef struct vsc_record {
    const vsc_group *group;
    const vsc_test *test;
    vsc_result res;
} vsc_record;

void vsc_print_header(FILE *out, const vsc_options *o, const vsc_probe *p);
void vsc_print_test(FILE *out, const vsc_options *o, const vsc_record *r);
/* The per-group table and the final totals line. */
void vsc_print_summary(FILE *out, const vsc_record *recs, size_t n);
void vsc_print_json(FILE *out, const vsc_options *o, const vsc_probe *p, const vsc_record *recs, size_t n);
/* The device could not be opened. */
void vsc_print_open_failure(FILE *out, const vsc_options *o, const vsc_probe *p);

#endif /* VSC_HARNESS_H */
