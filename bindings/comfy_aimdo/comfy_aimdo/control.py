"""comfy_aimdo.control: load the library and open devices.

ComfyUI's main.py calls ``init(...)`` before importing torch, then
``init_devices(((index, extra_headroom), ...))``; a False answer sends it to its
legacy (non-dynamic) path. The other modules of this package look devices up
here with ``get_devctx(index)``; the "device context" is a ``vramswap.Device``.

Note [Headroom]: a device's headroom (memory always left free for everything
that is not a weight page) is max(simple_vram_headroom, 256 MiB) plus the
per-device extra headroom given to init_devices, as in comfy-aimdo. It is
passed to vramswap as the device's ``headroom`` key, so the budget is
capacity - headroom and every interception/eviction decision uses it.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("comfy_aimdo")
log.addHandler(logging.NullHandler())

MIN_HEADROOM = 256 << 20   # bytes; the floor of the simple headroom (Note [Headroom])

lib = None          # non-None once init() succeeded (ComfyUI tests `control.lib`)
devctxs = []        # the open vramswap Devices, in init_devices order
_devices = {}       # index -> vramswap.Device
_backend = None     # the vramswap backend name chosen by init()
_simple_headroom = 0

# comfy-aimdo implementation names and ours -> vramswap backend names.
_IMPLEMENTATIONS = {
    "cuda": "cuda", "nvidia": "cuda",
    "rocm": "hip", "hip": "hip", "amd": "hip",
    "xpu": "level_zero", "level_zero": "level_zero", "intel": "level_zero",
    "sim": "sim",
}
_GPU_BACKENDS = ("cuda", "hip", "level_zero")


def _vramswap():
    import vramswap
    return vramswap


def _detect_backend(vs):
    """The first GPU backend with a device. The simulator is never picked
    automatically: ComfyUI must fall back to its legacy path on a machine
    without a GPU (COMFY_AIMDO_BACKEND=sim selects it explicitly)."""
    for b in vs.backends():
        if b.name in _GPU_BACKENDS and b.available and b.device_count:
            return b.name
    return None


def detect_vendor():
    """comfy-aimdo's implementation name of the first GPU backend with a device
    ("cuda", "rocm", "xpu"), or None."""
    try:
        backend = _detect_backend(_vramswap())
    except Exception:
        return None
    return {"cuda": "cuda", "hip": "rocm", "level_zero": "xpu"}.get(backend)


def init(implementation: str | None = None, simple_vram_headroom: int | None = None,
         nvml_pressure=None, **unknown):
    """Load vramswap and choose the backend. True on success, False when there
    is no usable backend (ComfyUI then runs without dynamic VRAM).

    `implementation`: comfy-aimdo's names ("cuda", "rocm", "xpu") or vramswap's
    ("hip", "level_zero", "sim"); None = $COMFY_AIMDO_BACKEND, else the first
    GPU backend with a device. `nvml_pressure` is accepted and ignored: vramswap
    polls the driver's free memory itself (mem_poll_ns)."""
    global lib, _backend, _simple_headroom
    if unknown:
        log.debug("comfy_aimdo.init: ignoring %s", sorted(unknown))
    if simple_vram_headroom is not None:
        _simple_headroom = max(0, int(simple_vram_headroom))
        for index, dev in _devices.items():
            _apply_headroom(dev, getattr(dev, "_comfy_extra_headroom", 0))
    if lib is not None:
        return True
    try:
        vs = _vramswap()
    except Exception as e:  # library missing or unloadable: the legacy path
        log.info("comfy_aimdo (vramswap) failed to load: %s", e)
        return False
    name = implementation or os.environ.get("COMFY_AIMDO_BACKEND") or None
    if name is None:
        backend = _detect_backend(vs)
    else:
        backend = _IMPLEMENTATIONS.get(str(name).lower())
        if backend is None:
            log.warning("comfy_aimdo: unknown implementation %r", name)
            return False
        info = {b.name: b for b in vs.backends()}.get(backend)
        if info is None or not info.available or not info.device_count:
            log.info("comfy_aimdo: backend %s is not available%s", backend,
                     "" if info is None else " (%s)" % (info.reason or "no device"))
            backend = None
    if backend is None:
        log.info("comfy_aimdo: no vramswap GPU backend with a device")
        return False
    _backend = backend
    lib = vs._lib.LIB
    return True


def backend():
    """The vramswap backend init() chose (None before)."""
    return _backend


