"""Argument checks for values passed to the C library as uint64_t.

ctypes turns a wrong type into a bare ``ctypes.ArgumentError`` and silently
wraps an int of 2**64 or more (``2**64`` becomes 0). Every offset, size and
alignment the bindings pass goes through :func:`u64` (or, on the fault/unpin
hot path, :func:`hot_pair`, which costs one bit operation when the values are
fine): a wrong type is a TypeError, a value outside [0, 2**64) an
OverflowError, both naming the argument (and both InvalidArgumentError, like
every argument the library refuses).
"""

from __future__ import annotations

import operator

from . import errors

U64_MAX = (1 << 64) - 1


def u64(value, name):
    """`value` as an int in [0, 2**64), or TypeError / OverflowError."""
    if value.__class__ is not int:
        if isinstance(value, bool):
            raise errors.ArgumentTypeError(errors.ERR_INVALID_ARGUMENT, "%s: expected an integer, got a bool" % name)
        try:
            value = operator.index(value)
        except TypeError:
            raise errors.ArgumentTypeError(errors.ERR_INVALID_ARGUMENT, "%s: expected an integer, got %s"
                                           % (name, type(value).__name__)) from None
    if value < 0 or value > U64_MAX:
        raise errors.ArgumentOverflowError(errors.ERR_INVALID_ARGUMENT, "%s: %d is outside [0, 2**64)" % (name, value))
    return value


def hot_pair(offset, size):
    """Check an (offset, size) pair; cheap when both are plain ints in range."""
    try:
        bad = (offset | size) >> 64
    except TypeError:
        bad = True
    if bad or offset.__class__ is not int or size.__class__ is not int:
        return u64(offset, "offset"), u64(size, "size")
    return offset, size
