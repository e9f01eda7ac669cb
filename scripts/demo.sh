#!/usr/bin/env bash
# The demo: build a small dataset from the bundled MIDI fixtures rendered with
# two pianos, serve it from a data server, stream an epoch from it as two
# ranks, show the server's metrics, and shut the server down cleanly.
#
#   scripts/demo.sh            # uses build/ (built if missing) and writes out/demo/
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/out/demo"
BIN="$ROOT/build/dataserver/pianola-dataserver"

if [ ! -x "$BIN" ]; then
  bash scripts/setup.sh
  VENV="${PIANOLA_VENV:-$HOME/.cache/pianola/venv}"
  cmake -S . -B build -G Ninja -DCMAKE_PREFIX_PATH="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" >/dev/null
  cmake --build build --target pianola-dataserver
fi

rm -rf "$OUT" && mkdir -p "$OUT/midi"
# A handful of short public test files (tests/data/midi/SOURCES.tsv has their origins).
for f in jazzsoft__test-c-major-scale pythonmidi__mary noteseq__melody partitura__mozart_k265_var1 \
         midly__Clementi jazzsoft__test-control-40-damper; do
  cp "tests/data/midi/$f.mid" "$OUT/midi/"
done

echo "== build: render every MIDI file with two pianos"
"$BIN" build --midi "$OUT/midi" --out "$OUT/dataset" --timbres configs/two_pianos.textproto --threads 2
"$BIN" info "$OUT/dataset"

echo "== serve"
"$BIN" serve --dataset "$OUT/dataset" --listen 127.0.0.1:0 --metrics 127.0.0.1:0 > "$OUT/serve.out" 2> "$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^metrics on' "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$OUT/serve.out")
METRICS=$(sed -n 's/^metrics on //p' "$OUT/serve.out")
echo "server at $ADDR, metrics at http://$METRICS/metrics"

echo "== stream one epoch as rank 0 and rank 1 of 2 (1 s targets, 0.25 s context, 1 s references)"
for rank in 0 1; do
  "$BIN" stream --server "$ADDR" --rank $rank --world-size 2 --batch-size 8 \
    --window 16000 --context 4000 --reference 16000
done

echo "== metrics"
python3 - "$METRICS" <<'PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith("pianola_") and not line.startswith("pianola_window_assembly_seconds_bucket"):
        print(line)
PY

echo "== shutdown (SIGTERM drains)"
kill -TERM $SERVER
wait $SERVER && echo "server exited cleanly"
trap - EXIT
