"""Exceptions: one class per vs_status, found by the status's C name.

Every C function returns a vs_status; :func:`check` turns anything but VS_OK
into the matching exception. The numeric values come from the library
(``vs_status_name``), so this module only knows names. Out-of-memory is an
:class:`OutOfMemoryError`, which is also a :class:`MemoryError` (as
torch.cuda.OutOfMemoryError is a RuntimeError); argument errors are also
:class:`ValueError`. ``VS_NOT_RESIDENT`` is a normal answer of a fault and the
API returns ``None`` for it; :class:`NotResidentError` exists for the rare call
that cannot express it otherwise.
"""

from __future__ import annotations

from . import _lib


class VramswapError(RuntimeError):
    """A vramswap call failed. ``status`` is the C vs_status value, ``name`` its
    C name (e.g. "VS_ERR_BUSY"), ``message`` the description."""

    def __init__(self, status, message=None):
        self.status = int(status)
        self.name = _lib.status_name(self.status)
        self.message = message if message is not None else _lib.status_str(self.status)
        super().__init__(self.status, self.message)

    def __str__(self):
        return "%s [%s]" % (self.message, self.name)

    def __reduce__(self):
        return (type(self), (self.status, self.message))


class NotResidentError(VramswapError):
    """VS_NOT_RESIDENT where the API cannot answer ``None``."""


class OutOfMemoryError(VramswapError, MemoryError):
    """VS_ERR_OUT_OF_MEMORY: the budget, the limit or the device is full (a
    normal result: free something or stream instead)."""


class InvalidArgumentError(VramswapError, ValueError):
    """VS_ERR_INVALID_ARGUMENT, also raised for arguments rejected in Python."""


class ArgumentOverflowError(InvalidArgumentError, OverflowError):
    """An integer argument outside what the C API takes (0 <= n < 2**64)."""


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong type (a str or float where an int is needed)."""


class InvalidHandleError(VramswapError):
    """VS_ERR_INVALID_HANDLE: the object was destroyed (or never existed)."""


class ClosedError(InvalidHandleError):
    """The Python object was closed; no C call was made."""


class OutOfRangeError(VramswapError, ValueError):
    """VS_ERR_OUT_OF_RANGE: offset or size outside the VBAR or buffer."""


class NotPinnedError(VramswapError):
    """VS_ERR_NOT_PINNED: unpin of a range that is not pinned."""


class BusyError(VramswapError):
    """VS_ERR_BUSY: the object is in use (pinned pages, an open device, live views)."""


class NotReadyError(VramswapError):
    """VS_ERR_NOT_READY: work still pending, or a transient driver state."""


class NotSupportedError(VramswapError):
    """VS_ERR_NOT_SUPPORTED: the backend or device lacks the feature."""


class NoDeviceError(VramswapError):
    """VS_ERR_NO_DEVICE: no such backend or device ordinal."""


class BackendError(VramswapError):
    """VS_ERR_BACKEND: the driver failed (its own error is in the log)."""


class InternalError(VramswapError):
    """VS_ERR_INTERNAL: an invariant is broken (a bug in vramswap)."""


# C status name -> class. Statuses not listed map to VramswapError itself.
CLASSES = {
    "VS_NOT_RESIDENT": NotResidentError,
    "VS_ERR_OUT_OF_MEMORY": OutOfMemoryError,
    "VS_ERR_INVALID_ARGUMENT": InvalidArgumentError,
    # The bindings only pass handles the library gave them, so a handle that is
    # no longer valid was closed meanwhile (by another thread, or with its device).
    "VS_ERR_INVALID_HANDLE": ClosedError,
    "VS_ERR_OUT_OF_RANGE": OutOfRangeError,
    "VS_ERR_NOT_PINNED": NotPinnedError,
    "VS_ERR_BUSY": BusyError,
    "VS_ERR_NOT_READY": NotReadyError,
    "VS_ERR_NOT_SUPPORTED": NotSupportedError,
    "VS_ERR_NO_DEVICE": NoDeviceError,
    "VS_ERR_BACKEND": BackendError,
    "VS_ERR_INTERNAL": InternalError,
}


def _status(name):
    value = _lib.constant(name)
    if value is None:  # pragma: no cover - the library's table lists every status
        raise ImportError("libvramswap does not define %s" % name)
    return value


_BY_STATUS = {_status(name): cls for name, cls in CLASSES.items()}
OK = _status("VS_OK")
NOT_RESIDENT = _status("VS_NOT_RESIDENT")
ERR_INVALID_ARGUMENT = _status("VS_ERR_INVALID_ARGUMENT")
ERR_INVALID_HANDLE = _status("VS_ERR_INVALID_HANDLE")
ERR_BUSY = _status("VS_ERR_BUSY")
ERR_NOT_READY = _status("VS_ERR_NOT_READY")
ERR_NOT_SUPPORTED = _status("VS_ERR_NOT_SUPPORTED")
ERR_OUT_OF_MEMORY = _status("VS_ERR_OUT_OF_MEMORY")


def error_class(status):
    """The exception class for a vs_status value."""
    return _BY_STATUS.get(int(status), VramswapError)


def error(status, what=None):
    """An exception instance for `status`, its message prefixed with `what`."""
    text = _lib.status_str(status)
    return error_class(status)(status, "%s: %s" % (what, text) if what else text)


def check(status, what):
    """Raise the exception for `status` unless it is VS_OK."""
    if status:
        raise error(status, what)


def invalid_argument(message):
    return InvalidArgumentError(ERR_INVALID_ARGUMENT, message)


def busy(message):
    return BusyError(ERR_BUSY, message)


def closed(what):
    return ClosedError(ERR_INVALID_HANDLE, "%s is closed" % what)


def not_supported(message):
    return NotSupportedError(ERR_NOT_SUPPORTED, message)
