#include "trainer/generator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "trainer/gated_activation.h"
#include "trainer/mulaw.h"
#include "trainer/wavenet_step_kernel.h"

namespace pianola {
namespace {

std::vector<float> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// [out, in, 1] conv weight -> [in][out].
torch::Tensor InOut(const torch::Tensor& conv_weight) {
  return conv_weight.detach().squeeze(-1).t().contiguous();
}

StepWeights KernelWeights(WaveNet& d) {
  const DecoderConfig& c = d->config();
  StepWeights w;
  w.residual_channels = c.residual_channels;
  w.gate_channels = c.gate_channels;
  w.skip_channels = c.skip_channels;
  w.classes = c.quantization_levels;
  w.kernel_size = c.kernel_size;
  if (!d->embedding().is_empty()) {
    w.embedding = ToVector(d->embedding()->weight);
  } else {
    w.scalar_weight = ToVector(d->input_conv()->weight);
    w.scalar_bias = ToVector(d->input_conv()->bias);
  }
  torch::Tensor skip_bias = torch::zeros({c.skip_channels});
  for (int l = 0; l < d->num_layers(); ++l) {
    StepLayerWeights lw;
    lw.dilation = d->dilation(l);
    lw.dilated = ToVector(d->dilated_conv(l)->weight.detach().permute({2, 1, 0}));
    if (!d->residual_conv(l).is_empty()) {
      lw.residual = ToVector(InOut(d->residual_conv(l)->weight));
      lw.residual_bias = ToVector(d->residual_conv(l)->bias);
    }
    lw.skip = ToVector(InOut(d->skip_conv(l)->weight));
    skip_bias += d->skip_conv(l)->bias.detach().cpu();
    w.layers.push_back(std::move(lw));
  }
  w.skip_bias = ToVector(skip_bias);
  w.head_hidden = ToVector(InOut(d->head_hidden()->weight));
  w.head_hidden_bias = ToVector(d->head_hidden()->bias);
  w.head_out = ToVector(InOut(d->head_out()->weight));
  w.head_out_bias = ToVector(d->head_out()->bias);
  return w;
}

absl::Status CheckInputs(WaveNet& d, const ConditioningSpans& cond, const torch::Tensor& z) {
  const DecoderConfig& c = d->config();
  if (!cond.slice) return absl::InvalidArgumentError("conditioning: no slice function");
  if (cond.channels != c.cond_channels) {
    return absl::InvalidArgumentError(absl::StrCat("conditioning: has ", cond.channels,
                                                   " channels, the decoder expects ",
                                                   c.cond_channels));
  }
  if (cond.batch < 1 || cond.length < 1) {
    return absl::InvalidArgumentError("conditioning: empty batch or length");
  }
  if (d->z_dim() > 0) {
    if (!z.defined() || z.dim() != 2 || z.size(0) != cond.batch || z.size(1) != d->z_dim()) {
      return absl::InvalidArgumentError(
          absl::StrCat("z: expected [", cond.batch, ", ", d->z_dim(), "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const torch::Tensor& cond) {
  if (!cond.defined() || cond.dim() != 3) {
    return absl::InvalidArgumentError("conditioning: expected a [B, C, T] tensor");
  }
  return absl::OkStatus();
}

absl::Status CheckInputs(WaveNet& d, const torch::Tensor& cond, const torch::Tensor& z) {
  RETURN_IF_ERROR(CheckShape(cond));
  return CheckInputs(d, ConditioningSpans::Of(cond), z);
}

torch::Tensor InitialClasses(const torch::Tensor& initial, int64_t batch, int levels) {
  // A fresh tensor: the generator writes each step's class into it.
  if (initial.defined()) return initial.to(torch::kCPU, torch::kLong).reshape({batch}).clone();
  return MuLawEncode(torch::zeros({batch}), levels);
}

absl::Status TorchError(absl::string_view what, const c10::Error& e) {
  return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
}

// RenderParallel's pass length: at most `max_chunk` output samples (<= 0:
// unbounded), a multiple of `fold`, and with `threads` > 1 rendering
// concurrently, as many passes as a multiple of the threads so none waits
// for the last one alone (10 s of audio in three 65,536-sample chunks took
// two rounds on two threads; four chunks of 40,000 take two half-length
// ones). Rebalanced only while each pass keeps at least 4x the context it
// reads on each side (`half`), so the overlap stays under half the work.
int64_t ChunkLength(int64_t total, int64_t max_chunk, int64_t fold, int64_t half, int threads) {
  if (max_chunk <= 0) return total;  // one pass, as asked
  int64_t chunks = (total + max_chunk - 1) / max_chunk;
  if (threads > 1) {
    const int64_t balanced = (chunks + threads - 1) / threads * threads;
    if ((total + balanced - 1) / balanced >= 4 * half) chunks = balanced;
  }
  const int64_t chunk = (total + chunks - 1) / chunks;
  return (chunk + fold - 1) / fold * fold;
}

}  // namespace

ConditioningSpans ConditioningSpans::Of(const torch::Tensor& cond) {
  return {.batch = cond.size(0),
          .channels = cond.size(1),
          .length = cond.size(2),
          .slice = [cond](int64_t start, int64_t n) { return cond.narrow(2, start, n); }};
}

int64_t SampleClass(const float* logits, int classes, double temperature, double u) {
  int best = 0;
  for (int i = 1; i < classes; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  if (temperature <= 0) return best;
  const double max = logits[best];
  double total = 0;
  std::vector<double> cdf(classes);
  for (int i = 0; i < classes; ++i) {
    total += std::exp((logits[i] - max) / temperature);
    cdf[i] = total;
  }
  const double target = u * total;
  for (int i = 0; i < classes; ++i) {
    if (cdf[i] > target) return i;
  }
  return classes - 1;
}

// Transposed weights for the tensor engine, on the decoder's device.
struct AutoregressiveGenerator::TensorWeights {
  std::vector<std::vector<torch::Tensor>> taps;  // [layer][j]: [R, 2G]
  std::vector<torch::Tensor> residual, residual_bias, skip;  // [G, R], [R], [G, S]
  torch::Tensor skip_bias;                                   // [S]
  std::vector<torch::Tensor> rings;                          // [size, B, R] per layer
};

AutoregressiveGenerator::AutoregressiveGenerator(WaveNet decoder, GeneratorOptions options)
    : decoder_(std::move(decoder)), options_(std::move(options)) {}

AutoregressiveGenerator::~AutoregressiveGenerator() = default;

absl::StatusOr<std::unique_ptr<AutoregressiveGenerator>> AutoregressiveGenerator::Create(
    WaveNet decoder, GeneratorOptions options) {
  if (decoder.is_empty() || !decoder->autoregressive()) {
    return absl::InvalidArgumentError(
        "AutoregressiveGenerator: the decoder must be autoregressive");
  }
  if (options.block_samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("GeneratorOptions.block_samples: must be positive, got ",
                     options.block_samples));
  }
  const bool on_cpu = decoder->parameters().front().device().is_cpu();
  std::unique_ptr<AutoregressiveGenerator> g(
      new AutoregressiveGenerator(std::move(decoder), std::move(options)));
  switch (g->options_.engine) {
    case GeneratorOptions::Engine::kAuto: g->use_kernel_ = on_cpu; break;
    case GeneratorOptions::Engine::kCpuKernel:
      if (!on_cpu) {
        return absl::FailedPreconditionError(
            "AutoregressiveGenerator: the CPU kernel needs the decoder on the CPU");
      }
      g->use_kernel_ = true;
      break;
    case GeneratorOptions::Engine::kTensor: g->use_kernel_ = false; break;
  }
  if (!g->use_kernel_) {
    torch::NoGradGuard no_grad;
    WaveNet& d = g->decoder_;
    auto w = std::make_unique<TensorWeights>();
    for (int l = 0; l < d->num_layers(); ++l) {
      std::vector<torch::Tensor> taps;
      torch::Tensor weight = d->dilated_conv(l)->weight.detach();  // [2G, R, k]
      for (int j = 0; j < d->config().kernel_size; ++j) {
        taps.push_back(weight.select(2, j).t().contiguous());
      }
      w->taps.push_back(std::move(taps));
      if (!d->residual_conv(l).is_empty()) {
        w->residual.push_back(InOut(d->residual_conv(l)->weight));
        w->residual_bias.push_back(d->residual_conv(l)->bias.detach());
      } else {
        w->residual.emplace_back();
        w->residual_bias.emplace_back();
      }
      w->skip.push_back(InOut(d->skip_conv(l)->weight));
      torch::Tensor b = d->skip_conv(l)->bias.detach();
      w->skip_bias = w->skip_bias.defined() ? w->skip_bias + b : b.clone();
    }
    g->weights_ = std::move(w);
  }
  return g;
}

static absl::Status CheckPrompt(const torch::Tensor& prompt, const ConditioningSpans& cond) {
  if (!prompt.defined()) return absl::OkStatus();
  if (prompt.dim() != 2 || prompt.size(0) != cond.batch || prompt.size(1) > cond.length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: expected [", cond.batch, ", P] with P <= ", cond.length));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationResult> AutoregressiveGenerator::Generate(const torch::Tensor& cond,
                                                                  const torch::Tensor& z,
                                                                  torch::Generator rng,
                                                                  bool keep_logits,
                                                                  const torch::Tensor& prompt) {
  RETURN_IF_ERROR(CheckShape(cond));
  return Generate(ConditioningSpans::Of(cond), z, rng, keep_logits, prompt);
}

absl::StatusOr<GenerationResult> AutoregressiveGenerator::Generate(const ConditioningSpans& cond,
                                                                  const torch::Tensor& z,
                                                                  torch::Generator rng,
                                                                  bool keep_logits,
                                                                  const torch::Tensor& prompt) {
  RETURN_IF_ERROR(CheckInputs(decoder_, cond, z));
  RETURN_IF_ERROR(CheckPrompt(prompt, cond));
  return Run(cond, z, torch::Tensor(), prompt, &rng, keep_logits);
}

absl::StatusOr<torch::Tensor> AutoregressiveGenerator::ForcedLogits(const torch::Tensor& inputs,
                                                                   const torch::Tensor& cond,
                                                                   const torch::Tensor& z) {
  RETURN_IF_ERROR(CheckInputs(decoder_, cond, z));
  if (!inputs.defined() || inputs.dim() != 2 || inputs.size(0) != cond.size(0) ||
      inputs.size(1) != cond.size(2)) {
    return absl::InvalidArgumentError("ForcedLogits: inputs must be [B, T] matching cond [B, C, T]");
  }
  // inputs[:, t] is the class before sample t: the initial class, then the
  // first T - 1 samples as a prompt.
  const int64_t total = inputs.size(1);
  ASSIGN_OR_RETURN(GenerationResult r,
                   Run(ConditioningSpans::Of(cond), z, inputs.select(1, 0),
                       inputs.narrow(1, 1, total - 1), nullptr, /*keep_logits=*/true));
  return r.logits;}

absl::StatusOr<GenerationResult> AutoregressiveGenerator::Run(const ConditioningSpans& cond,
                                                             const torch::Tensor& z,
                                                             const torch::Tensor& initial,
                                                             const torch::Tensor& prompt,
                                                             torch::Generator* rng,
                                                             bool keep_logits) {
  WaveNet& d = decoder_;
  try {
    torch::NoGradGuard no_grad;
    const DecoderConfig& c = d->config();
    const torch::Device device = d->parameters().front().device();
    const int64_t batch = cond.batch;
    const int64_t total = cond.length;
    const int q = c.quantization_levels;
    const int64_t g2 = 2 * c.gate_channels;
    const int layers = d->num_layers();
    torch::Tensor global = d->GlobalBiases(z.defined() ? z.to(device) : z);
    torch::Tensor prompt_cpu =
        prompt.defined() ? prompt.to(torch::kCPU, torch::kLong).contiguous() : torch::Tensor();
    const int64_t prompted = prompt_cpu.defined() ? prompt_cpu.size(1) : 0;

    std::unique_ptr<WaveNetStepKernel> kernel;
    if (use_kernel_) {
      kernel = std::make_unique<WaveNetStepKernel>(KernelWeights(d), static_cast<int>(batch));
    } else {
      weights_->rings.clear();
      for (int l = 0; l < layers; ++l) {
        const int64_t size = int64_t{c.kernel_size - 1} * d->dilation(l) + 1;
        weights_->rings.push_back(
            torch::zeros({size, batch, c.residual_channels}, torch::TensorOptions(device)));
      }
    }

    torch::Tensor classes = torch::empty({batch, total}, torch::kLong);
    torch::Tensor logits_all;
    if (keep_logits) logits_all = torch::empty({batch, total, q}, torch::kFloat);
    torch::Tensor prev = InitialClasses(initial, batch, q);  // [B] CPU
    std::vector<float> step_logits(static_cast<size_t>(batch) * q);
    std::vector<const float*> bias_ptrs(layers);
    const float scale = std::sqrt(0.5f);

    for (int64_t t0 = 0; t0 < total; t0 += options_.block_samples) {
      const int64_t n = std::min(options_.block_samples, total - t0);
      torch::Tensor hidden = d->ConditioningHidden(cond.slice(t0, n).to(device, torch::kFloat));
      std::vector<torch::Tensor> biases(layers);  // [B, n, 2G]
      for (int l = 0; l < layers; ++l) {
        biases[l] = d->LayerBias(l, hidden, global).expand({batch, g2, n}).transpose(1, 2)
                        .contiguous();
        if (use_kernel_) biases[l] = biases[l].to(torch::kFloat);
      }
      torch::Tensor uniforms;
      if (rng != nullptr) uniforms = torch::rand({n, batch}, *rng, torch::kDouble);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = t0 + t;
        if (use_kernel_) {
          for (int l = 0; l < layers; ++l) bias_ptrs[l] = biases[l].data_ptr<float>() + t * g2;
          kernel->Step(prev.data_ptr<int64_t>(), bias_ptrs.data(), n * g2, step_logits.data());
        } else {
          TensorWeights& w = *weights_;
          torch::Tensor x = d->EmbedInput(prev.to(device).unsqueeze(1)).squeeze(-1);  // [B, R]
          torch::Tensor skip = w.skip_bias.unsqueeze(0).expand({batch, -1}).clone();
          for (int l = 0; l < layers; ++l) {
            const int64_t size = w.rings[l].size(0);
            w.rings[l].select(0, pos % size).copy_(x);
            torch::Tensor a = biases[l].select(1, t).clone();
            for (int j = 0; j < c.kernel_size; ++j) {
              const int64_t back = int64_t{c.kernel_size - 1 - j} * d->dilation(l);
              const int64_t slot = ((pos - back) % size + size) % size;
              a.addmm_(w.rings[l].select(0, slot), w.taps[l][j]);
            }
            torch::Tensor g = GatedActivation(a.unsqueeze(-1), c.gate_channels).squeeze(-1);
            skip.addmm_(g, w.skip[l]);
            if (w.residual[l].defined()) {
              x = (x + torch::addmm(w.residual_bias[l], g, w.residual[l])) * scale;
            }
          }
          torch::Tensor out = d->Head(skip.unsqueeze(-1)).squeeze(-1);  // [B, Q]
          torch::Tensor out_cpu = out.to(torch::kCPU, torch::kFloat).contiguous();
          std::copy(out_cpu.data_ptr<float>(), out_cpu.data_ptr<float>() + batch * q,
                    step_logits.begin());
        }
        if (keep_logits) {  // logits_all is [B, T, Q]
          float* dst = logits_all.data_ptr<float>();
          for (int64_t b = 0; b < batch; ++b) {
            std::copy_n(&step_logits[b * q], q, dst + (b * total + pos) * q);
          }
        }
        auto prev_a = prev.accessor<int64_t, 1>();
        auto cls_a = classes.accessor<int64_t, 2>();
        for (int64_t b = 0; b < batch; ++b) {
          int64_t next;
          if (pos < prompted) {
            next = prompt_cpu.accessor<int64_t, 2>()[b][pos];  // given, not sampled
          } else {
            const double u = rng != nullptr ? uniforms.accessor<double, 2>()[t][b] : 0.0;
            next = SampleClass(&step_logits[b * q], q, options_.temperature, u);
          }
          cls_a[b][pos] = next;
          prev_a[b] = next;
        }
      }
      if (options_.on_progress) options_.on_progress(t0 + n, total);
    }
    GenerationResult result;
    result.classes = classes;
    result.audio = MuLawDecode(classes, q);
    if (keep_logits) result.logits = logits_all.permute({0, 2, 1}).contiguous();
    return result;
  } catch (const c10::Error& e) {
    return TorchError("autoregressive generation", e);
  }
}

absl::StatusOr<GenerationResult> NaiveGenerate(WaveNet decoder, const torch::Tensor& cond_in,
                                               const torch::Tensor& z, torch::Generator rng,
                                               const GeneratorOptions& options, bool keep_logits,
                                               const torch::Tensor& prompt) {
  if (decoder.is_empty() || !decoder->autoregressive()) {
    return absl::InvalidArgumentError("NaiveGenerate: the decoder must be autoregressive");
  }
  RETURN_IF_ERROR(CheckInputs(decoder, cond_in, z));
  RETURN_IF_ERROR(CheckPrompt(prompt, ConditioningSpans::Of(cond_in)));
  if (options.block_samples < 1) {
    return absl::InvalidArgumentError("GeneratorOptions.block_samples: must be positive");
  }
  try {
    torch::NoGradGuard no_grad;
    const torch::Device device = decoder->parameters().front().device();
    const int q = decoder->config().quantization_levels;
    const int64_t batch = cond_in.size(0);
    const int64_t total = cond_in.size(2);
    const int64_t rf = decoder->receptive_field();
    torch::Tensor cond = cond_in.to(device, torch::kFloat);
    torch::Tensor zd = z.defined() ? z.to(device) : z;
    // inputs[:, t] is the class before sample t.
    torch::Tensor inputs = torch::empty({batch, total + 1}, torch::kLong);
    inputs.select(1, 0).copy_(InitialClasses(torch::Tensor(), batch, q));
    const int64_t prompted = prompt.defined() ? prompt.size(1) : 0;
    if (prompted > 0) inputs.narrow(1, 1, prompted).copy_(prompt);
    torch::Tensor logits_all;
    if (keep_logits) logits_all = torch::empty({batch, q, total}, torch::kFloat);
    for (int64_t t0 = 0; t0 < total; t0 += options.block_samples) {
      const int64_t n = std::min(options.block_samples, total - t0);
      torch::Tensor uniforms = torch::rand({n, batch}, rng, torch::kDouble);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t pos = t0 + t;
        if (pos < prompted && !keep_logits) continue;
        const int64_t lo = std::max<int64_t>(0, pos - rf + 1);
        torch::Tensor window_in = inputs.narrow(1, lo, pos - lo + 1).to(device);
        torch::Tensor out = decoder->forward(window_in, cond.narrow(2, lo, pos - lo + 1), zd);
        torch::Tensor last = out.select(2, out.size(2) - 1).to(torch::kCPU, torch::kFloat)
                                 .contiguous();  // [B, Q]
        if (keep_logits) logits_all.select(2, pos).copy_(last);
        auto u_a = uniforms.accessor<double, 2>();
        auto in_a = inputs.accessor<int64_t, 2>();
        for (int64_t b = 0; b < batch && pos >= prompted; ++b) {
          in_a[b][pos + 1] =
              SampleClass(last.data_ptr<float>() + b * q, q, options.temperature, u_a[t][b]);
        }
      }
      if (options.on_progress) options.on_progress(t0 + n, total);
    }
    GenerationResult result;
    result.classes = inputs.narrow(1, 1, total).contiguous();
    result.audio = MuLawDecode(result.classes, q);
    result.logits = logits_all;
    return result;
  } catch (const c10::Error& e) {
    return TorchError("naive generation", e);
  }
}

absl::StatusOr<torch::Tensor> RenderParallel(WaveNet decoder, const torch::Tensor& cond,
                                             const torch::Tensor& z, torch::Generator rng,
                                             const ParallelRenderOptions& options) {
  RETURN_IF_ERROR(CheckShape(cond));
  return RenderParallel(decoder, ConditioningSpans::Of(cond), z, rng, options);
}

absl::StatusOr<torch::Tensor> RenderParallel(WaveNet decoder, const ConditioningSpans& cond,
                                             const torch::Tensor& z, torch::Generator rng,
                                             const ParallelRenderOptions& options) {
  if (decoder.is_empty() || decoder->autoregressive()) {
    return absl::InvalidArgumentError("RenderParallel: the decoder must be parallel");
  }
  RETURN_IF_ERROR(CheckInputs(decoder, cond, z));
  try {
    torch::NoGradGuard no_grad;
    const torch::Device device = decoder->parameters().front().device();
    const int64_t batch = cond.batch;
    const int64_t total = cond.length;
    // Chunks start on fold boundaries and overlap by whole folded blocks, so
    // every chunk folds its samples exactly as the one pass does.
    const int64_t fold = decoder->fold();
    const int64_t half = decoder->context_samples();  // a multiple of fold
    // One span of the conditioning on the decoder's device.
    auto span = [&](int64_t start, int64_t n) {
      return cond.slice(start, n).to(device, torch::kFloat);
    };
    torch::Tensor zd = z.defined() ? z.to(device) : z;
    torch::Tensor noise = torch::randn({batch, total}, rng, torch::kFloat).to(device);
    const int threads = at::get_num_threads();
    const bool concurrent = device.is_cpu() && threads > 1 && !at::in_parallel_region();
    const int64_t chunk = ChunkLength(total, options.chunk_samples, fold, half,
                                      concurrent ? threads : 1);
    if (chunk >= total) {
      torch::Tensor out = decoder->forward(noise, span(0, total), zd);
      if (options.on_progress) options.on_progress(total, total);
      return out;
    }
    const int64_t chunks = (total + chunk - 1) / chunk;
    std::vector<torch::Tensor> pieces(chunks);  // chunk i written by its renderer only
    struct {
      absl::Mutex mu;
      int64_t done ABSL_GUARDED_BY(mu) = 0;  // samples rendered, for on_progress
    } progress;
    auto render = [&](int64_t i) {
      const int64_t s = i * chunk;
      const int64_t e = std::min(total, s + chunk);
      const int64_t lo = std::max<int64_t>(0, s - half);
      const int64_t hi = std::min(total, e + half);
      torch::Tensor out = decoder->forward(noise.narrow(1, lo, hi - lo),
                                           span(lo, hi - lo), zd);
      pieces[i] = out.narrow(1, s - lo, e - s);
      if (options.on_progress) {
        absl::MutexLock lock(&progress.mu);
        progress.done += e - s;
        options.on_progress(progress.done, total);
      }
    };
    if (!concurrent) {
      for (int64_t i = 0; i < chunks; ++i) render(i);
    } else {
      // On the CPU, whole chunks on the intra-op threads, each taken by
      // whichever thread is free (one chunk's small per-layer ops scale
      // poorly over threads; independent chunks scale almost perfectly).
      // Ops inside a parallel region run single-threaded.
      std::atomic<int64_t> next{0};
      at::parallel_for(0, std::min<int64_t>(threads, chunks), 1, [&](int64_t, int64_t) {
        torch::NoGradGuard worker_no_grad;  // grad mode is per thread
        for (int64_t i = next++; i < chunks; i = next++) render(i);
      });
    }
    return torch::cat(pieces, 1);
  } catch (const c10::Error& e) {
    return TorchError("parallel rendering", e);
  }
}

}  // namespace pianola
