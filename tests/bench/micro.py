#!/usr/bin/env python3
"""fault+unpin of a resident range through the Python bindings (median ns).

    python3 tests/bench/micro.py [--backend auto|sim|cuda] [--range 128M]
                                 [--iters 200000] [--json PATH] [--library PATH]

What a model pays per layer and per forward pass when its weights are already
resident: ``Allocation.fault()`` + ``Allocation.unpin(stream)``, the same
through ``with alloc.pinned(stream) as sig:``, and the bare ``VBAR.fault`` /
``VBAR.unpin`` pair, for a 1-page range and an N-page range, with the unpin
given VS_STREAM_NONE, stream 0 and a created stream (its int handle). The C
figures of tests/bench/micro.c are the floor these are compared with; the
target is <= 5 us from Python (docs/performance.md).

With PyTorch importable (and unless --no-torch), it also measures what
``vramswap.torch.offload`` adds per unit and per forward when every unit is
resident: a stack of UNITS tiny Linear modules run with and without offload;
(with - without) / UNITS is the hook, fault, view-swap and unpin cost of one
unit, the figure that decides whether a model that fits stays within 1.02x of
resident at small token counts (docs/performance.md).

Timing as in Note [Micro timing] (micro.c): batches of BATCH calls between two
clock reads, one sample per batch, the median sample is reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vsimport import import_vramswap  # noqa: E402

BATCH = 64
UNITS = 64          # modules in the offload-overhead model


def parse_size(s):
    s = s.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
    return int(s[:-1] if mult > 1 else s) * mult


def bench(name, what, fn, iters):
    """fn(n) runs the operation n times; returns a result dict."""
    fn(BATCH)  # warm-up
    samples = []
    for _ in range(max(1, iters // BATCH)):
        t0 = time.perf_counter_ns()
        fn(BATCH)
        samples.append((time.perf_counter_ns() - t0) / BATCH)
    samples.sort()
    return {"name": name, "what": what, "median_ns": statistics.median(samples),
            "min_ns": samples[0], "p90_ns": samples[min(len(samples) - 1, len(samples) * 9 // 10)],
            "samples": len(samples)}


def stream_none(vs):
    """VS_STREAM_NONE ((uintptr_t)-1) from the library's constant table."""
    v = vs._lib.CONSTANTS.get("VS_STREAM_NONE")
    return (v if v is not None else -1) & ((1 << 64) - 1)


def run(vs, args):
    STREAM_NONE = stream_none(vs)
    dev = vs.Device(None if args.backend == "auto" else args.backend, args.ordinal)
    results = []
    try:
        page = dev.page_size
        rng = parse_size(args.range) if args.range else ((4 << 20) if dev.backend == "sim"
                                                          else (128 << 20))
        rng = (rng + page - 1) // page * page
        vbar = dev.vbar(rng)
        whole = vbar.alloc(rng)
        stream = dev.stream()
        sh = stream.handle
        one = vs.Allocation(vbar, 0, page)   # a 1-page view of the same pages
        if whole.fault() is None:
            raise RuntimeError("the range could not be made resident (budget too small?)")
        whole.unpin(STREAM_NONE)

        def alloc_pair(a, s):
            fault, unpin = a.fault, a.unpin

            def f(n):
                for _ in range(n):
                    fault()
                    unpin(s)
            return f

        def ctx_pair(a, s):
            def f(n):
                for _ in range(n):
                    with a.pinned(s):
                        pass
            return f

        def vbar_pair(off, size, s):
            fault, unpin = vbar.fault, vbar.unpin

            def f(n):
                for _ in range(n):
                    fault(off, size)
                    unpin(off, size, s)
            return f

        streams = [("none", STREAM_NONE), ("default", 0), ("stream", sh)]
        gc.disable()
        try:
            for label, a in (("1page", one), ("range", whole)):
                for sname, s in streams:
                    results.append(bench("alloc_fault_unpin_%s_%s" % (label, sname),
                                         "Allocation.fault()+unpin(), %s, unpin %s" % (label, sname),
                                         alloc_pair(a, s), args.iters))
                results.append(bench("alloc_pinned_ctx_%s_none" % label,
                                     "with Allocation.pinned(), %s, unpin none" % label,
                                     ctx_pair(a, STREAM_NONE), args.iters))
                results.append(bench("vbar_fault_unpin_%s_none" % label,
                                     "VBAR.fault()+unpin(), %s, unpin none" % label,
                                     vbar_pair(a.offset, a.size, STREAM_NONE), args.iters))
        finally:
            gc.enable()
        dev.synchronize(sh)
        if not args.no_torch:
            results += offload_overhead(vs, dev, args)
        info = {"backend": dev.backend, "device": dev.props.name, "page_size": page,
                "range_bytes": rng, "pages": rng // page, "batch": BATCH,
                "python": sys.version.split()[0], "vramswap": vs.__version__}
    finally:
        dev.close()
    return info, results


