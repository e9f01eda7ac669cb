#include "trainer/fused_stft_loss.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/intra_op_threads_for_test.h"
#include "trainer/losses.h"
#include "trainer/stft_loss_kernel.h"

namespace pianola {
namespace {

// The loss as tensor operations on StftMagnitude (what StftLoss computes on
// other devices and types).
StftLossTerms CompositeLoss(const torch::Tensor& pred, const torch::Tensor& target,
                            const StftResolution& r) {
  const torch::Tensor p = StftMagnitude(pred, r), t = StftMagnitude(target, r);
  return {(t - p).square().sum().sqrt() / t.square().sum().sqrt(),
          (torch::log(t) - torch::log(p)).abs().mean()};
}

struct ValuesAndGradient {
  double spectral_convergence, log_magnitude;
  torch::Tensor grad;
};

// The terms and the gradient of 0.7 SC + 1.3 MAG with respect to pred.
template <typename LossFn>
ValuesAndGradient LossAndGradient(const torch::Tensor& pred, const torch::Tensor& target,
                      const StftResolution& r, LossFn loss) {
  torch::Tensor x = pred.clone().requires_grad_();
  const StftLossTerms terms = loss(x, target, r);
  (0.7 * terms.spectral_convergence + 1.3 * terms.log_magnitude).backward();
  return {terms.spectral_convergence.item<double>(), terms.log_magnitude.item<double>(),
          x.grad()};
}

TEST(FusedStftLossTest, MatchesTheCompositeValuesAndGradient) {
  torch::manual_seed(11);
  // Overlapping frames, odd sizes, windows shorter than the FFT (centred with
  // an odd remainder too), hops past the frame.
  const std::vector<StftResolution> resolutions = {
      {64, 16, 64},  {64, 24, 40},  {128, 32, 100}, {63, 10, 31},
      {256, 64, 256}, {64, 100, 50}, {64, 16, 41},   {66, 20, 33}};
  for (const StftResolution& r : resolutions) {
    SCOPED_TRACE(testing::Message() << "fft " << r.fft_size << " hop " << r.hop << " win "
                                    << r.win_length);
    // Some near-silent stretches so the 1e-7 floor clips bins.
    torch::Tensor target = 0.5 * torch::randn({3, 437});
    target.narrow(1, 100, 120).mul_(1e-5);
    torch::Tensor pred = target + 0.3 * torch::randn({3, 437});
    pred.narrow(1, 300, 60).zero_();
    ASSERT_TRUE(FusedStftLossApplies(pred, target));
    const ValuesAndGradient fused = LossAndGradient(pred, target, r, FusedStftLoss);
    const ValuesAndGradient composite = LossAndGradient(pred, target, r, CompositeLoss);
    EXPECT_NEAR(fused.spectral_convergence, composite.spectral_convergence,
                1e-5 * composite.spectral_convergence);
    EXPECT_NEAR(fused.log_magnitude, composite.log_magnitude, 1e-5 * composite.log_magnitude);
    const double scale = composite.grad.abs().max().item<double>();
    ASSERT_GT(scale, 0);
    EXPECT_LT((fused.grad - composite.grad).abs().max().item<double>(), 1e-4 * scale);
  }
}

TEST(FusedStftLossTest, StftLossTakesItForFloatCpuTensors) {
  torch::manual_seed(12);
  const StftResolution r{128, 16, 64};
  const torch::Tensor target = torch::randn({2, 300});
  const torch::Tensor pred = torch::randn({2, 300}, torch::requires_grad());
  const StftLossTerms fused = StftLoss(pred, target, r);
  EXPECT_NE(fused.spectral_convergence.grad_fn()->name().find("StftLossFunction"),
            std::string::npos);
  // Other types (and a target that needs a gradient) take the composite.
  EXPECT_FALSE(FusedStftLossApplies(pred.to(torch::kDouble), target.to(torch::kDouble)));
  EXPECT_FALSE(FusedStftLossApplies(pred, target.clone().requires_grad_()));
  const StftLossTerms composite = StftLoss(pred.to(torch::kDouble), target.to(torch::kDouble), r);
  EXPECT_NEAR(fused.log_magnitude.item<double>(), composite.log_magnitude.item<double>(), 1e-5);
}

TEST(FusedStftLossTest, SameBitsOnOneAndTwoThreads) {
  torch::manual_seed(13);
  const torch::Tensor target = torch::randn({4, 2000});
  ExpectSameBitsOnOneAndTwoThreads(torch::randn({4, 2000}), [&](const torch::Tensor& pred) {
    const StftLossTerms t = FusedStftLoss(pred, target, {256, 32, 200});
    return torch::stack({t.spectral_convergence, t.log_magnitude});
  });
}

TEST(FusedStftLossTest, EqualInputsGiveZeroLossAndGradient) {
  torch::manual_seed(14);
  const torch::Tensor target = torch::randn({2, 500});
  const ValuesAndGradient same = LossAndGradient(target, target, {128, 32, 128}, FusedStftLoss);
  EXPECT_EQ(same.spectral_convergence, 0.0);
  EXPECT_EQ(same.log_magnitude, 0.0);
  EXPECT_EQ(same.grad.abs().max().item<double>(), 0.0);
}

TEST(FusedStftLossTest, NonFinitePredictionGivesNonFiniteTerms) {
  const torch::Tensor target = torch::randn({2, 500});
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    torch::Tensor pred = torch::randn({2, 500});
    pred[1][250] = bad;
    const StftLossTerms t = FusedStftLoss(pred, target, {128, 32, 128});
    EXPECT_FALSE(std::isfinite(t.spectral_convergence.item<float>())) << bad;
    EXPECT_FALSE(std::isfinite(t.log_magnitude.item<float>())) << bad;
  }
}

TEST(FusedStftLossTest, LogIsWithinAFewUlpOfLibm) {
  for (float x = 1e-7f; x < 1e7f; x *= 1.0137f) {
    const float want = std::log(x);
    EXPECT_NEAR(StftLog(x), want, 4 * std::numeric_limits<float>::epsilon() *
                                      std::max(1.0f, std::fabs(want)))
        << x;
  }
  EXPECT_EQ(StftLog(1.0f), 0.0f);
  EXPECT_EQ(StftLog(std::numeric_limits<float>::infinity()),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(StftLog(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace pianola
