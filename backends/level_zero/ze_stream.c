/* Level Zero streams and asynchronous copies.
 *
 * Note [Level Zero streams]
 * ~~~~~~~~~~~~~~~~~~~~~~~~~
 * A vramswap stream is an immediate command list (zeCommandListCreateImmediate,
 * asynchronous mode): commands run as they are appended, and the handle is the
 * ze_command_list_handle_t itself, so an application's own immediate list can
 * be passed through unchanged (it must belong to a context that can use this
 * device's memory and events; see the limitations in
 * docs/backends-level-zero.md). Stream 0 is a per-device default immediate
 * list created at open.
 *
 * Our lists are created on a queue group that copies, preferring a dedicated
 * copy engine (a group with COPY and without COMPUTE), so that weight uploads
 * overlap the application's kernels.
 *
 * Order: the contract wants in-order streams. Drivers with API 1.7 or newer
 * get ZE_COMMAND_QUEUE_FLAG_IN_ORDER. Before 1.7 the spec does not promise that
 * one command waits for the previous one, so every copy is preceded by a
 * barrier and an event record is a barrier that signals (ze_event.c); on an
 * in-order list neither is needed.
 *
 * The spec forbids appending to one command list from two threads at once,
 * and the core calls copies and records without its device lock: every append
 * the backend makes holds the device's `submit` lock. An application's own
 * list can still be appended to by the application's threads; that is for the
 * application to avoid.
 *
 * Synchronizing a stream uses zeCommandListHostSynchronize when the loader has
 * it (spec 1.6); otherwise (Debian's loader 1.8 implements spec 1.4) it appends
 * the signal of an internal event slot and waits for that.
 */
#include <stdint.h>

#include "level_zero/ze_internal.h"

ze_command_list_handle_t vs_ze_list(vs_bdev *dev, uintptr_t stream)
{
    return stream ? (ze_command_list_handle_t)stream : dev->default_list;
}

vs_status vs_ze_create_list(vs_bdev *dev, uint32_t queue_index, ze_command_list_handle_t *out)
{
    ze_command_queue_desc_t q = {
        .stype = ZE_STRUCTURE_TYPE_COMMAND_QUEUE_DESC,
        .ordinal = dev->copy_group,
        .index = queue_index,
        .flags = dev->in_order ? VS_ZE_COMMAND_QUEUE_FLAG_IN_ORDER : 0,
        .mode = ZE_COMMAND_QUEUE_MODE_ASYNCHRONOUS,
        .priority = ZE_COMMAND_QUEUE_PRIORITY_NORMAL,
    };
    ze_command_list_handle_t list = NULL;
    ze_result_t r = dev->ze->api.CommandListCreateImmediate(dev->ctx, dev->device, &q, &list);
    if (r != ZE_RESULT_SUCCESS)
        return vs_ze_result(r, "zeCommandListCreateImmediate");
    if (!list) {
        vs_backend_log(VS_LOG_ERROR, "level_zero: zeCommandListCreateImmediate returned no list");
        return VS_ERR_BACKEND;
    }
    *out = list;
    return VS_OK;
}

vs_status vs_ze_stream_create(vs_bdev *dev, uintptr_t *out)
{
    if (!dev || !out)
        return VS_ERR_INVALID_ARGUMENT;
    ze_command_list_handle_t list = NULL;
    /* Queue index 0: other indices need ZE_COMMAND_QUEUE_FLAG_EXPLICIT_ONLY,
     * which would stop the driver from balancing engines itself. */
    vs_status st = vs_ze_create_list(dev, 0, &list);
    if (st == VS_OK)
        *out = (uintptr_t)list;
    return st;
}

vs_status vs_ze_stream_destroy(vs_bdev *dev, uintptr_t stream)
{
    if (!dev || !stream)
        return VS_ERR_INVALID_ARGUMENT;
    /* A list must be idle before it is destroyed; the caller's pending work
     * completes first, as with cuStreamDestroy. */
    vs_status st = vs_ze_stream_synchronize(dev, stream);
    if (st != VS_OK)
        return st;
    ze_result_t r = dev->ze->api.CommandListDestroy((ze_command_list_handle_t)stream);
    return vs_ze_result(r, "zeCommandListDestroy");
}

vs_status vs_ze_stream_synchronize(vs_bdev *dev, uintptr_t stream)
{
    if (!dev)
        return VS_ERR_INVALID_ARGUMENT;
    const vs_ze_api *api = &dev->ze->api;
    ze_command_list_handle_t list = vs_ze_list(dev, stream);
    uint64_t epoch = vs_ze_wait_epoch(dev);
    vs_status st;
    if (api->CommandListHostSynchronize) {
        ze_result_t r = api->CommandListHostSynchronize(list, UINT64_MAX);
        st = vs_ze_result(r, "zeCommandListHostSynchronize");
    } else {
        vs_ze_slot *slot = NULL;
        st = vs_ze_slot_get(dev, &slot);
        if (st != VS_OK)
            return st;
        ze_result_t r = vs_ze_append_signal(dev, list, slot);
        if (r == ZE_RESULT_SUCCESS)
            r = api->EventHostSynchronize(slot->event, UINT64_MAX);
        st = vs_ze_result(r, "synchronizing a command list (signal + zeEventHostSynchronize)");
        vs_ze_slot_put(dev, slot);
    }
    if (st == VS_OK)
        vs_ze_list_passed(dev, list, epoch);
    return st;
}

vs_status vs_ze_copy_async(vs_bdev *dev, int kind, uintptr_t dst, uintptr_t src, uint64_t size,
                           uintptr_t stream)
{
    if (!dev || !dst || !src)
        return VS_ERR_INVALID_ARGUMENT;
    if (kind != VS_COPY_HOST_TO_DEVICE && kind != VS_COPY_DEVICE_TO_HOST &&
        kind != VS_COPY_DEVICE_TO_DEVICE)
        return VS_ERR_INVALID_ARGUMENT;
    if (size == 0)
        return VS_OK;
    const vs_ze_api *api = &dev->ze->api;
    ze_command_list_handle_t list = vs_ze_list(dev, stream);
    /* Level Zero has one copy call for every direction (unified addressing). */
    pthread_mutex_lock(&dev->submit);
    ze_result_t r = ZE_RESULT_SUCCESS;
    if (!dev->in_order)
        r = api->CommandListAppendBarrier(list, NULL, 0, NULL);
    if (r == ZE_RESULT_SUCCESS)
        r = api->CommandListAppendMemoryCopy(list, (void *)dst, (const void *)src, (size_t)size, NULL,
                                             0, NULL);
    pthread_mutex_unlock(&dev->submit);
    return vs_ze_result(r, "zeCommandListAppendMemoryCopy");
}
