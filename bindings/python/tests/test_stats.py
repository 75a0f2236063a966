"""memory_stats() and memory_summary()."""

import dataclasses

import vramswap
from vramswap import _lib

from conftest import SIM_MEMORY


def test_memory_stats_keys(dev):
    s = vramswap.memory_stats(dev)
    for key in ("faults", "fault_hits", "fault_maps", "fault_not_resident", "fault_fast_fails",
                "pages_mapped", "pages_evicted", "bytes_mapped", "bytes_evicted",
                "chunks_created", "chunks_released", "chunks_reused", "event_waits",
                "reclaims", "reclaim_failures", "intercepted_allocs", "intercepted_frees",
                "intercepted_oom", "transient_retries", "backend_failures", "mem_polls",
                "weights.current", "weights.peak", "scratch.current", "scratch.peak",
                "intercepted.current", "intercepted.peak",
                "host_registered.current", "host_registered.peak",
                "memory.total", "memory.headroom", "memory.budget", "memory.used_weights",
                "memory.used_scratch", "memory.used_intercepted", "memory.used_others",
                "memory.available", "memory.evictable"):
        assert key in s, key
        assert isinstance(s[key], int)
    # Exactly the C structs' fields, nothing invented.
    n = len(_lib.vs_stats._fields_) + len(_lib.vs_memory_info._fields_)
    assert len(s) == n
    assert s["memory.total"] == SIM_MEMORY


def test_memory_stats_track_activity(dev, page):
    with dev.vbar(4 * page) as v:
        with v.pinned(0, 2 * page):
            pass
        with v.pinned(0, page):
            pass
        v.free_memory(page)
        s = vramswap.memory_stats(dev)
        assert s["faults"] == 2
        assert s["fault_hits"] == 1
        assert s["pages_mapped"] == 2 and s["bytes_mapped"] == 2 * page
        assert s["pages_evicted"] == 1 and s["bytes_evicted"] == page
        assert s["weights.current"] == page and s["weights.peak"] == 2 * page
        assert s["memory.used_weights"] == page
        stats = dev.stats()
        assert s["faults"] == stats.faults
        assert dataclasses.asdict(stats)["peak_weights"] == s["weights.peak"]


def test_memory_summary(dev, page):
    with dev.vbar(4 * page) as v:
        with v.pinned(0, 2 * page):
            text = vramswap.memory_summary(dev)
    assert "sim:0" in text
    for word in ("budget", "weights", "scratch", "faults", "evicted", "available"):
        assert word in text
    assert "512.0 KiB" in text  # two 256 KiB pages of weights
    assert text.endswith("\n")


def test_module_functions_use_the_default_device():
    vramswap.init(backend="sim", headroom=0)
    try:
        assert vramswap.memory_stats()["memory.total"] == SIM_MEMORY
        assert "sim:0" in vramswap.memory_summary()
    finally:
        vramswap.shutdown()


def test_format_size():
    from vramswap.stats import format_size
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(64 << 20) == "64.0 MiB"
    assert format_size(3 << 40) == "3.0 TiB"
