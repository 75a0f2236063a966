"""The simulated device ("sim" backend): configuration, fault injection,
counters, pretend external usage and allocation (thin wrappers over
backends/sim/include/vramswap/sim.h).

Functions address sim devices by ordinal and work whether or not a Device is
open. :func:`configure` applies to devices opened afterwards and raises
BusyError while a sim device is open.
"""

from __future__ import annotations

import contextlib
import ctypes

from . import _config, _lib, errors
from .constants import SimOp

_L = _lib.LIB
_byref = ctypes.byref

# configure() keyword -> vs_sim_config field (aliases match VRAMSWAP_SIM's keys).
_FIELDS = {
    "device_count": "device_count", "devices": "device_count",
    "integrated": "integrated",
    "total_memory": "total_memory", "memory": "total_memory",
    "granularity": "granularity",
    "preferred_page_size": "preferred_page_size", "page_size": "preferred_page_size",
    "page": "preferred_page_size",
    "copy_bandwidth": "copy_bandwidth", "bandwidth": "copy_bandwidth",
}
_SIZES = ("total_memory", "granularity", "preferred_page_size", "copy_bandwidth")


def available():
    """True when the library was built with the simulator."""
    return _lib.HAVE_SIM


def _need():
    if not _lib.HAVE_SIM:
        raise errors.not_supported("libvramswap was built without the sim backend")


def _to_dict(cfg):
    return {f: (bool(getattr(cfg, f)) if f == "integrated" else getattr(cfg, f))
            for f, _ in _lib.vs_sim_config._fields_}


def default_config():
    """The defaults (after the VRAMSWAP_SIM environment variable), as a dict."""
    _need()
    cfg = _lib.vs_sim_config()
    errors.check(_L.vs_sim_config_default(_byref(cfg)), "vs_sim_config_default")
    return _to_dict(cfg)


def get_config():
    """The configuration in effect, as a dict."""
    _need()
    cfg = _lib.vs_sim_config()
    errors.check(_L.vs_sim_get_config(_byref(cfg)), "vs_sim_get_config")
    return _to_dict(cfg)


def configure(reset=False, **changes):
    """Change the simulator's configuration for devices opened afterwards.
    Unnamed fields keep their current values (their defaults with reset=True).
    Keys: device_count (devices), integrated, total_memory (memory),
    granularity, preferred_page_size (page_size, page), copy_bandwidth
    (bandwidth); sizes accept "64M"-style strings. Returns the new config."""
    _need()
    cfg = _lib.vs_sim_config()
    fn = _L.vs_sim_config_default if reset else _L.vs_sim_get_config
    errors.check(fn(_byref(cfg)), fn.__name__)
    for key, value in changes.items():
        field = _FIELDS.get(key)
        if field is None:
            raise errors.invalid_argument("sim.configure: unknown key %r (valid: %s)"
                                          % (key, ", ".join(sorted(_FIELDS))))
        if field in _SIZES:
            value = _config.parse_size(value, key)
        elif field == "integrated":
            value = int(_config.parse_bool(value, key))
        else:
            value = _config.parse_ordinal(value, key)
        setattr(cfg, field, value)
    errors.check(_L.vs_sim_configure(_byref(cfg)), "vs_sim_configure")
    return get_config()


def reset():
    """Back to the default configuration."""
    return configure(reset=True)


@contextlib.contextmanager
def configured(**changes):
    """``with sim.configured(total_memory="64M"):`` -- configure, then restore."""
    before = get_config()
    cfg = configure(**changes)
    try:
        yield cfg
    finally:
        configure(**before)


def _op(op):
    if isinstance(op, str):
        try:
            return int(SimOp[op.upper()])
        except KeyError:
            known = ", ".join(m.name.lower() for m in SimOp) or "none: the library's constant " \
                "table lacks VS_SIM_OP_*; pass the number"
            raise errors.invalid_argument("unknown sim op %r (known: %s)" % (op, known)) from None
    return int(op)


def _status(error):
    if isinstance(error, type) and issubclass(error, errors.VramswapError):
        for name, cls in errors.CLASSES.items():
            if cls is error:
                return _lib.CONSTANTS[name]
        raise errors.invalid_argument("no status for %s" % error.__name__)
    if isinstance(error, str):
        name = error if error.startswith("VS_") else "VS_ERR_" + error.upper()
        if name not in _lib.CONSTANTS:
            raise errors.invalid_argument("unknown status %r" % error)
        return _lib.CONSTANTS[name]
    return int(error)


def inject(op, skip=0, count=1, error="VS_ERR_BACKEND", ordinal=0):
    """Let the next `skip` calls of `op` on device `ordinal` succeed, then fail
    `count` calls with `error` (a status name such as "VS_ERR_NOT_READY" or
    "out_of_memory", an int, or an exception class). count=0 disarms."""
    _need()
    errors.check(_L.vs_sim_inject(ordinal, _op(op), skip, count, _status(error)),
                 "vs_sim_inject")


def inject_clear(ordinal=0):
    _need()
    errors.check(_L.vs_sim_inject_clear(ordinal), "vs_sim_inject_clear")


def counters(ordinal=0):
    """The simulator's counters for device `ordinal` as a dict; "calls" maps op
    names (or numbers, when the library does not name them) to call counts."""
    _need()
    if _lib.vs_sim_counters is None:
        raise errors.not_supported("the library's constant table lacks VS_SIM_OP_COUNT_, "
                                   "so vs_sim_counters cannot be declared")
    c = _lib.vs_sim_counters()
    errors.check(_L.vs_sim_get_counters(ordinal, _byref(c)), "vs_sim_get_counters")
    out = {}
    names = {int(m): m.name.lower() for m in SimOp}
    for f, _ in _lib.vs_sim_counters._fields_:
        v = getattr(c, f)
        if f == "calls":
            v = {names.get(i, i): n for i, n in enumerate(v)}
        out[f] = v
    return out


# Counters that describe live resources: all zero once every device is closed.
LIVE_COUNTERS = ("reservations", "reserved_bytes", "phys_chunks", "phys_bytes", "mapped_bytes",
                 "host_registrations", "host_registered_bytes", "streams", "events")


def leaks(ordinal=0):
    """{counter: value} for every live-resource counter that is not zero."""
    c = counters(ordinal)
    return {k: c[k] for k in LIVE_COUNTERS if c[k]}


def set_external_usage(nbytes, ordinal=0):
    """Pretend something else uses `nbytes` of the device (0 to stop)."""
    _need()
    nbytes = _config.parse_size(nbytes, "bytes")
    errors.check(_L.vs_sim_set_external_usage(ordinal, nbytes), "vs_sim_set_external_usage")


def malloc(size, ordinal=0):
    """Allocate through the simulator's own entry point (seen by interception);
    returns the address."""
    _need()
    size = _config.parse_size(size, "size")
    ptr = _lib.c_uintptr()
    errors.check(_L.vs_sim_malloc(ordinal, size, _byref(ptr)), "vs_sim_malloc(%d)" % size)
    return ptr.value


def free(ptr, ordinal=0):
    _need()
    errors.check(_L.vs_sim_free(ordinal, ptr), "vs_sim_free")
