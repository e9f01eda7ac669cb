#include "trainer/folded_features.h"

#include <tuple>

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/intra_op_threads_for_test.h"

namespace pianola {
namespace {

// The definition in double with torch's ops: each channel a strided conv1d
// over its zero-padded samples, channels then filters as output rows.
torch::Tensor Composite(const torch::Tensor& cond, const torch::Tensor& filters) {
  const int64_t b = cond.size(0), c = cond.size(1), t = cond.size(2), f = filters.size(2);
  const int64_t steps = (t + f - 1) / f;
  torch::Tensor x = torch::constant_pad_nd(cond.reshape({b * c, 1, t}), {0, steps * f - t});
  torch::Tensor out = torch::conv1d(x, filters, torch::Tensor(), torch::IntArrayRef{f});
  return out.reshape({b, c * filters.size(0), steps});
}

// Values and the filters' gradient against the composite in double: a
// partial last block, a whole number of blocks, a narrowed (in place) view
// of wider features; forward without autograd equals forward with it.
TEST(FoldedFeaturesTest, ValuesAndFilterGradientEqualTheComposite) {
  torch::manual_seed(3);
  for (const auto& [batch, channels, t, m, f] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{2, 5, 100, 2, 16},
        {3, 4, 64, 1, 8}, {1, 37, 203, 3, 16}}) {
    const torch::Tensor wide = torch::randn({batch, channels, t + 7});
    const torch::Tensor cond = wide.narrow(2, 4, t);
    const torch::Tensor filters = torch::randn({m, 1, f});
    const torch::Tensor grad_out = torch::randn({batch, channels * m, (t + f - 1) / f});
    ASSERT_TRUE(FoldedFeaturesApplies(cond, filters));
    torch::Tensor w = filters.clone().requires_grad_();
    torch::Tensor out = FoldedFeatures(cond, w);
    torch::Tensor wd = filters.to(torch::kDouble).requires_grad_();
    torch::Tensor reference = Composite(cond.to(torch::kDouble), wd);
    ASSERT_EQ(out.sizes(), reference.sizes());
    EXPECT_TRUE(torch::allclose(out.to(torch::kDouble), reference, 1e-5, 1e-5));
    out.backward(grad_out);
    reference.backward(grad_out.to(torch::kDouble));
    EXPECT_TRUE(torch::allclose(w.grad().to(torch::kDouble), wd.grad(), 1e-4, 1e-4))
        << (w.grad().to(torch::kDouble) - wd.grad()).abs().max().item<double>();
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(FoldedFeatures(cond, w), out.detach()));
  }
}

TEST(FoldedFeaturesTest, SameValuesAndGradientForAnyThreadCount) {
  torch::manual_seed(4);
  const torch::Tensor cond = torch::randn({4, 45, 333});
  const torch::Tensor filters = torch::randn({2, 1, 16});
  ExpectSameBitsOnOneAndTwoThreads(filters, [&](const torch::Tensor& w) {
    return FoldedFeatures(cond, w);
  });
}

TEST(FoldedFeaturesTest, RejectsFeaturesThatNeedAGradient) {
  const torch::Tensor cond = torch::randn({1, 2, 32}).requires_grad_();
  EXPECT_THROW(FoldedFeatures(cond, torch::randn({2, 1, 16})), c10::Error);
}

}  // namespace
}  // namespace pianola
