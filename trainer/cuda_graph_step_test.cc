#include "trainer/cuda_graph_step.h"

#include <memory>
#include <vector>

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/autoencoder.h"
#include "trainer/fused_adam.h"
#include "trainer/grad_clip.h"
#include "trainer/model_config.h"

namespace pianola {
namespace {

TEST(CudaGraphStepTest, RefusesDevicesThatCannotCapture) {
  absl::StatusOr<std::unique_ptr<CudaGraphStep>> cpu = CudaGraphStep::Create(torch::kCPU);
  ASSERT_FALSE(cpu.ok());
  EXPECT_EQ(cpu.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cpu.status().message().find("CUDA device"), std::string::npos);
  if (!torch::cuda::is_available()) {
    absl::StatusOr<std::unique_ptr<CudaGraphStep>> cuda =
        CudaGraphStep::Create(torch::Device(torch::kCUDA, 0));
    ASSERT_FALSE(cuda.ok());
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kFailedPrecondition);
  } else {
    EXPECT_FALSE(CudaGraphStep::Create(torch::Device(torch::kCUDA, 0), 0).ok());
  }
}

// Losses of `steps` training steps of the tiny model on one fixed batch, in
// fp32 without TF32: eagerly, or with forward + backward + clipping through a
// CudaGraphStep (the trainer's split: the optimizer runs eagerly after).
std::vector<double> TrainLosses(DecoderKind kind, bool graphed, int steps) {
  const torch::Device cuda(torch::kCUDA, 0);
  torch::manual_seed(3);
  torch::cuda::manual_seed_all(3);
  Autoencoder model = *MakeAutoencoder(*ModelPreset("tiny", kind));
  model->to(cuda);
  model->train();
  const int64_t n = model->context_samples() + 256;
  torch::Tensor audio = (torch::randn({2, n}) * 0.2).clamp(-1, 1);
  ModelBatch batch{
      .audio = audio.to(cuda),
      .conditioning = (torch::rand({2, kMidiFeatureChannels, n}) > 0.98).to(torch::kFloat).to(cuda),
      .reference = (torch::randn({2, 2048}) * 0.2).clamp(-1, 1).to(cuda)};
  std::vector<torch::Tensor> params = model->parameters();
  std::unique_ptr<torch::optim::Optimizer> adam =
      MakeOptimizer(OptimizerOptions{.lr = 1e-3}, params);
  std::unique_ptr<CudaGraphStep> graph;
  if (graphed) graph = *CudaGraphStep::Create(cuda, /*warmup_calls=*/2);

  std::vector<double> losses;
  torch::Tensor loss, norm;
  for (int s = 0; s < steps; ++s) {
    auto work = [&] {
      torch::Tensor total = model->Loss(batch)->total;
      loss = total.detach();
      total.backward();
      norm = ClipGradNormTensor(params, 1.0);
    };
    if (graph == nullptr || !graph->captured()) adam->zero_grad();
    if (graph != nullptr) {
      graph->Run(work);
    } else {
      work();
    }
    losses.push_back(loss.item<double>());
    EXPECT_TRUE(std::isfinite(norm.item<double>()));
    adam->step();
  }
  if (graph != nullptr) {
    EXPECT_TRUE(graph->captured());
    EXPECT_EQ(graph->calls(), steps);
  }
  return losses;
}

TEST(CudaGraphStepTest, ReplaysTrainLikeEagerSteps) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  constexpr int kSteps = 6;  // 2 eager, 1 captured, 3 replayed
  for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
    const std::vector<double> eager = TrainLosses(kind, false, kSteps);
    const std::vector<double> graphed = TrainLosses(kind, true, kSteps);
    for (int s = 0; s < kSteps; ++s) {
      EXPECT_NEAR(graphed[s], eager[s], 1e-4 * std::abs(eager[s]))
          << DecoderKindName(kind) << " step " << s;
    }
    EXPECT_LT(graphed.back(), graphed.front()) << DecoderKindName(kind);
  }
}

}  // namespace
}  // namespace pianola
