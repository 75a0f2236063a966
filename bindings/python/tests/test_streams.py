"""Streams, events and copies."""

import ctypes

import pytest

import vramswap


def test_stream_and_event(dev):
    with dev.stream() as s, dev.event() as e:
        assert isinstance(s.handle, int) and isinstance(e.handle, int)
        e.record(s)
        e.synchronize()
        assert e.query() is True
        s.wait_event(e)
        s.synchronize()
        e2 = s.record_event()
        e2.synchronize()
        e2.close()
        dev.synchronize()
        dev.synchronize(s)
    assert s.closed and e.closed
    with pytest.raises(vramswap.ClosedError):
        s.synchronize()
    with pytest.raises(vramswap.ClosedError):
        e.query()


def test_memcpy_round_trip_through_a_vbar(dev, page):
    with dev.vbar(2 * page) as v, dev.host_buffer(1 << 20, size=page) as h, dev.stream() as s:
        w = v.alloc(page)
        with h.buffer() as view:
            view[:] = bytes(i % 251 for i in range(page))
        with w.pinned(stream=s):
            dev.memcpy(w, h, stream=s)                       # kind inferred: h2d
            out = bytearray(page)
            dev.memcpy(out, w, stream=s)                     # d2h into a bytearray
            s.synchronize()
            with h.buffer() as view:
                assert out == view
            # Raw addresses need an explicit kind.
            out2 = dev.host_buffer(1 << 20, size=page)
            dev.memcpy(out2.ptr, w.ptr, page, kind="d2h", stream=s.handle)
            s.synchronize()
            with out2.buffer() as view2:
                assert bytes(view2[:16]) == bytes(range(16))
            out2.close()


def test_memcpy_device_to_device(dev, page):
    with dev.vbar(2 * page) as v, dev.scratch(page, size=page) as sc:
        a = v.alloc(page)
        with a.pinned():
            ctypes.memset(a.ptr, 0x5A, page)
            dev.memcpy(sc, a)                                # d2d
            dev.synchronize()
            assert ctypes.string_at(sc.ptr, 8) == b"\x5a" * 8
            dev.memcpy(sc.ptr, a.ptr, 16, kind=vramswap.CopyKind.DEVICE_TO_DEVICE)
            dev.synchronize()


def test_memcpy_rejects(dev, page):
    with dev.host_buffer(1 << 20, size=16) as h:
        with pytest.raises(vramswap.InvalidArgumentError):
            dev.memcpy(h, bytearray(16))                     # host to host
        with pytest.raises(vramswap.InvalidArgumentError):
            dev.memcpy(h, b"read-only bytes")                # not a writable buffer
        with pytest.raises(vramswap.InvalidArgumentError):
            dev.memcpy(1234, 5678)                           # raw, no size, no kind


def test_stream_arguments(dev):
    from vramswap.streams import stream_handle

    class TorchLike:
        cuda_stream = 1234

    assert stream_handle(None) == 0
    assert stream_handle(0) == 0
    assert stream_handle(TorchLike()) == 1234
    with pytest.raises(vramswap.InvalidArgumentError):
        stream_handle("default")
