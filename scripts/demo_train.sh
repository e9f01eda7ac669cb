#!/usr/bin/env bash
# Train-and-transfer demo on a CPU: build a small dataset from the bundled MIDI
# fixtures rendered with two pianos, serve it, train a model for a few minutes,
# and render a MIDI file in the timbre of one of the pianos (WAV + spectrograms).
#
#   scripts/demo_train.sh                 # tiny preset, ~1 minute of training
#   PRESET=small MINUTES=5 scripts/demo_train.sh
#   DECODER=parallel scripts/demo_train.sh
#
# Uses build/ (built if missing) and writes out/demo_train/. Environment:
#   PRESET   tiny | small (default tiny)
#   DECODER  autoregressive | parallel (default autoregressive)
#   STEPS    training steps (default: tiny 600, small 300; the run stops early
#            after MINUTES and checkpoints, so transfer always has a model)
#   MINUTES  wall-clock budget for training (default 3)
#   BUILD_DIR build directory (default build)
#   SECONDS_OUT  seconds of audio to render (default: tiny 2, small 1 for
#            autoregressive - it renders slower than real time on a CPU - and 8 for parallel)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PRESET="${PRESET:-tiny}"
DECODER="${DECODER:-autoregressive}"
MINUTES="${MINUTES:-3}"
OUT="$ROOT/out/demo_train"
BUILD="${BUILD_DIR:-build}"
DS_BIN="$ROOT/$BUILD/dataserver/pianola-dataserver"
TR_BIN="$ROOT/$BUILD/trainer/pianola-trainer"
case "$PRESET" in
  tiny) STEPS="${STEPS:-600}"; DEFAULT_SECONDS=2 ;;
  small) STEPS="${STEPS:-300}"; DEFAULT_SECONDS=1 ;;
  *) echo "PRESET must be tiny or small" >&2; exit 2 ;;
esac
[ "$DECODER" = parallel ] && DEFAULT_SECONDS=8
SECONDS_OUT="${SECONDS_OUT:-$DEFAULT_SECONDS}"

if [ ! -x "$DS_BIN" ] || [ ! -x "$TR_BIN" ]; then
  bash scripts/setup.sh
  VENV="${PIANOLA_VENV:-$HOME/.cache/pianola/venv}"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_PREFIX_PATH="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" >/dev/null
  cmake --build "$BUILD" --target pianola-dataserver pianola-trainer
fi

rm -rf "$OUT" && mkdir -p "$OUT/midi"
for f in jazzsoft__test-c-major-scale pythonmidi__mary noteseq__melody partitura__mozart_k265_var1 \
         midly__Clementi jazzsoft__test-control-40-damper tonejs__tchaikovsky_seasons; do
  cp "tests/data/midi/$f.mid" "$OUT/midi/"
done

echo "== build: render every MIDI file with two pianos"
"$DS_BIN" build --midi "$OUT/midi" --out "$OUT/dataset" --timbres configs/two_pianos.textproto --threads 2

echo "== serve"
"$DS_BIN" serve --dataset "$OUT/dataset" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 > "$OUT/serve.out" 2> "$OUT/serve.log" &
SERVER=$!
TRAINER=""
cleanup() { [ -n "$TRAINER" ] && kill "$TRAINER" 2>/dev/null; kill "$SERVER" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^listening on' "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$OUT/serve.out")
echo "server at $ADDR"

echo "== train $PRESET ($DECODER) for up to $STEPS steps or $MINUTES minutes"
sed -e "s/decoder_kind: \"autoregressive\"/decoder_kind: \"$DECODER\"/" \
    -e 's/^device: .*/device: "cpu"/' "configs/$PRESET.textproto" > "$OUT/$PRESET.textproto"
"$TR_BIN" info --config "$OUT/$PRESET.textproto" --data-servers "$ADDR"
# SIGTERM makes the trainer checkpoint after the current step and exit 0.
"$TR_BIN" train --config "$OUT/$PRESET.textproto" --out "$OUT/run" --data-servers "$ADDR" \
  --steps "$STEPS" --device cpu &
TRAINER=$!
( sleep $((MINUTES * 60)); kill -TERM "$TRAINER" 2>/dev/null ) &
WATCHDOG=$!
wait "$TRAINER"
TRAINER=""
kill "$WATCHDOG" 2>/dev/null || true
# metrics.jsonl has every step's loss: compare the first and the last 50 (non-null) ones.
grep '"train/loss"' "$OUT/run/metrics.jsonl" | awk -F'"value":' '
  { split($2, a, ","); if (a[1] != "null") v[++n] = a[1] }
  END { if (n == 0) exit; k = n < 100 ? int((n + 1) / 2) : 50; f = 0; l = 0
        for (i = 1; i <= k; i++) { f += v[i]; l += v[n - k + i] }
        printf "train/loss: %.4f over the first %d steps, %.4f over the last %d\n",
               f / k, k, l / k, k }'

echo "== transfer: render a piece in the timbre of the other piano"
REFERENCE=$(ls "$OUT"/dataset/audio/*fluidr3-grand*.wav | head -1)
"$TR_BIN" transfer --checkpoint "$OUT/run" --reference "$REFERENCE" \
  --midi tests/data/midi/noteseq__melody.mid --out "$OUT/transfer.wav" --seconds "$SECONDS_OUT" --seed 1
echo "listen to $OUT/transfer.wav; spectrograms: $OUT/transfer.png (output), $OUT/transfer.reference.png (reference)"
