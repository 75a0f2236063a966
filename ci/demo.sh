#!/usr/bin/env bash
# Build vramswap into build/ and run `vramswap demo`: a synthetic model larger
# than the budget streamed through the library (on the simulated device when
# there is no GPU). Extra arguments go to the demo, e.g. ci/demo.sh --json.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2 --target vramswap_cli
build/bindings/cli/vramswap info
echo
build/bindings/cli/vramswap demo "$@"