def offload_overhead(vs, dev, args):
    """Per-unit cost of vramswap.torch.offload with everything resident."""
    try:
        import torch
        import vramswap.torch as vtorch
    except ImportError:
        return []
    tdev = vtorch.torch_device(dev)
    model = torch.nn.Sequential(*[torch.nn.Linear(8, 8, bias=False) for _ in range(UNITS)]).eval()
    model.requires_grad_(False)
    x = torch.randn(1, 8, device=tdev)
    sync = torch.cuda.synchronize if tdev.type == "cuda" else (lambda: None)

    def forwards(n):
        with torch.no_grad():
            for _ in range(n):
                model(x)
        sync()

    n = max(4, args.iters // (BATCH * UNITS))
    out = []
    model.to(tdev)
    plain = _per_forward(forwards, n)
    model.to("cpu")
    off = vtorch.offload(model, device=dev)
    try:
        forwards(3)  # learn the order, relayout, settle
        with_off = _per_forward(forwards, n)
    finally:
        off.close()
    out.append(dict(name="torch_forward_plain", what="%d x Linear(8,8) forward, ordinary" % UNITS,
                    **plain))
    out.append(dict(name="torch_forward_offload", what="the same under vramswap.torch.offload",
                    **with_off))
    per_unit = {k: (with_off[k] - plain[k]) / UNITS for k in ("median_ns", "min_ns", "p90_ns")}
    out.append(dict(name="torch_offload_per_unit", what="(offload - ordinary) / %d units" % UNITS,
                    samples=with_off["samples"], **per_unit))
    return out


def _per_forward(fn, n):
    fn(2)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn(1)
        samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return {"median_ns": statistics.median(samples), "min_ns": samples[0],
            "p90_ns": samples[min(len(samples) - 1, len(samples) * 9 // 10)], "samples": len(samples)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--ordinal", type=int, default=0)
    ap.add_argument("--range", default=None, help="bytes of the N-page range (default 128M, sim 4M)")
    ap.add_argument("--iters", type=int, default=200000, help="calls per test")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-torch", action="store_true", help="skip the vramswap.torch.offload overhead test")
    ap.add_argument("--library", help="libvramswap.so to load (else VRAMSWAP_LIBRARY, build/)")
    args = ap.parse_args(argv)
    vs = import_vramswap(args.library)
    info, results = run(vs, args)
    print("vramswap %s Python fault+unpin: %s (%s), page %d KiB, range %d KiB = %d pages"
          % (info["vramswap"], info["device"], info["backend"], info["page_size"] >> 10,
             info["range_bytes"] >> 10, info["pages"]))
    print("%-32s %10s %10s %10s  %s" % ("test", "median ns", "min ns", "p90 ns", "what"))
    for r in results:
        print("%-32s %10.0f %10.0f %10.0f  %s" % (r["name"], r["median_ns"], r["min_ns"],
                                                  r["p90_ns"], r["what"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info, tool="micro.py", results=results), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
