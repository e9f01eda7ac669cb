#include "dataserver/npy.h"

#include <bit>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace pianola {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;            // numpy.lib.format.ARRAY_ALIGN
constexpr size_t kGrowthAxisDigits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big);

void AppendFloatsLe(std::string* out, absl::Span<const float> data) {
  const size_t at = out->size();
  out->resize(at + data.size() * 4);
  char* dst = out->data() + at;
  if constexpr (std::endian::native == std::endian::little) {
    if (!data.empty()) std::memcpy(dst, data.data(), data.size() * 4);
  } else {
    for (size_t i = 0; i < data.size(); ++i) {
      const uint32_t v = std::bit_cast<uint32_t>(data[i]);
      for (int b = 0; b < 4; ++b) dst[4 * i + b] = static_cast<char>((v >> (8 * b)) & 0xff);
    }
  }
}

absl::string_view Trim(absl::string_view s) { return absl::StripAsciiWhitespace(s); }

// Finds the value text of 'key' in a header dict like {'descr': '<f4', ...}.
bool FindValue(absl::string_view header, absl::string_view key, absl::string_view* value) {
  const std::string quoted = absl::StrCat("'", key, "':");
  const size_t at = header.find(quoted);
  if (at == absl::string_view::npos) return false;
  absl::string_view rest = header.substr(at + quoted.size());
  rest = absl::StripLeadingAsciiWhitespace(rest);
  size_t stop;
  if (!rest.empty() && rest[0] == '(') {
    stop = rest.find(')');
    if (stop == absl::string_view::npos) return false;
    ++stop;
  } else {
    stop = rest.find_first_of(",}");
    if (stop == absl::string_view::npos) return false;
  }
  *value = Trim(rest.substr(0, stop));
  return true;
}

}  // namespace

std::string EncodeNpyFloat32(absl::Span<const float> data, absl::Span<const int64_t> shape) {
  std::string shape_text;
  if (shape.size() == 1) {
    shape_text = absl::StrCat("(", shape[0], ",)");
  } else {
    shape_text = absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
  }
  std::string header =
      absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': ", shape_text, ", }");
  if (!shape.empty()) {
    const size_t digits = absl::StrCat(shape[0]).size();
    if (digits < kGrowthAxisDigits) header.append(kGrowthAxisDigits - digits, ' ');
  }
  const size_t unpadded = kMagicLen + 2 + 2 + header.size() + 1;
  header.append((kAlign - unpadded % kAlign) % kAlign, ' ');
  header.push_back('\n');

  std::string out;
  out.reserve(kMagicLen + 4 + header.size() + data.size() * 4);
  out.append(kMagic, kMagicLen);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out.append(header);
  AppendFloatsLe(&out, data);
  return out;
}

absl::Status WriteNpyFloat32(const std::string& path, absl::Span<const float> data,
                             absl::Span<const int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  if (count != static_cast<int64_t>(data.size())) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": shape (", absl::StrJoin(shape, ", "),
                                                   ") does not hold ", data.size(), " values"));
  }
  return WriteFileAtomic(path, EncodeNpyFloat32(data, shape));
}

absl::StatusOr<NpyFloat32Array> ParseNpyFloat32(absl::string_view bytes, absl::string_view name) {
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(name, ": ", why));
  };
  if (bytes.size() < kMagicLen + 4 || bytes.substr(0, kMagicLen) != absl::string_view(kMagic, kMagicLen)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not a .npy file (no \\x93NUMPY magic)"));
  }
  const auto* u = reinterpret_cast<const uint8_t*>(bytes.data());
  const int major = u[6];
  size_t header_len, header_at;
  if (major == 1) {
    header_len = u[8] | (size_t{u[9]} << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return corrupt("header length truncated");
    header_len = u[8] | (size_t{u[9]} << 8) | (size_t{u[10]} << 16) | (size_t{u[11]} << 24);
    header_at = 12;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(name, ": unsupported .npy version ", major));
  }
  if (header_len > bytes.size() - header_at) return corrupt("header truncated");
  const absl::string_view header = bytes.substr(header_at, header_len);
  absl::string_view descr, order, shape_text;
  if (!FindValue(header, "descr", &descr) || !FindValue(header, "fortran_order", &order) ||
      !FindValue(header, "shape", &shape_text)) {
    return corrupt(absl::StrCat("header lacks descr/fortran_order/shape: ", header));
  }
  if (descr != "'<f4'") {
    return absl::InvalidArgumentError(absl::StrCat(name, ": dtype ", descr, ", expected '<f4'"));
  }
  if (order != "False") {
    return absl::InvalidArgumentError(absl::StrCat(name, ": Fortran order is not supported"));
  }
  NpyFloat32Array out;
  absl::string_view inner = shape_text.substr(1, shape_text.size() - 2);
  uint64_t count = 1;
  for (absl::string_view part : absl::StrSplit(inner, ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(Trim(part), &d) || d < 0) {
      return corrupt(absl::StrCat("bad shape ", shape_text));
    }
    out.shape.push_back(d);
    if (d != 0 && count > (bytes.size() / 4) / static_cast<uint64_t>(d) + 1) {
      return corrupt(absl::StrCat("shape ", shape_text, " is larger than the file"));
    }
    count *= static_cast<uint64_t>(d);
  }
  const size_t data_at = header_at + header_len;
  if (bytes.size() - data_at != count * 4) {
    return corrupt(absl::StrCat("shape ", shape_text, " needs ", count * 4, " data bytes, file has ",
                                bytes.size() - data_at));
  }
  out.data.resize(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* p = u + data_at + 4 * i;
    out.data[i] = std::bit_cast<float>(uint32_t{p[0]} | (uint32_t{p[1]} << 8) |
                                       (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24));
  }
  return out;
}

}  // namespace pianola
