#include "trainer/block_filter_kernel.h"

#include <cstdint>

#include "trainer/kernel_clones.h"

namespace pianola {
namespace {

typedef float Vec __attribute__((vector_size(32)));
constexpr int64_t kLanes = sizeof(Vec) / sizeof(float);

PIANOLA_INLINE Vec Load(const float* p) {
  Vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

PIANOLA_INLINE float Sum(Vec v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

}  // namespace

PIANOLA_KERNEL_CLONES
void BlockFilterKernel(const float* x, int64_t blocks, int64_t f, const float* filters, int64_t m,
                       float* out, int64_t out_stride) {
  for (int64_t j = 0; j < blocks; ++j, x += f) {
    __builtin_prefetch(x + 512);
    for (int64_t row = 0; row < m; ++row) {
      const float* w = filters + row * f;
      Vec acc = Load(x) * Load(w);
      for (int64_t i = kLanes; i < f; i += kLanes) acc += Load(x + i) * Load(w + i);
      out[row * out_stride + j] = Sum(acc);
    }
  }
}

}  // namespace pianola
