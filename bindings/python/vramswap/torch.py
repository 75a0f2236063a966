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
:func:`offload` keeps an ``nn.Module``'s parameters and buffers in vramswap
memory and moves them just in time:

- Units: every submodule that owns parameters or buffers directly (a Linear, a
  LayerNorm), or a parent that reads its children's weights with its whole
  subtree (Note [Units]). Each unit is one contiguous range in the model's VBAR and one in a
  pinned HostBuffer (the canonical copy: ``param.data`` points there between
  forwards, so ``state_dict()``/``parameters()`` always see valid memory).
- Order: units are placed in registration order, and the first forward records
  the order they really run in. After it the VBAR is laid out again (Placement).
- Pipeline: before unit *i* runs (a forward pre-hook) the next units are
  *prepared* on a side copy stream, up to ``lookahead`` units and ``prefetch``
  streamed ones ahead. Preparing a unit faults its range: resident -> copy host
  to VBAR only when the signature changed (usually never after the first pass);
  not resident -> copy into a slot of a ring of scratch buffers. The compute
  stream waits for the unit's copy event only (no synchronize), the parameters
  point at the VBAR or slot views for the duration of the module's forward, then
  back at the host copy; the range is unpinned on the compute stream (its pages
  become evictable once the GPU is past it) and a streamed slot is released
  with an event the next copy into it waits for.
- Placement: when the whole model stays resident after the first pass, the VBAR
  follows execution order. When only a fraction *f* stayed, the resident set is
  *spread* over the execution order (every 1/f-th unit, Bresenham) and placed
  first in the VBAR, so that eviction (highest pages first) and the watermark
  keep exactly those resident: the copy engine then streams the other units
  while the resident ones compute, instead of idling through a resident prefix.
- Recency: several offloaded models share a device; a model's VBAR is
  prioritized when it starts a forward after another model ran (not on every
  forward: prioritizing clears the watermark, which is what stops thrashing).
- Inference only: a forward with autograd enabled on parameters that require
  grad raises; use ``torch.no_grad()``/``torch.inference_mode()``.
- Presentation: between forwards the module answers ``.device`` with the
  execution device (Note [Presenting the execution device]); the root moves
  its inputs there.
Limitations: a parameter shared by two modules (tied weights) belongs to the
first; the other module's forward sees the host copy unless both are in one
unit (``units=`` their common parent).
"""

from __future__ import annotations

import ctypes
import logging
import time
import weakref

import torch

from . import _lib, _residency, errors
from .buffers import HostBuffer, ScratchBuffer
from . import _dlpack
from .device import Device, default_device
from .vbar import Allocation

_H2D = _lib.CONSTANTS["VS_COPY_HOST_TO_DEVICE"]
_STREAM_NONE = _lib.CONSTANTS["VS_STREAM_NONE"] & ((1 << 64) - 1)
_memcpy = _lib.LIB.vs_memcpy_async
_log = logging.getLogger("vramswap")

_ALIGN = 256  # bytes; alignment of every parameter inside a unit


def torch_device(device):
    """The torch.device whose memory a vramswap Device's addresses are."""
    if device.backend == "sim":
        return torch.device("cpu")
    if device.backend in ("cuda", "hip"):
        return torch.device("cuda", device.ordinal)
    if device.backend == "level_zero":   # Intel: XPU tensors through DLPack (_dlpack.py)
        return torch.device("xpu", device.ordinal)
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
    elif tdev.type == "xpu":
        raw = _dlpack.oneapi_tensor(addr, nbytes, tdev.index or 0)
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
    """One submodule's own parameters and buffers: a range of the VBAR and of the
    host buffer, and the views that point into them."""

    __slots__ = ("index", "name", "module", "tensors", "size", "host_off", "off", "signature",
                 "host_views", "vbar_views", "slot_views", "prep", "inflight", "copy_event",
                 "hooks")

    def __init__(self, index, name, module):
        self.index = index
        self.name = name
        self.module = module
        self.tensors = []       # (kind "p"/"b", attribute name, tensor, offset in the unit, original device)
        self.size = 0           # bytes (aligned)
        self.host_off = 0       # offset in the host buffer
        self.off = 0            # offset in the VBAR
        self.signature = None   # signature of the last copy into the VBAR
        self.host_views = []    # one tensor per entry of `tensors`, over the host buffer
        self.vbar_views = []    # ... over the VBAR
        self.slot_views = {}    # slot index -> views over that ring slot
        self.prep = None        # prepared for its next run: (kind, slot, event) or None
        self.inflight = []      # the same, for runs in progress (a module may nest)
        self.copy_event = None  # event recorded after its last copy (GPU)
        self.hooks = []


class _Slot:
    __slots__ = ("index", "ptr", "busy", "free_event")

    def __init__(self, index, ptr):
        self.index = index
        self.ptr = ptr
        self.busy = False       # holds a prepared or running unit
        self.free_event = None  # recorded on the compute stream after its last use


class _CudaSync:
    """Ordering on a CUDA/HIP device: a side copy stream, events, no host waits."""

    host_compute = False

    def __init__(self, tdev, stream=None):
        self.tdev = tdev
        if stream is not None and not isinstance(stream, torch.cuda.Stream):
            raise errors.invalid_argument("vramswap.torch.offload: stream= must be a torch.cuda.Stream "
                                          "on this device, not %r" % (stream,))
        self.copy_stream = stream if stream is not None else torch.cuda.Stream(tdev)
        self.copy_handle = self.copy_stream.cuda_stream
        self._current = torch.cuda.current_stream
        self.index = tdev.index if tdev.index is not None else torch.cuda.current_device()
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # ~10x cheaper than current_stream()
        self._raw = raw if raw is not None else (lambda i: torch.cuda.current_stream(i).cuda_stream)

    def event(self):
        return torch.cuda.Event()

    def record_copy(self, ev):
        ev.record(self.copy_stream)

    def copy_waits(self, ev):
        if ev is not None:
            self.copy_stream.wait_event(ev)

    def compute_waits(self, ev):
        self._current(self.tdev).wait_event(ev)

    def record_compute(self, ev):
        ev.record(self._current(self.tdev))

    def compute_handle(self):
        return self._raw(self.index)

    def synchronize(self):
        torch.cuda.synchronize(self.tdev)


