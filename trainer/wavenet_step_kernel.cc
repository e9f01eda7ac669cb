#include "trainer/wavenet_step_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "trainer/gate_kernel.h"
#include "trainer/kernel_clones.h"

namespace pianola {
namespace {

// y[0..n) += Σ_r x[r] * W[r][0..n), W stored [m][n]. Four rows per pass so
// y is loaded and stored a quarter as often.
PIANOLA_KERNEL_CLONES
void GemvAccumulate(const float* __restrict w, const float* __restrict x, int m, int n,
                    float* __restrict y) {
  int r = 0;
  for (; r + 4 <= m; r += 4) {
    const float x0 = x[r], x1 = x[r + 1], x2 = x[r + 2], x3 = x[r + 3];
    const float* w0 = w + static_cast<int64_t>(r) * n;
    const float* w1 = w0 + n;
    const float* w2 = w1 + n;
    const float* w3 = w2 + n;
    for (int i = 0; i < n; ++i) y[i] += x0 * w0[i] + x1 * w1[i] + x2 * w2[i] + x3 * w3[i];
  }
  for (; r < m; ++r) {
    const float xr = x[r];
    const float* wr = w + static_cast<int64_t>(r) * n;
    for (int i = 0; i < n; ++i) y[i] += xr * wr[i];
  }
}

}  // namespace

WaveNetStepKernel::WaveNetStepKernel(StepWeights weights, int batch)
    : w_(std::move(weights)), batch_(batch) {
  const int r = w_.residual_channels;
  for (const StepLayerWeights& layer : w_.layers) {
    const int64_t size = static_cast<int64_t>(w_.kernel_size - 1) * layer.dilation + 1;
    ring_size_.push_back(size);
    rings_.emplace_back(static_cast<size_t>(size * batch * r), 0.0f);
  }
  x_.resize(static_cast<size_t>(batch) * r);
  a_.resize(2 * w_.gate_channels);
  g_.resize(w_.gate_channels);
  r_.resize(r);
  skip_.resize(static_cast<size_t>(batch) * w_.skip_channels);
  hidden_.resize(w_.skip_channels);
}

void WaveNetStepKernel::Step(const int64_t* prev_classes, const float* const* layer_bias,
                             int64_t bias_batch_stride, float* logits) {
  const int R = w_.residual_channels, G = w_.gate_channels, S = w_.skip_channels;
  const int Q = w_.classes, K = w_.kernel_size;
  const float scale = std::sqrt(0.5f);
  // Layer-0 inputs.
  for (int b = 0; b < batch_; ++b) {
    float* x = &x_[static_cast<size_t>(b) * R];
    const int64_t c = std::clamp<int64_t>(prev_classes[b], 0, Q - 1);
    if (!w_.embedding.empty()) {
      std::memcpy(x, &w_.embedding[static_cast<size_t>(c) * R], sizeof(float) * R);
    } else {
      const float y = static_cast<float>(c) * (2.0f / (Q - 1)) - 1.0f;
      for (int i = 0; i < R; ++i) x[i] = w_.scalar_weight[i] * y + w_.scalar_bias[i];
    }
    std::copy(w_.skip_bias.begin(), w_.skip_bias.end(), skip_.begin() + int64_t{b} * S);
  }
  const int num_layers = static_cast<int>(w_.layers.size());
  for (int l = 0; l < num_layers; ++l) {
    const StepLayerWeights& lw = w_.layers[l];
    const int64_t size = ring_size_[l];
    std::vector<float>& ring = rings_[l];
    const int64_t slot_stride = static_cast<int64_t>(batch_) * R;
    const int64_t slot = t_ % size;
    for (int b = 0; b < batch_; ++b) {
      float* x = &x_[static_cast<size_t>(b) * R];
      std::memcpy(&ring[slot * slot_stride + int64_t{b} * R], x, sizeof(float) * R);
      const float* bias = layer_bias[l] + b * bias_batch_stride;
      std::copy(bias, bias + 2 * G, a_.begin());
      for (int j = 0; j < K; ++j) {
        // Tap j reads the input (K - 1 - j) * d steps ago; slots never written
        // yet hold zeros, which is the forward pass's left zero padding.
        const int64_t back = static_cast<int64_t>(K - 1 - j) * lw.dilation;
        const int64_t s = ((t_ - back) % size + size) % size;
        GemvAccumulate(&lw.dilated[static_cast<size_t>(j) * R * 2 * G],
                       &ring[s * slot_stride + int64_t{b} * R], R, 2 * G, a_.data());
      }
      GateKernel(a_.data(), a_.data() + G, G, g_.data());
      GemvAccumulate(lw.skip.data(), g_.data(), G, S, &skip_[static_cast<size_t>(b) * S]);
      if (!lw.residual.empty()) {
        std::copy(lw.residual_bias.begin(), lw.residual_bias.end(), r_.begin());
        GemvAccumulate(lw.residual.data(), g_.data(), G, R, r_.data());
        for (int i = 0; i < R; ++i) x[i] = (x[i] + r_[i]) * scale;
      }
    }
  }
  for (int b = 0; b < batch_; ++b) {
    float* skip = &skip_[static_cast<size_t>(b) * S];
    for (int i = 0; i < S; ++i) skip[i] = std::max(skip[i], 0.0f);
    std::copy(w_.head_hidden_bias.begin(), w_.head_hidden_bias.end(), hidden_.begin());
    GemvAccumulate(w_.head_hidden.data(), skip, S, S, hidden_.data());
    for (int i = 0; i < S; ++i) hidden_[i] = std::max(hidden_[i], 0.0f);
    float* out = logits + static_cast<size_t>(b) * Q;
    std::copy(w_.head_out_bias.begin(), w_.head_out_bias.end(), out);
    GemvAccumulate(w_.head_out.data(), hidden_.data(), S, Q, out);
  }
  ++t_;
}

}  // namespace pianola
