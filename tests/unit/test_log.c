/* Logging: levels, the VRAMSWAP_LOG variable, the callback, and the rule that the
 * callback never runs under the device lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

TestSuite(log, .init = vt_init, .fini = vt_fini, .timeout = 60);

/* What the callbacks saw (one test per process, so plain statics). */
typedef struct vt_log_seen {
    int calls;
    int by_level[6];
    int bad_level;
    int trailing_newline;
    int empty;
    char last[512];
    vs_device_t *volatile dev;   /* device to call back into, once open */
    int reentrant_ok;            /* calls back into the device that worked */
    int blocked;                 /* another thread could not take the device lock */
} vt_log_seen;

static void vt_record(int level, const char *message, void *user)
{
    vt_log_seen *seen = user;
    seen->calls++;
    if (level < VS_LOG_ERROR || level > VS_LOG_TRACE)
        seen->bad_level++;
    else
        seen->by_level[level]++;
    size_t n = message ? strlen(message) : 0;
    if (n == 0)
        seen->empty++;
    else if (message[n - 1] == '\n')
        seen->trailing_newline++;
    if (message)
        snprintf(seen->last, sizeof seen->last, "%s", message);
}

Test(log, default_level_is_warn)
{
    unsetenv("VRAMSWAP_LOG");
    cr_assert_eq(vs_get_log_level(), VS_LOG_WARN);
}

Test(log, env_names_a_level)
{
    setenv("VRAMSWAP_LOG", "debug", 1);
    cr_assert_eq(vs_get_log_level(), VS_LOG_DEBUG);
}

Test(log, env_level_as_number)
{
    setenv("VRAMSWAP_LOG", "5", 1);
    cr_assert_eq(vs_get_log_level(), VS_LOG_TRACE);
}

Test(log, env_off)
{
    setenv("VRAMSWAP_LOG", "off", 1);
    cr_assert_eq(vs_get_log_level(), VS_LOG_OFF);
}

Test(log, set_and_get)
{
    for (int l = VS_LOG_OFF; l <= VS_LOG_TRACE; l++) {
        VT_OK(vs_set_log_level(l));
        cr_assert_eq(vs_get_log_level(), l);
    }
}

Test(log, bad_levels_change_nothing)
{
    VT_OK(vs_set_log_level(VS_LOG_INFO));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_set_log_level(-1));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_set_log_level(VS_LOG_TRACE + 1));
    VT_EXPECT(VS_ERR_INVALID_ARGUMENT, vs_set_log_level(1000));
    cr_assert_eq(vs_get_log_level(), VS_LOG_INFO);
}

/* Closing a device with a VBAR still open logs a warning for it. */
static void vt_close_with_leftover(vt_log_seen *seen)
{
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    seen->dev = e->dev;
    vs_vbar_t *v = vt_vbar(e, 2);
    vt_load_pages(e, v, 0, 1);
    seen->dev = NULL;
    VT_OK(vs_device_close(e->dev));
    vt_forget(e);
}

Test(log, callback_gets_warnings)
{
    static vt_log_seen seen;
    VT_OK(vs_set_log_level(VS_LOG_WARN));
    VT_OK(vs_set_log_callback(vt_record, &seen));
    vt_close_with_leftover(&seen);
    cr_assert_geq(seen.by_level[VS_LOG_WARN], 1, "no warning for the VBAR left open");
    cr_assert_eq(seen.by_level[VS_LOG_INFO] + seen.by_level[VS_LOG_DEBUG] +
                     seen.by_level[VS_LOG_TRACE], 0, "messages below the level delivered");
    cr_assert_eq(seen.bad_level, 0);
    cr_assert_eq(seen.empty, 0);
    cr_assert_eq(seen.trailing_newline, 0, "message ends in a newline: '%s'", seen.last);
    VT_OK(vs_set_log_callback(NULL, NULL));
}

