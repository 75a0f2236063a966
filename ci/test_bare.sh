#!/usr/bin/env bash
# The "bare machine" check (Note [Optional parts] in cmake/optional.cmake):
# configure with every search path hidden -- CMAKE_FIND_ROOT_PATH an empty
# folder in ONLY mode, pkg-config disabled -- as on a Linux box with nothing but
# a C compiler and CMake. Checks that
#   - configure succeeds and names each missing part and its package in one line;
#   - the build is a working sim-only library: `vramswap info` says interception
#     is NOT available, the demo and the conformance suite pass on sim, and the
#     Python bindings import, open the default device lazily and report it;
#   - asking for a missing part with ON still fails configure, naming the package.
#
# usage: ci/test_bare.sh [BUILD_DIR]   (default build-bare/)
# Prints "bare: N checks passed" on success; exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-bare}
PYTHON=${PYTHON:-/usr/bin/python3}
JOBS=${JOBS:-2}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/empty-root"
bare_args=(
  -DCMAKE_FIND_ROOT_PATH="$work/empty-root"
  -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY
  -DCMAKE_FIND_ROOT_PATH_MODE_LIBRARY=ONLY
  -DCMAKE_FIND_ROOT_PATH_MODE_PACKAGE=ONLY
  -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON
)
passed=0
fail() { echo "bare: FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "bare: ok: $*"; }

# A fresh cache: cached find results from an earlier, non-bare configure would hide the point.
rm -rf "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_WERROR=ON "${bare_args[@]}" \
  2>&1 | tee "$work/configure.log" || fail "configure failed on a bare machine"
ok "configure succeeds with every optional dependency hidden"

expect_line() {   # regex description
  grep -Eq "$1" "$work/configure.log" || fail "configure did not print: $2"
  [ "$(grep -Ec "$1" "$work/configure.log")" -eq 1 ] || fail "configure printed more than one line for: $2"
}
expect_line 'test suites .* left out: Criterion .*apt install libcriterion-dev' "tests left out (libcriterion-dev)"
expect_line 'hook engine .* left out: Capstone .*apt install libcapstone-dev' "hook engine left out (libcapstone-dev)"
expect_line 'CUDA backend left out: cuda\.h .*nvidia-cuda-dev' "CUDA left out (nvidia-cuda-dev)"
expect_line 'HIP backend left out: .*libamdhip64-dev' "HIP left out (libamdhip64-dev)"
expect_line 'Level Zero backend left out: .*libze-dev' "Level Zero left out (libze-dev)"
grep -q 'vramswap backends: sim$' "$work/configure.log" || fail "backends other than sim were configured"
ok "one configure line per missing part, each naming its Debian/Ubuntu package"

cmake --build "$build" -j"$JOBS"
cli=$build/bindings/cli/vramswap
lib=$(readlink -f "$build/core/libvramswap.so")
[ -x "$cli" ] && [ -f "$lib" ] || fail "no CLI or library built"
ok "build succeeds (library and CLI)"

"$cli" info >"$work/info.txt" || fail "vramswap info failed"
cat "$work/info.txt"
grep -q '^interception: NOT AVAILABLE' "$work/info.txt" || fail "info does not say interception is unavailable"
grep -q 'libcapstone-dev' "$work/info.txt" || fail "info does not name the Capstone package"
grep -Eq '^  sim +available, 1 device' "$work/info.txt" || fail "info does not list sim as available"
"$cli" info --json >"$work/info.json" || fail "vramswap info --json failed"
"$PYTHON" - "$work/info.json" <<'PY' || fail "info --json does not report interception as unavailable"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["interception"]["available"] is False, d["interception"]
assert "Capstone" in d["interception"]["detail"], d["interception"]
assert [b["name"] for b in d["backends"]] == ["sim"], d["backends"]
PY
ok "vramswap info (text and --json) says interception is not available and why"

"$cli" demo --backend sim --layers 12 --layer-size 1M --budget 4M --passes 2 >"$work/demo.txt" \
  || { cat "$work/demo.txt"; fail "demo on sim failed"; }
ok "vramswap demo on sim"
"$cli" conformance --backend sim >"$work/conf.txt" 2>&1 || { cat "$work/conf.txt"; fail "conformance on sim failed"; }
tail -n 3 "$work/conf.txt"
ok "vramswap conformance --backend sim"

# Python, outside the tree: the library from VRAMSWAP_LIBRARY; no init() before memory_stats().
(cd "$work" && VRAMSWAP_LIBRARY=$lib PYTHONPATH=$OLDPWD/bindings/python PYTHONDONTWRITEBYTECODE=1 \
  "$PYTHON" - <<'PY') 2>"$work/py.err" || { cat "$work/py.err"; fail "Python on the bare build"; }
import logging
import vramswap
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
vramswap.logger.addHandler(Keep())
stats = vramswap.memory_stats()            # opens the default device lazily
assert stats["memory.total"] > 0, stats
props = vramswap.default_device().props
assert props.backend == "sim" and props.hook_engine is False, props
assert "Capstone" in props.hook_engine_detail, props
warn = [r.getMessage() for r in records if r.levelno == logging.WARNING]
assert any("fell back to the simulated device" in m for m in warn), warn
vramswap.shutdown()
try:
    vramswap.init(backend="cuda")
except vramswap.NoDeviceError as e:
    assert "no backend 'cuda' in this library" in str(e), str(e)
else:
    raise AssertionError("init(backend='cuda') opened a device on a sim-only build")
PY
ok "Python: lazy default device, sim fallback warned, props.hook_engine False, init(backend=cuda) explains"

# ON still fails hard, naming the package.
for opt in VS_HOOKS:libcapstone-dev VS_BACKEND_CUDA:nvidia-cuda-dev VS_BUILD_TESTS:libcriterion-dev; do
  var=${opt%%:*}
  pkg=${opt#*:}
  if cmake -S . -B "$work/on-$var" "${bare_args[@]}" "-D$var=ON" >"$work/on.log" 2>&1; then
    fail "$var=ON configured although its dependency is hidden"
  fi
  # CMake wraps the message: join its lines before matching.
  grep -q "$var=ON but .*$pkg" <<<"$(tr -s ' \n' '  ' <"$work/on.log")" || { cat "$work/on.log"; fail "$var=ON failed without naming $pkg"; }
done
ok "VS_HOOKS=ON, VS_BACKEND_CUDA=ON and VS_BUILD_TESTS=ON fail configure, naming the package"

# Capstone with only its shared library (no libcapstone.a): the hook engine is
# built against libcapstone.so, which libvramswap then needs at run time.
cs_root=$work/capstone-shared-root
cs_lib=$(ls /usr/lib/*/libcapstone.so /usr/lib/libcapstone.so /usr/lib64/libcapstone.so 2>/dev/null | head -n 1 || true)
cs_inc=/usr/include/capstone
if [ -n "$cs_lib" ] && [ -d "$cs_inc" ]; then
  mkdir -p "$cs_root/usr/include" "$cs_root$(dirname "$cs_lib")"
  ln -s "$cs_inc" "$cs_root/usr/include/capstone"
  ln -s "$(readlink -f "$cs_lib")" "$cs_root$cs_lib"
  cs=$build-capstone-shared
  rm -rf "$cs"
  cmake -S . -B "$cs" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_WERROR=ON "${bare_args[@]}" \
    -DCMAKE_FIND_ROOT_PATH="$cs_root" -DVS_HOOKS=ON -DVS_BUILD_CLI=ON >"$work/cs.log" 2>&1 \
    || { cat "$work/cs.log"; fail "configure with only the shared Capstone"; }
  cmake --build "$cs" -j"$JOBS" --target vramswap_cli >"$work/cs-build.log" 2>&1 \
    || { cat "$work/cs-build.log"; fail "build with only the shared Capstone"; }
  grep -q 'NEEDED.*libcapstone' <<<"$(readelf -d "$cs/core/libvramswap.so")" \
    || fail "libvramswap does not link the shared libcapstone"
  grep -q '^interception: available (hook engine: .*libcapstone.so' <<<"$("$cs/bindings/cli/vramswap" info)" \
    || fail "info of the shared-Capstone build does not report the engine"
  ok "only libcapstone.so: the hook engine is built, linked shared, and info reports it"
else
  echo "bare: libcapstone.so or capstone/ headers not found: the shared-Capstone check was not run"
fi

# The GPU machine without Capstone, emulated: the CUDA backend (on the libcuda
# emulator of tests/emulators/cuda) in a build without the hook engine. Opening
# a device with intercept must work, log a WARNING with the reason, and report
# props.intercepting False / props.hook_engine False. Needs cuda.h (CI has it).
nh=$build-nohooks
rm -rf "$nh"
cmake -S . -B "$nh" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_WERROR=ON -DVS_HOOKS=OFF \
  -DVS_BACKEND_HIP=OFF -DVS_BACKEND_LEVEL_ZERO=OFF >"$work/nh.log" 2>&1 || { cat "$work/nh.log"; fail "configure $nh"; }
if grep -q 'CUDA backend with' "$work/nh.log" && ! grep -q 'test suites (ctest) left out' "$work/nh.log"; then
  cmake --build "$nh" -j"$JOBS" --target vramswap vs_emu_cuda vramswap_cli >"$work/nh-build.log" 2>&1 \
    || { cat "$work/nh-build.log"; fail "build $nh"; }
  emu=$(readlink -f "$nh/emulators/cuda/libcuda.so.1")
  [ -f "$emu" ] || fail "no CUDA emulator in $nh"
  VRAMSWAP_LIBCUDA=$emu "$nh/bindings/cli/vramswap" info >"$work/nh-info.txt" || fail "info ($nh)"
  grep -q '^interception: NOT AVAILABLE' "$work/nh-info.txt" || fail "info ($nh) does not say interception is unavailable"
  grep -Eq '^  cuda +available' "$work/nh-info.txt" || fail "info ($nh) does not list cuda on the emulator"
  nhlib=$(readlink -f "$nh/core/libvramswap.so")
  (cd "$work" && VRAMSWAP_LIBCUDA=$emu VRAMSWAP_LIBRARY=$nhlib \
    PYTHONPATH=$OLDPWD/bindings/python PYTHONDONTWRITEBYTECODE=1 "$PYTHON" - <<'PY') \
    2>"$work/nh-py.err" || { cat "$work/nh-py.err"; fail "intercept without the hook engine"; }
import logging
import vramswap
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
vramswap.logger.addHandler(Keep())
d = vramswap.init(backend="cuda", intercept=True)
p = d.props
assert p.backend == "cuda" and p.intercepting is False and p.hook_engine is False, p
warn = [r.getMessage() for r in records if r.levelno == logging.WARNING]
assert any("interception" in m and "built without the hook engine" in m for m in warn), warn
vramswap.shutdown()
PY
  ok "CUDA (emulated) without the hook engine: intercept=True warns with the reason; props say so"
else
  echo "bare: cuda.h or Criterion (the emulator is built with the tests) not found: the emulated GPU-machine check (CUDA without hooks) was not run"
fi

echo "bare: $passed checks passed"