def headroom_for(extra):
    """Headroom of a device given its extra headroom (Note [Headroom])."""
    return max(_simple_headroom, MIN_HEADROOM) + int(extra)


def _conf_limit():
    """The limit VRAMSWAP_CONF gives the devices (0 = none), kept when the
    headroom changes."""
    return _vramswap().parse_conf(os.environ.get("VRAMSWAP_CONF", "")).get("limit", 0)


def _apply_headroom(dev, extra):
    dev.set_limit(_conf_limit(), headroom_for(extra))
    dev._comfy_extra_headroom = extra


def _open(vs, index, extra):
    config = {"headroom": headroom_for(extra)}
    if _backend != "sim":
        config["intercept"] = True
    try:
        dev = vs.Device(_backend, index, **config)
    except vs.NotSupportedError:
        # No interception here (a build without it, or the driver refuses):
        # weights still work, allocations by others are seen through polling.
        log.warning("comfy_aimdo: allocation interception unavailable on %s:%d; "
                    "continuing without it", _backend, index)
        config.pop("intercept", None)
        dev = vs.Device(_backend, index, **config)
    dev._comfy_extra_headroom = extra
    return dev


def init_devices(device_ids):
    """Open the devices of `device_ids` (ints or ``(index, extra_headroom)``
    tuples; any iterable, generators included). True when every one opened;
    False (nothing left open by this call) otherwise or when the list is empty."""
    global devctxs
    if lib is None:
        return False
    requested = []
    for item in device_ids:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError("device tuple must be (device_id, extra_vram_headroom)")
            index, extra = item
        else:
            index, extra = item, 0
        index = 0 if index is None else index   # torch.device("cuda").index
        extra = int(extra)
        if extra < 0:
            raise ValueError("extra_vram_headroom must be non-negative")
        requested.append((int(index), extra))
    if not requested:
        return False
    vs = _vramswap()
    opened = []
    try:
        for index, extra in requested:
            dev = _devices.get(index)
            if dev is not None:
                _apply_headroom(dev, extra)
                continue
            dev = _open(vs, index, extra)
            _devices[index] = dev
            opened.append(index)
    except Exception as e:
        log.warning("comfy_aimdo: opening %s device failed: %s", _backend, e)
        for index in opened:
            _devices.pop(index).close()
        return False
    devctxs = [_devices[i] for i, _ in requested]
    return True


def init_device(device_id, extra_vram_headroom: int = 0):
    return init_devices([(device_id, extra_vram_headroom)])


def get_devctx(device_id):
    """The vramswap.Device of `device_id` (an int, a torch.device or None = the
    first one); RuntimeError when it was not initialized."""
    index = getattr(device_id, "index", device_id)
    if index is None:
        if devctxs:
            return devctxs[0]
        index = 0
    dev = _devices.get(int(index))
    if dev is None:
        raise RuntimeError("comfy-aimdo device %s is not initialized" % (device_id,))
    return dev


def deinit():
    """Release every VBAR, buffer and device (pins included) and forget the
    library; init() may be called again."""
    global lib, devctxs, _backend
    from . import host_buffer, model_vbar
    host_buffer.cleanup_file_reader()
    model_vbar._release_all()
    for dev in list(_devices.values()):
        try:
            dev.close()
        except Exception as e:
            log.warning("comfy_aimdo.deinit: %s", e)
    _devices.clear()
    devctxs = []
    _backend = None
    lib = None


def _set_level(level):
    _vramswap().set_log_level(level)


def set_log_none(): _set_level("off")
def set_log_critical(): _set_level("error")
def set_log_error(): _set_level("error")
def set_log_warning(): _set_level("warn")
def set_log_info(): _set_level("info")
def set_log_debug(): _set_level("debug")
def set_log_verbose(): _set_level("debug")
def set_log_vverbose(): _set_level("trace")


def set_log_detail(*args, **kwargs):
    """Accepted for ComfyUI; vramswap's log detail follows its level."""
    return None


def analyze():
    """Log each device's report (budget, VBARs in priority order, residency)."""
    for dev in devctxs:
        log.info("%s", dev.dump())


def get_total_vram_usage():
    """Bytes of device memory vramswap accounts for (weights, scratch, intercepted)."""
    total = 0
    for dev in devctxs:
        info = dev.memory_info()
        total += info.used_weights + info.used_scratch + info.used_intercepted
    return total
