#!/usr/bin/env bash
# The GPU checks, run ON a lent device machine (H100/H200) from the repository
# root with .devbundle/ carried (scripts/device_bundle.sh made it here):
#   1. the CUDA tests: CUDA graph replay equals eager training steps (alone,
#      and in the trainer with in-process data servers), pinned host-to-device
#      batch copies, the generators on the GPU against the CPU, and
#      `transfer --device cuda` for both decoders;
#   2. training throughput on the GPU (bench/train_bench.cc --device cuda):
#      C++ eager and CUDA-graphed bf16 steps against PyTorch eager bf16 in
#      the device's python3, with model TFLOP/s and the share of peak;
#   3. last, `small` profiled on both sides (--profile): GPU busy share,
#      launches and kernel times per step of C++ eager, C++ graphed and
#      Python, so a short ratio can be explained without another run.
# Logs go to $OUT (the device tool brings them back) or ./device-out.
# Sized to end within ~8 minutes on an H200: each check has its own time
# limit, cut to what is left of BUDGET seconds (default 480: the device
# tool's 600 s per command, less start-up), and a check is skipped when less
# than 20 s are left. STEPS, REPEATS and PRESETS override the benchmark's
# defaults. At most 8 files come back from $OUT: this writes 8.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
mkdir -p "$out"
py=${PYTHON:-python3}
torch_lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
nv_libs=$("$py" -c 'import glob, os, torch; r = os.path.dirname(os.path.dirname(torch.__file__)); print(":".join(sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib")))))')
# The Python baseline (a child of train_bench) runs with the environment it
# had before the carried Debian libraries were put on the path.
python_wrapper=$(mktemp)
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "${LD_LIBRARY_PATH:-}" \
  "$(command -v "$py")" >"$python_wrapper"
chmod +x "$python_wrapper"
export LD_LIBRARY_PATH="$PWD/.devbundle/lib:$torch_lib:$nv_libs:${LD_LIBRARY_PATH:-}"
export PIANOLA_SOURCE_DIR=$PWD
bin=.devbundle/bin
# Built on Debian 12 (glibc 2.36): on an older C library, run through the
# carried loader and runtime instead.
launch=()
if ! "$bin/optimizer_test" --gtest_list_tests >/dev/null 2>"$python_wrapper.loader"; then
  cat "$python_wrapper.loader"
  launch=(.devbundle/runtime/ld-linux-x86-64.so.2 --library-path
          "$PWD/.devbundle/runtime:$LD_LIBRARY_PATH")
  echo "device_check: the binaries do not start on this C library; using the carried loader"
fi
status=0
budget=${BUDGET:-480}
run() {  # name, seconds, command...: log to $out/name.log, keep going on failure
  local name=$1 limit=$2; shift 2
  local left=$((budget - SECONDS))
  if ((left < 20)); then
    echo "=== $name: skipped, ${left} s of the ${budget} s budget left"
    status=1
    return
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (limit ${limit} s): $*"
  local t0=$SECONDS
  timeout "$limit" "${launch[@]}" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.log"
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [[ $rc -eq 0 ]] || status=1
}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
"$py" -c 'import torch; print("python torch", torch.__version__, torch.cuda.get_device_name())' | tee -a "$out/gpu.txt"
run cuda_tests_graph 90 "$bin/optimizer_test" --gtest_filter='CudaGraphStep*'
run cuda_tests_trainer 120 "$bin/training_test" --gtest_filter='*CudaGraphs*'
run cuda_tests_batch 60 "$bin/batch_tensors_test"
run cuda_tests_generation 60 "$bin/model_test" --gtest_filter='*OnCuda*'
run cuda_tests_transfer 90 "$bin/transfer_test" --gtest_filter='*Cuda*'
run train_bench 300 "$bin/train_bench" --device cuda --python "$python_wrapper" \
  --presets "${PRESETS:-tiny,small,base}" --decoders autoregressive,parallel \
  --steps "${STEPS:-50}" --warmup 5 --repeats "${REPEATS:-2}"
run train_bench_profile 150 "$bin/train_bench" --device cuda --python "$python_wrapper" \
  --presets small --decoders autoregressive,parallel --steps 10 --warmup 5 --repeats 1 --profile
rm -f "$python_wrapper" "$python_wrapper.loader"
echo "device_check: ${SECONDS} s"
exit $status
