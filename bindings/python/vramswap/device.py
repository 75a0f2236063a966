"""Devices: opening, configuration, memory figures, statistics; the registry of
backends; the process's default device (vramswap.init).
"""

from __future__ import annotations

import ctypes
import dataclasses
import weakref

from . import _config, _lib, _log, errors
from ._resource import LOCK, Resource, live_devices, register_device
from .buffers import HostBuffer, ScratchBuffer
from .constants import CopyKind
from .streams import Event, Stream, stream_handle
from .vbar import VBAR, Allocation

_L = _lib.LIB
_byref = ctypes.byref


def _record(name, struct, doc, convert=None, extra=()):
    """A frozen dataclass with the fields of a ctypes struct (one source of truth:
    the declarations in _lib), then the ``extra`` fields, given to from_struct
    as keywords."""
    convert = convert or {}
    cls = dataclasses.make_dataclass(name, [f for f, _ in struct._fields_] + list(extra), frozen=True)
    cls.__doc__ = doc
    cls.__module__ = "vramswap"

    def from_struct(s, **more):
        values = dict(more)
        for f, _ in struct._fields_:
            v = getattr(s, f)
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, ctypes.Array):
                v = tuple(v)
            values[f] = convert.get(f, lambda x: x)(v)
        return cls(**values)

    cls._from_struct = staticmethod(from_struct)
    return cls


BackendInfo = _record("BackendInfo", _lib.vs_backend_info,
                      "A compiled-in backend: name, available, device_count, why.",
                      {"available": bool})
DeviceProps = _record("DeviceProps", _lib.vs_device_props,
                      "Properties of an open device (sizes in bytes). ``hook_engine``: "
                      "whether the library was built with the hook engine that "
                      "interception on GPU backends needs; ``hook_engine_detail``: "
                      "how it was built, or why it was left out.",
                      {"integrated": bool, "intercepting": bool},
                      extra=("hook_engine", "hook_engine_detail"))
MemoryInfo = _record("MemoryInfo", _lib.vs_memory_info,
                     "A fresh view of the device's memory budget (bytes).")
Stats = _record("Stats", _lib.vs_stats,
                "Counters (since open or reset_stats) and current/peak usage (bytes).")


def backends():
    """Every backend compiled into the library, probed (loading its driver)."""
    out = []
    for i in range(_L.vs_backend_count()):
        info = _lib.vs_backend_info()
        errors.check(_L.vs_backend_get_info(i, _byref(info)), "vs_backend_get_info(%d)" % i)
        out.append(BackendInfo._from_struct(info))
    return out


def _copy_end(x, what):
    """(address, is_host or None when unknown, keepalive) for a memcpy operand."""
    if isinstance(x, int) and not isinstance(x, bool):
        return x, None, None
    if isinstance(x, (Allocation, ScratchBuffer, VBAR)):
        return (x.base if isinstance(x, VBAR) else x.ptr), False, None
    if isinstance(x, HostBuffer):
        return x.ptr, True, None
    try:  # a writable host buffer: bytearray, memoryview, numpy array...
        arr = (ctypes.c_char * memoryview(x).nbytes).from_buffer(x)
    except TypeError:
        raise errors.invalid_argument("memcpy %s: expected an address, an Allocation, a "
                                      "buffer or a writable host buffer object, got %r"
                                      % (what, type(x).__name__)) from None
    return ctypes.addressof(arr), True, arr


def _nbytes(x):
    if isinstance(x, (Allocation, ScratchBuffer, HostBuffer)):
        return x.size
    if isinstance(x, VBAR):
        return x.size
    try:
        return memoryview(x).nbytes
    except TypeError:
        return None


_KIND_NAMES = {"h2d": "HOST_TO_DEVICE", "d2h": "DEVICE_TO_HOST", "d2d": "DEVICE_TO_DEVICE"}


