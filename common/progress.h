#ifndef PIANOLA_COMMON_PROGRESS_H_
#define PIANOLA_COMMON_PROGRESS_H_

// Progress line for long-running commands: "build: 12/40 files (30.0%) 3.2 files/s ETA 0:08".
//
// Update() may be called from many threads; it redraws at most every
// `min_interval` (and always on the last item). On a terminal the line is
// redrawn in place with '\r'; otherwise a full line is printed per redraw.
// Thread-safe.

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace pianola {

class Progress {
 public:
  // `what`: prefix ("build"); `unit`: plural noun for the rate ("files").
  Progress(std::string what, std::string unit, int64_t total,
           absl::Duration min_interval = absl::Seconds(1), std::FILE* out = stderr);

  // Adds `n` completed items and redraws if due. `note` is appended to the line.
  void Add(int64_t n = 1, const std::string& note = "");
  // Prints the final line (with a newline) if it has not been printed yet.
  void Finish();

  // "1:02:03" or "2:03" for a duration in seconds; "?" for negative/infinite.
  static std::string FormatEta(double seconds);

 private:
  void DrawLocked(const std::string& note) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string what_;
  const std::string unit_;
  const int64_t total_;
  const absl::Duration min_interval_;
  std::FILE* const out_;
  const bool tty_;
  const absl::Time start_;

  absl::Mutex mu_;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_draw_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pianola

#endif  // PIANOLA_COMMON_PROGRESS_H_
