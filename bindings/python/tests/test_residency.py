"""Adaptive residency (Note [Residency cooperation], Note [Nested spread] in
vramswap/_residency.py; Note [Watermark regrowth] in core/src/regrow.c) on the
simulated device: the weights regrow after pressure, the resident set stays
spread, the cache release backs off, and outputs stay exact."""

import pytest

import vramswap
from vramswap import _residency, sim

from conftest import open_sim

torch = pytest.importorskip("torch")
vtorch = pytest.importorskip("vramswap.torch")


def max_gap(positions, n):
    """Longest run of units not in `positions` (execution indices of 0..n-1)."""
    prev, gap = -1, 0
    for p in sorted(positions) + [n]:
        gap = max(gap, p - prev - 1)
        prev = p
    return gap


@pytest.mark.parametrize("n", [1, 2, 7, 10, 16, 37, 64])
def test_every_prefix_of_the_nested_order_is_spread(n):
    order = _residency.nested(list(range(n)))
    assert sorted(order) == list(range(n))
    for k in range(1, n + 1):
        gap = max_gap(order[:k], n)
        assert gap <= 2 * n // k + 1, "prefix %d of %d: a run of %d non-resident units (%r)" % (
            k, n, gap, order[:k])


def test_nested_layout_keeps_outsized_units_first():
    units = [object() for _ in range(6)]
    big = units[4]
    out = _residency.nested_layout([units[0], units[2], big], [units[1], units[3], units[5]], [big])
    assert out[0] is big
    assert sorted(map(id, out)) == sorted(map(id, units))


def make_stack(n=16, width=256, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(n)]).eval()


def resident_positions(off):
    names = set(off.resident_units())
    order = off._order or off.units
    return [i for i, u in enumerate(order) if u.name in names]


def push(dev, nbytes):
    """Others use nbytes from now on; growing, they make room first (as the hooks do)."""
    cur = sim.counters(dev.ordinal)["external_bytes"]
    if nbytes > cur:
        dev.reclaim(nbytes - cur)
    sim.set_external_usage(nbytes, dev.ordinal)


def test_offload_regrows_after_pressure_and_stays_spread():
    dev = open_sim(regrow_delay_ns=0)   # the default margin: recovery must be complete
    try:
        page = dev.page_size
        model = make_stack()                         # 16 units of 256 KiB = 1 page each
        x = torch.randn(3, 256)
        with torch.no_grad():
            want = model(x)
        dev.set_limit(12 * page)                     # ring of 2 slots + ~10 resident units
        with vtorch.offload(model, dev, prefetch=2, lookahead=2) as off:
            with torch.no_grad():
                for _ in range(3):
                    assert torch.equal(model(x), want)
            before = resident_positions(off)
            assert 4 <= len(before) < 16, before
            push(dev, 6 * page)                      # a burst: 6 pages go
            with torch.no_grad():
                for _ in range(2):
                    assert torch.equal(model(x), want)
            during = resident_positions(off)
            assert len(during) < len(before), (before, during)
            assert during != list(range(len(during))), "shrunk to a prefix: %r" % during
            assert max_gap(during, 16) <= 2 * 16 // max(1, len(during)) + 1, during
            s0 = dev.stats()
            push(dev, 0)                             # the burst is over
            with torch.no_grad():
                for _ in range(3):
                    assert torch.equal(model(x), want)
            after = resident_positions(off)
            s1 = dev.stats()
            assert s1.regrowths > s0.regrowths, "the watermark never rose again"
            assert s1.pages_evicted == s0.pages_evicted, "the recovery evicted its own pages (churn)"
            assert len(after) >= len(before), "did not recover: %r -> %r -> %r" % (before, during, after)
            assert after != list(range(len(after))), "regrew into a prefix: %r" % after
            assert max_gap(after, 16) <= 2 * 16 // len(after) + 1, after
            dev.check()
        dev.set_limit(0)
    finally:
        dev.close()


def test_without_regrowth_it_stays_shrunk():
    """The control: with regrowth off, the same burst leaves the model shrunk
    (the failure the issue describes), so the test above measures regrowth."""
    dev = open_sim(regrow=False)
    try:
        page = dev.page_size
        model = make_stack()
        x = torch.randn(3, 256)
        dev.set_limit(12 * page)
        with vtorch.offload(model, dev, prefetch=2, lookahead=2) as off:
            with torch.no_grad():
                for _ in range(3):
                    model(x)
            before = resident_positions(off)
            push(dev, 6 * page)
            with torch.no_grad():
                model(x)
            push(dev, 0)
            with torch.no_grad():
                for _ in range(3):
                    model(x)
            assert len(resident_positions(off)) < len(before)
            assert dev.stats().regrowths == 0
        dev.set_limit(0)
    finally:
        dev.close()


