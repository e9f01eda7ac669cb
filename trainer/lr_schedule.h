#ifndef PIANOLA_TRAINER_LR_SCHEDULE_H_
#define PIANOLA_TRAINER_LR_SCHEDULE_H_

// The learning-rate schedule: linear warmup, then cosine, exponential or
// constant decay. A pure function of the step, so a resumed run needs no
// scheduler state: the checkpoint's step is enough.
//
// Steps are 0-based: LearningRate(options, s) is the rate used by the
// update that turns step s into step s + 1.
//   warmup (s < W):     lr * (s + 1) / W
//   cosine:             min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2,
//                       p = (s - W) / max(1, total_steps - W - 1), clamped to [0, 1]
//                       (so the last step uses min_lr)
//   exponential:        max(min_lr, lr * decay_rate ^ ((s - W) / decay_steps))
//   constant:           lr
//
// Torch-free plain functions; thread-safe.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pianola {

enum class LrDecay { kCosine, kExponential, kConstant };

absl::string_view LrDecayName(LrDecay decay);  // "cosine" | "exponential" | "constant"
absl::StatusOr<LrDecay> ParseLrDecay(absl::string_view name);

struct LrScheduleOptions {
  double lr = 1e-3;            // peak rate, reached at the end of warmup; > 0
  int64_t warmup_steps = 0;    // >= 0
  LrDecay decay = LrDecay::kCosine;
  int64_t total_steps = 1;     // the run's length (cosine reaches min_lr at its last step); > 0
  double min_lr = 0.0;         // floor; 0 <= min_lr <= lr
  double decay_rate = 0.5;     // exponential: factor per decay_steps; (0, 1]
  int64_t decay_steps = 10000; // exponential; > 0
};

// InvalidArgument naming the field ("schedule.min_lr: ...").
absl::Status ValidateLrSchedule(const LrScheduleOptions& options);

// The rate for 0-based step `step` (>= 0; steps past total_steps keep the
// final value of the decay).
double LearningRate(const LrScheduleOptions& options, int64_t step);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_LR_SCHEDULE_H_
