"""comfy_aimdo.model_mmap: a checkpoint file mapped read-only into memory.

``get()`` is the mapping's address, ``get_file_handle()`` the file descriptor
(for HostBuffer.read_file_slice), ``bounce()`` drops the mapping's resident
pages (they are read again from the page cache or disk on next use)."""

from __future__ import annotations

import ctypes
import mmap
import os

from . import control


class ModelMMAP:
    def __init__(self, filepath):
        if control.lib is None:
            raise RuntimeError("comfy-aimdo is not initialized")
        self._fd = -1
        self._map = None
        try:
            self._fd = os.open(os.fspath(filepath), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            size = os.fstat(self._fd).st_size
            # ACCESS_COPY (private, copy-on-write) so ctypes can take the address;
            # nothing ever writes through it.
            self._map = mmap.mmap(self._fd, size, access=mmap.ACCESS_COPY) if size else None
        except OSError as e:
            self.close()
            raise RuntimeError("ModelMMAP allocation failed for %s: %s" % (filepath, e)) from e
        self.size = size
        if self._map is not None:
            anchor = ctypes.c_char.from_buffer(self._map)
            self._addr = ctypes.addressof(anchor)
            del anchor  # release the export, so close() can unmap
        else:
            self._addr = 0

    def get(self):
        return self._addr

    def get_file_handle(self):
        return self._fd

    def bounce(self):
        if self._map is None:
            return True
        try:
            self._map.madvise(mmap.MADV_DONTNEED)
        except (AttributeError, OSError, ValueError):
            return False
        return True

    def close(self):
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
