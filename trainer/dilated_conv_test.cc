#include "trainer/dilated_conv.h"

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/intra_op_threads_for_test.h"
#include "trainer/kernel_variants_for_test.h"

namespace pianola {
namespace {

// The definition in double with torch's ops, for the oracle.
torch::Tensor Composite(const torch::Tensor& x, int64_t left, int64_t right, int64_t dilation,
                        const torch::Tensor& weight, const torch::Tensor& cond_weight,
                        const torch::Tensor& hidden, const torch::Tensor& bias) {
  torch::Tensor a = torch::conv1d(torch::constant_pad_nd(x, {left, right}), weight, torch::Tensor(),
                                  torch::IntArrayRef{1}, torch::IntArrayRef{0},
                                  torch::IntArrayRef{dilation});
  if (hidden.defined()) a = a + torch::conv1d(hidden, cond_weight);
  return a + bias.unsqueeze(-1);
}

// Values and every gradient of the fused float path against the composite
// in double: causal (left padding only), centred, and the cropped
// training forward's asymmetric padding; with and without MIDI rows; output
// lengths off the 16-column tiles; a dilation reaching past the whole
// input; x and hidden as slices of wider buffers (read in place).
TEST(DilatedConvTest, ValuesAndGradientsEqualTheComposite) {
  ForEachKernelVariant([&] {
    torch::manual_seed(7);
    struct Case {
      int64_t batch, r, g2, h, k, dilation, t_in, left, right;
    };
    const Case cases[] = {
        {2, 5, 14, 3, 2, 4, 37, 4, 0},    // causal
        {3, 8, 12, 0, 3, 2, 50, 2, 2},    // centred, no MIDI rows
        {1, 7, 10, 6, 3, 8, 29, 3, 8},    // cropped: less padding on the left
        {2, 16, 32, 16, 3, 1, 250, 1, 1}, // the small parallel decoder's shape class
        {2, 48, 40, 0, 1, 1, 70, 0, 0},   // one tap: a 1x1 convolution
        {2, 6, 12, 4, 2, 40, 30, 40, 0},  // causal, the tap reaches past the input
    };
    for (const Case& c : cases) {
      const int64_t t_out = c.left + c.t_in + c.right - (c.k - 1) * c.dilation;
      // Slices of wider buffers, as the cropped forward passes them.
      torch::Tensor x_full = torch::randn({c.batch, c.r, c.t_in + 4});
      torch::Tensor weight = torch::randn({c.g2, c.r, c.k}) * 0.3;
      torch::Tensor cond_weight = c.h > 0 ? torch::randn({c.g2, c.h, 1}) * 0.3 : torch::Tensor();
      torch::Tensor hidden_full =
          c.h > 0 ? torch::randn({c.batch, c.h, t_out + 5}) : torch::Tensor();
      torch::Tensor bias = torch::randn({c.batch, c.g2});
      torch::Tensor grad_out = torch::randn({c.batch, c.g2, t_out});

      auto leaves = [&](torch::ScalarType type) {
        auto leaf = [&](const torch::Tensor& t) { return t.to(type).clone().requires_grad_(); };
        std::vector<torch::Tensor> v = {leaf(x_full), leaf(weight), leaf(bias)};
        if (c.h > 0) {
          v.push_back(leaf(cond_weight));
          v.push_back(leaf(hidden_full));
        }
        return v;
      };
      std::vector<torch::Tensor> f = leaves(torch::kFloat), d = leaves(torch::kDouble);
      auto hidden_of = [&](const std::vector<torch::Tensor>& v) {
        return c.h > 0 ? v[4].narrow(2, 3, t_out) : torch::Tensor();
      };
      auto cond_of = [&](const std::vector<torch::Tensor>& v) {
        return c.h > 0 ? v[3] : torch::Tensor();
      };
      auto x_of = [&](const std::vector<torch::Tensor>& v) { return v[0].narrow(2, 2, c.t_in); };
      ASSERT_TRUE(DilatedConvApplies(f[0], f[1]));
      torch::Tensor fused = DilatedConv(x_of(f), c.left, c.right, c.dilation, f[1], cond_of(f),
                                        hidden_of(f), f[2]);
      torch::Tensor reference = Composite(x_of(d), c.left, c.right, c.dilation, d[1], cond_of(d),
                                          hidden_of(d), d[2]);
      ASSERT_EQ(fused.sizes(), reference.sizes());
      EXPECT_TRUE(torch::allclose(fused.to(torch::kDouble), reference, 1e-5, 1e-5))
          << (fused.to(torch::kDouble) - reference).abs().max().item<double>();
      fused.backward(grad_out);
      reference.backward(grad_out.to(torch::kDouble));
      for (size_t i = 0; i < f.size(); ++i) {
        ASSERT_TRUE(f[i].grad().defined()) << "leaf " << i;
        EXPECT_TRUE(torch::allclose(f[i].grad().to(torch::kDouble), d[i].grad(), 1e-4, 1e-4))
            << "leaf " << i << " t_in " << c.t_in << ": "
            << (f[i].grad().to(torch::kDouble) - d[i].grad()).abs().max().item<double>();
      }
    }
  });
}

// One tap, no padding: a 1x1 convolution, as WaveNet's Pointwise uses it in
// training (residual, skip, head and input convolutions). The input here is
// a transposed view (the folded noise's blocks) that needs no gradient: the
// input gradient is skipped, the weight and bias gradients are exact.
TEST(DilatedConvTest, OneTapIsAPointwiseConvolutionOnAStridedInput) {
  torch::manual_seed(11);
  const int64_t batch = 3, in = 16, out = 40, steps = 77;
  torch::Tensor blocks = torch::randn({batch, steps, in});  // [B, T', F]
  torch::Tensor weight = torch::randn({out, in, 1}) * 0.3;
  torch::Tensor bias = torch::randn({out});
  torch::Tensor grad_out = torch::randn({batch, out, steps});

  torch::Tensor wf = weight.clone().requires_grad_(), bf = bias.clone().requires_grad_();
  torch::Tensor x = blocks.transpose(1, 2);  // [B, F, T'], time stride F
  ASSERT_FALSE(x.is_contiguous());
  torch::Tensor fused = DilatedConv(x, 0, 0, 1, wf, torch::Tensor(), torch::Tensor(),
                                    bf.unsqueeze(0).expand({batch, out}));
  torch::Tensor wd = weight.to(torch::kDouble).requires_grad_();
  torch::Tensor bd = bias.to(torch::kDouble).requires_grad_();
  torch::Tensor reference = torch::conv1d(x.to(torch::kDouble), wd, bd);
  EXPECT_TRUE(torch::allclose(fused.to(torch::kDouble), reference, 1e-5, 1e-5));
  fused.backward(grad_out);
  reference.backward(grad_out.to(torch::kDouble));
  EXPECT_TRUE(torch::allclose(wf.grad().to(torch::kDouble), wd.grad(), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(bf.grad().to(torch::kDouble), bd.grad(), 1e-4, 1e-4));
}

// Threads split columns and weight-gradient rows: the results do not depend
// on the thread count.
TEST(DilatedConvTest, SameValuesForAnyThreadCount) {
  torch::manual_seed(9);
  torch::Tensor x = torch::randn({2, 12, 300});
  torch::Tensor weight = torch::randn({24, 12, 3});
  torch::Tensor cond_weight = torch::randn({24, 6, 1});
  torch::Tensor hidden = torch::randn({2, 6, 300});
  torch::Tensor bias = torch::randn({2, 24});
  ExpectSameBitsOnOneAndTwoThreads(weight, [&](const torch::Tensor& w) {
    return DilatedConv(x, 4, 4, 4, w, cond_weight, hidden, bias);
  });
}

}  // namespace
}  // namespace pianola
