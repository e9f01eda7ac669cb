#include "trainer/fused_stft_loss.h"

#include <cmath>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/autograd.h>
#include <torch/fft.h>
#include <torch/torch.h>

#include "trainer/stft_loss_kernel.h"

namespace pianola {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Frames per parallel_for task.
constexpr int64_t kRowGrain = 16;

// The periodic Hann window of win_length samples, centred in fft_size
// zeros (what torch::stft applies), and its offset.
torch::Tensor FullWindow(int64_t fft_size, int64_t win_length, int64_t left) {
  torch::Tensor window = torch::zeros({fft_size}, torch::kFloat);
  window.narrow(0, left, win_length).copy_(torch::hann_window(win_length, torch::kFloat));
  return window;
}

// audio [B, T] -> its centred, reflect-padded frames times the window,
// transformed: [B, frames, fft_size / 2 + 1, 2] (re, im), contiguous.
torch::Tensor Spectrum(const torch::Tensor& audio, const torch::Tensor& window, int64_t hop) {
  const int64_t n = window.size(0);
  const torch::Tensor padded =
      torch::reflection_pad1d(audio.unsqueeze(1), {n / 2, n / 2}).squeeze(1);
  return torch::view_as_real(torch::fft::rfft(padded.unfold(1, n, hop) * window, n, -1));
}

class StftLossFunction : public torch::autograd::Function<StftLossFunction> {
 public:
  static tensor_list forward(AutogradContext* ctx, const torch::Tensor& pred,
                             const torch::Tensor& target, int64_t fft_size, int64_t hop,
                             int64_t win_length) {
    RECORD_FUNCTION("pianola::StftLoss", std::vector<c10::IValue>({pred, fft_size, hop}));
    const int64_t left = (fft_size - win_length) / 2;
    const torch::Tensor window = FullWindow(fft_size, win_length, left);
    const torch::Tensor p = Spectrum(pred, window, hop);
    const torch::Tensor t = Spectrum(target, window, hop);
    const int64_t frames = p.size(0) * p.size(1), bins = p.size(2);
    torch::Tensor target_magnitude = torch::empty({frames, bins}, torch::kFloat);
    std::vector<StftRowSums> sums(frames);
    const float* pd = p.data_ptr<float>();
    const float* td = t.data_ptr<float>();
    float* tm = target_magnitude.data_ptr<float>();
    at::parallel_for(0, frames, kRowGrain, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(3 * StftRowScratchFloats(bins));
      for (int64_t r = begin; r < end; ++r) {
        sums[r] = StftLossRow(pd + r * bins * 2, td + r * bins * 2, bins, tm + r * bins,
                              scratch.data());
      }
    });
    double diff = 0, squares = 0, logs = 0;
    for (const StftRowSums& s : sums) {
      diff += s.diff_squares;
      squares += s.target_squares;
      logs += s.log_distance;
    }
    const double norm_diff = std::sqrt(diff), norm_target = std::sqrt(squares);
    const double count = static_cast<double>(frames * bins);
    ctx->save_for_backward({p, target_magnitude, window});
    ctx->saved_data["length"] = pred.size(1);
    ctx->saved_data["hop"] = hop;
    ctx->saved_data["left"] = left;
    ctx->saved_data["win_length"] = win_length;
    ctx->saved_data["norm_diff"] = norm_diff;
    ctx->saved_data["norm_target"] = norm_target;
    const auto scalar = [&](double v) {
      return torch::tensor(static_cast<float>(v), pred.options());
    };
    return {scalar(norm_diff / norm_target), scalar(logs / count)};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    RECORD_FUNCTION("pianola::StftLossBackward", std::vector<c10::IValue>());
    const tensor_list saved = ctx->get_saved_variables();
    const torch::Tensor& p = saved[0];
    const torch::Tensor& target_magnitude = saved[1];
    const torch::Tensor& window = saved[2];
    const int64_t hop = ctx->saved_data["hop"].toInt();
    const int64_t left = ctx->saved_data["left"].toInt();
    const int64_t win_length = ctx->saved_data["win_length"].toInt();
    const double norm_diff = ctx->saved_data["norm_diff"].toDouble();
    const double norm_target = ctx->saved_data["norm_target"].toDouble();
    const int64_t batch = p.size(0), n_frames = p.size(1), bins = p.size(2);
    const int64_t frames = batch * n_frames, fft_size = window.size(0);
    const auto value = [](const torch::Tensor& g) { return g.defined() ? g.item<double>() : 0.0; };
    const double g_sc = value(grads[0]), g_lm = value(grads[1]);
    const float sc_coef =
        norm_diff > 0 && norm_target > 0 ? static_cast<float>(g_sc / (norm_diff * norm_target)) : 0;
    const float log_coef = static_cast<float>(g_lm / static_cast<double>(frames * bins));
    const bool nyquist = fft_size % 2 == 0;
    torch::Tensor grad_spectrum = torch::empty_like(p);
    const float* pd = p.data_ptr<float>();
    const float* tm = target_magnitude.data_ptr<float>();
    float* gd = grad_spectrum.data_ptr<float>();
    at::parallel_for(0, frames, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        StftLossGradRow(pd + r * bins * 2, tm + r * bins, bins, sc_coef, log_coef,
                        static_cast<float>(fft_size), 0.5f * static_cast<float>(fft_size),
                        nyquist, gd + r * bins * 2);
      }
    });
    const torch::Tensor grad_frames =
        torch::fft::irfft(torch::view_as_complex(grad_spectrum), fft_size, -1).contiguous();
    const int64_t pad = fft_size / 2;
    const int64_t length = ctx->saved_data["length"].toInt();
    torch::Tensor grad_pred = torch::empty({batch, length}, torch::kFloat);
    const float* w = window.data_ptr<float>() + left;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> padded(length + 2 * pad);  // the frames end within it
      for (int64_t b = begin; b < end; ++b) {
        std::fill(padded.begin(), padded.end(), 0.0f);
        OverlapAddFrames(grad_frames.data_ptr<float>() + b * n_frames * fft_size, n_frames,
                         fft_size, hop, w, left, win_length, padded.data());
        ReflectPadBackward(padded.data(), length, pad, grad_pred.data_ptr<float>() + b * length);
      }
    });
    return {grad_pred, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool FusedStftLossApplies(const torch::Tensor& pred, const torch::Tensor& target) {
  return pred.is_cpu() && target.is_cpu() && pred.scalar_type() == torch::kFloat &&
         target.scalar_type() == torch::kFloat && pred.dim() == 2 &&
         pred.sizes() == target.sizes() && !target.requires_grad() &&
         !at::autocast::is_autocast_enabled(at::kCPU);
}

StftLossTerms FusedStftLoss(const torch::Tensor& pred, const torch::Tensor& target,
                            const StftResolution& resolution) {
  TORCH_CHECK(FusedStftLossApplies(pred, target), "FusedStftLoss: pred ", pred.sizes(),
              ", target ", target.sizes(), ": float CPU [B, T] tensors only");
  const tensor_list out = StftLossFunction::apply(pred.contiguous(), target.contiguous(),
                                                  resolution.fft_size, resolution.hop,
                                                  resolution.win_length);
  return {out[0], out[1]};
}

}  // namespace pianola
