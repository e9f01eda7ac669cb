#include "trainer/dilated_conv.h"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/torch.h>

#include "trainer/gated_layer_kernel.h"
#include "trainer/tensor_products.h"

namespace pianola {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using tensor_products::Dots;
using tensor_products::Product;
using tensor_products::Rows;
using tensor_products::Source;
using tensor_products::TimeContiguous;

class DilatedConvFunction : public torch::autograd::Function<DilatedConvFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& cond_weight,
                               const torch::Tensor& hidden, const torch::Tensor& bias,
                               int64_t pad_left, int64_t pad_right, int64_t dilation) {
    const int64_t batch = x.size(0), r = x.size(1), t_in = x.size(2);
    const int64_t g2 = weight.size(0), k = weight.size(2);
    const int64_t h = hidden.dim() == 3 ? hidden.size(1) : 0;  // empty: no MIDI rows
    const int64_t reach = (k - 1) * dilation;
    const int64_t t_out = pad_left + t_in + pad_right - reach;
    // (x, weight, T_out, H): what trainer/flop_counter.cc reads.
    RECORD_FUNCTION("pianola::DilatedConv", std::vector<c10::IValue>({x, weight, t_out, h}));
    // Read in place: the padding is the kernel's zeros outside x's columns.
    const torch::Tensor x_in = TimeContiguous(x);
    const torch::Tensor hidden_in = h > 0 ? TimeContiguous(hidden) : hidden;
    // [W_cond | W_0 | ... | W_{k-1}]: [2G, H + kR].
    std::vector<torch::Tensor> parts;
    if (h > 0) parts.push_back(cond_weight.reshape({g2, h}));
    parts.push_back(weight.permute({0, 2, 1}).reshape({g2, k * r}));
    const torch::Tensor w = torch::cat(parts, 1).contiguous();
    const PanelMatrix a(w.data_ptr<float>(), g2, w.size(1), w.size(1));
    torch::Tensor out = torch::empty({batch, g2, t_out}, x.options());
    const torch::Tensor bias_c = bias.contiguous();
    Product(a, batch, [&](int64_t b) {
      std::vector<RowSource> sources;
      if (h > 0) sources.push_back(Source(hidden_in, b, 0));
      for (int64_t j = 0; j < k; ++j) sources.push_back(Source(x_in, b, j * dilation - pad_left));
      return sources;
    }, bias_c, out, t_out);
    ctx->save_for_backward({x_in, hidden_in, weight, cond_weight});
    ctx->saved_data["pad_left"] = pad_left;
    ctx->saved_data["h"] = h;
    ctx->saved_data["dilation"] = dilation;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_FUNCTION("pianola::DilatedConvBackward", std::vector<c10::IValue>());
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& hidden = saved[1];
    const torch::Tensor& weight = saved[2];
    const torch::Tensor& cond_weight = saved[3];
    const int64_t pad_left = ctx->saved_data["pad_left"].toInt();
    const int64_t dilation = ctx->saved_data["dilation"].toInt();
    const int64_t h = ctx->saved_data["h"].toInt();
    const torch::Tensor grad = grads[0].contiguous();  // [B, 2G, T_out]
    const int64_t batch = grad.size(0), g2 = grad.size(1), t_out = grad.size(2);
    const int64_t r = weight.size(1), k = weight.size(2), t_in = x.size(2);

    // dx[:, t] = sum_j W_j^T grad[:, t + pad_left - j d], zero outside the
    // output's columns (not for an input without a gradient, such as the
    // noise a parallel decoder embeds).
    torch::Tensor grad_x;
    if (ctx->needs_input_grad(0)) {
      const torch::Tensor w_t = weight.permute({1, 2, 0}).reshape({r, k * g2}).contiguous();
      const PanelMatrix a_t(w_t.data_ptr<float>(), r, k * g2, k * g2);
      grad_x = torch::empty({batch, r, t_in}, grad.options());
      Product(a_t, batch, [&](int64_t b) {
        std::vector<RowSource> sources;
        for (int64_t j = 0; j < k; ++j) sources.push_back(Source(grad, b, pad_left - j * dilation));
        return sources;
      }, torch::Tensor(), grad_x, t_in);
    }

    // dW_j[o][c] = sum_t grad[o, t] x[c, t + j d - pad_left], over the t
    // where that column of x exists (the padding adds nothing); stored
    // [k][2G][R].
    torch::Tensor grad_w = torch::zeros({k, g2, r}, grad.options());
    for (int64_t j = 0; j < k; ++j) {
      const int64_t shift = j * dilation - pad_left;
      const int64_t first = std::max<int64_t>(0, -shift);
      const int64_t last = std::min(t_out, t_in - shift);
      if (last <= first) continue;
      Dots(Rows(grad, g2, first), Rows(x, r, first + shift), batch, last - first,
           grad_w[j].data_ptr<float>(), r);
    }
    torch::Tensor grad_weight = grad_w.permute({1, 2, 0});  // [2G, R, k]

    torch::Tensor grad_cond_weight, grad_hidden;
    if (h > 0) {
      torch::Tensor gcw = torch::zeros({g2, h}, grad.options());
      Dots(Rows(grad, g2, 0), Rows(hidden, h, 0), batch, t_out, gcw.data_ptr<float>(), h);
      grad_cond_weight = gcw.view(cond_weight.sizes());
      const torch::Tensor cw_t = cond_weight.reshape({g2, h}).t().contiguous();
      const PanelMatrix a_h(cw_t.data_ptr<float>(), h, g2, g2);
      grad_hidden = torch::empty({batch, h, t_out}, grad.options());
      Product(a_h, batch, [&](int64_t b) { return std::vector<RowSource>{Source(grad, b, 0)}; },
              torch::Tensor(), grad_hidden, t_out);
    }
    torch::Tensor grad_bias = grad.sum(2);
    return {grad_x, grad_weight, grad_cond_weight, grad_hidden, grad_bias,
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool DilatedConvApplies(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.is_cpu() && x.scalar_type() == torch::kFloat && weight.is_cpu() &&
         weight.scalar_type() == torch::kFloat && !at::autocast::is_autocast_enabled(at::kCPU);
}

torch::Tensor DilatedConv(const torch::Tensor& x, int64_t pad_left, int64_t pad_right,
                          int64_t dilation, const torch::Tensor& weight,
                          const torch::Tensor& cond_weight, const torch::Tensor& hidden,
                          const torch::Tensor& bias) {
  TORCH_CHECK(DilatedConvApplies(x, weight), "DilatedConv: float CPU tensors only");
  const bool with_cond = hidden.defined() && cond_weight.defined();
  TORCH_CHECK(x.dim() == 3 && weight.dim() == 3 && weight.size(1) == x.size(1) &&
                  bias.sizes() == torch::IntArrayRef({x.size(0), weight.size(0)}),
              "DilatedConv: x ", x.sizes(), ", weight ", weight.sizes(), ", bias ", bias.sizes());
  const int64_t t_out = pad_left + x.size(2) + pad_right - (weight.size(2) - 1) * dilation;
  TORCH_CHECK(!with_cond || (hidden.dim() == 3 && hidden.size(0) == x.size(0) &&
                             hidden.size(2) == t_out),
              "DilatedConv: hidden ", hidden.sizes(), " for ", t_out, " output steps");
  // Custom functions take defined tensors only: empty ones stand for none.
  const torch::Tensor none = torch::empty({0}, x.options());
  return DilatedConvFunction::apply(x, weight, with_cond ? cond_weight : none,
                                    with_cond ? hidden.to(torch::kFloat) : none,
                                    bias.to(torch::kFloat), pad_left, pad_right, dilation);
}

}  // namespace pianola
