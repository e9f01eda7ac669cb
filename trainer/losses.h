#ifndef PIANOLA_TRAINER_LOSSES_H_
#define PIANOLA_TRAINER_LOSSES_H_

// Training losses for the two decoder kinds.
//
// - µ-law cross-entropy (autoregressive): mean over batch and positions.
// - Multi-resolution STFT loss (parallel), as in Parallel WaveGAN / DDSP: for
//   each resolution (fft_size, hop, win_length; periodic Hann window of
//   win_length centred in fft_size, centred frames with reflect padding)
//     |S| = sqrt(max(re² + im², 1e-7))
//     SC  = || |S_target| - |S_pred| ||_F / || |S_target| ||_F   (whole batch)
//     MAG = mean | log |S_target| - log |S_pred| |
//   and both averaged over the resolutions.
// - Waveform L1: mean |pred - target|.
//
// Pure functions; thread-safe. Inputs on any device; windows are built on
// the input's device per call.

#include <vector>

#include <torch/types.h>

#include "trainer/model_config.h"

namespace pianola {

// logits [B, Q, T], targets int64 [B, T] -> scalar.
torch::Tensor MuLawCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets);

struct StftLossTerms {
  torch::Tensor spectral_convergence;  // scalar
  torch::Tensor log_magnitude;         // scalar
};

// The magnitude |S| used by the loss: audio [B, T] -> [B, fft_size/2+1, frames].
torch::Tensor StftMagnitude(const torch::Tensor& audio, const StftResolution& resolution);

// pred, target [B, T] (T > fft_size / 2 for every resolution).
StftLossTerms StftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                       const StftResolution& resolution);
StftLossTerms MultiResolutionStftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                                      const std::vector<StftResolution>& resolutions);

torch::Tensor WaveformL1(const torch::Tensor& pred, const torch::Tensor& target);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_LOSSES_H_
