#include "trainer/device.h"

#include "absl/strings/str_cat.h"

namespace pianola {

std::string DeviceName(const c10::Device& device) {
  if (!device.is_cuda()) return "cpu";
  return absl::StrCat("cuda:", device.has_index() ? static_cast<int>(device.index()) : 0);
}

}  // namespace pianola
