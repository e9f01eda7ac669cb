// Generation speed: cached autoregressive generation (fast WaveNet queues)
// against naive recomputation of the receptive field for every sample, and
// real-time factors of both decoder kinds, per preset. Both engines run in
// this process on the same model, conditioning and seed; the naive run's
// samples are checked against the cached generator's for the same prompt.
// The parallel decoder is timed as the preset defines it (folded) and
// unfolded (fold 1, the same layers at the audio rate), at 1 torch thread
// and at --threads, rendering with RenderParallel's default chunks.
//
//   generation_bench [--presets tiny,small,base] [--threads 2] [--batch 1]
//                    [--kinds autoregressive,parallel] [--unfolded yes|no]
//                    [--repeats 3] [--chunk 65536]
//
// Rates are steady state: the naive generator is primed with one receptive
// field of prompt samples so every timed step recomputes a full window; the
// cached generator's per-step work does not depend on the position.
// Weights are random: speed does not depend on their values.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "trainer/autoencoder.h"
#include "trainer/generator.h"
#include "trainer/model_config.h"
#include "trainer/mulaw.h"

namespace pianola {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Piano-roll-like features: a chord change every 0.25 s, pedal half the time.
torch::Tensor Conditioning(int64_t batch, int64_t n, int sample_rate) {
  torch::Tensor cond = torch::zeros({batch, kMidiFeatureChannels, n});
  const int64_t step = sample_rate / 4;
  for (int64_t t = 0; t < n; t += step) {
    for (int key : {39, 43, 46}) {
      const int64_t k = (key + (t / step) * 5) % 88;
      cond.select(1, k).select(1, t).fill_(0.7);
      cond.select(1, 88 + k).slice(1, t, std::min(n, t + step)).fill_(1.0);
    }
  }
  cond.select(1, 176).slice(1, n / 2).fill_(1.0);
  return cond;
}

struct Args {
  std::vector<std::string> presets = {"tiny", "small", "base"};
  int threads = 2;
  int batch = 1;
  bool autoregressive = true;
  bool parallel = true;
  bool unfolded = true;  // also time the parallel decoder unfolded
  int repeats = 3;       // parallel: best of this many renders
  int64_t chunk = ParallelRenderOptions().chunk_samples;  // RenderParallel's
};

// False when the cached generator's samples differ from naive recomputation's.
bool RunPreset(const std::string& name, const Args& args) {
  bool samples_agree = true;
  // Samples timed per engine: enough for stable rates, bounded for base.
  const bool base = name == "base";
  const int sr = 16000;
  const int64_t cached_samples = base ? 1600 : 16000;
  const int64_t tensor_samples = base ? 400 : 2000;
  const int64_t naive_samples = base ? 3 : (name == "small" ? 40 : 400);
  const int64_t parallel_samples = base ? 2 * sr : 10 * sr;
  const int64_t b = args.batch;

  // --- autoregressive --------------------------------------------------------
  if (args.autoregressive) {
    ModelConfig config = *ModelPreset(name, DecoderKind::kAutoregressive);
    Autoencoder model = *MakeAutoencoder(config);
    model->eval();
    WaveNet decoder = model->decoder();
    const int64_t rf = decoder->receptive_field();
    torch::Tensor z = torch::randn({b, config.encoder.z_dim});
    std::printf("%s autoregressive: %lld parameters, receptive field %lld samples (%.1f ms)\n",
                name.c_str(), static_cast<long long>(model->ParameterCount()),
                static_cast<long long>(rf), 1000.0 * rf / sr);

    // The cached CPU kernel is single-threaded: run it with one torch thread
    // (idle OpenMP workers spinning after each block's projections would
    // otherwise compete with it for the two cores). Best of three runs, to
    // damp other tenants' load on the shared VM.
    torch::set_num_threads(1);
    auto cached = *AutoregressiveGenerator::Create(decoder);
    torch::Tensor cond = Conditioning(b, cached_samples, sr);
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto rep_start = std::chrono::steady_clock::now();
      (void)*cached->Generate(cond, z, at::detail::createCPUGenerator(1));
      best = std::min(best, Seconds(rep_start));
    }
    const double cached_rate = static_cast<double>(cached_samples) / best;
    std::printf("  cached (CPU kernel, best of 3): %lld samples x %lld in %.2f s: %.0f samples/s per "
                "sequence, real-time factor %.3f (batch total %.3f)\n",
                static_cast<long long>(cached_samples), static_cast<long long>(b),
                cached_samples / cached_rate, cached_rate, cached_rate / sr,
                cached_rate * b / sr);

    auto tensor_gen = *AutoregressiveGenerator::Create(
        decoder, {.engine = GeneratorOptions::Engine::kTensor});
    torch::Tensor tcond = Conditioning(b, tensor_samples, sr);
    auto start = std::chrono::steady_clock::now();
    (void)*tensor_gen->Generate(tcond, z, at::detail::createCPUGenerator(1));
    const double tensor_rate = static_cast<double>(tensor_samples) / Seconds(start);
    torch::set_num_threads(args.threads);
    std::printf("  cached (tensor ops, 1 thread): %.0f samples/s, real-time factor %.4f; CPU "
                "kernel is %.1fx faster\n", tensor_rate, tensor_rate / sr, cached_rate / tensor_rate);

    // Naive, primed with one receptive field so every timed step recomputes a
    // full window; its samples must equal the cached generator's.
    const int64_t total = rf + naive_samples;
    torch::Tensor ncond = Conditioning(b, total, sr);
    torch::Tensor prompt =
        MuLawEncode(0.3 * torch::sin(torch::arange(rf, torch::kFloat) * (2 * M_PI * 220 / sr)))
            .unsqueeze(0)
            .expand({b, rf})
            .contiguous();
    start = std::chrono::steady_clock::now();
    GenerationResult naive =
        *NaiveGenerate(decoder, ncond, z, at::detail::createCPUGenerator(7), {}, false, prompt);
    const double naive_rate = static_cast<double>(naive_samples) / Seconds(start);
    GenerationResult check =
        *cached->Generate(ncond, z, at::detail::createCPUGenerator(7), false, prompt);
    samples_agree = check.classes.equal(naive.classes);
    std::printf("  naive recomputation: %lld samples: %.2f samples/s, real-time factor %.6f; "
                "samples %s the cached generator's\n",
                static_cast<long long>(naive_samples), naive_rate, naive_rate / sr,
                samples_agree ? "equal" : "DIFFER FROM");
    std::printf("  => cached / naive speedup: %.0fx (target >= 50x)\n", cached_rate / naive_rate);
  }

