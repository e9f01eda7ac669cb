#ifndef PIANOLA_DATASERVER_NPY_H_
#define PIANOLA_DATASERVER_NPY_H_

// NumPy .npy files (format version 1.0) of float32, little-endian, C order:
// what `numpy.load` reads without options. Used for piano rolls and other
// arrays handed to Python tools.
//
// The writer produces the same bytes as numpy.save (numpy >= 1.24: header
// padded with spare room for the first axis, then to a 64-byte boundary).
// The reader accepts any v1.0/v2.0 header numpy writes for '<f4' C-order
// arrays, and checks every size against the input.
//
// Thread-safe: free functions.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace pianola {

// The whole .npy file for `data` of `shape` (product of shape == data.size()).
std::string EncodeNpyFloat32(absl::Span<const float> data, absl::Span<const int64_t> shape);

// Writes EncodeNpyFloat32(...) to `path` atomically.
absl::Status WriteNpyFloat32(const std::string& path, absl::Span<const float> data,
                             absl::Span<const int64_t> shape);

struct NpyFloat32Array {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order
};

// Parses a .npy file holding a '<f4' C-order array. InvalidArgument for other
// dtypes/orders, DataLoss for malformed or truncated input; errors start with `name`.
absl::StatusOr<NpyFloat32Array> ParseNpyFloat32(absl::string_view bytes, absl::string_view name);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_NPY_H_
