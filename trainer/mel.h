#ifndef PIANOLA_TRAINER_MEL_H_
#define PIANOLA_TRAINER_MEL_H_

// Log-mel spectrogram for the timbre encoder, computed on the model's device.
//
// power = |STFT|² with a periodic Hann window of n_fft samples, hop `hop`,
// frames centred (reflect padding of n_fft / 2 at both ends, as torch.stft
// and librosa do); mel = filterbank · power; output log(mel + log_floor).
// The filterbank uses the HTK mel scale m(f) = 2595 log10(1 + f / 700):
// n_mels + 2 points equally spaced in mel between f_min and f_max, each filter
// a triangle in Hz rising from point i to a peak of 1 at point i+1 and falling
// to 0 at point i+2 (torchaudio's melscale_fbanks(norm=None, mel_scale="htk")).
//
// Module: owns its window and filterbank as buffers (they follow .to(device)
// and are not parameters). Not thread-safe for concurrent forward on one
// instance with autograd state; const use from many threads is fine.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "trainer/model_config.h"

namespace pianola {

// [n_mels, n_fft / 2 + 1] float32 triangular filters (see above).
torch::Tensor MelFilterbank(int n_fft, int n_mels, int sample_rate, double f_min, double f_max);

double HzToMel(double hz);
double MelToHz(double mel);

class LogMelSpectrogramImpl : public torch::nn::Module {
 public:
  LogMelSpectrogramImpl(const MelConfig& config, int sample_rate);

  // audio [B, L] float (L > n_fft / 2 for reflect padding) -> [B, n_mels, 1 + L / hop].
  torch::Tensor forward(const torch::Tensor& audio);

  const MelConfig& config() const { return config_; }
  int64_t NumFrames(int64_t samples) const { return 1 + samples / config_.hop; }

 private:
  MelConfig config_;
  torch::Tensor window_;      // [n_fft]
  torch::Tensor filterbank_;  // [n_mels, n_fft / 2 + 1]
};
TORCH_MODULE(LogMelSpectrogram);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_MEL_H_
