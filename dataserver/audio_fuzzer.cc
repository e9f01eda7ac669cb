// libFuzzer target: the in-memory audio decoder (libsndfile virtual I/O, mono
// downmix, soxr resampling, int16 conversion) on arbitrary bytes. Any status is
// fine; crashes, leaks, sanitizer reports and unbounded allocations are not.
// Seed corpus: tests/data/audio/ (see generate.py there).

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "dataserver/audio_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pianola::AudioDecodeOptions options;
  options.target_rate = 16000;
  options.max_seconds = 30;  // keeps each input fast; the limit itself is exercised too
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto decoded = pianola::DecodeAudio(bytes, "fuzz-input", options);
  if (decoded.ok()) {
    // Exercise the encoder on whatever came out.
    (void)pianola::EncodeWav(decoded->samples, decoded->sample_rate);
  }
  return 0;
}
