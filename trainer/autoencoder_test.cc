#include "trainer/autoencoder.h"

#include <cmath>

#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/autocast_scope.h"
#include "trainer/model_config.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

class AutoencoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(23);
  }

  // A learnable batch: two notes (sines of different pitch) with matching
  // MIDI features, and a reference clip per example.
  static ModelBatch MakeBatch(int64_t n, int64_t reference = 1024) {
    ModelBatch batch;
    torch::Tensor t = torch::arange(n, torch::kFloat) / 16000.0;
    torch::Tensor a = 0.5 * torch::sin(2 * M_PI * 220.0 * t);
    torch::Tensor b = 0.4 * torch::sin(2 * M_PI * 330.0 * t) * torch::exp(-3.0 * t);
    batch.audio = torch::stack({a, b});
    batch.conditioning = torch::zeros({2, kMidiFeatureChannels, n});
    batch.conditioning[0][57][0] = 100.0 / 127;  // A3
    batch.conditioning[0][88 + 57] = 1.0;
    batch.conditioning[1][64][0] = 90.0 / 127;  // E4
    batch.conditioning[1][88 + 64] = 1.0;
    torch::Tensor tr = torch::arange(reference, torch::kFloat) / 16000.0;
    batch.reference = torch::stack({0.3 * torch::sin(2 * M_PI * 440.0 * tr),
                                    0.3 * torch::sin(2 * M_PI * 660.0 * tr)});
    return batch;
  }

  // Adam on one batch; returns (first loss, best loss within `steps`).
  static std::pair<double, double> Overfit(Autoencoder& model, const ModelBatch& batch, int steps,
                                           double lr, bool fixed_noise) {
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(lr));
    double first = 0, best = 1e30;
    for (int step = 0; step < steps; ++step) {
      std::optional<torch::Generator> rng;
      if (fixed_noise) rng = at::detail::createCPUGenerator(5);
      absl::StatusOr<LossOutput> loss = model->Loss(batch, rng);
      EXPECT_TRUE(loss.ok()) << loss.status();
      if (!loss.ok()) return {0, 0};
      const double value = loss->total.item<double>();
      if (step == 0) first = value;
      best = std::min(best, value);
      if (best < first / 2 && step > 0) {
        std::printf("loss %.3f -> %.3f in %d steps\n", first, best, step);
        break;
      }
      opt.zero_grad();
      loss->total.backward();
      opt.step();
    }
    return {first, best};
  }
};

TEST_F(AutoencoderTest, TinyAutoregressiveOverfitsOneBatch) {
  Autoencoder model = *MakeAutoencoder(*ModelPreset("tiny"));
  ModelBatch batch = MakeBatch(model->context_samples() + 256);
  auto [first, best] = Overfit(model, batch, 300, 3e-3, false);
  EXPECT_NEAR(first, std::log(256.0), 0.5);  // starts near uniform
  EXPECT_LT(best, first / 2) << "first " << first;
}

TEST_F(AutoencoderTest, TinyParallelOverfitsOneBatch) {
  Autoencoder model = *MakeAutoencoder(*ModelPreset("tiny", DecoderKind::kParallel));
  ModelBatch batch = MakeBatch(model->context_samples() + 512);
  // The folded tiny decoder halves its loss in ~240 steps here; the loop
  // stops as soon as it does.
  auto [first, best] = Overfit(model, batch, 500, 3e-3, true);
  EXPECT_LT(best, first / 2) << "first " << first;
}

