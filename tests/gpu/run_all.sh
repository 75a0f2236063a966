#!/usr/bin/env bash
# Build, test and measure on a GPU machine in one call (the lent H200 of
# docs/conformance.md and docs/performance.md). Run from the repository root:
#
#   OUT=/some/dir bash tests/gpu/run_all.sh [STEP[:SECONDS] ...]
#
# Steps (default: all, in this order): env plain conformance pytest comfy
# dynamic decode bench micro pressure soak. Each step runs under `timeout` (its default limit
# below, or :SECONDS), logs to $OUT/work/<step>.log and gives the tests it
# runs VS_OUT=$WORK/<step> ($WORK: a temporary folder). Everything is packed
# into $OUT/results.tgz, the step table is also written to $OUT/summary.txt,
# and printed last.
#
# The library: a build in build/ made with Capstone (interception available),
# e.g. one made on Debian and carried as .devbuild/ (copied to build/ when
# build/ has no library); the `plain` step separately checks that a plain
# `cmake` build (no flags) works on this machine and what `vramswap info` says.
set -u
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d)/work
mkdir -p "$WORK" "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ ! -e build/core/libvramswap.so ] && [ -d .devbuild ]; then
  rm -rf build && cp -a .devbuild build
fi
export VRAMSWAP_LIBRARY=$PWD/build/core/libvramswap.so
export PYTHONPATH=$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}
export CLI=$PWD/build/bindings/cli/vramswap
export LD_LIBRARY_PATH=$PWD/build/core${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # a carried build's RPATH names the folder it was built in

declare -A LIMIT=([env]=30 [plain]=150 [conformance]=90 [pytest]=200 [comfy]=200
                  [dynamic]=170 [decode]=150 [bench]=200 [micro]=60 [pressure]=120 [soak]=200)

step_env() {
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  python3 -c 'import torch, transformers, accelerate; print("torch", torch.__version__, "transformers", transformers.__version__, "accelerate", accelerate.__version__)'
  python3 -m pip list 2>/dev/null | grep -i -E 'diffusers|tqdm|safetensors|numpy|pytest' || true
  date -u; uname -r; gcc --version | head -1; cmake --version | head -1; df -h . | tail -1
  "$CLI" info
}
step_plain() {   # what a user does: no flags at all (ci/gpu_plain_build.sh)
  env -u LD_LIBRARY_PATH -u VRAMSWAP_LIBRARY JOBS=16 bash ci/gpu_plain_build.sh
}
step_conformance() {
  "$CLI" conformance --backend cuda
}
step_pytest() {
  python3 -m pytest -m gpu -v -p no:cacheprovider ${PYTEST_SEL:-bindings/python/tests} &&
  python3 -m pytest -q -p no:cacheprovider bindings/python/tests/test_init_fallback.py
}
step_comfy() {
  VS_COMFY_BUDGET_S=$(( ${1} - 20 )) python3 tests/comfyui/compare_gpu.py
}
step_dynamic() {   # the steady rows, then the dynamic phases and the rotations
  python3 tests/bench/dynamic.py ${DYNAMIC_ARGS:-}
}
step_decode() {
  python3 tests/bench/decode.py --json "$VS_OUT/decode.json"
}
step_bench() {
  python3 tests/bench/bench.py --json "$VS_OUT/bench.json"
}
step_pressure() {   # weights + activations beyond free memory, 3 allocator settings x 3 modes
  python3 tests/gpu/pressure.py --json "$VS_OUT/pressure.json"
}
step_micro() {   # fault+unpin from Python and the offload hook cost per unit
  python3 tests/bench/micro.py --backend cuda --json "$VS_OUT/micro.json"
}
step_soak() {   # one child per allocator setting
  python3 tests/gpu/soak.py --minutes "${SOAK_MINUTES:-1}"
}

steps=("$@")
[ "${#steps[@]}" -eq 0 ] && steps=(env plain conformance pytest comfy dynamic decode bench micro pressure soak)
table=()
for s in "${steps[@]}"; do
  name=${s%%:*}
  lim=${LIMIT[$name]:-120}
  [ "$s" != "$name" ] && lim=${s#*:}
  export VS_OUT=$WORK/$name
  mkdir -p "$VS_OUT"
  echo "==================== $name (limit ${lim}s) ===================="
  t0=$SECONDS
  timeout -k 10 "$lim" bash -c "$(declare -f "step_$name"); step_$name $lim" 2>&1 | tee "$WORK/$name.log" | tail -n 40
  rc=${PIPESTATUS[0]}
  table+=("$(printf '%-12s rc=%-4s %5ds' "$name" "$rc" $((SECONDS - t0)))")
done
printf '%s\n' "${table[@]}" >"$WORK/summary.txt"
cp "$WORK/summary.txt" "$OUT/summary.txt"
tar czf "$OUT/results.tgz" -C "$(dirname "$WORK")" work
echo "==================== summary ===================="
printf '%s\n' "${table[@]}"
