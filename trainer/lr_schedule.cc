#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace pianola {

absl::string_view LrDecayName(LrDecay decay) {
  switch (decay) {
    case LrDecay::kCosine:
      return "cosine";
    case LrDecay::kExponential:
      return "exponential";
    case LrDecay::kConstant:
      return "constant";
  }
  return "cosine";
}

absl::StatusOr<LrDecay> ParseLrDecay(absl::string_view name) {
  if (name == "cosine") return LrDecay::kCosine;
  if (name == "exponential") return LrDecay::kExponential;
  if (name == "constant") return LrDecay::kConstant;
  return absl::InvalidArgumentError(absl::StrCat(
      "schedule.decay: expected 'cosine', 'exponential' or 'constant', got '", name, "'"));
}

absl::Status ValidateLrSchedule(const LrScheduleOptions& o) {
  auto bad = [](absl::string_view field, auto value, absl::string_view want) {
    return absl::InvalidArgumentError(
        absl::StrCat("schedule.", field, ": must be ", want, ", got ", value));
  };
  if (!std::isfinite(o.lr) || o.lr <= 0) return bad("lr", o.lr, "a finite value > 0");
  if (o.warmup_steps < 0) return bad("warmup_steps", o.warmup_steps, ">= 0");
  if (o.total_steps <= 0) return bad("total_steps", o.total_steps, "> 0");
  if (!std::isfinite(o.min_lr) || o.min_lr < 0 || o.min_lr > o.lr) {
    return bad("min_lr", o.min_lr, absl::StrCat("in [0, lr = ", o.lr, "]"));
  }
  if (!std::isfinite(o.decay_rate) || o.decay_rate <= 0 || o.decay_rate > 1) {
    return bad("decay_rate", o.decay_rate, "in (0, 1]");
  }
  if (o.decay_steps <= 0) return bad("decay_steps", o.decay_steps, "> 0");
  return absl::OkStatus();
}

double LearningRate(const LrScheduleOptions& o, int64_t step) {
  step = std::max<int64_t>(step, 0);
  if (step < o.warmup_steps) {
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  }
  const double since = static_cast<double>(step - o.warmup_steps);
  switch (o.decay) {
    case LrDecay::kConstant:
      return o.lr;
    case LrDecay::kExponential:
      return std::max(o.min_lr,
                      o.lr * std::pow(o.decay_rate, since / static_cast<double>(o.decay_steps)));
    case LrDecay::kCosine: {
      const double span =
          static_cast<double>(std::max<int64_t>(1, o.total_steps - o.warmup_steps - 1));
      const double p = std::clamp(since / span, 0.0, 1.0);
      return o.min_lr + (o.lr - o.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
  }
  return o.lr;
}

}  // namespace pianola
