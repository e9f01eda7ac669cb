#include "trainer/mel.h"

#include <cmath>
#include <vector>

#include <torch/torch.h>

namespace pianola {

double HzToMel(double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); }
double MelToHz(double mel) { return 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0); }

torch::Tensor MelFilterbank(int n_fft, int n_mels, int sample_rate, double f_min, double f_max) {
  if (f_max <= 0) f_max = sample_rate / 2.0;
  const int bins = n_fft / 2 + 1;
  const double mel_lo = HzToMel(f_min);
  const double mel_hi = HzToMel(f_max);
  std::vector<double> points(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) {
    points[i] = MelToHz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1));
  }
  torch::Tensor fb = torch::zeros({n_mels, bins}, torch::kFloat);
  auto a = fb.accessor<float, 2>();
  for (int m = 0; m < n_mels; ++m) {
    const double left = points[m], center = points[m + 1], right = points[m + 2];
    for (int k = 0; k < bins; ++k) {
      const double f = static_cast<double>(k) * sample_rate / n_fft;
      const double up = (f - left) / (center - left);
      const double down = (right - f) / (right - center);
      a[m][k] = static_cast<float>(std::max(0.0, std::min(up, down)));
    }
  }
  return fb;
}

LogMelSpectrogramImpl::LogMelSpectrogramImpl(const MelConfig& config, int sample_rate)
    : config_(config) {
  window_ = register_buffer("window", torch::hann_window(config.n_fft, /*periodic=*/true));
  filterbank_ = register_buffer(
      "filterbank",
      MelFilterbank(config.n_fft, config.n_mels, sample_rate, config.f_min, config.f_max));
}

torch::Tensor LogMelSpectrogramImpl::forward(const torch::Tensor& audio) {
  torch::Tensor x = audio.dim() == 1 ? audio.unsqueeze(0) : audio;
  torch::Tensor spec = torch::stft(x.to(torch::kFloat), config_.n_fft, config_.hop, config_.n_fft,
                                   window_, /*center=*/true, /*pad_mode=*/"reflect",
                                   /*normalized=*/false, /*onesided=*/true,
                                   /*return_complex=*/true);
  torch::Tensor power = torch::real(spec).square() + torch::imag(spec).square();  // [B, F, T]
  torch::Tensor mel = torch::matmul(filterbank_, power);                         // [B, M, T]
  return torch::log(mel + config_.log_floor);
}

}  // namespace pianola
