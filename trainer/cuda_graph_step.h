#ifndef PIANOLA_TRAINER_CUDA_GRAPH_STEP_H_
#define PIANOLA_TRAINER_CUDA_GRAPH_STEP_H_

// The device work of a training step through a CUDA graph: a few eager calls,
// one captured call, then replays of the capture, which launch the hundreds
// of small kernels of a forward and backward pass as one graph (what
// torch.cuda.graph / make_graphed_callables do for a PyTorch user).
//
//   CudaGraphStep graph(device);
//   graph.Run([&] {               // every step
//     loss = model->Loss(static_batch)->total;
//     loss.backward();            // gradients: see below
//     norm = ClipGradNormTensor(params, max_norm);
//   });
//   loss.item<double>() ...       // read after Run
//
// Rules for `work`, as for any CUDA graph:
// - It reads its inputs from tensors whose storage stays put (copy each new
//   batch into them before Run) and must not synchronize with the host
//   (.item(), printing a tensor, shape-dependent-on-values ops), allocate
//   host tensors or move data between host and device.
// - Tensors it creates during the capturing call live in the graph's private
//   memory pool; each replay rewrites them in place. Callers keep references
//   to the ones they read (the loss, the norm). Gradients follow the PyTorch
//   whole-network recipe: set them to None (zero_grad) before every eager
//   call and before the capture, so backward allocates them inside the
//   capture; after it, never zero_grad again (a replay overwrites them) and
//   never replace parameters' .grad.
// - Its random draws use the device's default CUDA generator (registered
//   with the graph automatically, so replays draw fresh numbers).
// - Shapes and the sequence of operations must not change between calls.
//   Autocast's weight-cast cache must be off inside `work` (a cached cast
//   would be captured once and never refreshed).
//
// All calls run on a side stream of the device (capture cannot use the
// default stream); Run orders it after the caller's current stream on entry
// and the current stream after it on return, so eager work before and after
// (batch copies, the optimizer step) needs no extra synchronization.
//
// Only meaningful on CUDA: Create refuses other devices. Not thread-safe.

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include <torch/types.h>

namespace pianola {

class CudaGraphStep {
 public:
  // Eager calls before the capture: cuDNN's autotuning (benchmark mode),
  // cuBLAS workspaces and the autograd engine's first-use setup must happen
  // outside it. PyTorch's recipe uses 3.
  static constexpr int kDefaultWarmupCalls = 3;

  // InvalidArgument for a non-CUDA device; FailedPrecondition when CUDA is
  // not available.
  static absl::StatusOr<std::unique_ptr<CudaGraphStep>> Create(
      torch::Device device, int warmup_calls = kDefaultWarmupCalls);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  // Runs `work` (eager, captured then replayed, or replayed: see above).
  // Errors raised by `work` or by the capture propagate as c10::Error; after
  // a failed capture every later call throws (start over with a new object,
  // or train eagerly).
  void Run(const std::function<void()>& work);

  // True once the graph is captured (Run replays from then on).
  bool captured() const;
  // Calls of Run so far.
  int64_t calls() const;

 private:
  struct Impl;
  explicit CudaGraphStep(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_CUDA_GRAPH_STEP_H_
