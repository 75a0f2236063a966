"""Adaptive residency for vramswap.torch.offload: give PyTorch's idle cache back
so the weights can regrow, and lay the VBAR out so that any resident prefix is
spread over the execution order.

Note [Residency cooperation]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~
The core raises a VBAR's watermark again once memory is free (Note [Watermark
regrowth] in core/src/regrow.c). Memory that PyTorch's caching allocator keeps
after a burst (the activations of a long prompt, a VAE decode) is not free from
the driver's point of view: with interception it is counted as intercepted
usage, without it as usage by others, and the weights never get it back.

So at the end of a root forward (:func:`pass_end`, called from
``ModuleOffload._pass_end``), when
  1. at least ``interval`` seconds passed since the last check (50 ms: the check
     asks the caching allocator for its statistics, ~0.1 ms), and
  2. the model's weights are below their target (fewer bytes loaded than the
     VBAR holds), and
  3. the caching allocator holds at least ``min_idle`` bytes reserved but not
     allocated (default: max(256 MiB, one vramswap page)), or at least what the
     weights miss when that is less (but one page at least), and
  4. the passes since the last check allocated, per pass and all allocations
     added up, at most half of that idle cache (the sum bounds a pass's peak
     from above: if it is small, the passes do not need the cache; a phase of
     long prompts allocates gigabytes per pass and is left alone),
the idle cache is released (``torch.cuda.empty_cache()``), and the next faults
may regrow into it. Between passes nothing reads the freed blocks (the
activations of the pass are gone), and the compute stream's queued work keeps
using the blocks it holds: empty_cache releases only unused segments.

Hysteresis (for what condition 4 cannot see): when the next check finds that PyTorch reserved again at least half
of what was released while the weights are still below target, the workload
needs that memory every pass (a run of long prompts): the release was in vain
and the interval doubles (up to ``max_interval``, 0.4 s); any other check
halves it again. So a steady heavy phase pays at most one re-reservation per
max_interval, and the model recovers within about one interval (at most
0.4 s, plus the core's quiet time) of the pressure ending. Only a release tells
whether the workload still needs the memory, hence the short maximum.

Steady state: a model that fits stays at its target; the check then costs one
clock read per pass and one ctypes call per interval. Counters (in the
offload's ``counters``): ``cache_checks``, ``cache_releases``,
``cache_released_bytes``, ``cache_release_s`` (time spent in empty_cache).
On the simulated device (CPU tensors) there is no caching allocator: the check
only reads the clock unless a test installs a cache (``Cooperation.cache``).

Note [Nested spread]
~~~~~~~~~~~~~~~~~~~~
The spread placement (Note [Spread placement] in torch.py) chooses which units
stay resident for the fraction that fitted at the first pass. Residency changes
later: eviction takes the highest VBAR pages, regrowth adds the next ones above
the watermark. For the resident set to stay spread as it shrinks and grows,
every *prefix* of the VBAR must be spread over the execution order, not only
the one chosen first. :func:`nested_layout` orders the chosen resident units
(outsized ones first, they must stay resident) and then the streamed units each
by the van der Corput sequence of their rank: any prefix of length k of that
order holds units about n/k apart in execution order.
"""

from __future__ import annotations

import time

_BASE_INTERVAL = 0.05
_MAX_INTERVAL = 0.4
_MIN_IDLE = 256 << 20


def _radical_inverse(i):
    """Van der Corput (base 2): 0, 1/2, 1/4, 3/4, 1/8, ..."""
    x, f = 0.0, 0.5
    while i:
        if i & 1:
            x += f
        i >>= 1
        f *= 0.5
    return x


def nested(units):
    """`units` (in execution order) reordered so that every prefix is spread."""
    ranked = sorted(range(len(units)), key=lambda i: (_radical_inverse(i), i))
    return [units[i] for i in ranked]


def nested_layout(resident, streamed, first=()):
    """VBAR order (Note [Nested spread]): `first` (outsized resident units, kept
    in the order given), the other resident units, then the streamed ones, each
    group nested. `resident` and `streamed` are in execution order."""
    keep = [u for u in resident if any(u is f for f in first)]
    rest = [u for u in resident if not any(u is f for f in first)]
    return keep + nested(rest) + nested(streamed)


class _TorchCache:
    """The CUDA caching allocator of one device."""

    def __init__(self, torch, tdevice):
        self.torch = torch
        self.tdevice = tdevice

    def idle(self):
        """(reserved bytes, reserved but unallocated bytes, bytes ever allocated)."""
        s = self.torch.cuda.memory_stats(self.tdevice)
        reserved = s.get("reserved_bytes.all.current", 0)
        return (reserved, reserved - s.get("allocated_bytes.all.current", 0),
                s.get("allocated_bytes.all.allocated", 0))

    def release(self):
        with self.torch.cuda.device(self.tdevice):
            self.torch.cuda.empty_cache()


class Cooperation:
    """Per-offload state of Note [Residency cooperation]."""

    def __init__(self, off, cache=None):
        self.interval = _BASE_INTERVAL
        self.max_interval = _MAX_INTERVAL
        self.min_idle = max(_MIN_IDLE, off.device.page_size)
        self.last = time.monotonic()   # the first check comes one interval after setup
        self.released_at = None        # reserved bytes just after our last release
        self.released = 0              # bytes it released
        self.passes = 0                # passes since the allocator was last asked
        self.cache = cache
        if cache is None and off.tdevice.type == "cuda":
            import torch
            self.cache = _TorchCache(torch, off.tdevice)
        self.total = self.cache.idle()[2] if self.cache is not None else 0

    def check(self, off):
        self.passes += 1
        now = time.monotonic()
        if now - self.last < self.interval or self.cache is None or off.vbar is None:
            return
        self.last = now
        c = off.counters
        c["cache_checks"] = c.get("cache_checks", 0) + 1
        shortfall = off._vbar_bytes - off.vbar.loaded_size
        below = shortfall > 0
        if not below and self.released_at is None and self.interval <= _BASE_INTERVAL:
            return  # at the target (the steady state of a model that fits)
        reserved, idle, total = self.cache.idle()
        # What one pass allocated (all its allocations added up: at least its peak).
        per_pass = (total - self.total) / max(1, self.passes)
        self.total, self.passes = total, 0
        vain = (self.released_at is not None and below
                and reserved - self.released_at >= self.released // 2)
        self.interval = (min(self.max_interval, self.interval * 2) if vain
                         else max(_BASE_INTERVAL, self.interval / 2))
        self.released_at = None
        # Worth releasing: min_idle, or less when the weights miss less than that
        # (a small model short by a few pages recovers from a small cache).
        need = max(off.device.page_size, min(self.min_idle, shortfall))
        if not below or idle < need or per_pass > idle // 2:
            return  # nothing worth taking, or the passes use the cache themselves
        t0 = time.perf_counter()
        self.cache.release()
        c["cache_release_s"] = c.get("cache_release_s", 0.0) + time.perf_counter() - t0
        after = self.cache.idle()[0]
        self.released = max(0, reserved - after)
        self.released_at = after
        c["cache_releases"] = c.get("cache_releases", 0) + 1
        c["cache_released_bytes"] = c.get("cache_released_bytes", 0) + self.released


def pass_end(off):
    """The hook called at the end of every root forward of a ModuleOffload."""
    coop = getattr(off, "_coop", None)
    if coop is None:
        coop = off._coop = Cooperation(off)
    coop.check(off)
