#ifndef PIANOLA_TRAINER_GRAD_CLIP_H_
#define PIANOLA_TRAINER_GRAD_CLIP_H_

// Gradient clipping by global L2 norm with multi-tensor (foreach) kernels:
// torch::nn::utils::clip_grad_norm_'s result (total norm of all gradients;
// every gradient scaled by min(1, max_norm / (norm + 1e-6))) in four calls
// instead of two per parameter. `max_norm` may be +infinity (measure only).
// Parameters without a gradient are skipped; returns 0 when none has one.
// A non-finite norm is returned as is (the gradients then hold non-finite
// values too); the caller decides what to do with the step.
//
// ClipGradNormTensor is the same without reading the norm back: it returns
// the norm as a 0-dim tensor on the gradients' device (an undefined tensor
// when no parameter has a gradient) and never synchronizes with the device,
// so a CUDA graph can capture it (trainer/cuda_graph_step.h).

#include <vector>

#include <torch/types.h>

namespace pianola {

double ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm);
torch::Tensor ClipGradNormTensor(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_GRAD_CLIP_H_
