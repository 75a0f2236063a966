"""The shim's CUDA, HIP and Level Zero paths against the driver emulators
(tests/emulators), in a subprocess per backend with the environment
ci/conformance_matrix.sh uses to load each emulator:

- tests/comfyui/emulator_smoke.py: the API calls, device contents checked
  with vramswap copies;
- tests/comfyui/scenario.py --device cpu: the whole ComfyUI scenario. The
  emulators' device memory is host memory, so a CPU PyTorch can compute on
  tensors over VBAR ranges there (aimdo_to_tensor with device "cpu"); what
  cannot run is a GPU tensor path (__cuda_array_interface__, DLPack XPU)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vramswap

from conftest import BUDGET, HEADROOM, REPO

SMOKE = REPO / "tests" / "comfyui" / "emulator_smoke.py"


def _build_dir():
    return Path(vramswap.library_path).resolve().parents[1]   # BUILD/core/libvramswap.so


def _ze_loader(build):
    cache = (build / "CMakeCache.txt").read_text(errors="replace") if (build / "CMakeCache.txt").exists() else ""
    m = re.search(r"^VS_ZE_LOADER_LIBRARY:FILEPATH=(.+)$", cache, re.M)
    return m.group(1) if m and not m.group(1).endswith("NOTFOUND") else "libze_loader.so.1"


def _env(backend, build, sim_spec="devices:1,memory:320M,granularity:2M,page:2M"):
    if backend == "cuda":
        lib = build / "emulators" / "cuda" / "libcuda.so.1"
        extra = {"VRAMSWAP_LIBCUDA": str(lib)}
    elif backend == "hip":
        lib = build / "emulators" / "hip" / "libamdhip64.so.5"
        extra = {"VRAMSWAP_LIBHIP": str(lib)}
    else:
        lib = build / "emulators" / "level_zero" / "libze_vramswap_emu.so.1"
        extra = {"ZE_ENABLE_ALT_DRIVERS": str(lib), "VRAMSWAP_LIBZE": _ze_loader(build)}
    if not lib.exists():
        pytest.fail("the %s emulator is not built in %s (build its target)" % (backend, build))
    env = dict(os.environ)
    env.update(extra)
    env["VRAMSWAP_SIM"] = sim_spec
    env["VRAMSWAP_LIBRARY"] = str(Path(vramswap.library_path).resolve())
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bindings" / "python"),
                                         str(REPO / "bindings" / "comfy_aimdo")])
    env.pop("COMFY_AIMDO_BACKEND", None)
    return env


@pytest.mark.parametrize("implementation,backend",
                         [("cuda", "cuda"), ("rocm", "hip"), ("xpu", "level_zero")])
def test_shim_on_emulator(implementation, backend):
    env = _env(backend, _build_dir())
    p = subprocess.run([sys.executable, str(SMOKE), implementation], env=env,
                       capture_output=True, text=True, timeout=120)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, "no result; rc=%d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)
    r = json.loads(lines[-1])
    failed = {k: v for k, v in r["checks"].items() if v is not True}
    assert p.returncode == 0 and r["ok"], "failed checks %s\nstderr:\n%s" % (failed, p.stderr[-4000:])
    assert r["backend"] == backend


@pytest.mark.parametrize("implementation,backend",
                         [("cuda", "cuda"), ("rocm", "hip"), ("xpu", "level_zero")])
def test_scenario_on_emulator(implementation, backend, tmp_path):
    """The emulated device sized like the simulator of test_scenario.py: its
    weight budget holds 1.5 diffusion models."""
    spec = "devices:1,memory:%d,granularity:64K,page:256K" % (HEADROOM + BUDGET)
    env = _env(backend, _build_dir(), spec)
    out = tmp_path / "result.json"
    p = subprocess.run([sys.executable, str(REPO / "tests" / "comfyui" / "scenario.py"),
                        "--device", "cpu", "--implementation", implementation, "--out", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), "no result; rc=%d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout[-4000:], p.stderr[-4000:])
    r = json.loads(out.read_text())
    failed = {k: v for k, v in r["checks"].items() if v is not True}
    assert p.returncode == 0 and r["ok"], "failed checks %s, errors %s" % (failed, r["errors"])
    assert r["backend"] == backend
    runs = {x["name"]: x for x in r["runs"]}
    assert runs["prompt_again"]["copies"] > 0, "no pressure on the emulated device"
