/* Group "errors": every bad input gives its documented status and never
 * crashes: NULL, destroyed and foreign handles, NULL out-pointers, ranges
 * outside the object, zero and huge sizes, unpin without pin, destroying or
 * closing with pinned pages, opening a device twice. */
#include <stdlib.h>
#include <string.h>

#include "suite.h"

#define BAD_HANDLE VS_ERR_INVALID_HANDLE
#define BAD_ARG VS_ERR_INVALID_ARGUMENT

/* Every VBAR entry point with a VBAR handle that is not a live VBAR. */
static void vbar_calls_fail(vsc_ctx *t, vs_vbar_t *v, vs_status want)
{
    const uint64_t p = t->page;
    vs_devptr_t base;
    uint64_t u64, sigs[2];
    size_t count;
    uint8_t map[2];
    VSC_EXPECT(t, want, vs_vbar_destroy(v));
    VSC_EXPECT(t, want, vs_vbar_get_base(v, &base, &u64));
    VSC_EXPECT(t, want, vs_vbar_alloc(v, 16, 0, &u64));
    VSC_EXPECT(t, want, vs_vbar_allocated(v, &u64));
    VSC_EXPECT(t, want, vs_vbar_fault(v, 0, p, &u64));
    VSC_EXPECT(t, want, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE));
    VSC_EXPECT(t, want, vs_vbar_page_signatures(v, 0, p, sigs, 2, &count));
    VSC_EXPECT(t, want, vs_vbar_prioritize(v));
    VSC_EXPECT(t, want, vs_vbar_deprioritize(v));
    VSC_EXPECT(t, want, vs_vbar_set_watermark(v, 0));
    VSC_EXPECT(t, want, vs_vbar_get_watermark(v, &u64));
    VSC_EXPECT(t, want, vs_vbar_set_floor(v, 0));
    VSC_EXPECT(t, want, vs_vbar_get_floor(v, &u64));
    VSC_EXPECT(t, want, vs_vbar_free_memory(v, p, &u64));
    VSC_EXPECT(t, want, vs_vbar_loaded_size(v, &u64));
    VSC_EXPECT(t, want, vs_vbar_residency(v, map, 2, &count));
}

static void scratch_calls_fail(vsc_ctx *t, vs_scratch_t *s)
{
    vs_devptr_t ptr;
    uint64_t size, max;
    VSC_EXPECT(t, BAD_HANDLE, vs_scratch_resize(s, 0));
    VSC_EXPECT(t, BAD_HANDLE, vs_scratch_get(s, &ptr, &size, &max));
    VSC_EXPECT(t, BAD_HANDLE, vs_scratch_destroy(s));
}

static void host_calls_fail(vsc_ctx *t, vs_host_buffer_t *h)
{
    void *ptr;
    uint64_t size, max;
    VSC_EXPECT(t, BAD_HANDLE, vs_host_buffer_resize(h, 0));
    VSC_EXPECT(t, BAD_HANDLE, vs_host_buffer_get(h, &ptr, &size, &max));
    VSC_EXPECT(t, BAD_HANDLE, vs_host_buffer_destroy(h));
}

/* Every device entry point with a device handle that is not a live device. */
static void device_calls_fail(vsc_ctx *t, vs_device_t *d)
{
    vs_device_props props;
    vs_memory_info mem;
    vs_stats stats;
    vs_vbar_t *v = NULL;
    vs_scratch_t *s = NULL;
    vs_host_buffer_t *h = NULL;
    uintptr_t handle;
    uint64_t u64;
    size_t len;
    char buf[16];
    uint8_t host[16];
    VSC_EXPECT(t, BAD_HANDLE, vs_device_close(d));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_get_props(d, &props));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_memory_info(d, &mem));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_set_limit(d, 0, 0));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_reclaim(d, 1, &u64));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_free_memory(d, 1, &u64));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_reset_floors(d));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_get_stats(d, &stats));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_reset_stats(d));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_check_invariants(d));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_dump(d, buf, sizeof buf, &len));
    VSC_EXPECT(t, BAD_HANDLE, vs_stream_create(d, &handle));
    VSC_EXPECT(t, BAD_HANDLE, vs_stream_synchronize(d, 0));
    VSC_EXPECT(t, BAD_HANDLE, vs_event_create(d, &handle));
    VSC_EXPECT(t, BAD_HANDLE, vs_memcpy_async(d, VS_COPY_HOST_TO_DEVICE, (uintptr_t)host, (uintptr_t)host,
                                              sizeof host, 0));
    VSC_EXPECT(t, BAD_HANDLE, vs_vbar_create(d, t->page, &v));
    VSC_EXPECT(t, BAD_HANDLE, vs_scratch_create(d, t->page, &s));
    VSC_EXPECT(t, BAD_HANDLE, vs_host_buffer_create(d, VSC_MIB, &h));
    VSC_CHECK(t, v == NULL && s == NULL && h == NULL);
}

