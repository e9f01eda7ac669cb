#include "trainer/wavenet.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "trainer/dilated_conv.h"
#include "trainer/folded_features.h"
#include "trainer/gated_activation.h"
#include "trainer/gated_layer_kernel.h"
#include "trainer/layer_outputs.h"
#include "trainer/mulaw.h"

namespace pianola {

namespace nn = torch::nn;

namespace {

// x [B, C, T] -> [B * C, T', F]: block j of channel c as row j (T' =
// ceil(T / F), the last block zero-padded). A view when T is a multiple of F.
torch::Tensor Blocks(const torch::Tensor& x, int64_t f) {
  const int64_t b = x.size(0), c = x.size(1), t = x.size(2);
  const int64_t full = t / f;
  torch::Tensor main = x.narrow(2, 0, full * f).reshape({b * c, full, f});
  if (full * f == t) return main;
  torch::Tensor tail = torch::constant_pad_nd(x.narrow(2, full * f, t - full * f),
                                              {0, (full + 1) * f - t})
                           .reshape({b * c, 1, f});
  return full > 0 ? torch::cat({main, tail}, 1) : tail;
}

// a + b, in place into `a` (a fresh conv output: its backward does not need
// it) when the types agree; out of place otherwise, so that under autocast a
// float `b` still promotes the sum as before.
torch::Tensor AddInto(torch::Tensor a, const torch::Tensor& b) {
  if (a.scalar_type() == b.scalar_type()) return a.add_(b);
  return a + b;
}

// A 1x1 convolution. Without autograd on the CPU, one (batched) matrix
// product plus the bias: mkldnn's conv1d copies a non-contiguous input such
// as the transposed block view of the folded noise or a slice of the
// inference state first (im2col, ~5 % of a folded parallel render). With
// autograd in float on the CPU, DilatedConv with one tap: mkldnn runs these
// small products (48-64 channels, a few hundred steps per item) and their
// backward at a fraction of the core's rate (docs/perf.md, "Training
// throughput"). Elsewhere conv1d, on a contiguous input (which it would copy
// itself, and again in its backward pass).
torch::Tensor Pointwise(nn::Conv1d conv, const torch::Tensor& x) {
  const torch::Tensor& w = conv->weight;
  if (torch::GradMode::is_enabled() && DilatedConvApplies(x, w)) {
    const int64_t batch = x.size(0), out_channels = w.size(0);
    torch::Tensor bias = conv->options.bias()
                             ? conv->bias.unsqueeze(0).expand({batch, out_channels})
                             : torch::zeros({batch, out_channels}, x.options());
    return DilatedConv(x, 0, 0, 1, w, torch::Tensor(), torch::Tensor(), bias);
  }
  if (torch::GradMode::is_enabled() || !x.is_cpu() || x.scalar_type() != w.scalar_type() ||
      at::autocast::is_autocast_enabled(at::kCPU)) {
    return conv->forward(x.contiguous());
  }
  torch::Tensor out = torch::matmul(w.squeeze(-1), x);
  if (conv->options.bias()) out.add_(conv->bias.view({1, -1, 1}));
  return out;
}

}  // namespace

WaveNetImpl::WaveNetImpl(const DecoderConfig& config, int z_dim)
    : config_(config), z_dim_(z_dim) {
  const int r = config.residual_channels;
  const int g2 = 2 * config.gate_channels;
  const int s = config.skip_channels;
  const int k = config.kernel_size;
  const int layers = config.num_layers();
  const int fold = config.effective_fold();
  if (config.kind == DecoderKind::kAutoregressive && config.ar_input == ArInput::kEmbedding) {
    embedding_ = register_module("embedding", nn::Embedding(config.quantization_levels, r));
  } else {
    input_conv_ = register_module("input_conv", nn::Conv1d(nn::Conv1dOptions(fold, r, 1)));
  }
  int cond_in = config.cond_channels;
  if (config.cond_channels > 0 && fold > 1) {
    // Applied per channel as a strided conv (kernel F, stride F); stored as
    // a Conv1d so it initializes and checkpoints like one.
    cond_fold_ = register_module(
        "cond_fold",
        nn::Conv1d(nn::Conv1dOptions(1, config.cond_fold_filters, fold).stride(fold).bias(false)));
    cond_hidden_ = register_module(
        "cond_hidden",
        nn::Conv1d(nn::Conv1dOptions(config.cond_channels * config.cond_fold_filters,
                                     config.cond_hidden_channels, 1)));
    cond_in = config.cond_hidden_channels;
  } else if (config.cond_channels > 0 && config.cond_hidden_channels > 0) {
    cond_hidden_ = register_module(
        "cond_hidden",
        nn::Conv1d(nn::Conv1dOptions(config.cond_channels, config.cond_hidden_channels, 1)));
    cond_in = config.cond_hidden_channels;
  }
  if (z_dim > 0) {
    z_proj_ = register_module("z_proj", nn::Linear(nn::LinearOptions(z_dim, layers * g2).bias(false)));
  }
  const bool causal = config.kind == DecoderKind::kAutoregressive;
  for (int i = 0; i < layers; ++i) {
    const int d = dilation(i);
    auto opts = nn::Conv1dOptions(r, g2, k).dilation(d);
    if (!causal) opts.padding(d * (k - 1) / 2);
    dilated_.push_back(register_module(absl::StrCat("dilated", i), nn::Conv1d(opts)));
    if (cond_in > 0) {
      cond_.push_back(register_module(
          absl::StrCat("cond", i), nn::Conv1d(nn::Conv1dOptions(cond_in, g2, 1).bias(false))));
    }
    if (i + 1 < layers) {
      residual_.push_back(register_module(
          absl::StrCat("residual", i), nn::Conv1d(nn::Conv1dOptions(config.gate_channels, r, 1))));
    } else {
      residual_.push_back(nn::Conv1d(nullptr));
    }
    skip_.push_back(register_module(
        absl::StrCat("skip", i), nn::Conv1d(nn::Conv1dOptions(config.gate_channels, s, 1))));
  }
  head_hidden_ = register_module("head_hidden", nn::Conv1d(nn::Conv1dOptions(s, s, 1)));
  const int out = causal ? config.quantization_levels : fold;
  head_out_ = register_module("head_out", nn::Conv1d(nn::Conv1dOptions(s, out, 1)));
}

torch::Tensor WaveNetImpl::EmbedInput(const torch::Tensor& input) {
  if (config_.kind == DecoderKind::kAutoregressive) {
    if (config_.ar_input == ArInput::kEmbedding) {
      // The embedding as a row gather, [B, T, R] -> [B, R, T]. Not
      // nn::Embedding's forward: its CUDA backward sorts the indices and reads
      // a count back to the host past 3072 of them, which a CUDA graph cannot
      // capture (pytorch/pytorch#82886); index_select's backward is an
      // index_add_, with no host synchronization. Same values either way.
      return embedding_->weight.index_select(0, input.reshape(-1))
          .view({input.size(0), input.size(1), -1})
          .transpose(1, 2);
    }
    return Pointwise(input_conv_, MuLawClassToCompanded(input, config_.quantization_levels)
                                      .to(input_conv_->weight.scalar_type())
                                      .unsqueeze(1));
  }
  const int64_t f = fold();
  if (f == 1) return Pointwise(input_conv_, input.unsqueeze(1));
  // [B, T] -> [B, T', F] -> [B, F, T']: block j's samples as channels.
  return Pointwise(input_conv_, Blocks(input.unsqueeze(1), f).transpose(1, 2));
}

torch::Tensor WaveNetImpl::ConditioningHidden(const torch::Tensor& cond) {
  if (!cond.defined() || config_.cond_channels == 0) return torch::Tensor();
  if (cond_hidden_.is_empty()) return cond;
  const int64_t f = fold();
  if (f == 1) return Pointwise(cond_hidden_, cond);
  if (FoldedFeaturesApplies(cond, cond_fold_->weight)) {
    return Pointwise(cond_hidden_, FoldedFeatures(cond, cond_fold_->weight));
  }
  // Elsewhere the strided conv as one batched matmul: filters [M, F] times
  // each channel's blocks [F, T'] gives [B * C, M, T'], already in the
  // (c, m) channel order of [B, C * M, T'], with no copy of the features.
  // (An explicit bmm: matmul would fold this into one [B*C*T', F] x [F, M]
  // product and copy its transposed result; torch's strided conv1d is ~10x
  // slower on these shapes.)
  const int64_t m = config_.cond_fold_filters;
  torch::Tensor blocks = Blocks(cond, f);  // [B * C, T', F]
  torch::Tensor filters = cond_fold_->weight.view({1, m, f}).to(blocks.scalar_type());
  torch::Tensor folded =
      torch::bmm(filters.expand({blocks.size(0), m, f}), blocks.transpose(1, 2));
  return Pointwise(cond_hidden_, folded.view({cond.size(0), cond.size(1) * m, blocks.size(1)}));
}

torch::Tensor WaveNetImpl::GlobalBiases(const torch::Tensor& z) {
  if (z_dim_ == 0 || !z.defined()) return torch::Tensor();
  return z_proj_->forward(z);
}

torch::Tensor WaveNetImpl::LayerBias(int layer, const torch::Tensor& hidden,
                                     const torch::Tensor& global_biases) {
  const int64_t g2 = 2 * config_.gate_channels;
  torch::Tensor bias = dilated_[layer]->bias.view({1, g2, 1});
  if (hidden.defined() && !cond_.empty()) bias = cond_[layer]->forward(hidden) + bias;
  if (global_biases.defined()) {
    bias = bias + global_biases.narrow(1, layer * g2, g2).unsqueeze(-1);
  }
  return bias;
}

torch::Tensor WaveNetImpl::Head(const torch::Tensor& skip) {
  torch::Tensor out = Pointwise(head_out_, torch::relu(Pointwise(head_hidden_, torch::relu(skip))));
  if (config_.kind == DecoderKind::kAutoregressive) return out;
  if (fold() == 1) return out.squeeze(1);
  // [B, F, T'] -> [B, T', F] -> [B, T' * F]: step j's channels are samples
  // jF .. jF+F-1.
  return out.transpose(1, 2).reshape({out.size(0), out.size(1) * out.size(2)});
}

torch::Tensor WaveNetImpl::forward(const torch::Tensor& input, const torch::Tensor& cond,
                                   const torch::Tensor& z, int64_t first_output) {
  const int64_t n = input.size(-1);
  TORCH_CHECK(first_output >= 0 && first_output < n, "WaveNet: first_output ", first_output,
              " outside the input's ", n, " samples");
  const torch::Tensor& w = dilated_[0]->weight;
  const int64_t f = fold();
  const int64_t steps = (n + f - 1) / f;
  if (steps >= kInPlaceMinSteps && !torch::GradMode::is_enabled() &&
      !at::autocast::is_autocast_enabled(w.device().type()) &&
      (autoregressive() || input.scalar_type() == w.scalar_type()) &&
      (!cond.defined() || cond.scalar_type() == w.scalar_type())) {
    return ForwardNoGrad(input, cond, z).narrow(-1, first_output, n - first_output);
  }
  const int64_t g = config_.gate_channels;
  const int k = config_.kernel_size;
  const bool causal = config_.kind == DecoderKind::kAutoregressive;
  const double scale = std::sqrt(0.5);
  const int layers = num_layers();
  // Steps a layer's output reads on each side of its own.
  auto left_reach = [&](int i) -> int64_t {
    return causal ? (k - 1) * dilation(i) : (k - 1) / 2 * dilation(i);
  };
  const int64_t right_reach_unit = causal ? 0 : (k - 1) / 2;
  // reach_after[i]: how far left of the first output the layers after i read.
  std::vector<int64_t> reach_after(layers, 0);
  for (int i = layers - 2; i >= 0; --i) reach_after[i] = reach_after[i + 1] + left_reach(i + 1);
  const int64_t first_step = first_output / f;

  torch::Tensor x = EmbedInput(input);  // steps [x_start, steps)
  int64_t x_start = 0;
  torch::Tensor hidden = ConditioningHidden(cond);
  torch::Tensor global = GlobalBiases(z);
  torch::Tensor skip;
  for (int i = 0; i < layers; ++i) {
    // Layer i computes steps [out_start, steps): what the later layers read
    // of it. Its input starts left_reach(i) earlier, or at step 0, where it
    // is zero-padded exactly as the full sequence is.
    const int64_t out_start = std::max<int64_t>(0, first_step - reach_after[i]);
    const int64_t pad_left = left_reach(i) - (out_start - x_start);
    const int64_t pad_right = right_reach_unit * dilation(i);
    TORCH_INTERNAL_ASSERT(pad_left >= 0 && pad_left <= left_reach(i));
    const int64_t len = steps - out_start;
    const bool use_cond = hidden.defined() && !cond_.empty();
    const torch::Tensor h = use_cond && out_start > 0 ? hidden.narrow(2, out_start, len) : hidden;
    torch::Tensor a;
    if (DilatedConvApplies(x, dilated_[i]->weight)) {
      // The conv, the MIDI 1x1 conv and LayerBias's biases in one node.
      torch::Tensor bias = dilated_[i]->bias.unsqueeze(0);
      bias = global.defined() ? global.narrow(1, i * 2 * g, 2 * g) + bias
                              : bias.expand({x.size(0), 2 * g});
      a = DilatedConv(x, pad_left, pad_right, dilation(i), dilated_[i]->weight,
                      use_cond ? cond_[i]->weight : torch::Tensor(), use_cond ? h : torch::Tensor(),
                      bias);
    } else {
      auto conv = [&](const torch::Tensor& in, int64_t pad) {
        return torch::conv1d(in, dilated_[i]->weight, dilated_[i]->bias, 1, pad, dilation(i));
      };
      a = pad_left == pad_right ? conv(x, pad_left)
                                : conv(torch::constant_pad_nd(x, {pad_left, pad_right}), 0);
      // LayerBias's terms, each added into the conv output. A narrowed input
      // made contiguous here, once: the convolution would copy it itself,
      // and again in its backward pass (it saves its input).
      if (use_cond) a = AddInto(a, cond_[i]->forward(h.contiguous()));
      if (global.defined()) a = AddInto(a, global.narrow(1, i * 2 * g, 2 * g).unsqueeze(-1));
    }
    torch::Tensor gated = GatedActivation(a, g);
    if (skip.defined() && i + 1 < layers && torch::GradMode::is_enabled() &&
        LayerOutputsApply(gated, residual_[i]->weight)) {
      // The same two outputs as below, as one node (its backward makes
      // gated's and x's gradients without zero-filled full-size ones).
      std::tie(x, skip) = LayerOutputs(gated, x, out_start - x_start, skip, first_step - out_start,
                                       residual_[i]->weight, residual_[i]->bias,
                                       skip_[i]->weight, skip_[i]->bias, scale);
      x_start = out_start;
      continue;
    }
    // Only the outputs' own steps reach the skip sum.
    torch::Tensor s = Pointwise(
        skip_[i], first_step > out_start
                      ? gated.narrow(2, first_step - out_start, steps - first_step)
                      : gated);
    skip = skip.defined() ? AddInto(s, skip) : s;
    if (i + 1 < layers) {
      torch::Tensor residual = out_start > x_start ? x.narrow(2, out_start - x_start, len) : x;
      x = AddInto(Pointwise(residual_[i], gated), residual).mul_(scale);
      x_start = out_start;
    }
  }
  torch::Tensor out = Head(skip);  // from step first_step on
  // Folded: drop the first block's samples before first_output and the
  // zero-padded tail.
  if (f == 1) return out;
  return out.narrow(1, first_output - first_step * f, n - first_output);
}

// Inference: x_0, the MIDI hidden features and the z biases, the layers
// (SkipSum or SkipSumCpu), the head.
torch::Tensor WaveNetImpl::ForwardNoGrad(const torch::Tensor& input, const torch::Tensor& cond,
                                         const torch::Tensor& z) {
  torch::Tensor x0 = EmbedInput(input);  // [B, R, T']
  torch::Tensor hidden = cond_.empty() ? torch::Tensor() : ConditioningHidden(cond);
  torch::Tensor global = GlobalBiases(z);  // [B, layers * 2G]
  torch::Tensor skip = x0.is_cpu() && x0.scalar_type() == torch::kFloat
                           ? SkipSumCpu(x0, hidden, global)
                           : SkipSum(x0, hidden, global);
  torch::Tensor out = Head(skip);
  if (!autoregressive() && fold() > 1) return out.narrow(1, 0, input.size(1));
  return out;
}

// Inference: the same arithmetic as forward()'s training path as plain
// matrix products on each batch item's [channels, T'] matrices, accumulated in
// place into one state buffer [h; y; skip] (hidden MIDI features, residual
// stream, skip sum) and two scratch buffers reused by every layer.
//
// A dilated conv with taps at offsets o_j = j * d - left is
// sum_j W_j x[:, t + o_j]: the zero-offset tap and the MIDI 1x1 conv are one
// product over the rows [h; y]; every other tap accumulates into the columns
// it reaches through shifted views of y (zero padding is the columns it does
// not reach). No im2col copy; one plain GEMM per product. (Float on the CPU
// takes SkipSumCpu: the same sums, fused per block of columns.)
//
// The residual update x_{i+1} = (x_i + W_res g + b_res) * s (s = sqrt(1/2))
// is kept unscaled: y_i = x_i / s^i, so y_{i+1} = y_i + s^-i (W_res g + b_res)
// and layer i reads x_i as s^i y_i through its (scaled) conv weights. Then the
// residual and skip 1x1 convs are one product accumulating into the adjacent
// rows [y; skip] with the stacked weights [s^-i W_res; W_skip].
torch::Tensor WaveNetImpl::SkipSum(const torch::Tensor& x0, const torch::Tensor& hidden,
                                   const torch::Tensor& global) {
  const int64_t g = config_.gate_channels;
  const int64_t g2 = 2 * g;
  const int64_t r = config_.residual_channels;
  const int64_t skip_channels = config_.skip_channels;
  const int k = config_.kernel_size;
  const bool causal = autoregressive();
  const int layers = num_layers();
  const int64_t batch = x0.size(0), steps = x0.size(2);
  const bool use_cond = hidden.defined();
  const int64_t h = use_cond ? hidden.size(1) : 0;
  torch::Tensor state = torch::empty({batch, h + r + skip_channels, steps}, x0.options());
  if (use_cond) state.narrow(1, 0, h).copy_(hidden);
  state.narrow(1, h, r).copy_(x0);
  state.narrow(1, h + r, skip_channels).zero_();
  torch::Tensor a = torch::empty({1, g2, steps}, x0.options());
  torch::Tensor gated = torch::empty({1, g, steps}, x0.options());
  torch::Tensor skip_bias;
  double x_scale = 1.0;  // s^i: x_i = x_scale * y_i
  for (int i = 0; i < layers; ++i) {
    const int64_t d = dilation(i);
    const int64_t left = causal ? (k - 1) * d : (k - 1) / 2 * d;
    const int64_t center = left / d;  // the tap at offset 0
    const torch::Tensor w = dilated_[i]->weight * x_scale;  // [2G, R, k], reads y
    torch::Tensor w_center = w.select(2, center);
    if (use_cond) w_center = torch::cat({cond_[i]->weight.squeeze(-1), w_center}, 1);
    const bool last = i + 1 == layers;
    // [s^-i W_res; W_skip] into [y; skip], or W_skip into skip for the last.
    torch::Tensor w_out = skip_[i]->weight.squeeze(-1);
    torch::Tensor res_bias;
    if (!last) {
      w_out = torch::cat({residual_[i]->weight.squeeze(-1) / x_scale, w_out}, 0);
      res_bias = (residual_[i]->bias / x_scale).unsqueeze(1);
    }
    skip_bias = skip_bias.defined() ? skip_bias + skip_[i]->bias : skip_[i]->bias;
    for (int64_t b = 0; b < batch; ++b) {
      torch::Tensor item = state[b];
      torch::Tensor y = item.narrow(0, h, r);
      torch::Tensor a2 = a[0], g2d = gated[0];
      torch::Tensor bias = dilated_[i]->bias;
      if (global.defined()) bias = bias + global[b].narrow(0, i * g2, g2);
      torch::addmm_out(a2, bias.unsqueeze(1), w_center, item.narrow(0, 0, h + r));
      for (int j = 0; j < k; ++j) {
        const int64_t o = j * d - left;  // a[:, t] += W_j x[:, t + o]
        if (o == 0 || std::abs(o) >= steps) continue;
        const int64_t n = steps - std::abs(o);
        a2.narrow(1, std::max<int64_t>(0, -o), n)
            .addmm_(w.select(2, j), y.narrow(1, std::max<int64_t>(0, o), n));
      }
      GatedActivationOut(a, g, gated);
      if (last) {
        item.narrow(0, h + r, skip_channels).addmm_(w_out, g2d);
      } else {
        item.narrow(0, h, r + skip_channels).addmm_(w_out, g2d);
        y.add_(res_bias);
      }
    }
    if (!last) x_scale *= std::sqrt(0.5);
  }
  torch::Tensor skip = state.narrow(1, h + r, skip_channels);
  return skip.add_(skip_bias.view({1, -1, 1}));
}

// The same layers through GatedLayerKernel, one fused pass over blocks of
// columns per layer. Each batch item keeps the residual stream in two
// buffers (read one, write the other: a block's taps read columns that
// neighbouring blocks of the same layer overwrite). Every tap is a bounded
// source (columns before the first step or past the last read as zeros: the
// convolution's padding), the MIDI hidden rows are read in place. The kernel
// works on whole tiles, so the buffers are padded to them; the padding
// columns are written, never read, and cut off at the end.
torch::Tensor WaveNetImpl::SkipSumCpu(const torch::Tensor& x0, const torch::Tensor& hidden_in,
                                      const torch::Tensor& global) {
  const int64_t g = config_.gate_channels;
  const int64_t g2 = 2 * g;
  const int64_t r = config_.residual_channels;
  const int64_t skip_channels = config_.skip_channels;
  const int k = config_.kernel_size;
  const bool causal = autoregressive();
  const int layers = num_layers();
  const int64_t batch = x0.size(0), steps = x0.size(2);
  const torch::Tensor hidden = hidden_in.defined() ? hidden_in.contiguous() : hidden_in;
  const int64_t h = hidden.defined() ? hidden.size(1) : 0;
  const int64_t tile = kGatedLayerTileColumns;
  const int64_t padded = (steps + tile - 1) / tile * tile;
  torch::TensorOptions options = x0.options();
  torch::Tensor stream = torch::zeros({batch, 2, r, padded}, options);
  stream.select(1, 0).narrow(2, 0, steps).copy_(x0);
  torch::Tensor skip = torch::zeros({batch, skip_channels, padded}, options);

  double x_scale = 1.0;  // s^i: x_i = x_scale * y_i (see SkipSum)
  for (int i = 0; i < layers; ++i) {
    const int64_t d = dilation(i);
    const int64_t left = causal ? (k - 1) * d : (k - 1) / 2 * d;
    const bool last = i + 1 == layers;
    // Pre = [W_cond | s^i W_0 | ... | s^i W_{k-1}], [2G, H + kR].
    std::vector<torch::Tensor> pre_parts;
    if (h > 0) pre_parts.push_back(cond_[i]->weight.squeeze(-1));
    pre_parts.push_back((dilated_[i]->weight * x_scale).permute({0, 2, 1}).reshape({g2, k * r}));
    const torch::Tensor pre_w = torch::cat(pre_parts, 1).contiguous();
    const PanelMatrix pre(pre_w.data_ptr<float>(), g2, pre_w.size(1), pre_w.size(1));
    // Out = [s^-i W_res; W_skip] (W_skip alone for the last layer), its bias
    // [s^-i b_res; b_skip].
    torch::Tensor out_w = skip_[i]->weight.squeeze(-1);
    torch::Tensor out_b = skip_[i]->bias;
    if (!last) {
      out_w = torch::cat({residual_[i]->weight.squeeze(-1) / x_scale, out_w}, 0);
      out_b = torch::cat({residual_[i]->bias / x_scale, out_b}, 0);
    }
    out_w = out_w.contiguous();
    out_b = out_b.contiguous();
    const PanelMatrix out(out_w.data_ptr<float>(), out_w.size(0), g, g);
    for (int64_t b = 0; b < batch; ++b) {
      torch::Tensor pre_bias = dilated_[i]->bias;
      if (global.defined()) pre_bias = pre_bias + global[b].narrow(0, i * g2, g2);
      pre_bias = pre_bias.contiguous();
      float* y_in = stream[b][i % 2].data_ptr<float>();
      float* y_out = stream[b][(i + 1) % 2].data_ptr<float>();
      float* skip_rows = skip[b].data_ptr<float>();
      GatedLayer layer{.pre = &pre, .pre_bias = pre_bias.data_ptr<float>(), .out = &out,
                       .out_bias = out_b.data_ptr<float>()};
      if (h > 0) layer.sources.push_back({hidden[b].data_ptr<float>(), h, steps, 0, steps});
      for (int j = 0; j < k; ++j) layer.sources.push_back({y_in, r, padded, j * d - left, steps});
      if (!last) {
        for (int64_t c = 0; c < r; ++c) {
          layer.init.push_back(y_in + c * padded);
          layer.dest.push_back(y_out + c * padded);
        }
      }
      for (int64_t c = 0; c < skip_channels; ++c) {
        layer.init.push_back(skip_rows + c * padded);
        layer.dest.push_back(skip_rows + c * padded);
      }
      at::parallel_for(0, padded / tile, 4, [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(GatedLayerScratchFloats(layer));
        GatedLayerKernel(layer, begin * tile, end * tile, scratch.data());
      });
    }
    if (!last) x_scale *= std::sqrt(0.5);
  }
  return skip.narrow(2, 0, steps);
}

}  // namespace pianola