TEST_F(AutoencoderTest, LossTermsAndForwardShapes) {
  for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
    ModelConfig config = *ModelPreset("tiny", kind);
    config.loss.waveform_l1_weight = 0.5;
    Autoencoder model = *MakeAutoencoder(config);
    ModelBatch batch = MakeBatch(model->context_samples() + 300);
    torch::Tensor out = model->forward(batch);
    LossOutput loss = *model->Loss(batch);
    EXPECT_EQ(loss.total.dim(), 0);
    EXPECT_TRUE(std::isfinite(loss.total.item<double>()));
    if (kind == DecoderKind::kAutoregressive) {
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 256, batch.audio.size(1) - 1}));
      ASSERT_EQ(loss.terms.size(), 1u);
      EXPECT_EQ(loss.terms[0].first, "cross_entropy");
    } else {
      EXPECT_EQ(out.sizes(), batch.audio.sizes());
      ASSERT_EQ(loss.terms.size(), 3u);
      EXPECT_EQ(loss.terms[0].first, "spectral_convergence");
      EXPECT_EQ(loss.terms[2].first, "waveform_l1");
      const double want = loss.terms[0].second.item<double>() +
                          loss.terms[1].second.item<double>() +
                          0.5 * loss.terms[2].second.item<double>();
      EXPECT_NEAR(loss.total.item<double>(), want, 1e-5);
    }
    EXPECT_EQ(model->Encode(batch.reference).sizes(), (std::vector<int64_t>{2, 16}));
  }
}

// The mixed-precision path a CUDA run takes (bf16 autocast: bf16
// convolutions, the torch composites instead of the float CPU kernels, the
// losses in float), run under CPU autocast: the loss and every gradient come
// out float32 and finite, and follow the float run closely. Without the
// log-magnitude term: its gradient goes as 1/|S| in the near-silent bins of
// an untrained decoder's output, so any rounding change turns it (gradient
// cosine 0.94 against float with it here, 0.99998 without).
TEST_F(AutoencoderTest, Bf16AutocastFollowsFloat) {
  for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
    SCOPED_TRACE(DecoderKindName(kind));
    ModelConfig config = *ModelPreset("tiny", kind);
    config.loss.log_magnitude_weight = 0;
    config.loss.waveform_l1_weight = 0.5;
    Autoencoder model = *MakeAutoencoder(config);
    ModelBatch batch = MakeBatch(model->context_samples() + 300);
    auto run = [&](bool bf16) {
      model->zero_grad();
      torch::Tensor total;
      {
        AutocastScope autocast(bf16, /*cache_enabled=*/true, at::kCPU);
        absl::StatusOr<LossOutput> loss = model->Loss(batch, at::detail::createCPUGenerator(5));
        EXPECT_TRUE(loss.ok()) << loss.status();
        total = loss->total;
      }
      EXPECT_EQ(total.scalar_type(), torch::kFloat);
      total.backward();  // outside the scope, as the trainer runs it
      std::vector<torch::Tensor> grads;
      for (const auto& item : model->named_parameters()) {
        const torch::Tensor& grad = item.value().grad();
        EXPECT_TRUE(grad.defined()) << item.key();
        if (!grad.defined()) continue;
        EXPECT_EQ(grad.scalar_type(), torch::kFloat) << item.key();
        grads.push_back(grad.flatten().clone());
      }
      return std::make_pair(total.item<double>(), torch::cat(grads).to(torch::kDouble));
    };
    const auto [loss32, grad32] = run(false);
    const auto [loss16, grad16] = run(true);
    EXPECT_NE(loss16, loss32) << "autocast changed nothing";
    EXPECT_NEAR(loss16, loss32, 0.01 * std::abs(loss32));
    EXPECT_TRUE(torch::isfinite(grad16).all().item<bool>());
    const double cosine =
        ((grad16 * grad32).sum() / (grad16.norm() * grad32.norm())).item<double>();
    std::printf("%s: loss %.5f (float) %.5f (bf16), gradient cosine %.5f\n",
                std::string(DecoderKindName(kind)).c_str(), loss32, loss16, cosine);
    EXPECT_GT(cosine, 0.995);
  }
}

TEST_F(AutoencoderTest, RawDilatedEncoder) {
  ModelConfig config = *ModelPreset("tiny");
  config.encoder.kind = EncoderKind::kRawDilated;
  config.encoder.layers = 4;
  Autoencoder model = *MakeAutoencoder(config);
  ModelBatch batch = MakeBatch(model->context_samples() + 100, 700);
  EXPECT_EQ(model->Encode(batch.reference).sizes(), (std::vector<int64_t>{2, 16}));
  absl::StatusOr<LossOutput> loss = model->Loss(batch);
  ASSERT_TRUE(loss.ok()) << loss.status();
  loss->total.backward();
  for (const auto& p : model->encoder()->parameters()) {
    ASSERT_TRUE(p.grad().defined());
  }
}

