#include "trainer/spectrogram_png.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

// matplotlib's viridis at t = 0, 1/8, ..., 1 (linear interpolation between
// them stays within a few levels of the full 256-entry table).
constexpr uint8_t kViridis[9][3] = {
    {68, 1, 84},    {72, 40, 120},  {62, 73, 137},  {49, 104, 142}, {38, 130, 142},
    {31, 158, 137}, {53, 183, 121}, {110, 206, 88}, {253, 231, 37},
};

// In-place iterative radix-2 FFT of size n (a power of two).
class Fft {
 public:
  explicit Fft(int n) : n_(n), twiddle_(n / 2), reversed_(n) {
    for (int k = 0; k < n / 2; ++k) {
      twiddle_[k] = std::polar(1.0, -2.0 * std::numbers::pi * k / n);
    }
    int bits = 0;
    while ((1 << bits) < n) ++bits;
    for (int i = 0; i < n; ++i) {
      int r = 0;
      for (int b = 0; b < bits; ++b) r |= ((i >> b) & 1) << (bits - 1 - b);
      reversed_[i] = r;
    }
  }

  void Transform(std::vector<std::complex<double>>& x) const {
    for (int i = 0; i < n_; ++i) {
      if (i < reversed_[i]) std::swap(x[i], x[reversed_[i]]);
    }
    for (int len = 2; len <= n_; len <<= 1) {
      const int half = len / 2, stride = n_ / len;
      for (int start = 0; start < n_; start += len) {
        for (int k = 0; k < half; ++k) {
          const std::complex<double> t = twiddle_[k * stride] * x[start + k + half];
          x[start + k + half] = x[start + k] - t;
          x[start + k] += t;
        }
      }
    }
  }

 private:
  int n_;
  std::vector<std::complex<double>> twiddle_;
  std::vector<int> reversed_;
};

void AppendBigEndian32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void AppendChunk(std::string& out, const char type[4], absl::string_view data) {
  AppendBigEndian32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.append(type, 4);
  out.append(data.data(), data.size());
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + type_at), 4 + data.size());
  AppendBigEndian32(out, static_cast<uint32_t>(crc));
}

}  // namespace

void ViridisColour(double t, uint8_t rgb[3]) {
  if (!(t > 0)) t = 0;  // also NaN
  if (t > 1) t = 1;
  const double pos = t * 8;
  const int i = std::min(7, static_cast<int>(pos));
  const double f = pos - i;
  for (int c = 0; c < 3; ++c) {
    const double v = kViridis[i][c] + f * (kViridis[i + 1][c] - kViridis[i][c]);
    rgb[c] = static_cast<uint8_t>(std::lround(v));
  }
}

absl::StatusOr<RgbImage> RenderSpectrogram(absl::Span<const float> audio, int sample_rate,
                                           const SpectrogramOptions& options) {
  const int n = options.n_fft;
  if (n < 16 || n > 65536 || (n & (n - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spectrogram n_fft: ", n, " is not a power of two in [16, 65536]"));
  }
  if (options.hop < 0) {
    return absl::InvalidArgumentError(absl::StrCat("spectrogram hop: ", options.hop, " < 0"));
  }
  if (options.max_width < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("spectrogram max_width: ", options.max_width, " < 1"));
  }
  if (!(options.dynamic_range_db > 0)) {
    return absl::InvalidArgumentError("spectrogram dynamic_range_db: must be positive");
  }
  if (sample_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("spectrogram sample rate: ", sample_rate));
  }
  if (audio.empty()) return absl::InvalidArgumentError("spectrogram: no audio");
  const int64_t samples = static_cast<int64_t>(audio.size());
  int64_t hop = options.hop;
  if (hop == 0) {
    hop = std::max<int64_t>(n / 16, (samples + options.max_width - 1) / options.max_width);
  }
  const int64_t width = 1 + samples / hop;
  const int height = n / 2 + 1;
  if (width * height > (int64_t{1} << 28)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "spectrogram: ", width, " x ", height, " pixels; raise hop or lower n_fft"));
  }

  std::vector<double> window(n);
  double window_sum = 0;
  for (int i = 0; i < n; ++i) {
    window[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / n);  // periodic Hann
    window_sum += window[i];
  }
  // |X| of a full-scale sine is window_sum / 2: that is 0 dBFS.
  const double reference = window_sum / 2;
  const Fft fft(n);
  std::vector<std::complex<double>> frame(n);

  RgbImage image;
  image.width = static_cast<int>(width);
  image.height = height;
  image.rgb.assign(static_cast<size_t>(width) * height * 3, 0);
  for (int64_t col = 0; col < width; ++col) {
    const int64_t first = col * hop - n / 2;
    for (int i = 0; i < n; ++i) {
      const int64_t s = first + i;
      const double x = s >= 0 && s < samples ? audio[s] : 0.0;
      frame[i] = {x * window[i], 0.0};
    }
    fft.Transform(frame);
    for (int bin = 0; bin < height; ++bin) {
      const double magnitude = std::abs(frame[bin]) / reference;
      const double db = 20.0 * std::log10(magnitude + 1e-12);
      const double t = (db + options.dynamic_range_db) / options.dynamic_range_db;
      const int row = height - 1 - bin;  // low frequencies at the bottom
      ViridisColour(t, &image.rgb[(static_cast<size_t>(row) * width + col) * 3]);
    }
  }
  return image;
}

absl::StatusOr<std::string> EncodePng(const RgbImage& image) {
  if (image.width < 1 || image.height < 1 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return absl::InvalidArgumentError(absl::StrCat("PNG: a ", image.width, " x ", image.height,
                                                   " image with ", image.rgb.size(),
                                                   " bytes of RGB"));
  }
  const size_t row_bytes = static_cast<size_t>(image.width) * 3;
  std::string raw;
  raw.reserve((row_bytes + 1) * image.height);
  for (int y = 0; y < image.height; ++y) {
    raw.push_back('\0');  // filter type 0 (None)
    raw.append(reinterpret_cast<const char*>(image.rgb.data() + y * row_bytes), row_bytes);
  }
  uLongf compressed_size = compressBound(raw.size());
  std::string compressed(compressed_size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(compressed.data()), &compressed_size,
                           reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6);
  if (rc != Z_OK) return absl::InternalError(absl::StrCat("PNG: zlib compress2 failed: ", rc));
  compressed.resize(compressed_size);

  std::string ihdr;
  AppendBigEndian32(ihdr, static_cast<uint32_t>(image.width));
  AppendBigEndian32(ihdr, static_cast<uint32_t>(image.height));
  ihdr.push_back(8);     // bit depth
  ihdr.push_back(2);     // colour type: RGB
  ihdr.push_back(0);     // compression: deflate
  ihdr.push_back(0);     // filter method 0
  ihdr.push_back(0);     // no interlace

  std::string png("\x89PNG\r\n\x1a\n", 8);
  AppendChunk(png, "IHDR", ihdr);
  AppendChunk(png, "IDAT", compressed);
  AppendChunk(png, "IEND", "");
  return png;
}

absl::Status WriteSpectrogramPng(const std::string& path, absl::Span<const float> audio,
                                 int sample_rate, const SpectrogramOptions& options) {
  absl::StatusOr<RgbImage> image = RenderSpectrogram(audio, sample_rate, options);
  if (!image.ok()) return Annotate(image.status(), path);
  absl::StatusOr<std::string> png = EncodePng(*image);
  if (!png.ok()) return Annotate(png.status(), path);
  return WriteFileAtomic(path, *png);
}

}  // namespace pianola
