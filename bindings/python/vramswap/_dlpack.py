"""Tensors over raw device memory through DLPack (no copy).

Used for Intel GPUs: PyTorch's XPU tensors cannot be made from
__cuda_array_interface__, but torch.utils.dlpack.from_dlpack accepts a
DLManagedTensor whose device is kDLOneAPI (Level Zero USM/VA memory).

Note [DLPack capsules]: the DLManagedTensor and its shape array are ctypes
objects kept in `_live` until the consumer calls the deleter (torch does when
the tensor's storage dies), so they outlive the tensor exactly. The memory
itself is not owned: as with every vramswap tensor view, a VBAR range must
stay pinned while the tensor is used. The device-type codes are DLPack's ABI
(dlpack.h, DLDeviceType), not vramswap constants.
"""

from __future__ import annotations

import ctypes

KDL_CPU = 1
KDL_CUDA = 2
KDL_ONEAPI = 14
_KDL_UINT = 1


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_DLManagedTensor))
_DLManagedTensor._fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                             ("deleter", _DELETER)]

_live = {}   # address of a DLManagedTensor -> (it, its shape array)   Note [DLPack capsules]


@_DELETER
def _deleter(managed):
    _live.pop(ctypes.addressof(managed.contents), None)


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_NAME = b"dltensor"


def capsule(address, nbytes, device_type, device_id=0):
    """A "dltensor" capsule of a 1-D uint8 array of `nbytes` at `address`."""
    shape = (ctypes.c_int64 * 1)(nbytes)
    m = _DLManagedTensor()
    m.dl_tensor.data = address
    m.dl_tensor.device = _DLDevice(device_type, device_id)
    m.dl_tensor.ndim = 1
    m.dl_tensor.dtype = _DLDataType(_KDL_UINT, 8, 1)
    m.dl_tensor.shape = shape
    m.dl_tensor.strides = None
    m.dl_tensor.byte_offset = 0
    m.deleter = _deleter
    key = ctypes.addressof(m)
    _live[key] = (m, shape)
    return _capsule_new(key, _NAME, None), key


def tensor(address, nbytes, device_type, device_id=0):
    """A torch uint8 tensor over the memory (torch.utils.dlpack.from_dlpack)."""
    from torch.utils import dlpack
    cap, key = capsule(address, nbytes, device_type, device_id)
    try:
        return dlpack.from_dlpack(cap)
    except BaseException:
        _live.pop(key, None)   # not consumed: the deleter will never run
        raise


def oneapi_tensor(address, nbytes, device_id=0):
    """An XPU tensor over Level Zero memory (kDLOneAPI)."""
    return tensor(address, nbytes, KDL_ONEAPI, device_id)
