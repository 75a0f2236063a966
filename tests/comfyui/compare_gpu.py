#!/usr/bin/env python3
"""The ComfyUI scenario on a CUDA GPU: vramswap's comfy_aimdo against the
original comfy-aimdo, under the three PyTorch allocator settings, side by side.

Run from the repository root, with a build in build/ (interception built in):

  VRAMSWAP_LIBRARY=$PWD/build/core/libvramswap.so PYTHONPATH=bindings/python \\
      python3 tests/comfyui/compare_gpu.py

Each (implementation, PYTORCH_CUDA_ALLOC_CONF) pair runs tests/comfyui/
scenario.py --device cuda in its own process:
  vramswap     PYTHONPATH=bindings/python:bindings/comfy_aimdo
  comfy-aimdo  PYTHONPATH=$VS_COMFY_PEERS (default .peers, a folder holding
               the original `comfy_aimdo` package); left out when missing
Environment: VS_OUT (results folder; default a new temporary one),
VS_COMFY_BUDGET_S (stop starting new runs after this many seconds, default
170), VS_COMFY_RUN_TIMEOUT (seconds per run, default 90).

Writes VS_OUT/<impl>-<alloc>.json (each run's full result), VS_OUT/summary.json
and VS_OUT/summary.txt (per-step times, totals, peak device memory, OOMs,
bit-equality, per configuration). Exit status 0 when every vramswap run passed
its checks (comfy-aimdo's results are reported, not judged).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "tests" / "comfyui" / "scenario.py"
ALLOC_CONFS = [("default", ""), ("cudaMallocAsync", "backend:cudaMallocAsync"),
               ("expandable", "expandable_segments:True")]


def _env(impl, alloc_conf, peers):
    env = dict(os.environ)
    base = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if impl == "vramswap":
        paths = [str(REPO / "bindings" / "python"), str(REPO / "bindings" / "comfy_aimdo")] + base
    else:
        paths = [str(peers)] + [p for p in base if "comfy_aimdo" not in p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if alloc_conf:
        env["PYTORCH_CUDA_ALLOC_CONF"] = alloc_conf
    else:
        env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
    env.pop("COMFY_AIMDO_BACKEND", None)
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return env


def _run(impl, conf_name, alloc_conf, peers, out, timeout):
    path = out / ("%s-%s.json" % (impl, conf_name))
    log = out / ("%s-%s.log" % (impl, conf_name))
    t0 = time.time()
    device = os.environ.get("VS_COMFY_DEVICE", "cuda")   # "cpu": a dry run on the simulator
    cmd = [sys.executable, str(SCENARIO), "--device", device, "--out", str(path)]
    try:
        p = subprocess.run(cmd, env=_env(impl, alloc_conf, peers), cwd=str(REPO),
                           capture_output=True, text=True, timeout=timeout)
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, text = "timeout", (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else str(e.stdout or "")
    log.write_text(text)
    wall = time.time() - t0
    result = None
    if path.exists():
        try:
            result = json.loads(path.read_text())
        except ValueError:
            result = None
    print("[%s %s] rc=%s wall=%.1fs ok=%s" % (impl, conf_name, rc, wall,
                                               result and result.get("ok")), flush=True)
    if result is None or not result.get("ok"):
        print("  --- last lines of %s ---\n%s" % (log, "\n".join(text.splitlines()[-25:])),
              flush=True)
    return dict(impl=impl, alloc=conf_name, rc=rc, wall_s=round(wall, 2), result=result)


def _row(run):
    r = run["result"]
    if not r:
        return {}
    rows = {}
    for x in r.get("runs", []):
        peak = x.get("peak", {})
        rows[x["name"]] = dict(
            steps=[round(s * 1000, 1) for s in x.get("step_s", [])],
            total_ms=round(x.get("total_s", 0) * 1000, 1),
            encode_ms=round(x.get("encode_s", 0) * 1000, 1),
            decode_ms=round(x.get("decode_s", 0) * 1000, 1),
            peak_dev_MiB=round(peak.get("device_used", 0) / 2**20),
            peak_torch_MiB=round(peak.get("torch_allocated", 0) / 2**20),
            equal=x.get("equal"), copies=x.get("copies"), streamed=x.get("streamed"),
            copied_MiB=x.get("copied_MiB"), encoder_copied_MiB=x.get("encoder_copied_MiB"),
            error=x.get("error"))
    return rows


def summarize(runs, out):
    lines, summary = [], {"runs": []}
    by = {(r["impl"], r["alloc"]): r for r in runs}
    for conf_name, _ in ALLOC_CONFS:
        ours, theirs = by.get(("vramswap", conf_name)), by.get(("comfy-aimdo", conf_name))
        if ours is None and theirs is None:
            continue
        lines.append("== PYTORCH_CUDA_ALLOC_CONF: %s" % conf_name)
        for impl, run in (("vramswap", ours), ("comfy-aimdo", theirs)):
            if run is None:
                continue
            r = run["result"] or {}
            lines.append("  %-11s rc=%s ok=%s ooms=%s errors=%d fault+compare+unpin=%sus "
                         "failed_checks=%s" % (
                             impl, run["rc"], r.get("ok"), r.get("ooms"), len(r.get("errors", [])),
                             r.get("fault_compare_unpin_us"),
                             sorted(k for k, v in r.get("checks", {}).items() if v is not True)))
        ro, rt = _row(ours) if ours else {}, _row(theirs) if theirs else {}
        lines.append("  %-13s %-44s %-44s %s" % (
            "run", "vramswap steps ms / total / peak / enc reload",
            "comfy-aimdo steps ms / total / peak / enc reload", "slower steps"))
        slower_total = 0
        for name in (ro or rt):
            a, b = ro.get(name, {}), rt.get(name, {})
            slower = [i for i, (x, y) in enumerate(zip(a.get("steps", []), b.get("steps", [])))
                      if x > y]
            slower_total += len(slower)

            def cell(c):
                if not c:
                    return "-"
                return "%s / %s / %sM / enc %sM%s%s" % (c["steps"], c["total_ms"], c["peak_dev_MiB"],
                                                         c["encoder_copied_MiB"],
                                              "" if c["equal"] in (True, None) else " NOT-EQUAL",
                                              " ERR" if c.get("error") else "")
            lines.append("  %-13s %-44s %-44s %s" % (name, cell(a), cell(b), slower or ""))
        if ours and theirs:
            lines.append("  steps where vramswap was slower: %d" % slower_total)
        summary["runs"].append(dict(alloc=conf_name, vramswap=ro, comfy_aimdo=rt))
    text = "\n".join(lines)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(dict(summary, raw=[
        {k: v for k, v in r.items() if k != "result"} for r in runs]), indent=1))
    return text


def main():
    out = Path(os.environ.get("VS_OUT") or tempfile.mkdtemp(prefix="vs-comfy-gpu-"))
    out.mkdir(parents=True, exist_ok=True)
    peers = Path(os.environ.get("VS_COMFY_PEERS", str(REPO / ".peers"))).resolve()
    have_peer = (peers / "comfy_aimdo" / "control.py").exists()
    budget = float(os.environ.get("VS_COMFY_BUDGET_S", "170"))
    timeout = float(os.environ.get("VS_COMFY_RUN_TIMEOUT", "90"))
    print("results in %s; comfy-aimdo %s" % (out, peers if have_peer else "NOT FOUND (%s)" % peers),
          flush=True)
    impls = ["vramswap"] + (["comfy-aimdo"] if have_peer else [])
    start, runs = time.time(), []
    for conf_name, alloc_conf in ALLOC_CONFS:
        for impl in impls:
            left = budget - (time.time() - start)
            if left < 15:
                print("[%s %s] not started: time budget spent" % (impl, conf_name), flush=True)
                continue
            runs.append(_run(impl, conf_name, alloc_conf, peers, out, min(timeout, left)))
    text = summarize(runs, out)
    print(text)
    print("summary: %s" % (out / "summary.txt"))
    ours = [r for r in runs if r["impl"] == "vramswap"]
    ok = bool(ours) and all(r["result"] and r["result"].get("ok") for r in ours)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
