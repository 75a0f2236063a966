"""Object lifetime: context managers, close order, garbage collection, exit."""

import gc
import weakref

import pytest

import vramswap

from conftest import SIM_PAGE, open_sim, requires_sim_counters, run_python


def test_context_managers_close():
    page = SIM_PAGE
    with open_sim() as d:
        with d.vbar(page) as v, d.scratch(page) as s, d.host_buffer(page) as h, \
                d.stream() as st, d.event() as e:
            objs = [v, s, h, st, e]
            assert all(not o.closed for o in objs)
            assert d.children() == objs
        assert all(o.closed for o in objs)
        assert d.children() == []
    assert d.closed


def test_close_twice_is_a_no_op(dev, page):
    v = dev.vbar(page)
    v.close()
    v.close()
    dev.close()
    dev.close()
    assert dev.closed


def test_device_close_closes_children_newest_first():
    page = SIM_PAGE
    d = open_sim()
    v = d.vbar(4 * page)
    w = v.alloc(page)
    with w.pinned():
        pass
    s = d.scratch(page, size=page)
    h = d.host_buffer(1 << 20, size=4096)
    st = d.stream()
    ev = d.event()
    d.close()
    for o in (v, s, h, st, ev, d):
        assert o.closed
        with pytest.raises(vramswap.ClosedError):
            o._h()
    with pytest.raises(vramswap.ClosedError):
        w.fault()
    with pytest.raises(vramswap.ClosedError):
        d.memory_info()


def test_device_close_with_pinned_pages_is_busy_and_changes_nothing():
    page = SIM_PAGE
    d = open_sim()
    s = d.scratch(page)
    v = d.vbar(2 * page)
    assert v.fault(0, page) is not None
    with pytest.raises(vramswap.BusyError):
        d.close()
    assert not d.closed and not v.closed and not s.closed
    v.unpin(0, page)
    d.close()
    assert v.closed and s.closed


def test_use_after_close_never_calls_c(dev, page):
    s = dev.scratch(page)
    s.close()
    with pytest.raises(vramswap.ClosedError) as ei:
        s.resize(page)
    assert "ScratchBuffer is closed" in str(ei.value)
    assert ei.value.name == "VS_ERR_INVALID_HANDLE"


@requires_sim_counters
def test_garbage_collected_objects_are_destroyed(dev, page):
    before = vramswap.sim.counters()["reservations"]
    v = dev.vbar(4 * page)
    assert v.fault(0, page) is not None
    v.unpin(0, page)
    ref = weakref.ref(v)
    assert vramswap.sim.counters()["reservations"] == before + 1
    del v
    gc.collect()
    assert ref() is None
    assert dev.children() == []
    assert vramswap.sim.counters()["reservations"] == before
    assert dev.memory_info().used_weights == 0


def test_device_is_kept_alive_by_its_children():
    page = SIM_PAGE
    d = open_sim()
    v = d.vbar(page)
    dref = weakref.ref(d)
    del d
    gc.collect()
    assert dref() is not None and not dref().closed
    v.device.close()
    assert v.closed


def test_collected_device_is_closed():
    d = open_sim()
    dref = weakref.ref(d)
    del d
    gc.collect()
    assert dref() is None
    with open_sim() as d2:   # the ordinal is free again
        assert not d2.closed


EXIT_SCRIPT = """
import vramswap, sys
from vramswap import sim
sim.configure(reset=True, total_memory="64M")
d = vramswap.Device("sim", 0, headroom=0)
v = d.vbar("4M")
w = v.alloc(1 << 20)
w.fault()                       # left pinned on purpose
v2 = d.vbar("4M")
v2.fault(0, 1 << 20)
v2.unpin(0, 1 << 20)
h = d.host_buffer("1M", size=4096)
view = h.buffer()               # a live view
s = d.scratch("1M", size="256K")
st = d.stream()
e = d.event()
e.record(st)
print("exiting")
sys.stdout.flush()
"""


def test_exit_with_live_objects_is_clean():
    r = run_python(EXIT_SCRIPT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting"
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr


def test_exit_closes_everything_closable():
    # Run the atexit handler by hand, then look at the state it left.
    code = """
import vramswap
from vramswap import _resource, sim
sim.configure(reset=True, total_memory="64M")
d = vramswap.init(backend="sim", headroom=0)
v = d.vbar("4M")
v.fault(0, 1 << 20); v.unpin(0, 1 << 20)
h = d.host_buffer("1M", size=4096)
_resource._shutdown()
print("closed", d.closed, v.closed, h.closed)
if vramswap._lib.vs_sim_counters is not None:
    print("leaks", sim.leaks())
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "closed True True True" in r.stdout
    if vramswap._lib.vs_sim_counters is not None:
        assert "leaks {}" in r.stdout
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr


def test_exit_with_logging_configured_and_c_threads():
    code = """
import logging, vramswap
logging.basicConfig(level=logging.DEBUG)
d = vramswap.Device("sim", 0, headroom=0)
st = d.stream()
h = d.host_buffer("1M", size="1M")
v = d.vbar("4M")
a = v.alloc("1M")
a.fault()
d.memcpy(a, h, stream=st)      # copy in flight on the simulator's worker at exit
a.unpin(st)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr
