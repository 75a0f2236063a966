/* The demo's synthetic weights: seeded pseudo-random bytes per layer, and a
 * checksum that any single changed, lost or reordered 8-byte word alters. */
#include <string.h>

#include "demo.h"

/* SplitMix64: turns (seed, layer) into a well-mixed per-layer state. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void demo_fill_weights(uint8_t *dst, uint64_t size, uint64_t seed, uint32_t layer)
{
    uint64_t state = splitmix64(seed ^ splitmix64(layer)) | 1u;   /* xorshift64* needs non-zero */
    uint64_t i = 0;
    for (; i < size; i += 8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        uint64_t word = state * 0x2545f4914f6cdd1dull;
        memcpy(dst + i, &word, size - i < 8 ? size - i : 8);
    }
}

uint64_t demo_checksum(const uint8_t *src, uint64_t size)
{
    /* FNV-1a over 8-byte words (the tail zero-padded), then the length. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < size; i += 8) {
        uint64_t word = 0;
        memcpy(&word, src + i, size - i < 8 ? size - i : 8);
        h = (h ^ word) * 0x100000001b3ull;
    }
    return (h ^ size) * 0x100000001b3ull;
}
