"""python3 -m vramswap (mirrors `vramswap info`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vramswap

from conftest import PACKAGE_ROOT


def run_module(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env["VRAMSWAP_LIBRARY"] = vramswap.library_path
    env["VRAMSWAP_SIM"] = "devices:2,memory:64M"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("VRAMSWAP_CONF", None)
    return subprocess.run([sys.executable, "-W", "error", "-m", "vramswap"] + list(args),
                          env=env, capture_output=True, text=True, timeout=120)


def test_info_text():
    r = run_module()
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("vramswap %s, " % vramswap.library_version())
    assert "\nbackends:\n" in out and "\ndevices:\n" in out
    assert "sim          available, 2 devices" in out
    assert "  sim:0  " in out and "  sim:1  " in out
    assert "total memory   64.0 MiB (67108864 bytes)" in out
    assert "budget" in out and "page size" in out
    assert r.stdout == run_module("info").stdout


def test_info_json():
    r = run_module("info", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["version"] == vramswap.library_version()
    simb = [b for b in doc["backends"] if b["name"] == "sim"][0]
    assert simb["available"] is True and simb["device_count"] == 2 and simb["why"] == ""
    assert [d["ordinal"] for d in simb["devices"]] == [0, 1]
    d0 = simb["devices"][0]
    assert d0["status"] == "VS_OK"
    assert d0["total_memory"] == 64 << 20
    for key in ("name", "granularity", "page_size", "integrated", "budget", "headroom",
                "available"):
        assert key in d0
    for b in doc["backends"]:
        assert b["available"] or b["why"]


def test_usage_error():
    r = run_module("frobnicate")
    assert r.returncode == 2
    assert "usage" in r.stderr


def _built_cli():
    """The C tool next to the library under test (build/core/libvramswap.so ->
    build/bindings/cli/vramswap), or VRAMSWAP_CLI."""
    cli = os.environ.get("VRAMSWAP_CLI")
    if cli:
        return cli
    cand = Path(vramswap.library_path).resolve().parents[1] / "bindings" / "cli" / "vramswap"
    return str(cand) if cand.is_file() and os.access(cand, os.X_OK) else None


def test_same_output_as_the_c_tool():
    cli = _built_cli()
    if cli is None:
        pytest.skip("no built vramswap CLI beside the library")
    env = dict(os.environ, VRAMSWAP_SIM="devices:2,memory:64M")
    env.pop("VRAMSWAP_CONF", None)
    for args in ([], ["--json"]):
        c = subprocess.run([cli, "info"] + args, env=env, capture_output=True, text=True,
                           timeout=120)
        assert c.returncode == 0, c.stderr
        py = run_module("info", *args)
        if args:
            assert json.loads(py.stdout) == json.loads(c.stdout)
        else:
            assert py.stdout == c.stdout
