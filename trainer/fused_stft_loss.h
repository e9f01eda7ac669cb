#ifndef PIANOLA_TRAINER_FUSED_STFT_LOSS_H_
#define PIANOLA_TRAINER_FUSED_STFT_LOSS_H_

// One resolution of the STFT loss (losses.h: spectral convergence and mean
// log-magnitude distance) as one autograd node on the CPU: the frames are
// windowed and transformed by torch's real FFT, then one pass of
// StftLossRow (trainer/stft_loss_kernel.h) per frame gives the magnitudes
// and the loss's sums. Backward: one pass of StftLossGradRow gives the
// spectrum's gradient, scaled so that one inverse real FFT (half the work
// of the complex one autograd runs on a zero-padded spectrum) takes it to
// the frames, then the overlap-add and the reflect padding's backward, where
// the composite builds zero-filled gradients for real(), imag(), the frames'
// view and every elementwise step (docs/perf.md).
//
// Same values as the composite up to float rounding (sums in another order;
// the loss's tests hold both to a direct computation). Deterministic for any
// thread count (fixed per-frame partial sums, added in order). Where the
// prediction equals the target exactly the composite's spectral-convergence
// gradient is 0/0 = NaN; this one's is zero.

#include <torch/types.h>

#include "trainer/losses.h"
#include "trainer/model_config.h"

namespace pianola {

// True for float CPU pred and target [B, T] of the same shape, outside CPU
// autocast, when the target needs no gradient.
bool FusedStftLossApplies(const torch::Tensor& pred, const torch::Tensor& target);

// pred, target [B, T] with T > fft_size / 2.
StftLossTerms FusedStftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                            const StftResolution& resolution);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_FUSED_STFT_LOSS_H_
