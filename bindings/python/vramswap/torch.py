"""vramswap.torch: zero-copy tensors over vramswap memory, and nn.Module offload.

Needs PyTorch (imported only by this module; ``import vramswap`` never imports it).

Zero-copy views
---------------
:func:`as_tensor` wraps a raw address range (an Allocation, a ScratchBuffer, a
HostBuffer range, or an int address) as a tensor without copying. On the
simulated device, device memory is host memory and the tensor is a CPU tensor;
on "cuda" and "hip" devices it is a CUDA tensor made through
``__cuda_array_interface__``. Such a tensor does not own its memory: it is valid
while the range is mapped (for a VBAR range: while it is pinned). Host-buffer
tensors go through ``HostBuffer.buffer()``, so the buffer refuses to close while
they exist.

Note [Module offload]
~~~~~~~~~~~~~~~~~~~~~
:class:`ModuleOffload` moves a module's parameters into vramswap memory:

- Units: every submodule that owns parameters directly (a Linear, a LayerNorm),
  in registration order, which is normally execution order. Each unit gets one
  contiguous allocation in one VBAR, first unit first: the earliest layers are
  the most important and the last to be evicted.
- The parameters' canonical copy moves into one pinned HostBuffer laid out like
  the VBAR (same offsets), and ``param.data`` points there between forwards.
- Before a unit's forward (a forward pre-hook) its range is faulted. Resident:
  copy host -> VBAR only when the signature changed since the last copy, and
  point the parameters at the VBAR. Not resident (VS_NOT_RESIDENT: the budget is
  taken by more important pages, or the watermark says stop): copy into a shared
  scratch buffer and point the parameters there for this call.
- After the forward (a forward hook) the parameters point back at the host copy
  and the range is unpinned on the compute stream, so its pages become
  evictable once the GPU has finished with them. Parameters therefore never
  point at device memory that could be evicted under them.
- Copies are issued on the compute stream (torch's current stream on CUDA), so
  they are ordered with the kernels that use them. On the simulator the compute
  is the CPU: the copy stream is synchronized before the forward runs.

Inference only (autograd is not taken care of). Limitations: parameters used outside their own module's forward (tied weights
read by another module) see the host copy; module buffers (BatchNorm statistics)
are not moved; if a forward raises, its unit stays pinned until :meth:`close`.
"""

from __future__ import annotations

import ctypes

import torch

from . import errors
from .buffers import HostBuffer, ScratchBuffer
from .device import Device, default_device
from .vbar import Allocation

_ALIGN = 256  # bytes; alignment of every parameter inside a unit


def torch_device(device):
    """The torch.device whose memory a vramswap Device's addresses are."""
    if device.backend == "sim":
        return torch.device("cpu")
    if device.backend in ("cuda", "hip"):
        return torch.device("cuda", device.ordinal)
    raise errors.not_supported("vramswap.torch: no torch device for backend %r" % device.backend)


class _CudaArray:
    """The minimum an object needs for torch.as_tensor to wrap device memory."""

    def __init__(self, ptr, nbytes):
        self.__cuda_array_interface__ = {
            "shape": (nbytes,), "typestr": "|u1", "data": (ptr, False), "version": 2,
            "strides": None,
        }


def _address(target):
    if isinstance(target, int):
        return target, None
    if isinstance(target, (Allocation, ScratchBuffer)):
        return target.ptr, target.size
    raise errors.invalid_argument("vramswap.torch: cannot take the address of %r" % (target,))


def as_tensor(target, dtype=torch.uint8, shape=None, device=None, offset=0, nbytes=None):
    """A tensor over memory without copying.

    `target`: an Allocation, a ScratchBuffer, a HostBuffer, or an int address
    (then `device` -- a vramswap Device or a torch.device -- says whose memory
    it is). `shape` defaults to 1-D over the whole range; `offset`/`nbytes`
    select part of it."""
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if isinstance(target, HostBuffer):
        total = target.size - offset if nbytes is None else nbytes
        numel = total // itemsize if shape is None else _numel(shape)
        if numel == 0:
            return torch.empty(shape if shape is not None else (0,), dtype=dtype)
        view = target.buffer()[offset:offset + numel * itemsize]
        return torch.frombuffer(view, dtype=dtype).view(shape if shape is not None else (numel,))
    ptr, size = _address(target)
    if device is None:
        if not isinstance(target, (Allocation, ScratchBuffer)):
            raise errors.invalid_argument("vramswap.torch.as_tensor: pass device= for an address")
        device = target.vbar.device if isinstance(target, Allocation) else target.device
    tdev = torch_device(device) if isinstance(device, Device) else torch.device(device)
    if nbytes is None:
        nbytes = (size - offset) if shape is None else _numel(shape) * itemsize
    numel = nbytes // itemsize if shape is None else _numel(shape)
    if shape is None:
        shape = (numel,)
    if numel == 0:
        return torch.empty(shape, dtype=dtype, device=tdev)
    nbytes = numel * itemsize
    addr = ptr + offset
    if tdev.type == "cpu":
        raw = torch.frombuffer((ctypes.c_uint8 * nbytes).from_address(addr), dtype=torch.uint8)
    else:
        raw = torch.as_tensor(_CudaArray(addr, nbytes), device=tdev)
    return raw.view(dtype).view(shape)


