#ifndef PIANOLA_TRAINER_INTRA_OP_THREADS_FOR_TEST_H_
#define PIANOLA_TRAINER_INTRA_OP_THREADS_FOR_TEST_H_

// Tests of the CPU kernels' promise that no result depends on how the
// intra-op threads split the work.

#include <tuple>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {

// fn() run with torch's intra-op thread count set to `threads`, the previous
// count restored after (also when fn throws).
template <typename Fn>
auto WithIntraOpThreads(int threads, Fn fn) {
  struct Restore {
    int before = torch::get_num_threads();
    ~Restore() { torch::set_num_threads(before); }
  } restore;
  torch::set_num_threads(threads);
  return fn();
}

// Expects forward(w), and the gradient of sum(forward(w)^2) with respect to
// w (a fresh copy of `weight`), to be the same bits on 1 and on 2 threads.
template <typename Forward>
void ExpectSameBitsOnOneAndTwoThreads(const torch::Tensor& weight, Forward forward) {
  auto run = [&](int threads) {
    return WithIntraOpThreads(threads, [&] {
      torch::Tensor w = weight.clone().requires_grad_();
      torch::Tensor out = forward(w);
      out.pow(2).sum().backward();
      return std::make_tuple(out.detach(), w.grad());
    });
  };
  const auto [out1, grad1] = run(1);
  const auto [out2, grad2] = run(2);
  EXPECT_TRUE(torch::equal(out1, out2));
  EXPECT_TRUE(torch::equal(grad1, grad2));
}

}  // namespace pianola

#endif  // PIANOLA_TRAINER_INTRA_OP_THREADS_FOR_TEST_H_
