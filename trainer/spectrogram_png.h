#ifndef PIANOLA_TRAINER_SPECTROGRAM_PNG_H_
#define PIANOLA_TRAINER_SPECTROGRAM_PNG_H_

// Spectrogram pictures of audio, written as PNG files: what `pianola-trainer
// transfer` leaves beside its WAV so a person can see at a glance whether the
// rendering has the reference's spectral colour, its attacks and its noise.
//
// The picture: time runs left to right (one column per STFT frame), frequency
// bottom (0 Hz) to top (Nyquist, one row per FFT bin), colour the
// log-magnitude in dB relative to full scale (a full-scale sine is 0 dBFS)
// through the viridis colour map: dark violet at -dynamic_range_db and below,
// yellow at 0 dBFS and above. Frames are centred (zero padding of n_fft / 2
// at both ends), periodic Hann window. The dB scale is absolute, not relative
// to each picture's peak, so pictures of the output and of the reference can
// be compared colour for colour.
//
// PNG: 8-bit RGB, not interlaced, one IDAT chunk compressed with zlib (filter
// type 0 on every row), CRCs from zlib's crc32. Written here because Debian's
// libpng would be one more dependency for ~60 lines of framing.
//
// Torch-free; free functions over immutable inputs; thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace pianola {

struct SpectrogramOptions {
  // FFT size (and Hann window length); a power of two in [16, 65536]. The
  // picture is n_fft / 2 + 1 pixels tall.
  int n_fft = 1024;
  // Frame hop in samples; 0 picks the smallest hop >= n_fft / 16 that keeps
  // the picture at most max_width columns wide.
  int hop = 0;
  int max_width = 2400;
  // Colours span [-dynamic_range_db, 0] dBFS.
  double dynamic_range_db = 90.0;
};

// 8-bit RGB pixels, row-major from the top row, 3 bytes per pixel.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
};

// The viridis colour map at t in [0, 1] (clamped), as R, G, B.
void ViridisColour(double t, uint8_t rgb[3]);

// The spectrogram picture of `audio` (nominal range [-1, 1]) at `sample_rate`.
// InvalidArgument for empty audio or bad options (naming the field);
// ResourceExhausted for pictures over 2^28 pixels.
absl::StatusOr<RgbImage> RenderSpectrogram(absl::Span<const float> audio, int sample_rate,
                                           const SpectrogramOptions& options = {});

// The bytes of a PNG file holding `image`. InvalidArgument for an image whose
// sizes and pixel count disagree.
absl::StatusOr<std::string> EncodePng(const RgbImage& image);

// RenderSpectrogram + EncodePng, written to `path` atomically. Errors name `path`.
absl::Status WriteSpectrogramPng(const std::string& path, absl::Span<const float> audio,
                                 int sample_rate, const SpectrogramOptions& options = {});

}  // namespace pianola

#endif  // PIANOLA_TRAINER_SPECTROGRAM_PNG_H_
