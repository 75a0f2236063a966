"""VBARs (reserved device address ranges holding a model's weights) and the
allocations made inside them.

The fault / unpin path is the hot one (a model faults every layer every
iteration), so :meth:`VBAR.fault`, :meth:`VBAR.unpin` and their
:class:`Allocation` forms make one ctypes call and nothing else.

Addresses are plain ints (``VBAR.base``, ``Allocation.ptr``) so that another
layer can wrap mapped memory without copying (a torch tensor over a VBAR range:
on the simulated device it is host memory, on a GPU it is device memory).
"""

from __future__ import annotations

import ctypes

from . import _lib, errors
from ._check import hot_pair, u64
from ._config import parse_size
from ._resource import LOCK, Resource
from .constants import PageFlags
from .streams import stream_handle

_L = _lib.LIB
_fault = _L.vs_vbar_fault
_unpin = _L.vs_vbar_unpin
_byref = ctypes.byref
_u64 = ctypes.c_uint64
_NOT_RESIDENT = errors.NOT_RESIDENT
_PINNED = _lib.CONSTANTS["VS_PAGE_PINNED"]


class VBAR(Resource):
    """A reserved range of device addresses whose pages are mapped on demand.
    Create with ``Device.vbar(size)``; the newest VBAR is the most important."""

    _what = "VBAR"

    def __init__(self, device, size):
        size = parse_size(size, "size")
        with LOCK:
            dh = device._h()
            out = ctypes.c_void_p()
            errors.check(_L.vs_vbar_create(dh, size, _byref(out)), "vs_vbar_create(%d)" % size)
            h = out.value
            self._own(h, _L.vs_vbar_destroy, (h,), device)
        base, total = _lib.vs_devptr(), _u64()
        errors.check(_L.vs_vbar_get_base(h, _byref(base), _byref(total)), "vs_vbar_get_base")
        self._base = base.value
        self._size = total.value
        self._page_size = device.page_size

    # ------------------------------------------------------------ geometry

    @property
    def device(self):
        return self._device

    @property
    def base(self):
        """Device address of offset 0 (an int)."""
        self._h()
        return self._base

    @property
    def size(self):
        """Reserved bytes (a multiple of the page size)."""
        return self._size

    @property
    def page_size(self):
        return self._page_size

    @property
    def page_count(self):
        return self._size // self._page_size

    def address(self, offset):
        """Device address of `offset`."""
        self._h()
        offset = u64(offset, "offset")
        if offset > self._size:
            raise errors.ArgumentOverflowError(errors.ERR_INVALID_ARGUMENT,
                                               "offset: %d is past the VBAR's %d bytes" % (offset, self._size))
        return self._base + offset

    # ------------------------------------------------------------ sub-allocation

    def alloc(self, size, align=0):
        """Sub-allocate `size` bytes at the next free offset (aligned to `align`, a
        power of two; 0 = the library's default). Allocate most important first."""
        size = parse_size(size, "size")
        align = u64(align, "align")
        off = _u64()
        errors.check(_L.vs_vbar_alloc(self._h(), size, align, _byref(off)),
                     "vs_vbar_alloc(%d, align=%d)" % (size, align))
        return Allocation(self, off.value, size)

    @property
    def allocated(self):
        """Bytes sub-allocated so far (the next free offset)."""
        n = _u64()
        errors.check(_L.vs_vbar_allocated(self._h(), _byref(n)), "vs_vbar_allocated")
        return n.value

    # ------------------------------------------------------------ residency

    def fault(self, offset, size):
        """Make [offset, offset+size) resident and pin it. Returns the signature
        (an int that changes whenever a page of the range was mapped anew), or
        None when the range cannot be resident now (VS_NOT_RESIDENT: nothing was
        pinned; stream the data instead). Each successful fault needs one unpin."""
        h = self._handle
        if h is None:
            raise errors.closed(self._what)
        if offset.__class__ is not int or size.__class__ is not int or (offset | size) >> 64:
            offset, size = hot_pair(offset, size)
        sig = _u64()
        st = _fault(h, offset, size, _byref(sig))
        if st == 0:
            return sig.value
        if st == _NOT_RESIDENT:
            return None
        raise errors.error(st, "vs_vbar_fault(offset=%d, size=%d)" % (offset, size))

    def unpin(self, offset, size, stream=0):
        """Release one pin of the range; its pages become evictable once `stream`
        has passed this point."""
        h = self._handle
        if h is None:
            raise errors.closed(self._what)
        if offset.__class__ is not int or size.__class__ is not int or (offset | size) >> 64:
            offset, size = hot_pair(offset, size)
        st = _unpin(h, offset, size, stream if stream.__class__ is int else stream_handle(stream))
        if st:
            raise errors.error(st, "vs_vbar_unpin(offset=%d, size=%d)" % (offset, size))

    def pinned(self, offset, size, stream=0):
        """``with vbar.pinned(off, n) as sig:`` faults on entry (sig None when not
        resident) and unpins on exit if the fault pinned."""
        return _Pin(self, offset, size, stream)

    def page_signatures(self, offset=0, size=None):
        """Per-page signatures of the pages covering the range (0 = not resident)."""
        h = self._h()
        offset = u64(offset, "offset")
        if size is None:
            size = max(self._size - offset, 0)
        size = u64(size, "size")
        # Validate before allocating from the caller's size (a huge size would
        # allocate a huge array first): the library checks the same range.
        if size == 0:
            raise errors.invalid_argument("page_signatures: size must be > 0")
        if offset >= self._size or size > self._size - offset:
            raise errors.error(_lib.constant("VS_ERR_OUT_OF_RANGE"),
                               "vs_vbar_page_signatures(offset=%d, size=%d)" % (offset, size))
        n = (size + self._page_size - 1) // self._page_size + 1
        sigs = (_u64 * n)()
        count = ctypes.c_size_t()
        errors.check(_L.vs_vbar_page_signatures(h, offset, size, sigs, n, _byref(count)),
                     "vs_vbar_page_signatures(offset=%d, size=%d)" % (offset, size))
        return list(sigs[:min(count.value, n)])

    def residency(self, flags=False):
        """One byte per page (VS_PAGE_* bits) as ``bytes``; with ``flags=True`` a
        list of :class:`PageFlags`."""
        h = self._h()
        count = ctypes.c_size_t()
        errors.check(_L.vs_vbar_residency(h, None, 0, _byref(count)), "vs_vbar_residency")
        n = count.value
        buf = (ctypes.c_uint8 * max(n, 1))()
        errors.check(_L.vs_vbar_residency(h, buf, n, _byref(count)), "vs_vbar_residency")
        data = bytes(buf[:min(n, count.value)])
        return [PageFlags(b) for b in data] if flags else data

    @property
    def loaded_size(self):
        """Bytes of this VBAR currently mapped."""
        n = _u64()
        errors.check(_L.vs_vbar_loaded_size(self._h(), _byref(n)), "vs_vbar_loaded_size")
        return n.value

    def free_memory(self, nbytes):
        """Evict unpinned pages of this VBAR (highest first, above its floor)
        until `nbytes` were released; returns the bytes released."""
        nbytes = parse_size(nbytes, "nbytes")
        freed = _u64()
        st = _L.vs_vbar_free_memory(self._h(), nbytes, _byref(freed))
        if st:
            e = errors.error(st, "vs_vbar_free_memory(%d)" % nbytes)
            e.freed = freed.value
            raise e
        return freed.value

    # ------------------------------------------------------------ importance

    def prioritize(self):
        """Make this VBAR the most important and clear its watermark."""
        errors.check(_L.vs_vbar_prioritize(self._h()), "vs_vbar_prioritize")

    def deprioritize(self):
        """Make this VBAR the least important (evicted first)."""
        errors.check(_L.vs_vbar_deprioritize(self._h()), "vs_vbar_deprioritize")

    @property
    def watermark(self):
        """Faults needing a non-resident page at or above this offset fail fast;
        ``size`` means none."""
        n = _u64()
        errors.check(_L.vs_vbar_get_watermark(self._h(), _byref(n)), "vs_vbar_get_watermark")
        return n.value

    @watermark.setter
    def watermark(self, nbytes):
        nbytes = parse_size(nbytes, "watermark")
        errors.check(_L.vs_vbar_set_watermark(self._h(), nbytes), "vs_vbar_set_watermark")

    @property
    def floor(self):
        """Pages below this offset are never evicted by pressure (0 = none)."""
        n = _u64()
        errors.check(_L.vs_vbar_get_floor(self._h(), _byref(n)), "vs_vbar_get_floor")
        return n.value

    @floor.setter
    def floor(self, nbytes):
        nbytes = parse_size(nbytes, "floor")
        errors.check(_L.vs_vbar_set_floor(self._h(), nbytes), "vs_vbar_set_floor")

    # ------------------------------------------------------------ lifetime

    def _check_closable(self):
        if any(b & _PINNED for b in self.residency()):
            raise errors.busy("VBAR has pinned pages; unpin them before closing")

    def _describe(self):
        return "base=%#x size=%d page_size=%d" % (self._base, self._size, self._page_size)


