"""The GPU soak program (tests/gpu/soak.py) on the simulator for a few seconds:
the same code path the lead runs on the H200 (threads, random models and
limits, torch allocations, close/reopen, injected transient driver errors),
so a bug in the program itself shows up in CI and not on the GPU day."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_soak_smoke_on_sim(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, VS_OUT=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "bindings", "python"), env.get("PYTHONPATH", "")])
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "gpu", "soak.py"), "--backend", "sim",
                        "--seconds", "3", "--threads", "3"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:]
    with open(tmp_path / "soak.json") as f:
        row = json.load(f)
    assert row["status"] == "ok", row
    assert row["rounds"] >= 2 and row["forwards"] > 0
    assert row["streamed_uses"] > 0, "the limits never forced streaming: the soak tests nothing"
    assert row["faults_injected"] > 0 and row["pages_evicted"] > 0
