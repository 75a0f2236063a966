"""vramswap: run PyTorch models larger than GPU memory.

Python bindings (ctypes) over libvramswap's C API. Quick start::

    import vramswap

    with vramswap.Device("sim", limit="512M") as dev:      # or vramswap.init(...)
        with dev.vbar("1G") as vbar:                        # one per model
            w = vbar.alloc(64 << 20)                        # most important first
            with w.pinned() as sig:                         # fault + unpin
                if sig is None:
                    ...                                     # not resident: stream it
                elif sig != last_sig:
                    ...                                     # (re)copy the weights to w.ptr

Modules: :mod:`vramswap.device` (Device, init, backends), :mod:`vramswap.vbar`
(VBAR, Allocation), :mod:`vramswap.buffers` (ScratchBuffer, HostBuffer),
:mod:`vramswap.streams` (Stream, Event), :mod:`vramswap.stats`
(memory_stats, memory_summary), :mod:`vramswap.sim` (the simulated device),
:mod:`vramswap.errors`, :mod:`vramswap.constants`. docs/python.md has the guide.

Logging goes to ``logging.getLogger("vramswap")`` (Note [Log callback] in _log.py).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import _lib, _log
from . import _resource  # noqa: F401  (registers the atexit handler)
from ._config import parse_conf, parse_size
from ._log import get_level as get_log_level
from ._log import set_level as set_log_level
from .buffers import HostBuffer, ScratchBuffer
from .constants import CopyKind, DeviceFlags, LogLevel, PageFlags, SimOp, Status
from .device import (
    BackendInfo,
    Device,
    DeviceProps,
    MemoryInfo,
    Stats,
    backends,
    current_device,
    default_device,
    devices,
    init,
    is_initialized,
    shutdown,
)
from .errors import (
    BackendError,
    BusyError,
    ClosedError,
    InternalError,
    InvalidArgumentError,
    InvalidHandleError,
    NoDeviceError,
    NotPinnedError,
    NotReadyError,
    NotResidentError,
    NotSupportedError,
    OutOfMemoryError,
    OutOfRangeError,
    VramswapError,
)
from .stats import memory_stats, memory_summary
from .streams import Event, Stream
from .vbar import VBAR, Allocation
from . import sim  # noqa: E402  (vramswap.sim)

logger = _log.logger
library_path = _lib.LIBRARY_PATH


def library_version():
    """The loaded libvramswap's version string (vs_version)."""
    return _lib.LIB.vs_version().decode()


_log.install()

__all__ = [
    "__version__", "library_version", "library_path", "logger",
    "init", "shutdown", "current_device", "default_device", "is_initialized", "devices", "backends",
    "Device", "VBAR", "Allocation", "ScratchBuffer", "HostBuffer", "Stream", "Event",
    "BackendInfo", "DeviceProps", "MemoryInfo", "Stats",
    "memory_stats", "memory_summary", "parse_conf", "parse_size",
    "set_log_level", "get_log_level",
    "Status", "LogLevel", "CopyKind", "PageFlags", "DeviceFlags", "SimOp",
    "VramswapError", "NotResidentError", "OutOfMemoryError", "InvalidArgumentError",
    "InvalidHandleError", "ClosedError", "OutOfRangeError", "NotPinnedError", "BusyError",
    "NotReadyError", "NotSupportedError", "NoDeviceError", "BackendError", "InternalError",
    "sim",
]
