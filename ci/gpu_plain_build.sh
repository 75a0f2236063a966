#!/usr/bin/env bash
# For the GPU machine (issue 14): the build a new user does there -- a plain
# configure with no flags, no Criterion, no Capstone, CUDA toolkit present --
# must succeed, and `vramswap info` must say whether interception is available.
# Then the Python bindings on that build: the default device opens lazily on the
# GPU (no fallback warning), and a missing backend fails with its reason.
#
# usage (repository root): bash ci/gpu_plain_build.sh      [JOBS=16] [VS_OUT=dir]
# Writes plain_configure.txt, plain_info.txt, plain_info.json, plain_python.txt
# and plain_summary.json to $VS_OUT (default: a new temp dir, printed); the last
# line is "gpu_plain_build: PASS" or "gpu_plain_build: FAIL: <why>".
set -uo pipefail
cd "$(dirname "$0")/.."
out=${VS_OUT:-$(mktemp -d)}
mkdir -p "$out"
JOBS=${JOBS:-16}
PY=${PYTHON:-python3}
build=build-plain
echo "gpu_plain_build: results in $out"
fail() {
  echo "{\"pass\": false, \"why\": \"$1\"}" >"$out/plain_summary.json"
  echo "gpu_plain_build: FAIL: $1"
  exit 1
}

rm -rf "$build"
cmake -S . -B "$build" >"$out/plain_configure.txt" 2>&1 || { cat "$out/plain_configure.txt"; fail "plain configure failed"; }
grep 'vramswap' "$out/plain_configure.txt"
cmake --build "$build" -j"$JOBS" >"$out/plain_build.txt" 2>&1 || { tail -n 40 "$out/plain_build.txt"; fail "plain build failed"; }
echo "gpu_plain_build: plain configure + build OK"

cli=$build/bindings/cli/vramswap
"$cli" info >"$out/plain_info.txt" 2>&1 || { cat "$out/plain_info.txt"; fail "vramswap info failed"; }
cat "$out/plain_info.txt"
"$cli" info --json >"$out/plain_info.json" 2>"$out/plain_info_json.err" || fail "vramswap info --json failed"
grep -Eq '^interception: (available|NOT AVAILABLE)' "$out/plain_info.txt" || fail "info does not state interception"
grep -Eq '^  cuda +available, [1-9]' "$out/plain_info.txt" || fail "info does not list the CUDA backend with a device"

lib=$(readlink -f "$build/core/libvramswap.so")
(cd /tmp && env -u VRAMSWAP_CONF PYTHONPATH="$OLDPWD/bindings/python" VRAMSWAP_LIBRARY="$lib" "$PY" - <<'PY') \
  >"$out/plain_python.txt" 2>&1 || { cat "$out/plain_python.txt"; fail "Python on the plain build"; }
import logging
import vramswap
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
vramswap.logger.addHandler(Keep())
stats = vramswap.memory_stats()                 # no init(): opens the default device lazily
dev = vramswap.default_device()
print("default device:", dev.props)
print("memory.total:", stats["memory.total"])
assert dev.backend == "cuda", "auto did not pick CUDA on a GPU machine: %r" % (dev.props,)
assert not any("fell back" in r.getMessage() for r in records), [r.getMessage() for r in records]
vramswap.shutdown()
d = vramswap.init(backend="cuda", intercept=True)
print("intercept=True:", d.props.intercepting, "hook_engine:", d.props.hook_engine, d.props.hook_engine_detail)
assert d.props.intercepting == d.props.hook_engine, d.props
if not d.props.hook_engine:
    assert any("built without the hook engine" in r.getMessage() for r in records), \
        [r.getMessage() for r in records]
    print("WARNING logged:", [r.getMessage() for r in records if r.levelno == logging.WARNING])
vramswap.shutdown()
try:
    vramswap.init(backend="hip")
except vramswap.NoDeviceError as e:
    print("init(backend='hip'):", e)
    assert "hip" in str(e) and "[" in str(e), str(e)
else:
    raise AssertionError("init(backend='hip') opened a device")
print("python: OK")
PY
cat "$out/plain_python.txt"
hooks=$(grep -c '^interception: available' "$out/plain_info.txt" || true)
echo "{\"pass\": true, \"interception_available\": $([ "$hooks" -gt 0 ] && echo true || echo false)}" >"$out/plain_summary.json"
echo "gpu_plain_build: PASS"
