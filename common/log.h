#ifndef PIANOLA_COMMON_LOG_H_
#define PIANOLA_COMMON_LOG_H_

// One-line structured event log for servers and tools.
//
// Each call writes one line to stderr: "2026-11-24T07:30:00.123Z I component] message".
// Thread-safe: a line is written with a single fwrite under a mutex, so lines
// from different threads never interleave. Debian's Abseil has no absl/log.

#include "absl/strings/string_view.h"

#include "absl/strings/str_cat.h"

namespace pianola {

enum class LogLevel { kInfo, kWarning, kError };

void LogLine(LogLevel level, absl::string_view component, absl::string_view message);

template <typename... Args>
void LogInfo(absl::string_view component, const Args&... args) {
  LogLine(LogLevel::kInfo, component, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(absl::string_view component, const Args&... args) {
  LogLine(LogLevel::kWarning, component, absl::StrCat(args...));
}
template <typename... Args>
void LogError(absl::string_view component, const Args&... args) {
  LogLine(LogLevel::kError, component, absl::StrCat(args...));
}

}  // namespace pianola

#endif  // PIANOLA_COMMON_LOG_H_