static void null_handles(vsc_ctx *t)
{
    device_calls_fail(t, NULL);
    vbar_calls_fail(t, NULL, BAD_HANDLE);
    scratch_calls_fail(t, NULL);
    host_calls_fail(t, NULL);
}

static void null_out_pointers(vsc_ctx *t)
{
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 2);
    vs_scratch_t *s = NULL;
    vs_host_buffer_t *h = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, p, &s));
    VSC_OK(t, vs_host_buffer_create(t->dev, VSC_MIB, &h));
    size_t count;
    uint64_t off;
    VSC_EXPECT(t, BAD_ARG, vs_device_config_init(NULL));
    VSC_EXPECT(t, BAD_ARG, vs_device_open(t->backend, t->ordinal, NULL, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_device_get_props(t->dev, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_device_memory_info(t->dev, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_device_get_stats(t->dev, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_stream_create(t->dev, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_event_create(t->dev, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_create(t->dev, p, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_scratch_create(t->dev, p, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_host_buffer_create(t->dev, VSC_MIB, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_get_base(v, NULL, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_alloc(v, 16, 0, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_allocated(v, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_get_watermark(v, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_get_floor(v, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_loaded_size(v, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_residency(v, NULL, 2, &count));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_residency(v, (uint8_t[2]){0}, 2, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_page_signatures(v, 0, p, NULL, 1, &count));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_page_signatures(v, 0, p, (uint64_t[1]){0}, 1, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_scratch_get(s, NULL, NULL, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_host_buffer_get(h, NULL, NULL, NULL));
    /* Nothing of that left a trace; the objects still work. */
    VSC_OK(t, vs_vbar_alloc(v, 16, 0, &off));
    VSC_EQ(t, off, 0);
    VSC_OK(t, vs_host_buffer_destroy(h));
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void destroyed_handles(vsc_ctx *t)
{
    vs_vbar_t *v = vsc_vbar(t, 2);
    VSC_OK(t, vs_vbar_destroy(v));
    vbar_calls_fail(t, v, BAD_HANDLE);
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, t->page, &s));
    VSC_OK(t, vs_scratch_destroy(s));
    scratch_calls_fail(t, s);
    vs_host_buffer_t *h = NULL;
    VSC_OK(t, vs_host_buffer_create(t->dev, VSC_MIB, &h));
    VSC_OK(t, vs_host_buffer_destroy(h));
    host_calls_fail(t, h);
    /* A closed device, and the objects it destroyed when closing. */
    vs_vbar_t *left = vsc_vbar(t, 1);
    vs_device_t *old = t->dev;
    vsc_close(t);
    device_calls_fail(t, old);
    vbar_calls_fail(t, left, BAD_HANDLE);
    vsc_reopen(t, 0);
}

/* Pointers that never were handles, or are handles of another kind. */
static void foreign_handles(vsc_ctx *t)
{
    vs_vbar_t *v = vsc_vbar(t, 2);
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, t->page, &s));
    uint64_t zeros[64];
    memset(zeros, 0, sizeof zeros);
    uint8_t *junk = vsc_alloc(t, 4096);
    memset(junk, 0xab, 4096);
    vbar_calls_fail(t, (vs_vbar_t *)zeros, BAD_HANDLE);
    vbar_calls_fail(t, (vs_vbar_t *)junk, BAD_HANDLE);
    vbar_calls_fail(t, (vs_vbar_t *)((char *)v + 8), BAD_HANDLE); /* inside a real one */
    vbar_calls_fail(t, (vs_vbar_t *)t->dev, BAD_HANDLE);           /* another kind */
    vbar_calls_fail(t, (vs_vbar_t *)s, BAD_HANDLE);
    scratch_calls_fail(t, (vs_scratch_t *)v);
    host_calls_fail(t, (vs_host_buffer_t *)s);
    vs_memory_info m;
    VSC_EXPECT(t, BAD_HANDLE, vs_device_memory_info((vs_device_t *)v, &m));
    VSC_EXPECT(t, BAD_HANDLE, vs_device_memory_info((vs_device_t *)junk, &m));
    /* The real ones are untouched. */
    VSC_OK(t, vs_vbar_fault(v, 0, t->page, NULL));
    VSC_OK(t, vs_vbar_unpin(v, 0, t->page, VS_STREAM_NONE));
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void out_of_range(vsc_ctx *t)
{
    const uint64_t p = t->page, size = 4 * p;
    vs_vbar_t *v = vsc_vbar(t, 4);
    uint64_t sigs[4];
    size_t count;
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_fault(v, size, 1, NULL));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_fault(v, size - 1, 2, NULL));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_fault(v, 1, UINT64_MAX, NULL)); /* offset + size wraps */
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_fault(v, UINT64_MAX, 1, NULL));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_unpin(v, size, 1, VS_STREAM_NONE));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_unpin(v, p, UINT64_MAX - p + 2, VS_STREAM_NONE));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_page_signatures(v, size, 1, sigs, 4, &count));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_set_watermark(v, size + 1));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_vbar_set_floor(v, size + 1));
    VSC_EQ(t, vsc_loaded(t, v), 0);
    vs_scratch_t *s = NULL;
    VSC_OK(t, vs_scratch_create(t->dev, 2 * p, &s));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_scratch_resize(s, 2 * p + 1));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_scratch_resize(s, UINT64_MAX));
    VSC_EQ(t, vsc_meminfo(t).used_scratch, 0);
    vs_host_buffer_t *h = NULL;
    uint64_t max = 0;
    VSC_OK(t, vs_host_buffer_create(t->dev, VSC_MIB, &h));
    VSC_OK(t, vs_host_buffer_get(h, NULL, NULL, &max));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_host_buffer_resize(h, max + 1));
    VSC_EXPECT(t, VS_ERR_OUT_OF_RANGE, vs_host_buffer_resize(h, UINT64_MAX));
    VSC_OK(t, vs_host_buffer_destroy(h));
    VSC_OK(t, vs_scratch_destroy(s));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void zero_and_huge_sizes(vsc_ctx *t)
{
    const uint64_t p = t->page, huge = (uint64_t)1 << 62;
    vs_vbar_t *v = NULL;
    VSC_EXPECT(t, BAD_ARG, vs_vbar_create(t->dev, 0, &v));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_create(t->dev, UINT64_MAX, &v));
    VSC_EXPECT2(t, BAD_ARG, VS_ERR_OUT_OF_MEMORY, vs_vbar_create(t->dev, huge, &v));
    VSC_CHECK(t, v == NULL);
    vs_scratch_t *s = NULL;
    VSC_EXPECT(t, BAD_ARG, vs_scratch_create(t->dev, 0, &s));
    VSC_EXPECT(t, BAD_ARG, vs_scratch_create(t->dev, UINT64_MAX, &s));
    VSC_EXPECT2(t, BAD_ARG, VS_ERR_OUT_OF_MEMORY, vs_scratch_create(t->dev, huge, &s));
    VSC_CHECK(t, s == NULL);
    vs_host_buffer_t *h = NULL;
    VSC_EXPECT(t, BAD_ARG, vs_host_buffer_create(t->dev, 0, &h));
    VSC_EXPECT(t, BAD_ARG, vs_host_buffer_create(t->dev, UINT64_MAX, &h));
    VSC_EXPECT2(t, BAD_ARG, VS_ERR_OUT_OF_MEMORY, vs_host_buffer_create(t->dev, huge, &h));
    VSC_CHECK(t, h == NULL);

    v = vsc_vbar(t, 2);
    vs_devptr_t base = vsc_base(t, v);
    uint64_t off = 0, freed = 5;
    uint8_t host[16];
    VSC_EXPECT(t, BAD_ARG, vs_vbar_fault(v, 0, 0, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_unpin(v, 0, 0, VS_STREAM_NONE));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_alloc(v, 0, 0, &off));
    VSC_EXPECT(t, BAD_ARG, vs_vbar_alloc(v, 1, 3, &off)); /* alignment not a power of two */
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, UINT64_MAX, 0, &off));
    VSC_OK(t, vs_vbar_alloc(v, 1, (uint64_t)1 << 63, &off)); /* offset 0 has every alignment */
    VSC_EQ(t, off, 0);
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_vbar_alloc(v, 1, (uint64_t)1 << 63, &off)); /* the next one is past the end */
    VSC_OK(t, vs_vbar_fault(v, 0, p, NULL));
    VSC_EXPECT(t, BAD_ARG, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)host, 0, 0));
    VSC_EXPECT(t, BAD_ARG, vs_memcpy_async(t->dev, 0, (uintptr_t)base, (uintptr_t)host, 16, 0));
    VSC_EXPECT(t, BAD_ARG, vs_memcpy_async(t->dev, 99, (uintptr_t)base, (uintptr_t)host, 16, 0));
    VSC_EXPECT(t, BAD_ARG, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, 0, (uintptr_t)host, 16, 0));
    VSC_EXPECT(t, BAD_ARG, vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, 0, 16, 0));
    VSC_EXPECT(t, BAD_ARG,
               vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, UINTPTR_MAX - 4, (uintptr_t)host, 16, 0));
    VSC_EXPECT(t, BAD_ARG,
               vs_memcpy_async(t->dev, VS_COPY_HOST_TO_DEVICE, (uintptr_t)base, (uintptr_t)host, 16, VS_STREAM_NONE));
    VSC_OK(t, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE));
    /* Reclaiming more than could ever be freed: refused, nothing evicted. */
    VSC_EXPECT(t, VS_ERR_OUT_OF_MEMORY, vs_device_reclaim(t->dev, UINT64_MAX, &freed));
    VSC_EQ(t, freed, 0);
    VSC_EQ(t, vsc_loaded(t, v), p);
    VSC_EXPECT(t, BAD_ARG, vs_device_set_limit(t->dev, p, 2 * p)); /* limit <= headroom */
    VSC_OK(t, vs_vbar_destroy(v));
}

