#include "trainer/trainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "trainer/autocast_scope.h"
#include "trainer/autoencoder.h"
#include "trainer/batch_tensors.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_file.h"
#include "trainer/cuda_graph_step.h"
#include "trainer/determinism.h"
#include "trainer/device.h"
#include "trainer/fused_adam.h"
#include "trainer/grad_clip.h"
#include "trainer/data_client.h"
#include "trainer/lr_schedule.h"

namespace pianola {
namespace {

constexpr char kLog[] = "trainer";
constexpr char kMetricsFile[] = "metrics.jsonl";
// Salt for the validation noise generator's seed (distinct from training's).
constexpr uint64_t kValidationSeedSalt = 0x76616c6964ULL;

// Counters saved in checkpoints (TrainingStateRefs::counters), by position.
enum Counter { kNonfiniteTotal = 0, kNonfiniteConsecutive = 1, kNumCounters = 2 };

std::string FormatNumber(double v) {
  if (!std::isfinite(v)) return "null";  // JSON has no NaN/Inf
  return absl::StrFormat("%.10g", v);
}

// OUT/metrics.jsonl: one JSON object per line. A resumed run first drops the
// lines of steps after the checkpoint (an interrupted run may have logged
// past it), so the file reads like one uninterrupted run.
class MetricsLog {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsLog>> Open(const std::string& path,
                                                          int64_t resume_step) {
    std::string kept;
    if (resume_step > 0) {
      absl::StatusOr<std::string> old = ReadFile(path);
      if (old.ok()) {
        for (absl::string_view line : absl::StrSplit(*old, '\n', absl::SkipEmpty())) {
          long long step = -1;
          const std::string l(line);
          if (std::sscanf(l.c_str(), "{\"step\":%lld", &step) == 1 && step <= resume_step) {
            absl::StrAppend(&kept, line, "\n");
          }
        }
      } else if (!absl::IsNotFound(old.status())) {
        return old.status();
      }
    }
    RETURN_IF_ERROR(WriteFileAtomic(path, kept));
    std::FILE* f = std::fopen(path.c_str(), "ae");
    if (f == nullptr) return absl::InternalError(absl::StrCat(path, ": cannot open for append"));
    return std::unique_ptr<MetricsLog>(new MetricsLog(path, f));
  }
  ~MetricsLog() { std::fclose(file_); }

  void Write(int64_t step, absl::string_view name, double value) {
    const double now = absl::ToUnixMicros(absl::Now()) / 1e6;
    absl::StrAppend(&pending_, "{\"step\":", step, ",\"name\":\"", name,
                    "\",\"value\":", FormatNumber(value), ",\"time\":",
                    absl::StrFormat("%.6f", now), "}\n");
  }
  absl::Status Flush() {
    if (pending_.empty()) return absl::OkStatus();
    const size_t n = std::fwrite(pending_.data(), 1, pending_.size(), file_);
    pending_.clear();
    if (n == 0 || std::fflush(file_) != 0) {
      return absl::InternalError(absl::StrCat(path_, ": write failed"));
    }
    return absl::OkStatus();
  }

