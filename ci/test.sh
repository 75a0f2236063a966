#!/usr/bin/env bash
# vramswap CI: every test tier, offline, on a 2-core machine.
#
#   default   RelWithDebInfo build in build/, ctest (everything but GPU tests)
#   asan      ASan+UBSan build with invariant checks in build-asan/, ctest -L $ASAN_LABELS
#   tsan      TSan build in build-tsan/, ctest -L $TSAN_LABELS
#   python    pytest of bindings/python/tests against build/'s libvramswap
#   install   ci/test_install.sh: install into a DESTDIR, build consumers, run them
#   comfy     pytest of bindings/comfy_aimdo/tests (the comfy_aimdo drop-in and the
#             ComfyUI scenario on the simulator and the driver emulators)
#   packaging ci/test_pip.sh (offline pip, wheel with the library, in venvs) and
#             ci/test_deb.sh (cpack -G DEB in build-deb/, lintian, dpkg -i, run, purge)
#   bare      ci/test_bare.sh: configure with every optional dependency hidden in
#             build-bare/; a working sim-only build that says what it lacks
#   fuzz      clang-14 libFuzzer build (ASan+UBSan, invariant checks) in build-fuzz/:
#             each tests/fuzz harness for a bounded time on a copy of its corpus
#
# `ci/test.sh` runs them all; `ci/test.sh asan tsan` only those named. Every
# tier runs even when an earlier one failed. The last line is
# "N passed, N failed", counting tests (see the line before it).
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."

ASAN_LABELS='unit|property|conformance|cli'   # ctest -L regex for the sanitizer build
TSAN_LABELS='stress'                      # ctest -L regex for the TSan build
DEFAULT_EXCLUDE='gpu'                     # ctest -LE regex for the default build
JOBS=2                                    # build and ctest parallelism
PYTHON=${PYTHON:-/usr/bin/python3}        # the Debian interpreter (python3-* packages)
ALL_TIERS=(default asan tsan python install comfy packaging bare fuzz)
FUZZ_SECONDS=(api:50 config:20 hook:40)   # harness:seconds for the fuzz tier (~2 min)

# allocator_may_return_null: an impossible malloc returns NULL as it does
# without ASan (the library reports VS_ERR_OUT_OF_MEMORY) instead of aborting.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

banner() {
  printf '\n==================== %s ====================\n' "$*"
}

configure_and_build() {   # build_dir cmake-args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_WERROR=ON "$@"
  cmake --build "$dir" -j"$JOBS"
}

# Run ctest and write "passed failed" of its summary into $count_file.
# A ctest that finds no test fails (--no-tests=error): an empty tier is not a pass.
run_ctest() {   # build_dir ctest-args...
  local dir=$1 log
  shift
  log=$(mktemp)
  local rc=0
  (cd "$dir" && ctest --output-on-failure --no-tests=error -j"$JOBS" "$@") 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  rm -f "$log"
  if [ -n "$line" ]; then
    local failed total
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    echo "$((total - failed)) $failed" >"$count_file"
  fi
  return "$rc"
}

tier_default() {
  configure_and_build build
  run_ctest build -LE "$DEFAULT_EXCLUDE"
  # The conformance suite on every backend (simulator and the three driver
  # emulators) as one backend x group table; ctest ran it too (conformance_matrix).
  banner "conformance matrix"
  bash ci/conformance_matrix.sh build
}

tier_asan() {
  configure_and_build build-asan -DVS_ASAN=ON -DVS_DEBUG_INVARIANTS=ON
  run_ctest build-asan -L "$ASAN_LABELS"
}

tier_tsan() {
  configure_and_build build-tsan -DVS_TSAN=ON
  run_ctest build-tsan -L "$TSAN_LABELS"
}

tier_python() {
  if [ ! -d bindings/python/tests ]; then
    echo "python: bindings/python/tests does not exist yet; tier skipped"
    echo "skip" >"$count_file"
    return 0
  fi
  configure_and_build build   # a no-op when the default tier built it
  local lib
  lib=$(find build -name 'libvramswap.so' -print -quit)
  if [ -z "$lib" ]; then
    echo "python: no libvramswap.so under build/" >&2
    return 1
  fi
  lib=$(readlink -f "$lib")
  echo "python: VRAMSWAP_LIBRARY=$lib"
  VRAMSWAP_LIBRARY=$lib run_pytest bindings/python/tests
}

# Run pytest (arguments after -W error) and write "passed failed" of its last
# line, which reads like "==== 3 failed, 40 passed, 2 skipped in 4.1s ====",
# into $count_file; returns pytest's status.
run_pytest() {
  local log rc=0 summary passed failed
  log=$(mktemp)
  "$PYTHON" -m pytest -W error "$@" 2>&1 | tee "$log" || rc=$?
  summary=$(grep -E '^=+ .*( passed| failed| error| no tests ran).* in [0-9.]+s' "$log" | tail -n 1 || true)
  rm -f "$log"
  passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | awk '{n += $1} END {print n + 0}' || true)
  failed=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{n += $1} END {print n + 0}' || true)
  [ -n "$summary" ] && echo "$passed $failed" >"$count_file"
  return "$rc"
}

tier_install() {
  configure_and_build build   # a no-op when the default tier built it
  bash ci/test_install.sh build
  echo "1 0" >"$count_file"
}

tier_comfy() {
  configure_and_build build   # a no-op when the default tier built it
  local lib
  lib=$(readlink -f build/core/libvramswap.so)
  echo "comfy: VRAMSWAP_LIBRARY=$lib"
  VRAMSWAP_LIBRARY=$lib PYTHONPATH=bindings/python:bindings/comfy_aimdo PYTHONDONTWRITEBYTECODE=1 \
    run_pytest -p no:cacheprovider bindings/comfy_aimdo/tests
}

