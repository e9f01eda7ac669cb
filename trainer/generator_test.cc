#include "trainer/generator.h"

#include <torch/cuda.h>
#include <torch/torch.h>

#include "gtest/gtest.h"
#include "trainer/model_config.h"
#include "trainer/mulaw.h"

namespace pianola {
namespace {

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(1);
    torch::manual_seed(17);
  }
  // Sparse-ish MIDI-like features: a few onsets, held frames, pedal.
  static torch::Tensor Conditioning(int64_t batch, int64_t n) {
    torch::Tensor cond = torch::zeros({batch, kMidiFeatureChannels, n});
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 3; t < n; t += 37) {
        const int64_t key = (t * 7 + b * 5) % 88;
        cond[b][key][t] = 0.8;
        cond[b][88 + key].slice(0, t, std::min(n, t + 25)) = 1.0;
      }
      cond[b][176].slice(0, n / 2) = 1.0;
    }
    return cond;
  }
};

TEST_F(GeneratorTest, CachedForcedLogitsEqualFullForward) {
  for (auto engine : {GeneratorOptions::Engine::kCpuKernel, GeneratorOptions::Engine::kTensor}) {
    for (ArInput input_kind : {ArInput::kEmbedding, ArInput::kScalar}) {
      ModelConfig c = *ModelPreset("tiny");
      c.decoder.ar_input = input_kind;
      WaveNet net(c.decoder, c.encoder.z_dim);
      const int64_t n = 150;  // several receptive fields (31)
      torch::Tensor inputs = torch::randint(0, 256, {2, n}, torch::kLong);
      torch::Tensor cond = Conditioning(2, n);
      torch::Tensor z = torch::randn({2, c.encoder.z_dim});
      torch::Tensor want;
      {
        torch::NoGradGuard no_grad;
        want = net->forward(inputs, cond, z);
      }
      // A block size that does not divide n exercises block boundaries.
      auto gen = AutoregressiveGenerator::Create(net, {.block_samples = 37, .engine = engine});
      ASSERT_TRUE(gen.ok()) << gen.status();
      absl::StatusOr<torch::Tensor> got = (*gen)->ForcedLogits(inputs, cond, z);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->sizes(), want.sizes());
      EXPECT_LT((*got - want).abs().max().item<float>(), 1e-4);
    }
  }
}

TEST_F(GeneratorTest, CachedForcedLogitsEqualFullForwardForSmall) {
  // Dilations up to 512 with a sequence shorter than the receptive field:
  // the queues' zeros must act as the forward pass's zero padding.
  ModelConfig c = *ModelPreset("small");
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t n = 700;
  torch::Tensor inputs = torch::randint(0, 256, {1, n}, torch::kLong);
  torch::Tensor cond = Conditioning(1, n);
  torch::Tensor z = torch::randn({1, c.encoder.z_dim});
  torch::Tensor want;
  {
    torch::NoGradGuard no_grad;
    want = net->forward(inputs, cond, z);
  }
  auto gen = AutoregressiveGenerator::Create(net, {.block_samples = 256});
  ASSERT_TRUE(gen.ok());
  EXPECT_TRUE((*gen)->uses_cpu_kernel());
  torch::Tensor got = *(*gen)->ForcedLogits(inputs, cond, z);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-4);
}

// On a GPU the cached generator runs its tensor engine and the parallel
// renderer its passes on the decoder's device: the same functions as on the
// CPU (fp32 without TF32, so up to float rounding). Runs where a GPU exists
// (scripts/device_check.sh).
TEST_F(GeneratorTest, OnCudaTheGeneratorsComputeWhatTheCpuDoes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
  torch::NoGradGuard no_grad;
  {
    ModelConfig c = *ModelPreset("tiny");
    WaveNet net(c.decoder, c.encoder.z_dim);
    const int64_t n = 150;
    torch::Tensor inputs = torch::randint(0, 256, {2, n}, torch::kLong);
    torch::Tensor cond = Conditioning(2, n);
    torch::Tensor z = torch::randn({2, c.encoder.z_dim});
    torch::Tensor want = net->forward(inputs, cond, z);
    net->to(torch::kCUDA);
    auto gen = AutoregressiveGenerator::Create(net, {.block_samples = 37});
    ASSERT_TRUE(gen.ok()) << gen.status();
    EXPECT_FALSE((*gen)->uses_cpu_kernel());
    absl::StatusOr<torch::Tensor> got = (*gen)->ForcedLogits(inputs, cond, z);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(got->is_cuda());
    EXPECT_LT((got->cpu() - want).abs().max().item<float>(), 1e-4);
    absl::StatusOr<GenerationResult> sampled =
        (*gen)->Generate(cond, z, at::detail::createCPUGenerator(3));
    ASSERT_TRUE(sampled.ok()) << sampled.status();
    EXPECT_EQ(sampled->classes.sizes(), (std::vector<int64_t>{2, n}));
  }
  {
    ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
    WaveNet net(c.decoder, c.encoder.z_dim);
    const int64_t n = 3000;
    torch::Tensor cond = Conditioning(1, n);
    torch::Tensor z = torch::randn({1, c.encoder.z_dim});
    const ParallelRenderOptions chunks{.chunk_samples = 800};
    torch::Tensor want = *RenderParallel(net, cond, z, at::detail::createCPUGenerator(5), chunks);
    net->to(torch::kCUDA);
    absl::StatusOr<torch::Tensor> got =
        RenderParallel(net, cond, z, at::detail::createCPUGenerator(5), chunks);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(got->is_cuda());
    EXPECT_LT((got->cpu() - want).abs().max().item<float>(), 1e-4);
  }
}

