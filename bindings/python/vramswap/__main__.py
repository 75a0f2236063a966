"""``python3 -m vramswap [info] [--json]``: what ``vramswap info`` prints.

Lists the backends compiled into the loaded libvramswap, whether each is
available (and why not), and for every available device its name, memory,
granularity, page size, whether it is integrated, and its budget. Each device is
opened briefly with the default configuration (VRAMSWAP_CONF applies); one that
cannot be opened is reported and does not make the command fail. The text and
JSON output follow bindings/cli/info.c.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import Device, VramswapError, backends, library_path, library_version
from .stats import format_size

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _probe(backend, ordinal):
    """{"ordinal", "status", "props", "mem"} for one device."""
    out = {"ordinal": ordinal, "status": "VS_OK", "text": "", "props": None, "mem": None}
    try:
        dev = Device(backend, ordinal)
    except VramswapError as e:
        out.update(status=e.name, text="cannot open: %s (%s)" % (e.name, _desc(e)))
        return out
    try:
        out["props"] = dev.props
        out["mem"] = dev.memory_info()
    except VramswapError as e:
        out.update(status=e.name, text="query failed: %s (%s)" % (e.name, _desc(e)))
    finally:
        try:
            dev.close()
        except VramswapError as e:
            if out["status"] == "VS_OK":
                out.update(status=e.name, text="query failed: %s (%s)" % (e.name, _desc(e)))
    return out


def _desc(e):
    from ._lib import status_str
    return status_str(e.status)


def _hooks():
    from .device import _hook_engine
    h = _hook_engine()
    return h["hook_engine"], h["hook_engine_detail"]


def _text(infos, probe):
    lines = ["vramswap %s, %d backend%s compiled in" % (
        library_version(), len(infos), "" if len(infos) == 1 else "s"), ""]
    hooks, detail = _hooks()
    if hooks:
        lines += ["interception: available (hook engine: %s)" % detail, ""]
    else:
        lines += ["interception: NOT AVAILABLE: this libvramswap was built without the hook engine",
                  "  (%s)." % detail,
                  "  Allocations made directly through the CUDA/HIP/Level Zero drivers (PyTorch's own",
                  "  tensors) are not intercepted or limited; rebuild with Capstone to get it.", ""]
    lines.append("backends:")
    for b in infos:
        if b.available:
            lines.append("  %-12s available, %d device%s" % (
                b.name, b.device_count, "" if b.device_count == 1 else "s"))
        else:
            lines.append("  %-12s unavailable: %s" % (b.name, b.why or "(no reason given)"))
    lines += ["", "devices:"]
    any_device = False
    for b in infos:
        for d in range(b.device_count if b.available else 0):
            any_device = True
            r = probe(b.name, d)
            head = "  %s:%d" % (b.name, d)
            if r["status"] != "VS_OK":
                lines.append(head + "  " + r["text"])
                continue
            p, m = r["props"], r["mem"]
            lines += [head + "  " + p.name,
                      "      total memory   %s (%d bytes)" % (format_size(p.total_memory),
                                                             p.total_memory),
                      "      granularity    %s" % format_size(p.granularity),
                      "      page size      %s" % format_size(p.page_size),
                      "      integrated     %s" % ("yes" if p.integrated else "no"),
                      "      budget         %s (total %s - headroom %s)" % (
                          format_size(m.budget), format_size(m.total), format_size(m.headroom)),
                      "      available      %s" % format_size(m.available)]
    if not any_device:
        lines.append("  (none)")
    return "\n".join(lines)


def _json(infos, probe):
    hooks, detail = _hooks()
    doc = {"version": library_version(),
           "interception": {"available": hooks, "detail": detail}, "backends": []}
    for b in infos:
        entry = {"name": b.name, "available": b.available,
                 "device_count": b.device_count if b.available else 0,
                 "why": "" if b.available else b.why, "devices": []}
        for d in range(b.device_count if b.available else 0):
            r = probe(b.name, d)
            dev = {"ordinal": d, "status": r["status"]}
            if r["status"] == "VS_OK":
                p, m = r["props"], r["mem"]
                dev.update(name=p.name, total_memory=p.total_memory, granularity=p.granularity,
                           page_size=p.page_size, integrated=p.integrated, budget=m.budget,
                           headroom=m.headroom, available=m.available)
            entry["devices"].append(dev)
        doc["backends"].append(entry)
    return json.dumps(doc)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m vramswap",
        description="Show the backends compiled into libvramswap (%s) and their devices."
                    % library_path)
    parser.add_argument("command", nargs="?", default="info", choices=["info"],
                        help="what to show (only 'info')")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        infos = backends()
    except VramswapError as e:
        print("vramswap: vs_backend_get_info: %s" % e, file=sys.stderr)
        return EXIT_FAILURE
    text = _json(infos, _probe) if args.json else _text(infos, _probe)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `python3 -m vramswap | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