 private:
  MetricsLog(std::string path, std::FILE* f) : path_(std::move(path)), file_(f) {}
  std::string path_;
  std::FILE* file_;
  std::string pending_;
};

absl::StatusOr<torch::Device> PickDevice(const TrainOptions& o) {
  const bool cuda = torch::cuda::is_available();
  switch (o.device) {
    case TrainDevice::kCpu:
      return torch::Device(torch::kCPU);
    case TrainDevice::kAuto:
      if (!cuda) return torch::Device(torch::kCPU);
      break;
    case TrainDevice::kCuda:
      if (!cuda) {
        return absl::FailedPreconditionError(
            "device: cuda was asked for but no CUDA device is visible (use --device cpu or auto)");
      }
      break;
  }
  const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
  if (o.device_index >= n) {
    return absl::FailedPreconditionError(
        absl::StrCat("device: cuda:", o.device_index, " asked for, ", n, " visible"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(o.device_index));
}

at::Generator DefaultGenerator(const torch::Device& d) {
  return at::globalContext().defaultGenerator(
      d.is_cuda() ? at::Device(at::kCUDA, d.has_index() ? d.index() : 0) : at::Device(at::kCPU));
}

// The steps since metrics.jsonl was last flushed.
struct Interval {
  int64_t steps = 0;
  int64_t finite_steps = 0;
  double loss_sum = 0;
};

class TrainingRun {
 public:
  TrainingRun(const TrainOptions& options, const RunOptions& run)
      : o_(options), run_(run), device_(torch::kCPU) {}

  absl::StatusOr<TrainSummary> Run() {
    RETURN_IF_ERROR(Setup());
    RETURN_IF_ERROR(Loop());
    return summary_;
  }

 private:
  absl::Status Setup();
  absl::Status ConfigureTorch();
  absl::Status CheckDataset();
  absl::Status MaybeResume();
  absl::Status Loop();
  absl::Status Step(int64_t step);
  // Forward, loss, backward and clipping through graph_: the loss and the
  // gradient norm (both NaN/Inf-able).
  absl::StatusOr<std::pair<double, double>> GraphedForwardBackward(const ModelBatch& mb);
  absl::Status LogInterval(int64_t step);
  absl::Status Validate(int64_t step);
  absl::Status Checkpoint(int64_t step);
  DataClientOptions ClientOptions(DataSplit split) const;
  TrainingStateRefs StateRefs() {
    return {.model = model_.get(), .optimizer = optimizer_.get(),
            .ema = o_.ema.enabled ? &ema_ : nullptr, .counters = &counters_};
  }
  void SetLearningRate(double lr);
  void UpdateEma();
  void SwapEma();

  const TrainOptions& o_;
  const RunOptions& run_;
  torch::Device device_;
  bool bf16_ = false;
  double max_grad_norm_ = 0;  // +inf without clipping
  Autoencoder model_{nullptr};
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  // With cuda_graphs on CUDA: the captured step, the batch tensors it reads
  // (each batch is copied into them) and its outputs.
  std::unique_ptr<CudaGraphStep> graph_;
  ModelBatch graph_batch_;
  torch::Tensor graph_loss_, graph_norm_;
  std::vector<torch::Tensor> ema_;
  std::vector<int64_t> counters_ = std::vector<int64_t>(kNumCounters, 0);
  std::unique_ptr<DataClient> client_;
  std::unique_ptr<MetricsLog> metrics_;
  int64_t step_ = 0;  // steps done
  uint64_t data_epoch_ = 0;
  uint64_t data_cursor_ = 0;
  int64_t last_checkpoint_step_ = -1;
  Interval interval_;
  double last_step_loss_ = 0;
  double last_rate_ = 0;  // target samples/s of the last step
  TrainSummary summary_;
};

absl::Status TrainingRun::ConfigureTorch() {
  ASSIGN_OR_RETURN(device_, PickDevice(o_));
  switch (o_.precision) {
    case TrainPrecision::kAuto:
      bf16_ = device_.is_cuda();
      break;
    case TrainPrecision::kFp32:
      bf16_ = false;
      break;
    case TrainPrecision::kBf16:
      if (!device_.is_cuda()) {
        return absl::InvalidArgumentError("precision: bf16 autocast needs a CUDA device");
      }
      bf16_ = true;
      break;
  }
  torch::set_num_threads(o_.cpu_threads);
  if (device_.is_cuda()) {
    // TF32 for float32 matmuls and convolutions (what bf16 autocast leaves in fp32).
    at::globalContext().setAllowTF32CuBLAS(true);
    at::globalContext().setAllowTF32CuDNN(true);
    at::globalContext().setBenchmarkCuDNN(true);
    at::globalContext().setDeterministicAlgorithms(false, false);
  } else {
    UseDeterministicCpuAlgorithms();
  }
  torch::manual_seed(o_.seed);
  return absl::OkStatus();
}

DataClientOptions TrainingRun::ClientOptions(DataSplit split) const {
  DataClientOptions c;
  c.servers = o_.data.servers;
  c.dataset = o_.data.dataset;
  c.split = split;
  c.seed = o_.seed;
  c.batch_size = o_.data.batch_size;
  c.window_samples = o_.data.window_samples;
  c.context_samples = o_.data.context_samples;
  c.reference_samples = o_.data.reference_samples;
  c.prefetch_batches = o_.data.prefetch_batches;
  return c;
}

absl::Status TrainingRun::CheckDataset() {
  ASSIGN_OR_RETURN(DatasetInfoData info, GetDatasetInfo(o_.data.servers, o_.data.dataset,
                                                        o_.data.window_samples));
  if (info.sample_rate != o_.model.sample_rate) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.sample_rate: ", o_.model.sample_rate, " Hz, but dataset '", info.name, "' (from ",
        info.server, ") is at ", info.sample_rate, " Hz"));
  }
  const DatasetSplitInfo* train = info.Find(o_.data.train_split);
  if (train == nullptr || train->windows_per_epoch == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.train_split: dataset '", info.name, "' has no ",
                     DataSplitName(o_.data.train_split), " windows of ", o_.data.window_samples,
                     " samples"));
  }
  if (o_.validation.every_steps > 0) {
    const DatasetSplitInfo* val = info.Find(o_.data.validation_split);
    if (val == nullptr || val->windows_per_epoch == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "data.validation_split: dataset '", info.name, "' has no ",
          DataSplitName(o_.data.validation_split),
          " windows (set validation { every_steps: 0 } to train without validation)"));
    }
  }
  LogInfo(kLog, "dataset '", info.name, "' from ", info.server, ": ", train->windows_per_epoch,
          " ", DataSplitName(o_.data.train_split), " windows per epoch at ", info.sample_rate,
          " Hz");
  return absl::OkStatus();
}

