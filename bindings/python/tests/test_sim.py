"""vramswap.sim: configuration, injection, counters, external usage, malloc."""

import pytest

import vramswap
from vramswap import sim

from conftest import (SIM_DEVICES, SIM_GRANULARITY, SIM_MEMORY, SIM_PAGE, open_sim,
                      requires_sim_counters, requires_sim_ops)

M = 1 << 20


def test_get_config(sim_config):
    c = sim.get_config()
    assert c == sim_config
    assert c["device_count"] == SIM_DEVICES
    assert c["total_memory"] == SIM_MEMORY
    assert c["granularity"] == SIM_GRANULARITY
    assert c["preferred_page_size"] == SIM_PAGE
    assert c["integrated"] is False
    d = sim.default_config()
    assert set(d) == set(c)


def test_configure_and_restore():
    before = sim.get_config()
    with sim.configured(memory="32M", integrated=True, page_size="128K") as c:
        assert c["total_memory"] == 32 * M and c["integrated"] is True
        assert c["preferred_page_size"] == 128 << 10
        with open_sim() as d:
            assert d.props.total_memory == 32 * M
            assert d.props.integrated is True
            assert d.page_size == 128 << 10
    assert sim.get_config() == before


def test_configure_rejects():
    before = sim.get_config()
    with pytest.raises(vramswap.InvalidArgumentError):
        sim.configure(colour="blue")
    with pytest.raises(vramswap.InvalidArgumentError):
        sim.configure(granularity=3000)          # not a power of two
    with pytest.raises(vramswap.InvalidArgumentError):
        sim.configure(total_memory="1.5G")
    assert sim.get_config() == before


def test_configure_while_open_is_busy(dev):
    with pytest.raises(vramswap.BusyError):
        sim.configure(total_memory="32M")


def test_external_usage(dev):
    sim.set_external_usage("16M")
    try:
        assert dev.memory_info().used_others == 16 * M
        with pytest.raises(vramswap.OutOfMemoryError):
            sim.set_external_usage(2 * SIM_MEMORY)
    finally:
        sim.set_external_usage(0)
    assert dev.memory_info().used_others == 0


def test_malloc_free(dev):
    p = sim.malloc("1M")
    try:
        assert p != 0
        assert dev.memory_info().used_others + dev.memory_info().used_intercepted >= M
    finally:
        sim.free(p)
    with pytest.raises(vramswap.VramswapError):
        sim.free(p)                               # double free


@requires_sim_counters
def test_counters(dev, page):
    c0 = sim.counters()
    assert set(sim.LIVE_COUNTERS) <= set(c0)
    with dev.vbar(4 * page) as v:
        assert v.fault(0, 2 * page) is not None
        c = sim.counters()
        assert c["reservations"] == c0["reservations"] + 1
        assert c["mapped_bytes"] == c0["mapped_bytes"] + 2 * page
        assert c["phys_bytes"] == c0["phys_bytes"] + 2 * page
        v.unpin(0, 2 * page)
    assert isinstance(c["calls"], dict)
    assert sum(c["calls"].values()) > 0


@requires_sim_ops
def test_inject_out_of_memory_gives_not_resident(dev, page):
    with dev.vbar(4 * page) as v:
        sim.inject("phys_create", count=1, error="VS_ERR_OUT_OF_MEMORY")
        assert v.fault(0, page) is None
        assert v.fault(0, page) is not None       # the injection is spent
        v.unpin(0, page)


@requires_sim_ops
def test_inject_transient_failure_is_retried(dev, page):
    with dev.vbar(4 * page) as v:
        sim.inject("set_access", count=1, error=vramswap.NotReadyError)
        assert v.fault(0, page) is not None
        v.unpin(0, page)
        assert dev.stats().transient_retries >= 1


@requires_sim_ops
def test_inject_backend_failure_raises(dev, page):
    with dev.vbar(4 * page) as v:
        sim.inject("map", skip=0, count=100, error="backend")
        with pytest.raises(vramswap.BackendError):
            v.fault(0, page)
        sim.inject_clear()
        assert v.fault(0, page) is not None
        v.unpin(0, page)
    dev.check()


@requires_sim_ops
def test_inject_names():
    with pytest.raises(vramswap.InvalidArgumentError):
        sim.inject("no_such_op")
    with pytest.raises(vramswap.InvalidArgumentError):
        sim.inject("map", error="VS_ERR_NONSENSE")
    sim.inject("map", count=0)                    # disarm
    assert {op.name.lower() for op in vramswap.SimOp} >= {"map", "unmap", "phys_create"}
