#ifndef PIANOLA_TRAINER_MULAW_H_
#define PIANOLA_TRAINER_MULAW_H_

// µ-law companding and quantization (ITU-T G.711 style, continuous form) with
// `levels` classes (256 by default, µ = levels - 1), as WaveNet uses it:
//   compand(x) = sign(x) * ln(1 + µ|x|) / ln(1 + µ)        x in [-1, 1]
//   class      = round((compand(x) + 1) / 2 * µ)            0 .. µ
//   decode(c)  = sign(y) * ((1 + µ)^|y| - 1) / µ, y = 2c/µ - 1
// Round trip error: at most half a class step in the companded domain, i.e.
// |x - decode(encode(x))| <= ln(1 + µ) / µ² * (1 + µ|x|) * (1 + µ)^(1/µ)
// (the slope of the expansion at the far end of the step).
//
// Pure functions on tensors of any shape and device; thread-safe.

#include <torch/types.h>

namespace pianola {

inline constexpr int kMuLawLevels = 256;

// Float audio in [-1, 1] (clamped) -> companded float in [-1, 1].
torch::Tensor MuLawCompand(const torch::Tensor& audio, int levels = kMuLawLevels);
// Companded float -> audio (the inverse of MuLawCompand).
torch::Tensor MuLawExpand(const torch::Tensor& companded, int levels = kMuLawLevels);
// Float audio -> int64 classes in [0, levels).
torch::Tensor MuLawEncode(const torch::Tensor& audio, int levels = kMuLawLevels);
// Classes (any integer dtype) -> float audio in [-1, 1].
torch::Tensor MuLawDecode(const torch::Tensor& classes, int levels = kMuLawLevels);
// Classes -> their companded value 2c/µ - 1 (the scalar decoder input).
torch::Tensor MuLawClassToCompanded(const torch::Tensor& classes, int levels = kMuLawLevels);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_MULAW_H_