absl::Status TrainingRun::Setup() {
  if (run_.out_dir.empty()) return absl::InvalidArgumentError("--out: required");
  RETURN_IF_ERROR(MakeDirs(run_.out_dir));
  RETURN_IF_ERROR(ConfigureTorch());
  summary_.device = DeviceName(device_);

  ASSIGN_OR_RETURN(model_, MakeAutoencoder(o_.model));
  model_->to(device_);
  model_->train();
  params_ = model_->parameters();
  optimizer_ = MakeOptimizer(o_.optimizer, params_);
  max_grad_norm_ =
      o_.grad_clip_norm > 0 ? o_.grad_clip_norm : std::numeric_limits<double>::infinity();
  if (o_.cuda_graphs && device_.is_cuda()) {
    ASSIGN_OR_RETURN(graph_, CudaGraphStep::Create(device_));
  } else if (o_.cuda_graphs) {
    LogWarning(kLog, "cuda_graphs: the device is ", DeviceName(device_),
               ", not CUDA; steps run eagerly");
  }
  if (o_.ema.enabled) {
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& p : params_) ema_.push_back(p.detach().clone());
  }
  LogInfo(kLog, "experiment ", o_.name, ": ", model_->ParameterCount(), " parameters on ",
          summary_.device, bf16_ ? " (bf16 autocast, TF32)" : "",
          graph_ != nullptr ? " with CUDA graphs" : "", ", receptive field ",
          model_->receptive_field(), " samples, ", o_.cpu_threads, " CPU threads");

  RETURN_IF_ERROR(CheckDataset());
  RETURN_IF_ERROR(MaybeResume());
  ASSIGN_OR_RETURN(metrics_, MetricsLog::Open(
                                 (std::filesystem::path(run_.out_dir) / kMetricsFile).string(),
                                 step_));
  DataClientOptions c = ClientOptions(o_.data.train_split);
  c.epoch = data_epoch_;
  c.start_cursor = data_cursor_;
  c.continuous = true;
  ASSIGN_OR_RETURN(client_, DataClient::Create(std::move(c)));
  return absl::OkStatus();
}

