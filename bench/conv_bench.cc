// One WaveNet layer's gate pre-activation in training (trainer/dilated_conv.h)
// against torch's composite of the same arithmetic: conv1d (mkldnn) of the
// padded input, the MIDI 1x1 conv1d and the biases, forward and backward,
// on the `small` presets' layer shapes. Prints GFLOP/s of Pianola's forward
// alone (no autograd), of forward + backward on each side, and their ratio
// (docs/perf.md, "Training throughput"). On a CPU with AVX-512, Pianola's
// forward + backward is also timed with its AVX2 kernels
// (pianola::SetWideKernels(false), trainer/kernel_clones.h): the last
// columns give that rate and the 512-bit kernels' gain over it.
//
//   conv_bench [--seconds S] [--threads N]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include <torch/torch.h>

#include "trainer/determinism.h"
#include "trainer/dilated_conv.h"
#include "trainer/kernel_clones.h"

namespace {

struct Shape {
  const char* name;
  int64_t batch, r, g2, h, k, dilation, t_in, left, right;
};

// Seconds per call of `step`: the best of repeated timed runs of about a
// fifth of the budget each, after one warm-up call.
double SecondsPerCall(const std::function<void()>& step, double seconds) {
  using Clock = std::chrono::steady_clock;
  step();
  double best = 1e30;
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int calls = 0;
    const auto start = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds / 5) {
      step();
      ++calls;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    best = std::min(best, elapsed / calls);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (flag == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: conv_bench [--seconds S] [--threads N]\n");
      return 2;
    }
  }
  torch::set_num_threads(threads);
  pianola::UseDeterministicCpuAlgorithms();
  torch::manual_seed(1);
  // The `small` presets at their training window (configs/small.textproto):
  // parallel folds 16 samples per step (~503 steps per item with context),
  // autoregressive runs 4000 + 2047 samples.
  const Shape shapes[] = {
      {"small par, d=1", 8, 48, 96, 48, 3, 1, 503, 1, 1},
      {"small par, d=32", 8, 48, 96, 48, 3, 32, 503, 32, 32},
      {"small par, 1x1 48->48", 8, 48, 48, 0, 1, 1, 503, 0, 0},
      {"small AR, d=1", 8, 64, 128, 64, 2, 1, 6047, 1, 0},
      {"small AR, d=512", 8, 64, 128, 64, 2, 512, 6047, 512, 0},
      {"small AR, 1x1 64->64", 8, 64, 64, 0, 1, 1, 6047, 0, 0},
  };
  std::printf("one layer's pre-activation, forward + backward, %d threads, torch %s\n", threads,
              TORCH_VERSION);
  const bool wide = pianola::WideKernels();
  std::printf("kernels: %s\n", wide ? "512-bit (AVX-512)" : "AVX2 / baseline");
  std::printf("%-24s %10s %12s %12s %12s %8s", "shape", "MFLOP", "fwd GF/s", "pianola GF/s",
              "torch GF/s", "ratio");
  if (wide) std::printf(" %12s %8s", "AVX2 GF/s", "512/AVX2");
  std::printf("\n");
  for (const Shape& s : shapes) {
    const int64_t t_out = s.left + s.t_in + s.right - (s.k - 1) * s.dilation;
    torch::Tensor x = torch::randn({s.batch, s.r, s.t_in}).requires_grad_();
    torch::Tensor w = (torch::randn({s.g2, s.r, s.k}) * 0.1).requires_grad_();
    torch::Tensor cw = s.h > 0 ? (torch::randn({s.g2, s.h, 1}) * 0.1).requires_grad_()
                               : torch::Tensor();
    torch::Tensor hidden = s.h > 0 ? torch::randn({s.batch, s.h, t_out}).requires_grad_()
                                   : torch::Tensor();
    torch::Tensor bias = torch::randn({s.batch, s.g2}).requires_grad_();
    torch::Tensor grad = torch::randn({s.batch, s.g2, t_out});
    auto zero = [&] {
      for (torch::Tensor t : {x, w, cw, hidden, bias}) {
        if (t.defined() && t.grad().defined()) t.mutable_grad().zero_();
      }
    };
    auto pianola_step = [&] {
      zero();
      pianola::DilatedConv(x, s.left, s.right, s.dilation, w, cw, hidden, bias).backward(grad);
    };
    const double pianola = SecondsPerCall(pianola_step, seconds);
    double narrow = 0;
    if (wide) {
      pianola::SetWideKernels(false);
      narrow = SecondsPerCall(pianola_step, seconds);
      pianola::SetWideKernels(true);
    }
    const double torch_s = SecondsPerCall([&] {
      zero();
      torch::Tensor a = torch::conv1d(torch::constant_pad_nd(x, {s.left, s.right}), w,
                                      torch::Tensor(), torch::IntArrayRef{1}, torch::IntArrayRef{0},
                                      torch::IntArrayRef{s.dilation});
      if (s.h > 0) a = a + torch::conv1d(hidden, cw);
      (a + bias.unsqueeze(-1)).backward(grad);
    }, seconds);
    const double forward = SecondsPerCall([&] {
      torch::NoGradGuard no_grad;
      pianola::DilatedConv(x, s.left, s.right, s.dilation, w, cw, hidden, bias);
    }, seconds / 2);
    // The forward's multiply-adds; the backward's two products make 3x.
    const double flop = 2.0 * s.batch * s.g2 * (s.r * s.k + s.h) * t_out;
    std::printf("%-24s %10.1f %12.1f %12.1f %12.1f %7.2fx", s.name, 3 * flop / 1e6,
                flop / forward / 1e9, 3 * flop / pianola / 1e9, 3 * flop / torch_s / 1e9,
                torch_s / pianola);
    if (wide) std::printf(" %12.1f %7.2fx", 3 * flop / narrow / 1e9, narrow / pianola);
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
