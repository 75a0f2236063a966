"""Devices: backends, properties, memory figures, limits, reclaim, dump."""

import pytest

import vramswap

from conftest import SIM_DEVICES, SIM_GRANULARITY, SIM_MEMORY, SIM_PAGE, open_sim

M = 1 << 20


def test_backends_lists_sim():
    infos = vramswap.backends()
    names = [b.name for b in infos]
    assert "sim" in names
    s = infos[names.index("sim")]
    assert s.available is True
    assert s.device_count == SIM_DEVICES
    for b in infos:
        assert isinstance(b, vramswap.BackendInfo)
        assert b.available or b.why, "an unavailable backend says why"


def test_props(dev):
    p = dev.props
    assert isinstance(p, vramswap.DeviceProps)
    assert p.backend == "sim" and p.ordinal == 0
    assert p.name
    assert p.total_memory == SIM_MEMORY
    assert p.granularity == SIM_GRANULARITY
    assert p.page_size == SIM_PAGE == dev.page_size
    assert p.integrated is False
    assert dev.handle != 0
    assert "sim:0" in repr(dev)


def test_memory_info(dev):
    info = dev.memory_info()
    assert isinstance(info, vramswap.MemoryInfo)
    assert info.total == SIM_MEMORY
    assert info.headroom == 0
    assert info.budget == SIM_MEMORY
    assert info.used_weights == info.used_scratch == info.used_intercepted == 0
    assert info.available == SIM_MEMORY
    assert info.evictable == 0


def test_set_limit(dev):
    dev.set_limit(16 * M)
    info = dev.memory_info()
    assert (info.total, info.headroom) == (16 * M, 0)
    dev.set_limit("8M", headroom="1M")
    info = dev.memory_info()
    assert (info.total, info.headroom, info.budget) == (8 * M, M, 7 * M)
    dev.set_limit(None, headroom=0)
    assert dev.memory_info().total == SIM_MEMORY


def test_external_usage_shows_as_others(dev):
    vramswap.sim.set_external_usage(8 * M)
    try:
        info = dev.memory_info()
        assert info.used_others == 8 * M
        assert info.available == SIM_MEMORY - 8 * M
    finally:
        vramswap.sim.set_external_usage(0)


def test_reclaim_and_free_memory(dev, page):
    with dev.vbar(16 * page) as v:
        assert v.fault(0, 16 * page) is not None
        v.unpin(0, 16 * page)
        info = dev.memory_info()
        assert info.used_weights == 16 * page
        assert info.evictable == 16 * page
        # Nothing to do: enough is available already.
        assert dev.reclaim(page) == 0
        # Evicts from the highest pages down.
        assert dev.free_memory(2 * page) == 2 * page
        assert v.loaded_size == 14 * page
        assert v.residency()[-2:] == b"\0\0"
        # Make everything but 4 pages' worth unavailable, then ask for 8.
        dev.set_limit(v.loaded_size + 4 * page)
        assert dev.reclaim(8 * page) >= 4 * page
        assert dev.memory_info().available >= 8 * page
        with pytest.raises(vramswap.OutOfMemoryError) as ei:
            dev.reclaim(1 << 40)
        assert isinstance(ei.value.freed, int)
        assert dev.stats().reclaim_failures >= 1
        dev.set_limit(0)


def test_reset_floors(dev, page):
    with dev.vbar(8 * page) as a, dev.vbar(8 * page) as b:
        a.floor = 4 * page
        b.floor = 2 * page
        dev.reset_floors()
        assert a.floor == 0 and b.floor == 0


def test_check_and_dump(dev, page):
    dev.check()
    with dev.vbar(4 * page) as v:
        with v.pinned(0, page):
            text = dev.dump()
            assert isinstance(text, str) and text
            assert "\0" not in text


def test_stats_and_reset(dev, page):
    with dev.vbar(4 * page) as v:
        for _ in range(3):
            with v.pinned(0, 2 * page) as sig:
                assert sig
        s = dev.stats()
        assert isinstance(s, vramswap.Stats)
        assert s.faults == 3
        assert s.fault_maps == 1 and s.fault_hits == 2
        assert s.pages_mapped == 2 and s.bytes_mapped == 2 * page
        assert s.cur_weights == s.peak_weights == 2 * page
        dev.reset_stats()
        s = dev.stats()
        assert s.faults == 0 and s.pages_mapped == 0
        assert s.peak_weights == s.cur_weights == 2 * page


def test_second_open_is_busy_and_others_are_independent(dev):
    with pytest.raises(vramswap.BusyError):
        vramswap.Device("sim", 0)
    with open_sim(1) as d1:
        assert d1.ordinal == 1
        assert vramswap.devices() == [dev, d1]
    assert vramswap.devices() == [dev]


def test_memcpy_needs_kind_for_raw_addresses(dev, page):
    with dev.vbar(page) as v:
        with pytest.raises(vramswap.InvalidArgumentError):
            dev.memcpy(v.base, 0x1000, 16)
        with pytest.raises(vramswap.InvalidArgumentError):
            dev.memcpy(v.base, 0x1000, 16, kind="sideways")
