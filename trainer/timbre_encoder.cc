#include "trainer/timbre_encoder.h"

#include <torch/torch.h>

namespace pianola {

namespace nn = torch::nn;

TimbreEncoderImpl::TimbreEncoderImpl(const EncoderConfig& config, int sample_rate)
    : config_(config) {
  const int c = config.channels;
  const int k = config.kernel_size;
  convs_ = register_module("convs", nn::ModuleList());
  if (config.kind == EncoderKind::kMel) {
    mel_ = register_module("mel", LogMelSpectrogram(config.mel, sample_rate));
    int in = config.mel.n_mels;
    for (int i = 0; i < config.layers; ++i) {
      convs_->push_back(nn::Conv1d(nn::Conv1dOptions(in, c, k).padding(k / 2)));
      in = c;
    }
  } else {
    pointwise_ = register_module("pointwise", nn::ModuleList());
    raw_in_ = register_module("raw_in", nn::Conv1d(nn::Conv1dOptions(1, c, k).padding(k / 2)));
    for (int cycle = 0; cycle < config.raw_cycles; ++cycle) {
      for (int i = 0; i < config.layers; ++i) {
        const int dilation = 1 << i;
        convs_->push_back(nn::Conv1d(
            nn::Conv1dOptions(c, c, k).dilation(dilation).padding(dilation * (k / 2))));
        pointwise_->push_back(nn::Conv1d(nn::Conv1dOptions(c, c, 1)));
      }
    }
    raw_out_ = register_module("raw_out", nn::Conv1d(nn::Conv1dOptions(c, c, 1)));
  }
  project_ = register_module("project", nn::Linear(2 * c, config.z_dim));
}

torch::Tensor TimbreEncoderImpl::PoolAndProject(const torch::Tensor& features) {
  torch::Tensor mean = features.mean(-1);
  // sqrt(var + eps): finite gradient on constant features (silence).
  torch::Tensor std = (features.var(-1, /*unbiased=*/false) + 1e-5).sqrt();
  return project_->forward(torch::cat({mean, std}, 1));
}

torch::Tensor TimbreEncoderImpl::forward(const torch::Tensor& reference) {
  torch::Tensor x = reference.dim() == 1 ? reference.unsqueeze(0) : reference;
  if (config_.kind == EncoderKind::kMel) {
    x = mel_->forward(x);
    for (const auto& conv : *convs_) {
      x = torch::relu(conv->as<nn::Conv1d>()->forward(x));
    }
    return PoolAndProject(x);
  }
  x = raw_in_->forward(x.unsqueeze(1));
  for (size_t i = 0; i < convs_->size(); ++i) {
    torch::Tensor h = convs_[i]->as<nn::Conv1d>()->forward(torch::relu(x));
    x = x + pointwise_[i]->as<nn::Conv1d>()->forward(torch::relu(h));
  }
  x = raw_out_->forward(torch::relu(x));
  const int64_t pool = std::min<int64_t>(config_.raw_pool, x.size(-1));
  x = torch::avg_pool1d(x, pool, pool);
  return PoolAndProject(x);
}

}  // namespace pianola
