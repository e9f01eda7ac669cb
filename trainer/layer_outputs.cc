#include "trainer/layer_outputs.h"

#include <vector>

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

// A 1x1 convolution's weight [out, in, 1] as a [out, in] matrix.
torch::Tensor Matrix(const torch::Tensor& w) {
  return w.reshape({w.size(0), w.size(1)}).contiguous();
}

class LayerOutputsFunction : public torch::autograd::Function<LayerOutputsFunction> {
 public:
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& gated_in,
                             const torch::Tensor& x_prev, const torch::Tensor& skip_prev,
                             const torch::Tensor& w_res, const torch::Tensor& b_res,
                             const torch::Tensor& w_skip, const torch::Tensor& b_skip,
                             int64_t res_offset, int64_t skip_offset, double scale) {
    // (gated, W_res, W_skip, N): what trainer/flop_counter.cc reads.
    RECORD_FUNCTION("pianola::LayerOutputs",
                    std::vector<c10::IValue>({gated_in, w_res, w_skip, skip_prev.size(2)}));
    const torch::Tensor gated = TimeContiguous(gated_in);
    const int64_t batch = gated.size(0), len = gated.size(2), n_skip = skip_prev.size(2);
    const torch::Tensor wr = Matrix(w_res), ws = Matrix(w_skip);
    const PanelMatrix a_res(wr.data_ptr<float>(), wr.size(0), wr.size(1), wr.size(1));
    const PanelMatrix a_skip(ws.data_ptr<float>(), ws.size(0), ws.size(1), ws.size(1));
    torch::Tensor x_next = torch::empty({batch, wr.size(0), len}, gated.options());
    Product(a_res, batch, [&](int64_t b) { return std::vector<RowSource>{Source(gated, b, 0)}; },
            b_res.contiguous().unsqueeze(0).expand({batch, wr.size(0)}), x_next, len);
    x_next.add_(x_prev.narrow(2, res_offset, len)).mul_(scale);
    torch::Tensor skip = torch::empty({batch, ws.size(0), n_skip}, gated.options());
    Product(a_skip, batch,
            [&](int64_t b) { return std::vector<RowSource>{Source(gated, b, skip_offset)}; },
            b_skip.contiguous().unsqueeze(0).expand({batch, ws.size(0)}), skip, n_skip);
    skip.add_(skip_prev);
    ctx->save_for_backward({gated, wr, ws});
    ctx->saved_data["x_length"] = x_prev.size(2);
    ctx->saved_data["res_offset"] = res_offset;
    ctx->saved_data["skip_offset"] = skip_offset;
    ctx->saved_data["scale"] = scale;
    return {x_next, skip};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_FUNCTION("pianola::LayerOutputsBackward", std::vector<c10::IValue>());
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor& gated = saved[0];
    const torch::Tensor& wr = saved[1];  // [R, G]
    const torch::Tensor& ws = saved[2];  // [S, G]
    const int64_t x_length = ctx->saved_data["x_length"].toInt();
    const int64_t res_offset = ctx->saved_data["res_offset"].toInt();
    const int64_t skip_offset = ctx->saved_data["skip_offset"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const torch::Tensor g_x = grads[0].contiguous();  // [B, R, L]
    const torch::Tensor g_s = grads[1].contiguous();  // [B, S, N]
    const int64_t batch = gated.size(0), g = gated.size(1), len = gated.size(2);
    const int64_t r = wr.size(0), s = ws.size(0), n_skip = g_s.size(2);

    // d gated = [scale W_res^T | W_skip^T] · [g_x ; g_s shifted right by
    // skip_offset], the columns before the skip's first read as zeros.
    const torch::Tensor a_t = torch::cat({wr.t() * scale, ws.t()}, 1).contiguous();  // [G, R+S]
    const PanelMatrix a(a_t.data_ptr<float>(), g, r + s, r + s);
    torch::Tensor grad_gated = torch::empty({batch, g, len}, gated.options());
    Product(a, batch, [&](int64_t b) {
      return std::vector<RowSource>{Source(g_x, b, 0), Source(g_s, b, -skip_offset)};
    }, torch::Tensor(), grad_gated, len);

    // d x_prev: zero before res_offset, scale g_x from there.
    torch::Tensor grad_x = torch::empty({batch, r, x_length}, gated.options());
    grad_x.narrow(2, 0, res_offset).zero_();
    grad_x.narrow(2, res_offset, len).copy_(g_x).mul_(scale);

    // The weights: dot products over time of each output gradient with the
    // gate rows it was made from.
    torch::Tensor grad_w_res = torch::zeros({r, g}, gated.options());
    Dots(Rows(g_x, r, 0), Rows(gated, g, 0), batch, len, grad_w_res.data_ptr<float>(), g);
    grad_w_res.mul_(scale);
    torch::Tensor grad_w_skip = torch::zeros({s, g}, gated.options());
    Dots(Rows(g_s, s, 0), Rows(gated, g, skip_offset), batch, n_skip,
         grad_w_skip.data_ptr<float>(), g);
    return {grad_gated,
            grad_x,
            grads[1],
            grad_w_res.unsqueeze(-1),
            g_x.sum(torch::IntArrayRef{0, 2}).mul_(scale),
            grad_w_skip.unsqueeze(-1),
            g_s.sum(torch::IntArrayRef{0, 2}),
            torch::Tensor(),
            torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

bool LayerOutputsApply(const torch::Tensor& gated, const torch::Tensor& w_res) {
  return gated.is_cpu() && gated.scalar_type() == torch::kFloat && w_res.is_cpu() &&
         w_res.scalar_type() == torch::kFloat && !at::autocast::is_autocast_enabled(at::kCPU);
}

std::pair<torch::Tensor, torch::Tensor> LayerOutputs(
    const torch::Tensor& gated, const torch::Tensor& x_prev, int64_t res_offset,
    const torch::Tensor& skip_prev, int64_t skip_offset, const torch::Tensor& w_res,
    const torch::Tensor& b_res, const torch::Tensor& w_skip, const torch::Tensor& b_skip,
    double scale) {
  TORCH_CHECK(LayerOutputsApply(gated, w_res) && gated.dim() == 3 && x_prev.dim() == 3 &&
                  skip_prev.dim() == 3 && w_res.dim() == 3 && w_skip.dim() == 3,
              "LayerOutputs: float CPU [B, C, T] tensors only");
  const int64_t len = gated.size(2);
  TORCH_CHECK(res_offset >= 0 && x_prev.size(2) == res_offset + len && skip_offset >= 0 &&
                  skip_prev.size(2) == len - skip_offset && w_res.size(1) == gated.size(1) &&
                  w_skip.size(1) == gated.size(1) && x_prev.size(1) == w_res.size(0) &&
                  skip_prev.size(1) == w_skip.size(0),
              "LayerOutputs: gated ", gated.sizes(), ", x_prev ", x_prev.sizes(), " from ",
              res_offset, ", skip_prev ", skip_prev.sizes(), " from ", skip_offset, ", W_res ",
              w_res.sizes(), ", W_skip ", w_skip.sizes());
  const tensor_list out = LayerOutputsFunction::apply(gated, x_prev, skip_prev, w_res, b_res,
                                                      w_skip, b_skip, res_offset, skip_offset,
                                                      scale);
  return {out[0], out[1]};
}

}  // namespace pianola
