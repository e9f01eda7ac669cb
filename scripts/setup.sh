#!/usr/bin/env bash
# Installs everything Pianola needs on a Debian bookworm machine. Idempotent:
# on a ready machine it checks and returns in seconds.
#
#   scripts/setup.sh            # Debian packages + the Python venv with torch
#
# The venv (LibTorch comes from its torch wheel) lives outside the checkout so
# every clone on a machine shares it: $PIANOLA_VENV, default ~/.cache/pianola/venv.
set -euo pipefail

VENV="${PIANOLA_VENV:-$HOME/.cache/pianola/venv}"
TORCH_VERSION="2.11.0"

APT_PACKAGES=(
  build-essential cmake pkg-config ninja-build clang libclang-rt-14-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev libsndfile1-dev libsoxr-dev libfluidsynth-dev
  fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small
  prometheus python3-venv zlib1g-dev
)
PY_PACKAGES=("torch==${TORCH_VERSION}" numpy mido pretty_midi)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Prefer the machine's python3 if it has venv support (pyenv builds do).
PYTHON="${PIANOLA_PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
if ! "$VENV/bin/python" - "$TORCH_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
want = sys.argv[1]
assert m.version("torch").split("+")[0] == want
for p in ("numpy", "mido", "pretty_midi"):
    m.version(p)
PY
then
  echo "setup: installing ${PY_PACKAGES[*]} into $VENV (torch is large: a few minutes)"
  "$VENV/bin/pip" install -q --progress-bar off "${PY_PACKAGES[@]}"
fi
echo "setup: ok (venv $VENV, torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
