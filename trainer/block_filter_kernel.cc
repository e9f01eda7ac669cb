#include "trainer/block_filter_kernel.h"

#include <cstdint>

#include "trainer/kernel_clones.h"
#include "trainer/vec8.h"

namespace pianola {
namespace {

constexpr int64_t kLanes = sizeof(Vec8) / sizeof(float);

}  // namespace

PIANOLA_KERNEL_CLONES
void BlockFilterKernel(const float* x, int64_t blocks, int64_t f, const float* filters, int64_t m,
                       float* out, int64_t out_stride) {
  for (int64_t j = 0; j < blocks; ++j, x += f) {
    __builtin_prefetch(x + 512);
    for (int64_t row = 0; row < m; ++row) {
      const float* w = filters + row * f;
      Vec8 acc = LoadVec8(x) * LoadVec8(w);
      for (int64_t i = kLanes; i < f; i += kLanes) acc += LoadVec8(x + i) * LoadVec8(w + i);
      out[row * out_stride + j] = SumVec8(acc);
    }
  }
}

PIANOLA_KERNEL_CLONES
void BlockFilterGradKernel(const float* x, int64_t blocks, int64_t f, const float* grad,
                           int64_t m, int64_t grad_stride, float* grad_filters) {
  constexpr int64_t kMaxVectors = 8;  // f <= 64
  const int64_t vectors = f / kLanes;
  for (int64_t row = 0; row < m; ++row) {
    const float* g = grad + row * grad_stride;
    // Two sets of partial sums (even and odd blocks): two chains of FMAs
    // per vector of the filter instead of one.
    Vec8 even[kMaxVectors] = {}, odd[kMaxVectors] = {};
    int64_t j = 0;
    for (; j + 2 <= blocks; j += 2) {
      const float* xj = x + j * f;
      __builtin_prefetch(xj + 512);
      for (int64_t v = 0; v < vectors; ++v) {
        even[v] += g[j] * LoadVec8(xj + v * kLanes);
        odd[v] += g[j + 1] * LoadVec8(xj + f + v * kLanes);
      }
    }
    if (j < blocks) {
      for (int64_t v = 0; v < vectors; ++v) even[v] += g[j] * LoadVec8(x + j * f + v * kLanes);
    }
    for (int64_t v = 0; v < vectors; ++v) {
      float* out = grad_filters + row * f + v * kLanes;
      StoreVec8(out, LoadVec8(out) + (even[v] + odd[v]));
    }
  }
}

}  // namespace pianola
