"""comfy_aimdo over vramswap.

A drop-in for comfy-aimdo's Python API (the modules ComfyUI imports:
control, model_vbar, torch, host_buffer, vram_buffer, model_mmap), written
from that API's documented behaviour and from reading ComfyUI's callers, and
implemented over the `vramswap` package. docs/comfyui.md lists what is
implemented and where the semantics differ (transient driver errors are
retried, the watermark regrows, unpinning an unpinned range is a no-op).
"""

__version__ = "0.1.0"
IMPLEMENTATION = "vramswap"