Test(log, level_filters_the_callback)
{
    static vt_log_seen seen;
    VT_OK(vs_set_log_level(VS_LOG_ERROR));
    VT_OK(vs_set_log_callback(vt_record, &seen));
    vt_close_with_leftover(&seen);
    cr_assert_eq(seen.by_level[VS_LOG_WARN], 0, "warning delivered at level error: %s", seen.last);
    VT_OK(vs_set_log_level(VS_LOG_OFF));
    /* A backend failure is an error; at OFF nothing is delivered. */
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    vs_vbar_t *v = vt_vbar(e, 2);
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 0, 1, VS_ERR_BACKEND));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 0, 1, NULL));
    cr_assert_eq(seen.calls, 0, "delivered at level off: %s", seen.last);
    VT_OK(vs_vbar_destroy(v));
    VT_OK(vs_set_log_callback(NULL, NULL));
}

Test(log, default_sink_restored)
{
    static vt_log_seen seen;
    VT_OK(vs_set_log_callback(vt_record, &seen));
    VT_OK(vs_set_log_callback(NULL, NULL));
    vt_close_with_leftover(&seen);
    cr_assert_eq(seen.calls, 0, "old callback still called");
}

/* Note [Callback outside the lock]: the callback calls back into the device on
 * this thread, and also asks another thread to take the device lock and waits
 * for it (bounded). A callback running under the device lock would deadlock on
 * the first (non-recursive lock) or make the second time out (recursive lock). */
static void *vt_query_device(void *arg)
{
    vs_device_t *dev = arg;
    vs_memory_info mi;
    vs_status st = vs_device_memory_info(dev, &mi);
    return (void *)(intptr_t)st;
}

static void vt_reenter(int level, const char *message, void *user)
{
    vt_log_seen *seen = user;
    vt_record(level, message, user);
    vs_device_t *dev = seen->dev;
    if (!dev)
        return;
    vs_memory_info mi;
    if (vs_device_memory_info(dev, &mi) == VS_OK)
        seen->reentrant_ok++;
    pthread_t t;
    if (pthread_create(&t, NULL, vt_query_device, dev) != 0)
        return;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    void *ret = NULL;
    if (pthread_timedjoin_np(t, &ret, &deadline) != 0) {
        seen->blocked++;
        cr_assert_fail("log callback runs while the device lock is held (message: %s)", message);
    }
}

Test(log, callback_may_call_back_into_the_device)
{
    static vt_log_seen seen;
    VT_OK(vs_set_log_level(VS_LOG_TRACE));
    VT_OK(vs_set_log_callback(vt_reenter, &seen));
    vt_env *e = vt_open(&(vt_params){.pages = 8});
    seen.dev = e->dev;
    vs_vbar_t *v = vt_vbar(e, 4);
    vt_load_pages(e, v, 0, 4);
    uint64_t freed = 0;
    VT_OK(vs_vbar_free_memory(v, 2 * e->page, &freed));
    /* Errors produced deep under the lock: a backend failure while mapping. */
    VT_OK(vs_sim_inject(e->ordinal, VS_SIM_OP_MAP, 0, 1, VS_ERR_BACKEND));
    VT_OK(vs_vbar_set_watermark(v, 4 * e->page));
    VT_EXPECT(VS_ERR_BACKEND, vt_fault_pages(e, v, 3, 1, NULL));
    VT_OK(vs_vbar_destroy(v));
    int errors = seen.by_level[VS_LOG_ERROR];
    seen.dev = NULL;
    VT_OK(vs_set_log_callback(NULL, NULL));
    VT_OK(vs_set_log_level(VS_LOG_WARN));
    cr_assert_gt(seen.calls, 0, "no messages at trace level");
    cr_assert_gt(errors, 0, "the backend failure was not logged as an error");
    cr_assert_gt(seen.reentrant_ok, 0, "calling back into the device never worked");
    cr_assert_eq(seen.blocked, 0);
}
