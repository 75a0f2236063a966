/* The conformance report: one line per test, a per-group table, the totals
 * line ("N passed, N failed, N skipped", alone on its line), or one JSON object. */
#include <string.h>

#include "harness.h"

static const char *outcome_word(int outcome)
{
    switch (outcome) {
    case VSC_PASS: return "PASS";
    case VSC_SKIP: return "SKIP";
    default: return "FAIL";
    }
}

void vsc_print_header(FILE *out, const vsc_options *o, const vsc_probe *p)
{
    fprintf(out, "vramswap conformance: backend %s, device %d \"%s\", %llu MiB, page %llu KiB, seed %llu%s\n",
            p->backend, o->ordinal, p->props.name, (unsigned long long)(p->props.total_memory >> 20),
            (unsigned long long)(p->props.page_size >> 10), (unsigned long long)o->seed,
            p->leak_check ? "" : " (no leak check: the backend does not count its driver objects)");
    fflush(out);
}

/* Print the captured library log, indented, at most the last `max` lines. */
static void print_log(FILE *out, const char *log, int max)
{
    int lines = 0;
    for (const char *s = log; *s; s++)
        lines += *s == '\n';
    const char *s = log;
    for (; lines > max; lines--)
        s = strchr(s, '\n') + 1;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        fprintf(out, "    | %.*s\n", (int)len, s);
        s += len + (nl != NULL);
    }
}

void vsc_print_test(FILE *out, const vsc_options *o, const vsc_record *r)
{
    const vsc_result *res = &r->res;
    if (res->outcome == VSC_PASS) {
        fprintf(out, "PASS %s/%s (%.1f ms)\n", r->group->name, r->test->name, res->ms);
        fflush(out);
        return;
    }
    fprintf(out, "%s %s/%s: %s\n", outcome_word(res->outcome), r->group->name, r->test->name, res->message);
    if (res->outcome == VSC_FAIL && !o->verbose && res->log[0])
        print_log(out, res->log, 8);
    fflush(out);
}

typedef struct tally {
    size_t pass, fail, skip;
} tally;

static void count(tally *c, int outcome)
{
    if (outcome == VSC_PASS)
        c->pass++;
    else if (outcome == VSC_SKIP)
        c->skip++;
    else
        c->fail++;
}

void vsc_print_summary(FILE *out, const vsc_record *recs, size_t n)
{
    tally all = {0, 0, 0};
    fprintf(out, "\n%-14s %6s %6s %7s\n", "group", "passed", "failed", "skipped");
    for (size_t gi = 0; gi < vsc_group_count; gi++) {
        const vsc_group *g = vsc_groups[gi];
        tally c = {0, 0, 0};
        size_t ran = 0;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].group == g) {
                count(&c, recs[i].res.outcome);
                ran++;
            }
        }
        if (ran)
            fprintf(out, "%-14s %6zu %6zu %7zu\n", g->name, c.pass, c.fail, c.skip);
    }
    for (size_t i = 0; i < n; i++)
        count(&all, recs[i].res.outcome);
    fprintf(out, "%zu passed, %zu failed, %zu skipped\n", all.pass, all.fail, all.skip);
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void json_device(FILE *out, const vsc_options *o, const vsc_probe *p)
{
    fputs("{\"backend\": ", out);
    json_string(out, p->backend);
    fprintf(out, ", \"ordinal\": %d, \"device\": ", o->ordinal);
    json_string(out, p->props.name);
    fprintf(out, ", \"total_memory\": %llu, \"page_size\": %llu, \"granularity\": %llu, \"seed\": %llu, "
                 "\"leak_check\": %s",
            (unsigned long long)p->props.total_memory, (unsigned long long)p->props.page_size,
            (unsigned long long)p->props.granularity, (unsigned long long)o->seed, p->leak_check ? "true" : "false");
}

void vsc_print_json(FILE *out, const vsc_options *o, const vsc_probe *p, const vsc_record *recs, size_t n)
{
    json_device(out, o, p);
    fputs(",\n \"tests\": [", out);
    for (size_t i = 0; i < n; i++) {
        const vsc_record *r = &recs[i];
        fputs(i ? ",\n  " : "\n  ", out);
        fputs("{\"group\": ", out);
        json_string(out, r->group->name);
        fputs(", \"name\": ", out);
        json_string(out, r->test->name);
        fputs(", \"result\": ", out);
        json_string(out, r->res.outcome == VSC_PASS ? "pass" : r->res.outcome == VSC_SKIP ? "skip" : "fail");
        fprintf(out, ", \"ms\": %.3f, \"message\": ", r->res.ms);
        json_string(out, r->res.message);
        if (r->res.outcome == VSC_FAIL) {
            fputs(", \"log\": ", out);
            json_string(out, r->res.log);
        }
        fputc('}', out);
    }
    fputs("\n ],\n \"groups\": {", out);
    tally all = {0, 0, 0};
    bool first = true;
    for (size_t gi = 0; gi < vsc_group_count; gi++) {
        const vsc_group *g = vsc_groups[gi];
        tally c = {0, 0, 0};
        size_t ran = 0;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].group == g) {
                count(&c, recs[i].res.outcome);
                ran++;
            }
        }
        if (!ran)
            continue;
        fputs(first ? "\n  " : ",\n  ", out);
        first = false;
        json_string(out, g->name);
        fprintf(out, ": {\"passed\": %zu, \"failed\": %zu, \"skipped\": %zu}", c.pass, c.fail, c.skip);
    }
    for (size_t i = 0; i < n; i++)
        count(&all, recs[i].res.outcome);
    fprintf(out, "\n },\n \"totals\": {\"passed\": %zu, \"failed\": %zu, \"skipped\": %zu}}\n", all.pass,
            all.fail, all.skip);
}

void vsc_print_open_failure(FILE *out, const vsc_options *o, const vsc_probe *p)
{
    if (o->json) {
        json_device(out, o, p);
        fputs(",\n \"error\": ", out);
        char msg[256];
        snprintf(msg, sizeof msg, "cannot open device %d of backend %s: %s", o->ordinal, o->backend,
                 vs_status_name(p->status));
        json_string(out, msg);
        fputs(", \"log\": ", out);
        json_string(out, p->log);
        fputs(",\n \"tests\": [],\n \"totals\": {\"passed\": 0, \"failed\": 1, \"skipped\": 0}}\n", out);
        return;
    }
    fprintf(out, "vramswap conformance: cannot open device %d of backend %s: %s (%s)\n", o->ordinal, o->backend,
            vs_status_name(p->status), vs_status_str(p->status));
    if (p->log[0])
        print_log(out, p->log, 8);
    fprintf(out, "0 passed, 1 failed, 0 skipped\n");
}
