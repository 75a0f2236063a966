"""vramswap.torch.offload on a transformers decoder (GPU machine).

    python3 tests/gpu/offload_transformers.py [--json OUT]

One child process per PyTorch allocator setting (default, cudaMallocAsync,
expandable segments). Each child builds a randomly initialised Llama decoder
(no download) of about twice the weight budget it then gives vramswap, computes
reference logits with every weight resident, offloads the model under a limit,
and compares the logits (same kernels: expected bit-exact; reported as the max
absolute difference). Then it offloads two smaller models, used alternately, and
checks that the one that ran last holds the device (recency priority).
"""
import argparse
import json
import os
import subprocess
import sys
import time

CONFS = ["", "backend:cudaMallocAsync", "expandable_segments:True"]


def child(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    import vramswap
    import vramswap.torch as vt

    GiB = 1 << 30
    dev_t = torch.device("cuda")
    out = {"conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")}

    def build(layers, seed):
        cfg = LlamaConfig(hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                          num_hidden_layers=layers, num_attention_heads=args.hidden // 128,
                          num_key_value_heads=args.hidden // 128, vocab_size=32000,
                          max_position_embeddings=4096, torch_dtype=torch.bfloat16)
        # Built on the GPU (fast init, buffers such as rotary inv_freq computed by
        # the model itself), weights replaced by seeded random values, then moved
        # to the CPU: offload() starts from an ordinary CPU model.
        with torch.device(dev_t):
            m = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
        g = torch.Generator(device=dev_t).manual_seed(seed)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=g, device=dev_t, dtype=torch.float32).mul_(0.02))
        m = m.to("cpu")
        torch.cuda.empty_cache()
        return m

    def size_of(m):
        return sum(p.numel() * p.element_size() for p in m.parameters())

    ids = torch.randint(0, 32000, (1, args.tokens), generator=torch.Generator().manual_seed(1)).to(dev_t)
    model = build(args.layers, 0)
    msize = size_of(model)
    out["model_gib"] = round(msize / GiB, 2)
    model.to(dev_t)
    with torch.inference_mode():
        ref = model(ids).logits.float().cpu()
    model.to("cpu")
    # The two small models too are built now: once vramswap's limit is on,
    # building them on the GPU would (rightly) be refused by it.
    a, b = build(args.layers // 2, 2), build(args.layers // 2, 3)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()

    free, total = torch.cuda.mem_get_info()
    weights_budget = msize // 2
    limit = (total - free) + weights_budget + int(args.slack_gib * GiB)
    out["weight_budget_gib"] = round(weights_budget / GiB, 2)
    vdev = vramswap.Device("cuda", 0, intercept=True, headroom=0, limit=limit)
    off = vt.offload(model, vdev)
    logits = []
    t = []
    with torch.inference_mode():
        for _ in range(3):
            t0 = time.perf_counter()
            logits.append(model(ids).logits.float().cpu())
            t.append(time.perf_counter() - t0)
    out["pass_seconds"] = [round(x, 3) for x in t]
    out["max_abs_diff"] = max(float((l - ref).abs().max()) for l in logits)
    out["exact"] = all(torch.equal(l, ref) for l in logits)
    out["counters"] = dict(off.counters)
    out["resident_units"] = len(off.resident_units())
    out["units"] = len(off.units)
    s = vdev.stats()
    out["pages_evicted"] = s.pages_evicted
    out["peak_weights_gib"] = round(s.peak_weights / GiB, 2)
    off.close()
    del model

    # Two models alternately: the one that ran last keeps the device.
    oa, ob = vt.offload(a, vdev), vt.offload(b, vdev)
    small = ids[:, : max(16, args.tokens // 8)]
    seq = []
    with torch.inference_mode():
        for who, m in (("a", a), ("b", b), ("a", a), ("b", b), ("a", a)):
            m(small)
            m(small)
            torch.cuda.synchronize()
            seq.append((who, round(oa.vbar.loaded_size / GiB, 2), round(ob.vbar.loaded_size / GiB, 2)))
    out["alternating"] = seq
    out["recency_ok"] = all((la > lb) if who == "a" else (lb > la) for who, la, lb in seq)
    oa.close()
    ob.close()
    vdev.close()
    out["pass"] = out["exact"] and out["recency_ok"] and out["counters"]["streamed"] > 0
    print("RESULT " + json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--slack-gib", type=float, default=1.5)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    rows = []
    for conf in CONFS:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if conf:
            env["PYTORCH_CUDA_ALLOC_CONF"] = conf
        else:
            env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--hidden", str(args.hidden),
               "--layers", str(args.layers), "--tokens", str(args.tokens), "--slack-gib", str(args.slack_gib)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        res = None
        for line in p.stdout.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        if res is None:
            res = {"conf": conf, "pass": False, "error": (p.stderr or p.stdout)[-1500:]}
        rows.append(res)
        print(json.dumps(res), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    n = sum(bool(r.get("pass")) for r in rows)
    print("%d passed, %d failed" % (n, len(rows) - n))
    return 0 if n == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
