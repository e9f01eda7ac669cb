#include "trainer/flop_counter.h"

#include <cstring>
#include <type_traits>

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

namespace pianola {
namespace {

static_assert(std::is_same_v<at::CallbackHandle, uint64_t>);

thread_local double* active_sink = nullptr;

double Numel(const at::IValue& v) {
  return v.isTensor() ? static_cast<double>(v.toTensor().numel()) : 0.0;
}

// 2 * n * k * m for [..., n, k] x [..., k, m] (batch dims multiply in).
double MatmulFlops(const at::IValue& a, const at::IValue& b) {
  if (!a.isTensor() || !b.isTensor()) return 0;
  const at::Tensor& x = a.toTensor();
  const at::Tensor& y = b.toTensor();
  if (x.dim() < 2 || y.dim() < 2) return 0;
  return 2.0 * Numel(a) * static_cast<double>(y.size(-1));
}

// A non-transposed convolution's multiply-adds per output element, from its
// start to its end callback (inputs are readable only at the start, the output
// only at the end).
struct ConvolutionContext : at::ObserverContext {
  explicit ConvolutionContext(double f) : flops_per_output(f) {}
  double flops_per_output;
};

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  if (active_sink == nullptr) return nullptr;
  const char* name = fn.name();
  const c10::ArrayRef<const at::IValue> in = fn.inputs();
  if (std::strcmp(name, "aten::convolution") == 0) {
    // (input, weight, bias, stride, padding, dilation, transposed, ...):
    // every output (input, when transposed) element takes one multiply-add
    // per element of its group's filter.
    if (in.size() < 7 || !in[1].isTensor()) return nullptr;
    const at::Tensor& weight = in[1].toTensor();
    if (weight.dim() == 0 || weight.size(0) == 0) return nullptr;
    const double per_filter = static_cast<double>(weight.numel()) / weight.size(0);
    if (in[6].isBool() && in[6].toBool()) {
      *active_sink += 2.0 * per_filter * Numel(in[0]);
      return nullptr;
    }
    return std::make_unique<ConvolutionContext>(2.0 * per_filter);
  }
  if (std::strcmp(name, "pianola::DilatedConv") == 0) {
    // (x [B, R, T_in], weight [2G, R, k], T_out, H): 2G outputs per step, each
    // k R + H multiply-adds (trainer/dilated_conv.cc).
    if (in.size() < 4 || !in[0].isTensor() || !in[1].isTensor() || !in[2].isInt() ||
        !in[3].isInt()) {
      return nullptr;
    }
    const at::Tensor& weight = in[1].toTensor();
    *active_sink += 2.0 * static_cast<double>(in[0].toTensor().size(0)) * in[2].toInt() *
                    weight.size(0) * (weight.size(1) * weight.size(2) + in[3].toInt());
    return nullptr;
  }
  if (std::strcmp(name, "pianola::LayerOutputs") == 0) {
    // (gated [B, G, L], W_res [R, G, 1], W_skip [S, G, 1], N): R outputs per
    // step of L and S per step of N, G multiply-adds each
    // (trainer/layer_outputs.cc).
    if (in.size() < 4 || !in[0].isTensor() || !in[1].isTensor() || !in[2].isTensor() ||
        !in[3].isInt()) {
      return nullptr;
    }
    const at::Tensor& gated = in[0].toTensor();
    *active_sink += 2.0 * static_cast<double>(gated.size(0)) * gated.size(1) *
                    (in[1].toTensor().size(0) * gated.size(2) +
                     in[2].toTensor().size(0) * in[3].toInt());
    return nullptr;
  }
  if (std::strcmp(name, "pianola::FoldedFeatures") == 0) {
    // (cond [B, C, T], filters [M, 1, F]): M filters of F taps per block of
    // every channel, the partial last block included
    // (trainer/folded_features.cc).
    if (in.size() < 2 || !in[0].isTensor() || !in[1].isTensor()) return nullptr;
    const at::Tensor& cond = in[0].toTensor();
    const at::Tensor& filters = in[1].toTensor();
    const int64_t f = filters.size(2), steps = (cond.size(2) + f - 1) / f;
    *active_sink += 2.0 * static_cast<double>(cond.size(0)) * cond.size(1) * filters.size(0) *
                    steps * f;
    return nullptr;
  }
  if (std::strcmp(name, "aten::mm") == 0 || std::strcmp(name, "aten::bmm") == 0) {
    if (in.size() >= 2) *active_sink += MatmulFlops(in[0], in[1]);
  } else if (std::strcmp(name, "aten::addmm") == 0 || std::strcmp(name, "aten::baddbmm") == 0) {
    if (in.size() >= 3) *active_sink += MatmulFlops(in[1], in[2]);
  }
  return nullptr;
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* context) {
  if (active_sink == nullptr || context == nullptr || fn.outputs().empty()) return;
  *active_sink += static_cast<ConvolutionContext*>(context)->flops_per_output *
                  Numel(fn.outputs()[0]);
}

}  // namespace

FlopCounter::FlopCounter() {
  TORCH_CHECK(active_sink == nullptr, "FlopCounter: one per thread at a time");
  active_sink = &flops_;
  handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&OnStart, &OnEnd)
                                           .needsInputs(true)
                                           .needsOutputs(true)
                                           .scopes({at::RecordScope::FUNCTION}));
}

FlopCounter::~FlopCounter() {
  at::removeCallback(handle_);
  active_sink = nullptr;
}

}  // namespace pianola
