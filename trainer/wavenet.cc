#include "trainer/wavenet.h"

#include <cmath>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "trainer/mulaw.h"

namespace pianola {

namespace nn = torch::nn;

WaveNetImpl::WaveNetImpl(const DecoderConfig& config, int z_dim)
    : config_(config), z_dim_(z_dim) {
  const int r = config.residual_channels;
  const int g2 = 2 * config.gate_channels;
  const int s = config.skip_channels;
  const int k = config.kernel_size;
  const int layers = config.num_layers();
  if (config.kind == DecoderKind::kAutoregressive && config.ar_input == ArInput::kEmbedding) {
    embedding_ = register_module("embedding", nn::Embedding(config.quantization_levels, r));
  } else {
    input_conv_ = register_module("input_conv", nn::Conv1d(nn::Conv1dOptions(1, r, 1)));
  }
  int cond_in = config.cond_channels;
  if (config.cond_channels > 0 && config.cond_hidden_channels > 0) {
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
  const int out = causal ? config.quantization_levels : 1;
  head_out_ = register_module("head_out", nn::Conv1d(nn::Conv1dOptions(s, out, 1)));
}

torch::Tensor WaveNetImpl::EmbedInput(const torch::Tensor& input) {
  if (config_.kind == DecoderKind::kAutoregressive) {
    if (config_.ar_input == ArInput::kEmbedding) {
      return embedding_->forward(input).transpose(1, 2);  // [B, T, R] -> [B, R, T]
    }
    return input_conv_->forward(MuLawClassToCompanded(input, config_.quantization_levels)
                                    .to(input_conv_->weight.scalar_type())
                                    .unsqueeze(1));
  }
  return input_conv_->forward(input.unsqueeze(1));
}

torch::Tensor WaveNetImpl::ConditioningHidden(const torch::Tensor& cond) {
  if (!cond.defined() || config_.cond_channels == 0) return torch::Tensor();
  if (cond_hidden_.is_empty()) return cond;
  return cond_hidden_->forward(cond);
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
  torch::Tensor out = head_out_->forward(torch::relu(head_hidden_->forward(torch::relu(skip))));
  if (config_.kind == DecoderKind::kParallel) return out.squeeze(1);
  return out;
}

torch::Tensor WaveNetImpl::forward(const torch::Tensor& input, const torch::Tensor& cond,
                                   const torch::Tensor& z) {
  const int64_t g = config_.gate_channels;
  const int k = config_.kernel_size;
  const bool causal = config_.kind == DecoderKind::kAutoregressive;
  const double scale = std::sqrt(0.5);
  torch::Tensor x = EmbedInput(input);
  torch::Tensor hidden = ConditioningHidden(cond);
  torch::Tensor global = GlobalBiases(z);
  torch::Tensor skip;
  for (int i = 0; i < num_layers(); ++i) {
    torch::Tensor xin = causal ? torch::constant_pad_nd(x, {(k - 1) * dilation(i), 0}) : x;
    // The conv's own bias is part of LayerBias, so the functional conv runs
    // without it.
    const auto& conv = dilated_[i];
    const int64_t pad = causal ? 0 : dilation(i) * (k - 1) / 2;
    torch::Tensor a = torch::conv1d(xin, conv->weight, {}, 1, pad, dilation(i));
    a = a + LayerBias(i, hidden, global);
    torch::Tensor gated = torch::tanh(a.narrow(1, 0, g)) * torch::sigmoid(a.narrow(1, g, g));
    torch::Tensor s = skip_[i]->forward(gated);
    skip = skip.defined() ? skip + s : s;
    if (i + 1 < num_layers()) x = (x + residual_[i]->forward(gated)) * scale;
  }
  return Head(skip);
}

}  // namespace pianola
