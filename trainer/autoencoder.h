#ifndef PIANOLA_TRAINER_AUTOENCODER_H_
#define PIANOLA_TRAINER_AUTOENCODER_H_

// The whole Pianola model: timbre encoder (reference -> z) + WaveNet decoder
// (MIDI features + z -> audio), with the training forward pass (teacher
// forcing) and the loss for either decoder kind.
//
// A training example (see the data request): target audio of N = R + L
// samples, the first R = ContextSamples(config) of them context, MIDI
// features [C, N] aligned to it, and a reference clip of the same timbre.
//   autoregressive: inputs = µ-law classes of audio[0 .. N-2], conditioning
//     features[1 .. N-1]; logits for samples 1 .. N-1; cross-entropy on the
//     last L samples (each with its full receptive field of real context).
//   parallel: noise [B, N] ~ N(0, 1) from the caller's generator; waveform
//     for all N samples; STFT loss (+ optional L1) on the last L samples.
//
// Module; owns encoder and decoder. Not thread-safe for concurrent training;
// the training loop owns the instance (DDP replicas each have their own).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "absl/status/statusor.h"
#include "trainer/model_config.h"
#include "trainer/timbre_encoder.h"
#include "trainer/wavenet.h"

namespace pianola {

// One training batch on the model's device.
struct ModelBatch {
  torch::Tensor audio;         // [B, N] float in [-1, 1], N = context + L
  torch::Tensor conditioning;  // [B, C, N] float MIDI features (undefined if C == 0)
  torch::Tensor reference;     // [B, Lr] float in [-1, 1]
};

struct LossOutput {
  torch::Tensor total;  // scalar, what backward() runs on
  // Named unweighted terms ("cross_entropy", "spectral_convergence",
  // "log_magnitude", "waveform_l1"), scalars, detached: for metrics.
  std::vector<std::pair<std::string, torch::Tensor>> terms;
};

class AutoencoderImpl : public torch::nn::Module {
 public:
  // `config` must pass Validate() (throws c10::Error otherwise; use
  // MakeAutoencoder for a Status).
  explicit AutoencoderImpl(const ModelConfig& config);

  // reference [B, Lr] -> z [B, z_dim].
  torch::Tensor Encode(const torch::Tensor& reference);

  // Teacher-forced forward: autoregressive logits [B, Q, N-1] for samples
  // 1..N-1, or parallel waveform [B, N]. `noise_rng`: the parallel decoder's
  // noise source (nullopt: the default generator). `first_output` > 0: only
  // the outputs from that position on (WaveNet::forward), as Loss asks.
  torch::Tensor forward(const ModelBatch& batch, std::optional<torch::Generator> noise_rng = {},
                        int64_t first_output = 0);

  // Loss over the last N - context samples. InvalidArgument for shapes that do
  // not fit the config (naming the field); Internal for torch errors.
  absl::StatusOr<LossOutput> Loss(const ModelBatch& batch,
                                  std::optional<torch::Generator> noise_rng = {});

  const ModelConfig& config() const { return config_; }
  TimbreEncoder encoder() const { return encoder_; }
  WaveNet decoder() const { return decoder_; }
  int64_t receptive_field() const { return DecoderReceptiveField(config_.decoder); }
  int64_t context_samples() const { return ContextSamples(config_); }
  int64_t ParameterCount() const;

 private:
  absl::Status CheckBatch(const ModelBatch& batch) const;

  ModelConfig config_;
  TimbreEncoder encoder_{nullptr};
  WaveNet decoder_{nullptr};
};
TORCH_MODULE(Autoencoder);

// Validates `config` and builds the model (on the CPU; move with ->to()).
absl::StatusOr<Autoencoder> MakeAutoencoder(const ModelConfig& config);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_AUTOENCODER_H_
