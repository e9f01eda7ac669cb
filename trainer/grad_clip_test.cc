#include "trainer/grad_clip.h"

#include <limits>
#include <vector>

#include <torch/nn/utils/clip_grad.h>
#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {
namespace {

std::vector<torch::Tensor> ParamsWithGrads(double scale) {
  torch::manual_seed(8);
  std::vector<torch::Tensor> params;
  for (const auto& shape : {std::vector<int64_t>{5, 3}, {200}, {1}, {2, 2, 2}}) {
    torch::Tensor p = torch::randn(shape).requires_grad_();
    p.mutable_grad() = torch::randn(shape) * scale;
    params.push_back(p);
  }
  params.push_back(torch::randn({3}).requires_grad_());  // no gradient
  return params;
}

TEST(ClipGradNormTest, MatchesLibtorch) {
  for (const double max_norm : {0.5, 1e3, std::numeric_limits<double>::infinity()}) {
    std::vector<torch::Tensor> ours = ParamsWithGrads(3.0);
    std::vector<torch::Tensor> theirs = ParamsWithGrads(3.0);
    const double norm = ClipGradNorm(ours, max_norm);
    const double expected = torch::nn::utils::clip_grad_norm_(theirs, max_norm);
    EXPECT_NEAR(norm, expected, 1e-5 * expected) << max_norm;
    for (size_t i = 0; i + 1 < ours.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours[i].grad(), theirs[i].grad(), 1e-6, 1e-7))
          << "max_norm " << max_norm << " parameter " << i;
    }
    EXPECT_FALSE(ours.back().grad().defined());
  }
  // Clipped to the limit.
  std::vector<torch::Tensor> params = ParamsWithGrads(3.0);
  ClipGradNorm(params, 0.5);
  EXPECT_NEAR(ClipGradNorm(params, std::numeric_limits<double>::infinity()), 0.5, 1e-5);
}

TEST(ClipGradNormTest, TensorVariantLeavesTheNormOnTheDevice) {
  std::vector<torch::Tensor> ours = ParamsWithGrads(3.0);
  std::vector<torch::Tensor> theirs = ParamsWithGrads(3.0);
  const torch::Tensor norm = ClipGradNormTensor(ours, 0.5);
  ASSERT_TRUE(norm.defined());
  EXPECT_EQ(norm.dim(), 0);
  EXPECT_EQ(norm.device(), ours[0].grad().device());
  EXPECT_DOUBLE_EQ(norm.item<double>(), ClipGradNorm(theirs, 0.5));
  for (size_t i = 0; i + 1 < ours.size(); ++i) {
    EXPECT_TRUE(torch::equal(ours[i].grad(), theirs[i].grad())) << i;
  }
  std::vector<torch::Tensor> none = {torch::zeros({2}, torch::requires_grad())};
  EXPECT_FALSE(ClipGradNormTensor(none, 1.0).defined());
}

TEST(ClipGradNormTest, NoGradientsAndNonFiniteNorms) {
  std::vector<torch::Tensor> none = {torch::zeros({2}, torch::requires_grad())};
  EXPECT_EQ(ClipGradNorm(none, 1.0), 0.0);
  std::vector<torch::Tensor> params = ParamsWithGrads(1.0);
  params[1].mutable_grad()[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(ClipGradNorm(params, 1.0)));
}

}  // namespace
}  // namespace pianola
