#include "trainer/experiment_config.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/experiment.pb.h"

namespace pianola {
namespace {

constexpr int64_t kMaxConfigBytes = int64_t{1} << 20;
constexpr uint32_t kMaxWindowSamples = 1u << 20;

// Collects the text-format parser's complaints as "LINE:COL: message".
// The offending line is quoted, so the message names the field even when the
// parser's own words do not ("Expected integer").
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ErrorCollector(absl::string_view text) : text_(text) {}
  void AddError(int line, int column, const std::string& message) override {
    if (!first_.empty()) return;
    first_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
    std::vector<absl::string_view> lines = absl::StrSplit(text_, '\n');
    if (line >= 0 && line < static_cast<int>(lines.size())) {
      absl::string_view quoted = absl::StripAsciiWhitespace(lines[line]);
      if (quoted.size() > 120) quoted = quoted.substr(0, 120);
      if (!quoted.empty()) absl::StrAppend(&first_, " (in: ", quoted, ")");
    }
  }
  void AddWarning(int line, int column, const std::string& message) override {}
  const std::string& first() const { return first_; }

 private:
  absl::string_view text_;
  std::string first_;
};

// Errors of one config source: "SOURCE: FIELD: why".
class Checker {
 public:
  explicit Checker(const std::string& source) : source_(source) {}

  absl::Status Bad(absl::string_view field, absl::string_view why) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", field, ": ", why));
  }
  // Re-labels an error from a helper that names fields itself ("decoder.x: ...").
  absl::Status Wrap(const absl::Status& status, absl::string_view prefix = "") const {
    if (status.ok()) return status;
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", prefix, status.message()));
  }

  template <typename T>
  absl::Status Range(absl::string_view field, T value, T lo, T hi) const {
    if (value < lo || value > hi) {
      return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", value));
    }
    return absl::OkStatus();
  }
  // Finite and within [lo, hi] (or (lo, hi] when `open_low`; [lo, hi) when `open_high`).
  absl::Status Real(absl::string_view field, double value, double lo, double hi,
                    bool open_low = false, bool open_high = false) const {
    const bool ok = std::isfinite(value) && (open_low ? value > lo : value >= lo) &&
                    (open_high ? value < hi : value <= hi);
    if (!ok) {
      return Bad(field, absl::StrCat("must be a finite value in ", open_low ? "(" : "[", lo,
                                     ", ", hi, open_high ? ")" : "]", ", got ", value));
    }
    return absl::OkStatus();
  }

 private:
  const std::string source_;
};

std::string Stem(const std::string& source) {
  return std::filesystem::path(source).stem().string();
}

absl::Status ParseConfig(absl::string_view contents, const std::string& source,
                         ExperimentConfig* config) {
  const std::string text(contents.data(), contents.size());
  const bool json = absl::EndsWith(source, ".json") ||
                    absl::StartsWith(absl::StripLeadingAsciiWhitespace(contents), "{");
  if (json) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(text, config, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": JSON: ", std::string(status.message())));
    }
    return absl::OkStatus();
  }
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors(text);
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ":", errors.first().empty() ? std::string("?: parse error") : errors.first()));
  }
  return absl::OkStatus();
}

absl::Status ApplyOverrides(const ConfigOverrides& o, ExperimentConfig* config) {
  if (o.data_servers) {
    config->mutable_data()->clear_servers();
    for (const std::string& s : *o.data_servers) config->mutable_data()->add_servers(s);
  }
  if (o.dataset) config->mutable_data()->set_dataset(*o.dataset);
  if (o.steps) config->set_steps(*o.steps);
  if (o.device) config->set_device(*o.device);
  if (o.seed) config->set_seed(*o.seed);
  return absl::OkStatus();
}

