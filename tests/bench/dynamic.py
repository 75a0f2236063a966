#!/usr/bin/env python3
"""The dynamic workload family of bench.py: does vramswap recover the weights
when pressure goes away (issue 9, docs/performance.md "Dynamic workloads")?

    python3 tests/bench/dynamic.py [bench.py options] [--dyn-* options]
      = bench.py --dynamic --methods vramswap ... (the steady-state rows first);
      the JSON goes to --json, else $VS_OUT/dynamic.json, else a temporary directory

One vramswap device, one ballast (the card keeps --dyn-free bytes free for the
whole run), interception on, and:

1. Phases: one offloaded stack (--dim, --layers: 8 GiB by default) runs passes
   at changing token counts, e.g. "16:8,16384:4,16:8,16+F:6,16:8" (tokens:passes;
   "+F" holds a foreign allocation of --dyn-foreign bytes, made through PyTorch
   before the phase and released after it, like a VAE decode's temporary).
   Each phase: median pass time, its bound, ratio = median / bound, resident
   units at the end, regrowths / evictions / maps / cache releases during it,
   output exact against the resident run at that token count.
   bound(T) = max(resident time at T, streamed bytes / pinned bandwidth), with
   streamed bytes = model - (free - staging - activation reserve(T) - foreign),
   the same rule as bench.py's limited workloads.
   recovery = median(last low-pressure phase) / median(first one), and the
   number of passes of the last phase before one is within 5% of the first
   phase's median (recovery_passes).
2. Rotation: a small "encoder" (--layers/8) and the big stack take turns
   (two-model), then encoder, big, and a "vae" (--layers/16) (three-model);
   the big one runs --dyn-steps passes per turn, the others one. The running
   model is prioritized: it takes the idle models' pages, and they take them
   back on their turn. Per model: median pass time over the turns after the
   first and its run bound; per turn: median turn time, the turn bound, the
   bytes that crossed per turn and the minimum that must cross. The minimum:
   F = free - the big model's staging - activation reserve may stay resident
   across a turn; a byte kept for a model saves one copy per pass of it, so F
   goes to the big model first (it runs --dyn-steps passes), the rest to the
   others; minimum bytes = sum over passes of (model - what it keeps). Turn
   bound = sum over passes of max(resident time, its bytes / pinned bandwidth)
   (passes are synchronous). A model's solo bound would be the wrong yardstick:
   models that together exceed F must re-copy something every turn.

--quick: 2 warm-up and 2 timed passes per steady row, and only the steady rows
stack-16, stack-16384 and fits-16 (skips stack-4096, fits-4096 and llama-2048,
the slowest to set up; --workloads overrides), shorter phases
(16:5,16384:3,16:5,16+F:3,16:5) and 3 rotation turns: about 90 s on an H200.
The JSON is rewritten after every steady row, phase and rotation.

--device cpu runs it on the simulated device at tiny sizes (a smoke test: the
foreign allocation is simulated external usage, timings mean nothing).
"""

from __future__ import annotations

import copy
import gc
import os
import statistics
import sys
import tempfile
import time
import traceback

import bench as B

GiB, MiB = B.GiB, B.MiB


def add_args(ap):
    g = ap.add_argument_group("dynamic workloads (--dynamic, tests/bench/dynamic.py)")
    g.add_argument("--dyn-free", default="5.6G", help="memory left free for the dynamic run (default 5.6G)")
    g.add_argument("--dyn-phases", default=None,
                   help="tokens:passes[,...]; '+F' holds the foreign allocation "
                        "(default 16:8,16384:4,16:8,16+F:6,16:8; --quick 16:5,16384:3,16:5,16+F:3,16:5)")
    g.add_argument("--dyn-foreign", default="2G", help="the transient foreign allocation (default 2G)")
    g.add_argument("--dyn-rotation", default="2,3", help="model rotations to run ('' for none)")
    g.add_argument("--dyn-turns", type=int, default=None, help="turns of each rotation (default 4; --quick 3)")
    g.add_argument("--dyn-steps", type=int, default=3, help="passes of the big model per turn")
    g.add_argument("--dyn-tokens", type=int, default=16, help="tokens of the rotation passes")


