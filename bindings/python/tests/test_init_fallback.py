"""init() and the default device as a new user meets them (issue 14): the
default device opens lazily; backend "auto" falls back to the simulated device
only with a WARNING; a named backend that cannot open says why; Device.props
says whether the library has the hook engine."""

import ctypes
import logging

import pytest

import vramswap
from vramswap import _lib


@pytest.fixture(autouse=True)
def _shutdown():
    """Close the default device these tests open (the leak check counts it)."""
    yield
    vramswap.shutdown()


def _fallback_warnings(caplog):
    return [r for r in caplog.records if r.name == "vramswap" and r.levelno == logging.WARNING
            and "fell back to the simulated device" in r.getMessage()]


def test_memory_stats_opens_the_default_device_lazily():
    assert not vramswap.is_initialized()
    stats = vramswap.memory_stats()
    assert vramswap.is_initialized(), "memory_stats() did not open the default device"
    d = vramswap.default_device()
    assert stats["memory.total"] == d.memory_info().total > 0
    assert vramswap.current_device() is d
    assert "%s:%d" % (d.backend, d.ordinal) in vramswap.memory_summary()


def test_auto_falls_back_to_sim_only_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="vramswap")
    d = vramswap.init()   # backend "auto"
    warned = _fallback_warnings(caplog)
    if d.backend == "sim":
        assert len(warned) == 1, [r.getMessage() for r in caplog.records]
        msg = warned[0].getMessage()
        for b in vramswap.backends():   # each GPU backend's reason is named
            if b.name != "sim":
                assert b.name in msg, msg
    else:
        assert warned == [], "a GPU device (%s) was opened, yet a fallback was reported" % d.backend


def test_named_sim_backend_does_not_warn(caplog):
    caplog.set_level(logging.WARNING, logger="vramswap")
    vramswap.init(backend="sim")
    assert _fallback_warnings(caplog) == []


def test_named_backend_failure_carries_the_reason():
    unavailable = [b for b in vramswap.backends() if not b.available]
    for b in unavailable:   # e.g. cuda: "libcuda.so.1 not found (...)" on a machine without a GPU
        with pytest.raises(vramswap.VramswapError) as ei:
            vramswap.init(backend=b.name)
        assert b.why and b.why in str(ei.value), (b, str(ei.value))
        assert "backend %s unavailable" % b.name in str(ei.value)
        assert not vramswap.is_initialized()
    with pytest.raises(vramswap.NoDeviceError) as ei:
        vramswap.init(backend="no_such_backend")
    assert "no backend 'no_such_backend' in this library" in str(ei.value)
    assert "sim" in str(ei.value)   # the backends it has are listed
    with pytest.raises(vramswap.NoDeviceError) as ei:
        vramswap.Device("sim", 15)
    assert "backend sim has" in str(ei.value)


def test_props_say_whether_the_hook_engine_is_built_in(dev):
    available = ctypes.c_int(-1)
    desc = ctypes.create_string_buffer(256)
    assert _lib.LIB.vs_hook_engine_info(ctypes.byref(available), desc, len(desc)) == 0
    p = dev.props
    assert p.hook_engine is bool(available.value)
    assert p.hook_engine_detail == desc.value.decode()
    if p.hook_engine:
        assert "Capstone" in p.hook_engine_detail
    else:
        assert p.hook_engine_detail.startswith("left out:")


def test_hook_engine_info_validates_its_arguments():
    avail = ctypes.c_int()
    assert _lib.LIB.vs_hook_engine_info(None, None, 0) == vramswap.Status.ERR_INVALID_ARGUMENT
    assert _lib.LIB.vs_hook_engine_info(ctypes.byref(avail), None, 16) == vramswap.Status.ERR_INVALID_ARGUMENT
    assert _lib.LIB.vs_hook_engine_info(ctypes.byref(avail), None, 0) == 0
