/* Device configuration: defaults and the VRAMSWAP_CONF environment variable
 * ("limit:8G,headroom:512M,page_size:32M,log:info,intercept:1,mem_poll_ns:2000000",
 * regrowth: "regrow:1,regrow_delay_ns:20000000,regrow_delay_max_ns:320000000,regrow_margin:0"),
 * in the style of PYTORCH_CUDA_ALLOC_CONF. A malformed entry is an error (the
 * caller learns about a typo instead of silently running with defaults). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

#define VS_DEFAULT_HEADROOM ((uint64_t)256 << 20)
#define VS_DEFAULT_POLL_NS 2000000ull
#define VS_DEFAULT_REGROW_DELAY_NS 20000000ull      /* 20 ms */
#define VS_DEFAULT_REGROW_DELAY_MAX_NS 320000000ull /* 320 ms */
#define VS_DEFAULT_REGROW_MARGIN 0ull /* the headroom is the room left; see regrow.c */

uint64_t vs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool vs_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case '\0': break;
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: return false;
    }
    if (shift && (*end == 'i' || *end == 'I'))
        end++;
    if (shift && (*end == 'b' || *end == 'B'))
        end++;
    if (*end != '\0')
        return false;
    if (shift && v > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool vs_parse_log_level(const char *s, int *out)
{
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    if (!s)
        return false;
    if (s[0] >= '0' && s[0] <= '5' && s[1] == '\0') {
        *out = s[0] - '0';
        return true;
    }
    for (int i = 0; i <= VS_LOG_TRACE; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = VS_LOG_WARN;
        return true;
    }
    return false;
}

static bool parse_bool(const char *s, uint32_t *flags, uint32_t bit)
{
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "on") == 0) {
        *flags |= bit;
        return true;
    }
    if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "off") == 0) {
        *flags &= ~bit;
        return true;
    }
    return false;
}

/* "regrow:0" sets VS_DEVICE_NO_REGROW (regrowth is on by default). */
static bool parse_regrow(const char *s, uint32_t *flags)
{
    uint32_t on = 0;
    if (!parse_bool(s, &on, 1u))
        return false;
    if (on)
        *flags &= ~(uint32_t)VS_DEVICE_NO_REGROW;
    else
        *flags |= VS_DEVICE_NO_REGROW;
    return true;
}

static bool parse_limit_scope(const char *v, uint32_t *flags)
{
    if (strcmp(v, "device") == 0)
        *flags &= ~(uint32_t)VS_DEVICE_LIMIT_PROCESS;
    else if (strcmp(v, "process") == 0)
        *flags |= VS_DEVICE_LIMIT_PROCESS;
    else
        return false;
    return true;
}

static vs_status apply_conf(vs_device_config *cfg, const char *conf)
{
    char *copy = strdup(conf);
    if (!copy)
        return VS_ERR_OUT_OF_MEMORY;
    vs_status st = VS_OK;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*item))
            item++;
        if (!*item)
            continue;
        char *colon = strchr(item, ':');
        if (!colon) {
            vs_log(VS_LOG_ERROR, "VRAMSWAP_CONF: '%s' is not key:value", item);
            st = VS_ERR_INVALID_ARGUMENT;
            break;
        }
        *colon = '\0';
        const char *key = item, *val = colon + 1;
        bool ok;
        int level;
        if (strcmp(key, "limit") == 0)
            ok = vs_parse_size(val, &cfg->limit);
        else if (strcmp(key, "headroom") == 0)
            ok = vs_parse_size(val, &cfg->headroom);
        else if (strcmp(key, "page_size") == 0)
            ok = vs_parse_size(val, &cfg->page_size);
        else if (strcmp(key, "mem_poll_ns") == 0)
            ok = vs_parse_size(val, &cfg->mem_poll_ns);
        else if (strcmp(key, "intercept") == 0)
            ok = parse_bool(val, &cfg->flags, VS_DEVICE_INTERCEPT);
        else if (strcmp(key, "regrow") == 0)
            ok = parse_regrow(val, &cfg->flags);
        else if (strcmp(key, "regrow_delay_ns") == 0)
            ok = vs_parse_size(val, &cfg->regrow_delay_ns);
        else if (strcmp(key, "regrow_delay_max_ns") == 0)
            ok = vs_parse_size(val, &cfg->regrow_delay_max_ns);
        else if (strcmp(key, "regrow_margin") == 0)
            ok = vs_parse_size(val, &cfg->regrow_margin);
        else if (strcmp(key, "limit_scope") == 0)
            ok = parse_limit_scope(val, &cfg->flags);
        else if (strcmp(key, "log") == 0)
            ok = vs_parse_log_level(val, &level) && vs_set_log_level(level) == VS_OK;
        else {
            vs_log(VS_LOG_ERROR, "VRAMSWAP_CONF: unknown key '%s' (limit, headroom, page_size, "
                                 "mem_poll_ns, intercept, regrow, regrow_delay_ns, "
                                 "regrow_delay_max_ns, regrow_margin, limit_scope, log)", key);
            st = VS_ERR_INVALID_ARGUMENT;
            break;
        }
        if (!ok) {
            vs_log(VS_LOG_ERROR, "VRAMSWAP_CONF: bad value '%s' for '%s'", val, key);
            st = VS_ERR_INVALID_ARGUMENT;
            break;
        }
    }
    free(copy);
    return st;
}

VS_API vs_status vs_device_config_init(vs_device_config *cfg)
{
    if (!cfg)
        return VS_ERR_INVALID_ARGUMENT;
    vs_device_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.headroom = VS_DEFAULT_HEADROOM;
    c.mem_poll_ns = VS_DEFAULT_POLL_NS;
    c.regrow_delay_ns = VS_DEFAULT_REGROW_DELAY_NS;
    c.regrow_delay_max_ns = VS_DEFAULT_REGROW_DELAY_MAX_NS;
    c.regrow_margin = VS_DEFAULT_REGROW_MARGIN;
    const char *env = getenv("VRAMSWAP_CONF");
    if (env && *env) {
        vs_status st = apply_conf(&c, env);
        if (st != VS_OK)
            return st;
    }
    *cfg = c;
    return VS_OK;
}
