#!/usr/bin/env bash
# Packaging check: install a configured, built tree into a temporary DESTDIR and
# verify what a distribution package would ship:
#   - libvramswap.so.<version>, its soname link and the development link;
#     only vs_* symbols exported;
#   - the public headers (vramswap.h, vramswap/sim.h) and not the internal ones;
#   - vramswap.pc, the CMake package files, the CLI and the man page;
# then build a tiny consumer twice, with pkg-config and with find_package(vramswap),
# and run both against the installed library.
#
# usage: ci/test_install.sh [BUILD_DIR]   (default build/, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[ -f "$build/CMakeCache.txt" ] || { echo "test_install: $build is not a configured build tree" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dest=$work/dest

fail() { echo "test_install: FAIL: $*" >&2; exit 1; }
check() { echo "test_install: ok: $*"; }

DESTDIR=$dest cmake --install "$build" >"$work/install.log"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$dest$prefix
[ -d "$root" ] || fail "nothing installed under $root"

lib=$(find "$root" -name 'libvramswap.so' | head -n 1)
[ -n "$lib" ] || fail "libvramswap.so not installed"
libdir=$(dirname "$lib")
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ -n "$soname" ] || fail "libvramswap.so has no soname"
[ -L "$libdir/$soname" ] || fail "soname link $soname missing"
real=$(readlink -f "$lib")
[[ $(basename "$real") =~ ^libvramswap\.so\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "real file is $(basename "$real")"
check "library $(basename "$real"), soname $soname, in ${libdir#"$dest"}"

bad=$(nm -D --defined-only "$real" | awk '$2 ~ /^[TDBRVWi]$/ && $3 !~ /^vs_/ {print $3}' | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' || true)
[ -z "$bad" ] || fail "exported symbols outside vs_*: $(echo "$bad" | head -n 5 | tr '\n' ' ')"
check "exports only vs_* ($(nm -D --defined-only "$real" | grep -c ' vs_') symbols)"

inc=$root/include
[ -f "$inc/vramswap.h" ] || fail "vramswap.h not installed"
[ -f "$inc/vramswap/sim.h" ] || fail "vramswap/sim.h not installed"
[ ! -e "$inc/vramswap/backend.h" ] || fail "internal vramswap/backend.h installed"
check "headers vramswap.h, vramswap/sim.h (backend.h not installed)"

pcdir=$(dirname "$(find "$root" -name vramswap.pc | head -n 1)")
[ -f "$pcdir/vramswap.pc" ] || fail "vramswap.pc not installed"
cmakedir=$(dirname "$(find "$root" -name vramswapConfig.cmake | head -n 1)")
for f in vramswapConfig.cmake vramswapConfigVersion.cmake vramswapTargets.cmake; do
  [ -f "$cmakedir/$f" ] || fail "$f not installed"
done
check "vramswap.pc in ${pcdir#"$dest"}, CMake package in ${cmakedir#"$dest"}"

if grep -q '^VS_BUILD_CLI:BOOL=ON' "$build/CMakeCache.txt"; then
  [ -x "$root/bin/vramswap" ] || fail "bin/vramswap not installed"
  man=$(find "$root" -path '*/man1/vramswap.1' | head -n 1)
  [ -n "$man" ] || fail "man page vramswap.1 not installed"
  grep -q '^vramswap ' <<<"$("$root/bin/vramswap" --version)" || fail "installed CLI does not run"
  check "CLI runs from bin/ (RPATH or system libdir)"
  if command -v groff >/dev/null 2>&1; then
    LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man" 2>"$work/groff.log" || true
    [ ! -s "$work/groff.log" ] || fail "man page warnings: $(cat "$work/groff.log")"
    check "man page ${man#"$dest"} renders without warnings"
  else
    check "man page ${man#"$dest"} installed (groff not found: not rendered)"
  fi
fi

# The consumer: public API only, including the simulator header.
mkdir -p "$work/consumer"
cat >"$work/consumer/consumer.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <vramswap.h>
#include <vramswap/sim.h>

#define CHECK(call) do { vs_status st_ = (call); if (st_ != VS_OK) { \
    fprintf(stderr, "%s: %s\n", #call, vs_status_name(st_)); return 1; } } while (0)

int main(void)
{
    vs_sim_config sc;
    vs_device_t *dev = NULL;
    vs_vbar_t *vbar = NULL;
    uint64_t off, sig;
    CHECK(vs_sim_config_default(&sc));
    CHECK(vs_device_open("sim", 0, NULL, &dev));
    CHECK(vs_vbar_create(dev, 4u << 20, &vbar));
    CHECK(vs_vbar_alloc(vbar, 1u << 20, 0, &off));
    CHECK(vs_vbar_fault(vbar, off, 1u << 20, &sig));
    CHECK(vs_vbar_unpin(vbar, off, 1u << 20, 0));
    CHECK(vs_vbar_destroy(vbar));
    CHECK(vs_device_close(dev));
    printf("consumer: vramswap %s, %zu backends, signature %llu\n", vs_version(), vs_backend_count(),
           (unsigned long long)sig);
    return strcmp(vs_version(), VRAMSWAP_EXPECTED_VERSION) == 0 ? 0 : 1;
}
C
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

# 1. pkg-config, with the DESTDIR as sysroot (the .pc names the real prefix).
export PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_LIBDIR=$pcdir
[ "$(pkg-config --modversion vramswap)" = "$version" ] || fail "pkg-config version is not $version"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -DVRAMSWAP_EXPECTED_VERSION="\"$version\"" \
  "$work/consumer/consumer.c" -o "$work/consumer/by-pkgconfig" $(pkg-config --cflags --libs vramswap)
LD_LIBRARY_PATH=$libdir "$work/consumer/by-pkgconfig" || fail "pkg-config consumer failed"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
check "consumer built with pkg-config runs"

# 2. CMake find_package, from the DESTDIR prefix (the package files are relocatable).
cat >"$work/consumer/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(vramswap_consumer LANGUAGES C)
find_package(vramswap $version REQUIRED CONFIG)
add_executable(by-cmake consumer.c)
target_compile_definitions(by-cmake PRIVATE VRAMSWAP_EXPECTED_VERSION="$version")
target_link_libraries(by-cmake PRIVATE vramswap::vramswap)
CM
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$root" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/cmake.log" || { cat "$work/cmake.log"; fail "find_package(vramswap) failed"; }
grep -q "$dest" "$work/consumer/build/CMakeCache.txt" || fail "find_package did not use the DESTDIR install"
cmake --build "$work/consumer/build" >"$work/build.log" || { cat "$work/build.log"; fail "CMake consumer does not build"; }
LD_LIBRARY_PATH=$libdir "$work/consumer/build/by-cmake" || fail "find_package consumer failed"
check "consumer built with find_package(vramswap $version) runs"
# 3. A relocated install (`--prefix` at install time): the .pc names the new
#    prefix (Note [Relocated pkg-config file]); a pkg-config consumer builds and
#    runs against it; the Python package there finds its library by itself.
reloc=$work/reloc
cmake --install "$build" --prefix "$reloc" >"$work/install-reloc.log"
rpc=$(find "$reloc" -name vramswap.pc | head -n 1)
[ -n "$rpc" ] || fail "relocated install has no vramswap.pc"
grep -qx "prefix=$reloc" "$rpc" || fail "relocated vramswap.pc says $(grep '^prefix=' "$rpc")"
rlib=$(dirname "$(find "$reloc" -name 'libvramswap.so' | head -n 1)")
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -DVRAMSWAP_EXPECTED_VERSION="\"$version\"" \
  "$work/consumer/consumer.c" -o "$work/consumer/by-pkgconfig-reloc" \
  $(PKG_CONFIG_PATH=$(dirname "$rpc") PKG_CONFIG_LIBDIR=$(dirname "$rpc") pkg-config --cflags --libs vramswap) \
  || fail "pkg-config consumer of the relocated install does not build"
LD_LIBRARY_PATH=$rlib "$work/consumer/by-pkgconfig-reloc" || fail "relocated pkg-config consumer failed"
check "install --prefix elsewhere: vramswap.pc says prefix=$reloc; pkg-config consumer builds and runs"

if grep -q '^VS_INSTALL_PYTHON:BOOL=ON' "$build/CMakeCache.txt"; then
  pydir=$(sed -n 's/^VS_PYTHON_INSTALL_DIR:STRING=//p' "$build/CMakeCache.txt")
  pyexe=$(sed -n 's/^Python3_EXECUTABLE:FILEPATH=//p' "$build/CMakeCache.txt")
  pyexe=${pyexe:-/usr/bin/python3}
  case $pydir in /*) rpy=$pydir ;; *) rpy=$reloc/$pydir ;; esac
  [ -f "$rpy/vramswap/_install.py" ] || fail "Python package not installed in $rpy"
  (cd "$work" && env -u VRAMSWAP_LIBRARY PYTHONPATH="$rpy" PYTHONDONTWRITEBYTECODE=1 "$pyexe" -c "
import vramswap, sys
assert vramswap.library_path.startswith('$reloc/'), vramswap.library_path
vramswap.memory_stats()
vramswap.shutdown()
") 2>"$work/py.log" || { cat "$work/py.log"; fail "relocated Python package does not import"; }
  check "relocated Python package imports and finds its library ($pyexe, no VRAMSWAP_LIBRARY)"
  # The default directory is one the interpreter searches for this prefix.
  bprefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
  case $pydir in /*) want=$pydir ;; *) want=$bprefix/$pydir ;; esac
  "$pyexe" - "$want" <<'PY' || fail "$pyexe does not search $want (VS_PYTHON_INSTALL_DIR)"
import sys, os, site
want = os.path.normpath(sys.argv[1])
paths = [os.path.normpath(p) for p in sys.path + site.getsitepackages()]
sys.exit(0 if want in paths else 1)
PY
  check "VS_PYTHON_INSTALL_DIR $want is on $pyexe's search path"
fi
echo "test_install: all checks passed"
