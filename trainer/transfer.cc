#include "trainer/transfer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "dataserver/audio_io.h"
#include "dataserver/midi.h"
#include "trainer/autoencoder.h"
#include "trainer/batch_tensors.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_file.h"
#include "trainer/device.h"
#include "trainer/experiment_config.h"
#include "trainer/generator.h"
#include "trainer/midi_conditioning.h"

namespace pianola {
namespace {

constexpr char kLog[] = "transfer";
constexpr int kMaxTakes = 64;
constexpr double kMaxSeconds = 3600;
// Crops quieter than this RMS (-60 dBFS) say nothing about a timbre.
constexpr double kSilentRms = 1e-3;

absl::Status TorchError(absl::string_view what, const c10::Error& e) {
  return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
}

// What tells two paths apart as files: the path with its directory resolved
// (the file itself resolved when it exists).
std::string SameFileKey(const std::string& path) {
  const std::filesystem::path p(path);
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) {
    const std::string dir = p.parent_path().empty() ? std::string(".") : p.parent_path().string();
    resolved = ::realpath(dir.c_str(), nullptr);
    if (resolved == nullptr) return path;
    std::string key = absl::StrCat(resolved, "/", p.filename().string());
    std::free(resolved);
    return key;
  }
  std::string key = resolved;
  std::free(resolved);
  return key;
}

// The files a transfer writes, checked before any work: each one writable
// where it is (WritableFileTarget), none of them the same file as another
// or as an input (`--out x.png` would put the spectrogram over the audio;
// `--out` = `--reference` would replace the reference).
absl::Status CheckOutputs(const TransferOptions& o) {
  std::vector<std::pair<std::string, std::string>> outputs;  // (what, path)
  for (int take = 1; take <= o.batch; ++take) {
    outputs.emplace_back("the audio", TakePath(o.out, take));
    if (o.spectrograms) outputs.emplace_back("the spectrogram", TakePath(o.out, take, ".png"));
  }
  if (o.spectrograms) {
    outputs.emplace_back("the reference's spectrogram", ReferencePngPath(o.out));
  }
  std::map<std::string, std::string> taken;  // SameFileKey -> what is there
  for (const auto& [flag, path] : {std::pair<std::string, std::string>{"--reference", o.reference},
                                   {"--midi", o.midi},
                                   {"--checkpoint", o.checkpoint}}) {
    taken.emplace(SameFileKey(path), absl::StrCat("the input ", flag, " ", path));
  }
  for (const auto& [what, path] : outputs) {
    absl::StatusOr<std::string> target = WritableFileTarget(path);
    if (!target.ok()) return Annotate(target.status(), absl::StrCat("--out ", o.out));
    auto [it, fresh] = taken.emplace(SameFileKey(*target), absl::StrCat(what, " ", path));
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrCat("--out ", o.out, ": ", what, " ", path,
                                                     " would overwrite ", it->second));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const TransferOptions& o) {
  if (o.checkpoint.empty()) return absl::InvalidArgumentError("--checkpoint: required");
  if (o.reference.empty()) return absl::InvalidArgumentError("--reference: required");
  if (o.midi.empty()) return absl::InvalidArgumentError("--midi: required");
  if (o.out.empty()) return absl::InvalidArgumentError("--out: required");
  if (!std::isfinite(o.seconds) || o.seconds > kMaxSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seconds: ", o.seconds, "; at most ", kMaxSeconds));
  }
  if (!std::isfinite(o.tail_seconds) || o.tail_seconds < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tail seconds: ", o.tail_seconds, " < 0"));
  }
  if (!std::isfinite(o.temperature)) {
    return absl::InvalidArgumentError("--temperature: must be finite");
  }
  if (o.batch < 1 || o.batch > kMaxTakes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch: ", o.batch, "; expected 1..", kMaxTakes));
  }
  if (o.reference_crops < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--reference-crops: ", o.reference_crops, " < 1"));
  }
  if (o.block_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("block samples: ", o.block_samples, " < 1"));
  }
  if (!std::isfinite(o.chunk_seconds)) {
    return absl::InvalidArgumentError("--chunk-seconds: must be finite");
  }
  if (o.cpu_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--threads: ", o.cpu_threads, " < 0"));
  }
  return CheckOutputs(o);
}

