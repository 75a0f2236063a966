/* Group "host": growable registered host buffers keep their contents and
 * address across growth and shrinkage; copies work from registered and from
 * plain pageable memory alike. */
#include <string.h>

#include "suite.h"

static uint8_t *buffer_ptr(vsc_ctx *t, vs_host_buffer_t *hb, uint64_t *size)
{
    void *ptr = NULL;
    VSC_OK(t, vs_host_buffer_get(hb, &ptr, size, NULL));
    VSC_CHECK(t, ptr != NULL);
    return ptr;
}

static void grow_shrink_keeps_contents(vsc_ctx *t)
{
    const uint64_t max = 16 * VSC_MIB;
    vs_host_buffer_t *hb = NULL;
    VSC_OK(t, vs_host_buffer_create(t->dev, max, &hb));
    uint64_t size = 1, maxsz = 0;
    void *p0 = NULL;
    VSC_OK(t, vs_host_buffer_get(hb, &p0, &size, &maxsz));
    VSC_EQ(t, size, 0);
    VSC_CHECK(t, maxsz >= max);
    uint8_t *ref = vsc_alloc(t, max);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    vsc_fill_random(&rng, ref, max);

    const uint64_t a = 3 * VSC_MIB + 5, b = 9 * VSC_MIB, c = VSC_MIB + 7, d = 12 * VSC_MIB;
    VSC_OK(t, vs_host_buffer_resize(hb, a));
    uint8_t *p = buffer_ptr(t, hb, &size);
    VSC_EQ(t, size, a);
    if (p0)
        VSC_CHECK(t, p == p0); /* the address never moves */
    memcpy(p, ref, a);
    VSC_OK(t, vs_host_buffer_resize(hb, b));
    VSC_CHECK(t, buffer_ptr(t, hb, &size) == p);
    VSC_EQ(t, size, b);
    VSC_BYTES(t, p, ref, a, "contents after growing");
    memcpy(p + a, ref + a, b - a);
    VSC_OK(t, vs_host_buffer_resize(hb, c));
    VSC_CHECK(t, buffer_ptr(t, hb, &size) == p);
    VSC_EQ(t, size, c);
    VSC_BYTES(t, p, ref, c, "contents after shrinking");
    VSC_OK(t, vs_host_buffer_resize(hb, d));
    VSC_BYTES(t, p, ref, c, "contents after shrinking and growing again");
    memset(p + c, 0x11, d - c); /* the regrown part is usable */
    vs_stats s = vsc_stats(t);
    VSC_CHECK(t, s.cur_host_registered >= d);
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_host_buffer_resize(hb, maxsz + 1));
    VSC_OK(t, vs_host_buffer_get(hb, NULL, &size, NULL));
    VSC_EQ(t, size, d); /* unchanged by the refused resize */
    VSC_OK(t, vs_host_buffer_resize(hb, 0));
    VSC_OK(t, vs_host_buffer_get(hb, NULL, &size, NULL));
    VSC_EQ(t, size, 0);
    VSC_OK(t, vs_host_buffer_destroy(hb));
    s = vsc_stats(t);
    VSC_EQ(t, s.cur_host_registered, 0);
    VSC_EXPECT(t, VS_ERR_INVALID_HANDLE, vs_host_buffer_destroy(hb));
}

/* H2D and D2H with a registered host buffer and with malloc'd memory, at
 * unaligned offsets on both sides. */
static void copies_registered_and_pageable(vsc_ctx *t)
{
    vsc_need_pages(t, 4);
    const uint64_t len = 4 * t->page;
    vs_vbar_t *v = vsc_vbar(t, 4);
    vs_devptr_t base = vsc_base(t, v);
    VSC_OK(t, vs_vbar_fault(v, 0, len, NULL));
    vs_host_buffer_t *hb = NULL;
    VSC_OK(t, vs_host_buffer_create(t->dev, 2 * len + 64, &hb));
    VSC_OK(t, vs_host_buffer_resize(hb, 2 * len + 64));
    uint8_t *reg = buffer_ptr(t, hb, NULL);
    uint8_t *pageable = vsc_alloc(t, len + 64), *ref = vsc_alloc(t, len);
    vsc_rng rng;
    vsc_rng_init(&rng, t->seed);
    uintptr_t s = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));

    /* registered -> device -> pageable */
    vsc_fill_random(&rng, reg, len);
    memcpy(ref, reg, len);
    memset(pageable, 0, len);
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)reg, len, s));
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)pageable, (uintptr_t)base, len, s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_BYTES(t, pageable, ref, len, "registered -> device -> pageable");

    /* pageable -> device -> registered, unaligned */
    const uint64_t off = t->page / 2 + 3, n = len - off - 5;
    vsc_fill_random(&rng, pageable + 1, n);
    memcpy(ref, pageable + 1, n);
    memset(reg + len + 3, 0, n);
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)(base + off), (uintptr_t)(pageable + 1), n,
                              s));
    VSC_OK(t, vs_memcpy_async(t->dev, VS_COPY_DEVICE_TO_HOST, (uintptr_t)(reg + len + 3), (uintptr_t)(base + off), n,
                              s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_BYTES(t, reg + len + 3, ref, n, "pageable -> device -> registered (unaligned)");

    /* registered -> device -> registered, default stream */
    vsc_fill_random(&rng, reg, 1000);
    memcpy(ref, reg, 1000);
    vsc_write(t, base + len - 1000, reg, 1000);
    memset(reg + len, 0, 1000);
    vsc_read(t, reg + len, base + len - 1000, 1000);
    VSC_BYTES(t, reg + len, ref, 1000, "registered -> device -> registered");

    VSC_OK(t, vs_vbar_unpin(v, 0, len, s));
    VSC_OK(t, vs_stream_synchronize(t->dev, s));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
    VSC_OK(t, vs_host_buffer_destroy(hb));
    VSC_OK(t, vs_vbar_destroy(v));
}

/* Host buffers cost no device memory. */
static void no_device_memory(vsc_ctx *t)
{
    vs_memory_info m0 = vsc_meminfo(t);
    vs_host_buffer_t *hb = NULL;
    VSC_OK(t, vs_host_buffer_create(t->dev, 8 * VSC_MIB, &hb));
    VSC_OK(t, vs_host_buffer_resize(hb, 8 * VSC_MIB));
    vs_memory_info m1 = vsc_meminfo(t);
    VSC_EQ(t, m1.used_weights + m1.used_scratch + m1.used_intercepted,
           m0.used_weights + m0.used_scratch + m0.used_intercepted);
    VSC_OK(t, vs_host_buffer_destroy(hb));
}

static const vsc_test tests[] = {
    {"grow_shrink_keeps_contents", grow_shrink_keeps_contents, 0,
     "resize keeps the address and the contents below the new size"},
    {"copies_registered_and_pageable", copies_registered_and_pageable, 0,
     "copies from/to a host buffer and from/to malloc'd memory are exact"},
    {"no_device_memory", no_device_memory, 0, "host buffers are not counted as device memory"},
};

const vsc_group vsc_group_host = {"host", "registered host buffers and copies", tests, VSC_COUNT(tests)};
