"""comfy_aimdo.torch: tensors over VBAR ranges and host buffers, no copies.

``aimdo_to_tensor((vbar, address, size), device)`` is a uint8 tensor over the
range on `device` (CUDA/HIP through __cuda_array_interface__, Intel XPU through
DLPack kDLOneAPI, the simulator's CPU memory directly: vramswap.torch.as_tensor
chooses). The range must stay pinned while the tensor is used.
"""

from __future__ import annotations

import ctypes
import logging

import torch

from . import control

log = logging.getLogger("comfy_aimdo")


def aimdo_to_tensor(alloc, device):
    """A uint8 tensor over an allocation's range (no copy). ComfyUI calls this
    for every layer on every step, and wrapping a pointer through
    __cuda_array_interface__ costs ten microseconds or more (torch asks the
    driver about the pointer), so the tensor of each (range, device) is made
    once, at its first call -- which comes after a successful fault, when the
    range is mapped -- and kept on the VBAR object. The VBAR's addresses never
    move; an evicted and refaulted range is the same memory to the tensor."""
    from vramswap import torch as vt
    vbar, address, size = alloc
    key = (int(address), int(size), str(device))
    try:
        cache = vbar.__dict__.setdefault("_aimdo_tensors", {})
    except AttributeError:   # not our ModelVBAR: nothing to keep it on
        cache = {}
    t = cache.get(key)
    if t is None:
        t = cache[key] = vt.as_tensor(key[0], torch.uint8, device=torch.device(device), nbytes=key[1])
    return t


def hostbuf_to_tensor(hostbuf):
    """A uint8 CPU tensor over the host buffer's current size (it does not keep
    the buffer alive: ComfyUI stores the buffer beside the tensor)."""
    n = hostbuf.size
    if n == 0:
        return torch.empty(0, dtype=torch.uint8)
    arr = (ctypes.c_uint8 * n).from_address(hostbuf.get_raw_address())
    return torch.frombuffer(arr, dtype=torch.uint8)


def get_torch_allocator():
    """None: vramswap sees PyTorch's allocations at the driver (interception),
    so no pluggable allocator is needed or offered."""
    log.info("comfy_aimdo (vramswap): no pluggable allocator; allocations are "
             "intercepted at the driver")
    return None


__all__ = ["aimdo_to_tensor", "hostbuf_to_tensor", "get_torch_allocator", "control"]
