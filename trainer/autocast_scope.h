#ifndef PIANOLA_TRAINER_AUTOCAST_SCOPE_H_
#define PIANOLA_TRAINER_AUTOCAST_SCOPE_H_

// bf16 autocast on CUDA for a C++ scope, as `with torch.autocast("cuda",
// dtype=torch.bfloat16, cache_enabled=...)` in Python; a no-op when disabled.
// `cache_enabled`: autocast keeps the bf16 casts of fp32 weights for the
// outermost scope's lifetime; a CUDA graph capture needs it off
// (trainer/cuda_graph_step.h). Restores the previous state on exit.
// `device` kCPU is CPU autocast: the trainer never uses it, tests do, to run
// the model's mixed-precision path (the torch composites the CUDA run takes)
// on a machine without a GPU.

#include <ATen/autocast_mode.h>

namespace pianola {

class AutocastScope {
 public:
  explicit AutocastScope(bool enabled, bool cache_enabled = true,
                         at::DeviceType device = at::kCUDA)
      : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(device_);
    previous_dtype_ = at::autocast::get_autocast_dtype(device_);
    previous_cache_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(cache_enabled);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_cache_enabled(previous_cache_);
    at::autocast::set_autocast_dtype(device_, previous_dtype_);
    at::autocast::set_autocast_enabled(device_, previous_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  at::DeviceType device_;
  bool previous_ = false;
  bool previous_cache_ = true;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_AUTOCAST_SCOPE_H_