def _numel(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _align(n):
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class _Unit:
    """One submodule's parameters: their place in the VBAR and the host buffer."""

    __slots__ = ("name", "module", "params", "alloc", "size", "signature", "pinned", "hooks",
                 "host_views")

    def __init__(self, name, module):
        self.name = name
        self.module = module
        self.params = []        # (parameter, offset in the unit, original device)
        self.alloc = None       # Allocation in the VBAR
        self.size = 0           # bytes
        self.signature = None   # signature of the last copy into the VBAR
        self.pinned = 0         # forwards in flight that pinned the range
        self.hooks = []
        self.host_views = []    # tensors over the host buffer, one per parameter


class ModuleOffload:
    """Keep `module`'s parameters in vramswap memory (Note [Module offload]).
    ``with ModuleOffload(model, dev): model(x)``; close() restores ordinary
    parameters on their original devices."""

    def __init__(self, module, device=None, stream=None):
        self.device = device if device is not None else default_device()
        self.module = module
        self.tdevice = torch_device(self.device)
        self._stream = stream
        self.counters = {"faults": 0, "copies": 0, "hits": 0, "streamed": 0}
        self.units = []
        self.host = self.vbar = self.scratch = None
        seen = set()
        for name, m in module.named_modules():
            unit = _Unit(name, m)
            for p in m.parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                unit.params.append((p, unit.size, p.device))
                unit.size = _align(unit.size + p.numel() * p.element_size())
            if unit.params:
                self.units.append(unit)
        try:
            self._place()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ setup

    def _place(self):
        total = sum(u.size for u in self.units)
        if not total:
            return
        self.vbar = self.device.vbar(total)
        for u in self.units:
            u.alloc = self.vbar.alloc(u.size, align=_ALIGN)
        end = self.units[-1].alloc.offset + self.units[-1].size
        self.host = self.device.host_buffer(end, size=end)
        for u in self.units:
            for p, off, _ in u.params:
                hv = as_tensor(self.host, p.dtype, p.shape, offset=u.alloc.offset + off)
                with torch.no_grad():
                    hv.copy_(p.data)
                p.data = hv
                u.host_views.append(hv)
            u.hooks.append(u.module.register_forward_pre_hook(self._pre_hook(u)))
            u.hooks.append(u.module.register_forward_hook(self._post_hook(u)))

    def _stream_handle(self):
        if self._stream is not None:
            return self._stream
        if self.tdevice.type == "cuda":
            return torch.cuda.current_stream(self.tdevice).cuda_stream
        return 0

    # ------------------------------------------------------------ hooks

    def _pre_hook(self, u):
        def hook(module, args):
            self._load(u)
        return hook

    def _post_hook(self, u):
        def hook(module, args, output):
            self._release(u)
        return hook

    def _load(self, u):
        dev = self.device
        stream = self._stream_handle()
        host_addr = self.host.ptr + u.alloc.offset
        self.counters["faults"] += 1
        sig = u.alloc.fault()
        if sig is not None:
            u.pinned += 1
            base = u.alloc.ptr
            if sig != u.signature:
                dev.memcpy(base, host_addr, u.size, kind="h2d", stream=stream)
                u.signature = sig
                self.counters["copies"] += 1
            else:
                self.counters["hits"] += 1
        else:
            if self.scratch is None:
                self.scratch = dev.scratch(max(x.size for x in self.units))
            if self.scratch.size < u.size:
                self.scratch.resize(u.size)
            base = self.scratch.ptr
            dev.memcpy(base, host_addr, u.size, kind="h2d", stream=stream)
            self.counters["streamed"] += 1
        if self.tdevice.type == "cpu":
            dev.synchronize(stream)   # the simulator copies on its own thread
        for p, off, _ in u.params:
            p.data = as_tensor(base, p.dtype, p.shape, device=self.tdevice, offset=off)

    def _release(self, u):
        for (p, _, _), hv in zip(u.params, u.host_views):
            p.data = hv
        if u.pinned:
            u.pinned -= 1
            u.alloc.unpin(self._stream_handle())

    # ------------------------------------------------------------ lifetime

    def resident_units(self):
        """Names of the units whose pages are all resident now."""
        res = self.vbar.residency() if self.vbar is not None else b""
        page = self.device.page_size
        out = []
        for u in self.units:
            first, last = u.alloc.offset // page, (u.alloc.offset + u.size - 1) // page
            if all(res[i] & 1 for i in range(first, last + 1)):
                out.append(u.name)
        return out

    def close(self):
        """Remove the hooks, put the parameters back on their original devices
        (copied out of vramswap memory) and release everything."""
        for u in self.units:
            for h in u.hooks:
                h.remove()
            u.hooks = []
            if u.alloc is not None and u.pinned:
                if self.tdevice.type == "cuda":
                    torch.cuda.synchronize(self.tdevice)
                while u.pinned:
                    u.pinned -= 1
                    u.alloc.unpin(0)
            for i, (p, _, orig) in enumerate(u.params):
                if i < len(u.host_views):
                    p.data = u.host_views[i].to(orig, copy=True)
            u.host_views = []
        for obj in (self.scratch, self.vbar, self.host):
            if obj is not None:
                obj.close()
        self.scratch = self.vbar = self.host = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def offload(module, device=None, stream=None):
    """``ModuleOffload(module, device, stream)``: keep `module`'s parameters in
    vramswap memory of `device` (default: vramswap.init()'s device)."""
    return ModuleOffload(module, device, stream)
