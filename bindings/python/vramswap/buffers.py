"""Growable buffers: device scratch buffers and pinned host buffers.

Both reserve their whole address range (``max_size``) up front, so ``ptr`` never
changes; ``resize()`` maps or commits memory as the size changes.

Note [Host buffer views]
~~~~~~~~~~~~~~~~~~~~~~~~
``HostBuffer.buffer()`` returns a memoryview over the host memory itself (no
copy), for numpy, torch.frombuffer or file reads. Releasing memory under a live
view would turn any later access into a crash, so the buffer refuses to be
closed or shrunk (BusyError) while a view exists. A view is "alive" while any
memoryview derived from it (slices, casts, numpy arrays, tensors) exists: each
view is a ctypes array placed over the memory, every derived view keeps that
array alive, and the buffer holds only a weak reference to it. Release views with
``view.release()`` or ``with buf.buffer() as view:``, or drop them. The array also
keeps the HostBuffer object alive, so a view never outlives its buffer through
garbage collection.
"""

from __future__ import annotations

import ctypes
import weakref

from . import _lib, errors
from ._config import parse_size
from ._resource import LOCK, Resource

_L = _lib.LIB
_byref = ctypes.byref


class ScratchBuffer(Resource):
    """Growable device memory: ``Device.scratch(max_size, size=0)``. Counts in
    the budget like any allocation; growing may evict VBAR pages and raises
    OutOfMemoryError when it cannot fit (nothing new stays mapped)."""

    _what = "ScratchBuffer"

    def __init__(self, device, max_size, size=0):
        max_size = parse_size(max_size, "max_size")
        with LOCK:
            dh = device._h()
            out = ctypes.c_void_p()
            errors.check(_L.vs_scratch_create(dh, max_size, _byref(out)),
                         "vs_scratch_create(%d)" % max_size)
            self._own(out.value, _L.vs_scratch_destroy, (out.value,), device)
        self._ptr, _, self._max = self._get()
        if size:
            try:
                self.resize(size)
            except BaseException:
                self.close()
                raise

    def _get(self):
        ptr, size, mx = _lib.vs_devptr(), ctypes.c_uint64(), ctypes.c_uint64()
        errors.check(_L.vs_scratch_get(self._h(), _byref(ptr), _byref(size), _byref(mx)),
                     "vs_scratch_get")
        return ptr.value, size.value, mx.value

    @property
    def device(self):
        return self._device

    @property
    def ptr(self):
        """Device address (stable for the buffer's life)."""
        self._h()
        return self._ptr

    @property
    def size(self):
        return self._get()[1]

    @property
    def max_size(self):
        return self._max

    def resize(self, size):
        size = parse_size(size, "size")
        errors.check(_L.vs_scratch_resize(self._h(), size), "vs_scratch_resize(%d)" % size)

    def _describe(self):
        return "ptr=%#x size=%d max_size=%d" % (self._ptr, self.size, self._max)


class HostBuffer(Resource):
    """Growable pinned host memory: ``Device.host_buffer(max_size, size=0)``.
    Its contents survive growth; ``buffer()`` gives a zero-copy memoryview."""

    _what = "HostBuffer"

    def __init__(self, device, max_size, size=0):
        max_size = parse_size(max_size, "max_size")
        with LOCK:
            dh = device._h()
            out = ctypes.c_void_p()
            errors.check(_L.vs_host_buffer_create(dh, max_size, _byref(out)),
                         "vs_host_buffer_create(%d)" % max_size)
            self._own(out.value, _L.vs_host_buffer_destroy, (out.value,), device)
        self._views = []  # weakrefs to the ctypes arrays under exported views
        self._ptr, _, self._max = self._get()
        if size:
            try:
                self.resize(size)
            except BaseException:
                self.close()
                raise

    def _get(self):
        ptr, size, mx = ctypes.c_void_p(), ctypes.c_uint64(), ctypes.c_uint64()
        errors.check(_L.vs_host_buffer_get(self._h(), _byref(ptr), _byref(size), _byref(mx)),
                     "vs_host_buffer_get")
        return ptr.value or 0, size.value, mx.value

    @property
    def device(self):
        return self._device

    @property
    def ptr(self):
        """Host address (stable for the buffer's life)."""
        self._h()
        return self._ptr

    @property
    def size(self):
        return self._get()[1]

    @property
    def max_size(self):
        return self._max

    def __len__(self):
        return self.size

    def live_views(self):
        """Number of views from buffer() still alive (Note [Host buffer views])."""
        self._views = [r for r in self._views if r() is not None]
        return len(self._views)

    def resize(self, size):
        """Grow or shrink; shrinking is refused while views exist."""
        size = parse_size(size, "size")
        with LOCK:
            h = self._h()
            if size < self.size and self.live_views():
                raise errors.busy("HostBuffer has %d live view(s); release them before "
                                  "shrinking" % len(self._views))
            errors.check(_L.vs_host_buffer_resize(h, size), "vs_host_buffer_resize(%d)" % size)

    def buffer(self):
        """A writable memoryview (format "B") over the current size, without copying."""
        with LOCK:
            self._h()
            n = self.size
            arr = (ctypes.c_uint8 * n).from_address(self._ptr) if n else (ctypes.c_uint8 * 0)()
            arr._vramswap_owner = self  # the view keeps the buffer object alive
            self._views.append(weakref.ref(arr))
            return memoryview(arr).cast("B")

    owner = None  # what made the buffer and what its views are, named when closing is refused

    def _check_closable(self):
        if self.live_views():
            raise errors.busy("HostBuffer has %d live view(s)%s; release them before closing"
                              % (len(self._views), " (%s)" % self.owner if self.owner else ""))

    def _describe(self):
        return "ptr=%#x size=%d max_size=%d" % (self._ptr, self.size, self._max)
