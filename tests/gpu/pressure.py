"""PyTorch pressure test (GPU machine): weights in a VBAR plus activations that
together exceed the memory the card has free, under each of PyTorch's
allocator settings, with and without vramswap's allocation interception.

    python3 tests/gpu/pressure.py [--free-gib 8] [--layers 40] [--json OUT]

The parent runs one child process per (allocator setting, mode), because
PYTORCH_CUDA_ALLOC_CONF is read once per process. Modes:
  intercept  the card is filled ("ballast") until --free-gib is left; vramswap
             opens the device with interception: torch's allocations evict
             weight pages and the run must finish with the reference output;
  none       same ballast, no interception: nobody evicts the weights, so torch
             must fail with out-of-memory (this is what the test shows);
  limit      no ballast; vramswap's limit makes the card behave like one with
             --free-gib in total; must finish with the reference output.
Each child computes its reference first (all weights copied straight from
pinned host memory, same kernels, before any pressure) and compares exactly.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONFS = ["", "backend:cudaMallocAsync", "expandable_segments:True"]
MODES = ["intercept", "none", "limit"]


def child(args):
    import torch
    import vramswap

    dev_t = torch.device("cuda")
    D, NL, T = args.dim, args.layers, args.tokens
    GiB = 1 << 30
    layer_bytes = D * D * 2
    torch.manual_seed(0)
    result = {"conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), "mode": args.mode}

    import vramswap.torch as vt

    def view(ptr, n):
        return vt.as_tensor(ptr, torch.bfloat16, (D, D), device=dev_t)

    # Host weights, pinned: a vramswap host buffer holding every layer (made on the GPU, copied down).
    # The device used for the host buffer is opened later; use torch's pinned memory here.
    host = torch.empty(NL, D, D, dtype=torch.bfloat16, pin_memory=True)
    for i in range(NL):
        host[i].copy_(torch.randn(D, D, device=dev_t, dtype=torch.bfloat16).div_(D ** 0.5))
    x0 = torch.randn(T, D, device=dev_t, dtype=torch.bfloat16)
    blob_bytes = int(args.blob_gib * GiB)

    def forward(get_w, put_w):
        x, acts = x0, []
        for i in range(NL):
            w = get_w(i)
            x = torch.nn.functional.linear(x, w)
            put_w(i)
            acts.append(x)  # activations kept alive: they add up to the pressure
            if i == NL // 2:
                blob = torch.empty(blob_bytes, dtype=torch.uint8, device=dev_t)
                blob.fill_(1)
                x = x + blob[:1].to(x.dtype) * 0
                del blob
        return x.float().cpu()

    ref = forward(lambda i: host[i].to(dev_t, non_blocking=True), lambda i: None)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()

    ballast = None
    if args.mode in ("intercept", "none"):
        free, total = torch.cuda.mem_get_info()
        ballast = torch.empty(max(0, free - int(args.free_gib * GiB)), dtype=torch.uint8, device=dev_t)
        torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()
    result["free_before_gib"] = round(free / GiB, 2)
    cfg = dict(intercept=args.mode != "none", headroom=256 << 20)
    if args.mode == "limit":
        used_by_others = total - free
        cfg["limit"] = used_by_others + int(args.free_gib * GiB)
    dev = vramswap.Device("cuda", 0, **cfg)
    result["intercepting"] = bool(dev.props.intercepting)
    vbar = dev.vbar(NL * layer_bytes)
    allocs = [vbar.alloc(layer_bytes) for _ in range(NL)]
    # Views are made once a range is mapped: torch checks the pointer with the driver.
    views = [None] * NL
    last = [None] * NL
    pinned = [False] * NL
    streamed = [0]

    def get_w(i):
        sig = allocs[i].fault()
        if sig is None:
            streamed[0] += 1
            return host[i].to(dev_t, non_blocking=True)
        pinned[i] = True
        if views[i] is None:
            views[i] = view(allocs[i].ptr, layer_bytes)
        if sig != last[i]:
            views[i].copy_(host[i], non_blocking=True)
            last[i] = sig
        return views[i]

    def put_w(i):
        if pinned[i]:
            allocs[i].unpin(stream=torch.cuda.current_stream().cuda_stream)
            pinned[i] = False

    # Load the model first (as an application does before its big step): the
    # weights take the free memory; the activations of the forward then need it back.
    for i in range(NL):
        get_w(i)
        put_w(i)
    torch.cuda.synchronize()
    result["loaded_gib"] = round(vbar.loaded_size / GiB, 2)
    streamed[0] = 0
    t0 = time.perf_counter()
    try:
        diffs = []
        for it in range(args.iters):
            out = forward(get_w, put_w)
            diffs.append(float((out - ref).abs().max()))
        result["status"] = "ok"
        result["max_abs_diff"] = max(diffs)
        result["exact"] = all(d == 0.0 for d in diffs)
    except torch.cuda.OutOfMemoryError as e:
        result["status"] = "oom"
        result["error"] = str(e).splitlines()[0][:200]
        for i in range(NL):
            put_w(i)
    torch.cuda.synchronize()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    s = dev.stats()
    result.update(streamed_layer_uses=streamed[0], pages_evicted=s.pages_evicted,
                  intercepted_allocs=s.intercepted_allocs, intercepted_oom=s.intercepted_oom,
                  reclaims=s.reclaims, transient_retries=s.transient_retries,
                  peak_weights_gib=round(s.peak_weights / GiB, 2),
                  peak_intercepted_gib=round(s.peak_intercepted / GiB, 2))
    del views
    vbar.close()
    dev.close()
    del ballast
    print("RESULT " + json.dumps(result), flush=True)


def parent(args):
    rows = []
    for conf in CONFS:
        for mode in MODES:
            env = dict(os.environ, PYTORCH_CUDA_ALLOC_CONF=conf, PYTHONUNBUFFERED="1")
            if not conf:
                env.pop("PYTORCH_CUDA_ALLOC_CONF")
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--mode", mode,
                   "--free-gib", str(args.free_gib), "--layers", str(args.layers), "--dim", str(args.dim),
                   "--tokens", str(args.tokens), "--iters", str(args.iters), "--blob-gib", str(args.blob_gib)]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            res = None
            for line in p.stdout.splitlines():
                if line.startswith("RESULT "):
                    res = json.loads(line[7:])
            if res is None:
                res = {"conf": conf, "mode": mode, "status": "crash rc=%d" % p.returncode,
                       "error": (p.stderr or p.stdout)[-800:]}
            expected = "oom" if mode == "none" else "ok"
            res["pass"] = res.get("status") == expected and (mode == "none" or res.get("exact", False)
                                                             or res.get("max_abs_diff", 1) == 0)
            rows.append(res)
            print(json.dumps(res), flush=True)
    print()
    print("%-26s %-10s %-6s %-5s %9s %8s %10s %8s" % ("PYTORCH_CUDA_ALLOC_CONF", "mode", "status", "pass",
                                                       "maxdiff", "evicted", "icpt_alloc", "streamed"))
    for r in rows:
        print("%-26s %-10s %-6s %-5s %9s %8s %10s %8s" % (r["conf"] or "(default)", r["mode"], r["status"][:6],
                                                           r["pass"], r.get("max_abs_diff", "-"),
                                                           r.get("pages_evicted", "-"), r.get("intercepted_allocs", "-"),
                                                           r.get("streamed_layer_uses", "-")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    npass = sum(r["pass"] for r in rows)
    print("%d passed, %d failed" % (npass, len(rows) - npass))
    return 0 if npass == len(rows) else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--mode", choices=MODES, default="intercept")
    ap.add_argument("--free-gib", type=float, default=8.0)
    ap.add_argument("--layers", type=int, default=40)   # 40 x 128 MiB = 5 GiB of weights
    ap.add_argument("--dim", type=int, default=8192)
    ap.add_argument("--tokens", type=int, default=4096)  # 64 MiB activations per layer, 2.5 GiB kept
    ap.add_argument("--blob-gib", type=float, default=2.0)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
