#include "trainer/checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/autoencoder.h"
#include "trainer/checkpoint_file.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / absl::StrCat("ckpt_", name, "_", ::getpid());
  (void)RemoveTree(dir);
  fs::create_directories(dir);
  return dir.string();
}

ModelConfig Tiny() { return *ModelPreset("tiny", DecoderKind::kParallel); }

// Batches come from their own generator, so the default one (the parallel
// decoder's noise, which checkpoints carry) is left alone.
ModelBatch RandomBatch(const ModelConfig& c, int64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  const int64_t n = ContextSamples(c) + 512;
  return {.audio = torch::rand({2, n}, gen) * 0.2 - 0.1,
          .conditioning =
              (torch::rand({2, kMidiFeatureChannels, n}, gen) > 0.99).to(torch::kFloat),
          .reference = torch::rand({2, 1024}, gen) * 0.2 - 0.1};
}

// A model, an optimizer with state, EMA weights and counters, as a run has them.
struct RunState {
  Autoencoder model{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer;
  std::vector<torch::Tensor> ema;
  std::vector<int64_t> counters;

  explicit RunState(uint64_t seed) {
    torch::manual_seed(seed);
    model = *MakeAutoencoder(Tiny());
    optimizer = std::make_unique<torch::optim::Adam>(model->parameters(),
                                                     torch::optim::AdamOptions(1e-3));
    for (const torch::Tensor& p : model->parameters()) ema.push_back(p.detach().clone());
    counters = {0, 0};
  }
  TrainingStateRefs refs() {
    return {.model = model.get(), .optimizer = optimizer.get(), .ema = &ema,
            .counters = &counters};
  }
  // One optimizer step on a fixed batch; returns the loss.
  double Step(int64_t seed) {
    ModelBatch b = RandomBatch(Tiny(), seed);
    optimizer->zero_grad();
    torch::Tensor loss = model->Loss(b)->total;  // noise from the default generator
    loss.backward();
    optimizer->step();
    torch::NoGradGuard no_grad;
    auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) ema[i].mul_(0.9).add_(params[i], 0.1);
    return loss.item<double>();
  }
};

void ExpectSameTensors(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

TEST(CheckpointTest, RoundTripRestoresEverythingBitExactly) {
  torch::set_num_threads(2);
  const std::string out = TempDir("roundtrip");
  RunState a(1);
  a.Step(10);
  a.Step(11);
  a.counters = {3, 1};
  CheckpointContents meta;
  meta.step = 2;
  meta.data_epoch = 1;
  meta.data_cursor = 8;
  meta.config_bytes = "cfg";
  torch::manual_seed(77);  // generator state at save time
  absl::StatusOr<std::string> path = SaveCheckpoint(out, 3, meta, a.refs());
  ASSERT_TRUE(path.ok()) << path.status();
  const double next_a = a.Step(12);  // continues from the saved generator state
  const auto params_a = a.model->parameters();

  RunState b(999);  // different initialization
  absl::StatusOr<CheckpointContents> loaded = LoadCheckpoint(*path, torch::kCPU, b.refs());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->step, 2);
  EXPECT_EQ(loaded->data_epoch, 1u);
  EXPECT_EQ(loaded->data_cursor, 8u);
  EXPECT_EQ(loaded->config_bytes, "cfg");
  EXPECT_EQ(b.counters, (std::vector<int64_t>{3, 1}));
  // The same next step (parameters, Adam moments, EMA, noise) gives the same
  // loss and parameters, bit for bit.
  const double next_b = b.Step(12);
  EXPECT_EQ(next_a, next_b);
  ExpectSameTensors(params_a, b.model->parameters());
  ExpectSameTensors(a.ema, b.ema);

  // Inference loads the model alone (no optimizer, EMA or counters).
  Autoencoder c = *MakeAutoencoder(Tiny());
  ASSERT_TRUE(LoadCheckpoint(*path, torch::kCPU, {.model = c.get()}).ok());
  auto params_c = c->parameters();
  ASSERT_TRUE(LoadCheckpoint(*path, torch::kCPU, b.refs()).ok());
  ExpectSameTensors(params_c, b.model->parameters());
}

TEST(CheckpointTest, CorruptedFilesAreRejectedNamingTheFile) {
  torch::set_num_threads(2);
  const std::string out = TempDir("corrupt");
  RunState a(1);
  a.Step(10);
  absl::StatusOr<std::string> path = SaveCheckpoint(out, 0, CheckpointContents{}, a.refs());
  ASSERT_TRUE(path.ok()) << path.status();
  const std::string good = *ReadFile(*path);

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x01;  // inside the tensor payload
  ASSERT_TRUE(WriteFileAtomic(*path, flipped).ok());
  RunState b(2);
  absl::StatusOr<CheckpointContents> r = LoadCheckpoint(*path, torch::kCPU, b.refs());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(*path));

  ASSERT_TRUE(WriteFileAtomic(*path, good.substr(0, good.size() - 100)).ok());
  r = LoadCheckpoint(*path, torch::kCPU, b.refs());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("truncated"));

  ASSERT_TRUE(WriteFileAtomic(*path, good).ok());
  EXPECT_TRUE(LoadCheckpoint(*path, torch::kCPU, b.refs()).ok());
}

TEST(CheckpointTest, PayloadOfAnotherModelIsDataLoss) {
  torch::set_num_threads(2);
  const std::string out = TempDir("mismatch");
  RunState a(1);
  absl::StatusOr<std::string> path = SaveCheckpoint(out, 0, CheckpointContents{}, a.refs());
  ASSERT_TRUE(path.ok());
  ModelConfig bigger = Tiny();
  bigger.decoder.residual_channels = 24;
  Autoencoder other = *MakeAutoencoder(bigger);
  torch::optim::Adam opt(other->parameters(), torch::optim::AdamOptions(1e-3));
  absl::StatusOr<CheckpointContents> r =
      LoadCheckpoint(*path, torch::kCPU, {.model = other.get(), .optimizer = &opt});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("does not fit"));
}

}  // namespace
}  // namespace pianola