def test_models_taking_turns_share_the_device():
    """Two offloaded models take turns (a diffusion model and a text encoder):
    the one running gets the memory, the idle one gives it up first, and the
    big one regrows to what is free when it runs again."""
    dev = open_sim(regrow_delay_ns=0)   # the default margin: recovery must be complete
    try:
        page = dev.page_size
        big, small = make_stack(12, seed=0), make_stack(4, seed=1)
        x = torch.randn(3, 256)
        with torch.no_grad():
            want_big, want_small = big(x), small(x)
        dev.set_limit(14 * page)                     # both do not fit at once
        with vtorch.offload(big, dev, prefetch=2, lookahead=2) as ob, \
                vtorch.offload(small, dev, prefetch=2, lookahead=2) as osm:
            with torch.no_grad():
                for _ in range(3):
                    assert torch.equal(big(x), want_big)
                alone = len(ob.resident_units())
                assert alone == 12, alone
                for _ in range(2):
                    assert torch.equal(small(x), want_small)
                assert len(osm.resident_units()) == 4, "the running model did not get the memory"
                shrunk = len(ob.resident_units())
                assert shrunk < alone
                for _ in range(2):
                    assert torch.equal(big(x), want_big)
                assert len(ob.resident_units()) == alone, "the big model did not regrow"
                assert len(osm.resident_units()) == 4 - (alone - shrunk), "the idle model kept its pages"
            dev.check()
        dev.set_limit(0)
    finally:
        dev.close()


class FakeCache:
    """A caching allocator stand-in: `reserved` bytes, `allocated` of them in
    use, `total` bytes ever allocated."""

    def __init__(self):
        self.reserved = self.allocated = self.total = 0
        self.releases = 0

    def idle(self):
        return self.reserved, self.reserved - self.allocated, self.total

    def release(self):
        self.releases += 1
        self.reserved = self.allocated


class FakeOffload:
    def __init__(self, dev, loaded, total):
        self.device = dev
        self.tdevice = torch.device("cpu")
        self.counters = {}
        self._vbar_bytes = total
        self.vbar = type("V", (), {"loaded_size": loaded})()


