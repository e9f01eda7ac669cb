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

// OK when `path` is a regular file (after symbolic links); NotFound when it
// is missing, InvalidArgument naming what it is otherwise (a directory, a
// FIFO: reading one would wait for a writer). For readers that open files
// themselves (libsndfile); ReadFile checks the same.
absl::Status RequireRegularFile(const std::string& path);

// Writes `contents` to `path` atomically: a temporary file beside it, fsync,
// rename, fsync of the directory. Readers see the old file or the new one,
// never a partial one. A symbolic link at `path` is written through (the file
// it points to is replaced, the link stays), as `cp` and shell redirection
// do. Refuses what WritableFileTarget refuses.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents);

// Where a write to `path` lands: `path`, or the file a symbolic link there
// points to. For checking an output path before the work that makes its
// contents. InvalidArgument when `path` is empty or ends in '/', is a dangling
// link, or names an existing directory, device, FIFO or socket (a rename
// would replace it); NotFound when its directory does not exist;
// PermissionDenied when that directory is not writable. Errors name `path`.
absl::StatusOr<std::string> WritableFileTarget(const std::string& path);

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
