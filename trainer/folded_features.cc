#include "trainer/folded_features.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "trainer/block_filter_kernel.h"

namespace pianola {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Channels per partial sum of the filter gradient: fixed, so the summation
// order does not depend on the thread count.
constexpr int64_t kChannelGroup = 16;

// Row `row` (item row / C, channel row % C) of cond [B, C, T].
const float* Channel(const torch::Tensor& cond, int64_t row) {
  const int64_t channels = cond.size(1);
  return cond.const_data_ptr<float>() + row / channels * cond.stride(0) +
         row % channels * cond.stride(1);
}

// kernel(blocks, first_block, samples) over one channel's t samples in
// blocks of f: its whole blocks in place, then the partial last block (if
// any) through `tail`, zero-padded to f.
template <typename Kernel>
void OverBlocks(const float* x, int64_t t, int64_t f, std::vector<float>& tail, Kernel kernel) {
  const int64_t full = t / f;
  kernel(full, 0, x);
  if (full * f == t) return;
  std::fill(tail.begin(), tail.end(), 0.0f);
  std::copy(x + full * f, x + t, tail.begin());
  kernel(1, full, tail.data());
}

torch::Tensor Forward(const torch::Tensor& cond, const torch::Tensor& filters) {
  // (cond, filters): what trainer/flop_counter.cc reads.
  RECORD_FUNCTION("pianola::FoldedFeatures", std::vector<c10::IValue>({cond, filters}));
  const int64_t channels = cond.size(1), t = cond.size(2);
  const int64_t m = filters.size(0), f = filters.size(2);
  const int64_t steps = (t + f - 1) / f;
  torch::Tensor out = torch::empty({cond.size(0), channels * m, steps}, cond.options());
  const float* w = filters.const_data_ptr<float>();
  float* y = out.data_ptr<float>();
  at::parallel_for(0, cond.size(0) * channels, kChannelGroup, [&](int64_t begin, int64_t end) {
    std::vector<float> tail(f);
    for (int64_t row = begin; row < end; ++row) {
      OverBlocks(Channel(cond, row), t, f, tail,
                 [&](int64_t blocks, int64_t first, const float* x) {
                   BlockFilterKernel(x, blocks, f, w, m, y + row * m * steps + first, steps);
                 });
    }
  });
  return out;
}

class FoldedFeaturesFunction : public torch::autograd::Function<FoldedFeaturesFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& cond,
                               const torch::Tensor& filters) {
    ctx->save_for_backward({cond});
    ctx->saved_data["m"] = filters.size(0);
    ctx->saved_data["f"] = filters.size(2);
    return Forward(cond, filters);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_FUNCTION("pianola::FoldedFeaturesBackward", std::vector<c10::IValue>());
    const torch::Tensor cond = ctx->get_saved_variables()[0];
    const int64_t m = ctx->saved_data["m"].toInt(), f = ctx->saved_data["f"].toInt();
    const torch::Tensor grad = grads[0].contiguous();  // [B, C * M, T']
    const int64_t rows = cond.size(0) * cond.size(1), t = cond.size(2);
    const int64_t steps = grad.size(2);
    const int64_t groups = (rows + kChannelGroup - 1) / kChannelGroup;
    std::vector<float> partial(groups * m * f, 0.0f);
    const float* g = grad.const_data_ptr<float>();
    at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> tail(f);
      for (int64_t group = begin; group < end; ++group) {
        float* sum = partial.data() + group * m * f;
        for (int64_t row = group * kChannelGroup;
             row < std::min(rows, (group + 1) * kChannelGroup); ++row) {
          OverBlocks(Channel(cond, row), t, f, tail,
                     [&](int64_t blocks, int64_t first, const float* x) {
                       BlockFilterGradKernel(x, blocks, f, g + row * m * steps + first, m, steps,
                                             sum);
                     });
        }
      }
    });
    torch::Tensor grad_filters = torch::zeros({m, 1, f}, grad.options());
    float* out = grad_filters.data_ptr<float>();
    for (int64_t group = 0; group < groups; ++group) {
      for (int64_t i = 0; i < m * f; ++i) out[i] += partial[group * m * f + i];
    }
    return {torch::Tensor(), grad_filters};
  }
};

}  // namespace

bool FoldedFeaturesApplies(const torch::Tensor& cond, const torch::Tensor& filters) {
  return cond.is_cpu() && cond.scalar_type() == torch::kFloat && filters.is_cpu() &&
         filters.scalar_type() == torch::kFloat && filters.size(2) % 8 == 0 &&
         filters.size(2) <= 64 && !at::autocast::is_autocast_enabled(at::kCPU);
}

torch::Tensor FoldedFeatures(const torch::Tensor& cond, const torch::Tensor& filters) {
  TORCH_CHECK(FoldedFeaturesApplies(cond, filters) && cond.dim() == 3 && filters.dim() == 3 &&
                  filters.size(1) == 1,
              "FoldedFeatures: cond ", cond.sizes(), ", filters ", filters.sizes());
  TORCH_CHECK(!cond.requires_grad(), "FoldedFeatures: no gradient for the features");
  const torch::Tensor x = cond.stride(2) == 1 ? cond : cond.contiguous();
  const torch::Tensor w = filters.contiguous();
  if (!torch::GradMode::is_enabled() || !filters.requires_grad()) return Forward(x, w.detach());
  return FoldedFeaturesFunction::apply(x, w);
}

}  // namespace pianola
