"""The ComfyUI-shaped scenario (tests/comfyui/scenario.py) on the simulator:
three VBARs on a device whose weight budget holds about 1.5 diffusion models,
every output bit-equal to the same computation on resident weights."""

import pytest

import comfy_aimdo.control as control
import comfy_aimdo.model_vbar as mv

import scenario
from conftest import BUDGET


def _run(capsys=None):
    r = scenario.run_scenario("cpu", "sim", budget=BUDGET, implementation="sim",
                              log=lambda *a: None)
    dev = control.get_devctx(0)
    return r, dev.stats()


def test_scenario_on_sim():
    r, stats = _run()
    failed = {k: v for k, v in r["checks"].items() if v is not True}
    assert r["errors"] == [], "\n".join(r["errors"])
    assert failed == {}, failed
    assert r["ok"]
    # The workload really ran under pressure: pages were evicted and copied again.
    assert stats.pages_evicted > 0, stats
    assert sum(r["model_bytes"].values()) > 2 * BUDGET
    runs = {x["name"]: x for x in r["runs"]}
    assert "InjectedError" in runs["big_failed"]["error"]
    assert runs["big"]["equal"] is True
    # The checks saw something: unpatched resident weights and encoder modules.
    assert r["lora_unpatched_resident_checked"] > 0
    assert r["ooms"] == 0


def test_scenario_detects_a_stale_weight(monkeypatch):
    """The comparison can fail: a drop-in that ignores remapped pages (every
    signature compares equal) must be caught by the bit-equality checks."""
    monkeypatch.setattr(mv, "vbar_signature_compare",
                        lambda a, b: a is not None and b is not None)
    r, _ = _run()
    assert not r["ok"]
    assert any(k.startswith("equal_") and v is False for k, v in r["checks"].items()), r["checks"]