tier_packaging() {
  configure_and_build build   # a no-op when the default tier built it
  local log
  log=$(mktemp)
  bash ci/test_pip.sh build 2>&1 | tee "$log"
  bash ci/test_deb.sh build-deb 2>&1 | tee -a "$log"
  local n
  n=$(sed -n 's/^test_\(pip\|deb\): \([0-9]*\) checks passed$/\2/p' "$log" | awk '{n += $1} END {print n + 0}')
  rm -f "$log"
  echo "$n 0" >"$count_file"
}

tier_bare() {
  local log
  log=$(mktemp)
  bash ci/test_bare.sh build-bare 2>&1 | tee "$log"
  local n
  n=$(sed -n 's/^bare: \([0-9]*\) checks passed$/\1/p' "$log")
  rm -f "$log"
  [ -n "$n" ] && echo "$n 0" >"$count_file"
}

# Each harness runs on a scratch copy of its corpus (the repository's corpus is
# never written). A crash, leak or oracle failure fails the tier; libFuzzer
# writes the input to build-fuzz/artifacts/ (docs/conformance.md says how to
# add it to tests/fuzz/corpus/ as a regression test). Counted: one test per harness.
tier_fuzz() {
  local dir=build-fuzz flags='-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer'
  CC=clang-14 cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_FUZZ=ON -DVS_DEBUG_INVARIANTS=ON \
    -DVS_BUILD_CLI=OFF -DVS_WERROR=OFF "-DCMAKE_C_FLAGS=$flags" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=address,undefined
  local targets=() h
  for h in "${FUZZ_SECONDS[@]}"; do
    targets+=("fuzz_${h%%:*}")
  done
  # fuzz_hook exists only with the hook engine (Capstone, x86_64): build what exists.
  local t have=() known
  known=$(cmake --build "$dir" --target help)   # not piped into grep -q: pipefail and SIGPIPE
  for t in "${targets[@]}"; do
    if grep -qx "\.\.\. $t" <<<"$known"; then
      have+=("$t")
    fi
  done
  cmake --build "$dir" -j"$JOBS" --target "${have[@]}"
  mkdir -p "$dir/artifacts"
  local passed=0 failed=0 work rc secs name log execs rate
  work=$(mktemp -d)
  for h in "${FUZZ_SECONDS[@]}"; do
    name=${h%%:*}
    secs=${h##*:}
    if [ ! -x "$dir/tests/fuzz/fuzz_$name" ]; then
      echo "fuzz: fuzz_$name not built (no hook engine in this build)"
      continue
    fi
    cp -r "tests/fuzz/corpus/$name" "$work/$name"
    log="$work/$name.log"
    rc=0
    "$dir/tests/fuzz/fuzz_$name" -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
      -rss_limit_mb=2048 -artifact_prefix="$dir/artifacts/$name-" "$work/$name" >"$log" 2>&1 || rc=$?
    tail -n 25 "$log"
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -n 1)
    if [ "$rc" -eq 0 ]; then
      passed=$((passed + 1))
      echo "fuzz: $name ok: ${execs:-?} executions in ${secs}s, ${rate:-?} exec/s"
    else
      failed=$((failed + 1))
      echo "fuzz: $name FAILED (exit $rc) after ${execs:-?} executions; the input is in $dir/artifacts/" >&2
    fi
  done
  rm -rf "$work"
  echo "$passed $failed" >"$count_file"
  [ "$failed" -eq 0 ]
}

# --tier NAME COUNT_FILE: run one tier in this process, so that `set -e` holds
# inside it (bash ignores -e in functions called from an `if`).
if [ "${1:-}" = "--tier" ]; then
  count_file=$3
  "tier_$2"
  exit 0
fi

tiers=("$@")
[ "${#tiers[@]}" -eq 0 ] && tiers=("${ALL_TIERS[@]}")
for t in "${tiers[@]}"; do
  if ! declare -F "tier_$t" >/dev/null; then
    echo "usage: ci/test.sh [${ALL_TIERS[*]}]..." >&2
    exit 2
  fi
done

bash ci/deps.sh

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
start=$SECONDS
total_passed=0
total_failed=0
summary=()
for t in "${tiers[@]}"; do
  banner "tier $t"
  t0=$SECONDS
  rc=0
  bash "$self" --tier "$t" "$results/$t" || rc=$?
  secs=$((SECONDS - t0))
  counts=$(cat "$results/$t" 2>/dev/null || true)
  if [ "$counts" = "skip" ]; then
    summary+=("$(printf '%-8s skipped                       %4ds' "$t" "$secs")")
    continue
  fi
  if [ -z "$counts" ]; then
    # Failed before any test ran (configure, build): one failure.
    counts="0 1"
    [ "$rc" -eq 0 ] && counts="0 0"
  fi
  read -r p f <<<"$counts"
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1   # the tier failed although its tests passed (e.g. a crash after the summary)
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  status=ok
  [ "$rc" -ne 0 ] && status=FAILED
  summary+=("$(printf '%-8s %-6s %5d passed %4d failed  %4ds' "$t" "$status" "$p" "$f" "$secs")")
done

banner "summary"
printf '%s\n' "${summary[@]}"
echo "total time $((SECONDS - start))s"
echo "counted: ctest tests (default, asan, tsan), pytest tests (python), 1 for the install check," \
     "the checks of packaging and bare;" \
     "a tier that failed before its tests ran counts as 1 failure"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
