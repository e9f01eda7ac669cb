#!/usr/bin/env bash
# The test command: setup, configure, build, and run every test with ctest.
#
#   scripts/test.sh                 # everything (labels unit, integration, fuzz-smoke)
#   scripts/test.sh -L unit         # extra arguments go to ctest
#   PIANOLA_SANITIZE=1 scripts/test.sh   # the ASan+UBSan build, in build-asan/
#
# Build directories: build/ (normal), build-asan/ (sanitizers), build-fuzz/
# (clang + libFuzzer targets for the fuzz-smoke label).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

bash scripts/setup.sh
VENV="${PIANOLA_VENV:-$HOME/.cache/pianola/venv}"
TORCH_PREFIX="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
JOBS="${PIANOLA_JOBS:-$(nproc)}"
export PIANOLA_PYTHON="$VENV/bin/python"

if [ "${PIANOLA_SANITIZE:-0}" = 1 ]; then
  BUILD="$ROOT/build-asan"
  EXTRA=(-DPIANOLA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # Debug + ASan runs LibTorch training ~50x slower: child programs get longer.
  export PIANOLA_TEST_TIMEOUT_SCALE="${PIANOLA_TEST_TIMEOUT_SCALE:-8}"
else
  BUILD="$ROOT/build"
  EXTRA=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi

cmake -S . -B "$BUILD" -G Ninja "${EXTRA[@]}" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DPIANOLA_PYTHON="$VENV/bin/python" > "$BUILD.configure.log" 2>&1 \
  || { cat "$BUILD.configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS"

# libFuzzer targets need clang; they are built in their own tree and run
# briefly under the fuzz-smoke label.
if [ "${PIANOLA_SANITIZE:-0}" != 1 ] && [ "${PIANOLA_SKIP_FUZZ:-0}" != 1 ]; then
  FUZZ="$ROOT/build-fuzz"
  CC=clang CXX=clang++ cmake -S . -B "$FUZZ" -G Ninja -DPIANOLA_FUZZ=ON -DPIANOLA_WITH_TORCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIANOLA_PYTHON="$VENV/bin/python" > "$FUZZ.configure.log" 2>&1 \
    || { cat "$FUZZ.configure.log"; exit 1; }
  cmake --build "$FUZZ" -j "$JOBS" --target fuzz_targets
fi

cd "$BUILD"
ctest --output-on-failure -j "$JOBS" "$@"
if [ "${PIANOLA_SANITIZE:-0}" != 1 ] && [ "${PIANOLA_SKIP_FUZZ:-0}" != 1 ]; then
  cd "$FUZZ" && ctest --output-on-failure -L fuzz-smoke
fi
