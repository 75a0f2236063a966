"""Shared fixtures: a small simulated device, checked for leaks after each test.

In the style of rmm's Python tests: every test gets a fresh sim device, and after
the test the fixture checks that the device's own usage is back to zero, that its
invariants hold, and -- once it is closed -- that the simulator holds no
reservation, physical chunk, mapping, host registration, stream or event.

Point VRAMSWAP_LIBRARY at the libvramswap.so to test (ci/test.sh sets it to the
build's core/libvramswap.so).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import vramswap
from vramswap import sim

PACKAGE_ROOT = Path(__file__).resolve().parents[1]   # bindings/python
REPO_ROOT = PACKAGE_ROOT.parents[1]

# The simulator every test runs on: small, so that pressure is easy to create.
SIM_MEMORY = 64 << 20
SIM_GRANULARITY = 64 << 10
SIM_PAGE = 256 << 10
SIM_DEVICES = 2


def pytest_report_header(config):
    return "vramswap %s, libvramswap %s at %s" % (
        vramswap.__version__, vramswap.library_version(), vramswap.library_path)


def _gpu_available():
    return any(b.available and b.device_count and b.name != "sim" for b in vramswap.backends())


def pytest_collection_modifyitems(config, items):
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not _gpu_available():
        skip = pytest.mark.skip(reason="no GPU backend with a device is available")
        for item in gpu:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """No configuration leaks in from the caller's environment."""
    for var in ("VRAMSWAP_CONF", "VRAMSWAP_LOG"):
        monkeypatch.delenv(var, raising=False)
    yield


def pytest_configure(config):
    # Before collection: the library caches each backend's device count at its
    # first probe (vs_backend_get_info), so configure the simulator first.
    if not sim.available():
        raise pytest.UsageError("libvramswap was built without the sim backend")
    sim.configure(reset=True, device_count=SIM_DEVICES, total_memory=SIM_MEMORY,
                  granularity=SIM_GRANULARITY, preferred_page_size=SIM_PAGE, copy_bandwidth=0)


@pytest.fixture(scope="session")
def sim_config():
    return sim.get_config()


def _assert_sim_clean():
    for ordinal in range(SIM_DEVICES):
        sim.inject_clear(ordinal)
        if _have_counters():
            assert sim.leaks(ordinal) == {}, "sim device %d leaked" % ordinal
            assert sim.counters(ordinal)["external_bytes"] == 0


def _have_counters():
    return vramswap._lib.vs_sim_counters is not None


@pytest.fixture(autouse=True)
def _no_leaks():
    """After every test: no device left open, nothing left in the simulator."""
    yield
    left = vramswap.devices()
    vramswap.shutdown()
    for d in left:
        d.close()
    assert not left, "test left devices open: %r" % left
    _assert_sim_clean()


def open_sim(ordinal=0, **config):
    config.setdefault("headroom", 0)
    config.setdefault("mem_poll_ns", 0)
    return vramswap.Device("sim", ordinal, **config)


@pytest.fixture
def dev():
    """An open sim device (headroom 0, exact budget); checked and closed after the test."""
    d = open_sim()
    yield d
    if not d.closed:
        leftovers = d.children()
        for c in reversed(leftovers):
            c.close()
        assert not leftovers, "test left objects open: %r" % leftovers
        info = d.memory_info()
        assert (info.used_weights, info.used_scratch, info.used_intercepted) == (0, 0, 0)
        d.check()
        d.close()


@pytest.fixture
def page(dev):
    return dev.page_size


requires_sim_ops = pytest.mark.skipif(
    len(vramswap.SimOp) == 0,
    reason="the library's constant table lacks VS_SIM_OP_* (fault injection by name)")
requires_sim_counters = pytest.mark.skipif(
    vramswap._lib.vs_sim_counters is None,
    reason="the library's constant table lacks VS_SIM_OP_COUNT_ (vs_sim_counters layout)")


def run_python(code, env=None, timeout=120):
    """Run `code` in a fresh interpreter with this package importable."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(PACKAGE_ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e["VRAMSWAP_LIBRARY"] = vramswap.library_path
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    e.update(env or {})
    return subprocess.run([sys.executable, "-W", "error", "-c", code], env=e,
                          capture_output=True, text=True, timeout=timeout)
