"""comfy_aimdo.model_vbar: one VBAR per model, faulted layer by layer.

ComfyUI (comfy/model_patcher.py) makes ``ModelVBAR(model_size * 10, index)``,
hands every weight-bearing module a ``vbar.alloc(n)`` tuple ``(vbar, address,
size)``, and comfy/ops.py's cast path calls ``vbar_fault(tuple)`` (a signature
or None), ``vbar_signature_compare`` (skip the copy when equal),
``aimdo_to_tensor`` and, after the layer ran, ``vbar_unpin(tuple)``.

Note [Signatures as ctypes arrays]: comfy-aimdo's signature is a c_uint32
array of per-page serials. vramswap's fault returns one 64-bit signature that
changes whenever any page of the range was mapped anew, which is exactly what
a comparison needs; it is returned as a 2-element c_uint32 array (low, high)
so that callers that store it, compare it or take its len() keep working.
Every signature has length 2, so comparisons never raise on length.

Note [Unpin contract]: unpinning a range that is not pinned (ComfyUI's
force-load path does so) and vbar_unpin(None) are no-ops, not errors. Pins
are counted per page by the core; __del__ (a model unloaded, or an exception
between a fault and its unpin that never came) unpins every page still
pinned, one page at a time until its count is zero, then destroys the VBAR.

Note [Transient fault errors]: a driver's NOT_READY during a fault (comfy-
aimdo's "Fault failed: 2") is retried by the core (Note [Transient driver
errors] in core/src/vbar.c), which reports it as a backend failure if it
persists. A fault that fails in the driver has pinned nothing (the core undoes
partial work), so here it is retried a few times and then answered None (not
resident) with a warning: the caller streams the layer through a temporary
buffer instead of crashing. Argument errors (a range outside the VBAR) raise.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import weakref

from . import control

log = logging.getLogger("comfy_aimdo")
lib = control.lib

ALIGN = 512                 # bytes; alloc() alignment, as comfy-aimdo
FAULT_RETRIES = 3           # Note [Transient fault errors]
RESIDENT, PINNED = 1, 2     # get_residency() bits, comfy-aimdo's convention

_SIG = ctypes.c_uint32 * 2


# vramswap's exception classes, bound when the first ModelVBAR is made: this
# module is imported by ComfyUI whether dynamic VRAM is on or not, so importing
# it must not need libvramswap. (`except ()` catches nothing.)
_TRANSIENT = ()
_NOT_PINNED = ()


def _bind_errors(vramswap):
    global _TRANSIENT, _NOT_PINNED
    _TRANSIENT = (vramswap.NotReadyError, vramswap.BackendError)
    _NOT_PINNED = vramswap.NotPinnedError
_vbars = weakref.WeakSet()  # every live ModelVBAR


def _torch_stream(dev):
    """The current torch stream of a GPU device as a raw handle, so that an
    unpinned page is evicted only once the compute stream has passed its last
    use; 0 (the default stream) when torch or its CUDA/HIP runtime is not in
    use."""
    if dev.backend not in ("cuda", "hip"):
        return 0
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return 0
    return torch.cuda.current_stream(dev.ordinal).cuda_stream


class ModelVBAR:
    """A model's reserved range; `size` bytes of address space (nothing mapped)."""

    def __init__(self, size, device):
        import vramswap
        _bind_errors(vramswap)
        self._vs = vramswap
        self._vbar = None
        dev = control.get_devctx(device)
        try:
            self._vbar = dev.vbar(int(size))
        except vramswap.VramswapError as e:
            raise MemoryError("VBAR allocation failed: %s" % e) from e
        self._dev = dev
        self.device = device
        self.max_size = int(size)
        self.offset = 0
        self.base_addr = self._vbar.base
        self._stream = (lambda: _torch_stream(dev)) if dev.backend in ("cuda", "hip") else (lambda: 0)
        self._fault = self._vbar.fault      # the per-layer path: bound once
        self._unpin = self._vbar.unpin
        _vbars.add(self)

    # ------------------------------------------------------------ importance

    def prioritize(self):
        self._vbar.prioritize()

    def deprioritize(self):
        self._vbar.deprioritize()

    # ------------------------------------------------------------ sub-allocation

    def alloc(self, num_bytes):
        """(self, address, num_bytes) at the next 512-aligned offset; MemoryError
        when it would pass the size given at construction."""
        num_bytes = int(num_bytes)
        if num_bytes < 0:
            raise ValueError("alloc: negative size")
        off = (self.offset + ALIGN - 1) & ~(ALIGN - 1)
        if off + num_bytes > self.max_size:
            raise MemoryError("VBAR OOM")
        self.offset = off + num_bytes
        return (self, self.base_addr + off, num_bytes)

    # ------------------------------------------------------------ fault / unpin

    def fault(self, alloc, size):
        """Map and pin [alloc, alloc+size): its signature (Note [Signatures as
        ctypes arrays]) or None when it cannot be resident now."""
        if not size:
            return _SIG()
        off = alloc - self.base_addr
        try:
            sig = self._fault(off, size)
        except _TRANSIENT:
            return self._fault_retry(off, size)
        if sig is None:
            return None
        return _SIG(sig & 0xFFFFFFFF, sig >> 32)

    def _fault_retry(self, off, size):
        """Note [Transient fault errors]."""
        for attempt in range(1, FAULT_RETRIES):
            try:
                sig = self._fault(off, size)
            except _TRANSIENT as e:
                log.debug("fault(%#x, %d): %s, retrying", off, size, e)
                continue
            return None if sig is None else _SIG(sig & 0xFFFFFFFF, sig >> 32)
        log.warning("fault(%#x, %d): the driver failed %d times; streaming the layer "
                    "instead", off, size, FAULT_RETRIES)
        return None

    def unpin(self, alloc, size):
        """Release one pin of the range (Note [Unpin contract]: no error when it
        is not pinned)."""
        if not size or self._vbar is None:
            return
        try:
            self._unpin(alloc - self.base_addr, size, self._stream())
        except _NOT_PINNED:
            log.debug("unpin(%#x, %d): not pinned; ignored", alloc - self.base_addr, size)

    # ------------------------------------------------------------ residency

    def loaded_size(self):
        return self._vbar.loaded_size

    def set_watermark_limit(self, size_bytes):
        """Protect [0, size_bytes) from eviction (vramswap's floor)."""
        self._vbar.floor = min(max(0, int(size_bytes)), self._vbar.size)

    def set_watermark(self, size_bytes):
        self._vbar.watermark = min(max(0, int(size_bytes)), self._vbar.size)

    def get_watermark(self):
        return self._vbar.watermark

    def free_memory(self, size_bytes):
        """Evict up to `size_bytes` of this VBAR's unpinned pages; bytes freed."""
        return self._vbar.free_memory(max(0, int(size_bytes)))

    def get_nr_pages(self):
        return self._vbar.page_count

    def page_size(self):
        return self._vbar.page_size

    def get_residency(self):
        """Per-page flags: bit 0 resident, bit 1 pinned."""
        flags = self._vs.PageFlags
        out = []
        for b in self._vbar.residency():
            v = 0
            if b & flags.RESIDENT:
                v |= RESIDENT
            if b & flags.PINNED:
                v |= PINNED
            out.append(v)
        return out

    # ------------------------------------------------------------ lifetime

    def _release(self):
        """Unpin every page still pinned (Note [Unpin contract]), then destroy
        the VBAR. Never raises."""
        vbar = self._vbar
        if vbar is None:
            return
        self._vbar = None
        self._fault = _released
        _vbars.discard(self)
        try:
            page = vbar.page_size
            for i, flags in enumerate(vbar.residency()):
                if not flags & self._vs.PageFlags.PINNED:
                    continue
                for _ in range(1 << 20):      # one pin at a time, until none is left
                    try:
                        vbar.unpin(i * page, page)
                    except _NOT_PINNED:
                        break
            vbar.close()
        except Exception as e:  # interpreter shutdown, device already closed
            log.debug("ModelVBAR release: %s", e)

    def __del__(self):
        self._release()


def _released(off, size):
    raise RuntimeError("ModelVBAR was released")


def _release_all():
    for v in list(_vbars):
        v._release()


def vbar_fault(alloc):
    vbar, address, size = alloc
    return vbar.fault(address, size)


def vbar_unpin(alloc):
    if alloc is not None:
        vbar, address, size = alloc
        vbar.unpin(address, size)


def vbar_signature_compare(a, b):
    """True when both signatures exist and are equal (the copy can be skipped)."""
    if a is None or b is None:
        return False
    if len(a) != len(b):
        raise ValueError("Signatures of mismatched length %d != %d" % (len(a), len(b)))
    if len(a) == 2:
        return a[0] == b[0] and a[1] == b[1]
    return bytes(a) == bytes(b)


def vbars_reset_watermark_limits():
    """Clear every VBAR's floor on every device (ComfyUI: after each node)."""
    for dev in control.devctxs:
        dev.reset_floors()


def vbars_analyze(device=None):
    """Bytes of VBAR memory on `device` (None = the first device) that could be
    evicted right now: resident, not pinned, above the floors. ComfyUI adds
    this to the free memory when it sizes work (model_patcher.py
    get_free_memory), so pinned pages (a leaked pin after an exception) and
    protected prefixes are not counted. 0 when nothing is initialized. Logs
    one line per VBAR at debug level."""
    if control.lib is None or not control.devctxs:
        return 0
    dev = control.get_devctx(device)
    if log.isEnabledFor(logging.DEBUG):
        for v in list(_vbars):
            if v._dev is dev and v._vbar is not None:
                log.debug("VBAR %#x: %d of %d bytes resident, watermark %d, floor %d",
                          v.base_addr, v._vbar.loaded_size, v._vbar.size, v._vbar.watermark,
                          v._vbar.floor)
    return dev.memory_info().evictable
