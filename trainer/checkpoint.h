#ifndef PIANOLA_TRAINER_CHECKPOINT_H_
#define PIANOLA_TRAINER_CHECKPOINT_H_

// Saving and restoring a training run's whole state in one checkpoint file:
// model parameters and buffers, optimizer state (Adam moments and step
// counts), the EMA weights, the random generators (CPU, and every CUDA
// device's where CUDA is present), the step, the data client's cursor and
// the experiment config. The tensors go into a LibTorch archive (the
// payload); trainer/checkpoint_file.h frames it with the step, cursor, config
// and a checksum and writes it atomically.
//
// Restoring into a freshly built model and optimizer of the same config gives
// bit-identical state: a CPU run resumed from a checkpoint continues with
// exactly the losses the uninterrupted run would have had.
//
// LibTorch throws c10::Error; these functions catch it and return Status
// (DataLoss for payloads whose tensors do not fit the model, naming the file).
// Not thread-safe: the caller owns the model and optimizer.

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/checkpoint_file.h"

namespace pianola {

// The parts of a run a checkpoint captures, borrowed from the training loop.
struct TrainingStateRefs {
  torch::nn::Module* model = nullptr;          // required
  // Required to save; may be null to load (inference: `transfer` restores the
  // model only).
  torch::optim::Optimizer* optimizer = nullptr;
  std::vector<torch::Tensor>* ema = nullptr;   // EMA of model->parameters(); may be null
  // Counters the run keeps across restarts (e.g. non-finite steps so far).
  std::vector<int64_t>* counters = nullptr;    // may be null
};

// Serializes the tensors (and the generators' states) into a payload.
absl::StatusOr<std::string> EncodeTrainingPayload(const TrainingStateRefs& state);

// Restores a payload into `state`, moving tensors to `device`; `source` names
// the checkpoint in errors. Restores the generators too.
absl::Status DecodeTrainingPayload(const std::string& payload, const std::string& source,
                                   torch::Device device, const TrainingStateRefs& state);

// Encodes `state`, frames it with `meta` (step, cursor, config; payload
// ignored) and commits it to OUT/checkpoints with keep_last retention.
// Returns the checkpoint's path.
absl::StatusOr<std::string> SaveCheckpoint(const std::string& out_dir, int keep_last,
                                           CheckpointContents meta,
                                           const TrainingStateRefs& state);

// Reads and verifies `path` and restores its tensors into `state`. Returns
// the framing (step, cursor, config) with the payload cleared.
absl::StatusOr<CheckpointContents> LoadCheckpoint(const std::string& path, torch::Device device,
                                                  const TrainingStateRefs& state);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_CHECKPOINT_H_
