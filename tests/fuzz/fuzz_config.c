/* libFuzzer harness: the configuration parsers. The input is split at NUL
 * bytes into strings fed to VRAMSWAP_CONF (through vs_device_config_init, as
 * an application meets it), the simulator's VRAMSWAP_SIM parser, the log level
 * parser (VRAMSWAP_LOG) and the size parser. The size parser is also checked
 * against an independent reference (decimal digits, an optional K/M/G/T with
 * optional "i" and "B", no overflow): any disagreement aborts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vramswap.h>

#include "fuzz.h"
#include "internal.h"
#include "sim/simdev.h"

static int ref_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    case '\0': break;
    default: return 0;
    }
    if (shift) {
        p++;
        if (*p == 'i' || *p == 'I')
            p++;
        if (*p == 'b' || *p == 'B')
            p++;
    }
    if (*p)
        return 0;
    if (shift && v > (UINT64_MAX >> shift))
        return 0;
    *out = v << shift;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        vs_set_log_level(getenv("VS_FUZZ_LOG") ? VS_LOG_ERROR : VS_LOG_OFF);
        quiet = 1;
    }
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *part[4] = {"", "", "", ""};
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < 4; i++) {
        if (buf[i] == '\0') {
            part[n++] = buf + start;
            start = i + 1;
        }
    }

    /* Sizes: the library and the reference agree. */
    for (size_t k = 0; k < 4; k++) {
        uint64_t a = 0xdeadbeef, b = 0xdeadbeef;
        int ra = vs_parse_size(part[k], &a), rb = ref_parse_size(part[k], &b);
        if (ra != rb || (ra && a != b)) {
            fprintf(stderr, "fuzz_config: parse_size(\"%s\") = %d/%llu, reference %d/%llu\n", part[k], ra,
                    (unsigned long long)a, rb, (unsigned long long)b);
            abort();
        }
    }

    /* VRAMSWAP_CONF through the public entry point. */
    setenv("VRAMSWAP_CONF", part[0], 1);
    vs_device_config c;
    memset(&c, 0xa5, sizeof c);
    vs_status st = vs_device_config_init(&c);
    if (st != VS_OK && st != VS_ERR_INVALID_ARGUMENT && st != VS_ERR_OUT_OF_MEMORY)
        abort();
    if (st == VS_OK && c.struct_size != sizeof c)
        abort();
    unsetenv("VRAMSWAP_CONF");

    /* VRAMSWAP_SIM. */
    vs_sim_config sc;
    simdev_config_default(&sc);
    st = simdev_config_parse(&sc, part[1]);
    if (st != VS_OK && st != VS_ERR_INVALID_ARGUMENT && st != VS_ERR_OUT_OF_MEMORY)
        abort();

    /* VRAMSWAP_LOG levels. */
    int level = -1;
    if (vs_parse_log_level(part[2], &level) && (level < VS_LOG_OFF || level > VS_LOG_TRACE))
        abort();
    free(buf);
    return 0;
}
