#!/usr/bin/env python3
"""Writes the audio_fuzzer seed corpus (tiny files, < 50 KB in all).

Run from anywhere: python3 tests/data/audio/generate.py. Uses the system
libsndfile through ctypes so FLAC/OGG come from the same library Pianola reads
them with. Deterministic output (no timestamps in these formats' headers).
"""
import ctypes
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
sf = ctypes.CDLL("libsndfile.so.1")


class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


sf.sf_open.restype = ctypes.c_void_p
sf.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
sf.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
sf.sf_close.argtypes = [ctypes.c_void_p]
SFM_WRITE = 0x20
WAV, FLAC, OGG, AIFF = 0x010000, 0x170000, 0x200000, 0x020000
PCM_16, PCM_U8, PCM_24, FLOAT, VORBIS, ULAW = 0x2, 0x5, 0x3, 0x6, 0x60, 0x10


def write(name, fmt, rate, channels, frames):
    data = []
    for i in range(frames):
        for c in range(channels):
            data.append(0.4 * math.sin(2 * math.pi * (440 + 110 * c) * i / rate))
    info = SF_INFO(0, rate, channels, fmt, 0, 0)
    f = sf.sf_open(os.path.join(HERE, name).encode(), SFM_WRITE, ctypes.byref(info))
    assert f, name
    buf = (ctypes.c_float * len(data))(*data)
    sf.sf_writef_float(f, buf, frames)
    sf.sf_close(f)


write("mono16k_pcm16.wav", WAV | PCM_16, 16000, 1, 400)
write("stereo44k_pcm16.wav", WAV | PCM_16, 44100, 2, 300)
write("mono8k_u8.wav", WAV | PCM_U8, 8000, 1, 200)
write("mono48k_float.wav", WAV | FLOAT, 48000, 1, 300)
write("mono22k_ulaw.wav", WAV | ULAW, 22050, 1, 200)
write("stereo48k_pcm24.aiff", AIFF | PCM_24, 48000, 2, 200)
write("mono44k.flac", FLAC | PCM_16, 44100, 1, 2000)
write("stereo16k.flac", FLAC | PCM_16, 16000, 2, 1000)
write("mono16k.ogg", OGG | VORBIS, 16000, 1, 1600)
