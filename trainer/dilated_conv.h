#ifndef PIANOLA_TRAINER_DILATED_CONV_H_
#define PIANOLA_TRAINER_DILATED_CONV_H_

// A WaveNet layer's gate pre-activation with autograd:
//
//   a = conv1d(pad(x, left, right), weight, dilation) + cond_weight · hidden + bias
//
// x [B, R, T_in], weight [2G, R, k], cond_weight [2G, H, 1] and hidden
// [B, H, T_out] (both undefined without MIDI features), bias [B, 2G] (the
// conv bias plus the z bias of each item); a is [B, 2G, T_out] with
// T_out = left + T_in + right - (k - 1) * dilation.
//
// Float on the CPU runs on trainer/gated_layer_kernel.h's products: the
// forward is one product over the MIDI rows and one shifted view per tap of
// x, read in place (a view whose time steps are adjacent is not copied; the
// kernel supplies the padding's zeros); the input gradient is the same
// product with the taps' transposed weights over shifted views of the output
// gradient; the weight gradients are dot products over time (RowDots) over
// the steps where x has columns. mkldnn's conv1d
// and its backward run WaveNet's shapes (48-64 channels, a few hundred to a
// few thousand steps per item) at a fraction of the core's rate
// (docs/perf.md). With one tap and no padding it is a 1x1 convolution:
// WaveNet's residual, skip, head, input and MIDI hidden convolutions in
// training (the input gradient is skipped for an input that needs none).
// Callers check DilatedConvApplies and otherwise use torch's conv1d and 1x1
// conv (CUDA, autocast, double): the same function.

#include <cstdint>

#include <torch/types.h>

namespace pianola {

// True for float CPU tensors outside CPU autocast.
bool DilatedConvApplies(const torch::Tensor& x, const torch::Tensor& weight);

torch::Tensor DilatedConv(const torch::Tensor& x, int64_t pad_left, int64_t pad_right,
                          int64_t dilation, const torch::Tensor& weight,
                          const torch::Tensor& cond_weight, const torch::Tensor& hidden,
                          const torch::Tensor& bias);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_DILATED_CONV_H_
