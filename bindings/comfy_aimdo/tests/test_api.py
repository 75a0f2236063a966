"""The comfy_aimdo API as ComfyUI relies on it (names, signatures, return
conventions, error behaviour), on the simulated device."""

import ctypes
import gc
import logging
import os

import pytest
import torch

import vramswap
from vramswap import sim

import comfy_aimdo.control as control
import comfy_aimdo.host_buffer as host_buffer
import comfy_aimdo.model_mmap as model_mmap
import comfy_aimdo.model_vbar as mv
import comfy_aimdo.torch as at
import comfy_aimdo.vram_buffer as vram_buffer

MiB = 1 << 20
CPU = torch.device("cpu")


# ------------------------------------------------------------------ control

def test_init_without_gpu_backend_returns_false_not_sim():
    gpu = [b for b in vramswap.backends()
           if b.name in ("cuda", "hip", "level_zero") and b.available and b.device_count]
    assert control.init() is bool(gpu)        # never the simulator by itself
    assert (control.detect_vendor() is None) is (not gpu)
    control.deinit()
    assert control.init(implementation="no-such-gpu") is False
    assert control.lib is None


def test_import_without_the_library(tmp_path):
    """ComfyUI imports every comfy_aimdo module at start-up, dynamic VRAM or
    not: without a loadable libvramswap the imports work and init() is False."""
    import subprocess
    import sys
    code = ("import comfy_aimdo.control as c, comfy_aimdo.model_vbar, comfy_aimdo.torch, "
            "comfy_aimdo.host_buffer, comfy_aimdo.vram_buffer, comfy_aimdo.model_mmap\n"
            "print(c.init(), c.init_devices([0]), c.lib, comfy_aimdo.model_vbar.vbars_analyze(), "
            "c.get_total_vram_usage())\n")
    env = dict(os.environ, VRAMSWAP_LIBRARY=str(tmp_path / "missing.so"))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["False", "False", "None", "0", "0"], p.stdout


def test_init_environment_and_lib(monkeypatch):
    monkeypatch.setenv("COMFY_AIMDO_BACKEND", "sim")
    assert control.lib is None
    assert control.init(simple_vram_headroom=0, nvml_pressure=True) is True
    assert control.lib is not None and control.backend() == "sim"
    assert control.init() is True             # idempotent


def test_init_devices_contract(aimdo):
    assert control.init_devices([]) is False
    with pytest.raises(ValueError):
        control.init_devices([(0, 1, 2)])
    with pytest.raises(ValueError):
        control.init_devices([(0, -1)])
    assert control.init_devices(iter([0])) is True      # plain ints too
    assert control.init_device(0, 0) is True
    with pytest.raises(RuntimeError):
        control.get_devctx(5)
    assert control.get_devctx(0) is control.get_devctx(None)


def test_init_devices_fails_cleanly_for_a_missing_device():
    assert control.init(implementation="sim") is True
    assert control.init_devices([(0, 0), (7, 0)]) is False
    assert control.devctxs == [] and control._devices == {}


def test_headroom_rule(aimdo):
    """max(simple, 256 MiB) + extra."""
    control.init(simple_vram_headroom=300 * MiB)
    control.init_devices([(0, 1 * MiB)])
    assert control.get_devctx(0).memory_info().headroom == 301 * MiB
    control.init(simple_vram_headroom=10 * MiB)
    control.init_devices([(0, 2 * MiB)])
    assert control.get_devctx(0).memory_info().headroom == 258 * MiB
    control.init(simple_vram_headroom=270 * MiB)          # open devices follow
    assert control.get_devctx(0).memory_info().headroom == 272 * MiB


def test_logging_and_usage(aimdo, caplog):
    for name in ("none", "critical", "error", "warning", "info", "debug", "verbose",
                 "vverbose"):
        getattr(control, "set_log_" + name)()
    control.set_log_detail(1)
    control.set_log_none()
    assert control.get_total_vram_usage() == 0
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(MiB)
    assert mv.vbar_fault(a) is not None
    assert control.get_total_vram_usage() >= MiB
    with caplog.at_level(logging.INFO, logger="comfy_aimdo"):
        control.analyze()
    assert any("VBAR" in r.getMessage() or "vbar" in r.getMessage().lower()
               for r in caplog.records)
    mv.vbar_unpin(a)