TEST_F(GeneratorTest, SamplingMatchesNaiveRecomputation) {
  ModelConfig c = *ModelPreset("tiny");
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t n = 64;  // two receptive fields
  torch::Tensor cond = Conditioning(2, n);
  torch::Tensor z = torch::randn({2, c.encoder.z_dim});
  for (double temperature : {1.0, 0.7, 0.0}) {
    GeneratorOptions options{.temperature = temperature, .block_samples = 32};
    auto naive = NaiveGenerate(net, cond, z, at::detail::createCPUGenerator(42), options, true);
    ASSERT_TRUE(naive.ok()) << naive.status();
    for (auto engine : {GeneratorOptions::Engine::kCpuKernel, GeneratorOptions::Engine::kTensor}) {
      options.engine = engine;
      auto gen = AutoregressiveGenerator::Create(net, options);
      ASSERT_TRUE(gen.ok());
      auto fast = (*gen)->Generate(cond, z, at::detail::createCPUGenerator(42), true);
      ASSERT_TRUE(fast.ok()) << fast.status();
      EXPECT_TRUE(fast->classes.equal(naive->classes)) << "temperature " << temperature;
      EXPECT_LT((fast->logits - naive->logits).abs().max().item<float>(), 1e-4);
      EXPECT_TRUE(fast->audio.equal(MuLawDecode(fast->classes)));
    }
  }
}

TEST_F(GeneratorTest, PromptIsKeptAndGenerationContinuesLikeNaive) {
  ModelConfig c = *ModelPreset("tiny");
  WaveNet net(c.decoder, c.encoder.z_dim);
  const int64_t n = 80, p = 40;
  torch::Tensor cond = Conditioning(1, n);
  torch::Tensor z = torch::randn({1, c.encoder.z_dim});
  torch::Tensor prompt = MuLawEncode(0.5 * torch::sin(torch::arange(p, torch::kFloat) * 0.2))
                             .unsqueeze(0);
  auto gen = *AutoregressiveGenerator::Create(net);
  auto fast = gen->Generate(cond, z, at::detail::createCPUGenerator(3), false, prompt);
  auto naive = NaiveGenerate(net, cond, z, at::detail::createCPUGenerator(3), {}, false, prompt);
  ASSERT_TRUE(fast.ok() && naive.ok());
  EXPECT_TRUE(fast->classes.narrow(1, 0, p).equal(prompt));
  EXPECT_TRUE(fast->classes.equal(naive->classes));
  EXPECT_EQ(gen->Generate(cond, z, at::detail::createCPUGenerator(3), false,
                          torch::zeros({1, n + 1}, torch::kLong))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(GeneratorTest, SeedDeterminesTheSamples) {
  ModelConfig c = *ModelPreset("tiny");
  WaveNet net(c.decoder, c.encoder.z_dim);
  torch::Tensor cond = Conditioning(1, 200);
  torch::Tensor z = torch::randn({1, c.encoder.z_dim});
  auto gen = *AutoregressiveGenerator::Create(net);
  torch::Tensor a = gen->Generate(cond, z, at::detail::createCPUGenerator(1))->classes;
  torch::Tensor b = gen->Generate(cond, z, at::detail::createCPUGenerator(1))->classes;
  torch::Tensor d = gen->Generate(cond, z, at::detail::createCPUGenerator(2))->classes;
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(d));
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 200}));
}

TEST_F(GeneratorTest, SampleClassFollowsTheCdf) {
  const float logits[4] = {0.0f, std::log(3.0f), -1e9f, 0.0f};  // probs 0.2, 0.6, 0, 0.2
  EXPECT_EQ(SampleClass(logits, 4, 1.0, 0.0), 0);
  EXPECT_EQ(SampleClass(logits, 4, 1.0, 0.19), 0);
  EXPECT_EQ(SampleClass(logits, 4, 1.0, 0.21), 1);
  EXPECT_EQ(SampleClass(logits, 4, 1.0, 0.79), 1);
  EXPECT_EQ(SampleClass(logits, 4, 1.0, 0.81), 3);
  EXPECT_EQ(SampleClass(logits, 4, 0.0, 0.99), 1);  // greedy
}

