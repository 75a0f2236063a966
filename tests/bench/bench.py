#!/usr/bin/env python3
"""vramswap forward-pass benchmark: every method, one process, the same model,
the same free memory.

    python3 tests/bench/bench.py [--quick] [--methods LIST] [--workloads LIST]
                                 [--json PATH] [--library PATH] [--dry-run]
    python3 tests/bench/chart.py bench.json bench.png      # the chart (matplotlib)

Run on the GPU machine from the repository root after building into build/
(the library is found through --library, VRAMSWAP_LIBRARY or build/core/).
docs/performance.md explains the method; in short:

- bound = max(time with every weight resident, streamed bytes / pinned H2D
  bandwidth), where streamed bytes = model bytes - the limit. Bandwidth is
  measured in the same run. Each method's ratio = its median / bound.
- Memory: "resident" runs with no limit. Every other method of a limited
  workload gets the same free memory: a ballast tensor fills the card until
  exactly limit + staging (2 x the largest unit) + the activation reserve
  (measured in the resident run) is free. vramswap sees the same card (its
  default headroom, interception on), and no limit of its own.
- Methods: resident, vramswap (vramswap.torch.offload), prefetch (the anchor's
  2-buffer prefetch from pinned memory, first units resident), naive-pinned
  (each non-resident unit copied from pinned memory right before use),
  naive-pageable (the same from pageable memory), accelerate (dispatch_model,
  device map keeping what fits), comfy-aimdo (when importable).
- Workloads: stack-T (64 bf16 Linear 8192x8192 = 8 GiB, limit 4 GiB, T tokens),
  fits-T (the same stack, no limit), llama-T (a randomly initialised
  LlamaForCausalLM of ~2x the limit, T tokens, bf16; needs transformers).

--device cpu runs the same code on the CPU with vramswap's simulated device (a
smoke test of the harness: tiny sizes, timings mean nothing).

generate() with a KV cache (the decode workload) is tests/bench/decode.py, which
reuses parse_size, bandwidth and Accel from here.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

GiB = 1 << 30
MiB = 1 << 20
ALIGN = 256                      # bytes; alignment of each tensor inside a unit's flat copy
ACT_MARGIN = 512 * MiB           # added to the measured activation peak (covers vramswap's headroom)
METHODS = ["resident", "vramswap", "prefetch", "naive-pinned", "naive-pageable", "accelerate",
           "comfy-aimdo"]
STREAMING_PEERS = ("prefetch", "naive-pinned", "naive-pageable")
TARGET_LIMITED = 1.05            # vramswap / bound, limited workloads
TARGET_FITS = 1.02               # vramswap / resident, when the model fits


# ====================================================================== the plan (no torch)

def parse_size(s):
    if isinstance(s, (int, float)):
        return int(s)
    t = s.strip().upper()
    for suf in ("IB", "B"):
        if t.endswith(suf) and len(t) > len(suf) and t[-len(suf) - 1] in "KMGT":
            t = t[:-len(suf)]
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def ints(s):
    return [int(x) for x in str(s).split(",") if x.strip()]


def llama_dims(a):
    """LlamaConfig dimensions; the layer count makes the model ~ a.llama_factor x the limit."""
    h, i, v = a.llama_hidden, a.llama_intermediate, a.llama_vocab
    per_layer = 2 * (4 * h * h + 3 * h * i + 2 * h)       # bf16 bytes (q,k,v,o; gate,up,down; 2 norms)
    fixed = 2 * (2 * v * h + h)                           # embed + lm_head (untied) + final norm
    layers = a.llama_layers or max(1, round((a.llama_factor * a.limit - fixed) / per_layer))
    return dict(hidden=h, intermediate=i, vocab=v, layers=layers, heads=max(1, h // 128),
                model_bytes=fixed + layers * per_layer, largest_unit=2 * v * h)


def make_plan(a):
    """[workload dict] in run order, filtered by --workloads."""
    stack_bytes = 2 * a.dim * a.dim * a.layers
    plan = []
    for t in ints(a.tokens):
        plan.append(dict(name="stack-%d" % t, model="stack", tokens=t, limit=a.limit,
                         model_bytes=stack_bytes, largest_unit=2 * a.dim * a.dim))
    for t in ints(a.fits_tokens):
        plan.append(dict(name="fits-%d" % t, model="stack", tokens=t, limit=None,
                         model_bytes=stack_bytes, largest_unit=2 * a.dim * a.dim))
    d = llama_dims(a)
    for t in ints(a.llama_tokens):
        plan.append(dict(name="llama-%d" % t, model="llama", tokens=t, limit=a.limit,
                         model_bytes=d["model_bytes"], largest_unit=d["largest_unit"]))
    if a.workloads:
        want = [w.strip() for w in a.workloads.split(",") if w.strip()]
        plan = [w for w in plan if any(w["name"] == x or w["name"].split("-")[0] == x for x in want)]
    for w in plan:
        w["streamed_bytes"] = max(0, w["model_bytes"] - w["limit"]) if w["limit"] else 0
        w["staging_bytes"] = 2 * w["largest_unit"] if w["limit"] else 0
    return plan


def selected_methods(a):
    if not a.methods:
        return list(METHODS)
    want = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in want if m not in METHODS]
    if bad:
        raise SystemExit("bench.py: unknown method(s) %s (known: %s)" % (", ".join(bad), ", ".join(METHODS)))
    return ["resident"] + [m for m in METHODS if m in want and m != "resident"]  # resident: the bound


def skip_reason(method, w):
    if w["limit"] is None and method in STREAMING_PEERS:
        return "n/a: the model fits (this method would equal resident)"
    return None


def print_plan(a, plan, methods):
    print("plan: %d workload(s), methods %s; %d warm-up + %d timed passes each (median)"
          % (len(plan), ", ".join(methods), a.warmup, a.reps))
    if any(w["model"] == "llama" for w in plan):
        d = llama_dims(a)
        print("  llama: hidden %d, intermediate %d, %d layers, %d heads, vocab %d = %.2f GiB"
              % (d["hidden"], d["intermediate"], d["layers"], d["heads"], d["vocab"], d["model_bytes"] / GiB))
    for w in plan:
        lim = "no limit" if w["limit"] is None else "limit %.2f GiB" % (w["limit"] / GiB)
        print("  %-12s %-5s %6d tokens  model %.2f GiB  %s  streamed %.2f GiB/pass  staging %.0f MiB"
              % (w["name"], w["model"], w["tokens"], w["model_bytes"] / GiB, lim,
                 w["streamed_bytes"] / GiB, w["staging_bytes"] / MiB))
        for m in methods:
            r = skip_reason(m, w)
            if r:
                print("      %-15s skipped (%s)" % (m, r))


# ====================================================================== torch side

torch = nn = None  # imported in main() so that --dry-run and --help need no torch


class Accel:
    """The compute device: CUDA, or the CPU for --device cpu (smoke runs)."""

    def __init__(self, kind, index):
        self.cuda = kind == "cuda"
        self.dev = torch.device("cuda", index) if self.cuda else torch.device("cpu")
        self.index = index
        if self.cuda:
            torch.cuda.set_device(index)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.dev)

    def clean(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.dev)
            torch.cuda.empty_cache()

    def free(self):
        return torch.cuda.mem_get_info(self.dev)[0] if self.cuda else None

    def allocated(self):
        return torch.cuda.memory_allocated(self.dev) if self.cuda else 0

    def pinned_empty(self, nbytes):
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=self.cuda)

    def stream(self):
        return torch.cuda.Stream(self.dev) if self.cuda else None

    def use_stream(self, s):
        return torch.cuda.stream(s) if self.cuda else contextlib.nullcontext()

    def current_stream(self):
        return torch.cuda.current_stream(self.dev) if self.cuda else None

    def event(self):
        return torch.cuda.Event() if self.cuda else _NoEvent()


class _NoEvent:
    def record(self, stream=None):
        pass


def _wait(stream, event):
    if stream is not None:
        stream.wait_event(event)


def is_oom(e):
    oom = getattr(torch.cuda, "OutOfMemoryError", None) if torch is not None else None
    return (oom is not None and isinstance(e, oom)) or "out of memory" in str(e).lower()


# ---------------------------------------------------------------------- models

def make_stack_class():
    class Stack(nn.Module):
        """`layers` bf16 Linear(dim, dim, bias=False), applied in sequence."""

        def __init__(self, dim, layers, device="meta"):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(dim, dim, bias=False, device=device, dtype=torch.bfloat16)
                                        for _ in range(layers))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x
    return Stack


class Master:
    """The canonical weights of one model, in pageable host memory, and a way to
    build a fresh module over them (no copy) for each method."""

    def __init__(self, key, skeleton, params, buffers, make_input, forward):
        self.key = key
        self.skeleton = skeleton      # () -> module on the meta device
        self.params = params          # name -> CPU tensor
        self.buffers = buffers        # name -> CPU tensor
        self.make_input = make_input  # (accel, tokens) -> input on the device
        self.forward = forward        # (model, input) -> output tensor
        self.nbytes = sum(t.numel() * t.element_size() for t in params.values())

    def instantiate(self):
        """A module whose parameters are the master tensors (shared, never
        written: methods replace .data, they do not copy into it)."""
        m = self.skeleton()
        for name, t in self.params.items():
            mod, leaf = _owner(m, name)
            mod._parameters[leaf] = nn.Parameter(t, requires_grad=False)
        for name, t in self.buffers.items():
            mod, leaf = _owner(m, name)
            mod._buffers[leaf] = t
        return m.eval()


def _owner(m, dotted):
    prefix, _, leaf = dotted.rpartition(".")
    return (m.get_submodule(prefix) if prefix else m), leaf


def build_stack_master(accel, a):
    Stack = make_stack_class()
    gen_dev = accel.dev
    params = {}
    torch.manual_seed(0)
    for i in range(a.layers):  # random on the device (fast), then to pageable host memory
        w = torch.randn(a.dim, a.dim, device=gen_dev, dtype=torch.bfloat16).div_(a.dim ** 0.5)
        params["layers.%d.weight" % i] = w.cpu() if accel.cuda else w
    accel.sync()

    def make_input(ac, tokens):
        g = torch.Generator(device="cpu").manual_seed(1)
        return torch.randn(tokens, a.dim, generator=g, dtype=torch.bfloat16).to(ac.dev)

    return Master("stack", lambda: Stack(a.dim, a.layers), params, {}, make_input,
                  lambda model, x: model(x))


def build_llama_master(accel, a):
    import transformers
    from transformers import AutoModelForCausalLM, LlamaConfig
    d = llama_dims(a)
    cfg = LlamaConfig(hidden_size=d["hidden"], intermediate_size=d["intermediate"],
                      num_hidden_layers=d["layers"], num_attention_heads=d["heads"],
                      num_key_value_heads=d["heads"], vocab_size=d["vocab"],
                      max_position_embeddings=max(4096, max(ints(a.llama_tokens) or [0])),
                      tie_word_embeddings=False, use_cache=False)

    def from_config(**kw):
        try:
            return AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16,
                                                    attn_implementation="sdpa", **kw)
        except (TypeError, ValueError):
            return AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, **kw)

    # Built (and randomly initialised) on the compute device, where it is fast,
    # then moved to pageable host memory; methods build their modules on the
    # meta device and take these tensors (Master.instantiate).
    torch.manual_seed(0)
    with _device_ctx(accel.dev):
        m = from_config()
    m.eval()
    params = {n: (p.detach().cpu() if accel.cuda else p.detach()) for n, p in m.named_parameters()}
    buffers = {n: (b.cpu() if accel.cuda else b) for n, b in m.named_buffers()}
    del m
    accel.clean()

    def skeleton():
        with _device_ctx(torch.device("meta")):
            return from_config()

    def make_input(ac, tokens):
        g = torch.Generator(device="cpu").manual_seed(1)
        return torch.randint(0, d["vocab"], (1, tokens), generator=g).to(ac.dev)

    def forward(model, ids):
        return model(input_ids=ids, use_cache=False).logits

    master = Master("llama", skeleton, params, buffers, make_input, forward)
    master.versions = {"transformers": transformers.__version__}
    return master


def _device_ctx(dev):
    if hasattr(dev, "__enter__"):
        return dev  # torch >= 2.0: a device is a context manager
    if dev.type == "meta":
        from accelerate import init_empty_weights
        return init_empty_weights()
    return contextlib.nullcontext()


class Unit:
    """A submodule owning parameters directly (vramswap.torch's unit too), with
    its tensors laid out in one flat buffer (ALIGN-aligned offsets)."""

    __slots__ = ("name", "module", "params", "offsets", "nbytes", "resident", "host", "cpu", "slot",
                 "host_views", "buf_views")

    def __init__(self, name, module, params):
        self.name, self.module, self.params = name, module, params  # params: [(leaf, Parameter)]
        self.offsets, off = [], 0
        for _, p in params:
            self.offsets.append(off)
            off += (p.numel() * p.element_size() + ALIGN - 1) // ALIGN * ALIGN
        self.nbytes = off
        self.resident = False
        self.host = None        # flat pinned copy (uint8)
        self.host_views = None  # the tensors over it (made once: no churn on the hot path)
        self.buf_views = {}     # prefetch buffer index -> the tensors over it
        self.cpu = None         # the tensors' original (pageable) data
        self.slot = None

    def views(self, flat):
        return [flat[o:o + p.numel() * p.element_size()].view(p.dtype).view(p.shape)
                for o, (_, p) in zip(self.offsets, self.params)]

    def point(self, tensors):
        for (_, p), t in zip(self.params, tensors):
            p.data = t


def units_of(model):
    seen, out = set(), []
    for name, m in model.named_modules():
        ps = []
        for leaf, p in m._parameters.items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                ps.append((leaf, p))
        if ps:
            out.append(Unit(name, m, ps))
    return out


def choose_resident(units, limit):
    """The first units (registration order) whose sizes add up to at most limit."""
    used = 0
    for u in units:
        if limit is None or used + u.nbytes <= limit:
            u.resident = True
            used += u.nbytes
        else:
            break
    return used


def buffers_to(model, dev):
    for m in model.modules():
        for k, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[k] = b.to(dev)


# ---------------------------------------------------------------------- timing

def timed(ctx, fwd, warmup, reps):
    """Warm-up passes, then `reps` passes each timed between two synchronizes."""
    out = None
    with torch.no_grad():
        for _ in range(warmup):
            out = fwd()
        ctx.accel.sync()
        samples = []
        for _ in range(reps):
            ctx.accel.sync()
            t0 = time.perf_counter()
            out = fwd()
            ctx.accel.sync()
            samples.append(time.perf_counter() - t0)
    return samples, out


def bandwidth(accel, nbytes, pinned, reps=10):
    """Host -> device bytes/s (median of reps copies of nbytes)."""
    src = accel.pinned_empty(nbytes) if pinned else torch.empty(nbytes, dtype=torch.uint8)
    src.fill_(1)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=accel.dev)
    ts = []
    for i in range(reps + 1):
        accel.sync()
        t0 = time.perf_counter()
        dst.copy_(src, non_blocking=pinned)
        accel.sync()
        if i:
            ts.append(time.perf_counter() - t0)
    del src, dst
    accel.clean()
    return nbytes / statistics.median(ts)


# ====================================================================== methods
#
# Each method: (ctx, w, master) -> dict(samples=[s...], out=tensor, extra={...}).
# It builds its own module from `master`, and releases everything it made before
# returning or raising (the runner then collects garbage and empties the cache).

def m_resident(ctx, w, master):
    model = master.instantiate()
    model.to(ctx.accel.dev)
    x = ctx.inputs
    base = ctx.accel.allocated()
    if ctx.accel.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.accel.dev)
    samples, out = timed(ctx, lambda: master.forward(model, x), ctx.warmup, ctx.reps)
    extra = {}
    if ctx.accel.cuda:
        extra["activation_peak_bytes"] = torch.cuda.max_memory_allocated(ctx.accel.dev) - base
    return dict(samples=samples, out=out, extra=extra)


def m_vramswap(ctx, w, master):
    vs = ctx.vramswap()
    vtorch = __import__("vramswap.torch", fromlist=["offload"])
    cfg = dict(ctx.args.vs_config)
    if ctx.accel.cuda:
        backend = "hip" if getattr(torch.version, "hip", None) else "cuda"
        cfg.setdefault("intercept", True)
    else:
        backend = "sim"
        if w["limit"] is not None:  # no ballast on the simulator: the limit stands in for it
            cfg.setdefault("headroom", 1 << 20)
            cfg.setdefault("limit", w["limit"] + w["staging_bytes"] + (1 << 20))
    ordinal = ctx.accel.index if ctx.accel.cuda else 0
    intercept_error = None
    try:
        dev = vs.Device(backend, ordinal, **cfg)
    except vs.VramswapError as e:
        if "intercept" in ctx.args.vs_config or not cfg.get("intercept"):
            raise
        intercept_error = str(e)  # hooks could not be installed: measure without them, say so
        cfg["intercept"] = False
        dev = vs.Device(backend, ordinal, **cfg)
    off = None
    try:
        model = master.instantiate()
        kw = dict(ctx.args.vs_offload)
        off = vtorch.offload(model, device=dev, **kw)
        x = ctx.inputs
        fwd = lambda: master.forward(model, x)  # noqa: E731
        with torch.no_grad():
            for _ in range(ctx.warmup):
                fwd()
        ctx.accel.sync()
        c0 = dict(getattr(off, "counters", {}))
        dev.reset_stats()
        samples, out = timed(ctx, fwd, 0, ctx.reps)
        c1 = dict(getattr(off, "counters", {}))
        st = dev.stats()
        n = max(1, ctx.reps)
        extra = {"per_pass": {k: round((c1[k] - c0.get(k, 0)) / n, 2) for k in c1
                              if isinstance(c1[k], (int, float))},
                 "units": len(getattr(off, "units", [])),
                 "resident_units": len(off.resident_units()) if hasattr(off, "resident_units") else None,
                 "page_size": dev.page_size, "intercepting": bool(dev.props.intercepting),
                 "config": {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in cfg.items()},
                 "offload_args": kw, "intercept_error": intercept_error,
                 "stats": {k: getattr(st, k) for k in (
                     "faults", "fault_hits", "fault_maps", "fault_not_resident", "fault_fast_fails",
                     "pages_mapped", "pages_evicted", "chunks_created", "chunks_released",
                     "chunks_reused", "event_waits", "reclaims", "intercepted_allocs",
                     "transient_retries", "peak_weights", "peak_scratch") if hasattr(st, k)}}
        return dict(samples=samples, out=out, extra=extra)
    finally:
        try:
            if off is not None:
                off.close()
        finally:
            ctx.accel.sync()
            gc.collect()
            dev.close()


def _streamed(ctx, w, master, mode):
    """naive-pinned, naive-pageable and prefetch: the same units as vramswap,
    the first ones (registration order) resident up to the limit, hooks that
    bring the others in just before their forward."""
    accel = ctx.accel
    model = master.instantiate()
    buffers_to(model, accel.dev)
    units = units_of(model)
    choose_resident(units, w["limit"])
    streamed = [u for u in units if not u.resident]
    for u in units:
        u.cpu = [p.data for _, p in u.params]
        if u.resident:
            u.point([t.to(accel.dev) for t in u.cpu])
        elif mode != "naive-pageable":
            u.host = ctx.pinned_copy(master.key, u)
            u.host_views = u.views(u.host)
            u.point(u.host_views)  # between forwards: the pinned copy, like vramswap's host buffer
    hooks = []
    state = dict(order=None, trace=[], k=0)
    cur = accel.current_stream()
    if mode == "prefetch":
        size = max([u.nbytes for u in streamed] or [0])
        bufs = [torch.empty(size, dtype=torch.uint8, device=accel.dev) for _ in range(2)]
        done = [accel.event() for _ in range(2)]
        used = [accel.event() for _ in range(2)]
        cs = accel.stream()

        def issue(j):
            b = j % 2
            u = state["order"][j]
            _wait(cs, used[b])
            with accel.use_stream(cs):
                bufs[b][:u.nbytes].copy_(u.host, non_blocking=True)
                done[b].record(cs)

        def root_pre(module, args):
            state["k"] = 0
            if state["order"]:
                issue(0)
        hooks.append(model.register_forward_pre_hook(root_pre))

    def pre(u):
        def hook(module, args):
            if mode == "naive-pageable":
                u.point([t.to(accel.dev) for t in u.cpu])
                return
            order = state["order"]
            if mode == "prefetch" and order is not None:
                k = state["k"]
                if k < len(order) and order[k] is u:
                    b = k % 2
                    if k + 1 < len(order):
                        issue(k + 1)
                    _wait(cur, done[b])
                    u.slot = b
                    v = u.buf_views.get(b)
                    if v is None:
                        v = u.buf_views[b] = u.views(bufs[b])
                    u.point(v)
                    return
            elif mode == "prefetch":
                state["trace"].append(u)  # first pass: learn the execution order
            u.slot = None
            u.point(u.views(u.host.to(accel.dev, non_blocking=True)))
        return hook

    def post(u):
        def hook(module, args, output):
            if u.slot is not None:
                used[u.slot].record(cur)
                state["k"] += 1
                u.slot = None
            u.point(u.cpu if mode == "naive-pageable" else u.host_views)
        return hook

    for u in streamed:
        hooks.append(u.module.register_forward_pre_hook(pre(u)))
        hooks.append(u.module.register_forward_hook(post(u)))
    x = ctx.inputs
    fwd = lambda: master.forward(model, x)  # noqa: E731
    try:
        if mode == "prefetch":
            with torch.no_grad():
                fwd()  # the recording pass (one of the warm-ups)
            seen, order = set(), []
            for u in state["trace"]:
                if id(u) not in seen:
                    seen.add(id(u))
                    order.append(u)
            state["order"] = order
        samples, out = timed(ctx, fwd, max(0, ctx.warmup - (mode == "prefetch")), ctx.reps)
        extra = {"resident_units": sum(u.resident for u in units), "units": len(units),
                 "resident_bytes": sum(u.nbytes for u in units if u.resident),
                 "streamed_bytes_per_pass": sum(u.nbytes for u in streamed)}
        return dict(samples=samples, out=out, extra=extra)
    finally:
        for h in hooks:
            h.remove()
        accel.sync()


def m_prefetch(ctx, w, master):
    return _streamed(ctx, w, master, "prefetch")


def m_naive_pinned(ctx, w, master):
    return _streamed(ctx, w, master, "naive-pinned")


def m_naive_pageable(ctx, w, master):
    return _streamed(ctx, w, master, "naive-pageable")


def m_accelerate(ctx, w, master):
    import accelerate
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.hooks import remove_hook_from_module
    model = master.instantiate()
    idx = ctx.accel.index if ctx.accel.cuda else "cpu"
    if w["limit"] is None:
        dmap = {"": idx}
    elif master.key == "stack":  # as the anchor: the first layers that fit on the GPU
        units = units_of(model)
        choose_resident(units, w["limit"])
        dmap = {u.name: (idx if u.resident else "cpu") for u in units}
    else:
        dmap = infer_auto_device_map(model, max_memory={idx: w["limit"], "cpu": 1 << 40},
                                     no_split_module_classes=getattr(model, "_no_split_modules", None),
                                     dtype=torch.bfloat16)
    model = dispatch_model(model, device_map=dmap)
    try:
        x = ctx.inputs
        samples, out = timed(ctx, lambda: master.forward(model, x), ctx.warmup, ctx.reps)
        on_gpu = sum(1 for v in dmap.values() if v == idx)
        return dict(samples=samples, out=out, extra={"accelerate": accelerate.__version__,
                                                      "device_map_entries": len(dmap),
                                                      "on_gpu_entries": on_gpu})
    finally:
        remove_hook_from_module(model, recurse=True)
        ctx.accel.sync()


def m_comfy_aimdo(ctx, w, master):
    try:
        import comfy_aimdo
    except ImportError:
        raise NotInstalled("comfy_aimdo is not importable")
    raise Skipped("comfy_aimdo %s is importable, but this benchmark has no adapter for it yet"
                  % getattr(comfy_aimdo, "__version__", "(unknown version)"))


METHOD_FNS = {"resident": m_resident, "vramswap": m_vramswap, "prefetch": m_prefetch,
              "naive-pinned": m_naive_pinned, "naive-pageable": m_naive_pageable,
              "accelerate": m_accelerate, "comfy-aimdo": m_comfy_aimdo}


class NotInstalled(Exception):
    pass


OPTIONAL_MODULES = ("accelerate", "transformers", "comfy_aimdo")  # missing: "not installed"


class Skipped(Exception):
    pass


# ====================================================================== the runner

class Ctx:
    def __init__(self, args, accel):
        self.args = args
        self.accel = accel
        self.warmup = args.warmup
        self.reps = args.reps
        self.inputs = None
        self._vs = None
        self._pinned = {}   # (model key, unit name) -> flat pinned copy, shared by the peers

    def vramswap(self):
        if self._vs is None:
            from vsimport import import_vramswap
            self._vs = import_vramswap(self.args.library)
        return self._vs

    def pinned_copy(self, key, u):
        flat = self._pinned.get((key, u.name))
        if flat is None or flat.numel() != u.nbytes:
            flat = self.accel.pinned_empty(u.nbytes)
            for dst, (_, p) in zip(u.views(flat), u.params):
                dst.copy_(p.data)
            self._pinned[(key, u.name)] = flat
        return flat

    def drop_pinned(self):
        self._pinned.clear()


def compare(out, ref):
    if out is None or ref is None:
        return None, None
    o = out.detach().float().cpu()
    if o.shape != ref.shape:
        return False, float("nan")
    diff = (o - ref).abs().max().item() if o.numel() else 0.0
    return bool(diff == 0.0), diff


def run_method(ctx, w, master, name, ref):
    """One method on one workload; never raises (except KeyboardInterrupt)."""
    accel = ctx.accel
    res = {"status": "ok"}
    ballast = None
    accel.clean()
    try:
        if name != "resident" and w["limit"] is not None and accel.cuda:
            free = accel.free()
            want = w["free_target_bytes"]
            if free < want:
                raise RuntimeError("card too small: %.2f GiB free, %.2f GiB needed"
                                   % (free / GiB, want / GiB))
            ballast = torch.empty(free - want, dtype=torch.uint8, device=accel.dev)
            accel.sync()
            res["free_given_bytes"] = accel.free()
        base = accel.allocated()
        t0 = time.perf_counter()
        r = METHOD_FNS[name](ctx, w, master)
        res["wall_s"] = round(time.perf_counter() - t0, 2)
        s = r["samples"]
        res.update(median_s=statistics.median(s), min_s=min(s), samples_s=s, extra=r.get("extra", {}))
        if name == "resident":
            res["_ref"] = r["out"].detach().float().cpu()
        else:
            res["exact"], res["max_abs_diff"] = compare(r["out"], ref)
        r = None
        accel.clean()
        leaked = accel.allocated() - base
        if leaked > 64 * MiB:
            res["leaked_bytes"] = leaked
    except KeyboardInterrupt:
        raise
    except NotInstalled as e:
        res = {"status": "not installed", "error": str(e)}
    except ImportError as e:
        if getattr(e, "name", None) not in OPTIONAL_MODULES:
            res = {"status": "failed", "error": "%s: %s" % (type(e).__name__, e),
                   "traceback": traceback.format_exc()[-2000:]}
        else:
            res = {"status": "not installed", "error": "%s is not importable" % e.name}
    except Skipped as e:
        res = {"status": "skipped", "error": str(e)}
    except BaseException as e:  # noqa: B902 -- a failing method must not stop the run
        res = {"status": "failed", "error": ("OOM: " if is_oom(e) else "") + "%s: %s"
               % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else ""),
               "traceback": traceback.format_exc()[-2000:]}
        if ctx.args.verbose:
            traceback.print_exc()
    finally:
        del ballast
        accel.clean()
    return res


def run_workload(ctx, w, master, methods):
    accel = ctx.accel
    torch.manual_seed(2)
    ctx.inputs = master.make_input(accel, w["tokens"])
    out = {k: v for k, v in w.items()}
    out["methods"] = {}
    ref = None
    for name in methods:
        why = skip_reason(name, w)
        if why:
            out["methods"][name] = {"status": "skipped", "error": why}
            continue
        if name != "resident" and "resident_s" not in out:
            out["methods"][name] = {"status": "skipped", "error": "no resident time (bound unknown)"}
            continue
        print("  %-15s " % name, end="", flush=True)
        res = run_method(ctx, w, master, name, ref)
        if name == "resident":
            ref = res.pop("_ref", None)
            if res["status"] == "ok":
                out["resident_s"] = res["median_s"]
                act = res.get("extra", {}).get("activation_peak_bytes", 0)
                w["act_reserve_bytes"] = out["act_reserve_bytes"] = int(act * 1.1) + ACT_MARGIN
                if w["limit"] is not None:
                    w["free_target_bytes"] = out["free_target_bytes"] = (
                        w["limit"] + w["staging_bytes"] + w["act_reserve_bytes"])
                bw = ctx.bw_pinned
                out["bound_s"] = max(out["resident_s"], w["streamed_bytes"] / bw)
        if res["status"] == "ok" and out.get("bound_s"):
            res["ratio"] = res["median_s"] / out["bound_s"]
        out["methods"][name] = res
        print(_cell(res, long=True), flush=True)
    ctx.inputs = None
    accel.clean()
    return out


def _cell(res, long=False):
    st = res["status"]
    if st != "ok":
        return st + ((": " + res.get("error", "")) if long else "")
    s = "%9.2f ms" % (res["median_s"] * 1e3)
    if "ratio" in res:
        s += "  %5.2fx" % res["ratio"]
    if long and res.get("exact") is False:
        s += "  (output differs from resident: max |diff| %.3g)" % res["max_abs_diff"]
    return s


def summary_table(results, methods):
    lines = []
    head = "%-12s %10s" % ("workload", "bound ms") + "".join(" %14s" % m for m in methods)
    lines.append(head)
    for w in results["workloads"]:
        row = "%-12s %10s" % (w["name"], ("%.2f" % (w["bound_s"] * 1e3)) if w.get("bound_s") else "-")
        for m in methods:
            r = w["methods"].get(m)
            if r is None:
                cell = "-"
            elif r["status"] == "ok" and "ratio" in r:
                cell = "%.2fx" % r["ratio"]
            else:
                cell = {"not installed": "not inst.", "skipped": "n/a"}.get(r["status"], r["status"])
            row += " %14s" % cell
        lines.append(row)
    return "\n".join(lines)


def targets(results):
    """vramswap against the targets of docs/performance.md."""
    out = []
    for w in results["workloads"]:
        r = w["methods"].get("vramswap")
        if not r or r["status"] != "ok" or "ratio" not in r:
            continue
        goal = TARGET_FITS if w["limit"] is None else TARGET_LIMITED
        out.append(dict(workload=w["name"], ratio=round(r["ratio"], 3), target=goal,
                        met=r["ratio"] <= goal))
    return out


def machine_info(accel, master_versions):
    info = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "host": platform.node(), "python": sys.version.split()[0], "torch": torch.__version__,
            "device": str(accel.dev), "argv": sys.argv[1:]}
    if accel.cuda:
        p = torch.cuda.get_device_properties(accel.dev)
        info.update(gpu=p.name, gpu_memory_bytes=p.total_memory, cuda=torch.version.cuda)
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                                "-i", str(accel.index)], capture_output=True, text=True, timeout=20)
            info["driver"] = q.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    for mod in ("accelerate", "transformers"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 -- absent or broken: recorded as such
            info[mod] = None
    info.update(master_versions)
    return info


def kv_list(s):
    """'a=1,b=2M,c=x' -> {'a': 1, 'b': 2097152, 'c': 'x'} (ints and sizes converted)."""
    out = {}
    for item in (s or "").split(","):
        if not item.strip():
            continue
        k, _, v = item.partition("=")
        v = v.strip()
        try:
            out[k.strip()] = parse_size(v)
        except ValueError:
            out[k.strip()] = {"true": True, "false": False}.get(v.lower(), v)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(description="vramswap forward-pass benchmark (docs/performance.md)")
    ap.add_argument("--quick", action="store_true", help="fewer passes: 2 warm-up and 2 timed (default 3 and 5)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit (no torch needed)")
    ap.add_argument("--methods", help="comma list of: " + ", ".join(METHODS) + " (resident always runs)")
    ap.add_argument("--workloads", help="comma list of workload names (stack-16) or kinds (stack, fits, llama)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--library", help="libvramswap.so (else VRAMSWAP_LIBRARY, else build/core/)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: smoke-test the harness on the simulated device")
    ap.add_argument("--ordinal", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=None, help="untimed passes first (default 3; quick 2)")
    ap.add_argument("--reps", type=int, default=None, help="timed passes, median reported (default 5; quick 2)")
    ap.add_argument("--dim", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--limit", default="4G", help="weights allowed on the GPU (default 4G)")
    ap.add_argument("--tokens", default="16,4096,16384", help="stack workloads (limited)")
    ap.add_argument("--fits-tokens", default="16,4096", help="stack workloads without a limit")
    ap.add_argument("--llama-tokens", default="2048", help="llama workloads ('' for none)")
    ap.add_argument("--llama-hidden", type=int, default=4096)
    ap.add_argument("--llama-intermediate", type=int, default=11008)
    ap.add_argument("--llama-vocab", type=int, default=32000)
    ap.add_argument("--llama-layers", type=int, default=0, help="0: sized to --llama-factor x the limit")
    ap.add_argument("--llama-factor", type=float, default=2.0)
    ap.add_argument("--vs-config", default="",
                    help="vramswap.Device keys, e.g. 'page_size=32M,intercept=0,headroom=512M'")
    ap.add_argument("--vs-offload", default="",
                    help="vramswap.torch.offload keys, e.g. 'prefetch=2,placement=sequential'")
    ap.add_argument("--dynamic", action="store_true", help="then the dynamic family (tests/bench/dynamic.py)")
    __import__("dynamic").add_args(ap)
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failing methods")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if a method failed or an output differs from resident (smoke tests)")
    a = ap.parse_args(argv)
    a.limit = parse_size(a.limit)
    if a.warmup is None:
        a.warmup = 2 if a.quick else 3
    if a.reps is None:
        a.reps = 2 if a.quick else 5
    a.warmup = max(1, a.warmup)   # prefetch records the order in the first pass; vramswap relayouts
    a.reps = max(1, a.reps)
    a.vs_config = kv_list(a.vs_config)
    a.vs_offload = kv_list(a.vs_offload)
    return a


def save(a, results):
    if not a.json:
        return False
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1, default=str)
    os.replace(tmp, a.json)
    return True


def main(argv=None):
    global torch, nn
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped to tee
    a = parse_args(argv)
    plan = make_plan(a)
    methods = selected_methods(a)
    print_plan(a, plan, methods)
    if a.dry_run:
        return 0
    import torch as _torch
    import torch.nn as _nn
    torch, nn = _torch, _nn
    if a.device == "cuda" and not torch.cuda.is_available():
        print("bench.py: no CUDA device visible to torch (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    accel = Accel(a.device, a.ordinal)
    ctx = Ctx(a, accel)
    lu = max([w["largest_unit"] for w in plan] or [64 * MiB])
    bw_bytes = min(256 * MiB, max(MiB, lu))
    ctx.bw_pinned = bandwidth(accel, bw_bytes, pinned=True)
    bw_pageable = bandwidth(accel, bw_bytes, pinned=False, reps=3)
    print("H2D bandwidth: pinned %.1f GB/s, pageable %.1f GB/s (%d MiB copies)"
          % (ctx.bw_pinned / 1e9, bw_pageable / 1e9, bw_bytes >> 20))
    results = {"workloads": [], "bandwidth": {"pinned_Bps": ctx.bw_pinned, "pageable_Bps": bw_pageable,
                                              "copy_bytes": bw_bytes}}
    masters, versions, build_errors = {}, {}, {}
    for w in plan:
        key = w["model"]
        if key not in masters:
            masters.clear()
            ctx.drop_pinned()
            accel.clean()
            t0 = time.perf_counter()
            try:
                masters[key] = (build_llama_master if key == "llama" else build_stack_master)(accel, a)
                versions.update(getattr(masters[key], "versions", {}))
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: B902 -- e.g. transformers missing: skip its workloads
                err = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
                status = ("not installed" if isinstance(e, ImportError)
                          and getattr(e, "name", None) in OPTIONAL_MODULES else "failed")
                print("== %s: cannot build the %s model: %s" % (w["name"], key, err))
                if a.verbose:
                    traceback.print_exc()
                masters[key] = None
                build_errors[key] = {"status": status, "error": "model: " + err}
                results["workloads"].append(dict(w, methods={m: dict(build_errors[key]) for m in methods}))
                continue
            print("(built the %s model in %.1f s)" % (key, time.perf_counter() - t0))
        master = masters[key]
        if master is None:
            results["workloads"].append(dict(w, methods={m: dict(build_errors[key]) for m in methods}))
            continue
        lim = "no limit" if w["limit"] is None else "limit %.2f GiB" % (w["limit"] / GiB)
        print("== %s: %s, %.2f GiB, %s, %d tokens" % (w["name"], key, master.nbytes / GiB, lim, w["tokens"]))
        w["model_bytes"] = master.nbytes
        w["streamed_bytes"] = max(0, master.nbytes - w["limit"]) if w["limit"] else 0
        r = run_workload(ctx, w, master, methods)
        if r.get("bound_s"):
            print("   bound %.2f ms = max(resident %.2f ms, %.2f GiB / %.1f GB/s)"
                  % (r["bound_s"] * 1e3, r["resident_s"] * 1e3, w["streamed_bytes"] / GiB, ctx.bw_pinned / 1e9))
        results["workloads"].append(r)
        save(a, results)  # partial results survive a run that is cut short
    masters.clear()
    ctx.drop_pinned()
    accel.clean()
    if a.dynamic:  # the dynamic family (tests/bench/dynamic.py), after the steady rows
        results["dynamic"] = __import__("dynamic").run(
            ctx, a, lambda r: save(a, dict(results, dynamic=r)))  # partial results survive a timeout
    results["bandwidth"]["pinned_end_Bps"] = bandwidth(accel, bw_bytes, pinned=True)
    results["meta"] = machine_info(accel, versions)
    results["meta"]["options"] = {k: v for k, v in vars(a).items() if k not in ("dry_run",)}
    results["targets"] = targets(results)
    print()
    print(summary_table(results, methods))
    print("(ratio = median / bound; bound = max(resident, streamed bytes / pinned bandwidth))")
    for t in results["targets"]:
        print("vramswap %-12s %.3fx  target <= %.2fx  %s" % (t["workload"], t["ratio"], t["target"],
                                                            "met" if t["met"] else "NOT MET"))
    if save(a, results):
        print("wrote", a.json)
    if a.strict:
        bad = ["%s/%s: %s" % (w["name"], m, r.get("error") or "output differs from resident")
               for w in results["workloads"] for m, r in w["methods"].items()
               if r["status"] == "failed" or r.get("exact") is False]
        bad += __import__("dynamic").failures(results["dynamic"]) if a.dynamic else []
        for b in bad:
            print("strict: " + b, file=sys.stderr)
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
