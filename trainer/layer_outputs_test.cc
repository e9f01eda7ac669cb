#include "trainer/layer_outputs.h"

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/dilated_conv.h"
#include "trainer/intra_op_threads_for_test.h"
#include "trainer/kernel_variants_for_test.h"

namespace pianola {
namespace {

// The definition with torch's ops (in double for the oracle).
std::pair<torch::Tensor, torch::Tensor> Composite(
    const torch::Tensor& gated, const torch::Tensor& x_prev, int64_t res_offset,
    const torch::Tensor& skip_prev, int64_t skip_offset, const torch::Tensor& w_res,
    const torch::Tensor& b_res, const torch::Tensor& w_skip, const torch::Tensor& b_skip,
    double scale) {
  const int64_t len = gated.size(2);
  torch::Tensor x = (torch::conv1d(gated, w_res, b_res) + x_prev.narrow(2, res_offset, len)) *
                    scale;
  torch::Tensor s =
      torch::conv1d(gated.narrow(2, skip_offset, len - skip_offset), w_skip, b_skip) + skip_prev;
  return {x, s};
}

// Values and every gradient against the composite in double: offsets of
// zero and past whole tiles, lengths off the 16-column tiles, a skip that
// reads only the last columns.
TEST(LayerOutputsTest, ValuesAndGradientsEqualTheComposite) {
  ForEachKernelVariant([&] {
    torch::manual_seed(21);
    struct Case {
      int64_t batch, g, r, s, len, res_offset, skip_offset;
    };
    const Case cases[] = {
        {2, 16, 12, 10, 37, 0, 0},   {3, 24, 20, 16, 100, 5, 33},
        {1, 8, 8, 8, 250, 40, 249},  {2, 48, 48, 48, 90, 17, 64},
    };
    for (const Case& c : cases) {
      SCOPED_TRACE(testing::Message() << "len " << c.len << " offsets " << c.res_offset << ", "
                                      << c.skip_offset);
      const int64_t n_skip = c.len - c.skip_offset;
      const std::vector<torch::Tensor> values = {
          torch::randn({c.batch, c.g, c.len}),
          torch::randn({c.batch, c.r, c.res_offset + c.len}),
          torch::randn({c.batch, c.s, n_skip}),
          torch::randn({c.r, c.g, 1}) * 0.3,
          torch::randn({c.r}),
          torch::randn({c.s, c.g, 1}) * 0.3,
          torch::randn({c.s})};
      const torch::Tensor grad_x = torch::randn({c.batch, c.r, c.len});
      const torch::Tensor grad_s = torch::randn({c.batch, c.s, n_skip});
      auto leaves = [&](torch::ScalarType type) {
        std::vector<torch::Tensor> v;
        for (const torch::Tensor& t : values) v.push_back(t.to(type).clone().requires_grad_());
        return v;
      };
      const std::vector<torch::Tensor> f = leaves(torch::kFloat), d = leaves(torch::kDouble);
      const double scale = std::sqrt(0.5);
      ASSERT_TRUE(LayerOutputsApply(f[0], f[3]));
      const auto [x, s] = LayerOutputs(f[0], f[1], c.res_offset, f[2], c.skip_offset, f[3], f[4],
                                       f[5], f[6], scale);
      const auto [xd, sd] = Composite(d[0], d[1], c.res_offset, d[2], c.skip_offset, d[3], d[4],
                                      d[5], d[6], scale);
      EXPECT_TRUE(torch::allclose(x.to(torch::kDouble), xd, 1e-5, 1e-5));
      EXPECT_TRUE(torch::allclose(s.to(torch::kDouble), sd, 1e-5, 1e-5));
      torch::autograd::backward({x, s}, {grad_x, grad_s});
      torch::autograd::backward({xd, sd}, {grad_x.to(torch::kDouble), grad_s.to(torch::kDouble)});
      for (size_t i = 0; i < f.size(); ++i) {
        ASSERT_TRUE(f[i].grad().defined()) << "input " << i;
        EXPECT_TRUE(torch::allclose(f[i].grad().to(torch::kDouble), d[i].grad(), 1e-4, 1e-4))
            << "input " << i << ": "
            << (f[i].grad().to(torch::kDouble) - d[i].grad()).abs().max().item<double>();
      }
    }
  });
}

// The forward is the same arithmetic in the same order as the 1x1
// DilatedConvs and in-place additions it replaces in WaveNet's forward: the
// same bits.
TEST(LayerOutputsTest, ForwardGivesTheSameBitsAsThePointwiseConvolutions) {
  torch::manual_seed(22);
  const torch::Tensor gated = torch::randn({2, 32, 75});
  const torch::Tensor x_prev = torch::randn({2, 24, 80});
  const torch::Tensor skip_prev = torch::randn({2, 16, 60});
  const torch::Tensor w_res = torch::randn({24, 32, 1}), b_res = torch::randn({24});
  const torch::Tensor w_skip = torch::randn({16, 32, 1}), b_skip = torch::randn({16});
  const auto [x, s] =
      LayerOutputs(gated, x_prev, 5, skip_prev, 15, w_res, b_res, w_skip, b_skip, 0.5);
  const auto pointwise = [](const torch::Tensor& in, const torch::Tensor& w,
                            const torch::Tensor& b) {
    return DilatedConv(in, 0, 0, 1, w, torch::Tensor(), torch::Tensor(),
                       b.unsqueeze(0).expand({in.size(0), w.size(0)}));
  };
  EXPECT_TRUE(
      torch::equal(x, pointwise(gated, w_res, b_res).add_(x_prev.narrow(2, 5, 75)).mul_(0.5)));
  EXPECT_TRUE(torch::equal(s, pointwise(gated.narrow(2, 15, 60), w_skip, b_skip).add_(skip_prev)));
}

TEST(LayerOutputsTest, SameBitsOnOneAndTwoThreads) {
  torch::manual_seed(23);
  const torch::Tensor gated = torch::randn({2, 48, 300});
  const torch::Tensor x_prev = torch::randn({2, 48, 310});
  const torch::Tensor skip_prev = torch::randn({2, 48, 200});
  const torch::Tensor w_skip = torch::randn({48, 48, 1}), b = torch::randn({48});
  ExpectSameBitsOnOneAndTwoThreads(torch::randn({48, 48, 1}), [&](const torch::Tensor& w) {
    const auto [x, s] = LayerOutputs(gated, x_prev, 10, skip_prev, 100, w, b, w_skip, b, 0.7);
    return torch::cat({x.flatten(), s.flatten()});
  });
}

}  // namespace
}  // namespace pianola
