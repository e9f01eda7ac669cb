#include "trainer/autoencoder.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "trainer/losses.h"
#include "trainer/mulaw.h"

namespace pianola {
namespace {

// Loss computes only the loss positions when context * this >= window.
constexpr int64_t kMinCropFraction = 8;

}  // namespace

AutoencoderImpl::AutoencoderImpl(const ModelConfig& config) : config_(config) {
  const absl::Status valid = Validate(config);
  TORCH_CHECK(valid.ok(), "invalid model config: ", std::string(valid.message()));
  encoder_ = register_module("encoder", TimbreEncoder(config.encoder, config.sample_rate));
  decoder_ = register_module("decoder", WaveNet(config.decoder, config.encoder.z_dim));
}

torch::Tensor AutoencoderImpl::Encode(const torch::Tensor& reference) {
  return encoder_->forward(reference);
}

torch::Tensor AutoencoderImpl::forward(const ModelBatch& batch,
                                       std::optional<torch::Generator> noise_rng,
                                       int64_t first_output) {
  torch::Tensor z = Encode(batch.reference);
  const int64_t n = batch.audio.size(1);
  if (decoder_->autoregressive()) {
    torch::Tensor classes = MuLawEncode(batch.audio, config_.decoder.quantization_levels);
    torch::Tensor cond = batch.conditioning.defined()
                             ? batch.conditioning.narrow(2, 1, n - 1)
                             : torch::Tensor();
    return decoder_->forward(classes.narrow(1, 0, n - 1), cond, z, first_output);
  }
  torch::Tensor noise = torch::randn({batch.audio.size(0), n}, noise_rng,
                                     batch.audio.options().dtype(torch::kFloat));
  return decoder_->forward(noise, batch.conditioning, z, first_output);
}

absl::Status AutoencoderImpl::CheckBatch(const ModelBatch& batch) const {
  const int64_t context = context_samples();
  if (!batch.audio.defined() || batch.audio.dim() != 2) {
    return absl::InvalidArgumentError("batch.audio: expected [B, N]");
  }
  const int64_t b = batch.audio.size(0), n = batch.audio.size(1);
  if (b < 1 || n <= context + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch.audio: ", n, " samples; the model needs more than its context of ",
                     context, " (+1) samples"));
  }
  const int c = config_.decoder.cond_channels;
  if (c > 0) {
    if (!batch.conditioning.defined() || batch.conditioning.dim() != 3 ||
        batch.conditioning.size(0) != b || batch.conditioning.size(1) != c ||
        batch.conditioning.size(2) != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("batch.conditioning: expected [", b, ", ", c, ", ", n, "]"));
    }
  }
  if (!batch.reference.defined() || batch.reference.dim() != 2 || batch.reference.size(0) != b) {
    return absl::InvalidArgumentError(absl::StrCat("batch.reference: expected [", b, ", Lr]"));
  }
  if (batch.reference.size(1) < MinReferenceSamples(config_.encoder)) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch.reference: ", batch.reference.size(1),
                     " samples; the timbre encoder needs at least ",
                     MinReferenceSamples(config_.encoder)));
  }
  if (decoder_->config().kind == DecoderKind::kParallel && config_.loss.stft_weight > 0) {
    for (const StftResolution& r : config_.loss.stft_resolutions) {
      if (n - context <= r.fft_size / 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "batch.audio: ", n - context, " loss samples; loss.stft_resolutions needs more than "
            "fft_size / 2 = ", r.fft_size / 2));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LossOutput> AutoencoderImpl::Loss(const ModelBatch& batch,
                                                 std::optional<torch::Generator> noise_rng) {
  RETURN_IF_ERROR(CheckBatch(batch));
  try {
    const LossConfig& lc = config_.loss;
    const int64_t context = context_samples();
    const int64_t n = batch.audio.size(1);
    const bool ar = decoder_->autoregressive();
    // The loss positions: samples context .. n-1 (the autoregressive output j
    // predicts sample j + 1). Only they are computed when the context is at
    // least an eighth of the window: below that, the per-layer narrowing
    // (copies of the cropped views, zero-filled gradients) costs more than
    // the skipped steps save (tiny autoregressive: 31 of 1055 samples).
    const int64_t first = ar ? context - 1 : context;
    const bool crop = context * kMinCropFraction >= n;
    torch::Tensor out = forward(batch, noise_rng, crop ? first : 0);
    if (!crop) out = out.narrow(-1, first, n - context);
    LossOutput result;
    if (ar) {
      torch::Tensor targets = MuLawEncode(batch.audio, config_.decoder.quantization_levels);
      torch::Tensor ce = MuLawCrossEntropy(out, targets.narrow(1, context, n - context));
      result.total = lc.cross_entropy_weight * ce;
      result.terms.emplace_back("cross_entropy", ce.detach());
      return result;
    }
    const torch::Tensor& pred = out;
    torch::Tensor target = batch.audio.narrow(1, context, n - context).to(torch::kFloat);
    torch::Tensor total = torch::zeros({}, pred.options());
    if (lc.stft_weight > 0 && !lc.stft_resolutions.empty()) {
      StftLossTerms stft = MultiResolutionStftLoss(pred, target, lc.stft_resolutions);
      total = total + lc.stft_weight * (lc.spectral_convergence_weight * stft.spectral_convergence +
                                        lc.log_magnitude_weight * stft.log_magnitude);
      result.terms.emplace_back("spectral_convergence", stft.spectral_convergence.detach());
      result.terms.emplace_back("log_magnitude", stft.log_magnitude.detach());
    }
    if (lc.waveform_l1_weight > 0) {
      torch::Tensor l1 = WaveformL1(pred, target);
      total = total + lc.waveform_l1_weight * l1;
      result.terms.emplace_back("waveform_l1", l1.detach());
    }
    result.total = total;
    return result;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("model loss: ", e.what_without_backtrace()));
  }
}

int64_t AutoencoderImpl::ParameterCount() const {
  int64_t count = 0;
  for (const torch::Tensor& p : parameters()) count += p.numel();
  return count;
}

absl::StatusOr<Autoencoder> MakeAutoencoder(const ModelConfig& config) {
  RETURN_IF_ERROR(Validate(config));
  try {
    return Autoencoder(config);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building the model: ", e.what_without_backtrace()));
  }
}

}  // namespace pianola