static void streams_and_events(vsc_ctx *t)
{
    uintptr_t s = 0, e = 0;
    VSC_OK(t, vs_stream_create(t->dev, &s));
    VSC_OK(t, vs_event_create(t->dev, &e));
    VSC_EXPECT(t, BAD_ARG, vs_event_query(t->dev, 0));
    VSC_EXPECT(t, BAD_ARG, vs_event_synchronize(t->dev, 0));
    VSC_EXPECT(t, BAD_ARG, vs_event_record(t->dev, 0, s));
    VSC_EXPECT(t, BAD_ARG, vs_event_destroy(t->dev, 0));
    VSC_EXPECT(t, BAD_ARG, vs_event_record(t->dev, e, VS_STREAM_NONE));
    VSC_EXPECT(t, BAD_ARG, vs_stream_wait_event(t->dev, VS_STREAM_NONE, e));
    VSC_EXPECT(t, BAD_ARG, vs_stream_wait_event(t->dev, s, 0));
    VSC_EXPECT(t, BAD_ARG, vs_stream_destroy(t->dev, 0)); /* the default stream */
    VSC_EXPECT(t, BAD_ARG, vs_stream_destroy(t->dev, VS_STREAM_NONE));
    VSC_EXPECT(t, BAD_ARG, vs_stream_synchronize(t->dev, VS_STREAM_NONE));
    VSC_OK(t, vs_stream_synchronize(t->dev, 0));
    VSC_OK(t, vs_event_record(t->dev, e, s));
    VSC_OK(t, vs_event_synchronize(t->dev, e));
    VSC_OK(t, vs_event_destroy(t->dev, e));
    VSC_OK(t, vs_stream_destroy(t->dev, s));
}