absl::Status TrainingRun::MaybeResume() {
  if (!HasCheckpoints(run_.out_dir)) {
    if (run_.resume) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--resume: no checkpoints in ", CheckpointDir(run_.out_dir), " to resume from"));
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::string path, ResolveCheckpoint(run_.out_dir));
  ASSIGN_OR_RETURN(CheckpointContents c, ReadCheckpointFile(path));
  absl::StatusOr<std::vector<std::string>> changes = CheckResumeCompatible(c.config_bytes, o_);
  if (!changes.ok()) return Annotate(changes.status(), path);
  if (!changes->empty()) {
    LogWarning(kLog, "resuming ", path, " with changed ", absl::StrJoin(*changes, ", "),
               ": the run will not match an uninterrupted one");
  }
  RETURN_IF_ERROR(DecodeTrainingPayload(c.payload, path, device_, StateRefs()));
  if (counters_.size() < kNumCounters) counters_.resize(kNumCounters, 0);
  step_ = c.step;
  data_epoch_ = c.data_epoch;
  data_cursor_ = c.data_cursor;
  last_checkpoint_step_ = step_;
  summary_.resumed_from = path;
  LogInfo(kLog, "resumed from ", path, " at step ", step_, " (data epoch ", data_epoch_,
          ", cursor ", data_cursor_, ")");
  return absl::OkStatus();
}

void TrainingRun::SetLearningRate(double lr) {
  for (torch::optim::OptimizerParamGroup& group : optimizer_->param_groups()) {
    group.options().set_lr(lr);
  }
}

void TrainingRun::UpdateEma() {
  if (!o_.ema.enabled) return;
  torch::NoGradGuard no_grad;
  // ema += (1 - decay) (param - ema), all parameters in one call.
  torch::_foreach_lerp_(ema_, params_, 1.0 - o_.ema.decay);
}

void TrainingRun::SwapEma() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor tmp = params_[i].detach().clone();
    params_[i].detach().copy_(ema_[i]);
    ema_[i].copy_(tmp);
  }
}

