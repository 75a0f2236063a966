/* The hook engine when libvramswap is built without it (VS_HOOKS=OFF, or AUTO
 * without Capstone's library and headers): the same API, refusing.
 * Backends then run without allocation interception. */
#include <stdio.h>

#include "hook.h"

#ifndef VS_HOOK_ENGINE_DESC
#define VS_HOOK_ENGINE_DESC "left out"
#endif

int vs_hook_engine_available(void)
{
    return 0;
}

vs_status vs_hook_install(void *target, void *replacement, void **original_out, vs_hook_t **out,
                          char *why, size_t why_len)
{
    if (!target || !replacement || !original_out || !out || (!why && why_len))
        return VS_ERR_INVALID_ARGUMENT;
    if (why && why_len)
        snprintf(why, why_len, "%s", "built without the hook engine (" VS_HOOK_ENGINE_DESC ")");
    return VS_ERR_NOT_SUPPORTED;
}

vs_status vs_hook_remove(vs_hook_t *hook)
{
    (void)hook;
    return VS_ERR_INVALID_HANDLE;
}

vs_status vs_hook_get_info(vs_hook_t *hook, vs_hook_info *info)
{
    (void)info;
    (void)hook;
    return VS_ERR_INVALID_HANDLE;
}
