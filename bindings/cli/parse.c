/* Parsing of command-line values: byte counts with binary suffixes, integers.
 * Strict: the whole text must parse, no sign, no overflow. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

bool vs_cli_parse_size(const char *text, uint64_t *out)
{
    if (!text || !out || !isdigit((unsigned char)text[0]))
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0)
        return false;
    unsigned shift = 0;
    if (*end != '\0') {
        switch (toupper((unsigned char)*end)) {
        case 'B': shift = 0; break;
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: return false;
        }
        const char *rest = end + 1;
        if (shift != 0 && *rest != '\0' && strcasecmp(rest, "iB") != 0 && strcasecmp(rest, "B") != 0)
            return false;
        if (shift == 0 && *rest != '\0')
            return false;
    }
    if (shift != 0 && value > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)value << shift;
    return true;
}

bool vs_cli_parse_int(const char *text, long long min, long long max, long long *out)
{
    if (!text || !out || text[0] == '\0')
        return false;
    if (!isdigit((unsigned char)text[0]) && !(text[0] == '-' && isdigit((unsigned char)text[1])))
        return false;
    errno = 0;
    char *end = NULL;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

void vs_cli_args_init(vs_cli_args *args, int argc, char **argv)
{
    args->argc = argc;
    args->argv = argv;
    args->next = 1;
    args->error[0] = '\0';
}

int vs_cli_next_option(vs_cli_args *args, const vs_cli_option *opts, const char **value)
{
    *value = NULL;
    if (args->next >= args->argc)
        return -1;
    const char *arg = args->argv[args->next++];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        snprintf(args->error, sizeof args->error, "unexpected argument '%s'", arg);
        return -2;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    for (int i = 0; opts[i].name; i++) {
        if (strlen(opts[i].name) != name_len || strncmp(opts[i].name, name, name_len) != 0)
            continue;
        if (!opts[i].has_value) {
            if (eq) {
                snprintf(args->error, sizeof args->error, "option '--%s' takes no value", opts[i].name);
                return -2;
            }
            return i;
        }
        if (eq) {
            *value = eq + 1;
        } else if (args->next < args->argc) {
            *value = args->argv[args->next++];
        } else {
            snprintf(args->error, sizeof args->error, "option '--%s' needs a value", opts[i].name);
            return -2;
        }
        return i;
    }
    snprintf(args->error, sizeof args->error, "unknown option '%.*s'", (int)(name_len + 2), arg);
    return -2;
}
