"""memory_stats() and memory_summary(), in the style of torch.cuda.

``memory_stats(device)`` flattens the device's counters (vs_stats) and a fresh
memory view (vs_memory_info) into one dict of ints:

- counters by their C names: "faults", "fault_hits", "fault_maps",
  "fault_not_resident", "fault_fast_fails", "pages_mapped", "pages_evicted",
  "bytes_mapped", "bytes_evicted", "chunks_created", ... "mem_polls",
  "regrowths", "regrown_bytes", "regrow_backoffs";
- usage gauges as "<what>.current" / "<what>.peak": "weights", "scratch",
  "intercepted", "host_registered" (bytes);
- the budget as "memory.<field>": "memory.total", "memory.headroom",
  "memory.budget", "memory.used_weights", "memory.used_scratch",
  "memory.used_intercepted", "memory.used_others", "memory.available",
  "memory.evictable" (bytes).

Keys are derived from the C struct field names, so a counter added to vs_stats
appears here without a change.
"""

from __future__ import annotations

import dataclasses

from .device import current_device


def _device(device):
    return current_device() if device is None else device


def memory_stats(device=None):
    """A flat dict of the device's statistics (see the module docstring)."""
    dev = _device(device)
    stats = dataclasses.asdict(dev.stats())
    out = {}
    for name, value in stats.items():
        if name.startswith("cur_"):
            out[name[4:] + ".current"] = value
        elif name.startswith("peak_"):
            out[name[5:] + ".peak"] = value
        else:
            out[name] = value
    for name, value in dataclasses.asdict(dev.memory_info()).items():
        out["memory." + name] = value
    return out


def format_size(n):
    """Bytes as the CLI prints them: 1536 -> "1.5 KiB", 100 -> "100 B"."""
    if n < 1024:
        return "%d B" % n
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "EiB":
            return "%.1f %s" % (value, unit)
    return str(n)  # pragma: no cover


def memory_summary(device=None):
    """A readable table of memory_stats()."""
    dev = _device(device)
    s = memory_stats(dev)
    p = dev.props
    width = 70
    rule = "-" * width
    lines = ["=" * width,
             " vramswap memory summary: %s:%d (%s)" % (p.backend, p.ordinal, p.name),
             " page size %s, granularity %s%s%s" % (
                 format_size(p.page_size), format_size(p.granularity),
                 ", integrated" if p.integrated else "",
                 ", intercepting" if p.intercepting else ""),
             rule,
             " %-28s %18s %18s" % ("Memory", "current", "peak")]

    def row(label, cur, peak=None):
        lines.append(" %-28s %18s %18s" % (label, format_size(cur),
                                            "" if peak is None else format_size(peak)))

    row("total", s["memory.total"])
    row("headroom", s["memory.headroom"])
    row("budget", s["memory.budget"])
    row("weights (VBAR pages)", s["weights.current"], s["weights.peak"])
    row("scratch buffers", s["scratch.current"], s["scratch.peak"])
    row("intercepted allocations", s["intercepted.current"], s["intercepted.peak"])
    row("used by others", s["memory.used_others"])
    row("available", s["memory.available"])
    row("evictable", s["memory.evictable"])
    row("pinned host (registered)", s["host_registered.current"], s["host_registered.peak"])
    lines.append(rule)

    def count(label, value, extra=""):
        lines.append(" %-28s %18d %s" % (label, value, extra))

    faults = s["faults"]
    hit = (" (%.1f%% hits)" % (100.0 * s["fault_hits"] / faults)) if faults else ""
    count("faults", faults, hit)
    count("  all pages resident", s["fault_hits"])
    count("  mapped pages", s["fault_maps"])
    count("  not resident", s["fault_not_resident"])
    count("    refused by watermark", s["fault_fast_fails"])
    count("pages mapped", s["pages_mapped"], format_size(s["bytes_mapped"]))
    count("pages evicted", s["pages_evicted"], format_size(s["bytes_evicted"]))
    count("chunks created", s["chunks_created"])
    count("chunks released", s["chunks_released"])
    count("chunks reused", s["chunks_reused"])
    count("evictions waiting on events", s["event_waits"])
    count("reclaims", s["reclaims"], "(%d short)" % s["reclaim_failures"])
    count("intercepted allocs", s["intercepted_allocs"],
          "(%d frees, %d refused)" % (s["intercepted_frees"], s["intercepted_oom"]))
    count("driver retries (transient)", s["transient_retries"])
    count("driver failures", s["backend_failures"])
    count("free-memory polls", s["mem_polls"])
    count("watermark regrowths", s["regrowths"], "%s (%d backed off)" % (
        format_size(s["regrown_bytes"]), s["regrow_backoffs"]))
    lines.append("=" * width)
    return "\n".join(lines) + "\n"
