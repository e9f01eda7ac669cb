#include "trainer/fused_adam.h"

#include <utility>

#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <torch/torch.h>

namespace pianola {
namespace {

// The fused kernel's arguments for one parameter group: every parameter with
// a gradient, its state (created as libtorch's Adam or AdamW creates it: the
// State type must be the one their save() and load() use), and its step
// count after this step as a float scalar tensor on its device.
struct GroupTensors {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
};

template <typename State, typename StateMap>
GroupTensors Collect(const std::vector<torch::Tensor>& group_params, bool amsgrad,
                     StateMap& state) {
  GroupTensors t;
  for (const torch::Tensor& p : group_params) {
    if (!p.grad().defined()) continue;
    TORCH_CHECK(!p.grad().is_sparse(), "FusedAdam does not support sparse gradients");
    auto& slot = state[p.unsafeGetTensorImpl()];
    if (slot == nullptr) {
      auto fresh = std::make_unique<State>();
      fresh->step(0);
      fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      if (amsgrad) fresh->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      slot = std::move(fresh);
    }
    auto& s = static_cast<State&>(*slot);
    s.step(s.step() + 1);
    t.params.push_back(p);
    t.grads.push_back(p.grad());
    t.exp_avgs.push_back(s.exp_avg());
    t.exp_avg_sqs.push_back(s.exp_avg_sq());
    if (amsgrad) t.max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
    t.steps.push_back(torch::full({}, static_cast<double>(s.step()),
                                  p.options().dtype(torch::kFloat)));
  }
  return t;
}

template <typename Options, typename State, typename Kernel, typename StateMap>
torch::Tensor FusedStep(std::vector<torch::optim::OptimizerParamGroup>& groups,
                        StateMap& state, const torch::optim::Optimizer::LossClosure& closure,
                        Kernel kernel) {
  torch::Tensor loss;
  if (closure != nullptr) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  torch::NoGradGuard no_grad;
  for (torch::optim::OptimizerParamGroup& group : groups) {
    const auto& o = static_cast<const Options&>(group.options());
    GroupTensors t = Collect<State>(group.params(), o.amsgrad(), state);
    if (t.params.empty()) continue;
    kernel(t.params, t.grads, t.exp_avgs, t.exp_avg_sqs, t.max_exp_avg_sqs, t.steps, o.lr(),
           std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(), o.eps(),
           o.amsgrad(), /*maximize=*/false, std::nullopt, std::nullopt);
  }
  return loss;
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  return FusedStep<torch::optim::AdamOptions, torch::optim::AdamParamState>(
      param_groups_, state_, closure,
      [](auto&&... args) { at::_fused_adam_(std::forward<decltype(args)>(args)...); });
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  return FusedStep<torch::optim::AdamWOptions, torch::optim::AdamWParamState>(
      param_groups_, state_, closure,
      [](auto&&... args) { at::_fused_adamw_(std::forward<decltype(args)>(args)...); });
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerOptions& options,
                                                       const std::vector<torch::Tensor>& params) {
  if (options.kind == OptimizerKind::kAdamW) {
    return std::make_unique<FusedAdamW>(params, torch::optim::AdamWOptions(options.lr)
                                                    .betas({options.beta1, options.beta2})
                                                    .eps(options.eps)
                                                    .weight_decay(options.weight_decay));
  }
  return std::make_unique<FusedAdam>(params, torch::optim::AdamOptions(options.lr)
                                                .betas({options.beta1, options.beta2})
                                                .eps(options.eps)
                                                .weight_decay(options.weight_decay));
}

}  // namespace pianola