absl::Status TrainingRun::Step(int64_t step) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::optional<BatchData> batch, client_->Next());
  const absl::Duration wait = absl::Now() - start;
  if (!batch.has_value()) return absl::InternalError("the training data stream ended");
  BatchTensorOptions to;
  to.device = device_;
  ASSIGN_OR_RETURN(BatchTensors t, ToTensors(*batch, to));
  ModelBatch mb{.audio = t.audio, .conditioning = t.features, .reference = t.reference};

  const double lr = LearningRate(o_.schedule, step);
  SetLearningRate(lr);
  const bool inject = run_.inject_nonfinite && run_.inject_nonfinite(step + 1);
  double loss_value = std::numeric_limits<double>::quiet_NaN();
  double grad_norm = std::numeric_limits<double>::quiet_NaN();
  if (graph_ != nullptr) {
    // Backward always runs inside the graph; a non-finite loss gives
    // non-finite gradients, and the step is skipped below all the same.
    ASSIGN_OR_RETURN(std::tie(loss_value, grad_norm), GraphedForwardBackward(mb));
    if (inject) loss_value = std::numeric_limits<double>::quiet_NaN();
  } else {
    optimizer_->zero_grad();
    torch::Tensor loss;
    {
      AutocastScope autocast(bf16_);
      ASSIGN_OR_RETURN(LossOutput out, model_->Loss(mb));
      loss = out.total;
    }
    loss_value = inject ? std::numeric_limits<double>::quiet_NaN() : loss.item<double>();
    if (std::isfinite(loss_value)) {
      loss.backward();
      grad_norm = ClipGradNorm(params_, max_grad_norm_);
    }
  }
  const bool finite = std::isfinite(loss_value) && std::isfinite(grad_norm);
  StepRecord record{.step = step + 1, .loss = loss_value, .grad_norm = grad_norm, .lr = lr,
                    .skipped = !finite};
  if (finite) {
    counters_[kNonfiniteConsecutive] = 0;
    optimizer_->step();
    UpdateEma();
  } else {
    // Drop the gradients (a captured graph rewrites its own on every replay:
    // they must stay).
    if (graph_ == nullptr) optimizer_->zero_grad();
    ++counters_[kNonfiniteTotal];
    ++counters_[kNonfiniteConsecutive];
    LogWarning(kLog, "step ", step + 1, ": non-finite ",
               std::isfinite(loss_value) ? "gradient norm" : "loss", " (",
               std::isfinite(loss_value) ? grad_norm : loss_value, "); step skipped (",
               counters_[kNonfiniteConsecutive], " in a row, ", counters_[kNonfiniteTotal],
               " in total)");
  }
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  const absl::Duration wall = absl::Now() - start;
  const double samples = static_cast<double>(batch->windows.size()) * o_.data.window_samples;
  record.samples_per_second = samples / std::max(1e-9, absl::ToDoubleSeconds(wall));
  record.data_wait_share =
      absl::ToDoubleSeconds(wait) / std::max(1e-9, absl::ToDoubleSeconds(wall));
  last_rate_ = record.samples_per_second;
  data_epoch_ = client_->epoch();
  data_cursor_ = client_->cursor();

  ++interval_.steps;
  if (finite) {
    ++interval_.finite_steps;
    interval_.loss_sum += loss_value;
    last_step_loss_ = loss_value;
  }
  // Every step's own values; written out at the end of each logging interval.
  metrics_->Write(step + 1, "train/loss", loss_value);
  metrics_->Write(step + 1, "train/grad_norm", grad_norm);
  metrics_->Write(step + 1, "train/lr", lr);
  metrics_->Write(step + 1, "train/samples_per_second", record.samples_per_second);
  metrics_->Write(step + 1, "train/data_wait_share", record.data_wait_share);
  if (run_.on_step) run_.on_step(record);
  if (counters_[kNonfiniteConsecutive] > o_.max_consecutive_nonfinite) {
    (void)metrics_->Flush();  // the steps that led here stay on record
    return absl::FailedPreconditionError(absl::StrCat(
        "step ", step + 1, ": ", counters_[kNonfiniteConsecutive],
        " non-finite losses or gradients in a row (max_consecutive_nonfinite is ",
        o_.max_consecutive_nonfinite, "): the run diverged; lower optimizer.lr or check the data"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<double, double>> TrainingRun::GraphedForwardBackward(
    const ModelBatch& mb) {
  torch::NoGradGuard no_grad_for_copies;
  const bool first = !graph_batch_.audio.defined();
  for (auto [to, from] : {std::pair{&graph_batch_.audio, &mb.audio},
                          {&graph_batch_.conditioning, &mb.conditioning},
                          {&graph_batch_.reference, &mb.reference}}) {
    if (!from->defined()) continue;  // no MIDI features
    if (first) {
      *to = from->clone();
    } else {
      to->copy_(*from, /*non_blocking=*/true);
    }
  }
  // Before the capture, every call starts from no gradients, so that
  // backward allocates them (inside the capture on the capturing call); the
  // replays then rewrite those tensors, which the optimizer reads.
  if (!graph_->captured()) optimizer_->zero_grad();
  absl::Status status;
  const bool capturing =
      !graph_->captured() && graph_->calls() >= CudaGraphStep::kDefaultWarmupCalls;
  try {
    graph_->Run([&] {
      torch::AutoGradMode grad_mode(true);
      torch::Tensor total;
      {
        AutocastScope autocast(bf16_, /*cache_enabled=*/false);
        absl::StatusOr<LossOutput> out = model_->Loss(graph_batch_);
        if (!out.ok()) {
          status = out.status();
          return;
        }
        total = out->total;
      }
      graph_loss_ = total.detach();
      total.backward();
      graph_norm_ = ClipGradNormTensor(params_, max_grad_norm_);
    });
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(
        "cuda_graphs: ", capturing ? "capturing" : "running", " the step's CUDA graph failed ",
        "(set cuda_graphs: false to train eagerly): ", e.what_without_backtrace()));
  }
  RETURN_IF_ERROR(status);
  return std::make_pair(graph_loss_.item<double>(),
                        graph_norm_.defined() ? graph_norm_.item<double>() : 0.0);
}

absl::Status TrainingRun::LogInterval(int64_t step) {
  if (interval_.steps == 0) return absl::OkStatus();
  metrics_->Write(step, "train/nonfinite_steps", static_cast<double>(counters_[kNonfiniteTotal]));
  RETURN_IF_ERROR(metrics_->Flush());
  summary_.last_loss = interval_.finite_steps ? interval_.loss_sum / interval_.finite_steps
                                              : std::numeric_limits<double>::quiet_NaN();
  interval_ = Interval{};
  return absl::OkStatus();
}

absl::Status TrainingRun::Validate(int64_t step) {
  DataClientOptions c = ClientOptions(o_.data.validation_split);
  c.epoch = 0;  // the same windows every time
  c.max_windows = static_cast<uint64_t>(o_.validation.batches) * o_.data.batch_size;
  ASSIGN_OR_RETURN(std::unique_ptr<DataClient> client, DataClient::Create(std::move(c)));

  // The parallel decoder draws noise: use a fixed seed for validation and
  // leave the training generator's state untouched.
  at::Generator gen = DefaultGenerator(device_);
  torch::Tensor saved_state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    saved_state = gen.get_state();
    gen.set_current_seed(o_.seed ^ kValidationSeedSalt);
  }
  model_->eval();
  torch::NoGradGuard no_grad;
  double sum = 0, ema_sum = 0;
  int64_t windows = 0;
  absl::Status status;
  while (status.ok()) {
    absl::StatusOr<std::optional<BatchData>> batch = client->Next();
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
    if (!batch->has_value()) break;
    BatchTensorOptions to;
    to.device = device_;
    absl::StatusOr<BatchTensors> t = ToTensors(**batch, to);
    if (!t.ok()) {
      status = t.status();
      break;
    }
    ModelBatch mb{.audio = t->audio, .conditioning = t->features, .reference = t->reference};
    const int64_t b = t->audio.size(0);
    torch::Tensor noise_state;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      noise_state = gen.get_state();
    }
    {
      AutocastScope autocast(bf16_);
      absl::StatusOr<LossOutput> out = model_->Loss(mb);
      if (!out.ok()) {
        status = out.status();
        break;
      }
      sum += out->total.item<double>() * b;
    }
    if (o_.ema.enabled) {
      {
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(noise_state);  // the same noise for both weight sets
      }
      SwapEma();
      AutocastScope autocast(bf16_);
      absl::StatusOr<LossOutput> out = model_->Loss(mb);
      SwapEma();
      if (!out.ok()) {
        status = out.status();
        break;
      }
      ema_sum += out->total.item<double>() * b;
    }
    windows += b;
  }
  model_->train();
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(saved_state);
  }
  RETURN_IF_ERROR(Annotate(status, absl::StrCat("validation at step ", step)));
  if (windows == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("validation at step ", step, ": the validation split returned no windows"));
  }
  ValidationRecord r{.step = step, .loss = sum / windows,
                     .ema_loss = o_.ema.enabled ? ema_sum / windows
                                                : std::numeric_limits<double>::quiet_NaN(),
                     .windows = windows};
  metrics_->Write(step, "validation/loss", r.loss);
  if (o_.ema.enabled) metrics_->Write(step, "validation/ema_loss", r.ema_loss);
  RETURN_IF_ERROR(metrics_->Flush());
  LogInfo(kLog, "step ", step, ": validation loss ", FormatNumber(r.loss),
          o_.ema.enabled ? absl::StrCat(" (EMA ", FormatNumber(r.ema_loss), ")") : "", " over ",
          windows, " windows");
  summary_.validations.push_back(r);
  if (run_.on_validation) run_.on_validation(r);
  return absl::OkStatus();
}

