/* Statistics: counters move with the operations they count; reset zeroes the
 * counters and sets each peak to its current value. Also vs_device_dump. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

TestSuite(stats, .init = vt_init, .fini = vt_fini);

Test(stats, fresh_device_is_zero)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.faults, 0);
    cr_assert_eq(s.pages_mapped, 0);
    cr_assert_eq(s.pages_evicted, 0);
    cr_assert_eq(s.chunks_created, 0);
    cr_assert_eq(s.reclaims, 0);
    cr_assert_eq(s.cur_weights, 0);
    cr_assert_eq(s.peak_weights, 0);
    cr_assert_eq(s.backend_failures, 0);
}

Test(stats, mapping_and_eviction)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *a = vt_vbar(e, 4);
    vs_vbar_t *b = vt_vbar(e, 4);
    vt_load_pages(e, a, 0, 4);
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.faults, 4);
    cr_assert_eq(s.fault_maps, 4);
    cr_assert_eq(s.fault_hits, 0);
    cr_assert_eq(s.pages_mapped, 4);
    cr_assert_eq(s.bytes_mapped, 4 * e->page);
    cr_assert_eq(s.chunks_created, 4);
    cr_assert_eq(s.cur_weights, 4 * e->page);
    cr_assert_eq(s.peak_weights, 4 * e->page);
    /* Two faults in B reuse A's chunks. */
    vt_load_pages(e, b, 0, 2);
    s = vt_stats(e);
    cr_assert_eq(s.pages_mapped, 6);
    cr_assert_eq(s.pages_evicted, 2);
    cr_assert_eq(s.bytes_evicted, 2 * e->page);
    cr_assert_eq(s.chunks_created, 4);
    cr_assert_eq(s.chunks_reused, 2);
    cr_assert_eq(s.chunks_released, 0);
    cr_assert_eq(s.cur_weights, 4 * e->page);
    /* Pressure eviction releases chunks. */
    VT_OK(vs_device_free_memory(e->dev, 3 * e->page, NULL));
    s = vt_stats(e);
    cr_assert_eq(s.pages_evicted, 5);
    cr_assert_eq(s.chunks_released, 3);
    cr_assert_eq(s.cur_weights, 1 * e->page);
    cr_assert_eq(s.peak_weights, 4 * e->page);
    cr_assert_eq(vt_counters(e->ordinal).phys_chunks, s.chunks_created - s.chunks_released);
}

Test(stats, reset)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 8);
    vt_load_pages(e, v, 0, 6);
    VT_OK(vs_device_free_memory(e->dev, 4 * e->page, NULL));
    VT_OK(vs_device_reset_stats(e->dev));
    vs_stats s = vt_stats(e);
    cr_assert_eq(s.faults, 0);
    cr_assert_eq(s.pages_mapped, 0);
    cr_assert_eq(s.pages_evicted, 0);
    cr_assert_eq(s.chunks_created, 0);
    cr_assert_eq(s.chunks_released, 0);
    cr_assert_eq(s.mem_polls, 0);
    cr_assert_eq(s.cur_weights, 2 * e->page, "reset changed a current value");
    cr_assert_eq(s.peak_weights, 2 * e->page, "peak not set to current");
    VT_OK(vs_vbar_set_watermark(v, 8 * e->page));
    vt_load_pages(e, v, 2, 1);
    s = vt_stats(e);
    cr_assert_eq(s.faults, 1);
    cr_assert_eq(s.pages_mapped, 1);
    cr_assert_eq(s.peak_weights, 3 * e->page);
}

Test(stats, bad_arguments)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_get_stats(e->dev, NULL));
    vs_stats s;
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_get_stats(NULL, &s));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_reset_stats(NULL));
}

Test(stats, invalid_calls_are_not_counted_as_faults)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_vbar_fault(v, 0, 0, NULL));
    VT_EXPECT(VS_ERR_OUT_OF_RANGE, vs_vbar_fault(v, 2 * e->page, 1, NULL));
    cr_assert_eq(vt_stats(e).faults, 0);
}

Test(stats, dump_reports_and_truncates)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 2);
    size_t len = 0;
    VT_OK(vs_device_dump(e->dev, NULL, 0, &len));
    cr_assert_gt(len, 0);
    char *buf = malloc(len + 1);
    cr_assert_not_null(buf);
    size_t len2 = 0;
    VT_OK(vs_device_dump(e->dev, buf, len + 1, &len2));
    cr_assert_eq(len2, len);
    cr_assert_eq(strlen(buf), len);
    char small[16];
    memset(small, 'x', sizeof small);
    VT_OK(vs_device_dump(e->dev, small, sizeof small, &len2));
    cr_assert_eq(len2, len, "the full length is reported when truncating");
    cr_assert_eq(strlen(small), sizeof small - 1);
    cr_assert_eq(strncmp(small, buf, sizeof small - 1), 0);
    VT_OK(vs_device_dump(e->dev, small, sizeof small, NULL));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_device_dump(e->dev, NULL, 10, &len2));
    VT_EXPECT(VS_ERR_INVALID_HANDLE, vs_device_dump(NULL, small, sizeof small, &len2));
    free(buf);
}