class Allocation:
    """A sub-allocated range of a VBAR: ``vbar``, ``offset``, ``size``; ``ptr``
    is its device address."""

    __slots__ = ("vbar", "offset", "size")

    def __init__(self, vbar, offset, size):
        self.vbar = vbar
        self.offset = offset
        self.size = size

    @property
    def ptr(self):
        """Device address of the allocation (an int)."""
        return self.vbar.address(self.offset)

    def fault(self):
        """Signature when resident and pinned, None when not resident."""
        return self.vbar.fault(self.offset, self.size)

    def unpin(self, stream=0):
        self.vbar.unpin(self.offset, self.size, stream)

    def pinned(self, stream=0):
        """``with alloc.pinned() as sig:`` (sig None when not resident)."""
        return _Pin(self.vbar, self.offset, self.size, stream)

    def signatures(self):
        return self.vbar.page_signatures(self.offset, self.size)

    def __repr__(self):
        return "<vramswap.Allocation offset=%d size=%d>" % (self.offset, self.size)

    def __eq__(self, other):
        return (isinstance(other, Allocation) and other.vbar is self.vbar
                and other.offset == self.offset and other.size == self.size)

    def __hash__(self):
        return hash((id(self.vbar), self.offset, self.size))


class _Pin:
    """Context manager of VBAR.pinned / Allocation.pinned (a class, not a
    generator: it is on the per-layer path)."""

    __slots__ = ("vbar", "offset", "size", "stream", "signature")

    def __init__(self, vbar, offset, size, stream):
        self.vbar = vbar
        self.offset = offset
        self.size = size
        self.stream = stream
        self.signature = None

    def __enter__(self):
        self.signature = self.vbar.fault(self.offset, self.size)
        return self.signature

    def __exit__(self, *exc):
        if self.signature is not None:
            self.signature = None
            self.vbar.unpin(self.offset, self.size, self.stream)
