#!/usr/bin/env bash
# Install the Debian 12 packages vramswap builds and tests with, if any is
# missing. Idempotent: does nothing (and needs no network) when all are present.
# Run as root, or as a user with sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libcriterion-dev libcapstone-dev
  libamdhip64-dev libze-dev libze1
  python3-pytest python3-numpy python3-hypothesis python3-torch python3-matplotlib
  python3-venv python3-pip lintian
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "deps: missing packages and not root (no sudo): ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