absl::Status CheckServer(const Checker& c, absl::string_view field, absl::string_view server) {
  const size_t colon = server.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return c.Bad(field, absl::StrCat("expected HOST:PORT, got '", server, "'"));
  }
  int port = 0;
  if (!absl::SimpleAtoi(server.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return c.Bad(field, absl::StrCat("bad port in '", server, "' (expected 1..65535)"));
  }
  return absl::OkStatus();
}

absl::Status ResolveModel(const Checker& c, const ModelSpec& spec, TrainOptions* out) {
  if (spec.preset().empty()) {
    return c.Bad("model.preset", absl::StrCat("required (one of ",
                                              absl::StrJoin(ModelPresetNames(), ", "), ")"));
  }
  DecoderKind kind = DecoderKind::kAutoregressive;
  if (!spec.decoder_kind().empty()) {
    absl::StatusOr<DecoderKind> k = ParseDecoderKind(spec.decoder_kind());
    if (!k.ok()) return c.Bad("model.decoder_kind", k.status().message());
    kind = *k;
  }
  absl::StatusOr<ModelConfig> preset = ModelPreset(spec.preset(), kind);
  if (!preset.ok()) return c.Bad("model.preset", preset.status().message());
  ModelConfig m = *std::move(preset);
  out->preset = spec.preset();
  if (spec.has_sample_rate()) m.sample_rate = spec.sample_rate();

  const DecoderOverrides& d = spec.decoder();
  if (d.has_layers_per_cycle()) m.decoder.layers_per_cycle = d.layers_per_cycle();
  if (d.has_cycles()) m.decoder.cycles = d.cycles();
  if (d.has_kernel_size()) m.decoder.kernel_size = d.kernel_size();
  if (d.has_residual_channels()) m.decoder.residual_channels = d.residual_channels();
  if (d.has_gate_channels()) m.decoder.gate_channels = d.gate_channels();
  if (d.has_skip_channels()) m.decoder.skip_channels = d.skip_channels();
  if (d.has_cond_hidden_channels()) m.decoder.cond_hidden_channels = d.cond_hidden_channels();
  if (d.has_quantization_levels()) m.decoder.quantization_levels = d.quantization_levels();
  if (d.has_fold()) m.decoder.fold = d.fold();
  if (d.has_cond_fold_filters()) m.decoder.cond_fold_filters = d.cond_fold_filters();
  if (d.has_ar_input()) {
    if (d.ar_input() == "embedding") {
      m.decoder.ar_input = ArInput::kEmbedding;
    } else if (d.ar_input() == "scalar") {
      m.decoder.ar_input = ArInput::kScalar;
    } else {
      return c.Bad("model.decoder.ar_input",
                   absl::StrCat("expected 'embedding' or 'scalar', got '", d.ar_input(), "'"));
    }
  }

  const EncoderOverrides& e = spec.encoder();
  if (e.has_kind()) {
    absl::StatusOr<EncoderKind> k = ParseEncoderKind(e.kind());
    if (!k.ok()) return c.Bad("model.encoder.kind", k.status().message());
    m.encoder.kind = *k;
  }
  if (e.has_channels()) m.encoder.channels = e.channels();
  if (e.has_layers()) m.encoder.layers = e.layers();
  if (e.has_kernel_size()) m.encoder.kernel_size = e.kernel_size();
  if (e.has_z_dim()) m.encoder.z_dim = e.z_dim();
  if (e.has_n_mels()) m.encoder.mel.n_mels = e.n_mels();
  if (e.has_n_fft()) m.encoder.mel.n_fft = e.n_fft();
  if (e.has_hop()) m.encoder.mel.hop = e.hop();
  if (e.has_f_min()) m.encoder.mel.f_min = e.f_min();
  if (e.has_f_max()) m.encoder.mel.f_max = e.f_max();
  if (e.has_raw_cycles()) m.encoder.raw_cycles = e.raw_cycles();
  if (e.has_raw_pool()) m.encoder.raw_pool = e.raw_pool();

  const LossOverrides& l = spec.loss();
  // A weight the decoder kind has no use for would be silently ignored.
  if (kind == DecoderKind::kAutoregressive) {
    for (const auto& [has, field] :
         {std::pair{l.has_stft_weight(), "stft_weight"},
          {l.has_spectral_convergence_weight(), "spectral_convergence_weight"},
          {l.has_log_magnitude_weight(), "log_magnitude_weight"},
          {l.has_waveform_l1_weight(), "waveform_l1_weight"},
          {l.stft_resolutions_size() > 0, "stft_resolutions"}}) {
      if (has) {
        return c.Bad(absl::StrCat("model.loss.", field),
                     "the autoregressive decoder's only loss is the cross-entropy "
                     "(cross_entropy_weight); this is for decoder_kind: \"parallel\"");
      }
    }
  } else if (l.has_cross_entropy_weight()) {
    return c.Bad("model.loss.cross_entropy_weight",
                 "the parallel decoder has no cross-entropy loss (its losses are the STFT loss "
                 "and the optional waveform L1)");
  }
  if (l.has_cross_entropy_weight()) m.loss.cross_entropy_weight = l.cross_entropy_weight();
  if (l.has_stft_weight()) m.loss.stft_weight = l.stft_weight();
  if (l.has_spectral_convergence_weight()) {
    m.loss.spectral_convergence_weight = l.spectral_convergence_weight();
  }
  if (l.has_log_magnitude_weight()) m.loss.log_magnitude_weight = l.log_magnitude_weight();
  if (l.has_waveform_l1_weight()) m.loss.waveform_l1_weight = l.waveform_l1_weight();
  if (l.stft_resolutions_size() > 0) {
    m.loss.stft_resolutions.clear();
    for (const StftResolutionSpec& r : l.stft_resolutions()) {
      m.loss.stft_resolutions.push_back(
          {.fft_size = r.fft_size(), .hop = r.hop(), .win_length = r.win_length()});
    }
  }

  RETURN_IF_ERROR(c.Wrap(Validate(m), "model."));
  out->model = std::move(m);
  return absl::OkStatus();
}