static void unpin_without_pin(vsc_ctx *t)
{
    vsc_need_pages(t, 2);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 4);
    VSC_EXPECT(t, VS_ERR_NOT_PINNED, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE)); /* not even resident */
    vsc_load_pages(t, v, 0, 2);
    VSC_EXPECT(t, VS_ERR_NOT_PINNED, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE)); /* resident, unpinned */
    VSC_OK(t, vsc_fault_pages(t, v, 0, 1, NULL));
    VSC_EXPECT(t, VS_ERR_NOT_PINNED, vs_vbar_unpin(v, 0, 2 * p, 0)); /* partly pinned */
    VSC_RESIDENCY(t, v, "PR..");                                      /* nothing changed */
    VSC_OK(t, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE));
    VSC_RESIDENCY(t, v, "RR..");
    VSC_OK(t, vs_vbar_destroy(v));
}

static void pinned_is_busy(vsc_ctx *t)
{
    vsc_need_pages(t, 2);
    const uint64_t p = t->page;
    vs_vbar_t *v = vsc_vbar(t, 2);
    VSC_OK(t, vs_vbar_fault(v, 0, p, NULL));
    VSC_EXPECT(t, VS_ERR_BUSY, vs_vbar_destroy(v));
    VSC_RESIDENCY(t, v, "P."); /* still alive, unchanged */
    VSC_EQ(t, vsc_loaded(t, v), p);
    VSC_EXPECT(t, VS_ERR_BUSY, vs_device_close(t->dev));
    vs_memory_info m;
    VSC_OK(t, vs_device_memory_info(t->dev, &m)); /* the device is still open */
    VSC_EQ(t, m.used_weights, p);
    VSC_OK(t, vs_vbar_unpin(v, 0, p, VS_STREAM_NONE));
    VSC_OK(t, vs_vbar_destroy(v));
}

