#!/usr/bin/env python3
"""Baseline for bench/midi_bench.cc: pretty_midi parsing the same MIDI files.

    midi_bench_pretty_midi.py --min-seconds S FILE...

Reads every file into memory once (RIFF RMID files are unwrapped to their
SMF, which Pianola's reader also accepts), then parses all of them with
pretty_midi.PrettyMIDI repeatedly until at least S seconds have passed, and
prints one line:

    pretty_midi bytes=B notes=N seconds=T passes=P

where B and N are per pass (notes: pretty_midi's own count over all
instruments). File reading is excluded, as in the C++ measurement.
"""

import argparse
import io
import time
import warnings

import pretty_midi


def smf_bytes(data):
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        p = 12
        while p + 8 <= len(data):
            size = int.from_bytes(data[p + 4:p + 8], "little")
            if data[p:p + 4] == b"data":
                return data[p + 8:p + 8 + size]
            p += 8 + size + (size & 1)
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    blobs = []
    for path in args.files:
        with open(path, "rb") as f:
            blobs.append(f.read())  # bytes as given, RIFF included (counted like the C++ side)
    warnings.simplefilter("ignore")  # tempo on non-zero tracks etc.
    total_bytes = sum(len(b) for b in blobs)
    notes = 0
    passes = 0
    start = time.perf_counter()
    while True:
        notes = 0
        for b in blobs:
            pm = pretty_midi.PrettyMIDI(io.BytesIO(smf_bytes(b)))
            notes += sum(len(i.notes) for i in pm.instruments)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= args.min_seconds:
            break
    print("pretty_midi bytes=%d notes=%d seconds=%.6f passes=%d" % (total_bytes, notes, elapsed, passes))


if __name__ == "__main__":
    main()
