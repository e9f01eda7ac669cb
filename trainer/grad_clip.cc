#include "trainer/grad_clip.h"

#include <torch/torch.h>

namespace pianola {

double ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  const torch::Tensor total = torch::linalg_vector_norm(torch::stack(torch::_foreach_norm(grads)));
  const torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
  torch::_foreach_mul_(grads, coef);
  return total.item<double>();
}

}  // namespace pianola