def _copy_kind(kind, dst_host, src_host):
    if kind is None:
        if dst_host is None or src_host is None:
            raise errors.invalid_argument("memcpy: pass kind= ('h2d', 'd2h', 'd2d') when an "
                                          "operand is a raw address")
        if dst_host and src_host:
            raise errors.invalid_argument("memcpy: both operands are host memory")
        kind = "d2h" if dst_host else ("h2d" if src_host else "d2d")
    if isinstance(kind, str):
        name = _KIND_NAMES.get(kind.lower(), kind.upper())
        try:
            return CopyKind[name]
        except KeyError:
            raise errors.invalid_argument("memcpy: unknown kind %r" % kind) from None
    return CopyKind(kind)


class Device(Resource):
    """One GPU seen through one backend.

    ``Device(backend=None, ordinal=0, **config)`` opens it; ``backend`` None or
    "auto" picks the first available GPU backend, then "sim". ``config`` keys:
    limit, headroom, page_size, mem_poll_ns, intercept, log (see
    vramswap._config). A device is a context manager; closing it closes every
    object created on it, newest first (Note [Python object lifetime])."""

    _what = "Device"

    def __init__(self, backend=None, ordinal=0, **config):
        options = _config.validate(config, allowed=_config.ENV_KEYS)
        backend = _config._parse_backend(backend)
        ordinal = _config.parse_ordinal(ordinal, "ordinal")
        self._children = weakref.WeakValueDictionary()  # a child holds its device strongly
        with LOCK:
            _log.sync_level()
            cfg = _config.make_config(options)
            if "log" in options:
                _log.set_level(options["log"])
            out = ctypes.c_void_p()
            st = _L.vs_device_open(backend.encode() if backend else None, ordinal,
                                   _byref(cfg), _byref(out))
            if st:
                raise _open_error(st, backend, ordinal)
            self._own(out.value, _L.vs_device_close, (out.value,))
            register_device(self)
        props = _lib.vs_device_props()
        try:
            errors.check(_L.vs_device_get_props(out.value, _byref(props)), "vs_device_get_props")
        except BaseException:
            self.close()
            raise
        self._props = DeviceProps._from_struct(props, **_hook_engine())
        if self._props.backend == "sim" and backend in (None, "auto"):
            _warn_sim_fallback(ordinal)
        # intercept requested without the hook engine: the library itself logs a
        # WARNING naming the reason (vs_registry_intercept_ref); props.intercepting
        # and props.hook_engine tell programs.

    # ------------------------------------------------------------ identity

    @property
    def props(self):
        """DeviceProps: name, backend, ordinal, integrated, total_memory,
        granularity, page_size, intercepting (fixed while open)."""
        self._h()
        return self._props

    @property
    def backend(self):
        return self._props.backend

    @property
    def ordinal(self):
        return self._props.ordinal

    @property
    def page_size(self):
        return self._props.page_size

    @property
    def handle(self):
        """The C vs_device_t pointer as an int (for other C extensions)."""
        return self._h()

    # ------------------------------------------------------------ memory

    def memory_info(self):
        info = _lib.vs_memory_info()
        errors.check(_L.vs_device_memory_info(self._h(), _byref(info)), "vs_device_memory_info")
        return MemoryInfo._from_struct(info)

    def set_limit(self, limit=0, headroom=None):
        """Set the limit (0 or None = none) and, if given, the headroom; evicts to fit."""
        limit = _config.parse_size(limit or 0, "limit")
        if headroom is None:
            headroom = self.memory_info().headroom
        headroom = _config.parse_size(headroom, "headroom")
        errors.check(_L.vs_device_set_limit(self._h(), limit, headroom), "vs_device_set_limit")

    def _evicting(self, fn, name, nbytes):
        nbytes = _config.parse_size(nbytes, "bytes")
        freed = ctypes.c_uint64()
        st = fn(self._h(), nbytes, _byref(freed))
        if st:
            e = errors.error(st, "%s(%d)" % (name, nbytes))
            e.freed = freed.value  # what was evicted before giving up
            raise e
        return freed.value

    def reclaim(self, nbytes):
        """Make `nbytes` available, evicting least important pages first; returns
        the bytes released. OutOfMemoryError (with ``.freed``) if it fell short."""
        return self._evicting(_L.vs_device_reclaim, "vs_device_reclaim", nbytes)

    def free_memory(self, nbytes):
        """Evict `nbytes` from the VBARs, least important first, regardless of
        what is free; returns the bytes released."""
        return self._evicting(_L.vs_device_free_memory, "vs_device_free_memory", nbytes)

    def reset_floors(self):
        errors.check(_L.vs_device_reset_floors(self._h()), "vs_device_reset_floors")

    # ------------------------------------------------------------ statistics

    def stats(self):
        s = _lib.vs_stats()
        errors.check(_L.vs_device_get_stats(self._h(), _byref(s)), "vs_device_get_stats")
        return Stats._from_struct(s)

    def reset_stats(self):
        errors.check(_L.vs_device_reset_stats(self._h()), "vs_device_reset_stats")

    def check(self):
        """Check every invariant (InternalError, with the broken one in the log)."""
        errors.check(_L.vs_device_check_invariants(self._h()), "vs_device_check_invariants")

    def dump(self):
        """A readable report: budget, VBARs in priority order, residency maps."""
        h = self._h()
        need = ctypes.c_size_t()
        errors.check(_L.vs_device_dump(h, None, 0, _byref(need)), "vs_device_dump")
        while True:
            cap = need.value + 1
            buf = ctypes.create_string_buffer(cap)
            errors.check(_L.vs_device_dump(h, buf, cap, _byref(need)), "vs_device_dump")
            if need.value < cap:
                return buf.value.decode("utf-8", "replace")

    # ------------------------------------------------------------ objects

    def vbar(self, size):
        """Reserve a VBAR of `size` bytes (rounded up to the page size); it
        becomes the most important one."""
        return VBAR(self, size)

    def scratch(self, max_size, size=0):
        return ScratchBuffer(self, max_size, size)

    def host_buffer(self, max_size, size=0):
        return HostBuffer(self, max_size, size)

    def stream(self):
        return Stream(self)

    def event(self):
        return Event(self)

    def memcpy(self, dst, src, size=None, kind=None, stream=0):
        """Asynchronous copy in stream order. `dst`/`src`: addresses (ints),
        Allocation, ScratchBuffer, HostBuffer, or writable host buffer objects
        (bytearray, memoryview, numpy array; keep them alive until the stream
        has passed the copy). `kind`: "h2d", "d2h", "d2d" or a CopyKind;
        inferred when neither operand is a raw address. `size` defaults to the
        smaller operand."""
        d, d_host, _keep_d = _copy_end(dst, "dst")
        s, s_host, _keep_s = _copy_end(src, "src")
        k = _copy_kind(kind, d_host, s_host)
        if size is None:
            sizes = [n for n in (_nbytes(dst), _nbytes(src)) if n is not None]
            if not sizes:
                raise errors.invalid_argument("memcpy: size= is needed for raw addresses")
            size = min(sizes)
        errors.check(_L.vs_memcpy_async(self._h(), int(k), d, s, size, stream_handle(stream)),
                     "vs_memcpy_async(%s, %d bytes)" % (k.name, size))

    def synchronize(self, stream=0):
        """Wait for `stream` (default: the backend's default stream)."""
        errors.check(_L.vs_stream_synchronize(self._h(), stream_handle(stream)),
                     "vs_stream_synchronize")

    def children(self):
        """Objects open on this device, oldest first."""
        with LOCK:
            return [c for _, c in sorted(self._children.items(), key=lambda kv: kv[0])]

    # ------------------------------------------------------------ lifetime

    def close(self):
        """Close every object still open on the device (newest first), then the
        device. BusyError, with nothing closed, if one of them cannot be closed."""
        global _default
        with LOCK:
            if self._handle is None:
                return
            kids = self.children()
            for c in kids:
                c._check_closable()
            for c in reversed(kids):
                c.close()
            super().close()
            if _default is self:
                _default = None

    def _close_at_exit(self):
        with LOCK:
            if self._handle is None:
                return
            for c in reversed(self.children()):
                try:
                    c.close()
                except errors.VramswapError as e:
                    _log.logger.warning("%r left open at exit: %s", c, e)
            if self._children:
                return  # Note [Python object lifetime]: leave the device open
            Resource.close(self)

    def _describe(self):
        p = self._props
        return "%s:%d %r page_size=%d" % (p.backend, p.ordinal, p.name, p.page_size)


