"""VBARs: sub-allocation, fault/unpin, signatures, priorities, watermark, floor."""

import ctypes
import threading

import pytest

import vramswap
from vramswap import PageFlags


def test_geometry(dev, page):
    with dev.vbar(3 * page + 1) as v:
        assert v.size == 4 * page
        assert v.page_size == page and v.page_count == 4
        assert v.base != 0 and v.address(page) == v.base + page
        assert v.device is dev
        assert "VBAR" in repr(v)
    assert "closed" in repr(v)


def test_alloc_in_increasing_offsets(dev, page):
    with dev.vbar(4 * page) as v:
        a = v.alloc(1000)
        b = v.alloc(page, align=page)
        c = v.alloc(10, align=4096)
        assert a.offset == 0 and a.size == 1000
        assert b.offset == page
        assert c.offset == 2 * page and c.offset % 4096 == 0
        assert v.allocated >= c.offset + 10
        assert a.ptr == v.base
        assert b == vramswap.Allocation(v, page, page)
        assert hash(b) == hash(vramswap.Allocation(v, page, page))
        with pytest.raises(vramswap.InvalidArgumentError):
            v.alloc(10, align=3)
        with pytest.raises(vramswap.OutOfMemoryError):
            v.alloc(4 * page)


def test_fault_signature_and_unpin(dev, page):
    with dev.vbar(4 * page) as v:
        w = v.alloc(2 * page)
        sig = w.fault()
        assert isinstance(sig, int) and sig > 0
        assert v.residency() == bytes([PageFlags.RESIDENT | PageFlags.PINNED] * 2 + [0, 0])
        assert w.fault() == sig          # nested pin, nothing remapped
        w.unpin()
        w.unpin()
        with pytest.raises(vramswap.NotPinnedError):
            w.unpin()
        assert v.residency(flags=True) == [PageFlags.RESIDENT] * 2 + [PageFlags(0)] * 2
        assert v.loaded_size == 2 * page
        sigs = v.page_signatures()
        assert len(sigs) == 4 and max(sigs[:2]) == sig and sigs[2:] == [0, 0]
        assert w.signatures() == sigs[:2]
        # Evict the second page: the watermark drops to it and faults that need
        # it fail fast until the VBAR is prioritized again.
        assert v.free_memory(page) == page
        assert v.watermark == page
        assert w.fault() is None
        v.prioritize()
        sig2 = w.fault()                 # remapped: the signature changes
        assert sig2 is not None and sig2 != sig and sig2 > sig
        w.unpin()


def test_pinned_context_manager(dev, page):
    with dev.vbar(2 * page) as v:
        w = v.alloc(page)
        with w.pinned() as sig:
            assert sig
            assert v.residency()[0] & PageFlags.PINNED
        assert not v.residency()[0] & PageFlags.PINNED
        with v.pinned(0, page, stream=0) as sig2:
            assert sig2 == sig
        with pytest.raises(RuntimeError):
            with w.pinned():
                raise RuntimeError("unpins anyway")
        assert not v.residency()[0] & PageFlags.PINNED


def test_not_resident_when_room_cannot_be_made(dev, page):
    dev.set_limit(4 * page)
    with dev.vbar(4 * page) as low, dev.vbar(4 * page) as high:
        # `high` is newer: more important. Pin all of `low` (budget full).
        assert low.fault(0, 4 * page) is not None
        # high cannot evict pinned pages: not resident, nothing pinned.
        assert high.fault(0, page) is None
        with high.alloc(page).pinned() as sig:
            assert sig is None
        assert not any(b & PageFlags.PINNED for b in high.residency())
        low.unpin(0, 4 * page)
        # Now high takes low's pages (least important first: low's highest).
        assert high.fault(0, 2 * page) is not None
        assert low.residency(flags=True)[2:] == [PageFlags(0)] * 2
        assert low.watermark == 2 * page
        high.unpin(0, 2 * page)
    dev.set_limit(0)


def test_watermark_fast_fail_and_prioritize(dev, page):
    dev.set_limit(4 * page)
    with dev.vbar(4 * page) as v:
        assert v.watermark == v.size            # none
        assert v.fault(0, 4 * page) is not None
        v.unpin(0, 4 * page)
        v.free_memory(2 * page)
        assert v.watermark == 2 * page
        before = dev.stats().fault_fast_fails
        assert v.fault(3 * page, page) is None  # above the watermark: fails fast
        assert dev.stats().fault_fast_fails == before + 1
        assert v.fault(0, page) is not None     # resident pages below are fine
        v.unpin(0, page)
        v.prioritize()
        assert v.watermark == v.size
        assert v.fault(3 * page, page) is not None
        v.unpin(3 * page, page)
        v.watermark = page + 1                  # rounded down to a page
        assert v.watermark == page
    dev.set_limit(0)


def test_floor_protects_a_prefix(dev, page):
    with dev.vbar(4 * page) as v:
        v.floor = page + 1                      # rounded up to a page
        assert v.floor == 2 * page
        assert v.fault(0, 4 * page) is not None
        v.unpin(0, 4 * page)
        assert v.residency(flags=True)[0] == PageFlags.RESIDENT | PageFlags.PROTECTED
        assert dev.free_memory(4 * page) == 2 * page
        assert v.loaded_size == 2 * page
        v.floor = 0
        assert v.free_memory(4 * page) == 2 * page


def test_deprioritize_changes_eviction_order(dev, page):
    with dev.vbar(2 * page) as a, dev.vbar(2 * page) as b:
        for v in (a, b):
            assert v.fault(0, 2 * page) is not None
            v.unpin(0, 2 * page)
        dev.free_memory(page)                   # least important: a (older)
        assert a.loaded_size == page and b.loaded_size == 2 * page
        b.deprioritize()
        dev.free_memory(page)
        assert b.loaded_size == page and a.loaded_size == page
        a.prioritize()
        b.prioritize()
        dev.free_memory(page)
        assert a.loaded_size == 0


def test_mapped_memory_is_addressable_on_sim(dev, page):
    # On the simulator device memory is host memory: a raw address can be
    # wrapped without copying (what a torch tensor view over a VBAR does).
    with dev.vbar(2 * page) as v:
        w = v.alloc(64)
        with w.pinned():
            buf = (ctypes.c_uint8 * 64).from_address(w.ptr)
            buf[:] = bytes(range(64))
            assert bytes(buf) == bytes(range(64))


def test_use_after_close_raises_closed_error(dev, page):
    v = dev.vbar(page)
    w = v.alloc(16)
    v.close()
    v.close()                                   # a no-op
    for call in (lambda: v.fault(0, page), lambda: v.unpin(0, page), lambda: v.alloc(1),
                 lambda: v.watermark, lambda: v.residency(), lambda: w.fault(), lambda: w.ptr,
                 lambda: v.base, lambda: v.prioritize()):
        with pytest.raises(vramswap.ClosedError):
            call()
    with pytest.raises(vramswap.ClosedError):
        with v:
            pass


def test_concurrent_fault_unpin(dev, page):
    with dev.vbar(8 * page) as v:
        allocs = [v.alloc(page) for _ in range(8)]
        errors = []

        def worker(i):
            try:
                for _ in range(200):
                    a = allocs[(i * 3 + _) % 8]
                    with a.pinned() as sig:
                        assert sig is not None
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        dev.check()
        assert not any(b & PageFlags.PINNED for b in v.residency())
