#ifndef PIANOLA_TRAINER_FOLDED_FEATURES_H_
#define PIANOLA_TRAINER_FOLDED_FEATURES_H_

// The folded decoder's MIDI filter bank (WaveNetImpl::ConditioningHidden):
// each channel's blocks of F samples dotted with M filters of F taps, a
// strided convolution (kernel F, stride F) per channel:
//
//   out[b, c * M + m, j] = sum_i filters[m, 0, i] * cond[b, c, j * F + i]
//
// cond [B, C, T] -> [B, C * M, T'] with T' = ceil(T / F), the partial last
// block zero-padded. On the CPU in float, one pass of BlockFilterKernel over
// the features forward, and one of BlockFilterGradKernel for the filters'
// gradient (an autograd node; the features never need one). torch's bmm
// over the blocks (what other devices and types use) spends most of its
// time in per-call overhead on these M = 2 row products (docs/perf.md).
// Deterministic: the filter gradient's partial sums are over fixed groups of
// channels, added in order, for any thread count.

#include <torch/types.h>

namespace pianola {

// True for float CPU features and filters outside CPU autocast, F a
// multiple of 8 and at most 64.
bool FoldedFeaturesApplies(const torch::Tensor& cond, const torch::Tensor& filters);

// cond [B, C, T] (read in place when time is contiguous), filters [M, 1, F].
torch::Tensor FoldedFeatures(const torch::Tensor& cond, const torch::Tensor& filters);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_FOLDED_FEATURES_H_