def parse_phases(s):
    out = []
    for item in s.split(","):
        item = item.strip()
        if not item:
            continue
        tok, _, n = item.partition(":")
        foreign = tok.upper().endswith("+F")
        out.append(dict(tokens=int(tok[:-2] if foreign else tok), passes=max(1, int(n or 1)),
                        foreign=foreign))
    if not out:
        raise SystemExit("dynamic: --dyn-phases is empty")
    return out


# ---------------------------------------------------------------------- pieces

def resident_profile(ctx, master, tokens):
    """{T: (median s, activation peak bytes, output on the CPU)} with every weight resident."""
    torch, accel = B.torch, ctx.accel
    model = master.instantiate()
    model.to(accel.dev)
    prof = {}
    try:
        for t in sorted(set(tokens)):
            x = master.make_input(accel, t)
            base = accel.allocated()
            if accel.cuda:
                torch.cuda.reset_peak_memory_stats(accel.dev)
            samples, out = B.timed(ctx, lambda: master.forward(model, x), ctx.warmup, ctx.reps)
            peak = (torch.cuda.max_memory_allocated(accel.dev) - base) if accel.cuda else 0
            prof[t] = (statistics.median(samples), peak, out.detach().float().cpu())
            del x, out
    finally:
        del model
        accel.clean()
    return prof


def stack_master(ctx, layers):
    a = copy.copy(ctx.args)
    a.layers = max(1, layers)
    return B.build_stack_master(ctx.accel, a)


class Run:
    """The vramswap device of the dynamic run and the memory around it."""

    def __init__(self, ctx, free):
        self.ctx, self.accel = ctx, ctx.accel
        self.vs = ctx.vramswap()
        self.ballast = None
        self.foreign = None
        cfg = dict(ctx.args.vs_config)
        if self.accel.cuda:
            want = free
            have = self.accel.free()
            if have < want:
                raise RuntimeError("card too small: %.2f GiB free, %.2f GiB wanted" % (have / GiB, want / GiB))
            self.ballast = B.torch.empty(have - want, dtype=B.torch.uint8, device=self.accel.dev)
            self.accel.sync()
            backend = "hip" if getattr(B.torch.version, "hip", None) else "cuda"
            cfg.setdefault("intercept", True)
        else:
            backend = "sim"
            cfg.setdefault("headroom", 0)
            cfg.setdefault("limit", free)
            cfg.setdefault("mem_poll_ns", 0)
        self.free_given = self.accel.free() if self.accel.cuda else free
        self.cfg = cfg
        self.intercept_error = None
        ordinal = self.accel.index if self.accel.cuda else 0
        try:
            self.dev = self.vs.Device(backend, ordinal, **cfg)
        except self.vs.VramswapError as e:
            if not cfg.get("intercept") or "intercept" in ctx.args.vs_config:
                raise
            self.intercept_error = str(e)  # measure without the hooks, and say so
            print("dynamic: interception unavailable (%s); running without it" % e)
            cfg["intercept"] = False
            self.dev = self.vs.Device(backend, ordinal, **cfg)

    def hold_foreign(self, nbytes):
        if self.accel.cuda:
            self.foreign = B.torch.empty(nbytes, dtype=B.torch.uint8, device=self.accel.dev)
            self.foreign.fill_(1)
            self.accel.sync()
        else:  # as the allocation hooks would: make room, then the memory is someone else's
            self.dev.reclaim(nbytes)
            self.vs.sim.set_external_usage(nbytes, 0)
            self.foreign = nbytes

    def drop_foreign(self):
        if self.foreign is None:
            return
        if not self.accel.cuda:
            self.vs.sim.set_external_usage(0, 0)
        self.foreign = None  # on CUDA the caching allocator keeps the block (the realistic case)

    def close(self):
        self.drop_foreign()
        try:
            self.dev.close()
        finally:
            self.ballast = None
            self.accel.clean()


def size_str(n):
    return "%.2f GiB" % (n / GiB) if n >= GiB else "%.1f MiB" % (n / MiB)


