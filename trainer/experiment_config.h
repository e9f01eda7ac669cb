#ifndef PIANOLA_TRAINER_EXPERIMENT_CONFIG_H_
#define PIANOLA_TRAINER_EXPERIMENT_CONFIG_H_

// Experiment configs (proto/experiment.proto) as plain C++ structs.
//
// LoadExperimentConfig() reads a text-format or JSON file, applies command-line
// overrides, checks every field and returns TrainOptions: the model shape
// (ModelConfig, from a named preset plus overrides), the data request, the
// optimizer, schedule and run policy. Every problem - a syntax error, an
// unknown field, a value out of range, a missing required field - is an
// InvalidArgument naming the file and the field, reported before any work
// starts.
//
// Torch-free on purpose (the generated proto code and LibTorch's bundled
// protobuf headers must not meet in one translation unit): torch code sees
// only the structs below; checkpoints carry the config as the serialized
// bytes in TrainOptions::config_bytes, which TrainOptionsFromConfigBytes()
// turns back into options.
//
// Plain values and free functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "trainer/data_client.h"
#include "trainer/lr_schedule.h"
#include "trainer/model_config.h"

namespace pianola {

enum class TrainDevice { kAuto, kCpu, kCuda };
enum class TrainPrecision { kAuto, kFp32, kBf16 };
enum class OptimizerKind { kAdam, kAdamW };

absl::string_view OptimizerKindName(OptimizerKind kind);  // "adam" | "adamw"

struct TrainDataOptions {
  std::vector<std::string> servers;  // HOST:PORT, at least one
  std::string dataset;               // empty: the only dataset served
  DataSplit train_split = DataSplit::kTrain;
  DataSplit validation_split = DataSplit::kValidation;
  uint32_t window_samples = 8000;
  uint32_t reference_samples = 16000;
  uint32_t batch_size = 8;
  uint32_t context_samples = 0;      // resolved: ContextSamples(model) unless set larger
  int prefetch_batches = 4;
};

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdam;
  double lr = 1e-3;  // peak; the schedule scales it per step
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

struct EmaOptions {
  bool enabled = false;
  double decay = 0.999;
};

struct CheckpointPolicy {
  int64_t every_steps = 1000;  // 0: only at the end
  int keep_last = 3;           // 0: keep all
};

struct ValidationOptions {
  int64_t every_steps = 1000;  // 0: never
  int batches = 4;
};

// Everything a training run needs, resolved and checked.
struct TrainOptions {
  std::string name;
  std::string preset;  // the model preset the model came from
  ModelConfig model;
  TrainDataOptions data;
  OptimizerOptions optimizer;
  LrScheduleOptions schedule;  // schedule.lr == optimizer.lr, total_steps == steps
  double grad_clip_norm = 1.0;  // 0: no clipping (the norm is still measured)
  EmaOptions ema;
  uint64_t seed = 0;
  int64_t steps = 0;
  TrainDevice device = TrainDevice::kAuto;
  int device_index = 0;  // "cuda:N"
  TrainPrecision precision = TrainPrecision::kAuto;
  bool cuda_graphs = false;  // capture the step's device work (CUDA only)
  CheckpointPolicy checkpoint;
  ValidationOptions validation;
  int64_t log_every_steps = 10;
  int max_consecutive_nonfinite = 10;
  int cpu_threads = 0;  // resolved: > 0
  // The ExperimentConfig (with overrides applied and defaults left implicit)
  // serialized as binary proto: stored in checkpoints.
  std::string config_bytes;
};

// Command-line overrides of the common fields; unset ones leave the file's value.
struct ConfigOverrides {
  std::optional<std::vector<std::string>> data_servers;  // --data-servers H:P[,H:P]
  std::optional<std::string> dataset;                    // --dataset
  std::optional<int64_t> steps;                          // --steps
  std::optional<std::string> device;                     // --device auto|cpu|cuda[:N]
  std::optional<uint64_t> seed;                          // --seed
};

// Reads `path` (JSON when it ends in .json or its first non-blank character is
// '{', text format otherwise), applies `overrides` and resolves the options.
// InvalidArgument "PATH: FIELD: why" (or "PATH:LINE:COL: why" for syntax
// errors and unknown fields); NotFound when the file is missing.
absl::StatusOr<TrainOptions> LoadExperimentConfig(const std::string& path,
                                                  const ConfigOverrides& overrides = {});

// Same, from the file's contents; `source` names it in errors (and gives the
// default run name).
absl::StatusOr<TrainOptions> ParseExperimentConfig(absl::string_view contents,
                                                   const std::string& source,
                                                   const ConfigOverrides& overrides = {});

// Options from the bytes a checkpoint stored (TrainOptions::config_bytes).
// DataLoss when the bytes do not parse; InvalidArgument when they no longer
// validate.
absl::StatusOr<TrainOptions> TrainOptionsFromConfigBytes(absl::string_view bytes,
                                                         const std::string& source);

// The stored config as text format, for logs and `info`.
absl::StatusOr<std::string> ConfigBytesToText(absl::string_view bytes);

// Whether a run configured by `current` may resume from a checkpoint whose
// config is `saved_bytes`: the model must be identical (FailedPrecondition
// naming the first differing field otherwise). Differences that change the
// data order (seed, dataset, split, window and batch sizes) are allowed but
// listed in the returned strings, since the resumed losses will then differ
// from an uninterrupted run's.
absl::StatusOr<std::vector<std::string>> CheckResumeCompatible(absl::string_view saved_bytes,
                                                               const TrainOptions& current);

// Parses "HOST:PORT[,HOST:PORT...]" (InvalidArgument naming the bad entry).
absl::StatusOr<std::vector<std::string>> ParseServerList(absl::string_view list);

// A few lines for `pianola-trainer info` and the run log: model, receptive
// field and context, parameter-free data request, optimizer and schedule.
std::string DescribeTrainOptions(const TrainOptions& options);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_EXPERIMENT_CONFIG_H_
