#include "trainer/flop_counter.h"

#include <thread>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/dilated_conv.h"
#include "trainer/folded_features.h"
#include "trainer/layer_outputs.h"

namespace pianola {
namespace {

TEST(FlopCounterTest, CountsConvolutionsAndMatrixProductsOnce) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 3, 10});
  FlopCounter counter;
  // Output [2, 4, 8]: 64 outputs x 3 channels x 2 taps multiply-adds.
  const std::vector<int64_t> one = {1}, zero = {0}, two = {2};
  torch::conv1d(x, torch::randn({4, 3, 2}), torch::Tensor(), one, zero, /*dilation=*/two);
  EXPECT_DOUBLE_EQ(counter.flops(), 2.0 * 64 * 3 * 2);
  // Grouped: 2 groups of 2 input channels, output [2, 6, 10] with padding 1.
  torch::conv1d(torch::randn({2, 4, 10}), torch::randn({6, 2, 3}), torch::Tensor(), one, one, one,
                /*groups=*/2);
  EXPECT_DOUBLE_EQ(counter.flops(), 768.0 + 2.0 * 120 * 2 * 3);
  const double before = counter.flops();
  torch::mm(torch::randn({5, 6}), torch::randn({6, 7}));
  EXPECT_DOUBLE_EQ(counter.flops() - before, 2.0 * 5 * 6 * 7);
  torch::bmm(torch::randn({3, 2, 4}), torch::randn({3, 4, 5}));
  EXPECT_DOUBLE_EQ(counter.flops() - before, 420.0 + 2.0 * 3 * 2 * 4 * 5);
  // linear -> addmm, counted once.
  torch::nn::functional::linear(torch::randn({8, 16}), torch::randn({4, 16}), torch::randn({4}));
  EXPECT_DOUBLE_EQ(counter.flops() - before, 420.0 + 240.0 + 2.0 * 8 * 16 * 4);
  // Elementwise work is not counted.
  const double matrix = counter.flops();
  (void)(torch::randn({100}) * 2 + 1).tanh();
  EXPECT_DOUBLE_EQ(counter.flops(), matrix);
}

// The training layer's fused conv (trainer/dilated_conv.h) reports its own
// multiply-adds: the dilated taps and the MIDI rows of every output.
TEST(FlopCounterTest, CountsTheFusedDilatedConv) {
  const torch::Tensor x = torch::randn({2, 3, 10});
  const torch::Tensor weight = torch::randn({4, 3, 2});
  const torch::Tensor cond_weight = torch::randn({4, 5, 1});
  const torch::Tensor bias = torch::randn({2, 4});
  FlopCounter counter;
  // Causal padding 2 at dilation 2: output [2, 4, 10], 3 x 2 + 5 per output.
  (void)DilatedConv(x, 2, 0, 2, weight, cond_weight, torch::randn({2, 5, 10}), bias);
  EXPECT_DOUBLE_EQ(counter.flops(), 2.0 * 2 * 4 * 10 * (3 * 2 + 5));
  const double before = counter.flops();
  (void)DilatedConv(x, 2, 0, 2, weight, torch::Tensor(), torch::Tensor(), bias);
  EXPECT_DOUBLE_EQ(counter.flops() - before, 2.0 * 2 * 4 * 10 * (3 * 2));
}

// A layer's residual and skip products (trainer/layer_outputs.h).
TEST(FlopCounterTest, CountsTheLayerOutputs) {
  FlopCounter counter;
  // gated [2, 6, 20]; 4 residual rows over 20 steps, 3 skip rows over 12.
  (void)LayerOutputs(torch::randn({2, 6, 20}), torch::randn({2, 4, 25}), 5,
                     torch::randn({2, 3, 12}), 8, torch::randn({4, 6, 1}), torch::randn({4}),
                     torch::randn({3, 6, 1}), torch::randn({3}), 0.5);
  EXPECT_DOUBLE_EQ(counter.flops(), 2.0 * 2 * 6 * (4 * 20 + 3 * 12));
}

// The folded decoder's MIDI filter bank (trainer/folded_features.h): M
// filters of F taps per block, the zero-padded last block included.
TEST(FlopCounterTest, CountsTheFoldedFeatures) {
  FlopCounter counter;
  // [2, 3, 40] in blocks of 16: 3 blocks per channel, 2 filters.
  (void)FoldedFeatures(torch::randn({2, 3, 40}), torch::randn({2, 1, 16}).requires_grad_());
  EXPECT_DOUBLE_EQ(counter.flops(), 2.0 * 2 * 3 * 2 * 3 * 16);
}

TEST(FlopCounterTest, CountsOnlyItsThreadAndOnlyWhileAlive) {
  torch::NoGradGuard no_grad;
  const torch::Tensor a = torch::randn({4, 4});
  double flops = 0;
  {
    FlopCounter counter;
    std::thread([&] { torch::mm(a, a); }).join();
    EXPECT_EQ(counter.flops(), 0.0);
    torch::mm(a, a);
    flops = counter.flops();
  }
  EXPECT_DOUBLE_EQ(flops, 2.0 * 64);
  torch::mm(a, a);  // no counter: nothing to count into
  FlopCounter again;
  EXPECT_EQ(again.flops(), 0.0);
}

}  // namespace
}  // namespace pianola
