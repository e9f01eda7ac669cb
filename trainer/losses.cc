#include "trainer/losses.h"

#include <torch/torch.h>

#include "trainer/fused_stft_loss.h"

namespace pianola {

torch::Tensor MuLawCrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(logits, targets.to(torch::kLong));
}

torch::Tensor StftMagnitude(const torch::Tensor& audio, const StftResolution& r) {
  torch::Tensor window =
      torch::hann_window(r.win_length, torch::TensorOptions().dtype(torch::kFloat).device(audio.device()));
  torch::Tensor spec = torch::stft(audio.to(torch::kFloat), r.fft_size, r.hop, r.win_length, window,
                                   /*center=*/true, /*pad_mode=*/"reflect", /*normalized=*/false,
                                   /*onesided=*/true, /*return_complex=*/true);
  torch::Tensor power = torch::real(spec).square() + torch::imag(spec).square();
  return power.clamp_min(1e-7).sqrt();
}

StftLossTerms StftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                       const StftResolution& resolution) {
  if (FusedStftLossApplies(pred, target)) return FusedStftLoss(pred, target, resolution);
  torch::Tensor p = StftMagnitude(pred, resolution);
  torch::Tensor t = StftMagnitude(target, resolution);
  StftLossTerms terms;
  terms.spectral_convergence = (t - p).square().sum().sqrt() / t.square().sum().sqrt();
  terms.log_magnitude = (torch::log(t) - torch::log(p)).abs().mean();
  return terms;
}

StftLossTerms MultiResolutionStftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                                      const std::vector<StftResolution>& resolutions) {
  StftLossTerms total;
  total.spectral_convergence = torch::zeros({}, pred.options());
  total.log_magnitude = torch::zeros({}, pred.options());
  if (resolutions.empty()) return total;
  for (const StftResolution& r : resolutions) {
    StftLossTerms t = StftLoss(pred, target, r);
    total.spectral_convergence = total.spectral_convergence + t.spectral_convergence;
    total.log_magnitude = total.log_magnitude + t.log_magnitude;
  }
  const double n = static_cast<double>(resolutions.size());
  total.spectral_convergence = total.spectral_convergence / n;
  total.log_magnitude = total.log_magnitude / n;
  return total;
}

torch::Tensor WaveformL1(const torch::Tensor& pred, const torch::Tensor& target) {
  return (pred - target).abs().mean();
}

}  // namespace pianola
