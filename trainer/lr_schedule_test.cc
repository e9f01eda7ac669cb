#include "trainer/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "gtest/gtest.h"

namespace pianola {
namespace {

TEST(LrScheduleTest, LinearWarmupReachesPeak) {
  LrScheduleOptions o{.lr = 1e-3, .warmup_steps = 4, .decay = LrDecay::kConstant,
                      .total_steps = 100};
  EXPECT_DOUBLE_EQ(LearningRate(o, 0), 0.25e-3);
  EXPECT_DOUBLE_EQ(LearningRate(o, 1), 0.5e-3);
  EXPECT_DOUBLE_EQ(LearningRate(o, 3), 1e-3);
  EXPECT_DOUBLE_EQ(LearningRate(o, 4), 1e-3);
  EXPECT_DOUBLE_EQ(LearningRate(o, 99), 1e-3);
}

TEST(LrScheduleTest, CosineGoesFromPeakToMinAtTheLastStep) {
  LrScheduleOptions o{.lr = 1.0, .warmup_steps = 10, .decay = LrDecay::kCosine,
                      .total_steps = 111, .min_lr = 0.1};
  EXPECT_DOUBLE_EQ(LearningRate(o, 10), 1.0);
  // Halfway through the decay (p = 0.5): the midpoint of lr and min_lr.
  EXPECT_NEAR(LearningRate(o, 60), 0.55, 1e-12);
  EXPECT_NEAR(LearningRate(o, 110), 0.1, 1e-12);
  EXPECT_NEAR(LearningRate(o, 5000), 0.1, 1e-12);  // past the end: stays at the floor
  // A direct evaluation of the formula at an arbitrary step.
  const double p = (37.0 - 10.0) / 100.0;
  EXPECT_NEAR(LearningRate(o, 37), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * p)),
              1e-12);
  for (int64_t s = 11; s < 111; ++s) EXPECT_LT(LearningRate(o, s), LearningRate(o, s - 1));
}

TEST(LrScheduleTest, ExponentialHalvesEveryDecayStepsAndIsFloored) {
  LrScheduleOptions o{.lr = 1.0, .warmup_steps = 0, .decay = LrDecay::kExponential,
                      .total_steps = 1000, .min_lr = 0.2, .decay_rate = 0.5,
                      .decay_steps = 100};
  EXPECT_DOUBLE_EQ(LearningRate(o, 0), 1.0);
  EXPECT_NEAR(LearningRate(o, 100), 0.5, 1e-12);
  EXPECT_NEAR(LearningRate(o, 50), std::sqrt(0.5), 1e-12);
  EXPECT_DOUBLE_EQ(LearningRate(o, 300), 0.2);  // 0.125 floored
}

TEST(LrScheduleTest, SingleStepRunUsesThePeak) {
  LrScheduleOptions o{.lr = 0.5, .decay = LrDecay::kCosine, .total_steps = 1};
  EXPECT_DOUBLE_EQ(LearningRate(o, 0), 0.5);
}

TEST(LrScheduleTest, ValidationNamesTheField) {
  LrScheduleOptions o;
  EXPECT_TRUE(ValidateLrSchedule(o).ok());
  o.min_lr = 1.0;
  absl::Status s = ValidateLrSchedule(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("schedule.min_lr"), std::string::npos) << s;
  o = {};
  o.decay_rate = 0;
  EXPECT_NE(ValidateLrSchedule(o).message().find("schedule.decay_rate"), std::string::npos);
  o = {};
  o.lr = std::nan("");
  EXPECT_NE(ValidateLrSchedule(o).message().find("schedule.lr"), std::string::npos);
}

TEST(LrScheduleTest, ParsesDecayNames) {
  EXPECT_EQ(*ParseLrDecay("cosine"), LrDecay::kCosine);
  EXPECT_EQ(*ParseLrDecay("exponential"), LrDecay::kExponential);
  EXPECT_EQ(*ParseLrDecay("constant"), LrDecay::kConstant);
  EXPECT_EQ(ParseLrDecay("linear").status().code(), absl::StatusCode::kInvalidArgument);
  for (LrDecay d : {LrDecay::kCosine, LrDecay::kExponential, LrDecay::kConstant}) {
    EXPECT_EQ(*ParseLrDecay(LrDecayName(d)), d);
  }
}

}  // namespace
}  // namespace pianola
