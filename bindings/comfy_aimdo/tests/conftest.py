"""Fixtures for the comfy_aimdo drop-in: a simulated device sized for the
ComfyUI scenario (its weight budget holds about 1.5 diffusion models), opened
through comfy_aimdo.control the way ComfyUI's main.py does, and checked for
leaks after each test.

Run with VRAMSWAP_LIBRARY pointing at the libvramswap.so to test and
PYTHONPATH holding bindings/python and bindings/comfy_aimdo (ci/test.sh, tier
comfy, does both).
"""

import gc
import sys
from pathlib import Path

import pytest

import vramswap
from vramswap import sim

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

import scenario  # noqa: E402  (tests/comfyui/scenario.py)

GRANULARITY = 64 << 10
PAGE = 256 << 10
HEADROOM = 256 << 20     # comfy_aimdo's minimum headroom (control.MIN_HEADROOM)


def _budget():
    sizes = scenario.model_sizes("sim")
    return int(1.5 * sizes["diffusion"]) // GRANULARITY * GRANULARITY


BUDGET = _budget()


def pytest_configure(config):
    # Before any backend probe: the library caches device counts at the first one.
    if not sim.available():
        raise pytest.UsageError("libvramswap was built without the sim backend")
    sim.configure(reset=True, device_count=1, total_memory=HEADROOM + BUDGET,
                  granularity=GRANULARITY, preferred_page_size=PAGE, copy_bandwidth=0)


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for var in ("VRAMSWAP_CONF", "VRAMSWAP_LOG", "COMFY_AIMDO_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    yield
    import comfy_aimdo.control as control
    gc.collect()
    control.deinit()
    sim.inject_clear(0)
    assert sim.leaks(0) == {}, "the simulator leaked"


@pytest.fixture
def aimdo():
    """comfy_aimdo initialized on the simulator with device 0 open."""
    import comfy_aimdo.control as control
    assert control.init(implementation="sim") is True
    assert control.init_devices(((0, 0) for _ in range(1))) is True
    return control