static void open_errors(vsc_ctx *t)
{
    vs_device_t *d = NULL;
    VSC_EXPECT(t, VS_ERR_BUSY, vs_device_open(t->backend, t->ordinal, NULL, &d));
    VSC_CHECK(t, d == NULL);
    VSC_EXPECT(t, VS_ERR_NO_DEVICE, vs_device_open("no-such-backend", 0, NULL, &d));
    VSC_EXPECT(t, VS_ERR_NO_DEVICE, vs_device_open(t->backend, 4096, NULL, &d));
    VSC_EXPECT2(t, VS_ERR_NO_DEVICE, BAD_ARG, vs_device_open(t->backend, -1, NULL, &d));
    vs_device_config c;
    VSC_OK(t, vs_device_config_init(&c));
    c.struct_size = sizeof c - 8;
    VSC_EXPECT(t, BAD_ARG, vs_device_open(t->backend, t->ordinal, &c, &d));
    VSC_OK(t, vs_device_config_init(&c));
    c.flags = 0x80;
    VSC_EXPECT(t, BAD_ARG, vs_device_open(t->backend, t->ordinal, &c, &d));
    VSC_CHECK(t, d == NULL);
    /* The first open is unaffected. */
    vs_memory_info m;
    VSC_OK(t, vs_device_memory_info(t->dev, &m));
    /* A page size that is not a multiple of the granularity. */
    uint64_t gran = t->props.granularity;
    vsc_close(t);
    VSC_OK(t, vs_device_config_init(&c));
    c.page_size = gran + gran / 2;
    VSC_EXPECT(t, BAD_ARG, vs_device_open(t->backend, t->ordinal, &c, &d));
    VSC_CHECK(t, d == NULL);
    vsc_reopen(t, 0);
}

static void status_names(vsc_ctx *t)
{
    for (int i = 0; i < VS_STATUS_COUNT_; i++) {
        const char *name = vs_status_name(i);
        VSC_CHECKF(t, name && strncmp(name, "VS_", 3) == 0 && strcmp(name, "VS_UNKNOWN") != 0,
                   "status %d has no name", i);
        for (int j = 0; j < i; j++)
            VSC_CHECKF(t, strcmp(name, vs_status_name(j)) != 0, "statuses %d and %d are both %s", i, j, name);
        const char *str = vs_status_str(i);
        VSC_CHECKF(t, str && *str, "status %d has no description", i);
        int64_t value = -1;
        VSC_OK(t, vs_constant(name, &value));
        VSC_EQ(t, value, i);
    }
    VSC_CHECK(t, strcmp(vs_status_name(VS_STATUS_COUNT_), "VS_UNKNOWN") == 0);
    VSC_CHECK(t, strcmp(vs_status_name(-1), "VS_UNKNOWN") == 0);
    int64_t value;
    VSC_EXPECT(t, BAD_ARG, vs_constant("VS_NO_SUCH_THING", &value));
}

static const vsc_test tests[] = {
    {"null_handles", null_handles, 0, "NULL device/VBAR/scratch/host handles give VS_ERR_INVALID_HANDLE"},
    {"null_out_pointers", null_out_pointers, 0, "NULL out-pointers give VS_ERR_INVALID_ARGUMENT and change nothing"},
    {"destroyed_handles", destroyed_handles, 0, "destroyed objects and closed devices give VS_ERR_INVALID_HANDLE"},
    {"foreign_handles", foreign_handles, 0, "non-handles and handles of another kind give VS_ERR_INVALID_HANDLE"},
    {"out_of_range", out_of_range, 0, "ranges outside the object (and wrapping ones) give VS_ERR_OUT_OF_RANGE"},
    {"zero_and_huge_sizes", zero_and_huge_sizes, 0, "zero and huge sizes are refused, nothing is left behind"},
    {"streams_and_events", streams_and_events, 0, "bad stream/event arguments give VS_ERR_INVALID_ARGUMENT"},
    {"unpin_without_pin", unpin_without_pin, 0, "unpinning unpinned pages gives VS_ERR_NOT_PINNED, changes nothing"},
    {"pinned_is_busy", pinned_is_busy, 0, "destroy/close with pinned pages give VS_ERR_BUSY and keep everything"},
    {"open_errors", open_errors, 0, "double open is VS_ERR_BUSY; bad backend/ordinal/config are refused"},
    {"status_names", status_names, 0, "every status has a distinct name, a description and a constant"},
};

const vsc_group vsc_group_errors = {"errors", "bad inputs: documented statuses, never a crash", tests,
                                    VSC_COUNT(tests)};
