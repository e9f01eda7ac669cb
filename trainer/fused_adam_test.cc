#include "trainer/fused_adam.h"

#include <memory>
#include <sstream>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {
namespace {

// Parameters of a few shapes (one left without a gradient) and a sequence of
// gradients; both optimizers see the same ones.
struct Problem {
  std::vector<torch::Tensor> params;
  std::vector<std::vector<torch::Tensor>> grads;  // [step][param]; undefined: no gradient
};

Problem MakeProblem(int steps) {
  torch::manual_seed(5);
  Problem p;
  for (const auto& shape : {std::vector<int64_t>{7, 3}, {129}, {2, 2, 5}, {4}}) {
    p.params.push_back(torch::randn(shape));
  }
  for (int s = 0; s < steps; ++s) {
    std::vector<torch::Tensor> g;
    for (size_t i = 0; i < p.params.size(); ++i) {
      g.push_back(i == 3 ? torch::Tensor() : torch::randn(p.params[i].sizes()) * (s + 1));
    }
    p.grads.push_back(std::move(g));
  }
  return p;
}

std::vector<torch::Tensor> Clone(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& t : ts) out.push_back(t.clone().requires_grad_());
  return out;
}

void Train(torch::optim::Optimizer& opt, std::vector<torch::Tensor>& params,
         const std::vector<std::vector<torch::Tensor>>& grads, size_t from, size_t to) {
  for (size_t s = from; s < to; ++s) {
    for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = grads[s][i];
    opt.step();
  }
}

void ExpectClose(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "parameter " << i << "\n"
                                                         << a[i] << "\n" << b[i];
  }
}

TEST(FusedAdamTest, MatchesLibtorchAdamAndAdamW) {
  const Problem problem = MakeProblem(6);
  for (const bool decoupled : {false, true}) {
    for (const bool amsgrad : {false, true}) {
      std::vector<torch::Tensor> fused_params = Clone(problem.params);
      std::vector<torch::Tensor> plain_params = Clone(problem.params);
      std::unique_ptr<torch::optim::Optimizer> fused, plain;
      if (decoupled) {
        auto o = torch::optim::AdamWOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1)
                     .amsgrad(amsgrad);
        fused = std::make_unique<FusedAdamW>(fused_params, o);
        plain = std::make_unique<torch::optim::AdamW>(plain_params, o);
      } else {
        auto o = torch::optim::AdamOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1)
                     .amsgrad(amsgrad);
        fused = std::make_unique<FusedAdam>(fused_params, o);
        plain = std::make_unique<torch::optim::Adam>(plain_params, o);
      }
      Train(*fused, fused_params, problem.grads, 0, problem.grads.size());
      Train(*plain, plain_params, problem.grads, 0, problem.grads.size());
      SCOPED_TRACE(testing::Message() << "decoupled " << decoupled << " amsgrad " << amsgrad);
      ExpectClose(fused_params, plain_params);
      // The parameter without gradients never moved.
      EXPECT_TRUE(fused_params[3].equal(problem.params[3]));
    }
  }
}

// The state is libtorch's: saved by one, loaded by the other, training goes
// on as if uninterrupted.
TEST(FusedAdamTest, StateIsInterchangeableWithLibtorchAdam) {
  const Problem problem = MakeProblem(6);
  auto options = torch::optim::AdamOptions(0.01).weight_decay(0.01);
  std::vector<torch::Tensor> straight = Clone(problem.params);
  FusedAdam through(straight, options);
  Train(through, straight, problem.grads, 0, 6);

  std::vector<torch::Tensor> params = Clone(problem.params);
  auto first = std::make_unique<FusedAdam>(params, options);
  Train(*first, params, problem.grads, 0, 3);
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    first->save(archive);
    archive.save_to(saved);
  }
  torch::optim::Adam plain(params, options);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(saved);
    plain.load(archive);
  }
  std::stringstream resaved;
  {
    torch::serialize::OutputArchive archive;
    plain.save(archive);
    archive.save_to(resaved);
  }
  FusedAdam second(params, options);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(resaved);
    second.load(archive);
  }
  Train(second, params, problem.grads, 3, 6);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(params[i].equal(straight[i])) << i;
}

TEST(FusedAdamTest, MakeOptimizerFollowsTheConfig) {
  std::vector<torch::Tensor> params = {torch::zeros({3}, torch::requires_grad())};
  OptimizerOptions o;
  o.kind = OptimizerKind::kAdamW;
  EXPECT_NE(dynamic_cast<FusedAdamW*>(MakeOptimizer(o, params).get()), nullptr);
  o.kind = OptimizerKind::kAdam;
  o.lr = 0.5;
  std::unique_ptr<torch::optim::Optimizer> adam = MakeOptimizer(o, params);
  ASSERT_NE(dynamic_cast<FusedAdam*>(adam.get()), nullptr);
  EXPECT_DOUBLE_EQ(adam->param_groups()[0].options().get_lr(), 0.5);
}

}  // namespace
}  // namespace pianola
