/* Emulator Sysman: one memory module per device, whose state is simdev's
 * free/total figures (so memory "another process" uses -- vsze_external_usage
 * -- shows here and only here). As with Intel's driver, Sysman answers through
 * core device handles only when ZES_ENABLE_SYSMAN=1 was set at zeInit. */
#include "emu_ze.h"

static int memmod_ordinal(zes_mem_handle_t h)
{
    uint32_t *m = (uint32_t *)h;
    if (!m || m < &emu_g.memmod_magic[0] || m >= &emu_g.memmod_magic[emu_g.device_count] ||
        *m != EMU_MAGIC_MEMMOD)
        return -1;
    return (int)(m - &emu_g.memmod_magic[0]);
}

ze_result_t emu_zesDeviceEnumMemoryModules(zes_device_handle_t hDevice, uint32_t *pCount,
                                           zes_mem_handle_t *phMemory)
{
    if (!emu_initialized() || !emu_g.sysman)
        return ZE_RESULT_ERROR_UNINITIALIZED;
    emu_device *d = emu_dev((ze_device_handle_t)hDevice);
    if (!d)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pCount)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    if (*pCount == 0 || !phMemory) {
        *pCount = 1;
        return ZE_RESULT_SUCCESS;
    }
    *pCount = 1;
    phMemory[0] = (zes_mem_handle_t)&emu_g.memmod_magic[d->ordinal];
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zesMemoryGetProperties(zes_mem_handle_t hMemory, zes_mem_properties_t *pProperties)
{
    int ord = memmod_ordinal(hMemory);
    simdev_props sp;
    if (ord < 0)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pProperties)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    ze_result_t r = emu_result(simdev_get_props(emu_g.devices[ord].sd, &sp));
    if (r != ZE_RESULT_SUCCESS)
        return r;
    pProperties->type = sp.integrated ? ZES_MEM_TYPE_DDR : ZES_MEM_TYPE_GDDR6;
    pProperties->onSubdevice = 0;
    pProperties->subdeviceId = 0;
    pProperties->location = sp.integrated ? ZES_MEM_LOC_SYSTEM : ZES_MEM_LOC_DEVICE;
    pProperties->physicalSize = sp.total_memory;
    pProperties->busWidth = -1;
    pProperties->numChannels = -1;
    return ZE_RESULT_SUCCESS;
}

ze_result_t emu_zesMemoryGetState(zes_mem_handle_t hMemory, zes_mem_state_t *pState)
{
    int ord = memmod_ordinal(hMemory);
    if (ord < 0)
        return ZE_RESULT_ERROR_INVALID_NULL_HANDLE;
    if (!pState)
        return ZE_RESULT_ERROR_INVALID_NULL_POINTER;
    ze_result_t r = emu_injected(VS_SIM_OP_MEM_INFO);
    if (r != ZE_RESULT_SUCCESS)
        return r;
    uint64_t fr = 0, tot = 0;
    r = emu_result(simdev_mem_info(emu_g.devices[ord].sd, &fr, &tot));
    if (r != ZE_RESULT_SUCCESS)
        return r;
    pState->health = ZES_MEM_HEALTH_OK;
    pState->free = fr;
    pState->size = tot;
    return ZE_RESULT_SUCCESS;
}
