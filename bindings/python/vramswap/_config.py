"""Device configuration: keyword arguments, sizes and VRAMSWAP_CONF.

The C library reads ``VRAMSWAP_CONF`` itself in ``vs_device_config_init``
("limit:8G,headroom:512M,page_size:32M,log:info", in the style of
PYTORCH_CUDA_ALLOC_CONF). The bindings start from that struct and write the
keyword arguments the caller gave into it, so explicit arguments win over the
environment and nothing is passed through environment variables.

The same grammar is parsed here too (:func:`parse_conf`), for two reasons: a
typo in VRAMSWAP_CONF is reported as an :class:`InvalidArgumentError` naming the
key (the C side can only return a status and log), and the parsed form is
available to tools (``vramswap.parse_conf``).

Keys
----
limit, headroom, page_size : sizes (int bytes or "8G", "512M", "64K", "1T";
    binary units, an optional "i" and "B": "8GiB")
mem_poll_ns : int nanoseconds (the size grammar, as in C)
intercept : bool (1/0, true/false, on/off)
log : level (off, error, warn/warning, info, debug, trace or 0-5)
regrow : bool (default on); regrow_delay_ns, regrow_delay_max_ns, regrow_margin :
    sizes (Note [Watermark regrowth] in core/src/regrow.c, docs/design.md)
limit_scope : "device" (default: the limit caps the whole device's use) or
    "process" (the limit caps this process's own use; Note [Process quota] in
    core/src/budget.c)
backend, device : which device to open (keyword arguments only; the C parser
    of VRAMSWAP_CONF does not accept them)
"""

from __future__ import annotations

import ctypes
import operator
import os
import re

from . import _lib, errors

# Keys VRAMSWAP_CONF may contain (the C parser's set).
ENV_KEYS = ("limit", "headroom", "page_size", "mem_poll_ns", "intercept", "log",
            "regrow", "regrow_delay_ns", "regrow_delay_max_ns", "regrow_margin", "limit_scope")
# Keys vramswap.init() and Device() accept.
KEYS = ENV_KEYS + ("backend", "device")

_SIZE_RE = re.compile(r"([0-9]+)(?:([KMGT])(i)?(B)?)?\Z", re.IGNORECASE)
_SHIFT = {"K": 10, "M": 20, "G": 30, "T": 40}
_U64_MAX = (1 << 64) - 1
_LOG_NAMES = ("off", "error", "warn", "info", "debug", "trace")


def parse_size(value, key="size"):
    """Bytes from an int or a string like "8G", "512MiB", "64K" (binary units)."""
    if isinstance(value, bool):
        raise errors.ArgumentTypeError(errors.ERR_INVALID_ARGUMENT, "%s: expected a size, got %r" % (key, value))
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value.strip())
        if not m:
            raise errors.invalid_argument(
                "%s: %r is not a size (bytes, or a number with K, M, G or T)" % (key, value))
        n = int(m.group(1)) << _SHIFT.get((m.group(2) or "").upper(), 0)
    else:
        try:  # numpy integers and other int-like objects
            n = operator.index(value)
        except TypeError:
            raise errors.ArgumentTypeError(errors.ERR_INVALID_ARGUMENT, "%s: expected a size (int or str), got %s"
                                           % (key, type(value).__name__)) from None
    if not 0 <= n <= _U64_MAX:
        raise errors.ArgumentOverflowError(errors.ERR_INVALID_ARGUMENT,
                                           "%s: %d is outside [0, 2**64)" % (key, n))
    return n


def parse_bool(value, key="flag"):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "on"):
            return True
        if v in ("0", "false", "off"):
            return False
    raise errors.invalid_argument("%s: %r is not a boolean (1/0, true/false, on/off)" % (key, value))


def parse_log_level(value, key="log"):
    """A C log level (an int) from a name, a digit string or an int 0-5."""
    lo, hi = _lib.constant("VS_LOG_OFF"), _lib.constant("VS_LOG_TRACE")
    if isinstance(value, int) and not isinstance(value, bool):
        if lo <= value <= hi:
            return value
    elif isinstance(value, str):
        v = value.strip().lower()
        if v == "warning":
            v = "warn"
        if len(v) == 1 and v.isdigit() and lo <= int(v) <= hi:
            return int(v)
        if v in _LOG_NAMES:
            return _lib.constant("VS_LOG_" + v.upper())
    raise errors.invalid_argument(
        "%s: %r is not a log level (%s or %d-%d)" % (key, value, ", ".join(_LOG_NAMES), lo, hi))


