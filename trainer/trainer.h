#ifndef PIANOLA_TRAINER_TRAINER_H_
#define PIANOLA_TRAINER_TRAINER_H_

// The standalone training loop (`pianola-trainer train`): one process, one
// device, no coordinator.
//
//   data client (prefetching thread) -> BatchData -> tensors on the device ->
//   forward -> loss -> backward -> clip -> optimizer step -> EMA
//
// per step, with the learning rate from the schedule; validation on a fixed
// set of held-out windows every N steps; checkpoints under OUT/checkpoints;
// metrics in OUT/metrics.jsonl (one JSON object per line: step, name, value,
// time); a progress line (step, loss, rate, ETA) on stderr.
//
// Devices: CPU or CUDA, chosen by TrainOptions::device (auto: CUDA when a GPU
// is visible). On CUDA, TF32 matmuls/convolutions and (precision auto|bf16)
// bf16 autocast for the forward pass. On the CPU the run is deterministic for
// a fixed seed and thread count: deterministic algorithms, a fixed intra-op
// pool, every random draw from seeded generators whose state checkpoints
// carry. Resuming (RunOptions::resume, or automatically when OUT already has
// checkpoints) restores model, optimizer, EMA, generators, step and the data
// cursor, so the resumed losses equal the uninterrupted run's bit for bit.
//
// A non-finite loss or gradient norm skips the step (no update), is counted
// (metric train/nonfinite_steps) and logged; more than
// max_consecutive_nonfinite in a row stop the run with FailedPrecondition.
//
// This header is torch-free (the implementation is not), so the command-line
// tool compiles without LibTorch's headers. Train() is not reentrant within a
// process: it sets process-wide LibTorch state (threads, determinism, seeds).

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/experiment_config.h"

namespace pianola {

// What one step did (also written, averaged, to metrics.jsonl).
struct StepRecord {
  int64_t step = 0;              // 1-based: the number of steps done after this one
  double loss = 0;               // the step's loss (NaN/Inf when skipped for it)
  double grad_norm = 0;          // global L2 norm before clipping
  double lr = 0;
  bool skipped = false;          // non-finite loss or gradient: no update
  double samples_per_second = 0; // target audio samples of this step / its wall time
  double data_wait_share = 0;    // share of the step's wall time spent waiting for data
};

struct ValidationRecord {
  int64_t step = 0;
  double loss = 0;      // mean loss over the fixed validation windows
  double ema_loss = 0;  // the same with the EMA weights (NaN without EMA)
  int64_t windows = 0;
};

struct RunOptions {
  std::string out_dir;  // OUT; created if missing
  // Require a checkpoint to resume from (FailedPrecondition when OUT has
  // none). Without it a run still resumes when OUT has checkpoints.
  bool resume = false;
  // Stop after this step (checkpointing it) even though TrainOptions::steps
  // is larger, as a preempted job would; 0: run to the end. The schedule
  // still follows TrainOptions::steps, so a resumed run continues exactly.
  int64_t stop_at_step = 0;
  // Draw the progress line on stderr.
  bool progress = true;
  // When it becomes true (e.g. from a SIGTERM handler), the run checkpoints
  // after the current step and returns (TrainSummary::stopped_early).
  const std::atomic<bool>* stop = nullptr;

  // Observers, called on the training thread.
  std::function<void(const StepRecord&)> on_step;
  std::function<void(const ValidationRecord&)> on_validation;
  // Test seam: when it returns true for a step, that step's loss is replaced
  // by NaN before the finiteness check (exercises the skip-and-count path).
  std::function<bool(int64_t step)> inject_nonfinite;
};

struct TrainSummary {
  int64_t start_step = 0;  // 0, or the step resumed from
  int64_t end_step = 0;
  std::string resumed_from;     // checkpoint path, empty for a fresh run
  std::string last_checkpoint;  // path of the last checkpoint written
  int64_t nonfinite_steps = 0;  // skipped steps over the whole run (across resumes)
  double last_loss = 0;         // mean finite training loss of the last logging interval
  std::vector<ValidationRecord> validations;
  std::string device;           // "cpu", "cuda:0"
  bool stopped_early = false;   // RunOptions::stop or stop_at_step ended it before `steps`
};

// Runs (or resumes) training. Errors: InvalidArgument for options that do not
// fit the data (sample rate, empty split), FailedPrecondition for an
// incompatible checkpoint or repeated non-finite losses, Unavailable when the
// data servers cannot be reached, DataLoss for a corrupt checkpoint, Internal
// for LibTorch errors (with their message).
absl::StatusOr<TrainSummary> Train(const TrainOptions& options, const RunOptions& run);

// The model's parameter count (builds it on the CPU).
absl::StatusOr<int64_t> CountModelParameters(const ModelConfig& config);

// The device Train() would use for `options` ("cpu", "cuda:0"); FailedPrecondition
// when CUDA is asked for and none is visible.
absl::StatusOr<std::string> ResolveTrainDevice(const TrainOptions& options);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_TRAINER_H_
