#include "trainer/wavenet.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/kernel_variants_for_test.h"
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
// The same span for the parallel decoder from the gradient of output t with
// respect to the noise (or the MIDI features, any channel), in double: a
// position counts when its gradient is nonzero. Unlike a perturbation, this
// does not need the farthest inputs' influence to survive next to the
// output's own magnitude (at initialization it can be ~1e-12 of it through a
// deep folded stack).
std::pair<int64_t, int64_t> GradientSpan(WaveNet& net, int64_t n, int64_t t, bool wrt_cond) {
  net->to(torch::kDouble);
  torch::Tensor input = torch::randn({1, n}, torch::kDouble).requires_grad_(!wrt_cond);
  torch::Tensor cond =
      torch::rand({1, net->config().cond_channels, n}, torch::kDouble).requires_grad_(wrt_cond);
  torch::Tensor z = torch::randn({1, net->z_dim()}, torch::kDouble);
  net->forward(input, cond, z).select(1, t).sum().backward();
  torch::Tensor grad = wrt_cond ? cond.grad().abs().sum(1)[0] : input.grad().abs()[0];
  torch::Tensor nonzero = torch::nonzero(grad != 0).flatten();
  if (nonzero.numel() == 0) return {n, -1};
  // Contiguous: every position between the extremes matters too.
  EXPECT_EQ(nonzero.numel(), nonzero.max().item<int64_t>() - nonzero.min().item<int64_t>() + 1);
  return {nonzero.min().item<int64_t>(), nonzero.max().item<int64_t>()};
}