TEST_F(GeneratorTest, ParallelChunksEqualOnePass) {
  // The folded tiny preset (fold 8, context 240) and the unfolded one (fold
  // 1, context 30); lengths and chunk sizes that are not multiples of the
  // fold (chunks round up to one). With 2 threads the chunks render
  // concurrently (one per thread, in whatever order the threads take them).
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    for (int fold : {8, 1}) {
      ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
      c.decoder.fold = fold;
      WaveNet net(c.decoder, c.encoder.z_dim);
      const int64_t n = fold == 1 ? 500 : 2003;
      const int64_t chunk = fold == 1 ? 70 : 501;  // < 2 x the context: 3 chunks overlap each
      torch::Tensor cond = Conditioning(2, n);
      torch::Tensor z = torch::randn({2, c.encoder.z_dim});
      auto whole =
          RenderParallel(net, cond, z, at::detail::createCPUGenerator(9), {.chunk_samples = 0});
      ASSERT_TRUE(whole.ok()) << whole.status();
      int64_t last_progress = 0, calls = 0;
      bool increasing = true;
      auto chunked = RenderParallel(net, cond, z, at::detail::createCPUGenerator(9),
                                    {.chunk_samples = chunk,
                                     .on_progress = [&](int64_t done, int64_t of) {
                                       increasing = increasing && done > last_progress && of == n;
                                       last_progress = done;
                                       ++calls;
                                     }});
      ASSERT_TRUE(chunked.ok()) << chunked.status();
      EXPECT_EQ(whole->sizes(), (std::vector<int64_t>{2, n})) << fold;
      EXPECT_EQ(chunked->sizes(), (std::vector<int64_t>{2, n})) << fold;
      EXPECT_LT((*whole - *chunked).abs().max().item<float>(), 1e-5)
          << "fold " << fold << ", " << threads << " threads";
      EXPECT_FALSE(chunked->requires_grad());
      EXPECT_EQ(last_progress, n);
      EXPECT_TRUE(increasing);
      const int64_t rounded = (chunk + fold - 1) / fold * fold;
      EXPECT_EQ(calls, (n + rounded - 1) / rounded) << fold;
    }
  }
  torch::set_num_threads(1);
}

TEST_F(GeneratorTest, ParallelChunksBalanceOverThreads) {
  // tiny folded (fold 8, context 240 samples): 4003 samples in passes of at
  // most 1500 are three passes on one thread; on two, four even ones (1008
  // samples, >= 4x the context) so both threads finish together. An input
  // shorter than one pass splits in two on two threads when the halves stay
  // >= 4x the context, and stays whole when they would not.
  ModelConfig c = *ModelPreset("tiny", DecoderKind::kParallel);
  WaveNet net(c.decoder, c.encoder.z_dim);
  ASSERT_EQ(net->context_samples(), 240);
  struct Case {
    int threads;
    int64_t n, chunk, passes;
  };
  for (const Case& k : {Case{1, 4003, 1500, 3}, Case{2, 4003, 1500, 4}, Case{2, 4003, 0, 1},
                        Case{1, 2000, 1 << 16, 1}, Case{2, 2000, 1 << 16, 2},
                        Case{2, 1900, 1 << 16, 1}}) {
    torch::set_num_threads(k.threads);
    torch::Tensor cond = Conditioning(1, k.n);
    torch::Tensor z = torch::randn({1, c.encoder.z_dim});
    auto whole =
        RenderParallel(net, cond, z, at::detail::createCPUGenerator(5), {.chunk_samples = 0});
    ASSERT_TRUE(whole.ok()) << whole.status();
    int64_t passes = 0;
    auto chunked = RenderParallel(
        net, cond, z, at::detail::createCPUGenerator(5),
        {.chunk_samples = k.chunk, .on_progress = [&](int64_t, int64_t) { ++passes; }});
    ASSERT_TRUE(chunked.ok()) << chunked.status();
    EXPECT_EQ(passes, k.passes) << k.n << " samples, chunk " << k.chunk << ", " << k.threads
                                << " threads";
    EXPECT_LT((*whole - *chunked).abs().max().item<float>(), 1e-5) << k.n;
  }
  torch::set_num_threads(1);
}

TEST_F(GeneratorTest, RejectsMismatchedInputs) {
  ModelConfig ar = *ModelPreset("tiny");
  ModelConfig par = *ModelPreset("tiny", DecoderKind::kParallel);
  WaveNet ar_net(ar.decoder, ar.encoder.z_dim);
  WaveNet par_net(par.decoder, par.encoder.z_dim);
  torch::Tensor z = torch::randn({1, 16});
  EXPECT_EQ(AutoregressiveGenerator::Create(par_net).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderParallel(ar_net, Conditioning(1, 10), z, at::detail::createCPUGenerator(1))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  auto gen = *AutoregressiveGenerator::Create(ar_net);
  auto wrong_channels = gen->Generate(torch::zeros({1, 88, 10}), z, at::detail::createCPUGenerator(1));
  EXPECT_EQ(wrong_channels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(wrong_channels.status().message().find("88 channels"), std::string::npos);
  auto wrong_z = gen->Generate(Conditioning(1, 10), torch::zeros({1, 3}),
                               at::detail::createCPUGenerator(1));
  EXPECT_EQ(wrong_z.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AutoregressiveGenerator::Create(ar_net, {.block_samples = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
