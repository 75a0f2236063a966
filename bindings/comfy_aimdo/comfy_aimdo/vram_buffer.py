"""comfy_aimdo.vram_buffer: growable device scratch memory (vramswap
ScratchBuffer: address range reserved up front, mapped as it grows, counted in
the device budget). ComfyUI uses it for layers that could not be faulted."""

from __future__ import annotations

from . import control

lib = control.lib


class VRAMBuffer:
    def __init__(self, max_size, device):
        dev = control.get_devctx(device)
        self.device = device
        self.max_size = int(max_size)
        try:
            self._buf = dev.scratch(self.max_size)
        except Exception as e:
            raise RuntimeError("VRAM reservation failed: %s" % e) from e
        self.base_addr = self._buf.ptr

    def size(self):
        return self._buf.size

    def get(self, size, offset=0):
        """(self, address, size) of [offset, offset+size), growing the buffer
        to cover it; RuntimeError when it cannot grow."""
        size, offset = int(size), int(offset)
        need = size + offset
        if need > self.max_size:
            raise RuntimeError("VRAM grow failed: %d bytes > max %d" % (need, self.max_size))
        if need > self._buf.size:
            try:
                self._buf.resize(need)
            except Exception as e:
                raise RuntimeError("VRAM grow failed: %d bytes: %s" % (need, e)) from e
        return (self, self.base_addr + offset, size)

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
