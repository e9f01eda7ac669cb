#ifndef PIANOLA_TRAINER_VEC8_H_
#define PIANOLA_TRAINER_VEC8_H_

// Eight floats as a GCC vector for the torch-free CPU kernels
// (trainer/gated_layer_kernel.cc, trainer/block_filter_kernel.cc): one
// register in their AVX2 clone, two SSE registers in the baseline one
// (trainer/kernel_clones.h); and sixteen, one register of the 512-bit
// variants. Files including this compile with -Wno-psabi: the helpers are
// always inlined, so no vector crosses a call.

#include "trainer/kernel_clones.h"

namespace pianola {

typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));

// Floats in a vector type.
template <typename V>
inline constexpr int kVecLanes = sizeof(V) / sizeof(float);

// Unaligned load and store.
template <typename V>
PIANOLA_INLINE V LoadVec(const float* p) {
  V v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}

template <typename V>
PIANOLA_INLINE void StoreVec(float* p, V v) {
  __builtin_memcpy(p, &v, sizeof v);
}

PIANOLA_INLINE Vec8 LoadVec8(const float* p) { return LoadVec<Vec8>(p); }
PIANOLA_INLINE void StoreVec8(float* p, Vec8 v) { StoreVec(p, v); }

// Horizontal sum.
PIANOLA_INLINE float SumVec8(Vec8 v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

}  // namespace pianola

#endif  // PIANOLA_TRAINER_VEC8_H_