# ---------------------------------------------------------------- open diagnostics

def _hook_engine():
    """DeviceProps' extra fields from vs_hook_engine_info."""
    available = ctypes.c_int(0)
    desc = ctypes.create_string_buffer(256)
    errors.check(_L.vs_hook_engine_info(_byref(available), desc, len(desc)), "vs_hook_engine_info")
    return {"hook_engine": bool(available.value),
            "hook_engine_detail": desc.value.decode("utf-8", "replace")}


def _unavailable_gpu_backends():
    """"name: why" for each compiled-in GPU backend without a device."""
    out = []
    for b in backends():
        if b.name != "sim" and not (b.available and b.device_count):
            out.append("%s: %s" % (b.name, b.why or "no device"))
    return out


def _warn_sim_fallback(ordinal):
    """backend "auto" found no GPU and opened the simulated device (CPU memory):
    say so loudly, since a user expecting a GPU would otherwise not notice."""
    why = _unavailable_gpu_backends()
    _log.logger.warning("no GPU backend has a device (%s); backend 'auto' fell back to "
                        "the simulated device sim:%d, which uses CPU memory",
                        "; ".join(why) if why else "none compiled into this library", ordinal)


def _open_error(status, backend, ordinal):
    """The exception for a failed vs_device_open, with the backend's reason
    (e.g. "libcuda.so.1 not found") when a backend was named."""
    what = "vs_device_open(%r, %d)" % (backend or "auto", ordinal)
    try:
        infos = {b.name: b for b in backends()}
    except errors.VramswapError:  # pragma: no cover - the probe itself failed
        infos = {}
    if backend in (None, "auto"):
        why = _unavailable_gpu_backends() if infos else []
        if why:
            what += " [%s]" % "; ".join(why)
    elif backend not in infos:
        what += " [no backend %r in this library; it has %s]" % (backend, ", ".join(sorted(infos)))
    else:
        b = infos[backend]
        if not b.available:
            what += " [backend %s unavailable: %s]" % (backend, b.why or "no reason given")
        elif ordinal >= b.device_count:
            what += " [backend %s has %d device(s)]" % (backend, b.device_count)
    return errors.error(status, what)


