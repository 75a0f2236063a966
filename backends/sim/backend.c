/* backend.c: the "sim" backend, the backend contract (vramswap/backend.h) over
 * the simulated GPU of simdev.h.
 *
 * A thin layer: each operation validates what the contract adds (page-aligned
 * host registration), calls simdev, and logs a failure like a driver error
 * (sim_report). Physical chunks are simdev handles carried in the vs_bphys
 * pointer; streams and events are simdev handles as they are (0 = the default
 * stream). The simulator's device lock ranks below the core's device lock and
 * simdev never calls back into the core (Note [simdev locks] in simdev.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sim_backend.h"

struct vs_bdev {
    simdev_t *sd;   /* the simulated device, open (referenced) while this lives */
    int ordinal;
};

vs_status sim_report(vs_status st, const char *what)
{
    switch (st) {
    case VS_OK:
    case VS_ERR_NOT_READY:       /* pending work, or a transient failure the core retries */
    case VS_ERR_OUT_OF_MEMORY:   /* a normal result */
        return st;
    case VS_ERR_BACKEND:
        vs_backend_log(VS_LOG_ERROR, "sim: %s failed: %s (%s)", what, vs_status_name(st),
                       simdev_last_error());
        return st;
    default:
        vs_backend_log(VS_LOG_DEBUG, "sim: %s failed: %s (%s)", what, vs_status_name(st),
                       simdev_last_error());
        return st;
    }
}

static simdev_handle chunk_handle(vs_bphys *chunk)
{
    return (simdev_handle)(uintptr_t)chunk;
}

/* ---------------------------------------------------------------- devices */

static vs_status sim_init(char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    sim_ensure_config();
    return VS_OK;
}

static int sim_device_count(void)
{
    sim_ensure_config();
    return simdev_device_count();
}

static vs_status sim_open(int ordinal, vs_bdev **out)
{
    if (!out)
        return VS_ERR_INVALID_ARGUMENT;
    vs_status est = sim_env_status();
    if (est != VS_OK) {
        vs_backend_log(VS_LOG_ERROR, "sim: not opening a device with a malformed VRAMSWAP_SIM (see above)");
        return est;
    }
    vs_bdev *b = calloc(1, sizeof *b);
    if (!b)
        return VS_ERR_OUT_OF_MEMORY;
    vs_status st = simdev_open(ordinal, &b->sd);
    if (st != VS_OK) {
        free(b);
        return sim_report(st, "open");
    }
    b->ordinal = ordinal;
    *out = b;
    return VS_OK;
}

static void sim_close(vs_bdev *dev)
{
    if (!dev)
        return;
    sim_report(simdev_close(dev->sd), "close");
    free(dev);
}

static vs_status sim_props(vs_bdev *dev, vs_bdev_props *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    simdev_props p;
    vs_status st = simdev_get_props(dev->sd, &p);
    if (st != VS_OK)
        return sim_report(st, "props");
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->integrated = p.integrated;
    out->total_memory = p.total_memory;
    out->granularity = p.granularity;
    out->preferred_page_size = p.preferred_page_size;
    return VS_OK;
}

static vs_status sim_mem_info(vs_bdev *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_mem_info(dev->sd, free_bytes, total_bytes), "mem_info");
}

/* ---------------------------------------------------------------- memory */

static vs_status sim_va_reserve(vs_bdev *dev, uint64_t size, uint64_t align, vs_devptr_t *out)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_va_reserve(dev->sd, size, align, out), "va_reserve");
}

static vs_status sim_va_free(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_va_free(dev->sd, va, size), "va_free");
}

static vs_status sim_phys_create(vs_bdev *dev, uint64_t size, vs_bphys **out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    simdev_handle h;
    vs_status st = simdev_phys_create(dev->sd, size, &h);
    if (st == VS_OK)
        *out = (vs_bphys *)(uintptr_t)h;
    return sim_report(st, "phys_create");
}

static vs_status sim_phys_release(vs_bdev *dev, vs_bphys *chunk)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_phys_release(dev->sd, chunk_handle(chunk)), "phys_release");
}

static vs_status sim_map(vs_bdev *dev, vs_devptr_t va, uint64_t size, vs_bphys *chunk)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_map(dev->sd, va, size, chunk_handle(chunk), 0), "map");
}

static vs_status sim_set_access(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_set_access(dev->sd, va, size, SIMDEV_ACCESS_RW), "set_access");
}

