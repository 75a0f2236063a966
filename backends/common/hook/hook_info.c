/* vs_hook_engine_info: whether this libvramswap was built with the hook engine,
 * for `vramswap info`, Device.props in Python and anyone else who must tell the
 * user that allocation interception cannot work (Note [Optional parts] in
 * cmake/optional.cmake). backends/common/CMakeLists.txt defines VS_HOOK_ENGINE_DESC:
 * how the engine was built, or why it was left out and what would add it. */
#include <stdio.h>

#include "hook.h"

#ifndef VS_HOOK_ENGINE_DESC
#define VS_HOOK_ENGINE_DESC "unknown"
#endif

VS_API vs_status vs_hook_engine_info(int *available, char *desc, size_t desc_len)
{
    if (!available || (!desc && desc_len))
        return VS_ERR_INVALID_ARGUMENT;
    *available = vs_hook_engine_available();
    if (desc && desc_len)
        snprintf(desc, desc_len, "%s", VS_HOOK_ENGINE_DESC);
    return VS_OK;
}
