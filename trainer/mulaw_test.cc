#include "trainer/mulaw.h"

#include <cmath>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {
namespace {

TEST(MuLawTest, RoundTripErrorWithinHalfAStep) {
  const double mu = 255;
  torch::Tensor x = torch::linspace(-1.0, 1.0, 200001, torch::kFloat);
  torch::Tensor back = MuLawDecode(MuLawEncode(x));
  torch::Tensor err = (x - back).abs().to(torch::kDouble);
  // Half a step (1/µ) in the companded domain, times the expansion's slope at
  // the far end of the step: ln(1+µ)/µ * (1+µ|x|) * (1+µ)^(1/µ).
  torch::Tensor bound = (std::log1p(mu) / (mu * mu)) * (1.0 + mu * x.abs().to(torch::kDouble)) *
                        std::pow(1.0 + mu, 1.0 / mu);
  EXPECT_TRUE((err <= bound + 1e-7).all().item<bool>())
      << "worst excess " << (err - bound).max().item<double>();
  // Fine near zero, coarse near full scale: the point of µ-law.
  EXPECT_LT(MuLawDecode(MuLawEncode(torch::tensor({0.001f}))).sub(0.001).abs().item<float>(),
            1e-4);
}

TEST(MuLawTest, ClassesCoverTheRangeAndInvert) {
  torch::Tensor classes = torch::arange(256, torch::kLong);
  EXPECT_TRUE(MuLawEncode(MuLawDecode(classes)).equal(classes));
  EXPECT_EQ(MuLawEncode(torch::tensor({-1.0f})).item<int64_t>(), 0);
  EXPECT_EQ(MuLawEncode(torch::tensor({1.0f})).item<int64_t>(), 255);
  EXPECT_EQ(MuLawEncode(torch::tensor({0.0f})).item<int64_t>(), 128);
  // Out-of-range audio is clamped, not wrapped.
  EXPECT_EQ(MuLawEncode(torch::tensor({3.0f, -7.0f})).max().item<int64_t>(), 255);
  EXPECT_EQ(MuLawEncode(torch::tensor({3.0f, -7.0f})).min().item<int64_t>(), 0);
  EXPECT_EQ(MuLawEncode(torch::zeros({2, 3})).dtype(), torch::kLong);
}

TEST(MuLawTest, CompandAndExpandAreInverses) {
  torch::Tensor x = torch::linspace(-1.0, 1.0, 1001, torch::kFloat);
  EXPECT_TRUE(torch::allclose(MuLawExpand(MuLawCompand(x)), x, 1e-5, 1e-6));
  // Other level counts work too (µ = 15).
  torch::Tensor c = torch::arange(16, torch::kLong);
  EXPECT_TRUE(MuLawEncode(MuLawDecode(c, 16), 16).equal(c));
}

}  // namespace
}  // namespace pianola
