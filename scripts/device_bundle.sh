#!/usr/bin/env bash
# Packs the GPU checks for a lent device machine (docs/perf.md, "GPU checks"):
# that machine has PyTorch 2.11 + CUDA 13 but no gRPC, Abseil, protobuf or
# the other Debian libraries Pianola's binaries link, and nothing can be
# installed there. This copies the binaries scripts/device_check.sh runs
# (stripped of debug info) and the shared libraries they need apart from
# LibTorch, CUDA's and the C/C++ runtime (the device's own) into .devbundle/
# (git-ignored), to travel with the working tree as a carried path:
#
#   bash scripts/device_bundle.sh [BUILD_DIR]      # here, after a build
#   device run: carry [".devbundle"], command "bash scripts/device_check.sh"
#
# Prints the bundle's size (the device tool carries at most 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=.devbundle
bins=(bench/train_bench trainer/optimizer_test trainer/batch_tensors_test trainer/training_test
      trainer/model_test trainer/transfer_test)
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for b in "${bins[@]}"; do
  [[ -x "$build/$b" ]] || { echo "device_bundle: $build/$b is missing: build it first" >&2; exit 1; }
  strip --strip-debug -o "$out/bin/$(basename "$b")" "$build/$b"
done
# Libraries resolved outside the venv (torch and CUDA come from the device's
# own PyTorch), minus the C and C++ runtime.
for b in "${bins[@]}"; do ldd "$build/$b"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -v -E '/(\.cache|site-packages|cuda[^/]*)/|/lib(cu|nv)[^/]*\.so|/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux-x86-64)\.so' |
  while read -r lib; do cp -L "$lib" "$out/lib/"; done
# The C and C++ runtime too, kept apart: device_check.sh uses them (through
# their own loader) only if the device's C library is older than this one.
mkdir -p "$out/runtime"
for b in "${bins[@]}"; do ldd "$build/$b"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | sort -u |
  grep -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux-x86-64)\.so' |
  while read -r lib; do cp -L "$lib" "$out/runtime/"; done
# The device tool carries the working tree and the carried paths: 64 MiB in all.
bundle=$(du -sb "$out" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
echo "device_bundle: $out is $((bundle >> 20)) MiB; with the $((tree >> 20)) MiB tree" \
  "$(((bundle + tree) >> 20)) MiB of the 64 MiB the device tool carries"
if ((bundle + tree > 64 << 20)); then
  echo "device_bundle: too big to carry: drop a test binary from bins" >&2
  exit 1
fi
