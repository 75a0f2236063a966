"""Streams and events of a device (the backend's native handles).

A stream or event argument anywhere in the package may be a :class:`Stream` /
:class:`Event`, a raw handle (an int, 0 = the backend's default stream), or an
object with a ``cuda_stream`` attribute (torch.cuda.Stream), so an application's
own stream can be passed through unchanged.
"""

from __future__ import annotations

import ctypes

from . import _lib, errors
from ._resource import LOCK, Resource

_L = _lib.LIB


def stream_handle(stream):
    """The native handle (int) for a stream argument."""
    if stream is None:
        return 0
    if isinstance(stream, int):
        return stream
    h = getattr(stream, "handle", None)
    if h is None:
        h = getattr(stream, "cuda_stream", None)
    if isinstance(h, int):
        return h
    raise errors.invalid_argument("not a stream: %r" % (stream,))


def event_handle(event):
    if isinstance(event, int) and not isinstance(event, bool):
        return event
    h = getattr(event, "handle", None)
    if isinstance(h, int):
        return h
    raise errors.invalid_argument("not an event: %r" % (event,))


class Stream(Resource):
    """A stream created on a device (``Device.stream()``); destroyed on close."""

    _what = "Stream"

    def __init__(self, device):
        with LOCK:
            dh = device._h()
            out = _lib.c_uintptr()
            errors.check(_L.vs_stream_create(dh, ctypes.byref(out)), "vs_stream_create")
            self._own(out.value, _L.vs_stream_destroy, (dh, out.value), device)

    @property
    def handle(self):
        """The native stream handle (an int)."""
        return self._h()

    @property
    def device(self):
        return self._device

    def synchronize(self):
        errors.check(_L.vs_stream_synchronize(self._device._h(), self._h()),
                     "vs_stream_synchronize")

    def wait_event(self, event):
        """Make later work on this stream wait for `event`."""
        errors.check(_L.vs_stream_wait_event(self._device._h(), self._h(), event_handle(event)),
                     "vs_stream_wait_event")

    def record_event(self, event=None):
        """Record `event` (a new one if None) on this stream and return it."""
        if event is None:
            event = Event(self._device)
        event.record(self)
        return event

    def _describe(self):
        return "handle=%#x" % self._handle


class Event(Resource):
    """An event created on a device (``Device.event()``); destroyed on close."""

    _what = "Event"

    def __init__(self, device):
        with LOCK:
            dh = device._h()
            out = _lib.c_uintptr()
            errors.check(_L.vs_event_create(dh, ctypes.byref(out)), "vs_event_create")
            self._own(out.value, _L.vs_event_destroy, (dh, out.value), device)

    @property
    def handle(self):
        return self._h()

    @property
    def device(self):
        return self._device

    def record(self, stream=0):
        errors.check(_L.vs_event_record(self._device._h(), self._h(), stream_handle(stream)),
                     "vs_event_record")

    def query(self):
        """True when the work recorded before the event is complete."""
        st = _L.vs_event_query(self._device._h(), self._h())
        if st == errors.ERR_NOT_READY:
            return False
        errors.check(st, "vs_event_query")
        return True

    def synchronize(self):
        errors.check(_L.vs_event_synchronize(self._device._h(), self._h()), "vs_event_synchronize")

    def _describe(self):
        return "handle=%#x" % self._handle
