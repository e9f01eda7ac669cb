#include "trainer/gated_activation.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "trainer/gate_kernel.h"

namespace pianola {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Rows (b, c) of the [B, G, T] output: row r reads the filter row c and the
// gate row G + c of batch b of the [B, 2G, T] input.
template <typename Fn>
void ForEachRow(int64_t batch, int64_t g, int64_t t, const Fn& fn) {
  // Chunks of at least ~32k values so thread handoff stays negligible.
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(t, 1));
  at::parallel_for(0, batch * g, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t filter = ((r / g) * 2 * g + r % g) * t;
      fn(r * t, filter, filter + g * t);
    }
  });
}

// tanh(f) * sigmoid(g) of a float CPU [B, 2G, T] tensor into `out` (a
// contiguous [B, G, T] float tensor); with `keep`, also tanh of the filter
// half and sigmoid of the gate half into *keep (a contiguous tensor shaped
// like `a`).
void Forward(const torch::Tensor& a, int64_t g, torch::Tensor* keep, torch::Tensor& out) {
  const torch::Tensor in = a.contiguous();
  const int64_t batch = in.size(0), t = in.size(2);
  const float* src = in.const_data_ptr<float>();
  float* dst = out.mutable_data_ptr<float>();
  float* kept = keep != nullptr ? keep->mutable_data_ptr<float>() : nullptr;
  ForEachRow(batch, g, t, [&](int64_t row, int64_t filter, int64_t gate) {
    if (kept == nullptr) {
      GateKernel(src + filter, src + gate, t, dst + row);
    } else {
      GateForwardKernel(src + filter, src + gate, t, dst + row, kept + filter, kept + gate);
    }
  });
}

torch::Tensor Forward(const torch::Tensor& a, int64_t g, torch::Tensor* keep) {
  torch::Tensor out = torch::empty({a.size(0), g, a.size(2)}, a.options());
  Forward(a, g, keep, out);
  return out;
}

void CheckShape(const torch::Tensor& a, int64_t g) {
  TORCH_CHECK(a.dim() == 3 && a.size(1) == 2 * g, "GatedActivation: expected [B, ", 2 * g,
              ", T], got ", a.sizes());
}

class FusedGate : public torch::autograd::Function<FusedGate> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& a, int64_t g) {
    RECORD_FUNCTION("pianola::FusedGate", std::vector<c10::IValue>({a}));
    torch::Tensor saved = torch::empty_like(a, torch::MemoryFormat::Contiguous);
    torch::Tensor out = Forward(a, g, &saved);
    ctx->save_for_backward({saved});
    ctx->saved_data["g"] = g;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const torch::Tensor saved = ctx->get_saved_variables()[0];
    const int64_t g = ctx->saved_data["g"].toInt();
    const torch::Tensor grad_out = grads[0].contiguous();
    const int64_t batch = saved.size(0), t = saved.size(2);
    torch::Tensor grad_a = torch::empty_like(saved);
    const float* go = grad_out.const_data_ptr<float>();
    const float* keep = saved.const_data_ptr<float>();
    float* ga = grad_a.mutable_data_ptr<float>();
    ForEachRow(batch, g, t, [&](int64_t row, int64_t filter, int64_t gate) {
      GateBackwardKernel(go + row, keep + filter, keep + gate, t, ga + filter, ga + gate);
    });
    return {grad_a, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor GatedActivation(const torch::Tensor& a, int64_t g) {
  CheckShape(a, g);
  if (a.is_cpu() && a.scalar_type() == torch::kFloat) {
    if (torch::GradMode::is_enabled() && a.requires_grad()) return FusedGate::apply(a, g);
    return Forward(a, g, /*keep=*/nullptr);  // nothing to keep for a backward pass
  }
  return torch::tanh(a.narrow(1, 0, g)) * torch::sigmoid(a.narrow(1, g, g));
}

void GatedActivationOut(const torch::Tensor& a, int64_t g, torch::Tensor& out) {
  CheckShape(a, g);
  TORCH_CHECK(!torch::GradMode::is_enabled() || !a.requires_grad(),
              "GatedActivationOut: no autograd (use GatedActivation)");
  TORCH_CHECK(out.is_contiguous() && out.sizes() == torch::IntArrayRef({a.size(0), g, a.size(2)}) &&
                  out.scalar_type() == a.scalar_type() && out.device() == a.device(),
              "GatedActivationOut: out must be a contiguous [", a.size(0), ", ", g, ", ",
              a.size(2), "] tensor like the input, got ", out.sizes());
  if (a.is_cpu() && a.scalar_type() == torch::kFloat) {
    Forward(a, g, /*keep=*/nullptr, out);
    return;
  }
  torch::mul_out(out, torch::tanh(a.narrow(1, 0, g)), torch::sigmoid(a.narrow(1, g, g)));
}

}  // namespace pianola