// The context a window needs follows from the decoder (its receptive field,
// or half of it for the parallel decoder); a decoder whose context alone is
// over the per-window limit could never be fed (and would exhaust memory).
absl::Status CheckModelContext(const Checker& c, const ModelConfig& m) {
  const int64_t context = ContextSamples(m);
  if (context <= kMaxWindowSamples) return absl::OkStatus();
  const DecoderConfig& d = m.decoder;
  return c.Bad(
      "model.decoder",
      absl::StrCat("cycles ", d.cycles, " x layers_per_cycle ", d.layers_per_cycle,
                   " at kernel_size ", d.kernel_size,
                   d.effective_fold() > 1 ? absl::StrCat(" and fold ", d.fold) : "",
                   " give a receptive field of ", DecoderReceptiveField(d),
                   " samples and a context of ", context, " samples per window, over the limit"
                   " of ", kMaxWindowSamples, " (context + window); use fewer cycles or layers"));
}

// The model's own checks on a batch (AutoencoderImpl::CheckBatch), made here
// with the same rules so that a config that cannot train fails before any
// work, not at the first step.
absl::Status CheckBatchShapes(const Checker& c, const ModelConfig& m, const TrainDataOptions& d) {
  const int64_t context = ContextSamples(m);
  // The samples after the model's context: the positions the loss covers.
  const int64_t loss_samples = int64_t{d.context_samples} + d.window_samples - context;
  if (loss_samples < 2) {
    return c.Bad("data.window_samples",
                 absl::StrCat("the model needs more than its context of ", context,
                              " (+1) samples per window, got context ", d.context_samples,
                              " + window ", d.window_samples));
  }
  if (d.reference_samples < MinReferenceSamples(m.encoder)) {
    return c.Bad("data.reference_samples",
                 absl::StrCat("the timbre encoder needs at least ", MinReferenceSamples(m.encoder),
                              " samples (more than model.encoder.n_fft / 2), got ",
                              d.reference_samples));
  }
  if (m.decoder.kind == DecoderKind::kParallel && m.loss.stft_weight > 0) {
    for (size_t i = 0; i < m.loss.stft_resolutions.size(); ++i) {
      const int fft_size = m.loss.stft_resolutions[i].fft_size;
      if (loss_samples <= fft_size / 2) {
        return c.Bad("data.window_samples",
                     absl::StrCat(loss_samples, " loss samples per window (context ",
                                  d.context_samples, " + window ", d.window_samples,
                                  " - the model's context ", context,
                                  "); model.loss.stft_resolutions[", i,
                                  "] needs more than fft_size / 2 = ", fft_size / 2));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ResolveData(const Checker& c, const DataSpec& spec, TrainOptions* out) {
  TrainDataOptions& d = out->data;
  if (spec.servers().empty()) {
    return c.Bad("data.servers", "at least one HOST:PORT is required (or --data-servers)");
  }
  for (int i = 0; i < spec.servers_size(); ++i) {
    RETURN_IF_ERROR(CheckServer(c, absl::StrCat("data.servers[", i, "]"), spec.servers(i)));
    d.servers.push_back(spec.servers(i));
  }
  d.dataset = spec.dataset();
  auto split = [&](absl::string_view field, bool has, const std::string& name,
                   DataSplit fallback, DataSplit* result) -> absl::Status {
    if (!has) {
      *result = fallback;
      return absl::OkStatus();
    }
    absl::StatusOr<DataSplit> s = ParseDataSplit(name);
    if (!s.ok()) {
      return c.Bad(field, absl::StrCat("expected 'train', 'validation' or 'test', got '", name,
                                       "'"));
    }
    *result = *s;
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(split("data.train_split", spec.has_train_split(), spec.train_split(),
                        DataSplit::kTrain, &d.train_split));
  RETURN_IF_ERROR(split("data.validation_split", spec.has_validation_split(),
                        spec.validation_split(), DataSplit::kValidation, &d.validation_split));
  if (spec.has_window_samples()) d.window_samples = spec.window_samples();
  RETURN_IF_ERROR(c.Range<uint32_t>("data.window_samples", d.window_samples, 1,
                                    kMaxWindowSamples));
  if (spec.has_reference_samples()) d.reference_samples = spec.reference_samples();
  RETURN_IF_ERROR(c.Range<uint32_t>("data.reference_samples", d.reference_samples, 1,
                                    kMaxWindowSamples));
  if (spec.has_batch_size()) d.batch_size = spec.batch_size();
  RETURN_IF_ERROR(c.Range<uint32_t>("data.batch_size", d.batch_size, 1, 1024));
  if (spec.has_prefetch_batches()) {
    RETURN_IF_ERROR(c.Range<uint32_t>("data.prefetch_batches", spec.prefetch_batches(), 1, 64));
    d.prefetch_batches = static_cast<int>(spec.prefetch_batches());
  }
  const int64_t needed = ContextSamples(out->model);
  RETURN_IF_ERROR(CheckModelContext(c, out->model));
  d.context_samples = static_cast<uint32_t>(needed);
  if (spec.has_context_samples()) {
    if (spec.context_samples() < needed || spec.context_samples() > kMaxWindowSamples) {
      return c.Bad("data.context_samples",
                   absl::StrCat("must be in [", needed, " (the model's context), ",
                                kMaxWindowSamples, "], got ", spec.context_samples()));
    }
    d.context_samples = spec.context_samples();
  }
  const int64_t span = int64_t{d.context_samples} + d.window_samples;
  if (span > kMaxWindowSamples) {
    return c.Bad(spec.has_context_samples() ? "data.context_samples + data.window_samples"
                                            : "data.window_samples",
                 absl::StrCat("context ", d.context_samples, " + window ", d.window_samples,
                              " = ", span, " samples per window, over the limit of ",
                              kMaxWindowSamples));
  }
  return CheckBatchShapes(c, out->model, d);
}

absl::Status ResolveOptimizer(const Checker& c, const ExperimentConfig& config,
                              TrainOptions* out) {
  const OptimizerSpec& spec = config.optimizer();
  OptimizerOptions& o = out->optimizer;
  if (spec.kind().empty() || spec.kind() == "adam") {
    o.kind = OptimizerKind::kAdam;
    o.weight_decay = 0.0;
  } else if (spec.kind() == "adamw") {
    o.kind = OptimizerKind::kAdamW;
    o.weight_decay = 0.01;
  } else {
    return c.Bad("optimizer.kind",
                 absl::StrCat("expected 'adam' or 'adamw', got '", spec.kind(), "'"));
  }
  if (spec.has_lr()) o.lr = spec.lr();
  RETURN_IF_ERROR(c.Real("optimizer.lr", o.lr, 0, 10, /*open_low=*/true));
  if (spec.has_beta1()) o.beta1 = spec.beta1();
  RETURN_IF_ERROR(c.Real("optimizer.beta1", o.beta1, 0, 1, false, /*open_high=*/true));
  if (spec.has_beta2()) o.beta2 = spec.beta2();
  RETURN_IF_ERROR(c.Real("optimizer.beta2", o.beta2, 0, 1, false, /*open_high=*/true));
  if (spec.has_eps()) o.eps = spec.eps();
  RETURN_IF_ERROR(c.Real("optimizer.eps", o.eps, 0, 1, /*open_low=*/true));
  if (spec.has_weight_decay()) o.weight_decay = spec.weight_decay();
  RETURN_IF_ERROR(c.Real("optimizer.weight_decay", o.weight_decay, 0, 1));

  const ScheduleSpec& s = config.schedule();
  LrScheduleOptions& l = out->schedule;
  l.lr = o.lr;
  l.total_steps = out->steps;
  if (s.has_warmup_steps()) l.warmup_steps = s.warmup_steps();
  RETURN_IF_ERROR(c.Range<int64_t>("schedule.warmup_steps", l.warmup_steps, 0,
                                   std::numeric_limits<int64_t>::max()));
  if (l.warmup_steps > out->steps) {
    return c.Bad("schedule.warmup_steps",
                 absl::StrCat(l.warmup_steps, " warmup steps do not fit in a run of ", out->steps,
                              " steps (`steps` in the config, or --steps): lower the warmup ",
                              "or train for longer"));
  }
  if (!s.decay().empty()) {
    absl::StatusOr<LrDecay> decay = ParseLrDecay(s.decay());
    if (!decay.ok()) return c.Wrap(decay.status());
    l.decay = *decay;
  }
  if (s.has_min_lr()) l.min_lr = s.min_lr();
  RETURN_IF_ERROR(c.Real("schedule.min_lr", l.min_lr, 0, o.lr));
  if (s.has_decay_rate()) l.decay_rate = s.decay_rate();
  RETURN_IF_ERROR(c.Real("schedule.decay_rate", l.decay_rate, 0, 1, /*open_low=*/true));
  if (s.has_decay_steps()) l.decay_steps = s.decay_steps();
  RETURN_IF_ERROR(c.Range<int64_t>("schedule.decay_steps", l.decay_steps, 1,
                                   std::numeric_limits<int64_t>::max()));
  return c.Wrap(ValidateLrSchedule(l));
}

absl::Status ResolveRun(const Checker& c, const ExperimentConfig& config, TrainOptions* out) {
  if (config.has_grad_clip_norm()) out->grad_clip_norm = config.grad_clip_norm();
  RETURN_IF_ERROR(c.Real("grad_clip_norm", out->grad_clip_norm, 0, 1e9));
  out->ema.enabled = config.ema().enabled();
  if (config.ema().has_decay()) out->ema.decay = config.ema().decay();
  RETURN_IF_ERROR(c.Real("ema.decay", out->ema.decay, 0, 1, false, /*open_high=*/true));
  out->seed = config.seed();

  const std::string& device = config.device();
  if (device.empty() || device == "auto") {
    out->device = TrainDevice::kAuto;
  } else if (device == "cpu") {
    out->device = TrainDevice::kCpu;
  } else if (device == "cuda") {
    out->device = TrainDevice::kCuda;
  } else if (absl::StartsWith(device, "cuda:")) {
    int index = -1;
    if (!absl::SimpleAtoi(device.substr(5), &index) || index < 0 || index > 255) {
      return c.Bad("device", absl::StrCat("bad CUDA device index in '", device, "'"));
    }
    out->device = TrainDevice::kCuda;
    out->device_index = index;
  } else {
    return c.Bad("device",
                 absl::StrCat("expected 'auto', 'cpu', 'cuda' or 'cuda:N', got '", device, "'"));
  }
  const std::string& precision = config.precision();
  if (precision.empty() || precision == "auto") {
    out->precision = TrainPrecision::kAuto;
  } else if (precision == "fp32") {
    out->precision = TrainPrecision::kFp32;
  } else if (precision == "bf16") {
    out->precision = TrainPrecision::kBf16;
    if (out->device == TrainDevice::kCpu) {
      return c.Bad("precision", "bf16 autocast needs a CUDA device (device is 'cpu')");
    }
  } else {
    return c.Bad("precision",
                 absl::StrCat("expected 'auto', 'fp32' or 'bf16', got '", precision, "'"));
  }
  out->cuda_graphs = config.cuda_graphs();
  if (out->cuda_graphs && out->device == TrainDevice::kCpu) {
    return c.Bad("cuda_graphs", "CUDA graphs need a CUDA device (device is 'cpu')");
  }

  if (config.checkpoint().has_every_steps()) {
    out->checkpoint.every_steps = config.checkpoint().every_steps();
  }
  RETURN_IF_ERROR(c.Range<int64_t>("checkpoint.every_steps", out->checkpoint.every_steps, 0,
                                   std::numeric_limits<int64_t>::max()));
  if (config.checkpoint().has_keep_last()) out->checkpoint.keep_last = config.checkpoint().keep_last();
  RETURN_IF_ERROR(c.Range("checkpoint.keep_last", out->checkpoint.keep_last, 0, 1000000));
  if (config.validation().has_every_steps()) {
    out->validation.every_steps = config.validation().every_steps();
  }
  RETURN_IF_ERROR(c.Range<int64_t>("validation.every_steps", out->validation.every_steps, 0,
                                   std::numeric_limits<int64_t>::max()));
  if (config.validation().has_batches()) out->validation.batches = config.validation().batches();
  RETURN_IF_ERROR(c.Range("validation.batches", out->validation.batches, 1, 100000));
  if (config.has_log_every_steps()) out->log_every_steps = config.log_every_steps();
  RETURN_IF_ERROR(c.Range<int64_t>("log_every_steps", out->log_every_steps, 1,
                                   std::numeric_limits<int64_t>::max()));
  if (config.has_max_consecutive_nonfinite()) {
    out->max_consecutive_nonfinite = config.max_consecutive_nonfinite();
  }
  RETURN_IF_ERROR(
      c.Range("max_consecutive_nonfinite", out->max_consecutive_nonfinite, 0, 1000000));
  if (config.has_cpu_threads()) {
    RETURN_IF_ERROR(c.Range("cpu_threads", config.cpu_threads(), 1, 1024));
    out->cpu_threads = config.cpu_threads();
  } else {
    out->cpu_threads = std::max(1u, std::thread::hardware_concurrency());
  }
  return absl::OkStatus();
}

// Resolves a parsed config; `source` names it in errors.
absl::StatusOr<TrainOptions> Resolve(ExperimentConfig config, const std::string& source) {
  Checker c(source);
  TrainOptions out;
  if (config.name().empty()) config.set_name(Stem(source));
  if (config.name().empty() || config.name().size() > 128 ||
      config.name().find_first_of("\n\r\t/") != std::string::npos) {
    return c.Bad("name", absl::StrCat("must be 1..128 characters without '/' or control "
                                      "characters, got '", config.name(), "'"));
  }
  out.name = config.name();
  if (!config.has_steps()) return c.Bad("steps", "required (or --steps)");
  RETURN_IF_ERROR(c.Range<int64_t>("steps", config.steps(), 1, int64_t{1} << 40));
  out.steps = config.steps();
  RETURN_IF_ERROR(ResolveModel(c, config.model(), &out));
  RETURN_IF_ERROR(ResolveData(c, config.data(), &out));
  RETURN_IF_ERROR(ResolveOptimizer(c, config, &out));
  RETURN_IF_ERROR(ResolveRun(c, config, &out));
  if (out.validation.every_steps > 0 && out.data.validation_split == out.data.train_split) {
    return c.Bad("data.validation_split",
                 absl::StrCat("the held-out split must differ from data.train_split (both '",
                              DataSplitName(out.data.train_split),
                              "'), or turn validation off with validation { every_steps: 0 }"));
  }
  if (!config.SerializeToString(&out.config_bytes)) {
    return absl::InternalError(absl::StrCat(source, ": cannot serialize the config"));
  }
  return out;
}

}  // namespace

absl::string_view OptimizerKindName(OptimizerKind kind) {
  return kind == OptimizerKind::kAdamW ? "adamw" : "adam";
}

absl::StatusOr<std::vector<std::string>> ParseServerList(absl::string_view list) {
  std::vector<std::string> out;
  Checker c("--data-servers");
  for (absl::string_view s : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    s = absl::StripAsciiWhitespace(s);
    RETURN_IF_ERROR(CheckServer(c, absl::StrCat("entry ", out.size()), s));
    out.emplace_back(s);
  }
  if (out.empty()) return c.Bad("list", "no HOST:PORT given");
  return out;
}

absl::StatusOr<TrainOptions> ParseExperimentConfig(absl::string_view contents,
                                                   const std::string& source,
                                                   const ConfigOverrides& overrides) {
  ExperimentConfig config;
  RETURN_IF_ERROR(ParseConfig(contents, source, &config));
  RETURN_IF_ERROR(ApplyOverrides(overrides, &config));
  return Resolve(std::move(config), source);
}

absl::StatusOr<TrainOptions> LoadExperimentConfig(const std::string& path,
                                                  const ConfigOverrides& overrides) {
  ASSIGN_OR_RETURN(std::string contents, ReadFile(path, kMaxConfigBytes));
  return ParseExperimentConfig(contents, path, overrides);
}

absl::StatusOr<TrainOptions> TrainOptionsFromConfigBytes(absl::string_view bytes,
                                                         const std::string& source) {
  ExperimentConfig config;
  if (!config.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(
        absl::StrCat(source, ": the stored experiment config does not parse"));
  }
  return Resolve(std::move(config), source);
}

absl::StatusOr<std::string> ConfigBytesToText(absl::string_view bytes) {
  ExperimentConfig config;
  if (!config.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("the stored experiment config does not parse");
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(config, &text);
  return text;
}

absl::StatusOr<std::vector<std::string>> CheckResumeCompatible(absl::string_view saved_bytes,
                                                               const TrainOptions& current) {
  ExperimentConfig saved, now;
  if (!saved.ParseFromArray(saved_bytes.data(), static_cast<int>(saved_bytes.size()))) {
    return absl::DataLossError("checkpoint: the stored experiment config does not parse");
  }
  if (!now.ParseFromString(current.config_bytes)) {
    return absl::InternalError("the current experiment config does not parse");
  }
  google::protobuf::util::MessageDifferencer differ;
  std::string report;
  differ.ReportDifferencesToString(&report);
  if (!differ.Compare(saved.model(), now.model())) {
    // Written differently, the same model resumes (a default spelled out, the
    // "ar" alias): what counts is the model both specs resolve to.
    TrainOptions resolved;
    const bool same = ResolveModel(Checker("checkpoint"), saved.model(), &resolved).ok() &&
                      resolved.model == current.model;
    if (!same) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot resume: the checkpoint's model differs from the config's: ", report));
    }
  }
  std::vector<std::string> changes;
  auto note = [&](bool differs, absl::string_view field) {
    if (differs) changes.push_back(std::string(field));
  };
  note(saved.seed() != now.seed(), "seed");
  note(saved.data().dataset() != now.data().dataset(), "data.dataset");
  note(saved.data().train_split() != now.data().train_split(), "data.train_split");
  note(saved.data().window_samples() != now.data().window_samples(), "data.window_samples");
  note(saved.data().reference_samples() != now.data().reference_samples(),
       "data.reference_samples");
  note(saved.data().batch_size() != now.data().batch_size(), "data.batch_size");
  note(saved.data().context_samples() != now.data().context_samples(), "data.context_samples");
  note(!google::protobuf::util::MessageDifferencer::Equals(saved.optimizer(), now.optimizer()),
       "optimizer");
  note(!google::protobuf::util::MessageDifferencer::Equals(saved.schedule(), now.schedule()),
       "schedule");
  note(saved.steps() != now.steps(), "steps");
  return changes;
}

std::string DescribeTrainOptions(const TrainOptions& o) {
  const TrainDataOptions& d = o.data;
  const double ms = 1000.0 / o.model.sample_rate;
  std::string out = absl::StrCat("experiment ", o.name, " (preset ", o.preset, ")\n");
  absl::StrAppend(&out, DescribeModelConfig(o.model));
  if (!absl::EndsWith(out, "\n")) out += "\n";
  absl::StrAppend(
      &out, "data request: dataset '", d.dataset.empty() ? "(the only one)" : d.dataset,
      "' split ", DataSplitName(d.train_split), " from ", absl::StrJoin(d.servers, ","),
      "\n  per window: context ", d.context_samples, " + target ", d.window_samples,
      " samples (", (d.context_samples + d.window_samples) * ms, " ms), reference ",
      d.reference_samples, " samples (", d.reference_samples * ms, " ms)\n  batch ",
      d.batch_size, " windows = ", uint64_t{d.batch_size} * d.window_samples,
      " target samples per step; validation on ", DataSplitName(d.validation_split));
  if (o.validation.every_steps > 0) {
    absl::StrAppend(&out, " every ", o.validation.every_steps, " steps (", o.validation.batches,
                    " batches)\n");
  } else {
    absl::StrAppend(&out, " disabled\n");
  }
  absl::StrAppend(&out, "optimizer: ", OptimizerKindName(o.optimizer.kind), " lr ",
                  o.optimizer.lr, " betas (", o.optimizer.beta1, ", ", o.optimizer.beta2,
                  ") eps ", o.optimizer.eps, " weight_decay ", o.optimizer.weight_decay,
                  "; schedule: warmup ", o.schedule.warmup_steps, " then ",
                  LrDecayName(o.schedule.decay), " (min_lr ", o.schedule.min_lr,
                  "); grad_clip_norm ", o.grad_clip_norm, "; ema ",
                  o.ema.enabled ? absl::StrCat(o.ema.decay) : std::string("off"), "\n");
  absl::StrAppend(&out, "run: ", o.steps, " steps, seed ", o.seed, ", checkpoint every ",
                  o.checkpoint.every_steps, " (keep ", o.checkpoint.keep_last, "), log every ",
                  o.log_every_steps, ", cpu threads ", o.cpu_threads,
                  o.cuda_graphs ? ", CUDA graphs" : "", "\n");
  return out;
}

}  // namespace pianola
