#ifndef PIANOLA_TRAINER_AUTOCAST_SCOPE_H_
#define PIANOLA_TRAINER_AUTOCAST_SCOPE_H_

// bf16 autocast on CUDA for a C++ scope, as `with torch.autocast("cuda",
// dtype=torch.bfloat16, cache_enabled=...)` in Python; a no-op when disabled.
// `cache_enabled`: autocast keeps the bf16 casts of fp32 weights for the
// outermost scope's lifetime; a CUDA graph capture needs it off
// (trainer/cuda_graph_step.h). Restores the previous state on exit.

#include <ATen/autocast_mode.h>

namespace pianola {

class AutocastScope {
 public:
  explicit AutocastScope(bool enabled, bool cache_enabled = true) : enabled_(enabled) {
    if (!enabled_) return;
    previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
    previous_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    previous_cache_ = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(cache_enabled);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_cache_enabled(previous_cache_);
    at::autocast::set_autocast_dtype(at::kCUDA, previous_dtype_);
    at::autocast::set_autocast_enabled(at::kCUDA, previous_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
  bool previous_cache_ = true;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_AUTOCAST_SCOPE_H_
