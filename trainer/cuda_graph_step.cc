#include "trainer/cuda_graph_step.h"

#include <utility>

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include "absl/strings/str_cat.h"

namespace pianola {
namespace {

// `waiter` runs what is queued on it after what is queued on `producer` so far.
void WaitFor(const c10::cuda::CUDAStream& waiter, const c10::cuda::CUDAStream& producer) {
  if (waiter == producer) return;
  at::cuda::CUDAEvent event;
  event.record(producer);
  event.block(waiter);
}

}  // namespace

struct CudaGraphStep::Impl {
  Impl(torch::Device d, int warmup, c10::cuda::CUDAStream s)
      : device(d), warmup_calls(warmup), side(s) {}

  torch::Device device;
  int warmup_calls;
  c10::cuda::CUDAStream side;
  at::cuda::CUDAGraph graph;
  bool captured = false;
  bool capture_failed = false;
  int64_t calls = 0;
};

absl::StatusOr<std::unique_ptr<CudaGraphStep>> CudaGraphStep::Create(torch::Device device,
                                                                     int warmup_calls) {
  if (!device.is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA graphs need a CUDA device, not ", device.str()));
  }
  if (!torch::cuda::is_available()) {
    return absl::FailedPreconditionError("CUDA graphs: no CUDA device is available");
  }
  if (warmup_calls < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA graphs: warmup_calls ", warmup_calls, " < 1"));
  }
  const c10::DeviceIndex index = device.has_index() ? device.index() : 0;
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
  return std::unique_ptr<CudaGraphStep>(new CudaGraphStep(
      std::make_unique<Impl>(torch::Device(torch::kCUDA, index), warmup_calls, side)));
}

CudaGraphStep::CudaGraphStep(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaGraphStep::~CudaGraphStep() = default;

void CudaGraphStep::Run(const std::function<void()>& work) {
  Impl& s = *impl_;
  c10::cuda::CUDAGuard device_guard(s.device);
  const c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(s.device.index());
  WaitFor(s.side, caller);
  {
    c10::cuda::CUDAStreamGuard stream_guard(s.side);
    if (s.captured) {
      s.graph.replay();
    } else if (s.calls < s.warmup_calls) {
      work();
    } else {
      TORCH_CHECK(!s.capture_failed, "CUDA graphs: the capture failed in an earlier call");
      s.graph.capture_begin();
      try {
        work();
      } catch (...) {
        // Try to end the capture so the stream leaves capture mode; ending an
        // invalidated capture can fail too, leaving the allocator's capture
        // state behind, so this object refuses further calls.
        s.capture_failed = true;
        try {
          s.graph.capture_end();
        } catch (...) {
        }
        throw;
      }
      s.graph.capture_end();
      s.captured = true;
      s.graph.replay();  // the capture recorded the work without running it
    }
  }
  WaitFor(caller, s.side);
  ++s.calls;
}

bool CudaGraphStep::captured() const { return impl_->captured; }
int64_t CudaGraphStep::calls() const { return impl_->calls; }

}  // namespace pianola
