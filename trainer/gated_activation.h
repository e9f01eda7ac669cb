#ifndef PIANOLA_TRAINER_GATED_ACTIVATION_H_
#define PIANOLA_TRAINER_GATED_ACTIVATION_H_

// The WaveNet gate with autograd: tanh(a[:, :G]) * sigmoid(a[:, G:]) for a
// [B, 2G, T] -> [B, G, T].
//
// A float CPU tensor goes through the fused kernels of trainer/gate_kernel.h
// (one pass forward, one backward, rows split over torch's intra-op
// threads); when autograd records it, it keeps tanh and sigmoid of the
// input ([B, 2G, T]) for the backward pass instead of the input. Anything else (CUDA, bf16 under
// autocast, double) takes the composite tensor operations. Both compute the
// same function; the fused kernels' tanh and exp are Cephes' approximations
// (a few ulp from ATen's), and neither is twice differentiable here.
// Deterministic: the values do not depend on the thread count.

#include <cstdint>

#include <torch/types.h>

namespace pianola {

torch::Tensor GatedActivation(const torch::Tensor& a, int64_t g);

// The same without autograd, written into `out` (a contiguous [B, G, T]
// tensor of a's type and device; may not alias `a`): for inference loops
// that reuse one buffer.
void GatedActivationOut(const torch::Tensor& a, int64_t g, torch::Tensor& out);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_GATED_ACTIVATION_H_
