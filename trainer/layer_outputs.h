#ifndef PIANOLA_TRAINER_LAYER_OUTPUTS_H_
#define PIANOLA_TRAINER_LAYER_OUTPUTS_H_

// A WaveNet layer's two outputs in training, from its gate output, as one
// autograd node (trainer/wavenet.cc's cropped forward, the layers between
// the first and the last):
//
//   x_next = scale · (W_res · gated + b_res + x_prev[:, :, res_offset:])
//   skip   = W_skip · gated[:, :, skip_offset:] + b_skip + skip_prev
//
// gated [B, G, L], x_prev [B, R, res_offset + L], skip_prev [B, S, N] with
// skip_offset + N = L; W_res [R, G, 1], W_skip [S, G, 1] (1x1 convolutions'
// weights). x_next is [B, R, L], skip [B, S, N].
//
// The same arithmetic as the 1x1 DilatedConvs, in-place additions and
// scaling it replaces (the forward gives the same bits), but the backward
// makes gated's gradient in one product over both output gradients
// ([scale W_res^T | W_skip^T] over g_x and g_s read at a column offset, the
// kernel's zeros before it) and x_prev's in one pass, where autograd built
// zero-filled full-size gradients for the two narrowed views, copied into
// them and added them up (docs/perf.md, "Training throughput").
// Float on the CPU only (LayerOutputsApply); elsewhere the caller composes
// the convolutions.

#include <cstdint>
#include <utility>

#include <torch/types.h>

namespace pianola {

// True for float CPU tensors outside CPU autocast.
bool LayerOutputsApply(const torch::Tensor& gated, const torch::Tensor& w_res);

// {x_next, skip}. b_res and b_skip [R], [S].
std::pair<torch::Tensor, torch::Tensor> LayerOutputs(
    const torch::Tensor& gated, const torch::Tensor& x_prev, int64_t res_offset,
    const torch::Tensor& skip_prev, int64_t skip_offset, const torch::Tensor& w_res,
    const torch::Tensor& b_res, const torch::Tensor& w_skip, const torch::Tensor& b_skip,
    double scale);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_LAYER_OUTPUTS_H_
