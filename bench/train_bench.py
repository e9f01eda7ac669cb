#!/usr/bin/env python3
"""Training-step throughput of Pianola's model in PyTorch eager (the baseline
of bench/train_bench.cc).

An independent Python implementation of the same architecture as
trainer/{mel,timbre_encoder,wavenet,autoencoder,losses,mulaw}.cc: log-mel
timbre encoder with mean/std pooling, WaveNet decoder (autoregressive µ-law
with embedding input, or parallel over noise with the stack folded by F
samples per step), µ-law cross-entropy or the
multi-resolution STFT loss, Adam, gradient clipping. train_bench.cc writes the
model shape (spec JSON) and, in one binary file, its initial weights and one
batch; this script loads them by parameter name (every name and shape must
match, which checks the architecture), prints the step-0 loss (which the C++
side compares with its own), then times training steps.

Usage: train_bench.py --spec SPEC.json --tensors TENSORS.bin
Prints one JSON object on stdout.
"""

import argparse
import contextlib
import json
import math
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --- exchange file (see WriteTensors in train_bench.cc) -----------------------
def read_tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"PNLBENCH":
        raise SystemExit(f"{path}: bad magic")
    (count,) = struct.unpack_from("<I", data, 8)
    at = 12
    out = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<I", data, at)
        at += 4
        name = data[at:at + name_len].decode()
        at += name_len
        ndim, dtype = struct.unpack_from("<II", data, at)
        at += 8
        dims = struct.unpack_from(f"<{ndim}q", data, at)
        at += 8 * ndim
        np_dtype = {0: np.float32, 1: np.int64}[dtype]
        n = int(np.prod(dims)) if ndim else 1
        arr = np.frombuffer(data, dtype=np_dtype, count=n, offset=at).reshape(dims)
        at += n * np.dtype(np_dtype).itemsize
        out[name] = torch.from_numpy(arr.copy())
    return out


# --- model ---------------------------------------------------------------------
def hz_to_mel(hz):
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max):
    if f_max <= 0:
        f_max = sample_rate / 2.0
    lo, hi = hz_to_mel(f_min), hz_to_mel(f_max)
    points = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    fb = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(n_mels):
        left, center, right = points[m], points[m + 1], points[m + 2]
        up = (freqs - left) / (center - left)
        down = (right - freqs) / (right - center)
        fb[m] = np.maximum(0.0, np.minimum(up, down))
    return torch.from_numpy(fb)


