"""The ctypes layer against the headers and the loaded library."""

import ctypes
import re
import shutil
import subprocess

import pytest

import vramswap
from vramswap import _lib, constants

from conftest import REPO_ROOT, run_python

HEADERS = {
    "core": REPO_ROOT / "core" / "include" / "vramswap.h",
    "sim": REPO_ROOT / "backends" / "sim" / "include" / "vramswap" / "sim.h",
}
have_headers = pytest.mark.skipif(not all(p.exists() for p in HEADERS.values()),
                                  reason="C headers not found (installed package?)")


def header_functions(path):
    text = re.sub(r"/\*.*?\*/", " ", path.read_text(), flags=re.S)
    return set(re.findall(r"\bVS_API\b[^;(]*?\b(vs_\w+)\s*\(", text))


@have_headers
def test_every_header_function_is_declared():
    core = header_functions(HEADERS["core"])
    assert core == set(_lib.PROTOTYPES), "declare exactly the functions of vramswap.h"
    assert header_functions(HEADERS["sim"]) == set(_lib.SIM_PROTOTYPES)


def test_every_declared_function_has_types():
    for name in list(_lib.PROTOTYPES) + (list(_lib.SIM_PROTOTYPES) if _lib.HAVE_SIM else []):
        fn = getattr(_lib.LIB, name)
        assert fn.argtypes is not None, name


def _layout_program(structs):
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <vramswap.h>",
             "#include <vramswap/sim.h>", "int main(void) {"]
    for s in structs:
        name = s.__name__
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (name, name))
        for field, _ in s._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (name, field, name, field))
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@have_headers
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_struct_layouts_match_the_headers(tmp_path):
    src = tmp_path / "layout.c"
    src.write_text(_layout_program(_lib.STRUCTS))
    exe = tmp_path / "layout"
    inc = [str(REPO_ROOT / "core" / "include"), str(REPO_ROOT / "backends" / "sim" / "include")]
    subprocess.run(["cc", "-std=c11", "-o", str(exe), str(src)] + ["-I" + i for i in inc],
                   check=True)
    out = dict(line.rsplit(" ", 1) for line in
               subprocess.run([str(exe)], check=True, capture_output=True, text=True)
               .stdout.splitlines())
    for s in _lib.STRUCTS:
        assert int(out[s.__name__]) == ctypes.sizeof(s), s.__name__
        for field, _ in s._fields_:
            assert int(out["%s.%s" % (s.__name__, field)]) == getattr(s, field).offset, \
                "%s.%s" % (s.__name__, field)


@have_headers
def test_sim_counters_calls_length_is_the_op_count():
    if _lib.vs_sim_counters is None:
        pytest.skip("VS_SIM_OP_COUNT_ is not in the library's constant table")
    assert len(_lib.vs_sim_counters().calls) == _lib.CONSTANTS["VS_SIM_OP_COUNT_"]


def test_constants_match_the_library():
    table = constants.all_constants()
    assert table, "the library's constant table is empty"
    for name, value in table.items():
        v = ctypes.c_int64()
        assert _lib.LIB.vs_constant(name.encode(), ctypes.byref(v)) == 0, name
        assert v.value == value, name
        assert getattr(constants, name) == value
    v = ctypes.c_int64()
    assert _lib.LIB.vs_constant(b"VS_NO_SUCH_CONSTANT", ctypes.byref(v)) == \
        table["VS_ERR_INVALID_ARGUMENT"]
    with pytest.raises(AttributeError):
        constants.VS_NO_SUCH_CONSTANT


def test_enums_are_built_from_the_library():
    c = constants.all_constants()
    assert vramswap.Status.OK == c["VS_OK"]
    assert vramswap.Status.NOT_RESIDENT == c["VS_NOT_RESIDENT"]
    assert vramswap.Status.ERR_BUSY == c["VS_ERR_BUSY"]
    assert len(vramswap.Status) == c["VS_STATUS_COUNT_"]
    for st in vramswap.Status:
        assert _lib.status_name(st) == "VS_" + st.name
    assert vramswap.LogLevel.DEBUG == c["VS_LOG_DEBUG"]
    assert vramswap.CopyKind.HOST_TO_DEVICE == c["VS_COPY_HOST_TO_DEVICE"]
    assert vramswap.PageFlags.PINNED == c["VS_PAGE_PINNED"]
    assert vramswap.DeviceFlags.INTERCEPT == c["VS_DEVICE_INTERCEPT"]
    for op in vramswap.SimOp:
        assert c["VS_SIM_OP_" + op.name] == op


def test_status_names_and_strings():
    assert _lib.status_name(vramswap.Status.ERR_OUT_OF_MEMORY) == "VS_ERR_OUT_OF_MEMORY"
    assert _lib.status_name(10_000) == "VS_UNKNOWN"
    assert _lib.status_str(vramswap.Status.OK)


def test_version():
    assert vramswap.library_version().split(".")[0] == str(_lib.ABI_MAJOR)
    assert vramswap.library_version() == "%d.%d.%d" % (
        constants.VS_VERSION_MAJOR, constants.VS_VERSION_MINOR, constants.VS_VERSION_PATCH)


def test_library_is_loaded_rtld_local():
    # RTLD_LOCAL: the vs_ symbols are not in the global namespace.
    assert not hasattr(ctypes.CDLL(None), "vs_version")


def test_library_search_honours_vramswap_library(tmp_path):
    r = run_python("import vramswap", env={"VRAMSWAP_LIBRARY": str(tmp_path / "nope.so")})
    assert r.returncode != 0
    assert "VRAMSWAP_LIBRARY" in r.stderr and "nope.so" in r.stderr


def test_library_search_finds_a_bundled_copy(tmp_path):
    pkg = tmp_path / "vramswap"
    shutil.copytree(REPO_ROOT / "bindings" / "python" / "vramswap", pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "libvramswap*"))
    shutil.copy(vramswap.library_path, pkg / "libvramswap.so.0")
    r = run_python("import vramswap; print(vramswap.library_path)",
                   env={"VRAMSWAP_LIBRARY": "", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "libvramswap.so.0")
