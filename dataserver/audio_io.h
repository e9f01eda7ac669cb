#ifndef PIANOLA_DATASERVER_AUDIO_IO_H_
#define PIANOLA_DATASERVER_AUDIO_IO_H_

// Audio files in and out: decode anything libsndfile reads (WAV, FLAC,
// OGG/Vorbis, AIFF, ...) from a path or from memory, downmix to mono,
// resample with soxr (SOXR_HQ) to a target rate, and return int16 samples;
// write int16 mono WAV files atomically.
//
// Decoding streams: the file is read in blocks, downmixed and resampled as it
// goes, so memory holds the int16 output and one block, never the whole
// multi-channel float signal.
//
// Float -> int16 uses x * 32768, rounded to nearest, clipped to
// [-32768, 32767]: int16 PCM read back at its own rate is returned unchanged.
//
// Bad input (not audio, truncated, zero or absurd channel counts, sample rates
// or lengths) gives InvalidArgument / DataLoss / ResourceExhausted errors whose
// message starts with the file name. Nothing here crashes on hostile bytes
// (audio_fuzzer feeds DecodeAudio).
//
// Thread-safe: free functions without shared state.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace pianola {

struct AudioDecodeOptions {
  // Output sample rate in Hz; 0 keeps the source rate.
  int target_rate = 16000;
  // Refuse sources longer than this (ResourceExhausted): a header claiming
  // days of audio must not make us allocate for it. Default: 6 hours.
  double max_seconds = 6 * 3600.0;
  // Refuse more channels than this (InvalidArgument).
  int max_channels = 64;
};

// What a file's header says.
struct AudioInfo {
  int sample_rate = 0;
  int channels = 0;
  int64_t frames = 0;
  std::string format;  // e.g. "WAV (Microsoft) / Signed 16 bit PCM"
  double seconds() const { return sample_rate > 0 ? static_cast<double>(frames) / sample_rate : 0; }
};

struct DecodedAudio {
  int sample_rate = 0;            // of `samples`
  std::vector<int16_t> samples;   // mono
  AudioInfo source;               // the file as it was
};

// Reads and decodes a file.
absl::StatusOr<DecodedAudio> ReadAudioFile(const std::string& path,
                                           const AudioDecodeOptions& options = {});

// Decodes an in-memory file (libsndfile virtual I/O). `name` prefixes errors.
absl::StatusOr<DecodedAudio> DecodeAudio(absl::string_view bytes, absl::string_view name,
                                         const AudioDecodeOptions& options = {});

// Reads only the header (validated as by ReadAudioFile).
absl::StatusOr<AudioInfo> ReadAudioInfo(const std::string& path,
                                        const AudioDecodeOptions& options = {});

// Writes int16 mono PCM WAV, atomically (temporary file + rename).
absl::Status WriteWavFile(const std::string& path, absl::Span<const int16_t> samples,
                          int sample_rate);

// The bytes of an int16 mono PCM WAV file.
absl::StatusOr<std::string> EncodeWav(absl::Span<const int16_t> samples, int sample_rate);

// One float sample (nominal range [-1, 1)) to int16: round(x * 32768), clipped.
int16_t FloatToInt16(float x);

// Resamples mono float audio with soxr (SOXR_HQ). Equal rates copy.
absl::StatusOr<std::vector<float>> ResampleMono(absl::Span<const float> input, int input_rate,
                                                int output_rate);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_AUDIO_IO_H_
