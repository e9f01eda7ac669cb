#include "trainer/losses.h"

#include <cmath>
#include <complex>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {
namespace {

// |STFT| computed directly: window of win_length centred in fft_size,
// reflect-padded centred frames, plain DFT in double, sqrt(max(p, 1e-7)).
std::vector<std::vector<double>> DirectMagnitude(const std::vector<double>& x,
                                                 const StftResolution& r) {
  const int n = static_cast<int>(x.size());
  auto at = [&](int i) {
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return x[i];
  };
  std::vector<double> window(r.fft_size, 0.0);
  const int offset = (r.fft_size - r.win_length) / 2;
  for (int i = 0; i < r.win_length; ++i) {
    window[offset + i] = 0.5 - 0.5 * std::cos(2 * M_PI * i / r.win_length);
  }
  const int frames = 1 + n / r.hop;
  std::vector<std::vector<double>> mag(r.fft_size / 2 + 1, std::vector<double>(frames));
  for (int f = 0; f < frames; ++f) {
    for (int k = 0; k <= r.fft_size / 2; ++k) {
      std::complex<double> s = 0;
      for (int i = 0; i < r.fft_size; ++i) {
        s += window[i] * at(f * r.hop - r.fft_size / 2 + i) *
             std::polar(1.0, -2 * M_PI * k * i / r.fft_size);
      }
      mag[k][f] = std::sqrt(std::max(std::norm(s), 1e-7));
    }
  }
  return mag;
}

std::vector<double> Row(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kDouble).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(LossesTest, StftLossMatchesDirectComputation) {
  torch::manual_seed(5);
  const int n = 400;
  torch::Tensor target = 0.5 * torch::randn({2, n});
  torch::Tensor pred = target + 0.2 * torch::randn({2, n});
  const StftResolution r{.fft_size = 64, .hop = 24, .win_length = 40};
  StftLossTerms got = StftLoss(pred, target, r);
  double diff2 = 0, target2 = 0, log_l1 = 0;
  int64_t count = 0;
  for (int b = 0; b < 2; ++b) {
    auto mp = DirectMagnitude(Row(pred[b]), r);
    auto mt = DirectMagnitude(Row(target[b]), r);
    for (size_t k = 0; k < mp.size(); ++k) {
      for (size_t f = 0; f < mp[k].size(); ++f) {
        diff2 += (mt[k][f] - mp[k][f]) * (mt[k][f] - mp[k][f]);
        target2 += mt[k][f] * mt[k][f];
        log_l1 += std::abs(std::log(mt[k][f]) - std::log(mp[k][f]));
        ++count;
      }
    }
  }
  EXPECT_NEAR(got.spectral_convergence.item<double>(), std::sqrt(diff2 / target2), 1e-4);
  EXPECT_NEAR(got.log_magnitude.item<double>(), log_l1 / count, 1e-4);
  // The frame count the direct computation assumed.
  EXPECT_EQ(StftMagnitude(pred, r).sizes(), (std::vector<int64_t>{2, 33, 1 + n / 24}));
}

TEST(LossesTest, MultiResolutionAveragesAndVanishesOnEqualInputs) {
  torch::manual_seed(6);
  torch::Tensor target = torch::randn({1, 600});
  torch::Tensor pred = 0.5 * target;
  std::vector<StftResolution> rs = {{128, 16, 64}, {256, 32, 128}, {64, 8, 32}};
  StftLossTerms multi = MultiResolutionStftLoss(pred, target, rs);
  double sc = 0, mag = 0;
  for (const auto& r : rs) {
    StftLossTerms one = StftLoss(pred, target, r);
    sc += one.spectral_convergence.item<double>() / 3;
    mag += one.log_magnitude.item<double>() / 3;
  }
  EXPECT_NEAR(multi.spectral_convergence.item<double>(), sc, 1e-6);
  EXPECT_NEAR(multi.log_magnitude.item<double>(), mag, 1e-6);
  // Halving the amplitude: SC = 0.5 exactly, log magnitude ~ ln 2 (except
  // where the 1e-7 floor clips).
  EXPECT_NEAR(multi.spectral_convergence.item<double>(), 0.5, 1e-3);
  EXPECT_NEAR(multi.log_magnitude.item<double>(), std::log(2.0), 0.05);
  StftLossTerms same = MultiResolutionStftLoss(target, target, rs);
  EXPECT_NEAR(same.spectral_convergence.item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(same.log_magnitude.item<double>(), 0.0, 1e-6);
}

TEST(LossesTest, StftLossHasGradients) {
  torch::Tensor target = torch::randn({1, 300});
  torch::Tensor pred = torch::randn({1, 300}, torch::requires_grad());
  StftLossTerms t = MultiResolutionStftLoss(pred, target, {{128, 16, 64}});
  (t.spectral_convergence + t.log_magnitude).backward();
  ASSERT_TRUE(pred.grad().defined());
  EXPECT_TRUE(torch::isfinite(pred.grad()).all().item<bool>());
  EXPECT_GT(pred.grad().abs().sum().item<double>(), 0);
}

TEST(LossesTest, CrossEntropyIsMeanNegativeLogSoftmax) {
  torch::manual_seed(7);
  torch::Tensor logits = torch::randn({2, 256, 5});
  torch::Tensor targets = torch::randint(0, 256, {2, 5}, torch::kLong);
  double want = 0;
  torch::Tensor logp = torch::log_softmax(logits, 1);
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 5; ++t) want -= logp[b][targets[b][t].item<int64_t>()][t].item<double>();
  }
  EXPECT_NEAR(MuLawCrossEntropy(logits, targets).item<double>(), want / 10, 1e-5);
}

TEST(LossesTest, WaveformL1) {
  EXPECT_NEAR(WaveformL1(torch::tensor({{0.0f, 1.0f}}), torch::tensor({{0.5f, -1.0f}}))
                  .item<double>(),
              1.25, 1e-6);
}

}  // namespace
}  // namespace pianola
