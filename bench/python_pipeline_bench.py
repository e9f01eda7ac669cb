#!/usr/bin/env python3
"""The Python baseline for serve_bench: a numpy/pretty_midi pipeline that
builds the same training triples as the data server (target audio with
context, a same-timbre reference from another piece, conditioning) with the
dense [177, span] uint8 encoding, and batches them with np.stack.

It is written to be reasonable, not a strawman: notes are converted once per
recording into numpy arrays (pretty_midi seconds -> samples), each window finds
its notes with np.searchsorted, and rows are filled with slice assignment.
Single process, so the rate is per core. Prints `windows_per_second X`.
"""
import argparse
import time

import numpy as np
import pretty_midi

KEYS, LOWEST = 88, 21


def make_recordings(rng, sample_rate, pieces=8, timbres=2, seconds=(60, 45, 75, 50), nps=10):
    """Synthetic pieces (PrettyMIDI objects) each 'rendered' with every timbre."""
    recs = []
    for p in range(pieces):
        dur = seconds[p % len(seconds)]
        pm = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0)
        for _ in range(int(dur * nps)):
            start = rng.uniform(0, dur)
            length = rng.uniform(0, dur) if rng.integers(10) == 0 else rng.uniform(0, 0.5)
            inst.notes.append(pretty_midi.Note(velocity=int(rng.integers(1, 128)),
                                               pitch=int(rng.integers(21, 109)),
                                               start=start, end=min(dur, start + 1 / sample_rate + length)))
        t = rng.uniform(0, 1)
        while t < dur:
            inst.control_changes.append(pretty_midi.ControlChange(64, 127, t))
            t += rng.uniform(0, 1)
            inst.control_changes.append(pretty_midi.ControlChange(64, 0, min(t, dur)))
            t += rng.uniform(0, 1)
        pm.instruments.append(inst)
        for timbre in range(timbres):
            audio = rng.integers(-32768, 32768, size=int(dur * sample_rate), dtype=np.int16)
            recs.append(dict(piece=p, timbre=timbre, audio=audio, midi=pm))
    return recs


def index_recording(rec, sample_rate):
    """Notes and pedal of one recording as sample-unit numpy arrays."""
    inst = rec["midi"].instruments[0]
    notes = sorted(inst.notes, key=lambda n: (n.start, n.pitch))
    rec["start"] = np.array([round(n.start * sample_rate) for n in notes], dtype=np.int64)
    rec["end"] = np.array([round(n.end * sample_rate) for n in notes], dtype=np.int64)
    rec["key"] = np.array([n.pitch for n in notes], dtype=np.int64)
    rec["vel"] = np.array([n.velocity for n in notes], dtype=np.uint8)
    rec["maxdur"] = int((rec["end"] - rec["start"]).max()) if notes else 0
    down, intervals = None, []
    for cc in sorted(inst.control_changes, key=lambda c: c.time):
        if cc.number != 64:
            continue
        s = round(cc.time * sample_rate)
        if cc.value >= 64 and down is None:
            down = s
        elif cc.value < 64 and down is not None:
            intervals.append((down, s))
            down = None
    rec["pedal"] = np.array(intervals, dtype=np.int64).reshape(-1, 2)


def window(rec, ref_rec, offset, ref_offset, L, R, Lr):
    s0, s1 = offset - R, offset + L
    span = s1 - s0
    audio = np.zeros(span, dtype=np.int16)
    a = max(s0, 0)
    audio[a - s0:] = rec["audio"][a:s1]
    ref = np.zeros(Lr, dtype=np.int16)
    chunk = ref_rec["audio"][ref_offset:ref_offset + Lr]
    ref[:len(chunk)] = chunk
    dense = np.zeros((2 * KEYS + 1, span), dtype=np.uint8)
    lo = np.searchsorted(rec["start"], s0 - rec["maxdur"])
    hi = np.searchsorted(rec["start"], s1)
    for i in range(lo, hi):
        st, en, k, v = rec["start"][i], rec["end"][i], rec["key"][i] - LOWEST, rec["vel"][i]
        if en <= s0 and st < s0:
            continue
        if st >= s0:
            dense[k, st - s0] = max(dense[k, st - s0], v)
        x, y = max(st, s0) - s0, min(en, s1) - s0
        if y > x:
            np.maximum(dense[KEYS + k, x:y], v, out=dense[KEYS + k, x:y])
    for ps, pe in rec["pedal"]:
        x, y = max(ps, s0) - s0, min(pe, s1) - s0
        if y > x:
            dense[2 * KEYS, x:y] = 127
    return audio, ref, dense


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--window", type=int, default=16000)
    ap.add_argument("--context", type=int, default=0)
    ap.add_argument("--reference", type=int, default=16000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sample-rate", type=int, default=16000)
    args = ap.parse_args()
    L, R, Lr, B = args.window, args.context, args.reference, args.batch
    rng = np.random.default_rng(1)
    recs = make_recordings(rng, args.sample_rate)
    for r in recs:
        index_recording(r, args.sample_rate)
    # Windows: every whole chunk of every recording, shuffled, jittered.
    chunks = [(t, k) for t, r in enumerate(recs) for k in range(len(r["audio"]) // L)]
    order = rng.permutation(len(chunks))
    windows = 0
    t0 = time.perf_counter()
    pos = 0
    while time.perf_counter() - t0 < args.seconds:
        batch = []
        for _ in range(B):
            t, k = chunks[order[pos % len(chunks)]]
            pos += 1
            rec = recs[t]
            n = len(rec["audio"])
            offset = min(k * L + int(rng.integers(L)), n - L)
            cands = [c for c in recs if c["timbre"] == rec["timbre"] and c["piece"] != rec["piece"]]
            ref_rec = cands[int(rng.integers(len(cands)))]
            ref_offset = int(rng.integers(max(1, len(ref_rec["audio"]) - Lr + 1)))
            batch.append(window(rec, ref_rec, offset, ref_offset, L, R, Lr))
        audio = np.stack([b[0] for b in batch])
        ref = np.stack([b[1] for b in batch])
        dense = np.stack([b[2] for b in batch])
        assert audio.shape == (B, L + R) and ref.shape == (B, Lr) and dense.shape == (B, 177, L + R)
        windows += B
    elapsed = time.perf_counter() - t0
    print(f"windows {windows} in {elapsed:.2f} s")
    print(f"windows_per_second {windows / elapsed:.1f}")


if __name__ == "__main__":
    main()