// `perturb_cond`: perturb the MIDI features (all channels at one position)
// instead of the decoder input.
std::pair<int64_t, int64_t> DependencySpan(WaveNet& net, int64_t n, int64_t t,
                                           bool perturb_cond = false) {
  torch::NoGradGuard no_grad;
  net->to(torch::kDouble);
  const bool ar = net->autoregressive();
  torch::Tensor input = ar ? torch::randint(0, 256, {1, n}, torch::kLong)
                           : torch::randn({1, n}, torch::kDouble);
  torch::Tensor cond = torch::rand({1, net->config().cond_channels, n}, torch::kDouble);
  torch::Tensor z = torch::randn({1, net->z_dim()}, torch::kDouble);
  auto output_at_t = [&](const torch::Tensor& in, const torch::Tensor& c) {
    torch::Tensor out = net->forward(in, c, z);
    return ar ? out.select(2, t) : out.select(1, t);
  };
  const torch::Tensor base = output_at_t(input, cond);
  int64_t first = n, last = -1;
  for (int64_t p = 0; p < n; ++p) {
    torch::Tensor changed = input.clone();
    torch::Tensor changed_cond = cond;
    if (perturb_cond) {
      changed_cond = cond.clone();
      changed_cond.select(2, p) += 1.0;
    } else if (ar) {
      changed[0][p] = (changed[0][p].item<int64_t>() + 128) % 256;
    } else {
      changed[0][p] += 1.0;
    }
    if (!output_at_t(changed, changed_cond).equal(base)) {
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

TEST_F(WaveNetTest, UnfoldedParallelReceptiveFieldIsSymmetric) {
  ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
  c.decoder.fold = 1;
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t half = (net->receptive_field() - 1) / 2;
  ASSERT_EQ(half, 30);
  ASSERT_EQ(net->context_samples(), half);
  auto [first, last] = DependencySpan(net, 100, 50);
  EXPECT_EQ(first, 50 - half);
  EXPECT_EQ(last, 50 + half);
  auto [grad_first, grad_last] = GradientSpan(net, 100, 50, /*wrt_cond=*/false);
  EXPECT_EQ(grad_first, 50 - half);
  EXPECT_EQ(grad_last, 50 + half);
}

// With fold F an output depends on whole blocks of F samples: its own block
// and context / F blocks on each side of the noise, wherever the output sits
// in its block: the receptive field. The MIDI features enter every layer
// after its dilated conv, so they reach one first-layer dilation (one block)
// less on each side.
TEST_F(WaveNetTest, FoldedParallelReceptiveFieldIsWholeBlocks) {
  ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
  const int64_t f = c.decoder.fold;
  ASSERT_EQ(f, 8);
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t rf = net->receptive_field();
  const int64_t context = net->context_samples();
  ASSERT_EQ(rf, 8 * 61);
  ASSERT_EQ(context, 8 * 30);
  const int64_t n = 700 + 3;  // not a multiple of F: the last block is padded
  for (int64_t t : {344, 351, 353}) {
    const int64_t block_start = t / f * f;
    for (bool cond : {false, true}) {
      auto [first, last] = GradientSpan(net, n, t, cond);
      const int64_t reach = cond ? context - f : context;
      EXPECT_EQ(first, block_start - reach) << t << (cond ? " cond" : " noise");
      EXPECT_EQ(last, block_start + f - 1 + reach) << t << (cond ? " cond" : " noise");
      if (!cond) {
        EXPECT_EQ(last - first + 1, rf) << t;
      }
    }
  }
  // Near the end: the padded last block is read like any other.
  auto [first, last] = GradientSpan(net, n, n - 1, /*wrt_cond=*/false);
  EXPECT_EQ(first, (n - 1) / f * f - context);
  EXPECT_EQ(last, n - 1);
}

// The MIDI features reach the folded rate through a strided conv (kernel F,
// stride F, per channel) computed as one matmul; checked against torch's own
// strided conv1d on a length that is not a multiple of F.
TEST_F(WaveNetTest, FoldedConditioningIsAStridedConv) {
  ModelConfig c = *ModelPreset("small", DecoderKind::kParallel);
  const int64_t f = c.decoder.fold, m = c.decoder.cond_fold_filters;
  WaveNet net(c.decoder, c.encoder.z_dim);
  torch::NoGradGuard no_grad;
  const int64_t b = 2, n = 10 * f + 5, steps = 11;
  torch::Tensor cond = torch::rand({b, kMidiFeatureChannels, n});
  torch::Tensor hidden = net->ConditioningHidden(cond);
  ASSERT_EQ(hidden.sizes(), (std::vector<int64_t>{b, c.decoder.cond_hidden_channels, steps}));
  torch::Tensor fold_weight = net->named_parameters()["cond_fold.weight"];
  ASSERT_EQ(fold_weight.sizes(), (std::vector<int64_t>{m, 1, f}));
  torch::Tensor padded = torch::constant_pad_nd(cond, {0, steps * f - n});
  torch::Tensor per_channel =
      torch::conv1d(padded.reshape({b * kMidiFeatureChannels, 1, steps * f}), fold_weight, {}, f)
          .reshape({b, kMidiFeatureChannels * m, steps});  // channel c, filter j -> c * M + j
  torch::Tensor expected =
      torch::conv1d(per_channel, net->named_parameters()["cond_hidden.weight"],
                    net->named_parameters()["cond_hidden.bias"]);
  EXPECT_LT((hidden - expected).abs().max().item<float>(), 1e-4);
}

// Folding keeps an onset impulse and where it falls within its block.
TEST_F(WaveNetTest, FoldedConditioningKeepsOnsetsAndTheirPosition) {
  ModelConfig c = *ModelPreset("small", DecoderKind::kParallel);
  const int64_t f = c.decoder.fold;
  WaveNet net(c.decoder, c.encoder.z_dim);
  torch::NoGradGuard no_grad;
  const int64_t n = 8 * f;
  auto hidden_with_onset_at = [&](int64_t t) {
    torch::Tensor cond = torch::zeros({1, kMidiFeatureChannels, n});
    if (t >= 0) cond[0][40][t] = 0.8;  // one onset impulse
    return net->ConditioningHidden(cond).select(2, 3);  // block 3
  };
  const torch::Tensor silent = hidden_with_onset_at(-1);
  const torch::Tensor at_start = hidden_with_onset_at(3 * f);
  const torch::Tensor at_five = hidden_with_onset_at(3 * f + 5);
  EXPECT_GT((at_start - silent).abs().max().item<float>(), 1e-4);
  EXPECT_GT((at_five - silent).abs().max().item<float>(), 1e-4);
  EXPECT_GT((at_five - at_start).abs().max().item<float>(), 1e-4);
}

// Both forward paths: below kInPlaceMinSteps the training path, at or above
// it (without autograd) the in-place inference path.
TEST_F(WaveNetTest, AutoregressiveOutputIgnoresTheFuture) {
  for (ArInput kind : {ArInput::kEmbedding, ArInput::kScalar}) {
    for (int64_t n : {int64_t{120}, 2 * WaveNetImpl::kInPlaceMinSteps}) {
      SCOPED_TRACE(::testing::Message() << "n " << n);
      ModelConfig c = *ModelPreset("tiny");
      c.decoder.ar_input = kind;
      WaveNet net(c.decoder, c.encoder.z_dim);
      torch::NoGradGuard no_grad;
      const int64_t t = n * 7 / 12;
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
}

// z enters every layer: another timbre vector changes every output position
// of both decoders; the same one gives the same output.
TEST_F(WaveNetTest, TimbreVectorChangesTheOutput) {
  torch::NoGradGuard no_grad;
  for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
    ModelConfig c = *ModelPreset("tiny", kind);
    WaveNet net(c.decoder, c.encoder.z_dim);
    const int64_t n = 320;
    torch::Tensor input = kind == DecoderKind::kAutoregressive
                              ? torch::randint(0, 256, {1, n}, torch::kLong)
                              : torch::randn({1, n});
    torch::Tensor cond = torch::rand({1, kMidiFeatureChannels, n});
    torch::Tensor z = torch::randn({1, c.encoder.z_dim});
    torch::Tensor a = net->forward(input, cond, z);
    EXPECT_TRUE(a.equal(net->forward(input, cond, z.clone())));
    torch::Tensor b = net->forward(input, cond, z + 0.5 * torch::randn_like(z));
    torch::Tensor diff = (a - b).abs();
    if (diff.dim() == 3) diff = std::get<0>(diff.max(1));  // logits: over the classes
    EXPECT_GT(diff.min().item<float>(), 0) << DecoderKindName(kind);
  }
}

TEST_F(WaveNetTest, ShapesForEveryPreset) {
  torch::NoGradGuard no_grad;
  for (const std::string& preset : ModelPresetNames()) {
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

// Without autograd the decoder runs an in-place path (ForwardNoGrad); it
// computes the same function as the training path.
TEST_F(WaveNetTest, InferencePathEqualsTrainingPath) {
  ForEachKernelVariant([&] {
    struct Case {
      const char* preset;
      DecoderKind kind;
      int fold;  // parallel only; 0: the preset's
      ArInput input;
      bool z, cond;
    };
    const Case cases[] = {
        {"tiny", DecoderKind::kAutoregressive, 0, ArInput::kEmbedding, true, true},
        {"tiny", DecoderKind::kAutoregressive, 0, ArInput::kScalar, true, true},
        {"tiny", DecoderKind::kAutoregressive, 0, ArInput::kEmbedding, false, false},
        {"tiny", DecoderKind::kParallel, 0, ArInput::kEmbedding, true, true},
        {"tiny", DecoderKind::kParallel, 1, ArInput::kEmbedding, true, true},
        {"tiny", DecoderKind::kParallel, 0, ArInput::kEmbedding, false, false},
        {"small", DecoderKind::kParallel, 0, ArInput::kEmbedding, true, true},
    };
    for (const Case& c : cases) {
      ModelConfig config = *ModelPreset(c.preset, c.kind);
      config.decoder.ar_input = c.input;
      if (c.fold > 0) config.decoder.fold = c.fold;
      if (!c.cond) config.decoder.cond_channels = 0;
      WaveNet net(config.decoder, c.z ? config.encoder.z_dim : 0);
      for (int64_t batch : {1, 2}) {
        // Long enough for the in-place path, not a multiple of the fold.
        const int64_t n = WaveNetImpl::kInPlaceMinSteps * net->fold() + 3;
        torch::Tensor input = c.kind == DecoderKind::kAutoregressive
                                  ? torch::randint(0, 256, {batch, n}, torch::kLong)
                                  : torch::randn({batch, n});
        torch::Tensor cond =
            c.cond ? torch::rand({batch, kMidiFeatureChannels, n}) : torch::Tensor();
        torch::Tensor z = c.z ? torch::randn({batch, config.encoder.z_dim}) : torch::Tensor();
        torch::Tensor training = net->forward(input, cond, z).detach();
        torch::Tensor inference;
        {
          torch::NoGradGuard no_grad;
          inference = net->forward(input, cond, z);
        }
        ASSERT_EQ(training.sizes(), inference.sizes());
        EXPECT_LT((training - inference).abs().max().item<float>(),
                  1e-5 * (1 + training.abs().max().item<float>()))
            << c.preset << " " << DecoderKindName(c.kind) << " fold " << c.fold << " batch "
            << batch;
      }
    }
  });
}

// forward(..., first_output) computes only what the outputs from
// first_output on read: its values and its gradients (with respect to the
// parameters and the inputs) equal those of the full forward narrowed to
// the same outputs. In double, so the comparison is tight.
TEST_F(WaveNetTest, CroppedForwardEqualsTheFullForwardNarrowed) {
  struct Case {
    DecoderKind kind;
    int fold;  // parallel only; 0: the preset's
    int64_t first_output;  // -1: the training loss's (context - 1 or context)
  };
  const Case cases[] = {
      {DecoderKind::kAutoregressive, 0, -1},  // no padding at all
      {DecoderKind::kAutoregressive, 0, 5},   // shorter than the receptive field
      {DecoderKind::kAutoregressive, 0, 0},
      {DecoderKind::kParallel, 0, -1},
      {DecoderKind::kParallel, 0, 13},        // inside a folded block
      {DecoderKind::kParallel, 1, -1},
      {DecoderKind::kParallel, 1, 7},
  };
  for (const Case& c : cases) {
    ModelConfig config = *ModelPreset("tiny", c.kind);
    if (c.fold > 0) config.decoder.fold = c.fold;
    WaveNet net(config.decoder, config.encoder.z_dim);
    net->to(torch::kDouble);
    const bool ar = c.kind == DecoderKind::kAutoregressive;
    const int64_t context = ContextSamples(config);
    const int64_t first = c.first_output >= 0 ? c.first_output : (ar ? context - 1 : context);
    const int64_t n = context + 203;  // not a multiple of the fold
    torch::Tensor input = ar ? torch::randint(0, 256, {2, n}, torch::kLong)
                             : torch::randn({2, n}, torch::kDouble).requires_grad_();
    torch::Tensor cond = torch::rand({2, kMidiFeatureChannels, n}, torch::kDouble).requires_grad_();
    torch::Tensor z = torch::randn({2, config.encoder.z_dim}, torch::kDouble);
    torch::Tensor weights = torch::randn(ar ? std::vector<int64_t>{2, 256, n - first}
                                            : std::vector<int64_t>{2, n - first},
                                         torch::kDouble);
    auto grads = [&](const torch::Tensor& out) {
      net->zero_grad();
      if (!ar) input.mutable_grad() = torch::Tensor();
      cond.mutable_grad() = torch::Tensor();
      (out * weights).sum().backward();
      std::vector<torch::Tensor> all;
      for (const torch::Tensor& p : net->parameters()) all.push_back(p.grad().clone());
      if (!ar) all.push_back(input.grad().clone());
      all.push_back(cond.grad().clone());
      return all;
    };
    const std::string name = absl::StrCat(DecoderKindName(c.kind), " fold ", net->fold(),
                                          " first_output ", first);
    torch::Tensor full = net->forward(input, cond, z).narrow(-1, first, n - first);
    const std::vector<torch::Tensor> full_grads = grads(full);
    torch::Tensor cropped = net->forward(input, cond, z, first);
    ASSERT_EQ(cropped.sizes(), full.sizes()) << name;
    EXPECT_TRUE(torch::allclose(cropped, full, 1e-10, 1e-10)) << name;
    const std::vector<torch::Tensor> cropped_grads = grads(cropped);
    ASSERT_EQ(cropped_grads.size(), full_grads.size());
    for (size_t i = 0; i < full_grads.size(); ++i) {
      EXPECT_TRUE(torch::allclose(cropped_grads[i], full_grads[i], 1e-9, 1e-10))
          << name << ", gradient " << i;
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
