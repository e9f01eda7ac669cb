#ifndef PIANOLA_TRAINER_FUSED_ADAM_H_
#define PIANOLA_TRAINER_FUSED_ADAM_H_

// Adam and AdamW whose step() runs ATen's fused multi-tensor kernels
// (_fused_adam_ / _fused_adamw_, the kernels of torch.optim.Adam(fused=True)
// on CPU and CUDA: one vectorized pass over each parameter) instead of
// libtorch's per-parameter chain of seven tensor operations. A small model's
// optimizer step becomes two dozen calls instead of hundreds.
//
// Same options and the same per-parameter state (AdamParamState or
// AdamWParamState, as the libtorch class saves and loads it: step,
// exp_avg, exp_avg_sq, max_exp_avg_sq with amsgrad) as torch::optim::Adam and
// AdamW, so save()/load() and checkpoints are theirs; the update rule is
// theirs too (bias-corrected moments, L2 weight decay for Adam, decoupled for
// AdamW), equal to rounding. Parameters without a gradient are skipped.
// Not thread-safe (as any optimizer).

#include <memory>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "trainer/experiment_config.h"

namespace pianola {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// The optimizer `options` names (FusedAdam or FusedAdamW) over `params`.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const OptimizerOptions& options,
                                                       const std::vector<torch::Tensor>& params);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_FUSED_ADAM_H_
