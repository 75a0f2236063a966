"""comfy_aimdo.host_buffer: growable pinned host memory and a file reader.

HostBuffer is a vramswap HostBuffer (address range reserved up front at the
largest size it may grow to, pages pinned for fast copies as it grows).
``read_file_slice`` reads a file range into it with pread and, given a device
pointer, copies it on to the device in stream order; ``read_file_to_device``
streams a file range to device memory through a small double-buffered pinned
bounce ring (Note [File reader ring]).

Differences from comfy-aimdo (docs/comfyui.md): `prewarm` and `mark_cold` are
accepted and have no effect; every byte of a vramswap host buffer is
registered (pinned) while it is part of the buffer, so `register`/`unregister`
and the `register=` / `do_unregister=` flags only check their arguments.
"""

from __future__ import annotations

import ctypes
import os
import threading

from . import control

lib = control.lib

RING_CHUNK = 16 << 20   # bytes per bounce slot of read_file_to_device
RING_SLOTS = 2


def _file_handle(file_obj):
    return file_obj if isinstance(file_obj, int) else file_obj.fileno()


def _pread_into(fd, address, size, file_offset):
    """Read exactly `size` bytes at `file_offset` into host memory at `address`."""
    view = memoryview((ctypes.c_uint8 * size).from_address(address)).cast("B")
    done = 0
    while done < size:
        n = os.preadv(fd, [view[done:]], file_offset + done)
        if n <= 0:
            raise RuntimeError("short read: %d of %d bytes at file offset %d"
                               % (done, size, file_offset))
        done += n


def _device(device):
    if device is None or (isinstance(device, int) and device < 0):
        return control.get_devctx(None)
    return control.get_devctx(device)


class HostBuffer:
    def __init__(self, size, prewarm=0, max_grow_size=0, mark_cold=True):
        size = int(size)
        # max(size, max_grow_size) is all it may ever hold: ComfyUI's placeholder
        # HostBuffer(0, 0, 0) cannot grow (extend raises), as in comfy-aimdo.
        self.max_size = max(size, int(max_grow_size))
        self.size = 0
        self.prewarm = max(0, int(prewarm))
        try:
            dev = control.get_devctx(None)
            self._buf = dev.host_buffer(max(self.max_size, 1))
        except Exception as e:
            raise RuntimeError("HostBuffer allocation failed: %s" % e) from e
        if size:
            self.extend(size)

    def get_raw_address(self):
        return self._buf.ptr

    def extend(self, size, reallocate=False, register=True):
        """Grow by `size` bytes (contents kept, address unchanged); returns the
        buffer's address. RuntimeError when it cannot grow."""
        new = self.size + int(size)
        if new > self.max_size:
            raise RuntimeError("HostBuffer.extend failed: %d bytes > max %d"
                               % (new, self.max_size))
        try:
            self._buf.resize(new)
        except Exception as e:
            raise RuntimeError("HostBuffer.extend failed: %s" % e) from e
        self.size = new
        return self._buf.ptr

    def truncate(self, size, do_unregister=True):
        size = int(size)
        if size < 0 or size > self.size:
            raise RuntimeError("HostBuffer.truncate failed: %d of %d bytes" % (size, self.size))
        try:
            self._buf.resize(size)
        except Exception as e:
            raise RuntimeError("HostBuffer.truncate failed: %s" % e) from e
        self.size = size

    def register(self, offset, size):
        if int(offset) < 0 or int(offset) + int(size) > self.size:
            raise RuntimeError("HostBuffer.register failed: range outside the buffer")

    def unregister(self, offset):
        if int(offset) < 0 or int(offset) > self.size:
            raise RuntimeError("HostBuffer.unregister failed: offset outside the buffer")

    def read_file_slice(self, file_obj, file_offset, size, offset=0, stream=0, device_ptr=0,
                        device=-1):
        """File bytes [file_offset, +size) into the buffer at `offset` (grown
        as needed); then, when `device_ptr` is given, copied on to the device
        on `stream` (the buffer range must stay unchanged until it ran)."""
        size, offset = int(size), int(offset)
        if offset + size > self.size:
            self.extend(offset + size - self.size)
        try:
            _pread_into(_file_handle(file_obj), self._buf.ptr + offset, size, int(file_offset))
            if device_ptr:
                _device(device).memcpy(int(device_ptr), self._buf.ptr + offset, size,
                                       kind="h2d", stream=int(stream or 0))
        except RuntimeError:
            raise
        except Exception as e:
            raise RuntimeError("HostBuffer.read_file_slice failed: %s" % e) from e

    def close(self):
        buf = getattr(self, "_buf", None)
        if buf is not None:
            self._buf = None
            buf.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# Note [File reader ring]: read_file_to_device reads the file in RING_CHUNK
# pieces into RING_SLOTS pinned slots; each slot's device copy records an
# event, and a slot is refilled only after its event completed, so the read of
# one chunk overlaps the copy of the previous one. One ring per device, made on
# first use, released by cleanup_file_reader() (and by control.deinit()).
_rings = {}
_ring_lock = threading.Lock()


class _Ring:
    def __init__(self, dev):
        self.dev = dev
        self.buf = dev.host_buffer(RING_CHUNK * RING_SLOTS, RING_CHUNK * RING_SLOTS)
        self.events = [dev.event() for _ in range(RING_SLOTS)]
        self.used = [False] * RING_SLOTS
        self.next = 0

    def close(self):
        for i, e in enumerate(self.events):
            if self.used[i]:
                e.synchronize()
            e.close()
        self.buf.close()


def read_file_to_device(file_obj, file_offset, size, stream, device_ptr, device, mark_cold=True):
    """Copy file bytes [file_offset, +size) to device memory at `device_ptr`
    in `stream` order; RuntimeError on failure."""
    try:
        dev = _device(device)
        fd = _file_handle(file_obj)
        size, file_offset, device_ptr = int(size), int(file_offset), int(device_ptr)
        stream = int(stream or 0)
        with _ring_lock:
            ring = _rings.get(id(dev))
            if ring is None or ring.dev is not dev:
                ring = _rings[id(dev)] = _Ring(dev)
            done = 0
            while done < size:
                n = min(RING_CHUNK, size - done)
                slot = ring.next
                ring.next = (slot + 1) % RING_SLOTS
                if ring.used[slot]:
                    ring.events[slot].synchronize()
                host = ring.buf.ptr + slot * RING_CHUNK
                _pread_into(fd, host, n, file_offset + done)
                dev.memcpy(device_ptr + done, host, n, kind="h2d", stream=stream)
                ring.events[slot].record(stream)
                ring.used[slot] = True
                done += n
    except RuntimeError:
        raise
    except Exception as e:
        raise RuntimeError("hostbuf_file_reader_read failed: %s" % e) from e


def cleanup_file_reader():
    with _ring_lock:
        for ring in _rings.values():
            try:
                ring.close()
            except Exception:
                pass
        _rings.clear()