# ---------------------------------------------------------------- default device

_default = None


def init(**config):
    """Open the process's default device and return it.

    Keys: backend, device (ordinal), limit, headroom, page_size, mem_poll_ns,
    intercept, log. Unset keys come from VRAMSWAP_CONF (read by the library),
    then the defaults. Calling init() again while the default device is open
    returns it when no keys are given and raises BusyError otherwise."""
    global _default
    options = _config.validate(config)
    with LOCK:
        if _default is not None and not _default.closed:
            if options:
                raise errors.busy("vramswap.init: the default device is already open "
                                  "(%r); call vramswap.shutdown() first" % _default)
            return _default
        backend = options.pop("backend", None)
        ordinal = options.pop("device", 0)
        _default = Device(backend, ordinal, **options)
        return _default


def default_device():
    """The device opened by init(); raises if there is none."""
    d = _default
    if d is None or d.closed:
        raise errors.NoDeviceError(_lib.CONSTANTS["VS_ERR_NO_DEVICE"],
                                   "no default device: call vramswap.init() first")
    return d


def current_device():
    """The default device, opened with init() (VRAMSWAP_CONF, then the
    defaults: backend "auto") on first use, as torch.cuda initialises lazily.
    Module-level functions (memory_stats, memory_summary) use it."""
    d = _default
    if d is not None and not d.closed:
        return d
    return init()


def is_initialized():
    d = _default
    return d is not None and not d.closed


def shutdown():
    """Close the default device (and what is open on it); a no-op if none."""
    global _default
    with LOCK:
        if _default is not None:
            _default.close()  # clears _default; stays set if close() raises
        _default = None


def devices():
    """Every open Device, oldest first."""
    return live_devices()
