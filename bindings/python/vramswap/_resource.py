"""Lifetime of the Python objects that own a C handle.

Note [Python object lifetime]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
Every object that owns a C handle (Device, VBAR, ScratchBuffer, HostBuffer,
Stream, Event) derives from :class:`Resource`:

- ``close()`` destroys the C object. If C refuses (VS_ERR_BUSY: pinned pages,
  live memory views) the exception propagates and the object stays open and
  usable. Closing a closed object is a no-op. Every object is a context manager
  that closes on exit.
- After close, the handle is forgotten: methods raise :class:`ClosedError`
  without calling C, so a dead (or, after the C quarantine, recycled) handle is
  never passed to the library.
- An object that is garbage-collected while open is destroyed by a
  ``weakref.finalize`` that holds only the C function and its arguments (never
  the object). Children hold a strong reference to their device, so a device is
  never collected before its children.
- A device keeps weak references to its children, in creation order. Closing a
  device first checks that every child can be closed (raising BusyError and
  changing nothing otherwise), then closes them newest first, then the device.
- At interpreter exit (:func:`_shutdown`, an atexit handler registered at
  import) every live device is closed, newest first, the same way; an object
  that cannot be closed then (pinned pages, views still exported) is left alone
  together with its device: the process is ending, and releasing memory a live
  view points to could crash a later atexit handler. Afterwards finalizers are
  disarmed and the C log is sent back to stderr, so nothing calls into the
  library or into Python while the interpreter tears itself down.

All state changes (create, close) happen under one process-wide re-entrant lock;
calls that only use a handle do not take it: the C library validates handles,
so a race between close() and a call gives an InvalidHandleError, never a crash.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import weakref

from . import _lib, _log, errors

LOCK = threading.RLock()
_seq = itertools.count()
_devices = weakref.WeakValueDictionary()  # creation number -> open Device
_exiting = False


def _gc_destroy(what, fn, args):
    """Finalizer of an object collected while open."""
    if _exiting:
        return
    st = fn(*args)
    if st:
        _log.logger.warning("%s collected while open could not be destroyed: %s",
                            what, _lib.status_name(st))


class Resource:
    """Base of every object that owns a C handle (Note [Python object lifetime])."""

    _what = "object"

    _handle = None
    _finalizer = None
    _device = None
    _destroy = None

    def _own(self, handle, destroy_fn, destroy_args, device=None):
        """Take ownership of `handle`; `destroy_fn(*destroy_args)` releases it."""
        self._handle = handle
        self._device = device
        self._destroy = (destroy_fn, tuple(destroy_args))
        self._finalizer = weakref.finalize(self, _gc_destroy, self._what, destroy_fn,
                                           tuple(destroy_args))
        self._finalizer.atexit = False  # _shutdown() closes in the right order instead
        self._seq = next(_seq)
        if device is not None:
            device._children[self._seq] = self

    @property
    def closed(self):
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            raise errors.closed(self._what)
        return h

    def _check_closable(self):
        """Raise BusyError if close() would be refused (without changing anything)."""

    def close(self):
        """Destroy the C object; a no-op when already closed."""
        with LOCK:
            if self._handle is None:
                return
            self._check_closable()
            fn, args = self._destroy
            st = fn(*args)
            # Destroy and close consume the handle unless they answer BUSY (a
            # failure means the driver kept memory, counted in the device's
            # stats.leaked_bytes): forget it either way, then report.
            if st != errors.ERR_BUSY:
                self._forget()
            errors.check(st, "%s(%s)" % (fn.__name__, self._what))

    def _forget(self):
        """The C object is gone (destroyed here or by its device): drop the handle."""
        self._handle = None
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._device is not None:
            self._device._children.pop(self._seq, None)
        else:
            _devices.pop(self._seq, None)

    def __enter__(self):
        self._h()
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._handle is None else self._describe()
        return "<vramswap.%s %s>" % (type(self).__name__, state)

    def _describe(self):
        return "open"


def register_device(dev):
    _devices[dev._seq] = dev


def live_devices():
    """Open devices, oldest first."""
    with LOCK:
        return [d for _, d in sorted(_devices.items(), key=lambda kv: kv[0])]


def _shutdown():
    global _exiting
    with LOCK:
        for dev in reversed(live_devices()):
            try:
                dev._close_at_exit()
            except Exception as e:  # noqa: BLE001 - never fail interpreter exit
                _log.logger.warning("device %r left open at exit: %s", dev, e)
        _exiting = True
        _log.uninstall()


atexit.register(_shutdown)
