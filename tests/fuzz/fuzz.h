/* Shared by the libFuzzer harnesses: reading typed values from the fuzz input
 * (past the end reads zeros, so every input is a complete program). */
#ifndef VS_FUZZ_H
#define VS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct vs_fuzz_in {
    const uint8_t *data;
    size_t len, pos;
} vs_fuzz_in;

static inline uint8_t vs_fuzz_u8(vs_fuzz_in *in)
{
    return in->pos < in->len ? in->data[in->pos++] : 0;
}

static inline uint16_t vs_fuzz_u16(vs_fuzz_in *in)
{
    uint16_t hi = vs_fuzz_u8(in);
    return (uint16_t)(hi << 8 | vs_fuzz_u8(in));
}

#endif