def parse_ordinal(value, key="device"):
    try:
        n = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        n = -1
    if n < 0 or n > 0x7FFFFFFF:
        raise errors.invalid_argument("%s: %r is not a device ordinal" % (key, value))
    return n


def _parse_limit_scope(value, key="limit_scope"):
    if value not in ("device", "process"):
        raise errors.invalid_argument("%s: %r is not 'device' or 'process'" % (key, value))
    return value


def _parse_backend(value, key="backend"):
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value.encode()) >= 32:
        raise errors.invalid_argument("%s: %r is not a backend name" % (key, value))
    return value


_PARSERS = {
    "limit": parse_size,
    "headroom": parse_size,
    "page_size": parse_size,
    "mem_poll_ns": parse_size,
    "intercept": parse_bool,
    "regrow": parse_bool,
    "regrow_delay_ns": parse_size,
    "regrow_delay_max_ns": parse_size,
    "regrow_margin": parse_size,
    "log": parse_log_level,
    "limit_scope": _parse_limit_scope,
    "backend": _parse_backend,
    "device": parse_ordinal,
}


def validate(config, allowed=KEYS):
    """Parse and check a dict of configuration values; returns a new dict."""
    out = {}
    for key, value in config.items():
        if key not in allowed:
            raise errors.invalid_argument(
                "unknown configuration key %r (valid: %s)" % (key, ", ".join(allowed)))
        out[key] = _PARSERS[key](value, key)
    return out


def parse_conf(text, source="VRAMSWAP_CONF"):
    """Parse "key:value,key:value" exactly as the C library does; returns a dict
    of parsed values (sizes as ints, intercept as bool, log as a C level)."""
    raw = {}
    for item in text.split(","):
        item = item.lstrip()
        if not item:
            continue
        key, sep, value = item.partition(":")
        if not sep:
            raise errors.invalid_argument("%s: %r is not key:value" % (source, item))
        if key not in ENV_KEYS:
            raise errors.invalid_argument("%s: unknown key %r (valid: %s)"
                                          % (source, key, ", ".join(ENV_KEYS)))
        if value != value.strip():
            raise errors.invalid_argument("%s: bad value %r for %r" % (source, value, key))
        raw[key] = value
    return {k: _PARSERS[k](v, "%s %s" % (source, k)) for k, v in raw.items()}


def env_conf():
    """VRAMSWAP_CONF parsed (an empty dict when unset)."""
    text = os.environ.get("VRAMSWAP_CONF", "")
    return parse_conf(text) if text else {}


def make_config(options):
    """A vs_device_config: the library's defaults plus VRAMSWAP_CONF, then the
    validated `options` (from :func:`validate`) written over them."""
    env_conf()  # a readable error for a malformed VRAMSWAP_CONF before C sees it
    cfg = _lib.vs_device_config()
    errors.check(_lib.LIB.vs_device_config_init(ctypes.byref(cfg)), "vs_device_config_init")
    for key in ("limit", "headroom", "page_size", "mem_poll_ns", "regrow_delay_ns",
                "regrow_delay_max_ns", "regrow_margin"):
        if key in options:
            setattr(cfg, key, options[key])
    if "intercept" in options:
        bit = _lib.constant("VS_DEVICE_INTERCEPT")
        cfg.flags = (cfg.flags | bit) if options["intercept"] else (cfg.flags & ~bit)
    if "regrow" in options:
        bit = _lib.constant("VS_DEVICE_NO_REGROW")
        cfg.flags = (cfg.flags & ~bit) if options["regrow"] else (cfg.flags | bit)
    if "limit_scope" in options:
        bit = _lib.constant("VS_DEVICE_LIMIT_PROCESS")
        cfg.flags = (cfg.flags | bit) if options["limit_scope"] == "process" else (cfg.flags & ~bit)
    return cfg