def stats_delta(s0, s1):
    keys = ("regrowths", "regrown_bytes", "regrow_backoffs", "pages_evicted", "pages_mapped",
            "fault_fast_fails", "reclaims", "intercepted_allocs")
    return {k: getattr(s1, k) - getattr(s0, k) for k in keys if hasattr(s1, k)}


def bound_for(ctx, model_bytes, resident_s, act_peak, free, staging, foreign=0):
    fit = free - staging - (int(act_peak * 1.1) + B.ACT_MARGIN) - foreign if ctx.accel.cuda else free - foreign
    streamed = max(0, model_bytes - max(0, fit))
    return (max(resident_s, streamed / ctx.bw_pinned) if ctx.accel.cuda else resident_s), streamed


def pass_times(ctx, fwd, n):
    out, ts = None, []
    with B.torch.no_grad():
        for _ in range(n):
            ctx.accel.sync()
            t0 = time.perf_counter()
            out = fwd()
            ctx.accel.sync()
            ts.append(time.perf_counter() - t0)
    return ts, out


# ---------------------------------------------------------------------- the family

def run_phases(ctx, run, master, prof, phases, foreign_bytes, progress=None):
    vtorch = __import__("vramswap.torch", fromlist=["offload"])
    model = master.instantiate()
    off = vtorch.offload(model, device=run.dev, **dict(ctx.args.vs_offload))
    staging = 2 * master.nbytes // max(1, ctx.args.layers)
    rows = []
    try:
        x0 = master.make_input(ctx.accel, phases[0]["tokens"])
        pass_times(ctx, lambda: master.forward(model, x0), ctx.warmup)  # learns the order, relayouts
        del x0
        for i, ph in enumerate(phases):
            t = ph["tokens"]
            x = master.make_input(ctx.accel, t)
            if ph["foreign"]:
                run.hold_foreign(foreign_bytes)
            s0, c0 = run.dev.stats(), dict(off.counters)
            ts, out = pass_times(ctx, lambda: master.forward(model, x), ph["passes"])
            s1, c1 = run.dev.stats(), dict(off.counters)
            run.drop_foreign()
            exact, diff = B.compare(out, prof[t][2])
            bound, streamed = bound_for(ctx, master.nbytes, prof[t][0], prof[t][1], run.free_given, staging,
                                        foreign_bytes if ph["foreign"] else 0)
            med = statistics.median(ts)
            row = dict(phase=i, tokens=t, foreign=ph["foreign"], passes=len(ts), median_s=med,
                       samples_s=ts, bound_s=bound, streamed_bytes=streamed, ratio=med / bound if bound else None,
                       exact=exact, max_abs_diff=diff, resident_units=len(off.resident_units()),
                       units=len(off.units), stats=stats_delta(s0, s1),
                       counters={k: c1.get(k, 0) - c0.get(k, 0) for k in c1
                                 if isinstance(c1.get(k), (int, float))})
            rows.append(row)
            if progress is not None:
                progress(rows)
            print("  phase %d: %5d tokens%-3s %2d passes  median %9.2f ms  bound %9.2f ms  %5.2fx  "
                  "resident %d/%d units  regrowths %d evicted %d mapped %d cache releases %d%s"
                  % (i, t, "+F" if ph["foreign"] else "", len(ts), med * 1e3, bound * 1e3, row["ratio"] or 0,
                     row["resident_units"], row["units"], row["stats"].get("regrowths", 0),
                     row["stats"].get("pages_evicted", 0), row["stats"].get("pages_mapped", 0),
                     row["counters"].get("cache_releases", 0),
                     "" if exact else "  OUTPUT DIFFERS (max |diff| %.3g)" % diff), flush=True)
            del x, out
    finally:
        off.close()
        del model
        gc.collect()
    low_t = min(ph["tokens"] for ph in phases)
    lows = [r for r in rows if r["tokens"] == low_t and not r["foreign"]]
    summary = {"phases": rows}
    if len(lows) >= 2:
        first, last = lows[0], lows[-1]
        summary["recovery"] = last["median_s"] / first["median_s"]
        within = [k for k, s in enumerate(last["samples_s"]) if s <= 1.05 * first["median_s"]]
        summary["recovery_passes"] = (within[0] + 1) if within else None
        print("  recovery: last low phase / first = %.3f; first pass within 5%%: %s"
              % (summary["recovery"], summary["recovery_passes"] or "none"))
    return summary