class LogMel(nn.Module):
    def __init__(self, mel, sample_rate):
        super().__init__()
        self.n_fft, self.hop, self.log_floor = mel["n_fft"], mel["hop"], mel["log_floor"]
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True))
        self.register_buffer("filterbank", mel_filterbank(
            self.n_fft, mel["n_mels"], sample_rate, mel["f_min"], mel["f_max"]))

    def forward(self, x):
        spec = torch.stft(x, self.n_fft, self.hop, self.n_fft, self.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True,
                          return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(torch.matmul(self.filterbank, power) + self.log_floor)


class Encoder(nn.Module):
    def __init__(self, e, sample_rate):
        super().__init__()
        self.mel = LogMel(e["mel"], sample_rate)
        k, c = e["kernel_size"], e["channels"]
        convs, cin = [], e["mel"]["n_mels"]
        for _ in range(e["layers"]):
            convs.append(nn.Conv1d(cin, c, k, padding=k // 2))
            cin = c
        self.convs = nn.ModuleList(convs)
        self.project = nn.Linear(2 * c, e["z_dim"])

    def forward(self, ref):
        x = self.mel(ref)
        for conv in self.convs:
            x = torch.relu(conv(x))
        mean = x.mean(-1)
        std = (x.var(-1, unbiased=False) + 1e-5).sqrt()
        return self.project(torch.cat([mean, std], 1))


def fold_blocks(x, f):
    """x [B, C, T] -> [B * C, T', F]: block j of channel c as row j (T' = ceil(T / F),
    the last block zero-padded at its end)."""
    b, c, t = x.shape
    steps = -(-t // f)
    if steps * f != t:
        x = F.pad(x, (0, steps * f - t))
    return x.reshape(b * c, steps, f)


class WaveNet(nn.Module):
    """trainer/wavenet.cc's training path. Parallel with fold F > 1: the stack runs at
    T' = ceil(T / F) steps; the noise's blocks of F samples are the F input channels, the
    MIDI features reach the folded rate through a strided conv (kernel F, stride F)
    factored as cond_fold (M = cond_fold_filters length-F filters shared by all C
    channels: [B, C * M, T'], channel order (c, m)) then cond_hidden (1x1), dilations
    count folded steps, and the head's F output channels at step j are samples
    jF .. jF+F-1, cropped back to T. F = 1 is the unfolded decoder."""

    def __init__(self, d, z_dim):
        super().__init__()
        self.ar = d["kind"] == "autoregressive"
        self.fold = 1 if self.ar else d["fold"]
        self.layers = d["layers_per_cycle"] * d["cycles"]
        self.lpc, self.k = d["layers_per_cycle"], d["kernel_size"]
        r, g, s = d["residual_channels"], d["gate_channels"], d["skip_channels"]
        h, q, c = d["cond_hidden_channels"], d["quantization_levels"], d["cond_channels"]
        self.g = g
        if self.ar:
            self.embedding = nn.Embedding(q, r)
        else:
            self.input_conv = nn.Conv1d(self.fold, r, 1)
        self.cond_channels, self.cond_fold_filters = c, d["cond_fold_filters"]
        self.cond_fold = self.cond_hidden = None
        cond_in = c
        if c > 0 and self.fold > 1:
            m = self.cond_fold_filters
            self.cond_fold = nn.Conv1d(1, m, self.fold, stride=self.fold, bias=False)
            self.cond_hidden = nn.Conv1d(c * m, h, 1)
            cond_in = h
        elif c > 0 and h > 0:
            self.cond_hidden = nn.Conv1d(c, h, 1)
            cond_in = h
        self.has_cond = cond_in > 0
        self.z_proj = nn.Linear(z_dim, self.layers * 2 * g, bias=False) if z_dim > 0 else None
        for i in range(self.layers):
            dil = self.dilation(i)
            pad = 0 if self.ar else dil * (self.k - 1) // 2
            setattr(self, f"dilated{i}", nn.Conv1d(r, 2 * g, self.k, dilation=dil, padding=pad))
            if self.has_cond:
                setattr(self, f"cond{i}", nn.Conv1d(cond_in, 2 * g, 1, bias=False))
            if i + 1 < self.layers:
                setattr(self, f"residual{i}", nn.Conv1d(g, r, 1))
            setattr(self, f"skip{i}", nn.Conv1d(g, s, 1))
        self.head_hidden = nn.Conv1d(s, s, 1)
        self.head_out = nn.Conv1d(s, q if self.ar else self.fold, 1)

    def dilation(self, i):
        return 1 << (i % self.lpc)

    def conditioning(self, cond):
        if cond is None or self.cond_channels == 0:
            return None
        if self.cond_hidden is None:
            return cond
        if self.fold == 1:
            return self.cond_hidden(cond)
        # The strided conv as one batched product of the M filters [M, F] with each
        # channel's blocks [F, T'] (the same formulation as the C++ side: torch's
        # strided conv1d is several times slower on these shapes).
        b, c = cond.shape[0], cond.shape[1]
        m, f = self.cond_fold_filters, self.fold
        blocks = fold_blocks(cond, f)  # [B * C, T', F]
        filters = self.cond_fold.weight.view(1, m, f).expand(blocks.shape[0], m, f)
        folded = torch.bmm(filters, blocks.transpose(1, 2))  # [B * C, M, T']
        return self.cond_hidden(folded.view(b, c * m, blocks.shape[1]))

    def forward(self, inp, cond, z):
        if self.ar:
            x = self.embedding(inp).transpose(1, 2)
        elif self.fold == 1:
            x = self.input_conv(inp.unsqueeze(1))
        else:
            # [B, T] -> [B, T', F] -> [B, F, T']: block j's samples as channels.
            x = self.input_conv(fold_blocks(inp.unsqueeze(1), self.fold).transpose(1, 2))
        hidden = self.conditioning(cond)
        global_biases = self.z_proj(z) if self.z_proj is not None else None
        g2 = 2 * self.g
        scale = math.sqrt(0.5)
        skip = None
        for i in range(self.layers):
            dil = self.dilation(i)
            conv = getattr(self, f"dilated{i}")
            if self.ar:
                a = F.conv1d(F.pad(x, ((self.k - 1) * dil, 0)), conv.weight, None, 1, 0, dil)
            else:
                a = F.conv1d(x, conv.weight, None, 1, dil * (self.k - 1) // 2, dil)
            # In the conv output's dtype: under bf16 autocast a float32 bias
            # would promote the sum and the gate to float32 (the C++ model
            # adds its biases in the conv's bf16).
            bias = conv.bias.to(a.dtype).view(1, g2, 1)
            if hidden is not None and self.has_cond:
                bias = getattr(self, f"cond{i}")(hidden) + bias
            if global_biases is not None:
                bias = bias + global_biases[:, i * g2:(i + 1) * g2].unsqueeze(-1)
            a = a + bias
            gated = torch.tanh(a[:, :self.g]) * torch.sigmoid(a[:, self.g:])
            s = getattr(self, f"skip{i}")(gated)
            skip = s if skip is None else skip + s
            if i + 1 < self.layers:
                x = (x + getattr(self, f"residual{i}")(gated)) * scale
        out = self.head_out(torch.relu(self.head_hidden(torch.relu(skip))))
        if self.ar:
            return out
        if self.fold == 1:
            return out.squeeze(1)
        # [B, F, T'] -> [B, T', F] -> [B, T' * F]: step j's channels are samples
        # jF .. jF+F-1; cropped back to T.
        return out.transpose(1, 2).reshape(out.shape[0], -1)[:, :inp.shape[1]]


def mulaw_encode(audio, levels):
    mu = levels - 1
    x = audio.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.round((y + 1.0) * (mu / 2.0)).clamp(0, mu).long()


def stft_magnitude(x, fft, hop, win):
    # In float32 like the C++ loss (losses.cc): under bf16 autocast the decoder's
    # output is bf16, which cuFFT does not transform.
    window = torch.hann_window(win, device=x.device)
    spec = torch.stft(x.float(), fft, hop, win, window, center=True, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True)
    return (spec.real.square() + spec.imag.square()).clamp_min(1e-7).sqrt()


class Autoencoder(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.encoder = Encoder(spec["encoder"], spec["sample_rate"])
        self.decoder = WaveNet(spec["decoder"], spec["encoder"]["z_dim"])

    def loss(self, audio, cond, ref, noise_gen):
        z = self.encoder(ref)
        n = audio.size(1)
        context = self.spec["context_samples"]
        d = self.spec["decoder"]
        if d["kind"] == "autoregressive":
            classes = mulaw_encode(audio, d["quantization_levels"])
            logits = self.decoder(classes[:, :n - 1], cond[:, :, 1:], z)
            return F.cross_entropy(logits[:, :, context - 1:n - 1], classes[:, context:])
        noise = torch.randn(audio.size(0), n, generator=noise_gen, device=audio.device)
        pred = self.decoder(noise, cond, z)[:, context:]
        target = audio[:, context:]
        loss = self.spec["loss"]
        sc_total, lm_total = 0.0, 0.0
        for fft, hop, win in loss["stft_resolutions"]:
            p = stft_magnitude(pred, fft, hop, win)
            t = stft_magnitude(target, fft, hop, win)
            sc_total = sc_total + (t - p).square().sum().sqrt() / t.square().sum().sqrt()
            lm_total = lm_total + (torch.log(t) - torch.log(p)).abs().mean()
        r = len(loss["stft_resolutions"])
        total = loss["stft_weight"] * (loss["spectral_convergence_weight"] * sc_total / r +
                                       loss["log_magnitude_weight"] * lm_total / r)
        if loss["waveform_l1_weight"] > 0:
            total = total + loss["waveform_l1_weight"] * (pred - target).abs().mean()
        return total


def profile_steps(step, count, top, cuda=False):
    """Profiles `count` steps with the Kineto profiler; prints the ops with the largest CPU
    self time per step, in the format of ProfileSteps in train_bench.cc, and with `cuda` the
    GPU's activity as its PrintDeviceActivity does."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(count):
            step()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    self_sum = sum(e.self_cpu_time_total for e in rows)
    print(f"  profile Python: {1e3 * wall / count:.1f} ms/step wall (profiled), "
          f"ops' self time {self_sum / 1e3 / count:.1f} ms/step")
    print(f"    {'op':<44} {'calls':>7} {'self ms':>10} {'total ms':>10}")
    for e in rows[:top]:
        print(f"    {e.key[:44]:<44} {e.count / count:7.0f} {e.self_cpu_time_total / 1e3 / count:10.2f} "
              f"{e.cpu_time_total / 1e3 / count:10.2f}")
    if cuda:
        print_device_activity(prof.events(), count, wall)


def print_device_activity(events, count, wall, top=15):
    """The GPU events (kernels, copies, fills) of a profile: time per step, busy share of the
    wall time, launches per step, the kernels taking the most time."""
    from torch.autograd import DeviceType
    by_name = {}
    for e in events:
        # Kernels, copies and fills; not the GPU-side spans of user annotations (the
        # optimizer's record_function ranges), which overlap the kernels they contain.
        if e.device_type != DeviceType.CUDA or getattr(e, "is_user_annotation", False):
            continue
        calls, us = by_name.get(e.name, (0, 0.0))
        by_name[e.name] = (calls + 1, us + e.time_range.elapsed_us())
    total_us = sum(us for _, us in by_name.values())
    launches = sum(calls for calls, _ in by_name.values())
    print(f"  GPU Python: device activity {total_us / 1e3 / count:.2f} ms/step, busy "
          f"{100 * total_us / 1e6 / wall:.0f}% of the profiled wall, {launches // count} launches/step")
    print(f"    {'kernel':<60} {'calls':>7} {'ms':>10}")
    for name, (calls, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"    {name[:60]:<60} {calls / count:7.0f} {us / 1e3 / count:10.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True)
    ap.add_argument("--tensors", required=True)
    args = ap.parse_args()
    with open(args.spec) as f:
        spec = json.load(f)
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec.get("device", "cpu"))
    bf16 = bool(spec.get("bf16", False))
    if device.type == "cuda":
        # As the C++ trainer on CUDA: TF32 matmuls and convolutions, cuDNN
        # autotuning, bf16 autocast around the forward pass and loss.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    else:
        # As the C++ trainer runs on a CPU (trainer/determinism.h): deterministic
        # algorithms, without filling new tensors with NaN first.
        torch.use_deterministic_algorithms(True)
        torch.utils.deterministic.fill_uninitialized_memory = False

    tensors = read_tensors(args.tensors)
    model = Autoencoder(spec)
    own = dict(model.named_parameters())
    own.update(dict(model.named_buffers()))
    stored = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    if set(own) != set(stored):
        raise SystemExit("architecture mismatch: only in Python: %s; only in C++: %s" %
                         (sorted(set(own) - set(stored)), sorted(set(stored) - set(own))))
    with torch.no_grad():
        for name, t in own.items():
            if tuple(t.shape) != tuple(stored[name].shape):
                raise SystemExit(f"{name}: Python {tuple(t.shape)} vs C++ {tuple(stored[name].shape)}")
            t.copy_(stored[name])
    model.to(device)
    audio, cond, ref = (tensors[k].to(device) for k in
                        ("batch/audio", "batch/conditioning", "batch/reference"))

    opt = spec["optimizer"]
    params = list(model.parameters())
    adam = torch.optim.Adam(params, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]),
                            eps=opt["eps"], weight_decay=opt["weight_decay"])
    if device.type == "cuda":
        # The C++ side draws from the default CUDA generator with this seed.
        torch.cuda.manual_seed(spec["noise_seed"])
        noise_gen = None
    else:
        noise_gen = torch.Generator().manual_seed(spec["noise_seed"])
    clip = spec["grad_clip_norm"] if spec["grad_clip_norm"] > 0 else float("inf")

    def autocast():
        return (torch.autocast("cuda", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())

    def step():
        adam.zero_grad()
        with autocast():
            loss = model.loss(audio, cond, ref, noise_gen)
        value = loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        adam.step()
        return value

    first_loss = step()
    for _ in range(spec["warmup_steps"] - 1):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    sync()
    elapsed = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    samples = spec["steps"] * audio.size(0) * spec["window_samples"]
    json.dump({"samples_per_second": samples / elapsed, "seconds": elapsed,
               "first_loss": first_loss, "faults_per_step": faults / spec["steps"], "parameters": sum(p.numel() for p in params),
               "torch": torch.__version__, "threads": torch.get_num_threads()}, sys.stdout)
    print()
    if spec.get("profile_steps", 0) > 0:
        try:
            profile_steps(step, spec["profile_steps"], spec["profile_top_ops"],
                          cuda=device.type == "cuda")
        except Exception as e:  # a diagnostic: its failure must not fail the benchmark
            print(f"  profile Python: failed: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
