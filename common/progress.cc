#include "common/progress.h"

#include <unistd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pianola {

Progress::Progress(std::string what, std::string unit, int64_t total, absl::Duration min_interval,
                   std::FILE* out)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      min_interval_(min_interval),
      out_(out),
      tty_(isatty(fileno(out)) != 0),
      start_(absl::Now()) {}

std::string Progress::FormatEta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

void Progress::Add(int64_t n, const std::string& note) {
  absl::MutexLock lock(&mu_);
  done_ += n;
  const absl::Time now = absl::Now();
  if (done_ >= total_ || now - last_draw_ >= min_interval_) {
    last_draw_ = now;
    DrawLocked(note);
  }
}

void Progress::Finish() {
  absl::MutexLock lock(&mu_);
  if (!finished_) DrawLocked("");
}

void Progress::DrawLocked(const std::string& note) {
  if (finished_) return;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  const double rate = elapsed > 0 ? done_ / elapsed : 0;
  const double eta = rate > 0 ? (total_ - done_) / rate : -1;
  const double pct = total_ > 0 ? 100.0 * done_ / total_ : 100.0;
  const bool last = done_ >= total_;
  std::string line = absl::StrFormat("%s: %d/%d %s (%.1f%%) %.1f %s/s ETA %s", what_, done_, total_,
                                     unit_, pct, rate, unit_, FormatEta(last ? 0 : eta));
  if (!note.empty()) absl::StrAppend(&line, " ", note);
  if (tty_) {
    absl::FPrintF(out_, "\r%s\033[K%s", line, last ? "\n" : "");
  } else {
    absl::FPrintF(out_, "%s\n", line);
  }
  std::fflush(out_);
  if (last) finished_ = true;
}

}  // namespace pianola