def test_cache_release_only_below_target_and_backs_off(dev, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(_residency.time, "monotonic", lambda: clock[0])
    T = 64 << 30                                     # the model's bytes
    off = FakeOffload(dev, loaded=T, total=T)
    cache = FakeCache()
    coop = _residency.Cooperation(off, cache)
    big = 4 * coop.min_idle

    def tick(dt=0.2):
        clock[0] += dt
        coop.check(off)

    cache.reserved = big
    tick()
    assert cache.releases == 0, "released although the weights were at their target"
    off.vbar.loaded_size = T // 2                    # below target, a large idle cache
    tick(0.01)
    assert cache.releases == 0, "not rate-limited"
    tick()
    assert cache.releases == 1
    assert off.counters["cache_releases"] == 1 and off.counters["cache_released_bytes"] == big
    # The workload takes it all back every pass: the interval doubles each time.
    intervals = []
    for _ in range(6):
        cache.reserved = big
        clock[0] += coop.interval + 1e-3
        coop.check(off)
        intervals.append(coop.interval)
    assert intervals[-1] == coop.max_interval and intervals[0] < intervals[-1], intervals
    # The burst ends: the cache stays small, the interval comes down again.
    n = cache.releases
    for _ in range(8):
        cache.reserved = 0
        clock[0] += coop.interval + 1e-3
        coop.check(off)
    assert coop.interval == _residency._BASE_INTERVAL
    assert cache.releases == n, "released an empty cache"
    # A small idle cache is left alone.
    cache.reserved = coop.min_idle // 2
    clock[0] += coop.interval + 1e-3
    coop.check(off)
    assert cache.releases == n
    # Passes that allocate a lot (long prompts) keep their cache: no release
    # however idle it looks at the pass boundary.
    cache.reserved = big
    for _ in range(5):
        cache.total += 10 * big                      # each pass allocates 10x the idle cache
        clock[0] += coop.interval + 1e-3
        coop.check(off)
    assert cache.releases == n, "released the cache of a workload that uses it every pass"
    # Those passes end (short prompts again): the next check releases it.
    cache.total += coop.min_idle // 8
    clock[0] += coop.interval + 1e-3
    coop.check(off)
    assert cache.releases == n + 1
    # Weights short by less than min_idle: an idle cache that covers the
    # shortfall is worth releasing, a smaller one is not.
    short = coop.min_idle // 4
    off.vbar.loaded_size = T - short
    cache.reserved = short // 2
    clock[0] += coop.interval + 1e-3
    coop.check(off)
    assert cache.releases == n + 1, "released a cache smaller than the shortfall"
    cache.reserved = short
    clock[0] += coop.interval + 1e-3
    coop.check(off)
    assert cache.releases == n + 2, "kept an idle cache that covers the shortfall"


def test_cooperation_is_inert_on_the_simulator(dev):
    model = make_stack(n=4)
    x = torch.randn(2, 256)
    with vtorch.offload(model, dev) as off:
        with torch.no_grad():
            model(x)
            model(x)
        assert off._coop.cache is None
        assert "cache_releases" not in off.counters


@pytest.mark.gpu
@pytest.mark.xfail(strict=True, reason=(
    "known gap (H200, 2026-12-04, three runs alike): after the 512 MiB temporary and one "
    "cache release 23 of the 26 units come back, not 25; the last ~96 MiB stay taken "
    "(trace in regrow_gpu.json). The 8 GiB dynamic benchmark recovers fully (1.006, "
    "3 passes). strict: a pass means the gap closed -- remove this mark then"))
def test_regrowth_after_a_transient_allocation_on_a_gpu(tmp_path):
    """The issue's scenario at a small size, on a real card with interception: an
    offloaded 1 GiB stack in ~1 GiB of free memory; a 512 MiB temporary made
    through PyTorch evicts weights; after it is released (PyTorch caches it, the
    cooperation gives it back) the weights regrow. Results go to $VS_OUT."""
    import json
    import os
    import time

    if not torch.cuda.is_available():
        pytest.fail("a GPU backend is available but torch has no CUDA")
    out_dir = os.environ.get("VS_OUT") or str(tmp_path)
    os.makedirs(out_dir, exist_ok=True)
    report = {}
    dim, layers, MiB = 4096, 32, 1 << 20
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(dim, dim, bias=False, dtype=torch.bfloat16)
                                  for _ in range(layers)]).eval()   # 32 x 32 MiB on the host
    x = torch.randn(16, dim, dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        want = model.cuda()(x).cpu()
    model.cpu()
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    ballast = torch.empty(max(0, free - 1280 * MiB), dtype=torch.uint8, device="cuda")
    d = vramswap.Device("cuda", 0, intercept=True)
    try:
        report["intercepting"] = bool(d.props.intercepting)
        assert d.props.intercepting, "interception is not installed (the test needs it)"
        trace = report["trace"] = []
        report["page_mib"] = d.page_size >> 20
        with vtorch.offload(model, d) as off:
            def passes(n, gap=0.12):
                for _ in range(n):
                    with torch.no_grad():
                        got = model(x)
                    torch.cuda.synchronize()
                    assert torch.equal(got.cpu(), want), "output differs"
                    time.sleep(gap)   # spans the cooperation's check interval
                    st = d.stats()    # a per-pass trace: what a failure needs explained
                    trace.append(dict(resident=len(off.resident_units()),
                                      available_mib=d.memory_info().available >> 20,
                                      regrowths=st.regrowths, evicted=st.pages_evicted,
                                      mapped=st.pages_mapped, backoffs=st.regrow_backoffs,
                                      releases=off.counters.get("cache_releases", 0)))
                return len(off.resident_units())

            report["before"] = before = passes(4)
            s0 = d.stats()
            tmp = torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
            tmp.fill_(1)
            report["during"] = during = passes(2)
            del tmp                                      # cached by PyTorch, not free
            report["after"] = after = passes(6)
            s1 = d.stats()
            report.update(regrowths=s1.regrowths - s0.regrowths,
                          evicted=s1.pages_evicted - s0.pages_evicted,
                          cache_releases=off.counters.get("cache_releases", 0),
                          cache_release_s=off.counters.get("cache_release_s", 0.0),
                          units=len(off.units))
    finally:
        with open(os.path.join(out_dir, "regrow_gpu.json"), "w") as f:
            json.dump(report, f, indent=1)
        print("regrow gpu:", report)
        d.close()
        del ballast
    assert 0 < before, report
    assert during < before, "the temporary evicted nothing: %r" % report
    assert report["cache_releases"] >= 1, "the idle cache was never given back: %r" % report
    assert report["regrowths"] >= 1, "the watermark never rose again: %r" % report
    assert after >= before - 1, "did not recover: %r" % report
