"""Named constants, as the loaded library defines them.

Every value here is read from libvramswap's constant table (``vs_constant_at``)
at import time; none is written in Python. Enums group them:

- :class:`Status` (``Status.ERR_BUSY``...), from the VS_OK/VS_NOT_RESIDENT/VS_ERR_* names
- :class:`LogLevel` (VS_LOG_*), :class:`CopyKind` (VS_COPY_*),
  :class:`PageFlags` (VS_PAGE_*), :class:`DeviceFlags` (VS_DEVICE_*),
  :class:`SimOp` (VS_SIM_OP_*, when the library lists them)

and every constant is also an attribute by its C name
(``vramswap.constants.VS_ERR_BUSY``); :func:`all_constants` returns the table.
"""

from __future__ import annotations

import enum

from . import _lib


def _group(prefix, exclude=()):
    return {name[len(prefix):]: value for name, value in _lib.CONSTANTS.items()
            if name.startswith(prefix) and name not in exclude}


def _statuses():
    count = _lib.CONSTANTS["VS_STATUS_COUNT_"]
    return {_lib.status_name(i)[3:]: i for i in range(count)}


Status = enum.IntEnum("Status", _statuses(), module=__name__)
LogLevel = enum.IntEnum("LogLevel", _group("VS_LOG_"), module=__name__)
CopyKind = enum.IntEnum("CopyKind", _group("VS_COPY_"), module=__name__)
PageFlags = enum.IntFlag("PageFlags", _group("VS_PAGE_"), module=__name__)
DeviceFlags = enum.IntFlag("DeviceFlags", _group("VS_DEVICE_"), module=__name__)
# Empty when the library's table does not list the simulator's operations.
SimOp = enum.IntEnum("SimOp", _group("VS_SIM_OP_", exclude=("VS_SIM_OP_COUNT_",)),
                     module=__name__)


def all_constants():
    """A copy of the library's constant table: {C name: value}."""
    return dict(_lib.CONSTANTS)


def __getattr__(name):
    try:
        return _lib.CONSTANTS[name]
    except KeyError:
        raise AttributeError("libvramswap has no constant %r" % name) from None


def __dir__():
    return sorted(set(globals()) | set(_lib.CONSTANTS))
