/* Touching device memory that is not mapped faults, as a GPU access would: the
 * simulator's device addresses are host pointers, so the test process (Criterion
 * forks one per test) gets SIGSEGV. These tests end in the signal, so their
 * teardown cannot run; the control tests check the same steps without the touch. */
#include <signal.h>

#include "harness.h"

TestSuite(segv, .init = vt_init, .timeout = 30);

/* Sanitizers catch SIGSEGV themselves and exit with an error report instead of
 * dying of the signal; put the default action back so the death is a signal. */
static void vt_default_segv(void)
{
    struct sigaction sa;
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

/* Fault page 0, write it, unpin, evict it; return its (now unmapped) address. */
static volatile unsigned char *vt_evicted_page(vt_env *e, vs_vbar_t **out)
{
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    volatile unsigned char *p = vt_host(vt_base(v));
    p[0] = 1;
    p[e->page - 1] = 2;
    cr_assert_eq(p[0], 1);
    VT_OK(vt_unpin_pages(e, v, 0, 1));
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, e->page, &freed));
    cr_assert_eq(freed, e->page);
    cr_assert_eq(vt_loaded(v), 0);
    *out = v;
    return p;
}

Test(segv, touching_an_evicted_page_faults, .signal = SIGSEGV)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = NULL;
    volatile unsigned char *p = vt_evicted_page(e, &v);
    vt_default_segv();
    p[0] = 3;
    cr_assert_fail("writing an evicted page did not fault");
}

Test(segv, reading_an_evicted_page_faults, .signal = SIGSEGV)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = NULL;
    volatile unsigned char *p = vt_evicted_page(e, &v);
    vt_default_segv();
    unsigned char c = p[100];
    cr_assert_fail("reading an evicted page did not fault (%d)", c);
}

Test(segv, touching_a_never_mapped_page_faults, .signal = SIGSEGV)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = vt_vbar(e, 2);
    vt_load_pages(e, v, 0, 1);
    volatile unsigned char *p = vt_host(vt_base(v) + e->page);
    vt_default_segv();
    p[0] = 1;
    cr_assert_fail("writing an unmapped page did not fault");
}

Test(segv, touching_a_page_taken_by_another_vbar_faults, .signal = SIGSEGV)
{
    /* The chunk was reused for a more important VBAR: the old address is dead. */
    vt_env *e = vt_open(&(vt_params){.pages = 1});
    vs_vbar_t *a = vt_vbar(e, 1);
    vs_vbar_t *b = vt_vbar(e, 1);
    vt_load_pages(e, a, 0, 1);
    volatile unsigned char *pa = vt_host(vt_base(a));
    VT_OK(vt_fault_pages(e, b, 0, 1, NULL));
    cr_assert_eq(vt_loaded(a), 0);
    vt_default_segv();
    pa[0] = 1;
    cr_assert_fail("the evicted VBAR's address still works");
}

Test(segv, touching_a_destroyed_vbar_faults, .signal = SIGSEGV)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = vt_vbar(e, 1);
    vt_load_pages(e, v, 0, 1);
    volatile unsigned char *p = vt_host(vt_base(v));
    VT_OK(vs_vbar_destroy(v));
    vt_default_segv();
    p[0] = 1;
    cr_assert_fail("a destroyed VBAR's address still works");
}

Test(segv, touching_a_shrunk_scratch_buffer_faults, .signal = SIGSEGV)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_scratch_t *s = NULL;
    VT_OK(vs_scratch_create(e->dev, 4 * e->page, &s));
    VT_OK(vs_scratch_resize(s, 2 * e->page));
    vs_devptr_t d = 0;
    uint64_t size = 0, max = 0;
    VT_OK(vs_scratch_get(s, &d, &size, &max));
    volatile unsigned char *p = vt_host(d);
    p[e->page] = 1;
    VT_OK(vs_scratch_resize(s, e->page));
    p[0] = 1;   /* still mapped */
    vt_default_segv();
    p[e->page] = 2;
    cr_assert_fail("a released scratch page still works");
}

/* The same steps without the final touch: the test itself is sound. */
TestSuite(segv_control, .init = vt_init, .fini = vt_fini);

Test(segv_control, evicted_page_steps)
{
    vt_env *e = vt_open(&(vt_params){.pages = 4});
    vs_vbar_t *v = NULL;
    volatile unsigned char *p = vt_evicted_page(e, &v);
    (void)p;
    /* Mapping it again makes the address usable again. */
    VT_OK(vs_vbar_prioritize(v));
    VT_OK(vt_fault_pages(e, v, 0, 1, NULL));
    p[0] = 5;
    cr_assert_eq(p[0], 5);
    VT_OK(vt_unpin_pages(e, v, 0, 1));
}