static vs_status sim_unmap(vs_bdev *dev, vs_devptr_t va, uint64_t size)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_unmap(dev->sd, va, size), "unmap");
}

static vs_status sim_host_register(vs_bdev *dev, void *ptr, uint64_t size)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (!dev || !ptr || size == 0 || (uintptr_t)ptr % page)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_host_register(dev->sd, ptr, size), "host_register");
}

static vs_status sim_host_unregister(vs_bdev *dev, void *ptr)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_host_unregister(dev->sd, ptr), "host_unregister");
}

/* ---------------------------------------------------------------- streams and events */

static vs_status sim_stream_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    simdev_handle h;
    vs_status st = simdev_stream_create(dev->sd, &h);
    if (st == VS_OK)
        *out = (uintptr_t)h;
    return sim_report(st, "stream_create");
}

static vs_status sim_stream_destroy(vs_bdev *dev, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_stream_destroy(dev->sd, stream), "stream_destroy");
}

static vs_status sim_stream_synchronize(vs_bdev *dev, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_stream_synchronize(dev->sd, stream), "stream_synchronize");
}

static vs_status sim_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                                uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_copy_async(dev->sd, kind, dst, src, size, stream), "copy_async");
}

static vs_status sim_event_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    simdev_handle h;
    vs_status st = simdev_event_create(dev->sd, &h);
    if (st == VS_OK)
        *out = (uintptr_t)h;
    return sim_report(st, "event_create");
}

static vs_status sim_event_destroy(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_event_destroy(dev->sd, event), "event_destroy");
}

static vs_status sim_event_record(vs_bdev *dev, uintptr_t event, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_event_record(dev->sd, event, stream), "event_record");
}

static vs_status sim_event_query(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_event_query(dev->sd, event), "event_query");
}

static vs_status sim_event_synchronize(vs_bdev *dev, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_event_synchronize(dev->sd, event), "event_synchronize");
}

static vs_status sim_stream_wait_event(vs_bdev *dev, uintptr_t stream, uintptr_t event)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    return sim_report(simdev_stream_wait_event(dev->sd, stream, event), "stream_wait_event");
}

/* ---------------------------------------------------------------- the table */

#define SIM_C(x) {#x, (int64_t)(x)}
/* The simulator's constants, listed by vs_constant() for the bindings. */
static const vs_backend_constant sim_constants[] = {
    SIM_C(VS_SIM_OP_VA_RESERVE), SIM_C(VS_SIM_OP_VA_FREE), SIM_C(VS_SIM_OP_PHYS_CREATE),
    SIM_C(VS_SIM_OP_PHYS_RELEASE), SIM_C(VS_SIM_OP_MAP), SIM_C(VS_SIM_OP_SET_ACCESS),
    SIM_C(VS_SIM_OP_UNMAP), SIM_C(VS_SIM_OP_HOST_REGISTER), SIM_C(VS_SIM_OP_COPY),
    SIM_C(VS_SIM_OP_MEM_INFO), SIM_C(VS_SIM_OP_STREAM_CREATE), SIM_C(VS_SIM_OP_EVENT_CREATE),
    SIM_C(VS_SIM_OP_ALLOC), SIM_C(VS_SIM_OP_COUNT_),
    {NULL, 0},
};
#undef SIM_C

const vs_backend_ops vs_backend_sim = {
    .abi_version = VS_BACKEND_ABI_VERSION,
    .name = "sim",
    .is_gpu = 0,
    .init = sim_init,
    .device_count = sim_device_count,
    .open = sim_open,
    .close = sim_close,
    .props = sim_props,
    .mem_info = sim_mem_info,
    .va_reserve = sim_va_reserve,
    .va_free = sim_va_free,
    .phys_create = sim_phys_create,
    .phys_release = sim_phys_release,
    .map = sim_map,
    .set_access = sim_set_access,
    .unmap = sim_unmap,
    .host_register = sim_host_register,
    .host_unregister = sim_host_unregister,
    .stream_create = sim_stream_create,
    .stream_destroy = sim_stream_destroy,
    .stream_synchronize = sim_stream_synchronize,
    .copy_async = sim_copy_async,
    .event_create = sim_event_create,
    .event_destroy = sim_event_destroy,
    .event_record = sim_event_record,
    .event_query = sim_event_query,
    .event_synchronize = sim_event_synchronize,
    .stream_wait_event = sim_stream_wait_event,
    .intercept_install = sim_intercept_install,
    .intercept_remove = sim_intercept_remove,
    .constants = sim_constants,
};