absl::Status TrainingRun::Checkpoint(int64_t step) {
  CheckpointContents meta;
  meta.step = step;
  meta.data_epoch = data_epoch_;
  meta.data_cursor = data_cursor_;
  meta.config_bytes = o_.config_bytes;
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(std::string path,
                   SaveCheckpoint(run_.out_dir, o_.checkpoint.keep_last, std::move(meta),
                                  StateRefs()));
  last_checkpoint_step_ = step;
  summary_.last_checkpoint = path;
  LogInfo(kLog, "step ", step, ": checkpoint ", path, " (",
          absl::FormatDuration(absl::Now() - start), ")");
  return absl::OkStatus();
}

absl::Status TrainingRun::Loop() {
  summary_.start_step = step_;
  const int64_t end = run_.stop_at_step > 0 ? std::min(run_.stop_at_step, o_.steps) : o_.steps;
  if (step_ >= end) {
    LogInfo(kLog, "nothing to do: at step ", step_, " of ", end);
    summary_.end_step = step_;
    summary_.nonfinite_steps = counters_[kNonfiniteTotal];
    return absl::OkStatus();
  }
  LogInfo(kLog, "training steps ", step_ + 1, "..", end, " of ", o_.steps);
  std::unique_ptr<Progress> progress;
  if (run_.progress) progress = std::make_unique<Progress>("train", "steps", end - step_);
  while (step_ < end) {
    RETURN_IF_ERROR(Step(step_));
    ++step_;
    const bool stop_now = run_.stop != nullptr && run_.stop->load(std::memory_order_relaxed);
    const bool last = step_ == o_.steps;
    if (step_ % o_.log_every_steps == 0 || step_ == end || stop_now) {
      RETURN_IF_ERROR(LogInterval(step_));
    }
    if (progress) {
      progress->Add(1, absl::StrFormat("step %d loss %.4f lr %.3g %.0f samples/s", step_,
                                       last_step_loss_, LearningRate(o_.schedule, step_ - 1),
                                       last_rate_));
    }
    if (o_.validation.every_steps > 0 &&
        (step_ % o_.validation.every_steps == 0 || last)) {
      RETURN_IF_ERROR(Validate(step_));
    }
    if ((o_.checkpoint.every_steps > 0 && step_ % o_.checkpoint.every_steps == 0) ||
        step_ == end || stop_now) {
      RETURN_IF_ERROR(Checkpoint(step_));
    }
    if (stop_now) {
      LogInfo(kLog, "stop requested: stopping at step ", step_, " of ", o_.steps);
      break;
    }
  }
  if (progress) progress->Finish();
  summary_.end_step = step_;
  summary_.nonfinite_steps = counters_[kNonfiniteTotal];
  summary_.stopped_early = step_ < o_.steps;
  LogInfo(kLog, "done at step ", step_, " of ", o_.steps, "; last checkpoint ",
          summary_.last_checkpoint);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ResolveTrainDevice(const TrainOptions& options) {
  try {
    ASSIGN_OR_RETURN(torch::Device d, PickDevice(options));
    return DeviceName(d);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("device: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<int64_t> CountModelParameters(const ModelConfig& config) {
  try {
    ASSIGN_OR_RETURN(Autoencoder model, MakeAutoencoder(config));
    return model->ParameterCount();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building the model: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<TrainSummary> Train(const TrainOptions& options, const RunOptions& run) {
  try {
    TrainingRun training(options, run);
    return training.Run();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("training: ", e.what()));
  }
}

}  // namespace pianola