absl::StatusOr<torch::Device> PickDevice(const std::string& name) {
  if (name.empty() || name == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (name == "cpu") return torch::Device(torch::kCPU);
  int index = 0;
  if (name != "cuda") {
    if (name.rfind("cuda:", 0) != 0 || name.size() == 5 ||
        name.find_first_not_of("0123456789", 5) != std::string::npos || name.size() > 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("--device: '", name, "'; expected auto, cpu, cuda or cuda:N"));
    }
    index = std::stoi(name.substr(5));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--device ", name, ": no CUDA device is visible"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--device ", name, ": only ", torch::cuda::device_count(), " CUDA devices are visible"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

struct LoadedModel {
  Autoencoder model{nullptr};
  TrainOptions train;
  std::string path;
  int64_t step = 0;
  bool used_ema = false;
};

// Builds the model the checkpoint's config describes and restores its
// weights and EMA weights (through the training checkpoint code, which checks
// every tensor's name and shape; the optimizer state is skipped), on the CPU.
absl::StatusOr<LoadedModel> LoadModel(const std::string& checkpoint, bool use_ema) {
  LoadedModel m;
  ASSIGN_OR_RETURN(m.path, ResolveCheckpoint(checkpoint));
  ASSIGN_OR_RETURN(CheckpointContents contents, ReadCheckpointFile(m.path));
  ASSIGN_OR_RETURN(m.train, TrainOptionsFromConfigBytes(contents.config_bytes, m.path));
  m.step = contents.step;
  ASSIGN_OR_RETURN(m.model, MakeAutoencoder(m.train.model));
  try {
    std::vector<torch::Tensor> params = m.model->parameters();
    std::vector<torch::Tensor> ema;
    if (m.train.ema.enabled) {
      for (const torch::Tensor& p : params) ema.push_back(torch::empty_like(p));
    }
    RETURN_IF_ERROR(DecodeTrainingPayload(
        contents.payload, m.path, torch::kCPU,
        {.model = m.model.get(), .ema = m.train.ema.enabled ? &ema : nullptr}));
    if (m.train.ema.enabled && use_ema) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].detach().copy_(ema[i]);
      m.used_ema = true;
    }
    m.model->eval();
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat(m.path, ": restoring the model: ",
                                            e.what_without_backtrace()));
  }
  return m;
}

// Clips of the reference to encode (see transfer.h), as a [K, L] float tensor.
absl::StatusOr<torch::Tensor> ReferenceCrops(const std::vector<int16_t>& samples,
                                             const std::string& path, const ModelConfig& model,
                                             int64_t crop_samples, int max_crops) {
  const int64_t total = static_cast<int64_t>(samples.size());
  const int64_t minimum = MinReferenceSamples(model.encoder);
  if (total < minimum) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", total, " samples at ", model.sample_rate,
        " Hz; the timbre encoder needs at least ", minimum));
  }
  torch::Tensor audio =
      torch::from_blob(const_cast<int16_t*>(samples.data()), {total}, torch::kInt16)
          .to(torch::kFloat)
          .div_(32768.0);
  std::vector<torch::Tensor> crops, loud;
  if (crop_samples <= 0 || total <= crop_samples) {
    crops.push_back(audio);
  } else {
    const int64_t k = std::min<int64_t>(max_crops, total / crop_samples);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t offset = k == 1 ? (total - crop_samples) / 2
                                    : (total - crop_samples) * i / (k - 1);
      crops.push_back(audio.narrow(0, offset, crop_samples));
    }
  }
  for (const torch::Tensor& crop : crops) {
    if (crop.square().mean().sqrt().item<double>() >= kSilentRms) loud.push_back(crop);
  }
  if (loud.empty()) {
    LogWarning(kLog, path, ": the reference is silent (below -60 dBFS) everywhere it was read; ",
               "its timbre vector says nothing about a piano");
  }
  return torch::stack(loud.empty() ? crops : loud);
}

absl::Status WriteTake(const std::string& path, const torch::Tensor& audio, int sample_rate,
                       int64_t* clipped) {
  torch::Tensor a = audio.to(torch::kCPU, torch::kFloat).contiguous();
  const float* p = a.data_ptr<float>();
  std::vector<int16_t> pcm(static_cast<size_t>(a.numel()));
  for (size_t i = 0; i < pcm.size(); ++i) {
    if (!(p[i] >= -1.0f && p[i] <= 1.0f)) ++*clipped;
    pcm[i] = std::isfinite(p[i]) ? FloatToInt16(p[i]) : 0;
  }
  return WriteWavFile(path, pcm, sample_rate);
}

}  // namespace

std::string TakePath(const std::string& out, int take, const std::string& extension) {
  const std::filesystem::path p(out);
  std::filesystem::path stem = p.parent_path() / p.stem();
  const std::string ext = extension.empty() ? p.extension().string() : extension;
  if (take <= 1) return stem.string() + ext;
  return absl::StrCat(stem.string(), ".take", take, ext);
}

