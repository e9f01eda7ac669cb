#include "trainer/stft_loss_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "trainer/kernel_clones.h"
#include "trainer/vec8.h"

namespace pianola {
namespace {

// Cephes logf for a positive normal x = m 2^e, m in [sqrt(1/2), sqrt(2)):
// log(1 + (m - 1)) by a degree-9 polynomial, plus e ln 2 with ln 2 split in
// two for precision. Branch-free (the mantissa's range chosen by a select)
// so loops over it vectorize. Infinity and NaN are returned as they are.
PIANOLA_INLINE float Log(float x) {
  const int32_t bits = __builtin_bit_cast(int32_t, x);
  float e = static_cast<float>((bits >> 23) - 126);
  float m = __builtin_bit_cast(float, (bits & 0x007fffff) | 0x3f000000);  // in [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1.0f : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  const float r = m + y + 0.693359375f * e;
  return x < std::numeric_limits<float>::infinity() ? r : x;
}

// |S|² at least the floor; NaN stays NaN (std::max keeps its first
// argument unless it is less than the second).
PIANOLA_INLINE float FlooredPower(float re, float im) {
  return std::max(re * re + im * im, kStftPowerFloor);
}

// One bin's gradient (StftLossGradRow), times `scale`.
PIANOLA_INLINE void BinGrad(const float* pred, float t, float sc_coef, float log_coef,
                            float scale, float* grad) {
  const float re = pred[0], im = pred[1];
  const float power = re * re + im * im;
  const float p = std::sqrt(std::max(power, kStftPowerFloor));
  const float d = t - p;
  const float sign = d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
  const float g = power >= kStftPowerFloor ? (-sc_coef * d - log_coef * sign / p) / p * scale
                                           : 0.0f;
  grad[0] = g * re;
  grad[1] = g * im;
}

// Σ v[0, n) for n a multiple of 8: eight partial sums, in a fixed order.
PIANOLA_INLINE float Sum(const float* v, int64_t n) {
  Vec8 acc{};
  for (int64_t k = 0; k < n; k += 8) acc += LoadVec8(v + k);
  return SumVec8(acc);
}

}  // namespace

int64_t StftRowScratchFloats(int64_t bins) { return (bins + 7) / 8 * 8; }

PIANOLA_KERNEL_CLONES
StftRowSums StftLossRow(const float* __restrict pred, const float* __restrict target,
                        int64_t bins, float* __restrict target_magnitude,
                        float* __restrict scratch) {
  const int64_t padded = StftRowScratchFloats(bins);
  float* __restrict diff = scratch;
  float* __restrict squares = scratch + padded;
  float* __restrict logs = scratch + 2 * padded;
  for (int64_t k = 0; k < bins; ++k) {
    const float pp = FlooredPower(pred[2 * k], pred[2 * k + 1]);
    const float tp = FlooredPower(target[2 * k], target[2 * k + 1]);
    const float p = std::sqrt(pp), t = std::sqrt(tp);
    target_magnitude[k] = t;
    diff[k] = (t - p) * (t - p);
    squares[k] = t * t;
    logs[k] = 0.5f * std::fabs(Log(tp) - Log(pp));  // log t - log p
  }
  for (int64_t k = bins; k < padded; ++k) diff[k] = squares[k] = logs[k] = 0.0f;
  return {Sum(diff, padded), Sum(squares, padded), Sum(logs, padded)};
}

PIANOLA_KERNEL_CLONES
void StftLossGradRow(const float* __restrict pred, const float* __restrict target_magnitude,
                     int64_t bins, float sc_coef, float log_coef, float edge_scale,
                     float inner_scale, bool nyquist, float* __restrict grad) {
  const int64_t inner_end = nyquist ? bins - 1 : bins;
  for (int64_t k = 1; k < inner_end; ++k) {
    BinGrad(pred + 2 * k, target_magnitude[k], sc_coef, log_coef, inner_scale, grad + 2 * k);
  }
  BinGrad(pred, target_magnitude[0], sc_coef, log_coef, edge_scale, grad);
  if (nyquist && bins > 1) {
    const int64_t k = bins - 1;
    BinGrad(pred + 2 * k, target_magnitude[k], sc_coef, log_coef, edge_scale, grad + 2 * k);
  }
}

PIANOLA_KERNEL_CLONES
void OverlapAddFrames(const float* __restrict frames, int64_t n_frames, int64_t fft_size,
                      int64_t hop, const float* __restrict window, int64_t left,
                      int64_t win_length, float* __restrict padded) {
  for (int64_t f = 0; f < n_frames; ++f) {
    const float* in = frames + f * fft_size + left;
    float* out = padded + f * hop + left;
    for (int64_t w = 0; w < win_length; ++w) out[w] += in[w] * window[w];
  }
}

void ReflectPadBackward(const float* padded, int64_t length, int64_t pad, float* out) {
  std::copy(padded + pad, padded + pad + length, out);
  // padded[pad - i] and padded[pad + length - 1 + i] are x[i] and
  // x[length - 1 - i] again, for i in [1, pad].
  for (int64_t i = 1; i <= pad; ++i) {
    out[i] += padded[pad - i];
    out[length - 1 - i] += padded[pad + length - 1 + i];
  }
}

float StftLog(float x) { return Log(x); }

}  // namespace pianola
