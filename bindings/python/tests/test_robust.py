"""Argument validation and close races (issue 16, findings 4 and 8): wrong types
are TypeError, integers outside [0, 2**64) OverflowError (never a silent wrap),
sizes past a typed operand ValueError, a close racing other threads ClosedError."""

import ctypes
import threading

import pytest

import vramswap
from vramswap import errors


def test_fault_wrong_type_is_type_error(dev, page):
    with dev.vbar(4 * page) as v:
        with pytest.raises(TypeError, match="offset"):
            v.fault("a", 1)
        with pytest.raises(TypeError, match="size"):
            v.fault(0, 1.5)
        with pytest.raises(TypeError):
            v.unpin(None, 1)


def test_fault_out_of_range_ints_overflow(dev, page):
    with dev.vbar(4 * page) as v:
        with pytest.raises(OverflowError):
            v.fault(2**64, 1)
        with pytest.raises(OverflowError):
            v.fault(0, -1)
        with pytest.raises(OverflowError):
            v.unpin(0, 2**64 + 1)
        assert v.loaded_size == 0


def test_watermark_validated(dev, page):
    with dev.vbar(4 * page) as v:
        with pytest.raises(ValueError):
            v.watermark = "x"
        with pytest.raises(OverflowError):
            v.watermark = 2**64  # wrapped to 0 before: every fault answered None
        assert v.watermark == v.size
        assert v.fault(0, 1) is not None
        v.unpin(0, 1)
        with pytest.raises(TypeError):
            v.floor = 1.0


def test_alloc_align_and_address_overflow(dev, page):
    with dev.vbar(4 * page) as v:
        with pytest.raises(OverflowError):
            v.alloc(16, align=2**64 + 4096)  # used 4096 before
        with pytest.raises(OverflowError):
            v.address(2**64)  # pointed outside the VBAR before
        with pytest.raises(OverflowError):
            v.address(v.size + 1)
        assert v.address(v.size) == v.base + v.size
        assert v.allocated == 0


def test_page_signatures_validates_before_allocating(dev, page):
    with dev.vbar(4 * page) as v:
        with pytest.raises(errors.OutOfRangeError):
            v.page_signatures(0, 2**63)  # allocated 2**63 / page entries before
        with pytest.raises(OverflowError):
            v.page_signatures(0, 2**64)
        assert v.page_signatures(0, page) == [0]


def test_memcpy_size_past_operand_refused(dev, page):
    with dev.vbar(4 * page) as v:
        a = v.alloc(page)
        b = v.alloc(page)
        src = bytearray(64 << 10)
        with v.pinned(0, 2 * page):
            with pytest.raises(ValueError, match="larger than"):
                dev.memcpy(a, src, size=1 << 20)
            with pytest.raises(ValueError, match="larger than"):
                dev.memcpy(src, a, size=len(src) + 1)
            with pytest.raises(OverflowError):
                dev.memcpy(a, src, size=2**64)
            n = min(len(src), page)
            dev.memcpy(a, src, size=n)  # within both operands: fine
            dev.synchronize()
            del b


def test_invalid_handle_after_close_is_closed_error(dev, page):
    v = dev.vbar(4 * page)
    h = v._handle
    v.close()
    # The bindings only pass handles the library gave them: INVALID_HANDLE
    # from the library means "closed meanwhile".
    with pytest.raises(errors.ClosedError):
        errors.check(vramswap._lib.LIB.vs_vbar_prioritize(h), "vs_vbar_prioritize")


def test_close_racing_faults_raises_closed_error():
    from conftest import open_sim
    for _ in range(5):
        d = open_sim()
        v = d.vbar(4 * d.page_size)
        seen = []
        stop = threading.Event()

        def worker():
            while not stop.is_set():
                try:
                    sig = v.fault(0, 1)
                    if sig is not None:
                        v.unpin(0, 1)
                except errors.BusyError:
                    continue
                except Exception as e:  # noqa: BLE001 - recorded and checked below
                    seen.append(e)
                    return

        t = threading.Thread(target=worker)
        t.start()
        while True:
            try:
                d.close()
                break
            except errors.BusyError:
                continue
        stop.set()
        t.join()
        for e in seen:
            assert isinstance(e, errors.ClosedError), repr(e)


def test_no_ctypes_argument_error_leaks(dev, page):
    with dev.vbar(4 * page) as v:
        for call in (lambda: v.fault("a", 1), lambda: v.alloc(16, align="x"),
                     lambda: v.free_memory(object())):
            with pytest.raises((TypeError, ValueError)) as ei:
                call()
            assert not isinstance(ei.value, ctypes.ArgumentError)
