/* Command-line options of the conformance suite (conformance.h lists them). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "harness.h"

const char vs_conformance_usage[] =
    "usage: vramswap conformance [--backend NAME] [--device N] [--group G] [--list]\n"
    "                            [--json] [-v] [--no-fork] [--timeout S] [--seed N]\n"
    "Run the backend conformance suite against one device.\n"
    "  --backend NAME  backend to test: sim, cuda, hip, level_zero or auto (default)\n"
    "  --device N      device ordinal (default 0)\n"
    "  --group G       only group G, or only test G/NAME (repeatable, comma-separated)\n"
    "  --list          list the tests and exit (-v: with what each checks)\n"
    "  --json          print one JSON object with every result\n"
    "  -v, --verbose   show the library's log and the tests' notes on stderr\n"
    "  --no-fork       run the tests in this process (a crash ends the run)\n"
    "  --timeout S     seconds a test may run before it is killed (default 60)\n"
    "  --seed N        seed of the random test data (default 1)\n"
    "Exit status: 0 when no test failed, 1 when one did, 2 on a usage error.\n";

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* Split a comma-separated list of filters into o->filters. */
static bool add_filters(vsc_options *o, const char *list, char *err, size_t errlen)
{
    size_t used = 0;
    for (size_t i = 0; i < o->nfilters; i++)
        used += strlen(o->filters[i]) + 1;
    size_t len = strlen(list);
    /* An empty name selects nothing; without this check "--group ,,,," left no
     * filter at all and ran everything. */
    if (len == 0 || list[0] == ',' || list[len - 1] == ',' || strstr(list, ",,")) {
        snprintf(err, errlen, "--group: empty group name in '%s'", list);
        return false;
    }
    if (used + len + 1 > sizeof o->filter_buf) {
        snprintf(err, errlen, "--group: too many filters");
        return false;
    }
    char *dst = o->filter_buf + used;
    memcpy(dst, list, len + 1);
    for (char *tok = strtok(dst, ","); tok; tok = strtok(NULL, ",")) {
        if (o->nfilters == VSC_MAX_FILTERS) {
            snprintf(err, errlen, "--group: too many filters");
            return false;
        }
        o->filters[o->nfilters++] = tok;
    }
    return true;
}

bool vsc_parse_options(int argc, char **argv, vsc_options *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->backend = "auto";
    o->timeout_s = 60;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[32];
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return false;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name) {
            snprintf(err, errlen, "unknown option '%s'", a);
            return false;
        }
        memcpy(name, a, nlen);
        name[nlen] = '\0';
        bool takes = strcmp(name, "--backend") == 0 || strcmp(name, "--device") == 0 ||
                     strcmp(name, "--group") == 0 || strcmp(name, "--timeout") == 0 ||
                     strcmp(name, "--seed") == 0;
        bool flag = strcmp(name, "--list") == 0 || strcmp(name, "--json") == 0 ||
                    strcmp(name, "--no-fork") == 0;
        if (!takes && !flag) {
            snprintf(err, errlen, "unknown option '%s'", name);
            return false;
        }
        if (flag) {
            if (eq) {
                snprintf(err, errlen, "option '%s' takes no value", name);
                return false;
            }
            if (strcmp(name, "--list") == 0)
                o->list = true;
            else if (strcmp(name, "--json") == 0)
                o->json = true;
            else
                o->no_fork = true;
            continue;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "option '%s' needs a value", name);
            return false;
        }
        uint64_t n;
        if (strcmp(name, "--backend") == 0) {
            if (!*val) {
                snprintf(err, errlen, "--backend: empty name");
                return false;
            }
            o->backend = val;
        } else if (strcmp(name, "--device") == 0) {
            if (!parse_u64(val, 1023, &n)) {
                snprintf(err, errlen, "--device: '%s' is not a device ordinal", val);
                return false;
            }
            o->ordinal = (int)n;
        } else if (strcmp(name, "--timeout") == 0) {
            if (!parse_u64(val, 86400, &n) || n == 0) {
                snprintf(err, errlen, "--timeout: '%s' is not a number of seconds (1-86400)", val);
                return false;
            }
            o->timeout_s = (int)n;
        } else if (strcmp(name, "--seed") == 0) {
            if (!parse_u64(val, UINT64_MAX, &n)) {
                snprintf(err, errlen, "--seed: '%s' is not a number", val);
                return false;
            }
            o->seed = n;
        } else if (!add_filters(o, val, err, errlen)) {
            return false;
        }
    }
    return true;
}

static bool filter_matches(const char *f, const vsc_group *g, const vsc_test *tc)
{
    size_t gl = strlen(g->name);
    if (strncmp(f, g->name, gl) != 0)
        return false;
    if (f[gl] == '\0')
        return true;
    return tc && f[gl] == '/' && strcmp(f + gl + 1, tc->name) == 0;
}

bool vsc_selected(const vsc_options *o, const vsc_group *g, const vsc_test *tc)
{
    if (o->nfilters == 0)
        return true;
    for (size_t i = 0; i < o->nfilters; i++)
        if (filter_matches(o->filters[i], g, tc))
            return true;
    return false;
}

const char *vsc_check_filters(const vsc_options *o, char *buf, size_t len)
{
    for (size_t i = 0; i < o->nfilters; i++) {
        bool hit = false;
        for (size_t gi = 0; gi < vsc_group_count && !hit; gi++) {
            const vsc_group *g = vsc_groups[gi];
            for (size_t ti = 0; ti < g->count && !hit; ti++)
                hit = filter_matches(o->filters[i], g, &g->tests[ti]);
        }
        if (!hit) {
            snprintf(buf, len, "--group: no group or test named '%s' (see --list)", o->filters[i]);
            return buf;
        }
    }
    return NULL;
}
