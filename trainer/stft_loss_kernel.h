#ifndef PIANOLA_TRAINER_STFT_LOSS_KERNEL_H_
#define PIANOLA_TRAINER_STFT_LOSS_KERNEL_H_

// The STFT loss's arithmetic outside the FFTs, on the CPU, one row (one
// frame's `bins` = fft_size/2 + 1 bins) at a time (losses.h has the loss):
//
//   forward:  p = sqrt(max(|P|², 1e-7)), t = the same of T, and the row's
//             sums of (t - p)², t² and |log t - log p|;
//   backward: the gradient with respect to P's real and imaginary parts,
//             scaled for the inverse real FFT that takes it back to the
//             frames (StftLossGradRow);
//   the frames' overlap-add and the reflect padding's backward.
//
// Where tensor operations make a dozen passes over the spectra (and
// zero-fill full-size gradients for real()/imag() and the framing's
// as_strided view), these make one forward and one backward.
// Torch-free plain loops (-O3, cloned for AVX2 + FMA on x86-64, see
// kernel_clones.h) so the compiler vectorizes them; a polynomial log
// (Cephes' logf, within a few ulp of libm's). NaN and infinity propagate to
// the sums. Thread-safe (no state).

#include <cstdint>

namespace pianola {

// Smallest power |S|² the loss uses (losses.h): below it the magnitude is
// sqrt(1e-7) and its gradient zero.
inline constexpr float kStftPowerFloor = 1e-7f;

struct StftRowSums {
  float diff_squares;    // Σ (t - p)²
  float target_squares;  // Σ t²
  float log_distance;    // Σ |log t - log p|
};

// pred and target: one row of each spectrum, `bins` interleaved (re, im)
// pairs. Writes t to target_magnitude (`bins` floats). `scratch` holds
// 3 * StftRowScratchFloats(bins) floats.
int64_t StftRowScratchFloats(int64_t bins);
StftRowSums StftLossRow(const float* pred, const float* target, int64_t bins,
                        float* target_magnitude, float* scratch);

// The gradient with respect to one row of the prediction's spectrum, into
// `grad` as interleaved (re, im) pairs: per bin
//   dL/dp = -sc_coef · (t - p) - log_coef · sign(t - p) / p
// (zero where |P|² < kStftPowerFloor), dL/dRe = dL/dp · Re / p and likewise
// Im; then every bin times `inner_scale`, except bin 0 (and bin bins - 1
// when `nyquist`), times `edge_scale`. With sc_coef = g_sc / (||t - p||
// ||t||) (the spectral convergence's), log_coef = g_lm / count (the mean
// log distance's), edge_scale = N and inner_scale = N / 2 for an N-point
// FFT, irfft(grad) is the gradient with respect to the FFT's input.
void StftLossGradRow(const float* pred, const float* target_magnitude, int64_t bins,
                     float sc_coef, float log_coef, float edge_scale, float inner_scale,
                     bool nyquist, float* grad);

// One item's frame gradients [frames, fft_size] (rows contiguous) times the
// window, added into `padded` (zeroed by the caller, (frames - 1) * hop +
// fft_size floats at least) at frame f's offset f * hop: only the window's
// columns [left, left + win_length) of each frame.
void OverlapAddFrames(const float* frames, int64_t n_frames, int64_t fft_size, int64_t hop,
                      const float* window, int64_t left, int64_t win_length, float* padded);

// The backward of reflect padding by `pad` on both sides: out[length] from
// padded[pad + length + pad] (pad < length).
void ReflectPadBackward(const float* padded, int64_t length, int64_t pad, float* out);

// The log approximation on its own, for tests.
float StftLog(float x);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_STFT_LOSS_KERNEL_H_