  // --- parallel -------------------------------------------------------------
  // The preset's folded decoder against the same decoder unfolded (fold 1:
  // the stack at the audio rate), same seed and conditioning, at 1 torch
  // thread and at --threads.
  if (args.parallel) {
    ModelConfig folded = *ModelPreset(name, DecoderKind::kParallel);
    ModelConfig unfolded = folded;
    unfolded.decoder.fold = 1;
    std::vector<int> thread_counts = {1};
    if (args.threads > 1) thread_counts.push_back(args.threads);
    for (int threads : thread_counts) {
      torch::set_num_threads(threads);
      double rates[2] = {0, 0};
      for (int which = 0; which < (args.unfolded ? 2 : 1); ++which) {
        const ModelConfig& config = which == 0 ? folded : unfolded;
        torch::manual_seed(3);
        Autoencoder model = *MakeAutoencoder(config);
        model->eval();
        // The unfolded decoder is up to fold x slower: time less audio.
        const int64_t samples = which == 0 ? parallel_samples : parallel_samples / 5;
        torch::Tensor z = torch::randn({b, config.encoder.z_dim});
        torch::Tensor cond = Conditioning(b, samples, sr);
        // Warm-up (first-call allocations), then timed.
        (void)*RenderParallel(model->decoder(), cond.narrow(2, 0, sr / 4), z,
                              at::detail::createCPUGenerator(1));
        double seconds = 1e30;
        for (int rep = 0; rep < args.repeats; ++rep) {
          auto start = std::chrono::steady_clock::now();
          (void)*RenderParallel(model->decoder(), cond, z, at::detail::createCPUGenerator(1),
                                {.chunk_samples = args.chunk});
          seconds = std::min(seconds, Seconds(start));
        }
        const double audio_seconds = static_cast<double>(samples) * b / sr;
        rates[which] = audio_seconds / seconds;
        std::printf("%s parallel fold %d, %d thread%s: %lld parameters, receptive field %lld "
                    "samples; %.1f s of audio in %.3f s: real-time factor %.1f%s\n",
                    name.c_str(), config.decoder.fold, threads, threads == 1 ? "" : "s",
                    static_cast<long long>(model->ParameterCount()),
                    static_cast<long long>(model->receptive_field()), audio_seconds, seconds,
                    rates[which], which == 0 ? " (target >= 100)" : "");
      }
      if (args.unfolded) {
        std::printf("  => fold %d / fold 1 speedup at %d thread%s: %.1fx\n",
                    folded.decoder.fold, threads, threads == 1 ? "" : "s", rates[0] / rates[1]);
      }
    }
    torch::set_num_threads(args.threads);
  }
  std::fflush(stdout);
  return samples_agree;
}

}  // namespace
}  // namespace pianola

int main(int argc, char** argv) {
  pianola::Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--presets") {
      args.presets = absl::StrSplit(value, ',', absl::SkipEmpty());
    } else if (flag == "--threads" && absl::SimpleAtoi(value, &args.threads) && args.threads > 0) {
    } else if (flag == "--batch" && absl::SimpleAtoi(value, &args.batch) && args.batch > 0) {
    } else if (flag == "--kinds") {
      args.autoregressive = absl::StrContains(value, "autoregressive");
      args.parallel = absl::StrContains(value, "parallel");
    } else if (flag == "--unfolded" && (value == "yes" || value == "no")) {
      args.unfolded = value == "yes";
    } else if (flag == "--repeats" && absl::SimpleAtoi(value, &args.repeats) &&
               args.repeats > 0) {
    } else if (flag == "--chunk" && absl::SimpleAtoi(value, &args.chunk)) {
    } else {
      std::fprintf(stderr, "usage: generation_bench [--presets tiny,small,base] [--threads N] "
                           "[--batch B] [--kinds autoregressive,parallel] [--unfolded yes|no] "
                           "[--repeats N] [--chunk SAMPLES]\n");
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "generation_bench: flag %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  torch::set_num_threads(args.threads);
  torch::NoGradGuard no_grad;
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("generation_bench: %d torch threads (the cached CPU kernel is single-threaded), "
              "batch %d, OMP_WAIT_POLICY=%s\n", args.threads, args.batch,
              wait_policy != nullptr ? wait_policy : "(unset)");
  for (const std::string& preset : args.presets) {
    if (!pianola::ModelPreset(preset).ok()) {
      std::fprintf(stderr, "generation_bench: unknown preset %s\n", preset.c_str());
      return 2;
    }
    if (!pianola::RunPreset(preset, args)) {
      std::fprintf(stderr, "generation_bench: %s: the cached generator's samples differ from "
                           "naive recomputation's\n", preset.c_str());
      return 1;
    }
  }
  return 0;
}
