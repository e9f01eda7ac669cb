#ifndef PIANOLA_TRAINER_GENERATOR_H_
#define PIANOLA_TRAINER_GENERATOR_H_

// Audio generation from a trained decoder.
//
// AutoregressiveGenerator: fast WaveNet generation (Paine et al. 2016). Every
// layer keeps a queue of its recent inputs, so each new sample costs
// O(layers) matrix-vector work and the receptive field is never recomputed.
// The MIDI and z projections of every layer are computed ahead for a block
// of `block_samples` steps in one batched pass (they do not depend on the
// generated audio). On the CPU the per-sample step runs in
// WaveNetStepKernel (plain loops); on other devices it runs as tensor ops.
// Sampling: softmax(logits / temperature) by inverse CDF with uniforms drawn
// from a caller-seeded CPU torch::Generator, `block_samples` x B at a time;
// temperature <= 0 takes the argmax.
//
// NaiveGenerate: the same sampling, but each sample reruns the decoder's full
// forward pass over its receptive field. Only a test oracle and the
// benchmark baseline.
//
// RenderParallel: the parallel decoder over noise in one pass, or in chunks
// for long inputs. Chunks start on fold boundaries and read
// DecoderContextSamples more samples on each side (whole folded blocks), so
// every kept output sees all the inputs it depends on, folded as in one pass:
// the result equals one pass up to float rounding.
//
// A generator holds the decoder module (shared, not copied) and, for the CPU
// kernel, a snapshot of its weights taken at Create(): create a new one after
// changing the weights. Not thread-safe; use one per thread.

#include <cstdint>
#include <functional>
#include <memory>

#include <torch/types.h>

#include "absl/status/statusor.h"
#include "trainer/wavenet.h"

namespace pianola {

struct GeneratorOptions {
  // Softmax temperature; <= 0 means greedy (argmax).
  double temperature = 1.0;
  // Steps whose conditioning biases are precomputed together (memory:
  // layers x B x block x 2G floats); also the granularity of RNG draws.
  int64_t block_samples = 1024;
  enum class Engine { kAuto, kCpuKernel, kTensor };
  // kAuto: the CPU kernel when the decoder lives on the CPU, tensor ops otherwise.
  Engine engine = Engine::kAuto;
  // Called after each block with (samples done, total) per sequence.
  std::function<void(int64_t, int64_t)> on_progress;
};

// Conditioning read a span at a time: B sequences of T samples with C
// channels; `slice(start, n)` returns [B, C, n] (float, on any device: the
// generators move it to the decoder's). For renders too long to hold
// [B, C, T] whole: dense MIDI features take 708 bytes per sample, 41 GB for
// an hour at 16 kHz, so trainer/transfer.cc fills each span from the sparse
// events instead. `slice` may be called from several threads at once.
struct ConditioningSpans {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t length = 0;
  std::function<torch::Tensor(int64_t start, int64_t n)> slice;

  // The spans of a whole [B, C, T] tensor (kept by reference count).
  static ConditioningSpans Of(const torch::Tensor& cond);
};

struct GenerationResult {
  torch::Tensor classes;  // [B, T] int64 µ-law classes
  torch::Tensor audio;    // [B, T] float in [-1, 1]
  torch::Tensor logits;   // [B, Q, T] float, only when asked for
};

class AutoregressiveGenerator {
 public:
  // InvalidArgument unless `decoder` is autoregressive.
  static absl::StatusOr<std::unique_ptr<AutoregressiveGenerator>> Create(
      WaveNet decoder, GeneratorOptions options = {});
  ~AutoregressiveGenerator();

  // Generates T = cond.size(2) samples for each of B sequences.
  // cond [B, C, T]; z [B, z_dim] (undefined when the decoder has no z);
  // `rng` a CPU generator. `prompt` [B, P] int64 (optional, P <= T): the
  // classes of the first P samples, given rather than sampled (priming);
  // generation continues after them. The sample before t = 0 is silence.
  absl::StatusOr<GenerationResult> Generate(const torch::Tensor& cond, const torch::Tensor& z,
                                            torch::Generator rng, bool keep_logits = false,
                                            const torch::Tensor& prompt = {});
  // The same over conditioning read a block at a time.
  absl::StatusOr<GenerationResult> Generate(const ConditioningSpans& cond, const torch::Tensor& z,
                                            torch::Generator rng, bool keep_logits = false,
                                            const torch::Tensor& prompt = {});

  // The cached machinery under teacher forcing: inputs [B, T] int64 are the
  // decoder inputs (class of the previous sample at each position). Returns
  // logits [B, Q, T], equal to decoder->forward(inputs, cond, z) up to float
  // rounding.
  absl::StatusOr<torch::Tensor> ForcedLogits(const torch::Tensor& inputs,
                                             const torch::Tensor& cond, const torch::Tensor& z);

  bool uses_cpu_kernel() const { return use_kernel_; }

 private:
  struct TensorWeights;
  AutoregressiveGenerator(WaveNet decoder, GeneratorOptions options);
  absl::StatusOr<GenerationResult> Run(const ConditioningSpans& cond, const torch::Tensor& z,
                                       const torch::Tensor& initial, const torch::Tensor& prompt,
                                       torch::Generator* rng, bool keep_logits);

  WaveNet decoder_;
  GeneratorOptions options_;
  bool use_kernel_ = false;
  std::unique_ptr<TensorWeights> weights_;
};

// Oracle / baseline: recomputes the receptive field for every sample. Same
// arguments and results as AutoregressiveGenerator::Generate (prompted
// samples are not recomputed unless `keep_logits`).
absl::StatusOr<GenerationResult> NaiveGenerate(WaveNet decoder, const torch::Tensor& cond,
                                               const torch::Tensor& z, torch::Generator rng,
                                               const GeneratorOptions& options = {},
                                               bool keep_logits = false,
                                               const torch::Tensor& prompt = {});

// Draws a class from one row of logits: softmax(logits / temperature), inverse
// CDF at `u` in [0, 1); argmax when temperature <= 0. Shared by all engines.
int64_t SampleClass(const float* logits, int classes, double temperature, double u);

struct ParallelRenderOptions {
  // At most this many output samples per pass (rounded up to a multiple of
  // the decoder's fold); each pass also reads the decoder's context samples
  // on each side. <= 0: one pass however long the input. On the CPU with
  // more than one intra-op thread, the chunks are rendered concurrently, one
  // per thread, and the input is split evenly into a multiple of the threads'
  // count of passes (even an input shorter than this), as long as each pass
  // stays at least 4x the context long.
  int64_t chunk_samples = 1 << 16;
  // (samples done, total) after each chunk; calls are serialized, but may
  // come from the intra-op threads.
  std::function<void(int64_t, int64_t)> on_progress;
};

// Parallel decoder: noise ~ N(0, 1) [B, T] from the CPU generator `rng`,
// then waveform [B, T] (on the decoder's device), T = cond.size(2).
absl::StatusOr<torch::Tensor> RenderParallel(WaveNet decoder, const torch::Tensor& cond,
                                             const torch::Tensor& z, torch::Generator rng,
                                             const ParallelRenderOptions& options = {});
// The same over conditioning read a pass at a time.
absl::StatusOr<torch::Tensor> RenderParallel(WaveNet decoder, const ConditioningSpans& cond,
                                             const torch::Tensor& z, torch::Generator rng,
                                             const ParallelRenderOptions& options = {});

}  // namespace pianola

#endif  // PIANOLA_TRAINER_GENERATOR_H_
