#include "trainer/wavenet.h"

#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/model_config.h"

namespace pianola {
namespace {

class WaveNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(11);
  }
};

// The span of input positions that output t depends on, measured by
// perturbing one input position at a time: [first, last] that change it. In
// double precision: at initialization the influence of the farthest inputs,
// through every layer's gate, can fall below float resolution.
std::pair<int64_t, int64_t> DependencySpan(WaveNet& net, int64_t n, int64_t t) {
  torch::NoGradGuard no_grad;
  net->to(torch::kDouble);
  const bool ar = net->autoregressive();
  torch::Tensor input = ar ? torch::randint(0, 256, {1, n}, torch::kLong)
                           : torch::randn({1, n}, torch::kDouble);
  torch::Tensor cond = torch::rand({1, net->config().cond_channels, n}, torch::kDouble);
  torch::Tensor z = torch::randn({1, net->z_dim()}, torch::kDouble);
  auto output_at_t = [&](const torch::Tensor& in) {
    torch::Tensor out = net->forward(in, cond, z);
    return ar ? out.select(2, t) : out.select(1, t);
  };
  const torch::Tensor base = output_at_t(input);
  int64_t first = n, last = -1;
  for (int64_t p = 0; p < n; ++p) {
    torch::Tensor changed = input.clone();
    if (ar) {
      changed[0][p] = (changed[0][p].item<int64_t>() + 128) % 256;
    } else {
      changed[0][p] += 1.0;
    }
    if (!output_at_t(changed).equal(base)) {
      first = std::min(first, p);
      last = std::max(last, p);
    }
  }
  return {first, last};
}

TEST_F(WaveNetTest, AutoregressiveReceptiveFieldIsMeasuredExactly) {
  ModelConfig c = *ModelPreset("tiny");
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t rf = net->receptive_field();
  ASSERT_EQ(rf, 31);
  auto [first, last] = DependencySpan(net, 100, 80);
  EXPECT_EQ(first, 80 - rf + 1);
  EXPECT_EQ(last, 80);
}

TEST_F(WaveNetTest, ParallelReceptiveFieldIsSymmetric) {
  ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t half = (net->receptive_field() - 1) / 2;
  ASSERT_EQ(half, 30);
  auto [first, last] = DependencySpan(net, 100, 50);
  EXPECT_EQ(first, 50 - half);
  EXPECT_EQ(last, 50 + half);
}

TEST_F(WaveNetTest, AutoregressiveOutputIgnoresTheFuture) {
  for (ArInput kind : {ArInput::kEmbedding, ArInput::kScalar}) {
    ModelConfig c = *ModelPreset("tiny");
    c.decoder.ar_input = kind;
    WaveNet net(c.decoder, c.encoder.z_dim);
    torch::NoGradGuard no_grad;
    const int64_t n = 120, t = 70;
    torch::Tensor input = torch::randint(0, 256, {2, n}, torch::kLong);
    torch::Tensor cond = torch::rand({2, kMidiFeatureChannels, n});
    torch::Tensor z = torch::randn({2, c.encoder.z_dim});
    torch::Tensor before = net->forward(input, cond, z);
    torch::Tensor input2 = input.clone();
    torch::Tensor cond2 = cond.clone();
    input2.slice(1, t + 1) = torch::randint(0, 256, {2, n - t - 1}, torch::kLong);
    cond2.slice(2, t + 1) = torch::rand({2, kMidiFeatureChannels, n - t - 1});
    torch::Tensor after = net->forward(input2, cond2, z);
    EXPECT_TRUE(before.slice(2, 0, t + 1).equal(after.slice(2, 0, t + 1)));
    // ... and does depend on the present input.
    EXPECT_FALSE(before.slice(2, t + 1).equal(after.slice(2, t + 1)));
  }
}

TEST_F(WaveNetTest, ShapesForTinyAndSmall) {
  torch::NoGradGuard no_grad;
  for (const char* preset : {"tiny", "small"}) {
    for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
      ModelConfig c = *ModelPreset(preset, kind);
      WaveNet net(c.decoder, c.encoder.z_dim);
      const int64_t n = 257;
      torch::Tensor cond = torch::rand({2, kMidiFeatureChannels, n});
      torch::Tensor z = torch::randn({2, c.encoder.z_dim});
      if (kind == DecoderKind::kAutoregressive) {
        torch::Tensor out =
            net->forward(torch::randint(0, 256, {2, n}, torch::kLong), cond, z);
        EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 256, n})) << preset;
      } else {
        torch::Tensor out = net->forward(torch::randn({2, n}), cond, z);
        EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, n})) << preset;
      }
    }
  }
}

TEST_F(WaveNetTest, WorksWithoutConditioningOrZ) {
  ModelConfig c = *ModelPreset("tiny");
  c.decoder.cond_channels = 0;
  WaveNet net(c.decoder, /*z_dim=*/0);
  torch::Tensor out = net->forward(torch::randint(0, 256, {1, 40}, torch::kLong), {}, {});
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{1, 256, 40}));
}

}  // namespace
}  // namespace pianola