def turn_plan(ctx, sizes, runs, profs, tokens, free, staging, act):
    """The per-turn bound of a rotation (the module docstring, 2.).
    sizes: name -> bytes; runs: name -> passes per turn. The weights may keep
    F = free - staging of the big model - activation reserve resident across a
    turn. A byte kept for a model saves one copy per pass of that model, so the
    minimum traffic gives F to the models with the most passes per turn first
    (the big one), the rest to the others. Each pass is synchronous, so a run's
    time is at least max(its resident time, its bytes / pinned bandwidth).
    Returns (bound s, minimum bytes per turn, {name: (bytes per run, bound per run)})."""
    fit = max(0, free - staging - act) if ctx.accel.cuda else free
    keep = {}
    for n in sorted(sizes, key=lambda n: -runs[n]):
        keep[n] = min(sizes[n], fit)
        fit -= keep[n]
    per, total_bytes, bound = {}, 0, 0.0
    for n in sizes:
        b = sizes[n] - keep[n]
        t = max(profs[n][tokens][0], b / ctx.bw_pinned) if ctx.accel.cuda else profs[n][tokens][0]
        per[n] = (b, t)
        total_bytes += b * runs[n]
        bound += t * runs[n]
    return bound, total_bytes, per


def run_rotation(ctx, run, models, profs, names, turns, steps, tokens):
    """models: name -> (master, module, offload). Returns per-model and per-turn figures."""
    order = [n for n in ("encoder", "big", "vae") if n in names]
    runs = {n: steps if n == "big" else 1 for n in order}
    x = {n: models[n][0].make_input(ctx.accel, tokens) for n in order}
    times = {n: [] for n in order}
    turn_s, crossed = [], []
    exact = {n: True for n in order}
    diffs = {n: 0.0 for n in order}
    unit = {n: models[n][0].nbytes // max(1, len(models[n][2].units)) for n in order}

    def moved():  # bytes copied so far (faults that copied + streamed units), all models
        return sum(unit[n] * (models[n][2].counters.get("copies", 0) + models[n][2].counters.get("streamed", 0))
                   for n in order)
    s0 = run.dev.stats()
    for turn in range(turns):
        m0, t0 = moved(), time.perf_counter()
        for n in order:
            master, module, _ = models[n]
            ts, out = pass_times(ctx, lambda: master.forward(module, x[n]), runs[n])
            if turn:
                times[n] += ts
            e, d = B.compare(out, profs[n][tokens][2])
            exact[n] = exact[n] and bool(e)
            diffs[n] = max(diffs[n], d or 0.0)
        if turn:  # the first turn still settles the placement
            turn_s.append(time.perf_counter() - t0)
            crossed.append(moved() - m0)
        else:
            c0 = {n: dict(models[n][2].counters) for n in order}
    s1 = run.dev.stats()
    # Staging of the model that streams every pass (the big one): the others may
    # hold no ring at all (they copy into their VBAR while they run), and a
    # lower bound must not charge them one.
    staging = 2 * max(p.numel() * p.element_size() for p in models["big"][0].params.values())
    act = int(max(profs[n][tokens][1] for n in order) * 1.1) + B.ACT_MARGIN
    sizes = {n: models[n][0].nbytes for n in order}
    bound, min_bytes, per = turn_plan(ctx, sizes, runs, profs, tokens, run.free_given, staging, act)
    out = {"models": {}, "stats": stats_delta(s0, s1), "runs_per_turn": runs}
    for n in order:
        med = statistics.median(times[n]) if times[n] else float("nan")
        b, t = per[n]
        c1, nruns = models[n][2].counters, max(1, (turns - 1) * runs[n])
        # Per pass: units mapped and copied into the VBAR (the running model took
        # pages) vs units streamed through its ring (it could not).
        mapped_units, streamed_units = ((c1.get(k, 0) - c0[n].get(k, 0)) / nruns for k in ("copies", "streamed"))
        out["models"][n] = dict(bytes=sizes[n], median_s=med, samples_s=times[n], run_bound_s=t,
                                run_min_bytes=b, ratio=med / t if t else None, exact=exact[n],
                                max_abs_diff=diffs[n], resident_units=len(models[n][2].resident_units()),
                                units=len(models[n][2].units), copied_units_per_pass=mapped_units,
                                streamed_units_per_pass=streamed_units)
        r = out["models"][n]
        print("  %d-model %-8s %6.2f GiB  median %9.2f ms  run bound %9.2f ms (%s must cross)  %5.2fx  "
              "resident %d/%d at the end, per pass %.1f units copied to the VBAR %.1f streamed%s"
              % (len(order), n, r["bytes"] / GiB, med * 1e3, t * 1e3, size_str(b), r["ratio"] or 0,
                 r["resident_units"], r["units"], mapped_units, streamed_units,
                 "" if exact[n] else "  OUTPUT DIFFERS"), flush=True)
    tmed = statistics.median(turn_s) if turn_s else float("nan")
    cmed = statistics.median(crossed) if crossed else 0
    out["turn"] = dict(median_s=tmed, samples_s=turn_s, bound_s=bound, min_bytes=min_bytes,
                       crossed_bytes=cmed, ratio=tmed / bound if bound else None)
    print("  %d-model TURN (%s)  median %9.2f ms  bound %9.2f ms  %5.2fx  crossed %s/turn, "
          "minimum %s/turn" % (len(order), " ".join("%s x%d" % (n, runs[n]) for n in order),
                                     tmed * 1e3, bound * 1e3, out["turn"]["ratio"] or 0, size_str(cmed),
                                     size_str(min_bytes)), flush=True)
    return out


PHASES, PHASES_QUICK = "16:8,16384:4,16:8,16+F:6,16:8", "16:5,16384:3,16:5,16+F:3,16:5"


def run(ctx, a, progress=None):
    """The whole family; returns a JSON-able dict (never raises but for Ctrl-C).
    progress(res) is called with the partial results after every phase and
    rotation (bench.py saves them: a run cut short still leaves its figures)."""
    if a.dyn_phases is None:
        a.dyn_phases = PHASES_QUICK if a.quick else PHASES
    if a.dyn_turns is None:
        a.dyn_turns = 3 if a.quick else 4

    def report(**kw):
        res.update(kw)
        if progress is not None:
            try:
                progress(res)
            except Exception as e:  # noqa: B902 -- a full disk must not lose the run
                print("dynamic: could not save partial results: %s" % e)
    import torch
    B.torch, B.nn = torch, torch.nn  # bench.py run as a script is __main__, not this `bench`
    res = {"status": "ok"}
    rn = None
    try:
        phases = parse_phases(a.dyn_phases)
        foreign = B.parse_size(a.dyn_foreign)
        free = B.parse_size(a.dyn_free)
        rotations = [int(r) for r in str(a.dyn_rotation).split(",") if r.strip()]
        print("== dynamic: stack %d x %d, %.1f MiB free, phases %s, foreign %.1f MiB, rotations %s"
              % (a.layers, a.dim, free / MiB, a.dyn_phases, foreign / MiB, rotations or "none"))
        masters = {"big": stack_master(ctx, a.layers)}
        if rotations:
            masters["encoder"] = stack_master(ctx, a.layers // 8)
        if any(r >= 3 for r in rotations):
            masters["vae"] = stack_master(ctx, a.layers // 16)
        big = masters["big"]
        # Resident runs first (they need the whole card): times, activation peaks, outputs.
        prof = {n: resident_profile(ctx, m, ([p["tokens"] for p in phases] if n == "big" else [])
                                    + [a.dyn_tokens]) for n, m in masters.items()}
        rn = Run(ctx, free)
        res.update(free_given_bytes=rn.free_given, config={k: str(v) for k, v in rn.cfg.items()},
                   model_bytes=big.nbytes, intercept_error=rn.intercept_error,
                   intercepting=bool(rn.dev.props.intercepting))
        report(phases=run_phases(ctx, rn, big, prof["big"], phases, foreign,
                                 lambda rows: report(phases={"phases": rows, "partial": True})))
        if rotations:
            vtorch = __import__("vramswap.torch", fromlist=["offload"])
            models = {}
            for n, m in masters.items():
                module = m.instantiate()
                models[n] = (m, module, vtorch.offload(module, device=rn.dev, **dict(ctx.args.vs_offload)))
            try:
                for n in masters:  # the first pass of each learns its order
                    m, module, _ = models[n]
                    x = m.make_input(ctx.accel, a.dyn_tokens)
                    pass_times(ctx, lambda: m.forward(module, x), 1)
                res["rotation"] = {}
                for r in rotations:
                    names = ["encoder", "big"] + (["vae"] if r >= 3 else [])
                    res["rotation"]["%d-model" % r] = run_rotation(ctx, rn, models, prof, names, a.dyn_turns,
                                                                   a.dyn_steps, a.dyn_tokens)
                    report()
            finally:
                for n in list(models):
                    models[n][2].close()
                models.clear()
                gc.collect()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: B902 -- report, do not lose the steady rows
        res = dict(res, status="failed", error="%s: %s" % (type(e).__name__, str(e)[:300]),
                   traceback=traceback.format_exc()[-3000:])
        print("dynamic: FAILED: %s" % res["error"])
        traceback.print_exc()
    finally:
        if rn is not None:
            rn.close()
    res["targets"] = targets(res)
    for t in res["targets"]:
        print("dynamic %-28s %.3f  target <= %.2f  %s" % (t["what"], t["value"], t["target"],
                                                        "met" if t["met"] else "NOT MET"))
    return res


def targets(res):
    out = []
    ph = res.get("phases") or {}
    for r in ph.get("phases", []):
        if r.get("ratio") is not None and not r["foreign"]:
            out.append(dict(what="phase %d (%d tokens)" % (r["phase"], r["tokens"]), value=round(r["ratio"], 3),
                            target=B.TARGET_LIMITED, met=r["ratio"] <= B.TARGET_LIMITED))
    if "recovery" in ph:
        out.append(dict(what="recovery", value=round(ph["recovery"], 3), target=1.05, met=ph["recovery"] <= 1.05))
        rp = ph.get("recovery_passes")
        out.append(dict(what="recovery passes", value=rp or 0, target=3, met=bool(rp) and rp <= 3))
    return out


def failures(res):
    """For --strict: what went wrong (failed run, inexact output)."""
    bad = []
    if res.get("status") != "ok":
        bad.append("dynamic: " + res.get("error", "failed"))
    for r in (res.get("phases") or {}).get("phases", []):
        if r["exact"] is False:
            bad.append("dynamic phase %d: output differs" % r["phase"])
    for rot, v in (res.get("rotation") or {}).items():
        for n, m in v["models"].items():
            if not m["exact"]:
                bad.append("dynamic %s %s: output differs" % (rot, n))
    return bad


QUICK_WORKLOADS = "stack-16,stack-16384,fits-16"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--dynamic" not in argv:
        argv.append("--dynamic")
    if "--quick" in argv and not any(x == "--workloads" or x.startswith("--workloads=") for x in argv):
        argv += ["--workloads", QUICK_WORKLOADS]  # the steady rows --quick keeps (module docstring)
    if not any(x == "--methods" or x.startswith("--methods=") for x in argv):
        argv += ["--methods", "vramswap"]
    if not any(x == "--json" or x.startswith("--json=") for x in argv):
        out = os.environ.get("VS_OUT") or tempfile.mkdtemp(prefix="vs_dynamic_")
        os.makedirs(out, exist_ok=True)
        argv += ["--json", os.path.join(out, "dynamic.json")]
    return B.main(argv)


if __name__ == "__main__":
    sys.exit(main())