class _HostSync:
    """Ordering when the compute is the CPU (the simulated device): copies run on
    a vramswap stream, the CPU waits for them, slots are free once the CPU
    finished (it runs synchronously)."""

    host_compute = True

    def __init__(self, device, stream=None):
        from .streams import Stream
        if stream is not None and not isinstance(stream, Stream):
            raise errors.invalid_argument("vramswap.torch.offload: stream= must be a vramswap Stream of "
                                          "the simulated device, not %r" % (stream,))
        self.device = device
        self.own = stream is None
        self.stream = device.stream() if stream is None else stream
        self.copy_handle = self.stream.handle

    def event(self):
        return self.device.event()

    def record_copy(self, ev):
        ev.record(self.stream)

    def copy_waits(self, ev):
        pass

    def compute_waits(self, ev):
        ev.synchronize()

    def record_compute(self, ev):
        pass

    def compute_handle(self):
        return _STREAM_NONE

    def synchronize(self):
        self.stream.synchronize()

    def close(self):
        if self.own:
            self.stream.close()


# torch.nn modules whose forward reads their children's weights (Note [Units]).
_GROUP_TYPES = [torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer,
                torch.nn.TransformerDecoderLayer]


def _no_trace(fn):
    """`fn`, never traced by torch.compile (Note [Hooks and torch.compile]);
    `fn` itself on a torch without Dynamo (1.x).

    torch.compiler.disable's wrapper swaps Dynamo's frame callback on every
    call, microseconds per hook in eager mode, where nothing traces: so the
    hook calls `fn` directly unless Dynamo is tracing it (is_compiling() is a
    constant True there) or Dynamo's frame callback is installed (the hook
    runs natively inside a compiled region, after a graph break): then it goes
    through the disabled wrapper, under which nothing `fn` calls is traced.
    The hook's own code is skipped by Dynamo (disable(recursive=False)), so a
    traced caller breaks the graph at the hook instead of compiling it."""
    compiler = getattr(torch, "compiler", None)
    disable = getattr(compiler, "disable", None)
    compiling = getattr(compiler, "is_compiling", None)
    if disable is None or compiling is None:
        try:
            import torch._dynamo as dynamo  # torch 2.0 - 2.2
        except ImportError:
            return fn
        disable = disable or dynamo.disable
        compiling = compiling or getattr(dynamo, "is_compiling", None)
    disabled = disable(fn)
    try:
        from torch._C._dynamo.eval_frame import get_eval_frame_callback as callback
    except ImportError:
        callback = None
    if compiling is None or callback is None:
        return disabled  # no cheap test: always through the wrapper

    def hook(*args, **kwargs):
        if compiling() or callback() not in (None, False):
            return disabled(*args, **kwargs)
        return fn(*args, **kwargs)
    hook.__wrapped__ = fn
    try:
        return disable(hook, recursive=False)
    except TypeError:  # a disable without recursive=
        return hook


def _register_pre(module, hook, with_kwargs):
    """A forward pre-hook; with the keyword arguments when asked and torch
    supports it (>= 2.0), so that the root can move them to the device."""
    if with_kwargs:
        try:
            return module.register_forward_pre_hook(hook, with_kwargs=True)
        except TypeError:  # torch 1.x: positional arguments only
            pass
    return module.register_forward_pre_hook(hook)


