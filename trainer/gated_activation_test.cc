#include "trainer/gated_activation.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/gate_kernel.h"

namespace pianola {
namespace {

// The approximations against libm in double over the range a gate sees and
// beyond (saturation).
TEST(GateKernelTest, ApproximationsAreWithinAFewUlp) {
  double worst_exp = 0, worst_tanh = 0, worst_sigmoid = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00731f) {
    worst_exp = std::max(worst_exp, std::fabs(GateExp(x) / std::exp(double{x}) - 1));
  }
  for (float x = -30.0f; x <= 30.0f; x += 0.000731f) {
    const double tanh = std::tanh(double{x});
    worst_tanh = std::max(worst_tanh, std::fabs(GateTanh(x) - tanh) / std::fabs(tanh));
    const double sigmoid = 1 / (1 + std::exp(-double{x}));
    worst_sigmoid = std::max(worst_sigmoid, std::fabs(GateSigmoid(x) - sigmoid) / sigmoid);
  }
  const double ulp = std::ldexp(1.0, -23);
  EXPECT_LT(worst_exp, 4 * ulp);
  EXPECT_LT(worst_tanh, 4 * ulp);
  EXPECT_LT(worst_sigmoid, 4 * ulp);
  // Tiny arguments keep their relative precision; huge ones saturate.
  EXPECT_FLOAT_EQ(GateTanh(1e-20f), 1e-20f);
  EXPECT_EQ(GateTanh(100.0f), 1.0f);
  EXPECT_EQ(GateTanh(-100.0f), -1.0f);
  // Sigmoid stops at sigmoid(-80) = 1.8e-35 (never subnormal, never NaN).
  EXPECT_EQ(GateSigmoid(-200.0f), GateSigmoid(-80.0f));
  EXPECT_NEAR(GateSigmoid(-80.0f), std::exp(-80.0), 1e-6 * std::exp(-80.0));
  EXPECT_EQ(GateSigmoid(200.0f), 1.0f);
  EXPECT_EQ(GateExp(-1000.0f), GateExp(-87.3365447f));
}

// GateKernel (one division for tanh(f) * sigmoid(g)) against libm in double,
// across both of tanh's branches, the |f| clamp and saturated gates: finite
// everywhere, within a few ulp wherever the product is a normal float.
TEST(GateKernelTest, OneFractionIsWithinAFewUlpOfTanhTimesSigmoid) {
  std::vector<float> f, g;
  for (float x = -120.0f; x <= 120.0f; x += 0.0137f) {
    for (float y : {-200.0f, -87.5f, -30.0f, -1.0f, -0.01f, 0.0f, 0.3f, 10.0f, 90.0f}) {
      f.push_back(x);
      g.push_back(y);
    }
  }
  for (float y = -120.0f; y <= 120.0f; y += 0.0137f) {
    for (float x : {-50.0f, -9.0f, -0.625f, 1e-20f, 0.0f, 0.625001f, 3.0f, 9.5f}) {
      f.push_back(x);
      g.push_back(y);
    }
  }
  std::vector<float> out(f.size());
  GateKernel(f.data(), g.data(), static_cast<int64_t>(f.size()), out.data());
  const double ulp = std::ldexp(1.0, -23);
  double worst = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    ASSERT_TRUE(std::isfinite(out[i])) << "f " << f[i] << " g " << g[i];
    const double expected = std::tanh(double{f[i]}) / (1 + std::exp(-double{g[i]}));
    if (std::fabs(expected) > 1e-30) {
      worst = std::max(worst, std::fabs(out[i] - expected) / std::fabs(expected));
    } else {
      EXPECT_LT(std::fabs(out[i]), 1e-30) << "f " << f[i] << " g " << g[i];
    }
  }
  EXPECT_LT(worst, 4 * ulp);
}

// Forward and backward of the fused CPU path against the composite
// operations in double, for shapes whose rows are not a multiple of the
// vector width and an input that is not contiguous.
TEST(GatedActivationTest, FusedEqualsCompositeForwardAndBackward) {
  torch::manual_seed(3);
  for (const auto& [batch, g, t] : {std::tuple<int64_t, int64_t, int64_t>{2, 5, 37},
                                    {3, 16, 1024}, {1, 1, 1}}) {
    torch::Tensor a = (torch::randn({batch, 2 * g, t}) * 3).requires_grad_();
    torch::Tensor grad_out = torch::randn({batch, g, t});
    torch::Tensor fused = GatedActivation(a, g);
    fused.backward(grad_out);
    torch::Tensor fused_grad = a.grad().clone();

    torch::Tensor a64 = a.detach().to(torch::kDouble).requires_grad_();
    torch::Tensor reference = torch::tanh(a64.narrow(1, 0, g)) * torch::sigmoid(a64.narrow(1, g, g));
    reference.backward(grad_out.to(torch::kDouble));
    EXPECT_TRUE(torch::allclose(fused.to(torch::kDouble), reference, 1e-6, 1e-6))
        << batch << " " << g << " " << t;
    EXPECT_TRUE(torch::allclose(fused_grad.to(torch::kDouble), a64.grad(), 1e-6, 1e-6))
        << batch << " " << g << " " << t;
  }
  // A transposed (non-contiguous) input.
  torch::Tensor base = torch::randn({2, 9, 8});
  torch::Tensor a = base.transpose(1, 2);  // [2, 8, 9]
  EXPECT_TRUE(torch::allclose(GatedActivation(a, 4),
                              torch::tanh(a.narrow(1, 0, 4)) * torch::sigmoid(a.narrow(1, 4, 4)),
                              1e-6, 1e-6));
}

TEST(GatedActivationTest, SameValuesForAnyThreadCount) {
  torch::manual_seed(4);
  torch::Tensor a = torch::randn({4, 32, 3000}).requires_grad_();
  torch::Tensor grad_out = torch::randn({4, 16, 3000});
  auto run = [&](int threads) {
    torch::set_num_threads(threads);
    a.mutable_grad() = torch::Tensor();
    torch::Tensor out = GatedActivation(a, 16);
    out.backward(grad_out);
    return std::make_pair(out.detach(), a.grad().clone());
  };
  const auto one = run(1);
  const auto two = run(2);
  torch::set_num_threads(1);
  EXPECT_TRUE(one.first.equal(two.first));
  EXPECT_TRUE(one.second.equal(two.second));
}

TEST(GatedActivationTest, OtherTypesTakeTheCompositePath) {
  torch::Tensor a = torch::randn({1, 6, 10}, torch::kDouble).requires_grad_();
  torch::Tensor out = GatedActivation(a, 3);
  EXPECT_EQ(out.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(out, torch::tanh(a.narrow(1, 0, 3)) * torch::sigmoid(a.narrow(1, 3, 3))));
  out.sum().backward();  // differentiable through the composite ops
  EXPECT_TRUE(a.grad().defined());
  EXPECT_THROW(GatedActivation(torch::randn({1, 5, 10}), 3), c10::Error);
}

}  // namespace
}  // namespace pianola
