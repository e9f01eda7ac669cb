#include "trainer/mulaw.h"

#include <cmath>

#include <torch/torch.h>

namespace pianola {

torch::Tensor MuLawCompand(const torch::Tensor& audio, int levels) {
  const double mu = levels - 1;
  torch::Tensor x = audio.to(torch::kFloat).clamp(-1.0, 1.0);
  return torch::sign(x) * torch::log1p(mu * x.abs()) / std::log1p(mu);
}

torch::Tensor MuLawExpand(const torch::Tensor& companded, int levels) {
  const double mu = levels - 1;
  torch::Tensor y = companded.to(torch::kFloat).clamp(-1.0, 1.0);
  return torch::sign(y) * torch::expm1(y.abs() * std::log1p(mu)) / mu;
}

torch::Tensor MuLawEncode(const torch::Tensor& audio, int levels) {
  const double mu = levels - 1;
  torch::Tensor y = MuLawCompand(audio, levels);
  return torch::round((y + 1.0) * (mu / 2.0)).clamp(0, mu).to(torch::kLong);
}

torch::Tensor MuLawClassToCompanded(const torch::Tensor& classes, int levels) {
  const double mu = levels - 1;
  return classes.to(torch::kFloat) * (2.0 / mu) - 1.0;
}

torch::Tensor MuLawDecode(const torch::Tensor& classes, int levels) {
  return MuLawExpand(MuLawClassToCompanded(classes, levels), levels);
}

}  // namespace pianola