def _move(obj, tdev):
    """`obj` with every tensor inside tuples, lists and dicts on `tdev`, or
    `obj` itself (the same object) when nothing had to move."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == tdev else obj.to(tdev, non_blocking=True)
    if isinstance(obj, (tuple, list)):
        items = [_move(x, tdev) for x in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a namedtuple
            return type(obj)(*items)
        return type(obj)(items)
    if isinstance(obj, dict):
        moved = {k: _move(v, tdev) for k, v in obj.items()}
        if all(moved[k] is v for k, v in obj.items()):
            return obj
        try:
            out = type(obj)(moved)
        except TypeError:
            out = dict(moved)
        return out
    return obj


_presented = {}  # class -> its subclass answering the execution device


def _presented_class(cls):
    """cls with a ``device`` property that answers the offload's execution
    device (Note [Presenting the execution device])."""
    sub = _presented.get(cls)
    if sub is None:
        def device(self):
            return self.__dict__["_vramswap_device"]
        sub = type(cls.__name__, (cls,), {"device": property(device), "__module__": cls.__module__,
                                          "__qualname__": getattr(cls, "__qualname__", cls.__name__),
                                          "_vramswap_presented": cls})
        _presented[cls] = sub
    return sub


def _refuse_twice(module):
    """A module, or a submodule of it, offloaded already (and not closed) is refused:
    two offloads would each repoint the same parameters at their own memory."""
    for name, m in module.named_modules():  # every submodule of an offloaded one is marked
        off = m.__dict__.get("_vramswap_offload")
        if off is not None and not off._closed:
            where = "it" if m is module else "its submodule %r" % name
            raise errors.invalid_argument(
                "vramswap.torch.offload: %s is offloaded already (by %r); close() that offload first"
                % (where, off))


class _Progress:
    """Progress of copying weights into the host copy: a tqdm bar when tqdm is
    importable, else a log line per 10 %. `enabled`: None = only from 1 GiB."""

    def __init__(self, total, enabled, what):
        self.total = total
        self.done = 0
        self.enabled = total >= (1 << 30) if enabled is None else bool(enabled)
        self.what = what
        self.bar = None
        self.next_log = 0.1

    def __enter__(self):
        if self.enabled:
            self.t0 = time.perf_counter()
            _log.info("vramswap.torch.offload(%s): pinning %.2f GiB of host memory", self.what,
                      self.total / (1 << 30))
        return self

    def pinned(self):
        """The host memory is pinned; the copy starts."""
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc="vramswap offload %s" % self.what)
        except ImportError:
            _log.info("vramswap.torch.offload(%s): pinned in %.1f s; copying %.2f GiB", self.what,
                      time.perf_counter() - self.t0, self.total / (1 << 30))

    def update(self, n):
        if not self.enabled:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.total and self.done >= self.next_log * self.total:
            _log.info("vramswap.torch.offload(%s): %d%% (%.2f of %.2f GiB)", self.what,
                      100 * self.done // self.total, self.done / (1 << 30), self.total / (1 << 30))
            while self.next_log * self.total <= self.done:
                self.next_log += 0.1

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


_last_run = {}  # vramswap Device -> the ModuleOffload that ran last on it
_live = weakref.WeakSet()  # open ModuleOffloads (Note [Rings of idle models])
_deferred = []  # host buffers of closed offloads that tensors (a state_dict) still view


def _close_deferred():
    """Close the host buffers that nothing views any more; the rest wait (their
    memory stays valid for the tensors that still point into it)."""
    import gc
    gc.collect()
    for hb in list(_deferred):
        if not hb.live_views():
            _deferred.remove(hb)
            hb.close()


class ModuleOffload:
    """Keep `module`'s parameters and buffers in vramswap memory (Note [Module
    offload]). Use :func:`offload`; ``close()`` (or the context manager) puts
    ordinary tensors back on their original devices."""

    def __init__(self, module, device=None, prefetch=3, lookahead=8, placement="auto", stream=None,
                 units=None, move_inputs=True, progress=None):
        if not isinstance(module, torch.nn.Module):
            raise errors.invalid_argument("vramswap.torch.offload: %r is not a torch.nn.Module" % (module,))
        if placement not in ("auto", "sequential", "spread"):
            raise errors.invalid_argument("placement must be 'auto', 'sequential' or 'spread'")
        if prefetch < 1 or lookahead < 1:
            raise errors.invalid_argument("prefetch and lookahead must be >= 1")
        _refuse_twice(module)
        self.device = _vramswap_device(device)
        self.module = module
        self.tdevice = torch_device(self.device)
        self.stream = stream
        self.move_inputs = bool(move_inputs)
        self.prefetch = int(prefetch)      # ring slots for streamed units
        self.lookahead = int(lookahead)    # units prepared ahead of the running one
        self.placement = placement
        self.counters = {"faults": 0, "copies": 0, "hits": 0, "streamed": 0, "passes": 0,
                         "relayouts": 0, "resident_passes": 0}
        self._pass_streamed = 0
        self.units = []
        self.host = self.vbar = self.scratch = None
        self.slots = []
        self.slot_size = 0        # bytes per ring slot
        self._slot_bytes = None   # slot size chosen by the placement (None: the largest unit)
        self._all_sig = None      # signature of the whole VBAR when every unit was last copied
        self._resident_pass = False  # this pass runs with the whole VBAR pinned (Note [Resident passes])
        self._pass_stream = None  # compute stream the resident pass pinned on
        self._room = False        # room to spare for a resident pass (checked at pass end)
        self._room_reuse = 0      # passes the last positive check still counts for
        self._big = None          # the oversize slot (_oversize) and its buffer
        self._big_buf = None
        self._next_slot = 0
        self._sync = None
        self._order = None        # units in execution order (learned)
        self._trace = None        # execution order being recorded during a pass
        self._pos = 0             # index in _order of the next unit expected
        self._depth = 0           # root forwards in progress (re-entrancy)
        self._root_hooks = []
        self._classes = []        # (module, its own class) for modules presented on the device
        self._set_hint = False    # hf_device_map was set by _present
        self._closed = False
        self._build_units(module, units)
        for m in module.modules():
            m.__dict__["_vramswap_offload"] = self  # _refuse_twice
        try:
            self._setup(progress)
        except BaseException:
            self.close()
            raise

    def _build_units(self, module, extra):
        """Note [Units]
        A unit is normally a submodule that owns parameters or buffers directly
        (a Linear): its forward hooks put its tensors on the device. That is
        only right if nobody else reads them. Some parents read their children's
        weights in their own forward: nn.MultiheadAttention passes
        out_proj.weight to F.multi_head_attention_forward (out_proj's forward
        never runs), nn.TransformerEncoderLayer's inference fast path hands every
        weight of the layer to one fused kernel. Such a parent is one unit
        with every tensor of its subtree (group roots), chosen by:
        - class: _GROUP_TYPES (the torch.nn modules known to do it) plus
          `units` (classes or qualified module names) given by the caller;
        - shape: a module that owns tensors itself and whose descendants own
          fewer bytes than it does (an attention block with its output
          projection): reading its children is likely, and grouping is cheap.
        The outermost group root takes its whole subtree. A tensor shared by
        two modules (tied weights) belongs to the first unit that has it; the
        other module sees the host copy unless both are in one group."""
        extra = list(extra or ())
        names = {x for x in extra if isinstance(x, str)}
        types = tuple(_GROUP_TYPES) + tuple(x for x in extra if isinstance(x, type))
        bad = [x for x in extra if not isinstance(x, (str, type))]
        if bad:
            raise errors.invalid_argument("vramswap.torch.offload: units= takes module classes or "
                                          "qualified names, not %r" % (bad,))
        known = {n for n, _ in module.named_modules()}
        missing = sorted(names - known)
        if missing:
            raise errors.invalid_argument("vramswap.torch.offload: units= names no submodule %s" % missing)

        def own_bytes(m):
            return sum(t.numel() * t.element_size() for t in list(m._parameters.values()) +
                       list(m._buffers.values()) if t is not None)

        def is_root(name, m):
            if name in names or isinstance(m, types):
                return True
            own = own_bytes(m)
            if not own:
                return False
            below = sum(own_bytes(c) for _, c in m.named_modules() if c is not m)
            return 0 < below <= own

        seen = set()
        group = None  # (prefix, unit) of the group root whose subtree we are in
        for name, m in module.named_modules():
            if group is not None and not (group[0] == "" or name.startswith(group[0] + ".")):
                group = None
            if group is not None:
                u = group[1]
            else:
                u = _Unit(len(self.units), name, m)
                if is_root(name, m) and any(True for c in m.children()):
                    group = (name, u)
            for pname, prm in m._parameters.items():
                if prm is None or id(prm) in seen:
                    continue
                seen.add(id(prm))
                u.tensors.append((m, "p", pname, prm, u.size, prm.device))
                u.size = _align(u.size + prm.numel() * prm.element_size())
            for bname, buf in m._buffers.items():
                if buf is None or id(buf) in seen:
                    continue
                seen.add(id(buf))
                u.tensors.append((m, "b", bname, buf, u.size, buf.device))
                u.size = _align(u.size + buf.numel() * buf.element_size())
            if u.tensors and not (self.units and self.units[-1] is u):
                u.index = len(self.units)
                self.units.append(u)

    # ------------------------------------------------------------ setup

    def _setup(self, progress):
        if not self.units:
            return
        dev = self.device
        self._sync = (_HostSync(dev, self.stream) if self.tdevice.type == "cpu"
                      else _CudaSync(self.tdevice, self.stream))
        off = 0
        for u in self.units:
            u.host_off = off
            off += u.size
        with torch.no_grad(), _normal_mode(), _Progress(off, progress, type(self.module).__name__) as progress:
            self.host = dev.host_buffer(off, size=off)  # pinning: often the longest part
            self.host.owner = ("the host copy of vramswap.torch.offload(%s)'s weights: tensors taken from "
                               "the module while it was offloaded, such as a state_dict() or parameters, "
                               "still view it" % type(self.module).__name__)
            progress.pinned()
            for u in self.units:
                for mod, kind, name, t, toff, _ in u.tensors:
                    hv = as_tensor(self.host, t.dtype, t.shape, offset=u.host_off + toff)
                    hv.copy_(t.detach())
                    u.host_views.append(hv)
                    self._assign(mod, kind, name, hv)
                    progress.update(t.numel() * t.element_size())
                u.tensors = [(m, k, n, None, o, d) for (m, k, n, _, o, d) in u.tensors]  # drop the originals
                if not self._sync.host_compute:
                    u.copy_event = self._sync.event()
        self._layout(list(self.units))
        mi = dev.memory_info()
        if sum(u.size for u in self.units) > mi.available + mi.evictable:
            self._ring(False)  # it will stream: take the ring before the weights fill the budget
        # Note [Hooks and torch.compile]
        # The hooks repoint parameters (``.data =``), fault, copy and unpin:
        # none of it can be traced. Dynamo runs them eagerly (a graph break at
        # each unit boundary) and compiles the module code in between, where
        # the parameters are ordinary device tensors of fixed shape, dtype and
        # device, so the guards hold from one pass to the next.
        self._root_hooks.append(_register_pre(self.module, _no_trace(self._root_pre), True))
        for u in self.units:
            u.hooks.append(_register_pre(u.module, _no_trace(self._make_pre(u)), False))
            u.hooks.append(u.module.register_forward_hook(_no_trace(self._make_post(u))))
        self._root_hooks.append(self.module.register_forward_hook(_no_trace(self._pass_end)))
        self._present()
        _live.add(self)

    def _present(self):
        """Note [Presenting the execution device]
        Between forwards the parameters are the pinned host copy: that is the
        only place their data always is (a VBAR page can be evicted at any
        moment by an allocation on any thread, so a device tensor over it would
        dangle, and state_dict() must read correct data). Code that asks a
        module where it runs -- transformers' ``model.device`` (the first
        parameter's device), which generate() uses to build its tensors --
        must hear the execution device, though. So every submodule whose class
        has a ``device`` attribute gets a subclass (made once per class, same
        name, isinstance unchanged) whose ``device`` property answers the
        execution device; ``close()`` restores the class. The module also
        carries accelerate's hint ``hf_device_map = {"": index}`` unless it
        has one (a GPU only), and every submodule ``_vramswap_offload``. ``next(model.parameters()).device``
        stays the truth (cpu): the parameters are not on the GPU between
        forwards."""
        tdev = self.tdevice
        for _, m in self.module.named_modules():
            cls = type(m)
            if isinstance(getattr(cls, "device", None), property):
                try:
                    m.__class__ = _presented_class(cls)
                except Exception as e:  # noqa: BLE001 -- a class that refuses subclassing: say so
                    _log.warning("vramswap.torch.offload: cannot present %s on %s (%s); its .device "
                                 "reports its parameters' device", cls.__name__, tdev, e)
                    continue
                m._vramswap_device = tdev
                self._classes.append((m, cls))
        if tdev.type != "cpu" and not hasattr(self.module, "hf_device_map"):
            # Not on the simulator: transformers reads "cpu" in a device map as offloaded
            # to the CPU and looks for another device to execute on.
            self.module.hf_device_map = {"": tdev.index if tdev.index is not None else str(tdev)}
            self._set_hint = True

    @property
    def execution_device(self):
        """The torch.device the module computes on."""
        return self.tdevice

    def _layout(self, order):
        """(Re)create the VBAR with the units in `order` (most important first)."""
        if self.vbar is not None:
            self.vbar.close()
            self.vbar = None
        total = sum(u.size for u in order)
        self.vbar = self.device.vbar(total)
        self._all_sig = None
        for u in order:
            u.off = self.vbar.alloc(u.size, align=_ALIGN).offset
            u.signature = None
            u.vbar_views = None  # made at the first fault: torch asks the driver about the pointer
        self._vbar_bytes = self.vbar.allocated
        _last_run.pop(self.device, None)

    def _ring(self, must):
        """The ring of scratch slots for streamed units, made on first need with
        as many slots (up to `prefetch`) as the budget allows. None when there is
        no room and not `must`; when `must`, units prepared ahead are released
        first to make room, and OutOfMemoryError if even that is not enough."""
        if self.scratch is None:
            slot = self._slot_bytes or _align(max(u.size for u in self.units))
            # Units prepared ahead are pinned; unpinned, the ring's reclaim takes
            # the least important pages (the highest), as eviction should.
            self._release_prepared()
            for attempt in (0, 1):
                for n in range(self.prefetch, 0, -1):
                    try:
                        self.scratch = self.device.scratch(slot * n, size=slot * n)
                        break
                    except errors.OutOfMemoryError:
                        pass
                if self.scratch is not None or not must:
                    break
                if attempt == 1:
                    raise errors.error(_lib.CONSTANTS["VS_ERR_OUT_OF_MEMORY"],
                                       "vramswap.torch: no room for a %d-byte streaming buffer" % slot)
                self._drop_idle_rings()
            if self.scratch is None:
                return None
            self.slots = [_Slot(i, self.scratch.ptr + i * slot) for i in range(n)]
            self.slot_size = slot
        return self.slots

    def _oversize(self, must):
        """The one slot for units larger than the ring's slots (None: no room)."""
        if self._big is None:
            size = _align(max(u.size for u in self.units))
            try:
                self._big_buf = self.device.scratch(size, size=size)
            except errors.OutOfMemoryError:
                if not must:
                    return None
                self._release_prepared()
                self._drop_idle_rings()
                self._big_buf = self.device.scratch(size, size=size)
            self._big = _Slot(-1, self._big_buf.ptr)
        return self._big

    def _drop_idle_rings(self):
        """Note [Rings of idle models]
        Every offload that streams keeps a ring of scratch slots (and maybe an
        oversize slot), which, unlike VBAR pages, nothing evicts. Several models
        of a pipeline on one device would each hold one while only one runs, and
        under a tight budget the rings alone can leave no room for the running
        model's. So when this model must have a streaming buffer and there is
        no room, the other offloads on the device that are not in a forward
        give theirs back (after a synchronize: their last slots may still be
        read); they make them again when they next stream."""
        for o in list(_live):
            if o is self or o._closed or o._depth or o.device is not self.device:
                continue
            if o.scratch is None and o._big_buf is None:
                continue
            o._sync.synchronize()
            o._release_prepared()
            if o.scratch is not None:
                o._close_ring()
            if o._big_buf is not None:
                o._big_buf.close()
                o._big_buf = o._big = None
                for u in o.units:
                    u.slot_views.pop(-1, None)
            o.counters["rings_dropped"] = o.counters.get("rings_dropped", 0) + 1

    def _close_ring(self):
        self.scratch.close()
        self.scratch = None
        self.slots = []
        self._next_slot = 0
        for u in self.units:
            u.slot_views = {}

    def _views_at(self, u, ptr):
        """Tensors over u's parameters and buffers laid out from device address ptr."""
        with _normal_mode():
            return [as_tensor(ptr, hv.dtype, hv.shape, device=self.tdevice, offset=toff)
                    for (_, _, _, _, toff, _), hv in zip(u.tensors, u.host_views)]

    def _slot_views(self, u, slot):
        v = u.slot_views.get(slot.index)
        if v is None:
            v = u.slot_views[slot.index] = self._views_at(u, slot.ptr)
        return v

    @staticmethod
    def _assign(module, kind, name, t):
        if kind == "p":
            module._parameters[name].data = t
        else:
            module._buffers[name] = t

    # ------------------------------------------------------------ the pipeline

    def _prepare(self, u, must):
        """Fault u and issue its copy. False (nothing pinned) when it needs a slot
        and none is free, unless `must`: then a slot is waited for."""
        sync = self._sync
        self.counters["faults"] += 1
        sig = self.vbar.fault(u.off, u.size)
        if sig is not None:
            ev = None
            if sig != u.signature:
                _memcpy(self.device._h(), _H2D, self.vbar.base + u.off, self.host.ptr + u.host_off, u.size,
                        sync.copy_handle)
                u.signature = sig
                ev = u.copy_event if u.copy_event is not None else sync.event()
                sync.record_copy(ev)
                self.counters["copies"] += 1
            else:
                self.counters["hits"] += 1
            u.prep = ("res", None, ev)
            return True
        slots = self._ring(must)
        if slots is None:
            return False
        if u.size > self.slot_size:
            # Larger than the ring's slots (placement kept it resident, pressure
            # evicted it): a single oversize slot, made once, used in turn.
            big = self._oversize(must)
            if big is None:
                return False
            slots = [big]
        slot = self._free_slot(slots)
        if slot is None and must:
            # Units prepared ahead hold every slot (the model ran out of the
            # expected order): drop those preparations; copies into the slots
            # stay ordered on the copy stream, and nothing read them yet.
            self._release_prepared()
            slot = self._free_slot(slots)
        if slot is None:
            if not must:
                return False
            raise errors.VramswapError(_lib.CONSTANTS["VS_ERR_BUSY"],
                                       "vramswap.torch: every prefetch slot is in use (a module ran "
                                       "re-entrantly more than %d deep)" % len(slots))
        slot.busy = True
        if slot.index >= 0:
            self._next_slot = (slot.index + 1) % len(self.slots)
        sync.copy_waits(slot.free_event)
        _memcpy(self.device._h(), _H2D, slot.ptr, self.host.ptr + u.host_off, u.size, sync.copy_handle)
        ev = u.copy_event if u.copy_event is not None else sync.event()
        sync.record_copy(ev)
        self.counters["streamed"] += 1
        u.prep = ("slot", slot, ev)
        return True

    def _free_slot(self, slots):
        for k in range(len(slots)):
            cand = slots[(self._next_slot + k) % len(slots)]
            if not cand.busy:
                return cand
        return None

    def _prefetch_after(self, pos):
        order = self._order or self.units
        streamed = sum(1 for s in self.slots if s.busy)
        end = min(len(order), pos + self.lookahead)
        for k in range(pos, end):
            w = order[k]
            if w.prep is not None or w.inflight:
                continue
            if self.slots and streamed >= len(self.slots):
                break
            if not self._prepare(w, False):
                break
            if w.prep[0] == "slot":
                streamed += 1

    def _make_pre(self, u):
        def pre(module, args):
            if self._resident_pass:
                views = u.vbar_views
                if views is None:
                    views = u.vbar_views = self._views_at(u, self.vbar.base + u.off)
                assign = self._assign
                for (m, k, name, _, _, _), v in zip(u.tensors, views):
                    assign(m, k, name, v)
                return
            if self._trace is not None:
                self._trace.append(u)
            order = self._order or self.units
            pos = self._pos
            if pos < len(order) and order[pos] is u:
                self._pos = pos + 1
            else:  # out of the expected order: find it ahead, else no lookahead
                try:
                    self._pos = order.index(u, pos) + 1
                except ValueError:
                    self._pos = len(order)
            if u.prep is None:
                self._prepare(u, True)
            kind, slot, ev = prep = u.prep
            u.prep = None
            u.inflight.append(prep)  # before prefetching: making room may drop preparations
            self._prefetch_after(self._pos)
            if ev is not None:
                self._sync.compute_waits(ev)
            if kind == "res":
                views = u.vbar_views
                if views is None:
                    views = u.vbar_views = self._views_at(u, self.vbar.base + u.off)
            else:
                views = self._slot_views(u, slot)
            assign = self._assign
            for (m, k, name, _, _, _), v in zip(u.tensors, views):
                assign(m, k, name, v)
        return pre

    def _make_post(self, u):
        def post(module, args, output):
            if self._resident_pass:
                assign = self._assign
                for (m, k, name, _, _, _), hv in zip(u.tensors, u.host_views):
                    assign(m, k, name, hv)
                return
            self._finish(u)
        return post

    def _finish(self, u):
        kind, slot, _ = u.inflight.pop()
        assign = self._assign
        for (m, k, name, _, _, _), hv in zip(u.tensors, u.host_views):
            assign(m, k, name, hv)
        sync = self._sync
        if kind == "res":
            self.vbar.unpin(u.off, u.size, sync.compute_handle())
        else:
            if not sync.host_compute:
                if slot.free_event is None:
                    slot.free_event = sync.event()
                sync.record_compute(slot.free_event)
            slot.busy = False

    def _release_prepared(self):
        for u in self.units:
            if u.prep is not None:
                kind, slot, ev = u.prep
                u.prep = None
                if kind == "res":
                    # Its copy may still be running on the copy stream: the unpin's
                    # event must come after it, or eviction could unmap under it.
                    if ev is not None:
                        self._sync.compute_waits(ev)
                    self.vbar.unpin(u.off, u.size, self._sync.compute_handle())
                else:
                    slot.busy = False  # nothing read it; later copies into it are stream-ordered

    def _root_pre(self, module, args, kwargs=None):
        """The root's forward pre-hook: begin a pass, then move the inputs to
        the execution device (accelerate's io_same_device for the inputs; the
        outputs stay on the execution device, where the model's own tensors are)."""
        self._pass_begin(module, args)
        if not self.move_inputs or self._depth != 1:
            return None
        tdev = self.tdevice
        margs = _move(args, tdev)
        if kwargs is None:
            return None if margs is args else margs
        mkw = _move(kwargs, tdev)
        if margs is args and mkw is kwargs:
            return None
        return margs, mkw

    def _pass_begin(self, module, args):
        if self._depth:
            self._depth += 1
            return
        if torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
            raise RuntimeError("vramswap.torch.offload is for inference: run the model under "
                               "torch.no_grad() or torch.inference_mode(), or requires_grad_(False)")
        if self._resident_pass:  # a previous resident pass raised half way
            self._sync.synchronize()
            self._resident_pass = False
            self.vbar.unpin(0, self._vbar_bytes, _STREAM_NONE)
            for u in self.units:
                for (m, k, name, _, _, _), hv in zip(u.tensors, u.host_views):
                    self._assign(m, k, name, hv)
        if any(u.inflight for u in self.units):  # a previous forward raised half way
            self._sync.synchronize()
            for u in self.units:
                while u.inflight:
                    self._finish(u)
            self._release_prepared()
        self._depth = 1
        if _last_run.get(self.device) is not self:
            self.vbar.prioritize()
            _last_run[self.device] = self
        self._pos = 0
        if self._order is None:
            self._trace = []
        self.counters["passes"] += 1
        self._pass_streamed = self.counters["streamed"]
        if self._all_sig is not None:
            # Note [Resident passes]
            # When the last pass found every unit resident, one fault of the
            # whole VBAR tells whether that is still so (same signature: no page
            # was remapped, every copy is valid). Then the pass pins it all at
            # once and the per-unit hooks only point the tensors at their views:
            # no fault, unpin or prefetch per unit, which is what keeps a model
            # that fits within a few percent of resident speed when the GPU
            # time per unit is short. One unpin at the end, on the compute
            # stream. Any change falls back to the per-unit pipeline.
            # Pinning everything for a pass is only done with room to spare
            # (judged at the end of the previous pass, off the critical path):
            # under pressure the per-unit pipeline keeps pages evictable.
            sig = self.vbar.fault(0, self._vbar_bytes) if self._room else None
            if sig is not None and sig == self._all_sig:
                self._resident_pass = True
                self._pass_stream = self._sync.compute_handle()
                self.counters["resident_passes"] += 1
                return
            if sig is not None:
                self.vbar.unpin(0, self._vbar_bytes, self._sync.compute_handle())
            self._all_sig = None

    def _pass_end(self, module, args, output):
        self._depth -= 1
        if self._depth:
            return
        _residency.pass_end(self)  # Note [Residency cooperation]
        if self._resident_pass:
            self._resident_pass = False
            self.vbar.unpin(0, self._vbar_bytes, self._sync.compute_handle())
            self._room = self._has_room()
            return
        self._release_prepared()
        if self._trace is None and self._pass_streamed == self.counters["streamed"]:
            # Nothing streamed this pass: is the whole VBAR resident now?
            sig = self.vbar.fault(0, self._vbar_bytes)
            if sig is not None:
                self._all_sig = sig
                self.vbar.unpin(0, self._vbar_bytes, _STREAM_NONE)  # nothing new used it
                self._room = self._has_room()
        if self._trace is not None:
            trace, self._trace = self._trace, None
            seen, order = set(), []
            for u in trace:
                if u.index not in seen:
                    seen.add(u.index)
                    order.append(u)
            idle = [u.name for u in self.units if u.index not in seen]
            if idle:
                # Note [Units]: a parent that reads these weights saw the host copy.
                _log.warning("vramswap.torch.offload(%s): %d unit(s) never ran their own forward in the "
                             "first pass (%s); if a parent module reads their weights, pass "
                             "units=[that parent's name or class]", type(self.module).__name__,
                             len(idle), ", ".join(idle[:8]) + (", ..." if len(idle) > 8 else ""))
            order += [u for u in self.units if u.index not in seen]
            self._order = order
            self._relayout(order)

    def _has_room(self):
        """Room to spare for the next resident pass. Asking the driver costs ~20 us
        with the Python conversion, which a short pass cannot hide when the CPU is
        the bottleneck: a positive answer is reused for 16 passes (the hooks still
        see every allocation in between and evict what they need from unpinned
        pages; a pass pins the VBAR only for its own duration)."""
        if self._room and self._room_reuse > 0:
            self._room_reuse -= 1
            return True
        self._room_reuse = 16
        return self.device.memory_info().available >= max(self.device.page_size, self._vbar_bytes // 16)

    def _relayout(self, order):
        """After the first pass: lay the VBAR out in execution order, spreading
        the resident set when not everything stayed resident (Note [Module
        offload], Note [Spread placement])."""
        total = sum(u.size for u in order)
        loaded = self.vbar.loaded_size
        frac = min(1.0, loaded / total) if total else 1.0
        mode = self.placement
        if mode == "auto":
            mode = "sequential" if frac >= 0.999 else "spread"
        slot = None
        if mode == "spread" and frac < 1.0:
            placed, slot = self._spread(order, loaded)
        else:
            placed = list(order)
        same = [u.index for u in placed] == [u.index for u in sorted(self.units, key=lambda u: u.off)]
        if same and slot is None:
            return
        self._sync.synchronize()   # nothing may still read the old VBAR or ring
        if slot is not None and self.scratch is not None and slot < self.slot_size:
            self._close_ring()
            self._slot_bytes = slot
        if not same:
            self._layout(placed)
            self.counters["relayouts"] += 1

    def _spread(self, order, loaded):
        """Note [Spread placement]
        The resident set goes first in the VBAR (eviction takes the highest
        pages, the watermark keeps it that way) and is spread over the execution
        order, so that the copy engine streams the other units while resident
        ones compute. Units far larger than the typical one (an embedding, an LM
        head: > 3x the median size, tiny units such as norms left out of the median)
        are kept resident when
        they fit in half of the resident budget: streamed, they would size every
        slot of the ring, and the ring's memory would come out of the resident
        weights. The rest is chosen by bytes, Bresenham-style, in execution order.
        Returns (placement, the slot size the streamed units need)."""
        biggest = max(u.size for u in order)
        sizes = sorted(u.size for u in order if u.size >= biggest // 64)
        median = sizes[len(sizes) // 2]
        large = [u for u in order if u.size > 3 * median]
        small = [u for u in order if u.size <= 3 * median]
        ring_now = self.slot_size * len(self.slots) if self.scratch is not None else 0
        nslots = len(self.slots) if self.slots else self.prefetch
        new_slot = _align(max(u.size for u in small)) if small else self.slot_size
        budget = loaded + max(0, ring_now - nslots * new_slot)  # memory the smaller ring gives back
        if sum(u.size for u in large) > budget // 2:
            large, small = [], list(order)
            new_slot = _align(max(u.size for u in order))
            budget = loaded
        budget -= sum(u.size for u in large)
        rest_total = sum(u.size for u in small)
        frac = min(1.0, max(0.0, budget / rest_total)) if rest_total else 1.0
        resident, streamed, credit = list(large), [], 0.0
        for u in small:
            credit += frac * u.size
            if credit >= u.size * (1 - 1e-9):
                credit -= u.size
                resident.append(u)
            else:
                streamed.append(u)
        resident.sort(key=lambda u: order.index(u))
        slot = _align(max(u.size for u in streamed)) if streamed else None
        return _residency.nested_layout(resident, streamed, large), slot  # Note [Nested spread]

    # ------------------------------------------------------------ queries, lifetime

    def resident_units(self):
        """Names of the units whose pages are all resident now."""
        if self.vbar is None:
            return []
        res = self.vbar.residency()
        page = self.device.page_size
        return [u.name for u in self.units
                if all(res[i] & 1 for i in range(u.off // page, (u.off + u.size - 1) // page + 1))]

    def close(self):
        """Remove the hooks, give the module ordinary tensors on their original
        devices again (copied from the host copy), release vramswap memory."""
        if self._closed:
            return
        self._closed = True
        for h in self._root_hooks:
            h.remove()
        self._root_hooks = []
        for m, cls in self._classes:  # Note [Presenting the execution device]
            m.__class__ = cls
            m.__dict__.pop("_vramswap_device", None)
        self._classes = []
        if self._set_hint:
            self.module.__dict__.pop("hf_device_map", None)
            self._set_hint = False
        for m in self.module.modules():
            if m.__dict__.get("_vramswap_offload") is self:
                del m.__dict__["_vramswap_offload"]
        if self._sync is not None:
            self._sync.synchronize()
        for u in self.units:
            for h in u.hooks:
                h.remove()
            u.hooks = []
            if self.vbar is not None:
                while u.inflight:
                    self._finish(u)
        if self.vbar is not None:
            self._release_prepared()
        with torch.no_grad():
            for u in self.units:
                for (m, k, name, _, _, orig), hv in zip(u.tensors, u.host_views):
                    self._assign(m, k, name, hv.to(orig, copy=True))
                u.host_views = []
                u.vbar_views = None
                u.slot_views = {}
            hv = None  # the loop variable would keep the last host view alive
        if self._resident_pass and self.vbar is not None:
            self._resident_pass = False
            self.vbar.unpin(0, self._vbar_bytes, _STREAM_NONE)  # synchronized above
        if _last_run.get(self.device) is self:
            del _last_run[self.device]
        _live.discard(self)
        if isinstance(self._sync, _HostSync):
            self._sync.close()
        for obj in (self.scratch, self._big_buf, self.vbar):
            if obj is not None:
                obj.close()
        self._big = self._big_buf = None
        if self.host is not None:
            _deferred.append(self.host)  # closed once no tensor views it (a kept state_dict)
        _close_deferred()
        self.scratch = self.vbar = self.host = None
        self.slots = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _normal_mode:
    """Create tensors outside inference mode even when called inside it (views
    made once are reused by later forwards, in or out of inference mode)."""

    def __enter__(self):
        self._ctx = torch.inference_mode(False)
        self._ctx.__enter__()

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)


def _vramswap_device(device):
    if device is None:
        return default_device()
    if isinstance(device, Device):
        return device
    tdev = torch.device(device)
    if tdev.type == "cuda":
        backend = "hip" if getattr(torch.version, "hip", None) else "cuda"
    elif tdev.type == "cpu":
        backend = "sim"
    else:
        raise errors.invalid_argument("vramswap.torch: no vramswap backend for torch device %s" % tdev)
    ordinal = tdev.index or 0
    d = default_device() if _initialized() else None
    if d is not None and d.backend == backend and d.ordinal == ordinal:
        return d
    from .device import init
    return init(backend=backend, device=ordinal, intercept=backend != "sim")


def _initialized():
    from .device import is_initialized
    return is_initialized()


def offload(module, device=None, prefetch=3, lookahead=8, placement="auto", stream=None, units=None,
            move_inputs=True, progress=None):
    """Run `module` with its weights in vramswap memory of `device` (a vramswap
    Device, a torch device such as "cuda:0", or None for vramswap.init()'s
    device): ``off = offload(model, "cuda")``; ``model(x)`` as usual;
    ``off.close()`` to undo. `prefetch`: ring slots for weights that cannot stay
    resident; `lookahead`: units prepared ahead of the running one; `placement`:
    "auto", "sequential" or "spread" (Note [Module offload]); `stream`: the
    side stream the weight copies run on (a torch.cuda.Stream; on the simulator
    a vramswap Stream), made by the offload when None; `units`: module classes
    or qualified names whose forward reads their children's weights, each made
    one unit with its subtree (Note [Units]); `move_inputs`: move tensors given
    to the root module to the execution device; `progress`: show the copy into
    pinned memory (tqdm, else log lines; None: only for 1 GiB or more). A module
    (or a part of one) that is offloaded already is refused."""
    return ModuleOffload(module, device, prefetch, lookahead, placement, stream, units, move_inputs,
                         progress)


def _pipeline_modules(obj):
    """(name, module) pairs of a pipeline: a module, a dict or list of modules,
    or an object whose ``components`` dict (diffusers) or attributes hold
    modules. A module inside another one of the set is left to its parent."""
    if isinstance(obj, torch.nn.Module):
        pairs = [("", obj)]
    elif isinstance(obj, dict):
        pairs = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        pairs = [(str(i), m) for i, m in enumerate(obj)]
    else:
        comps = getattr(obj, "components", None)
        src = comps if isinstance(comps, dict) else getattr(obj, "__dict__", {})
        pairs = [(k, v) for k, v in src.items() if not k.startswith("_")]
    pairs = [(k, m) for k, m in pairs if isinstance(m, torch.nn.Module)]
    inner = set()
    for _, m in pairs:
        inner.update(id(c) for c in m.modules() if c is not m)
    out, seen = [], set()
    for k, m in pairs:
        if id(m) in inner or id(m) in seen:
            continue
        seen.add(id(m))
        out.append((k, m))
    return out


class PipelineOffload:
    """Several models of one pipeline offloaded together (see :func:`offload_pipeline`)."""

    def __init__(self, pipeline, device=None, **kwargs):
        pairs = _pipeline_modules(pipeline)
        if not pairs:
            raise errors.invalid_argument("vramswap.torch.offload_pipeline: no torch.nn.Module in %r"
                                          % (pipeline,))
        self.device = _vramswap_device(device)
        self.offloads = {}
        try:
            for name, m in pairs:
                self.offloads[name] = ModuleOffload(m, self.device, **kwargs)
        except BaseException:
            self.close()
            raise

    @property
    def execution_device(self):
        return torch_device(self.device)

    @property
    def counters(self):
        """The offloads' counters, summed."""
        total = {}
        for off in self.offloads.values():
            for k, v in off.counters.items():
                total[k] = total.get(k, 0) + v
        return total

    def close(self):
        for off in reversed(list(self.offloads.values())):
            off.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def offload_pipeline(pipeline, device=None, **kwargs):
    """Offload every model of a pipeline with one call, like diffusers'
    ``enable_model_cpu_offload()``: `pipeline` is a diffusers-style object
    (its ``components`` or attributes that are modules: text encoder, UNet or
    DiT, VAE), a dict or list of modules, or one module. Each model gets its own
    VBAR on the same device; the one that starts a forward is prioritized, so
    the model running now keeps the memory and the others give theirs up under
    pressure. Keyword arguments go to :func:`offload`. Returns a
    PipelineOffload (``offloads`` by name, summed ``counters``, ``close()``)."""
    return PipelineOffload(pipeline, device, **kwargs)
