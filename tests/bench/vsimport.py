"""Import the vramswap bindings from wherever a benchmark run finds them.

The benchmarks run from a source checkout on the GPU machine, usually without
installing anything. Order (first that works):

1. ``--library PATH`` (a benchmark option) or ``VRAMSWAP_LIBRARY``: the library
   to load (the bindings' own rule, Note [Library search order] in _lib.py);
   without either, the first of ``build/core/libvramswap.so`` and
   ``build/libvramswap.so`` under the repository root, if one exists.
2. The bindings of this checkout (``bindings/python``), so that a run measures
   the code beside it, not an older installed copy.
"""

from __future__ import annotations

import importlib
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_GUESSES = ("build/core/libvramswap.so", "build/libvramswap.so")


def import_vramswap(library=None):
    """Return the vramswap module, or raise ImportError with the reason."""
    if library:
        os.environ["VRAMSWAP_LIBRARY"] = os.path.abspath(library)
    elif "VRAMSWAP_LIBRARY" not in os.environ:
        for g in _GUESSES:
            p = os.path.join(REPO, g)
            if os.path.exists(p):
                os.environ["VRAMSWAP_LIBRARY"] = p
                break
    here = os.path.join(REPO, "bindings", "python")
    if os.path.isdir(os.path.join(here, "vramswap")) and here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("vramswap")