// The parameter counts docs/model.md's preset table states: a change to a
// preset must update the table.
TEST_F(AutoencoderTest, PresetSizes) {
  const struct {
    const char* name;
    DecoderKind kind;
    int64_t params;
  } cases[] = {
      {"tiny", DecoderKind::kAutoregressive, 39'536},
      {"tiny", DecoderKind::kParallel, 38'312},
      {"small", DecoderKind::kAutoregressive, 1'063'872},
      {"small", DecoderKind::kParallel, 566'320},
      {"base", DecoderKind::kAutoregressive, 17'025'152},
      {"base", DecoderKind::kParallel, 8'282'064},
  };
  for (const auto& c : cases) {
    ModelConfig config = *ModelPreset(c.name, c.kind);
    Autoencoder model = *MakeAutoencoder(config);
    EXPECT_EQ(model->ParameterCount(), c.params) << c.name << " " << DecoderKindName(c.kind);
    EXPECT_EQ(model->context_samples(), ContextSamples(config));
  }
}

// Every preset's whole model on a real batch: the loss is finite and every
// parameter that the decoder kind uses gets a gradient (base included, on a
// short window).
TEST_F(AutoencoderTest, EveryPresetTrainsOneStep) {
  for (const std::string& name : ModelPresetNames()) {
    for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
      SCOPED_TRACE(name + " " + std::string(DecoderKindName(kind)));
      ModelConfig config = *ModelPreset(name, kind);
      Autoencoder model = *MakeAutoencoder(config);
      ModelBatch batch =
          MakeBatch(model->context_samples() + 2048, MinReferenceSamples(config.encoder) + 1024);
      absl::StatusOr<LossOutput> loss = model->Loss(batch);
      ASSERT_TRUE(loss.ok()) << loss.status();
      ASSERT_TRUE(std::isfinite(loss->total.item<double>()));
      loss->total.backward();
      int64_t without_grad = 0;
      for (const torch::Tensor& p : model->parameters()) {
        without_grad += !p.grad().defined() || p.grad().abs().sum().item<double>() == 0;
      }
      EXPECT_EQ(without_grad, 0);
    }
  }
}

TEST_F(AutoencoderTest, BadBatchesAreInvalidArgumentNamingTheField) {
  Autoencoder model = *MakeAutoencoder(*ModelPreset("tiny"));
  const int64_t n = model->context_samples() + 64;
  struct Case {
    const char* field;
    ModelBatch batch;
  };
  std::vector<Case> cases;
  ModelBatch short_audio = MakeBatch(model->context_samples());
  cases.push_back({"batch.audio", short_audio});
  ModelBatch wrong_cond = MakeBatch(n);
  wrong_cond.conditioning = wrong_cond.conditioning.narrow(1, 0, 88);
  cases.push_back({"batch.conditioning", wrong_cond});
  ModelBatch misaligned = MakeBatch(n);
  misaligned.conditioning = misaligned.conditioning.narrow(2, 0, n - 1);
  cases.push_back({"batch.conditioning", misaligned});
  ModelBatch short_reference = MakeBatch(n, 100);
  cases.push_back({"batch.reference", short_reference});
  ModelBatch no_reference = MakeBatch(n);
  no_reference.reference = torch::Tensor();
  cases.push_back({"batch.reference", no_reference});
  for (const Case& c : cases) {
    absl::StatusOr<LossOutput> loss = model->Loss(c.batch);
    EXPECT_EQ(loss.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(loss.status().message(), HasSubstr(c.field));
  }
  ModelConfig bad = *ModelPreset("tiny");
  bad.decoder.kernel_size = 0;
  EXPECT_EQ(MakeAutoencoder(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
