#include "trainer/gate_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "trainer/kernel_clones.h"

namespace pianola {
namespace {

// Cephes expf: e^x = 2^n e^r with n = round(x / ln 2) and |r| <= ln 2 / 2,
// e^r by a degree-6 polynomial, 2^n built in the exponent bits. Branch-free
// (x clamped to where 2^n is a normal float; n rounded by the 1.5 * 2^23
// trick, which leaves n in the low mantissa bits) so loops over it vectorize.
// ExpInRange expects x in [-87.3365447, 88.3762626], Exp clamps to it.
PIANOLA_INLINE float ExpInRange(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const float shifted = x * 1.44269504088896341f + kRound;
  const float n = shifted - kRound;
  // r = x - n ln 2, with ln 2 split in two for precision.
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  const int32_t n_int = __builtin_bit_cast(int32_t, shifted) - __builtin_bit_cast(int32_t, kRound);
  return p * __builtin_bit_cast(float, (n_int + 127) << 23);
}

// std::max/std::min so the clamps compile to vmaxps/vminps.
PIANOLA_INLINE float Exp(float x) {
  return ExpInRange(std::min(std::max(x, -87.3365447f), 88.3762626f));
}

// 1 / (1 + e^-x) with x clamped to [-80, 80]: sigmoid(-80) = 1.8e-35, and
// no further. GCC if-converts the clamp in GateForwardKernel into a
// constant-folded path it evaluates for every vector, tanh(f) times
// sigmoid at the clamp; at Exp's own bound (-87.3) that product is
// subnormal, and a microcode assist on every vector made the loop 5.5x
// slower on an Intel Xeon (not on AMD).
PIANOLA_INLINE float Sigmoid(float x) {
  return 1.0f / (1.0f + ExpInRange(std::min(std::max(-x, -80.0f), 80.0f)));
}

// Cephes' odd polynomial for tanh below |x| = 0.625.
PIANOLA_INLINE float TanhPolynomial(float x) {
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  return p * z * x + x;
}

// Cephes tanhf: the polynomial below |x| = 0.625 (where 1 - 2/(e^2x + 1)
// would lose relative precision), the exp form above; both computed, one
// kept.
PIANOLA_INLINE float Tanh(float x) {
  const float ax = std::fabs(x);
  const float big = std::copysign(1.0f - 2.0f / (Exp(2.0f * ax) + 1.0f), x);
  const float small = TanhPolynomial(x);
  return ax > 0.625f ? big : small;
}

// tanh(f) * sigmoid(g) with one division: above |f| = 0.625, tanh|f| =
// (e - 1) / (e + 1) with e = e^2|f| (no cancellation there: e - 1 > 2.4),
// below it Cephes' polynomial over 1; sigmoid(g) = 1 / (1 + e^-g); the two
// fractions multiplied before the one division. |f| is clamped to 9 (where
// tanh rounds to within an ulp of 1), so e + 1 < 7e7; the denominator may
// then overflow to infinity only where sigmoid(g) < 1e-30, giving 0.
PIANOLA_INLINE float GateValue(float f, float g) {
  const float a = std::fabs(f);
  const float e = ExpInRange(2.0f * std::min(a, 9.0f));
  const bool big = a > 0.625f;
  const float numerator = big ? e - 1.0f : TanhPolynomial(a);
  const float denominator = (big ? e + 1.0f : 1.0f) * (1.0f + Exp(-g));
  return std::copysign(numerator / denominator, f);
}

}  // namespace

PIANOLA_KERNEL_CLONES
void GateKernel(const float* __restrict f, const float* __restrict g, int64_t n,
                float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = GateValue(f[i], g[i]);
}

PIANOLA_KERNEL_CLONES
void GateForwardKernel(const float* __restrict f, const float* __restrict g, int64_t n,
                       float* __restrict out, float* __restrict t, float* __restrict s) {
  for (int64_t i = 0; i < n; ++i) {
    const float ti = Tanh(f[i]);
    const float si = Sigmoid(g[i]);
    t[i] = ti;
    s[i] = si;
    out[i] = ti * si;
  }
}

PIANOLA_KERNEL_CLONES
void GateBackwardKernel(const float* __restrict grad_out, const float* __restrict t,
                        const float* __restrict s, int64_t n, float* __restrict grad_f,
                        float* __restrict grad_g) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = grad_out[i] * s[i];
    grad_f[i] = d * (1.0f - t[i] * t[i]);
    grad_g[i] = d * t[i] * (1.0f - s[i]);
  }
}

float GateExp(float x) { return Exp(x); }
float GateTanh(float x) { return Tanh(x); }
float GateSigmoid(float x) { return Sigmoid(x); }

}  // namespace pianola
