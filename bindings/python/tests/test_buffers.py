"""Scratch buffers, host buffers and their memory views."""

import gc

import pytest

import vramswap

M = 1 << 20


def test_scratch_resize_and_budget(dev, page):
    with dev.scratch(8 * page) as s:
        ptr = s.ptr
        assert s.size == 0 and s.max_size == 8 * page
        s.resize(3 * page - 1)
        assert s.size == 3 * page - 1
        assert dev.memory_info().used_scratch == 3 * page
        s.resize(8 * page)
        assert s.ptr == ptr                      # the address never moves
        s.resize(0)
        assert dev.memory_info().used_scratch == 0
        with pytest.raises(ValueError):             # past max_size
            s.resize(9 * page)
        assert "ScratchBuffer" in repr(s)


def test_scratch_initial_size_and_oom(dev, page):
    dev.set_limit(4 * page)
    with dev.scratch(8 * page, size=2 * page) as s:
        assert s.size == 2 * page
        with pytest.raises(vramswap.OutOfMemoryError):
            s.resize(8 * page)
        assert s.size == 2 * page                # nothing new stays mapped
        assert dev.memory_info().used_scratch == 2 * page
    with pytest.raises(vramswap.OutOfMemoryError):
        dev.scratch(8 * page, size=8 * page)
    dev.set_limit(0)


def test_scratch_growth_evicts_weights(dev, page):
    dev.set_limit(4 * page)
    with dev.vbar(4 * page) as v, dev.scratch(4 * page) as s:
        assert v.fault(0, 4 * page) is not None
        v.unpin(0, 4 * page)
        s.resize(2 * page)
        assert v.loaded_size == 2 * page
    dev.set_limit(0)


def test_host_buffer_view_and_growth(dev):
    with dev.host_buffer(4 * M, size=4096) as h:
        assert h.size == len(h) == 4096 and h.max_size >= 4 * M
        ptr = h.ptr
        with h.buffer() as view:
            assert view.format == "B" and view.nbytes == 4096 and not view.readonly
            view[:5] = b"hello"
        h.resize(2 * M)                            # grow: contents survive
        assert h.ptr == ptr
        with h.buffer() as view:
            assert bytes(view[:5]) == b"hello"
            assert view.nbytes == 2 * M
        assert dev.stats().cur_host_registered >= 2 * M
        h.resize(4096)


def test_host_buffer_refuses_close_or_shrink_with_live_views(dev):
    h = dev.host_buffer(M, size=8192)
    view = h.buffer()
    part = view[10:20]                             # a derived view keeps it alive too
    view.release()
    assert h.live_views() == 1
    with pytest.raises(vramswap.BusyError):
        h.resize(4096)
    with pytest.raises(vramswap.BusyError):
        h.close()
    with pytest.raises(vramswap.BusyError):
        dev.close()                                # nothing closed
    assert not h.closed and not dev.closed
    h.resize(16384)                                # growing is fine
    part[0] = 7
    del part
    gc.collect()
    assert h.live_views() == 0
    h.close()
    assert h.closed


def test_view_keeps_buffer_object_alive(dev):
    view = dev.host_buffer(M, size=4096).buffer()
    gc.collect()
    view[0] = 1                                    # the HostBuffer is still alive
    assert len(dev.children()) == 1
    view.release()
    gc.collect()
    assert dev.children() == []                    # collected and destroyed


def test_numpy_over_host_buffer(dev):
    np = pytest.importorskip("numpy")
    with dev.host_buffer(M, size=1024) as h:
        arr = np.frombuffer(h.buffer(), dtype=np.uint32)
        arr[:] = np.arange(256, dtype=np.uint32)
        with pytest.raises(vramswap.BusyError):
            h.close()
        del arr
        gc.collect()
        with h.buffer() as view:
            assert np.frombuffer(view, dtype=np.uint32)[255] == 255


def test_empty_host_buffer_view(dev):
    with dev.host_buffer(M) as h:
        with h.buffer() as view:
            assert view.nbytes == 0