# ------------------------------------------------------------------ model_vbar

def test_alloc_is_a_512_aligned_bump_allocator(aimdo):
    v = mv.ModelVBAR(10 * MiB, 0)
    a = v.alloc(1000)
    b = v.alloc(3)
    c = v.alloc(513)
    assert a == (v, v.base_addr, 1000)
    assert b[1] - v.base_addr == 1024 and c[1] - v.base_addr == 1536
    assert all(x[1] % 512 == 0 for x in (a, b, c))
    with pytest.raises(MemoryError):
        v.alloc(10 * MiB)


def test_fault_signature_is_a_ctypes_uint32_array(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(300 << 10)
    s1 = mv.vbar_fault(a)
    assert isinstance(s1, ctypes.Array) and s1._type_ is ctypes.c_uint32
    s2 = mv.vbar_fault(a)
    assert mv.vbar_signature_compare(s1, s2)
    mv.vbar_unpin(a)
    mv.vbar_unpin(a)
    assert v.free_memory(8 * MiB) > 0                 # evicted ...
    assert v.loaded_size() == 0
    v.prioritize()                                    # lifts the watermark the eviction set
    s3 = mv.vbar_fault(a)                             # ... and mapped anew
    assert s3 is not None
    assert not mv.vbar_signature_compare(s1, s3)
    assert not mv.vbar_signature_compare(None, s3)
    assert not mv.vbar_signature_compare(s3, None)
    with pytest.raises(ValueError):
        mv.vbar_signature_compare(s3, (ctypes.c_uint32 * 3)())
    mv.vbar_unpin(a)


def test_not_resident_is_none_and_watermark(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(MiB)
    v.set_watermark(0)                  # faults above the watermark fail fast
    assert v.get_watermark() == 0
    assert mv.vbar_fault(a) is None
    v.prioritize()                      # clears it
    assert mv.vbar_fault(a) is not None
    mv.vbar_unpin(a)


def test_nested_pins_and_unpin_contract(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(100 << 10)
    b = v.alloc(600 << 10)
    span = (v, a[1], b[1] + b[2] - a[1])      # ComfyUI's own (vbar, start, span)
    assert mv.vbar_fault(a) is not None
    assert mv.vbar_fault(span) is not None
    mv.vbar_unpin(span)
    assert v.get_residency()[0] == mv.RESIDENT | mv.PINNED   # a's pin remains
    mv.vbar_unpin(a)
    assert all(f & mv.PINNED == 0 for f in v.get_residency())
    mv.vbar_unpin(a)                    # not pinned: no error
    mv.vbar_unpin(span)
    mv.vbar_unpin(None)
    assert v.get_nr_pages() == len(v.get_residency())


def test_del_releases_pins(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(MiB)
    for _ in range(3):
        assert mv.vbar_fault(a) is not None
    assert mv.vbars_analyze() == 0             # pinned pages cannot be reclaimed
    b = v.alloc(MiB)
    assert mv.vbar_fault(b) is not None
    mv.vbar_unpin(b)
    assert mv.vbars_analyze() >= MiB
    del v, a, b
    gc.collect()
    assert mv.vbars_analyze() == 0
    assert control.get_devctx(0).children() == []


def test_transient_not_ready_is_retried_not_raised(aimdo):
    dev = control.get_devctx(0)
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(MiB)
    sim.inject("set_access", count=3, error="VS_ERR_NOT_READY")
    assert mv.vbar_fault(a) is not None               # the core retried
    assert dev.stats().transient_retries >= 3
    mv.vbar_unpin(a)
    v.free_memory(8 * MiB)
    v.prioritize()
    sim.inject("set_access", count=10000, error="VS_ERR_NOT_READY")
    assert mv.vbar_fault(a) is None                   # streamed, not "Fault failed: 2"
    sim.inject_clear(0)
    assert mv.vbar_fault(a) is not None
    mv.vbar_unpin(a)


def test_driver_failure_streams_and_argument_errors_raise(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(MiB)
    sim.inject("map", count=100, error="VS_ERR_BACKEND")
    assert mv.vbar_fault(a) is None                   # nothing pinned: streamed
    sim.inject_clear(0)
    assert all(f & mv.PINNED == 0 for f in v.get_residency())
    with pytest.raises(RuntimeError):                 # ComfyUI catches RuntimeError
        v.fault(v.base_addr + 64 * MiB, 10)


def test_watermark_limit_and_reset(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(2 * MiB)
    assert mv.vbar_fault(a) is not None
    mv.vbar_unpin(a)
    v.set_watermark_limit(MiB)
    assert v._vbar.floor == MiB
    v.free_memory(8 * MiB)
    assert v.loaded_size() >= MiB                      # the floor stayed
    assert v.loaded_size() < 2 * MiB
    mv.vbars_reset_watermark_limits()
    assert v._vbar.floor == 0
    v.free_memory(8 * MiB)
    assert v.loaded_size() == 0


def test_priorities(aimdo):
    old = mv.ModelVBAR(8 * MiB, 0)
    new = mv.ModelVBAR(8 * MiB, 0)
    ao, an = old.alloc(MiB), new.alloc(MiB)
    for x in (ao, an):
        assert mv.vbar_fault(x) is not None
        mv.vbar_unpin(x)
    new.deprioritize()                                  # evicted first now
    control.get_devctx(0).free_memory(MiB)
    assert new.loaded_size() == 0 and old.loaded_size() == MiB


def test_aimdo_to_tensor_is_zero_copy(aimdo):
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(4096)
    assert mv.vbar_fault(a) is not None
    t = at.aimdo_to_tensor(a, CPU)
    assert t.dtype == torch.uint8 and t.numel() == 4096
    t.fill_(7)
    assert at.aimdo_to_tensor(a, "cpu")[100].item() == 7
    # Made once per range and device (the per-layer path): the same object again,
    # and a range ComfyUI builds over two allocations gets its own tensor.
    assert at.aimdo_to_tensor(a, "cpu") is at.aimdo_to_tensor(a, "cpu")
    b = v.alloc(4096)
    assert mv.vbar_fault(b) is not None
    both = (v, a[1], b[1] + b[2] - a[1])
    tb = at.aimdo_to_tensor(both, "cpu")
    assert tb.numel() == both[2] and tb.data_ptr() == t.data_ptr() and tb[100].item() == 7
    mv.vbar_unpin(b)
    mv.vbar_unpin(a)
    assert at.get_torch_allocator() is None


# ------------------------------------------------------------------ buffers

def test_vram_buffer(aimdo):
    b = vram_buffer.VRAMBuffer(4 * MiB, 0)
    assert b.size() == 0
    _, addr, n = b.get(100, offset=1000)
    assert addr == b.base_addr + 1000 and n == 100 and b.size() >= 1100
    with pytest.raises(RuntimeError):
        b.get(4 * MiB, 1)
    del b


def test_host_buffer_extend_truncate_and_tensor(aimdo):
    h = host_buffer.HostBuffer(0, max_grow_size=2 * MiB)
    assert h.size == 0 and at.hostbuf_to_tensor(h).numel() == 0
    h.extend(1000)
    h.extend(size=24, register=False)
    assert h.size == 1024
    t = at.hostbuf_to_tensor(h)
    t[:] = torch.arange(1024) % 251
    with pytest.raises(RuntimeError):
        h.extend(4 * MiB)                   # ComfyUI catches RuntimeError and steals a pin
    h.register(0, 1024)
    h.unregister(512)
    h.truncate(512, do_unregister=False)
    assert h.size == 512
    assert bytes(at.hostbuf_to_tensor(h)[:5].tolist()) == bytes(range(5))
    del t
    h.close()


def test_placeholder_host_buffer_cannot_grow(aimdo):
    """ComfyUI's placeholder HostBuffer(0, 0, 0): extend raises RuntimeError
    (caught there), as comfy-aimdo's does; a sized one grows to its maximum."""
    h = host_buffer.HostBuffer(0, 0, 0)
    assert h.size == 0
    with pytest.raises(RuntimeError):
        h.extend(4096)
    assert h.size == 0
    h.close()
    h = host_buffer.HostBuffer(MiB, 0, 3 * MiB)
    assert h.size == MiB
    h.extend(2 * MiB)
    assert h.size == 3 * MiB
    h.close()


def test_read_file_slice_to_host_and_device(aimdo, tmp_path):
    data = os.urandom(700 << 10)
    p = tmp_path / "w.bin"
    p.write_bytes(data)
    h = host_buffer.HostBuffer(0, max_grow_size=2 * MiB)
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(300 << 10)
    assert mv.vbar_fault(a) is not None
    with open(p, "rb") as f:
        h.read_file_slice(f, 1000, 300 << 10, offset=0)
        assert bytes(at.hostbuf_to_tensor(h)[:300 << 10].numpy()) == data[1000:1000 + (300 << 10)]
        h.read_file_slice(f.fileno(), 5000, 300 << 10, offset=300 << 10, stream=0,
                          device_ptr=a[1], device=0)
    control.get_devctx(0).synchronize()
    assert bytes(at.aimdo_to_tensor(a, CPU).numpy()) == data[5000:5000 + (300 << 10)]
    mv.vbar_unpin(a)
    h.close()


def test_read_file_to_device_through_the_ring(aimdo, tmp_path, monkeypatch):
    monkeypatch.setattr(host_buffer, "RING_CHUNK", 64 << 10)   # several refills
    data = os.urandom(600 << 10)
    p = tmp_path / "w.bin"
    p.write_bytes(data)
    v = mv.ModelVBAR(8 * MiB, 0)
    a = v.alloc(500 << 10)
    assert mv.vbar_fault(a) is not None
    with open(p, "rb") as f:
        host_buffer.read_file_to_device(f, 100, 500 << 10, 0, a[1], 0)
    control.get_devctx(0).synchronize()
    assert bytes(at.aimdo_to_tensor(a, CPU).numpy()) == data[100:100 + (500 << 10)]
    with open(p, "rb") as f, pytest.raises(RuntimeError):
        host_buffer.read_file_to_device(f, len(data) - 10, 100, 0, a[1], 0)   # short file
    mv.vbar_unpin(a)
    host_buffer.cleanup_file_reader()


def test_model_mmap(aimdo, tmp_path):
    data = os.urandom(100000)
    p = tmp_path / "m.bin"
    p.write_bytes(data)
    m = model_mmap.ModelMMAP(p)
    assert ctypes.string_at(m.get(), len(data)) == data
    assert os.fstat(m.get_file_handle()).st_size == len(data)
    assert m.bounce() is True
    assert ctypes.string_at(m.get() + 500, 10) == data[500:510]
    m.close()
    with pytest.raises(RuntimeError):
        model_mmap.ModelMMAP(tmp_path / "missing.bin")


def test_model_mmap_needs_init():
    with pytest.raises(RuntimeError):
        model_mmap.ModelMMAP(__file__)


# ------------------------------------------------------------------ DLPack (XPU path)

def test_dlpack_capsule_wraps_memory_without_copy():
    """The capsule vramswap.torch uses for Level Zero (kDLOneAPI) memory, made
    here with kDLCPU so CPU torch can consume it."""
    from vramswap import _dlpack
    buf = (ctypes.c_uint8 * 64)(*range(64))
    t = _dlpack.tensor(ctypes.addressof(buf), 64, _dlpack.KDL_CPU)
    assert t.tolist() == list(range(64))
    t[3] = 200
    assert buf[3] == 200
    del t
    gc.collect()
    assert _dlpack._live == {}


def test_torch_device_of_level_zero_is_xpu():
    import vramswap.torch as vt

    class FakeDevice:
        backend, ordinal = "level_zero", 1
    assert vt.torch_device(FakeDevice()) == torch.device("xpu", 1)
