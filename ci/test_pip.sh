#!/usr/bin/env bash
# Python packaging without a network (Note [Offline pip] in
# bindings/python/_vramswap_build.py):
#   1. `pip install bindings/python` (build isolation on, --no-index) into a plain
#      venv and into a --system-site-packages venv; the package imports there;
#   2. a wheel carrying the library, built with a RELATIVE VRAMSWAP_BUNDLE_LIBRARY
#      from the repository root, installed into a fresh venv outside the tree:
#      `import vramswap; vramswap.memory_stats()` works with no VRAMSWAP_LIBRARY
#      and no init(), and `python -m vramswap info --json` runs;
#   3. nothing is written into the source tree.
#
# usage: ci/test_pip.sh [BUILD_DIR]   (default build/, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
lib=$(readlink -f "$build/core/libvramswap.so")
[ -f "$lib" ] || { echo "test_pip: no $build/core/libvramswap.so" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
fail() { echo "test_pip: FAIL: $*" >&2; exit 1; }
ok() { passed=$((passed + 1)); echo "test_pip: ok: $*"; }
before=$(git status --porcelain --ignored bindings/python 2>/dev/null || true)

smoke='import vramswap, sys
s = vramswap.memory_stats()
assert s["memory.total"] > 0, s
print("vramswap", vramswap.__version__, "library", vramswap.library_path)
vramswap.shutdown()'

for kind in plain system-site; do
  args=()
  [ "$kind" = system-site ] && args=(--system-site-packages)
  "$PYTHON" -m venv "${args[@]}" "$work/venv-$kind"
  "$work/venv-$kind/bin/pip" install --no-index --disable-pip-version-check bindings/python \
    >"$work/pip-$kind.log" 2>&1 || { cat "$work/pip-$kind.log"; fail "pip install into a $kind venv"; }
  (cd "$work" && VRAMSWAP_LIBRARY=$lib "$work/venv-$kind/bin/python" -c "$smoke") \
    || fail "the package installed into a $kind venv does not work"
  ok "pip install bindings/python offline into a $kind venv"
done

VRAMSWAP_BUNDLE_LIBRARY=${lib#"$PWD/"} "$work/venv-plain/bin/pip" wheel --no-index --no-deps \
  --disable-pip-version-check -w "$work/wheels" bindings/python >"$work/wheel.log" 2>&1 \
  || { cat "$work/wheel.log"; fail "pip wheel with a relative VRAMSWAP_BUNDLE_LIBRARY"; }
whl=$(ls "$work"/wheels/vramswap-*.whl)
case $whl in *-py3-none-any.whl) fail "wheel with a bundled library is tagged any: $whl" ;; esac
"$PYTHON" -m zipfile -l "$whl" >"$work/wheel.txt"   # (grep -q on a pipe would cut it: SIGPIPE)
grep -q 'vramswap/libvramswap.so.0' "$work/wheel.txt" || fail "wheel lacks the library"
ok "wheel with the bundled library: $(basename "$whl")"

"$PYTHON" -m venv "$work/venv-wheel"
"$work/venv-wheel/bin/pip" install --no-index --disable-pip-version-check "$whl" >"$work/pip-wheel.log" 2>&1 \
  || { cat "$work/pip-wheel.log"; fail "installing the wheel"; }
(cd "$work" && env -u VRAMSWAP_LIBRARY -u PYTHONPATH "$work/venv-wheel/bin/python" -c "$smoke
assert vramswap.library_path.startswith('$work/venv-wheel/'), vramswap.library_path") \
  || fail "the wheel's package does not work outside the tree without VRAMSWAP_LIBRARY"
(cd "$work" && env -u VRAMSWAP_LIBRARY -u PYTHONPATH "$work/venv-wheel/bin/python" -m vramswap info --json \
  | "$PYTHON" -c 'import json, sys; d = json.load(sys.stdin); assert "interception" in d, d') \
  || fail "python -m vramswap info --json from the wheel"
ok "wheel installed into a fresh venv: import, memory_stats() without init(), python -m vramswap"

after=$(git status --porcelain --ignored bindings/python 2>/dev/null || true)
[ "$before" = "$after" ] || fail "the build wrote into the source tree: $(diff <(echo "$before") <(echo "$after") || true)"
ok "nothing written into bindings/python"
echo "test_pip: $passed checks passed"
