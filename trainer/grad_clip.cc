#include "trainer/grad_clip.h"

#include <torch/torch.h>

namespace pianola {

torch::Tensor ClipGradNormTensor(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return torch::Tensor();
  const torch::Tensor total = torch::linalg_vector_norm(torch::stack(torch::_foreach_norm(grads)));
  const torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
  torch::_foreach_mul_(grads, coef);
  return total;
}

double ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  const torch::Tensor total = ClipGradNormTensor(params, max_norm);
  return total.defined() ? total.item<double>() : 0.0;
}

}  // namespace pianola
