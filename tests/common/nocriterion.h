/* A stand-in for the few Criterion macros the harness and the stress tests use,
 * for builds where Criterion cannot run.
 *
 * Note [Criterion under ThreadSanitizer]
 * Criterion's runner (BoxFort) cannot start under ThreadSanitizer: it maps an
 * "inheritable arena" at an address TSan reserves and aborts with "Could not
 * initialize inheritable arena" (Snaipe/Criterion issue #274, open). So VS_TSAN
 * builds compile the stress tests with VT_NO_CRITERION: Test() defines a plain
 * function, the test file's main() runs each one between vt_init and vt_fini in
 * one process, and a failed assertion prints the message and aborts.
 */
#ifndef VS_TEST_NOCRITERION_H
#define VS_TEST_NOCRITERION_H

#include <stddef.h>

void vt_assert_failed(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define TestSuite(...) _Static_assert(1, "test suite")
#define Test(suite, name, ...) static void vt_test_##suite##_##name(void)

/* The optional message is a format string literal: " " glues onto it. */
#define cr_assert(cond, ...)                                                       \
    ((cond) ? (void)0 : vt_assert_failed(__FILE__, __LINE__, #cond, " " __VA_ARGS__))
#define cr_assert_fail(...) vt_assert_failed(__FILE__, __LINE__, "fail", " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)

#endif /* VS_TEST_NOCRITERION_H */
