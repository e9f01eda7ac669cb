#ifndef PIANOLA_TRAINER_BLOCK_FILTER_KERNEL_H_
#define PIANOLA_TRAINER_BLOCK_FILTER_KERNEL_H_

// The folded decoder's per-channel filter bank on the CPU: each block of F
// consecutive samples of a channel, dotted with M filters of F taps
// (a strided convolution, kernel F, stride F):
//
//   out[m][j] = sum_i filters[m][i] * x[j * F + i]
//
// Without autograd this replaces a batched matrix product with M = 2 rows
// per channel, which spent most of its time in MKL's per-call overhead and
// C update (three to four times the time of reading the features once,
// docs/perf.md); the loop here is bound by reading them. In training the
// filters' gradient is the same pass over the features, each block scaled by
// its output's gradient (BlockFilterGradKernel).
//
// Torch-free plain C++ (GCC vector extensions), compiled -O3 with an AVX2 +
// FMA clone (kernel_clones.h). Thread-safe (no state).

#include <cstdint>

namespace pianola {

// x: `blocks` * f samples of one channel; filters: [m, f] row-major; out: m
// rows of `blocks` values, `out_stride` floats apart. f must be a multiple
// of 8.
void BlockFilterKernel(const float* x, int64_t blocks, int64_t f, const float* filters, int64_t m,
                       float* out, int64_t out_stride);

// The filters' gradient from one channel: grad_filters[row][i] += sum over
// j < blocks of grad[row * grad_stride + j] * x[j * f + i]; grad_filters is
// [m, f] row-major. f must be a multiple of 8 and at most 64.
void BlockFilterGradKernel(const float* x, int64_t blocks, int64_t f, const float* grad,
                           int64_t m, int64_t grad_stride, float* grad_filters);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_BLOCK_FILTER_KERNEL_H_
