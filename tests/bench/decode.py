#!/usr/bin/env python3
"""vramswap decode benchmark: generate() with a KV cache on a model twice the
memory it may use, vramswap vs accelerate vs resident.

    python3 tests/bench/decode.py [--gib 8] [--limit 4G] [--new-tokens 32]
                                  [--methods resident,vramswap,accelerate] [--json PATH]
    python3 tests/bench/decode.py --device cpu      # smoke run on the simulator (CI)

On the GPU (from the repository root, library in build/core/): a randomly
initialised LlamaForCausalLM (transformers, from a LlamaConfig: no download)
of about --gib GiB in bf16, greedy generate() of --new-tokens tokens after a
--prompt-token prompt, use_cache=True. Methods:

- resident: the whole model on the GPU (the compute time).
- vramswap: vramswap.torch.offload with a device limit that leaves --limit
  bytes for weights (plus the activation peak the resident run measured and
  256 MiB), interception on; tokens must equal the resident run's.
- accelerate: dispatch_model with infer_auto_device_map(max_memory = --limit),
  the rest on the CPU; slow, so it generates --accel-tokens tokens only and
  is compared per forward pass.

Bound: each of the N forward passes of generate() (the prompt, then one per new
token) must stream the bytes that do not fit once: bound = max(resident time,
N x (model bytes - limit) / pinned H2D bandwidth measured here). Reported: time
per generate, per forward, ratio to the bound, tokens equal. Numbers, not a
test: the exit status is 0 unless a method failed to run (or, with --strict, a
vramswap run produced other tokens than the resident one).

--device cpu runs the same code with the torch-only decoder of
bindings/python/tests/torch_models.py on vramswap's simulated device (tiny,
timings mean nothing; transformers and accelerate are not needed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (parse_size, bandwidth, Accel)

GiB = 1 << 30
MiB = 1 << 20


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--gib", type=float, default=8.0, help="model size (GiB, bf16)")
    ap.add_argument("--limit", default="4G", help="GPU memory for weights")
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--accel-tokens", type=int, default=8, help="new tokens for accelerate (slow)")
    ap.add_argument("--reps", type=int, default=3, help="timed generate() calls, median reported")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--methods", default="resident,vramswap,accelerate")
    ap.add_argument("--library", help="libvramswap.so (else VRAMSWAP_LIBRARY, else build/core/)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when vramswap's tokens differ")
    ap.add_argument("--json", help="write every figure here")
    a = ap.parse_args(argv)
    a.limit_bytes = bench.parse_size(a.limit)
    a.methods = [m for m in a.methods.split(",") if m]
    bad = [m for m in a.methods if m not in ("resident", "vramswap", "accelerate")]
    if bad:
        ap.error("unknown methods %s" % bad)
    if "resident" not in a.methods:
        a.methods.insert(0, "resident")
    return a


# ---------------------------------------------------------------------- models

class Model:
    """A model and its generate(): (sequences, seconds)."""

    def __init__(self, module, generate, nbytes, info):
        self.module, self.generate, self.nbytes, self.info = module, generate, nbytes, info


def build_llama(torch, a):
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    hidden, inter, vocab = 4096, 11008, 32000
    per_layer = (4 * hidden * hidden + 3 * hidden * inter + 2 * hidden) * 2
    outer = (2 * vocab * hidden + hidden) * 2
    layers = max(1, round((a.gib * GiB - outer) / per_layer))
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=vocab,
                      max_position_embeddings=4096, tie_word_embeddings=False)
    old = torch.get_default_dtype()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # initialised in bf16 on the GPU (fast), then to the host
    try:
        with torch.device("cuda"):
            m = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    m = m.to(torch.bfloat16).eval().to("cpu")
    torch.cuda.empty_cache()

    def generate(module, ids, n):
        return module.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                               use_cache=True, pad_token_id=0)

    nbytes = sum(p.numel() * p.element_size() for p in m.parameters())
    return Model(m, generate, nbytes, {"layers": layers, "hidden": hidden, "transformers": transformers.__version__})


def build_tiny(torch, a):
    sys.path.insert(0, os.path.join(REPO, "bindings", "python", "tests"))
    import torch_models
    m = torch_models.make_decoder(vocab=256, dim=128, layers=6, max_len=a.prompt_tokens + a.new_tokens + 1)

    def generate(module, ids, n):
        return torch_models.generate(module, ids, n, use_cache=True)[0]

    nbytes = sum(p.numel() * p.element_size() for p in m.parameters())
    return Model(m, generate, nbytes, {"model": "torch_models.Decoder"})


# ---------------------------------------------------------------------- methods

def run_generates(torch, accel, model, module, ids, n, warmup, reps):
    out = None
    with torch.inference_mode():
        for _ in range(warmup):
            out = model.generate(module, ids, n)
        samples = []
        for _ in range(reps):
            accel.sync()
            t0 = time.perf_counter()
            out = model.generate(module, ids, n)
            accel.sync()
            samples.append(time.perf_counter() - t0)
    return samples, out


def m_resident(torch, accel, a, model, ids):
    module = model.module.to(accel.dev)
    base = accel.allocated()
    if accel.cuda:
        torch.cuda.reset_peak_memory_stats(accel.dev)
    try:
        samples, out = run_generates(torch, accel, model, module, ids, a.new_tokens, 1, a.reps)
        act = (torch.cuda.max_memory_allocated(accel.dev) - base) if accel.cuda else 0
        return {"samples": samples, "out": out.cpu(), "activation_peak_bytes": act}
    finally:
        model.module.to("cpu")
        accel.clean()


def m_vramswap(torch, accel, a, model, ids, act_bytes):
    from vsimport import import_vramswap
    vs = import_vramswap(a.library)
    import vramswap.torch as vt
    res = {}
    if accel.cuda:
        accel.clean()
        free, total = torch.cuda.mem_get_info(accel.dev)
        limit = (total - free) + a.limit_bytes + act_bytes + 256 * MiB
        cfg = dict(intercept=True, headroom=0, limit=limit)
        try:
            dev = vs.Device("cuda", accel.index, **cfg)
        except vs.VramswapError as e:  # interception unavailable: measure without, say so
            res["intercept_error"] = str(e)
            cfg["intercept"] = False
            dev = vs.Device("cuda", accel.index, **cfg)
    else:
        cfg = dict(headroom=0, limit=a.limit_bytes + (1 << 20))
        dev = vs.Device("sim", 0, **cfg)
    res["config"] = {k: v for k, v in cfg.items()}
    off = None
    try:
        t0 = time.perf_counter()
        off = vt.offload(model.module, dev)
        res["offload_seconds"] = round(time.perf_counter() - t0, 2)
        c0 = None
        with torch.inference_mode():
            for _ in range(a.warmup):
                model.generate(model.module, ids, a.new_tokens)
        c0 = dict(off.counters)
        samples, out = run_generates(torch, accel, model, model.module, ids, a.new_tokens, 0, a.reps)
        c1 = dict(off.counters)
        passes = max(1, c1["passes"] - c0["passes"])
        res["per_forward"] = {k: round((c1[k] - c0[k]) / passes, 2) for k in c1}
        resident = set(off.resident_units())
        res["units"] = len(off.units)
        res["resident_units"] = len(resident)
        res["streamed_bytes_per_forward_est"] = sum(u.size for u in off.units if u.name not in resident)
        res["model_device"] = str(getattr(model.module, "device", None))
        res.update(samples=samples, out=out.cpu())
        return res
    finally:
        if off is not None:
            off.close()
        accel.sync()
        gc.collect()
        dev.close()


def m_accelerate(torch, accel, a, model, ids):
    import accelerate
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.hooks import remove_hook_from_module
    module = model.module
    dmap = infer_auto_device_map(module, max_memory={accel.index: a.limit_bytes, "cpu": 1 << 40},
                                 no_split_module_classes=getattr(module, "_no_split_modules", None),
                                 dtype=torch.bfloat16)
    module = dispatch_model(module, device_map=dmap)
    try:
        with torch.inference_mode():
            model.generate(module, ids, 2)  # warm-up, short
        samples, out = run_generates(torch, accel, model, module, ids, a.accel_tokens, 0, 1)
        return {"samples": samples, "out": out.cpu(), "accelerate": accelerate.__version__,
                "new_tokens": a.accel_tokens,
                "on_gpu_entries": sum(1 for v in dmap.values() if v == accel.index),
                "device_map_entries": len(dmap)}
    finally:
        remove_hook_from_module(module, recurse=True)
        accel.clean()


# ---------------------------------------------------------------------- main

def main(argv=None):
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    a = parse_args(argv)
    import torch
    bench.torch, bench.nn = torch, torch.nn
    if a.device == "cuda" and not torch.cuda.is_available():
        print("decode.py: no CUDA device visible to torch (--device cpu for a smoke run)", file=sys.stderr)
        return 2
    accel = bench.Accel(a.device, 0)
    if not accel.cuda:
        a.methods = [m for m in a.methods if m != "accelerate"]
        a.limit_bytes = min(a.limit_bytes, 1 * MiB)
    bw = bench.bandwidth(accel, 256 * MiB if accel.cuda else MiB, pinned=True)
    print("H2D pinned bandwidth: %.1f GB/s" % (bw / 1e9))
    t0 = time.perf_counter()
    model = build_llama(torch, a) if accel.cuda else build_tiny(torch, a)
    print("model: %.2f GiB %s (built in %.1f s); weights allowed on the device: %.2f GiB"
          % (model.nbytes / GiB, model.info, time.perf_counter() - t0, a.limit_bytes / GiB))
    vocab = 32000 if accel.cuda else 256
    ids = torch.randint(0, vocab, (1, a.prompt_tokens), generator=torch.Generator().manual_seed(1)).to(accel.dev)
    results = {"device": a.device, "torch": torch.__version__, "model_bytes": model.nbytes,
               "limit_bytes": a.limit_bytes, "pinned_Bps": bw, "prompt_tokens": a.prompt_tokens,
               "new_tokens": a.new_tokens, "model": model.info, "methods": {}}
    if accel.cuda:
        results["gpu"] = torch.cuda.get_device_name(accel.dev)
    streamed = max(0, model.nbytes - a.limit_bytes)
    failed = False
    ref = None
    act = 0
    for name in a.methods:
        print("== %s" % name)
        try:
            if name == "resident":
                r = m_resident(torch, accel, a, model, ids)
                act = r.get("activation_peak_bytes", 0)
            elif name == "vramswap":
                r = m_vramswap(torch, accel, a, model, ids, act)
            else:
                r = m_accelerate(torch, accel, a, model, ids)
        except ImportError as e:
            r = {"status": "not installed", "error": str(e)}
            print("   not installed: %s" % e)
            results["methods"][name] = r
            continue
        except Exception as e:  # noqa: BLE001 -- report, go on with the other methods
            traceback.print_exc()
            r = {"status": "failed", "error": "%s: %s" % (type(e).__name__, e)}
            failed = True
            results["methods"][name] = r
            continue
        out = r.pop("out")
        n = r.get("new_tokens", a.new_tokens)
        med = statistics.median(r["samples"])
        r.update(status="ok", median_s=med, per_forward_s=med / n)
        if name == "resident":
            ref = out
        elif ref is not None:
            k = min(out.shape[1], ref.shape[1])
            r["tokens_equal"] = bool((out[:, :k] == ref[:, :k]).all())
        results["methods"][name] = r
    res = results["methods"].get("resident", {})
    if res.get("status") == "ok":
        bound_fwd = max(res["per_forward_s"], streamed / bw)
        results["bound_per_forward_s"] = bound_fwd
        results["bound_s"] = bound_fwd * a.new_tokens
        for name, r in results["methods"].items():
            if r.get("status") == "ok":
                r["ratio_to_bound"] = r["per_forward_s"] / bound_fwd
    print()
    print("%-11s %10s %12s %8s %7s" % ("method", "generate", "per forward", "ratio", "tokens"))
    for name, r in results["methods"].items():
        if r.get("status") != "ok":
            print("%-11s %s" % (name, r.get("status")))
            continue
        print("%-11s %9.3fs %10.1fms %7.2fx %7s" % (
            name, r["median_s"], 1e3 * r["per_forward_s"], r.get("ratio_to_bound", float("nan")),
            {True: "equal", False: "DIFFER"}.get(r.get("tokens_equal"), "ref")))
    if "bound_s" in results:
        print("bound: %.3f s for %d new tokens (%.1f ms per forward: max(resident, %.2f GiB / %.1f GB/s))"
              % (results["bound_s"], a.new_tokens, 1e3 * results["bound_per_forward_s"], streamed / GiB, bw / 1e9))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print("wrote %s" % a.json)
    if failed:
        return 1
    vsr = results["methods"].get("vramswap", {})
    if a.strict and vsr.get("tokens_equal") is False:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
