"""The C log, routed into ``logging.getLogger("vramswap")``.

Note [Log callback]
~~~~~~~~~~~~~~~~~~~
libvramswap formats each message and hands it to one process-wide callback
(vs_set_log_callback). The bindings install :func:`_on_message` at import; it
maps the C level to a logging level and logs through the "vramswap" logger, to
which the package only adds a NullHandler (the application configures logging;
the package never calls basicConfig).

- The CFUNCTYPE object (:data:`_CALLBACK`) is a module global for the life of
  the process: if it were collected while C still held the pointer, the next
  message would jump into freed memory.
- The C side never calls the callback while it holds a device lock (Note
  [Logging under locks] in core/src/log.c), so taking the GIL here cannot
  deadlock against a thread that holds the GIL and waits for a device lock.
- Messages may come from any thread (the simulator's copy worker, a driver
  callback); ctypes takes the GIL for the call. Exceptions never cross into C.
- At interpreter exit the default sink (stderr) is restored after the devices
  are closed (:func:`uninstall`, called by the atexit handler), so a late
  message from a C thread never calls into a finalizing interpreter.

Levels: the C library filters by its own level before formatting. So that the
Python logger's configuration decides what is produced, the C level is set from
the logger's effective level when a device is opened (:func:`sync_level`) -- unless
the level was chosen explicitly: the VRAMSWAP_LOG environment variable, a "log"
entry in VRAMSWAP_CONF, the ``log=`` configuration key or :func:`set_level`.
"""

from __future__ import annotations

import logging
import os

from . import _config, _lib, errors

logger = logging.getLogger("vramswap")
logger.addHandler(logging.NullHandler())

TRACE = 5  # logging level used for VS_LOG_TRACE messages (below DEBUG)

_C = _lib.CONSTANTS
# C level -> logging level.
_TO_PY = {
    _C["VS_LOG_ERROR"]: logging.ERROR,
    _C["VS_LOG_WARN"]: logging.WARNING,
    _C["VS_LOG_INFO"]: logging.INFO,
    _C["VS_LOG_DEBUG"]: logging.DEBUG,
    _C["VS_LOG_TRACE"]: TRACE,
}

_explicit = False  # set_level() was called: sync_level() leaves the C level alone


def _on_message(level, message, user):
    try:
        pylevel = _TO_PY.get(level, logging.WARNING)
        if logger.isEnabledFor(pylevel):
            logger.log(pylevel, "%s", message.decode("utf-8", "replace") if message else "")
    except Exception:  # noqa: BLE001 - nothing may propagate into C
        pass


_CALLBACK = _lib.vs_log_fn(_on_message)  # Note [Log callback]: must stay alive
_NULL = _lib.vs_log_fn()                 # a NULL function pointer: the default sink


def install():
    errors.check(_lib.LIB.vs_set_log_callback(_CALLBACK, None), "vs_set_log_callback")


def uninstall():
    _lib.LIB.vs_set_log_callback(_NULL, None)


def c_level_for(pylevel):
    """The C level that produces exactly the messages a logger at `pylevel` shows."""
    if pylevel <= TRACE:
        return _C["VS_LOG_TRACE"]
    if pylevel <= logging.DEBUG:
        return _C["VS_LOG_DEBUG"]
    if pylevel <= logging.INFO:
        return _C["VS_LOG_INFO"]
    if pylevel <= logging.WARNING:
        return _C["VS_LOG_WARN"]
    if pylevel <= logging.ERROR:
        return _C["VS_LOG_ERROR"]
    return _C["VS_LOG_OFF"]


def _chosen_by_environment():
    if os.environ.get("VRAMSWAP_LOG"):
        return True
    try:
        return "log" in _config.env_conf()
    except errors.InvalidArgumentError:
        return False  # reported when the device's configuration is built


def sync_level():
    """Set the C level from the logger's effective level (Note [Log callback])."""
    if _explicit or _chosen_by_environment():
        return
    pylevel = logger.getEffectiveLevel() if not logger.disabled else logging.CRITICAL + 1
    _lib.LIB.vs_set_log_level(c_level_for(pylevel))


def set_level(level):
    """Set the C log level (a name such as "debug", or 0-5) for the process and
    stop following the logger's level."""
    global _explicit
    c_level = _config.parse_log_level(level)
    errors.check(_lib.LIB.vs_set_log_level(c_level), "vs_set_log_level")
    _explicit = True


def get_level():
    """The C log level in effect, as a :class:`vramswap.LogLevel`."""
    from .constants import LogLevel
    return LogLevel(_lib.LIB.vs_get_log_level())


def follow_logger():
    """Go back to deriving the C level from the logger (undoes :func:`set_level`)."""
    global _explicit
    _explicit = False
    sync_level()
