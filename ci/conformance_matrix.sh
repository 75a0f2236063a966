#!/usr/bin/env bash
# The conformance suite on every backend of a build, as one matrix
# (docs/conformance.md, "The backend matrix").
#
#   ci/conformance_matrix.sh BUILD_DIR [BACKEND...]
#
# Runs BUILD_DIR's vs_conformance_runner with --json on each backend: sim, and
# cuda, hip and level_zero on their emulators (tests/emulators/*, found in
# BUILD_DIR/emulators). Prints a matrix (rows: test groups, columns: backends,
# cells: "pass N", "FAIL N", "skip N"), the failed tests with their messages,
# and the last line "N passed, N failed[, N skipped]", counting tests over all
# backends. Exit status 1 when a test failed or a run broke, 2 on a usage error.
#
# Without BACKEND arguments all four are tried and a backend whose emulator is
# not built is left out (said so above the last line); a BACKEND named
# explicitly must be runnable. $PYTHON (default python3) formats the matrix.
set -euo pipefail

ALL_BACKENDS=(sim cuda hip level_zero)
PYTHON=${PYTHON:-python3}

usage() {
  echo "usage: $0 BUILD_DIR [sim|cuda|hip|level_zero ...]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
build=$(readlink -f "$1")
shift
runner=$build/tests/conformance/vs_conformance_runner
if [ ! -x "$runner" ]; then
  echo "conformance_matrix: no $runner (build the vs_conformance_runner target)" >&2
  exit 2
fi
explicit=0
backends=("${ALL_BACKENDS[@]}")
if [ $# -gt 0 ]; then
  explicit=1
  backends=("$@")
fi

# The Level Zero loader the build's emulator tests use (CMake cache), else the soname.
ze_loader() {
  local v
  v=$(sed -n 's/^VS_ZE_LOADER_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
  if [ -n "$v" ] && [ "$v" != "VS_ZE_LOADER_LIBRARY-NOTFOUND" ]; then
    echo "$v"
  else
    echo libze_loader.so.1
  fi
}

# The environment (VAR=value words) that points `backend` at its emulator;
# fails when the emulator is not in the build.
backend_env() {   # backend
  local lib
  case $1 in
    sim) ;;
    cuda)
      lib=$build/emulators/cuda/libcuda.so.1
      [ -f "$lib" ] || return 1
      echo "VRAMSWAP_LIBCUDA=$lib" ;;
    hip)
      lib=$build/emulators/hip/libamdhip64.so.5
      [ -f "$lib" ] || return 1
      echo "VRAMSWAP_LIBHIP=$lib" ;;
    level_zero)
      lib=$build/emulators/level_zero/libze_vramswap_emu.so.1
      [ -f "$lib" ] || return 1
      echo "ZE_ENABLE_ALT_DRIVERS=$lib VRAMSWAP_LIBZE=$(ze_loader)" ;;
    *)
      echo "conformance_matrix: unknown backend '$1'" >&2
      exit 2 ;;
  esac
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

ran=()
missing=()
for b in "${backends[@]}"; do
  if ! env_words=$(backend_env "$b"); then
    if [ "$explicit" = 1 ]; then
      echo "conformance_matrix: the $b emulator is not built in $build" >&2
      exit 2
    fi
    missing+=("$b")
    continue
  fi
  echo "conformance_matrix: $b: ${env_words:+$env_words }vs_conformance_runner --backend $b --json" >&2
  rc=0
  # shellcheck disable=SC2086 # env_words is a list of VAR=value words without spaces
  env $env_words "$runner" --backend "$b" --json >"$out/$b.json" 2>"$out/$b.err" || rc=$?
  echo "$rc" >"$out/$b.rc"
  ran+=("$b")
done

if [ ${#ran[@]} -eq 0 ]; then
  echo "conformance_matrix: no backend could run" >&2
  exit 1
fi

"$PYTHON" - "$out" "${#missing[@]}" "${missing[@]}" -- "${ran[@]}" <<'EOF'
import json
import sys

out = sys.argv[1]
nmissing = int(sys.argv[2])
missing = sys.argv[3:3 + nmissing]
ran = sys.argv[sys.argv.index("--") + 1:]

groups = []        # in the suite's order
cells = {}         # (group, backend) -> {"passed", "failed", "skipped"}
failures = []      # lines describing failed tests and broken runs
totals = {"passed": 0, "failed": 0, "skipped": 0}
broken = []

for b in ran:
    rc = int(open(f"{out}/{b}.rc").read())
    try:
        with open(f"{out}/{b}.json") as f:
            d = json.load(f)
        tests = d["tests"]
    except (OSError, ValueError, KeyError) as e:
        # The device could not be opened, or the runner died: no JSON.
        err = open(f"{out}/{b}.err", errors="replace").read().strip().splitlines()
        broken.append(b)
        failures.append(f"{b}: the run broke (exit {rc}, {type(e).__name__}): "
                        + (err[-1] if err else "no output"))
        totals["failed"] += 1
        continue
    for t in tests:
        g = t["group"]
        if g not in groups:
            groups.append(g)
        c = cells.setdefault((g, b), {"passed": 0, "failed": 0, "skipped": 0})
        key = {"pass": "passed", "fail": "failed", "skip": "skipped"}[t["result"]]
        c[key] += 1
        totals[key] += 1
        if key == "failed":
            failures.append(f"{b}: FAIL {g}/{t['name']}: {t['message']}")
    if rc != 0 and not any(t["result"] == "fail" for t in tests):
        failures.append(f"{b}: the runner exited {rc} with no failed test")
        totals["failed"] += 1


def cell(g, b):
    if b in broken:
        return "BROKEN"
    c = cells.get((g, b))
    if not c:
        return "-"
    parts = []
    if c["failed"]:
        parts.append(f"FAIL {c['failed']}")
    if c["passed"]:
        parts.append(f"pass {c['passed']}")
    if c["skipped"]:
        parts.append(f"skip {c['skipped']}")
    return " ".join(parts)


rows = [["group"] + ran] + [[g] + [cell(g, b) for b in ran] for g in groups]
width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
for r in rows:
    print("  ".join(s.ljust(w) for s, w in zip(r, width)).rstrip())
if failures:
    print()
    for line in failures:
        print(line)
if missing:
    print()
    print("not run (emulator not built): " + ", ".join(missing))
line = f"{totals['passed']} passed, {totals['failed']} failed"
if totals["skipped"]:
    line += f", {totals['skipped']} skipped"
print(line)
sys.exit(1 if totals["failed"] else 0)
EOF
