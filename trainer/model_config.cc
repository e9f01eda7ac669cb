#include "trainer/model_config.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckPositive(absl::string_view field, int64_t value) {
  if (value <= 0) return Bad(field, absl::StrCat("must be positive, got ", value));
  return absl::OkStatus();
}

absl::Status CheckRange(absl::string_view field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckWeight(absl::string_view field, double value) {
  if (!std::isfinite(value) || value < 0) {
    return Bad(field, absl::StrCat("must be a finite non-negative weight, got ", value));
  }
  return absl::OkStatus();
}

// Channel counts above this are surely typos (and would allocate gigabytes).
constexpr int kMaxChannels = 8192;

absl::Status ValidateEncoder(const EncoderConfig& e, int sample_rate) {
  if (e.kind != EncoderKind::kMel && e.kind != EncoderKind::kRawDilated) {
    return Bad("encoder.kind", "unknown encoder kind");
  }
  RETURN_IF_ERROR(CheckRange("encoder.channels", e.channels, 1, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("encoder.z_dim", e.z_dim, 1, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("encoder.kernel_size", e.kernel_size, 1, 63));
  if (e.kernel_size % 2 == 0) {
    return Bad("encoder.kernel_size",
               absl::StrCat("must be odd (the encoder is non-causal, 'same' padding), got ",
                            e.kernel_size));
  }
  if (e.kind == EncoderKind::kMel) {
    RETURN_IF_ERROR(CheckRange("encoder.layers", e.layers, 1, 64));
    const MelConfig& m = e.mel;
    RETURN_IF_ERROR(CheckRange("encoder.n_fft", m.n_fft, 16, 1 << 16));
    RETURN_IF_ERROR(CheckRange("encoder.hop", m.hop, 1, m.n_fft));
    RETURN_IF_ERROR(CheckRange("encoder.n_mels", m.n_mels, 1, m.n_fft / 2 + 1));
    const double nyquist = sample_rate / 2.0;
    const double f_max = m.f_max == 0 ? nyquist : m.f_max;
    if (!std::isfinite(m.f_min) || m.f_min < 0) {
      return Bad("encoder.f_min", absl::StrCat("must be >= 0 Hz, got ", m.f_min));
    }
    if (!std::isfinite(f_max) || f_max <= m.f_min || f_max > nyquist) {
      return Bad("encoder.f_max",
                 absl::StrCat("must be in (f_min, sample_rate / 2] = (", m.f_min, ", ", nyquist,
                              "] Hz (0 means sample_rate / 2), got ", m.f_max));
    }
    if (!std::isfinite(m.log_floor) || m.log_floor <= 0) {
      return Bad("encoder.log_floor", absl::StrCat("must be > 0, got ", m.log_floor));
    }
  } else {
    RETURN_IF_ERROR(CheckRange("encoder.layers", e.layers, 1, 16));
    RETURN_IF_ERROR(CheckRange("encoder.raw_cycles", e.raw_cycles, 1, 16));
    RETURN_IF_ERROR(CheckRange("encoder.raw_pool", e.raw_pool, 1, 1 << 16));
  }
  return absl::OkStatus();
}

absl::Status ValidateDecoder(const DecoderConfig& d) {
  if (d.kind != DecoderKind::kAutoregressive && d.kind != DecoderKind::kParallel) {
    return Bad("decoder.kind", "unknown decoder kind");
  }
  // 2^15 is the largest dilation allowed; 16 layers per cycle.
  RETURN_IF_ERROR(CheckRange("decoder.layers_per_cycle", d.layers_per_cycle, 1, 16));
  RETURN_IF_ERROR(CheckRange("decoder.cycles", d.cycles, 1, 32));
  RETURN_IF_ERROR(CheckRange("decoder.residual_channels", d.residual_channels, 1, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("decoder.gate_channels", d.gate_channels, 1, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("decoder.skip_channels", d.skip_channels, 1, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("decoder.cond_channels", d.cond_channels, 0, kMaxChannels));
  RETURN_IF_ERROR(
      CheckRange("decoder.cond_hidden_channels", d.cond_hidden_channels, 0, kMaxChannels));
  RETURN_IF_ERROR(CheckRange("decoder.fold", d.fold, 1, 256));
  if (d.kind == DecoderKind::kAutoregressive) {
    if (d.fold != 1) {
      return Bad("decoder.fold",
                 absl::StrCat("must be 1 for the autoregressive decoder (it generates sample by "
                              "sample), got ", d.fold));
    }
    RETURN_IF_ERROR(CheckRange("decoder.kernel_size", d.kernel_size, 2, 16));
    RETURN_IF_ERROR(CheckRange("decoder.quantization_levels", d.quantization_levels, 2, 65536));
    if (d.ar_input != ArInput::kEmbedding && d.ar_input != ArInput::kScalar) {
      return Bad("decoder.ar_input", "unknown input kind");
    }
  } else {
    RETURN_IF_ERROR(CheckRange("decoder.kernel_size", d.kernel_size, 3, 15));
    if (d.kernel_size % 2 == 0) {
      return Bad("decoder.kernel_size",
                 absl::StrCat("must be odd for the parallel (non-causal) decoder, got ",
                              d.kernel_size));
    }
    if (d.fold > 1) {
      RETURN_IF_ERROR(CheckRange("decoder.cond_fold_filters", d.cond_fold_filters, 1, d.fold));
      if (d.cond_channels > 0 && d.cond_hidden_channels == 0) {
        return Bad("decoder.cond_hidden_channels",
                   absl::StrCat("must be positive when decoder.fold > 1 (the folded MIDI "
                                "features go through it), got 0"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLoss(const LossConfig& l, DecoderKind kind) {
  RETURN_IF_ERROR(CheckWeight("loss.cross_entropy_weight", l.cross_entropy_weight));
  RETURN_IF_ERROR(CheckWeight("loss.stft_weight", l.stft_weight));
  RETURN_IF_ERROR(CheckWeight("loss.spectral_convergence_weight", l.spectral_convergence_weight));
  RETURN_IF_ERROR(CheckWeight("loss.log_magnitude_weight", l.log_magnitude_weight));
  RETURN_IF_ERROR(CheckWeight("loss.waveform_l1_weight", l.waveform_l1_weight));
  for (size_t i = 0; i < l.stft_resolutions.size(); ++i) {
    const StftResolution& r = l.stft_resolutions[i];
    const std::string field = absl::StrCat("loss.stft_resolutions[", i, "]");
    RETURN_IF_ERROR(CheckRange(absl::StrCat(field, ".fft_size"), r.fft_size, 4, 1 << 16));
    RETURN_IF_ERROR(CheckRange(absl::StrCat(field, ".win_length"), r.win_length, 2, r.fft_size));
    RETURN_IF_ERROR(CheckPositive(absl::StrCat(field, ".hop"), r.hop));
  }
  if (kind == DecoderKind::kAutoregressive) {
    if (l.cross_entropy_weight <= 0) {
      return Bad("loss.cross_entropy_weight",
                 "must be positive for the autoregressive decoder (its only loss)");
    }
  } else {
    if (l.stft_weight > 0 && l.stft_resolutions.empty()) {
      return Bad("loss.stft_resolutions", "empty while loss.stft_weight > 0");
    }
    const bool stft = l.stft_weight > 0 &&
                      (l.spectral_convergence_weight > 0 || l.log_magnitude_weight > 0);
    if (!stft && l.waveform_l1_weight <= 0) {
      return Bad("loss", "the parallel decoder needs a positive STFT or waveform L1 loss");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view DecoderKindName(DecoderKind kind) {
  return kind == DecoderKind::kParallel ? "parallel" : "autoregressive";
}

absl::StatusOr<DecoderKind> ParseDecoderKind(absl::string_view name) {
  if (name == "autoregressive" || name == "ar") return DecoderKind::kAutoregressive;
  if (name == "parallel") return DecoderKind::kParallel;
  return absl::InvalidArgumentError(
      absl::StrCat("decoder kind: expected 'autoregressive' or 'parallel', got '", name, "'"));
}

absl::string_view EncoderKindName(EncoderKind kind) {
  return kind == EncoderKind::kRawDilated ? "raw_dilated" : "mel";
}

absl::StatusOr<EncoderKind> ParseEncoderKind(absl::string_view name) {
  if (name == "mel") return EncoderKind::kMel;
  if (name == "raw_dilated") return EncoderKind::kRawDilated;
  return absl::InvalidArgumentError(
      absl::StrCat("encoder kind: expected 'mel' or 'raw_dilated', got '", name, "'"));
}

std::vector<StftResolution> DefaultStftResolutions() {
  return {{1024, 80, 400}, {2048, 160, 800}, {512, 32, 160}};
}

std::vector<std::string> ModelPresetNames() { return {"tiny", "small", "base"}; }

absl::StatusOr<ModelConfig> ModelPreset(absl::string_view name, DecoderKind kind) {
  ModelConfig c;
  c.sample_rate = 16000;
  c.decoder.kind = kind;
  const bool parallel = kind == DecoderKind::kParallel;
  if (name == "tiny") {
    // Seconds on CPU: receptive field 31 samples (AR) / 488 samples (parallel:
    // fold 8, 61 folded steps).
    c.encoder.mel = {.n_fft = 256, .hop = 128, .n_mels = 32};
    c.encoder.channels = 32;
    c.encoder.layers = 2;
    c.encoder.z_dim = 16;
    c.encoder.raw_pool = 64;
    c.decoder.layers_per_cycle = 4;
    c.decoder.cycles = 2;
    c.decoder.kernel_size = parallel ? 3 : 2;
    c.decoder.residual_channels = 16;
    c.decoder.gate_channels = 16;
    c.decoder.skip_channels = 16;
    c.decoder.cond_hidden_channels = 16;
    if (parallel) c.decoder.fold = 8;
    // Short windows in tests: resolutions that fit a few hundred samples.
    c.loss.stft_resolutions = {{128, 16, 64}, {256, 32, 128}, {64, 8, 32}};
  } else if (name == "small") {
    // CPU demos. AR: 20 layers, receptive field 2047 samples (128 ms).
    // Parallel: fold 16, so the stack runs at 1 kHz and one pass renders far
    // faster than real time on 2 CPU cores; 12 layers (2 cycles of folded
    // dilations 1..32), receptive field 4048 samples (253 ms).
    c.encoder.mel = {.n_fft = 1024, .hop = 256, .n_mels = 80};
    c.encoder.channels = 128;
    c.encoder.layers = 4;
    c.encoder.z_dim = 64;
    c.decoder.layers_per_cycle = 10;
    c.decoder.cycles = 2;
    if (parallel) {
      c.decoder.fold = 16;
      c.decoder.cond_fold_filters = 2;
      c.decoder.layers_per_cycle = 6;
      c.decoder.kernel_size = 3;
      c.decoder.residual_channels = 48;
      c.decoder.gate_channels = 48;
      c.decoder.skip_channels = 48;
      c.decoder.cond_hidden_channels = 48;
    } else {
      c.decoder.kernel_size = 2;
      c.decoder.residual_channels = 64;
      c.decoder.gate_channels = 64;
      c.decoder.skip_channels = 64;
      c.decoder.cond_hidden_channels = 64;
    }
  } else if (name == "base") {
    // GPU scale. AR: NSynth-like 30 layers (3 cycles of 10), 256 channels,
    // receptive field 3070 samples (192 ms). Parallel: fold 16 with Parallel
    // WaveGAN's kernel 3 and 3 cycles, twice its channels (128 residual / 256
    // gate / 128 skip, each folded step carries 16 samples); 18 layers of
    // folded dilations 1..32, receptive field 6064 samples (379 ms).
    c.encoder.mel = {.n_fft = 1024, .hop = 256, .n_mels = 80};
    c.encoder.channels = 256;
    c.encoder.layers = 6;
    c.encoder.z_dim = 128;
    c.decoder.layers_per_cycle = 10;
    c.decoder.cycles = 3;
    if (parallel) {
      c.decoder.fold = 16;
      c.decoder.cond_fold_filters = 4;
      c.decoder.layers_per_cycle = 6;
      c.decoder.kernel_size = 3;
      c.decoder.residual_channels = 128;
      c.decoder.gate_channels = 256;
      c.decoder.skip_channels = 128;
      c.decoder.cond_hidden_channels = 128;
    } else {
      c.decoder.kernel_size = 2;
      c.decoder.residual_channels = 256;
      c.decoder.gate_channels = 256;
      c.decoder.skip_channels = 256;
      c.decoder.cond_hidden_channels = 128;
    }
  } else {
    return absl::NotFoundError(absl::StrCat("model preset '", name, "': unknown; known: ",
                                            absl::StrJoin(ModelPresetNames(), ", ")));
  }
  RETURN_IF_ERROR(Validate(c));
  return c;
}

absl::Status Validate(const ModelConfig& config) {
  RETURN_IF_ERROR(CheckRange("sample_rate", config.sample_rate, 1000, 384000));
  RETURN_IF_ERROR(ValidateEncoder(config.encoder, config.sample_rate));
  RETURN_IF_ERROR(ValidateDecoder(config.decoder));
  RETURN_IF_ERROR(ValidateLoss(config.loss, config.decoder.kind));
  return absl::OkStatus();
}

namespace {
int64_t SumDilations(const DecoderConfig& config) {
  int64_t sum = 0;
  for (int i = 0; i < config.num_layers(); ++i) sum += int64_t{1} << (i % config.layers_per_cycle);
  return sum;
}
}  // namespace

int64_t DecoderReceptiveField(const DecoderConfig& config) {
  return int64_t{config.effective_fold()} * (1 + (config.kernel_size - 1) * SumDilations(config));
}

int64_t DecoderContextSamples(const DecoderConfig& config) {
  if (config.kind == DecoderKind::kAutoregressive) return DecoderReceptiveField(config);
  return int64_t{config.effective_fold()} * ((config.kernel_size - 1) / 2) * SumDilations(config);
}

int64_t ContextSamples(const ModelConfig& config) { return DecoderContextSamples(config.decoder); }

int64_t MinReferenceSamples(const EncoderConfig& config) {
  return config.kind == EncoderKind::kMel ? config.mel.n_fft / 2 + 1 : 1;
}

std::string DescribeModelConfig(const ModelConfig& c) {
  const DecoderConfig& d = c.decoder;
  const int64_t rf = DecoderReceptiveField(d);
  std::string out = absl::StrFormat(
      "decoder: %s WaveNet, %d layers (%d cycles of dilations 1..%d), kernel %d, channels "
      "residual %d / gate %d / skip %d, MIDI %d -> %d per layer\n",
      DecoderKindName(d.kind), d.num_layers(), d.cycles, 1 << (d.layers_per_cycle - 1),
      d.kernel_size, d.residual_channels, d.gate_channels, d.skip_channels, d.cond_channels,
      d.cond_hidden_channels);
  if (d.effective_fold() > 1) {
    absl::StrAppendFormat(&out,
                          "fold %d: the stack runs at %.1f Hz; MIDI folded by %d length-%d "
                          "filters per channel\n",
                          d.fold, static_cast<double>(c.sample_rate) / d.fold,
                          d.cond_fold_filters, d.fold);
  }
  absl::StrAppendFormat(&out, "receptive field: %d samples (%.1f ms at %d Hz); context %d samples\n",
                        rf, 1000.0 * rf / c.sample_rate, c.sample_rate, ContextSamples(c));
  const EncoderConfig& e = c.encoder;
  if (e.kind == EncoderKind::kMel) {
    absl::StrAppendFormat(&out,
                          "encoder: log-mel (n_fft %d, hop %d, %d bands) -> %d convs x %d "
                          "channels -> mean/std -> z[%d]\n",
                          e.mel.n_fft, e.mel.hop, e.mel.n_mels, e.layers, e.channels, e.z_dim);
  } else {
    absl::StrAppendFormat(&out,
                          "encoder: raw dilated, %d cycles of %d layers x %d channels, pool %d "
                          "-> mean/std -> z[%d]\n",
                          e.raw_cycles, e.layers, e.channels, e.raw_pool, e.z_dim);
  }
  return out;
}

}  // namespace pianola
