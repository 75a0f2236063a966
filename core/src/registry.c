/* The process registry: compiled-in backends (initialised lazily, once) and the
 * devices open on them. Guarded by registry_lock, which ranks above every device
 * lock (Note [Lock order] in device.c). */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "registry.h"

#define VS_MAX_BACKENDS 8
#define VS_MAX_OPEN 64

typedef struct backend_state {
    bool tried;             /* init was called */
    vs_status init_status;  /* its result */
    char why[256];
    int device_count;
    int intercept_refs;     /* devices that asked for interception */
} backend_state;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static backend_state backends[VS_MAX_BACKENDS];
static vs_intercept_sink sinks[VS_MAX_BACKENDS]; /* vs_core_sink with user = the backend's ops */
static vs_device_t *open_devices[VS_MAX_OPEN];

/* Messages logged under the registry lock are deferred like those under a device
 * lock (Note [Logging under locks]): a callback may call back into the registry. */
static void reg_lock(void)
{
    pthread_mutex_lock(&registry_lock);
    vs_log_enter_locked();
}

static void reg_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
    vs_log_leave_locked();
}

size_t vs_registry_backend_count(void)
{
    size_t n = 0;
    while (vs_builtin_backends[n] && n < VS_MAX_BACKENDS)
        n++;
    return n;
}

const vs_backend_ops *vs_registry_backend(size_t i)
{
    return i < vs_registry_backend_count() ? vs_builtin_backends[i] : NULL;
}

static vs_status init_locked(size_t i)
{
    backend_state *b = &backends[i];
    if (!b->tried) {
        const vs_backend_ops *ops = vs_builtin_backends[i];
        b->tried = true;
        b->why[0] = '\0';
        if (ops->abi_version != VS_BACKEND_ABI_VERSION) {
            snprintf(b->why, sizeof b->why, "backend ABI %u, core expects %u", ops->abi_version,
                     VS_BACKEND_ABI_VERSION);
            b->init_status = VS_ERR_NOT_SUPPORTED;
        } else {
            b->init_status = ops->init(b->why, sizeof b->why);
        }
        if (b->init_status == VS_OK) {
            b->device_count = ops->device_count();
            vs_log(VS_LOG_INFO, "backend %s: %d device(s)", ops->name, b->device_count);
        } else {
            if (!b->why[0])
                snprintf(b->why, sizeof b->why, "%s", vs_status_str(b->init_status));
            vs_log(VS_LOG_INFO, "backend %s unavailable: %s", ops->name, b->why);
        }
    }
    return b->init_status;
}

vs_status vs_registry_init_backend(size_t i)
{
    if (i >= vs_registry_backend_count())
        return VS_ERR_NO_DEVICE;
    reg_lock();
    vs_status st = init_locked(i);
    reg_unlock();
    return st;
}

VS_API size_t vs_backend_count(void)
{
    return vs_registry_backend_count();
}

VS_API vs_status vs_backend_get_info(size_t i, vs_backend_info *info)
{
    if (!info)
        return VS_ERR_INVALID_ARGUMENT;
    if (i >= vs_registry_backend_count())
        return VS_ERR_OUT_OF_RANGE;
    reg_lock();
    vs_status st = init_locked(i);
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", vs_builtin_backends[i]->name);
    info->available = st == VS_OK;
    /* Asked afresh: the simulator's device count can be reconfigured. */
    info->device_count = st == VS_OK ? vs_builtin_backends[i]->device_count() : 0;
    snprintf(info->why, sizeof info->why, "%s", st == VS_OK ? "" : backends[i].why);
    reg_unlock();
    return VS_OK;
}

vs_status vs_registry_add_device(vs_device_t *dev)
{
    reg_lock();
    vs_status st = VS_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < VS_MAX_OPEN; i++) {
        vs_device_t *d = open_devices[i];
        if (d && d->backend_index == dev->backend_index && d->ordinal == dev->ordinal) {
            st = VS_ERR_BUSY;
            break;
        }
    }
    if (st != VS_ERR_BUSY) {
        for (size_t i = 0; i < VS_MAX_OPEN; i++) {
            if (!open_devices[i]) {
                open_devices[i] = dev;
                st = VS_OK;
                break;
            }
        }
    }
    reg_unlock();
    return st;
}

void vs_registry_remove_device(vs_device_t *dev)
{
    reg_lock();
    for (size_t i = 0; i < VS_MAX_OPEN; i++)
        if (open_devices[i] == dev)
            open_devices[i] = NULL;
    reg_unlock();
}

/* Find the open device for a backend's ordinal, for the interception sink.
 * Returns it with its lock held, or NULL. */
vs_device_t *vs_registry_lock_device(const vs_backend_ops *ops, int ordinal);
vs_device_t *vs_registry_lock_device(const vs_backend_ops *ops, int ordinal)
{
    vs_device_t *found = NULL;
    reg_lock();
    for (size_t i = 0; i < VS_MAX_OPEN; i++) {
        vs_device_t *d = open_devices[i];
        if (d && d->ops == ops && d->ordinal == ordinal) {
            found = d;
            break;
        }
    }
    if (found)
        vs_dev_lock(found); /* registry -> device: the documented order */
    reg_unlock();
    return found;
}

vs_status vs_registry_intercept_ref(size_t bi)
{
    reg_lock();
    backend_state *b = &backends[bi];
    vs_status st = VS_OK;
    if (b->intercept_refs == 0) {
        const vs_backend_ops *ops = vs_builtin_backends[bi];
        char why[256] = "";
        if (!ops->intercept_install) {
            st = VS_ERR_NOT_SUPPORTED;
            snprintf(why, sizeof why, "backend has no allocation interception");
        } else {
            sinks[bi] = vs_core_sink;
            sinks[bi].user = (void *)ops;
            st = ops->intercept_install(&sinks[bi], why, sizeof why);
        }
        if (st != VS_OK)
            vs_log(VS_LOG_WARN, "allocation interception for %s not installed (%s); running without it",
                   ops->name, why[0] ? why : vs_status_str(st));
    }
    if (st == VS_OK)
        b->intercept_refs++;
    reg_unlock();
    return st;
}

void vs_registry_intercept_unref(size_t bi)
{
    reg_lock();
    backend_state *b = &backends[bi];
    if (b->intercept_refs > 0 && --b->intercept_refs == 0) {
        vs_status st = vs_builtin_backends[bi]->intercept_remove();
        if (st != VS_OK)
            vs_log(VS_LOG_WARN, "removing interception for %s: %s", vs_builtin_backends[bi]->name,
                   vs_status_str(st));
    }
    reg_unlock();
}