std::string ReferencePngPath(const std::string& out) {
  const std::filesystem::path p(out);
  return ((p.parent_path() / p.stem()).string()) + ".reference.png";
}

absl::StatusOr<TransferResult> RunTransfer(const TransferOptions& o) {
  RETURN_IF_ERROR(CheckOptions(o));
  TransferResult result;
  ASSIGN_OR_RETURN(const torch::Device device, PickDevice(o.device));
  result.device = DeviceName(device);
  if (o.cpu_threads > 0) torch::set_num_threads(o.cpu_threads);

  // Inputs first (cheap, and the likeliest to be wrong), then the model.
  ASSIGN_OR_RETURN(const midi::Performance performance, midi::ReadMidiFile(o.midi));
  if (performance.notes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(o.midi, ": no notes"));
  }
  if (midi::PianoNotes(performance).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.midi, ": no piano notes (every note is on the drum channel)"));
  }
  // The length before the model (a MIDI file can claim hours).
  const double seconds =
      o.seconds > 0 ? o.seconds : midi::PianoEndSeconds(performance) + o.tail_seconds;
  if (o.seconds <= 0 && !(seconds <= kMaxSeconds)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the piano part lasts %.0f s (with the %g s tail); at most %g s in one transfer: "
        "pass --seconds N to render its first N seconds",
        o.midi, seconds, o.tail_seconds, kMaxSeconds));
  }
  if (seconds * o.batch > kMaxSeconds) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--batch %d takes of %g s make %g s of audio; at most %g s in one transfer",
        o.batch, seconds, seconds * o.batch, kMaxSeconds));
  }
  ASSIGN_OR_RETURN(LoadedModel loaded, LoadModel(o.checkpoint, o.use_ema));
  const ModelConfig& config = loaded.train.model;
  const int rate = config.sample_rate;
  result.checkpoint_path = loaded.path;
  result.checkpoint_step = loaded.step;
  result.decoder = std::string(DecoderKindName(config.decoder.kind));
  result.used_ema = loaded.used_ema;
  result.sample_rate = rate;
  if (config.decoder.kind == DecoderKind::kParallel && o.temperature != 1.0) {
    LogWarning(kLog, "--temperature ", o.temperature,
               " is ignored: the parallel decoder does not sample classes");
  }
  LogInfo(kLog, "checkpoint ", loaded.path, ": step ", loaded.step, ", ", result.decoder,
          " decoder, ", loaded.model->ParameterCount(), " parameters",
          loaded.used_ema ? " (EMA weights)" : "", ", ", rate, " Hz, on ", result.device);

  AudioDecodeOptions decode;
  decode.target_rate = rate;
  ASSIGN_OR_RETURN(const DecodedAudio reference, ReadAudioFile(o.reference, decode));

  const int64_t total = static_cast<int64_t>(std::llround(seconds * rate));
  if (total < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seconds: ", seconds, " is less than one sample at ", rate, " Hz"));
  }
  ASSIGN_OR_RETURN(MidiConditioning cond, ConditioningFromPerformance(performance, rate, total));
  RETURN_IF_ERROR(Annotate(CheckSparseEvents(cond.events, total), o.midi));
  result.samples = total;
  result.notes = cond.notes;
  LogInfo(kLog, "MIDI ", o.midi, ": ", cond.notes, " piano notes in ", seconds, " s (",
          total, " samples)", cond.notes_cut > 0 ? absl::StrCat(", ", cond.notes_cut,
                                                              " still sounding at the end")
                                                : "",
          performance.warnings.Total() > 0
              ? absl::StrCat("; repaired: ", performance.warnings.Summary())
              : "");
  if (cond.notes == 0) {
    LogWarning(kLog, o.midi, ": no piano note starts in the first ", seconds,
               " s; the output will be the model's idea of silence");
  }

  try {
    torch::NoGradGuard no_grad;
    Autoencoder& model = loaded.model;
    model->to(device);

    // Timbre: z averaged over crops of the trained reference length.
    ASSIGN_OR_RETURN(torch::Tensor crops,
                     ReferenceCrops(reference.samples, o.reference, config,
                                    loaded.train.data.reference_samples, o.reference_crops));
    result.reference_crops = static_cast<int>(crops.size(0));
    torch::Tensor z = model->Encode(crops.to(device)).mean(0, /*keepdim=*/true);
    LogInfo(kLog, "reference ", o.reference, ": ", reference.source.format, ", ",
            reference.source.sample_rate, " Hz, ", reference.source.channels, " channels, ",
            reference.samples.size() / static_cast<double>(rate), " s; z from ",
            result.reference_crops, " clips of ",
            std::min<int64_t>(crops.size(1), static_cast<int64_t>(reference.samples.size())),
            " samples");

    // Features: the trainer's own conversion of sparse events, a span at a
    // time (the whole piece as dense floats takes 708 bytes per sample).
    auto features = std::make_shared<const FeatureSpans>(cond.events, total);
    cond.events = SparseEvents();
    const int64_t takes = o.batch;
    const ConditioningSpans cond_b{
        .batch = takes,
        .channels = kFeatureChannels,
        .length = total,
        .slice = [features, takes](int64_t start, int64_t n) {
          torch::Tensor span = torch::zeros({1, kFeatureChannels, n}, torch::kFloat);
          features->Fill(start, n, span.data_ptr<float>());
          return span.expand({takes, kFeatureChannels, n});
        }};
    torch::Tensor z_b = z.expand({takes, z.size(1)}).contiguous();

    torch::Generator rng = at::detail::createCPUGenerator(o.seed);
    Progress progress("transfer", "samples", total * takes);
    int64_t reported = 0;
    const absl::Time start = absl::Now();
    auto on_progress = [&](int64_t done, int64_t /*of*/) {
      if (!o.progress) return;
      const double elapsed = std::max(1e-9, absl::ToDoubleSeconds(absl::Now() - start));
      const double rtf = static_cast<double>(done * takes) / rate / elapsed;
      progress.Add((done - reported) * takes, absl::StrFormat("%.3gx real time", rtf));
      reported = done;
    };

    torch::Tensor audio;
    if (config.decoder.kind == DecoderKind::kAutoregressive) {
      GeneratorOptions g;
      g.temperature = o.temperature;
      g.block_samples = o.block_samples;
      g.on_progress = on_progress;
      ASSIGN_OR_RETURN(std::unique_ptr<AutoregressiveGenerator> generator,
                       AutoregressiveGenerator::Create(model->decoder(), g));
      ASSIGN_OR_RETURN(GenerationResult r, generator->Generate(cond_b, z_b, rng));
      audio = r.audio;
    } else {
      ParallelRenderOptions p;
      p.chunk_samples = o.chunk_seconds > 0
                            ? std::max<int64_t>(1, std::llround(o.chunk_seconds * rate))
                            : 0;
      p.on_progress = on_progress;
      ASSIGN_OR_RETURN(audio, RenderParallel(model->decoder(), cond_b, z_b, rng, p));
    }
    if (device.is_cuda()) torch::cuda::synchronize(device.index());
    result.render_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (o.progress) progress.Finish();
    result.real_time_factor = static_cast<double>(total * takes) / rate /
                              std::max(1e-9, result.render_seconds);
    LogInfo(kLog, "rendered ", takes, " x ", total, " samples in ", result.render_seconds,
            " s: ", result.real_time_factor, "x real time");

    audio = audio.to(torch::kCPU, torch::kFloat).contiguous();
    for (int take = 1; take <= takes; ++take) {
      torch::Tensor a = audio[take - 1];
      const std::string wav = TakePath(o.out, take);
      RETURN_IF_ERROR(WriteTake(wav, a, rate, &result.clipped_samples));
      result.wav_paths.push_back(wav);
      if (o.spectrograms) {
        const std::string png = TakePath(o.out, take, ".png");
        RETURN_IF_ERROR(WriteSpectrogramPng(
            png, absl::MakeConstSpan(a.data_ptr<float>(), static_cast<size_t>(a.numel())), rate,
            o.spectrogram));
        result.png_paths.push_back(png);
      }
    }
    if (o.spectrograms) {
      std::vector<float> ref(reference.samples.size());
      for (size_t i = 0; i < ref.size(); ++i) ref[i] = reference.samples[i] / 32768.0f;
      result.reference_png = ReferencePngPath(o.out);
      RETURN_IF_ERROR(WriteSpectrogramPng(result.reference_png, ref, rate, o.spectrogram));
    }
    if (result.clipped_samples > 0) {
      LogWarning(kLog, result.clipped_samples,
                 " output samples fell outside [-1, 1] (or were not finite) and were clipped");
    }
    LogInfo(kLog, "wrote ", absl::StrJoin(result.wav_paths, ", "),
            result.reference_png.empty() ? "" : absl::StrCat(" and spectrograms (",
                                                               result.reference_png, ", ...)"));
  } catch (const c10::Error& e) {
    return TorchError("transfer", e);
  }
  return result;
}

}  // namespace pianola
