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

}  // namespace pianola
