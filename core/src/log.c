/* Logging: levels, a user callback, stderr by default.
 *
 * Note [Logging under locks]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~~
 * A log callback may do anything: take Python's GIL, call back into vramswap.
 * Calling it while a device lock is held could deadlock (thread A holds the
 * device lock and waits for the GIL; thread B holds the GIL and waits for the
 * device lock) or recurse into the lock. So a thread that holds a device lock
 * (vs_log_enter_locked) formats its messages into a small thread-local queue,
 * and vs_log_leave_locked delivers them once the thread holds no device lock.
 * The queue is bounded; when it overflows the oldest messages are kept and a
 * count of dropped ones is reported.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define VS_LOG_QUEUE 16
#define VS_LOG_MSG 512

static _Atomic int log_level = -1; /* -1: not read from the environment yet */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static vs_log_fn sink_fn;
static void *sink_user;

static _Thread_local int locked_depth;
static _Thread_local int queued;
static _Thread_local int dropped;
static _Thread_local int queued_level[VS_LOG_QUEUE];
static _Thread_local char queued_msg[VS_LOG_QUEUE][VS_LOG_MSG];

static int current_level(void)
{
    int lv = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (lv >= 0)
        return lv;
    int parsed = VS_LOG_WARN;
    const char *env = getenv("VRAMSWAP_LOG");
    if (env && *env && !vs_parse_log_level(env, &parsed))
        parsed = VS_LOG_WARN;
    int expected = -1;
    atomic_compare_exchange_strong(&log_level, &expected, parsed);
    return atomic_load(&log_level);
}

static const char *level_name(int level)
{
    static const char *const names[] = {"off", "error", "warning", "info", "debug", "trace"};
    return level >= 0 && level <= VS_LOG_TRACE ? names[level] : "?";
}

static void deliver(int level, const char *msg)
{
    pthread_mutex_lock(&sink_lock);
    vs_log_fn fn = sink_fn;
    void *user = sink_user;
    pthread_mutex_unlock(&sink_lock);
    if (fn)
        fn(level, msg, user);
    else
        fprintf(stderr, "vramswap: %s: %s\n", level_name(level), msg);
}

static void vlog(int level, const char *fmt, va_list ap)
{
    if (level <= VS_LOG_OFF || level > current_level())
        return;
    if (locked_depth > 0) {
        if (queued == VS_LOG_QUEUE) {
            dropped++;
            return;
        }
        vsnprintf(queued_msg[queued], VS_LOG_MSG, fmt, ap);
        queued_level[queued++] = level;
        return;
    }
    char buf[VS_LOG_MSG];
    vsnprintf(buf, sizeof buf, fmt, ap);
    deliver(level, buf);
}

void vs_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void vs_backend_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void vs_log_enter_locked(void)
{
    locked_depth++;
}

void vs_log_leave_locked(void)
{
    if (--locked_depth > 0 || (queued == 0 && dropped == 0))
        return;
    /* Copy out first: a callback may log again (and must not see a half-drained queue). */
    int n = queued, lost = dropped;
    int levels[VS_LOG_QUEUE];
    char (*msgs)[VS_LOG_MSG] = malloc(sizeof(char[VS_LOG_QUEUE][VS_LOG_MSG]));
    if (msgs) {
        memcpy(levels, queued_level, sizeof levels);
        memcpy(msgs, queued_msg, (size_t)n * VS_LOG_MSG);
    }
    queued = 0;
    dropped = 0;
    if (!msgs)
        return; /* out of memory while logging: drop the messages */
    for (int i = 0; i < n; i++)
        deliver(levels[i], msgs[i]);
    free(msgs);
    if (lost)
        vs_log(VS_LOG_WARN, "%d log messages dropped (queue full while a device lock was held)", lost);
}

VS_API vs_status vs_set_log_level(int level)
{
    if (level < VS_LOG_OFF || level > VS_LOG_TRACE)
        return VS_ERR_INVALID_ARGUMENT;
    atomic_store(&log_level, level);
    return VS_OK;
}

VS_API int vs_get_log_level(void)
{
    return current_level();
}

VS_API vs_status vs_set_log_callback(vs_log_fn fn, void *user)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_user = fn ? user : NULL;
    pthread_mutex_unlock(&sink_lock);
    return VS_OK;
}
