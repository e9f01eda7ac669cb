#ifndef PIANOLA_COMMON_FILE_UTIL_H_
#define PIANOLA_COMMON_FILE_UTIL_H_

// Whole-file reads and crash-safe writes.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pianola {

// Reads a whole file. Refuses files larger than `max_bytes` (ResourceExhausted)
// so a hostile path cannot make us allocate without bound. Errors name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path, int64_t max_bytes = int64_t{1} << 32);

// Writes `contents` to `path` atomically: a temporary file beside it, fsync,
// rename, fsync of the directory. Readers see the old file or the new one,
// never a partial one.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents);

// Removes a file or a directory tree (like rm -rf); a missing path is OK.
// Use this, not std::filesystem::remove_all, in anything that may link
// LibTorch: the torch 2.11 wheel's libtorch.so exports its own copy of
// std::filesystem::remove_all, which interposes on libstdc++'s and crashes
// on non-empty directories.
absl::Status RemoveTree(const std::string& path);

// Creates a directory and its parents (like mkdir -p).
absl::Status MakeDirs(const std::string& path);

}  // namespace pianola

#endif  // PIANOLA_COMMON_FILE_UTIL_H_
