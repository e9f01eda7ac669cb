#include "dataserver/audio_io.h"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

constexpr int kMinSampleRate = 1000;
constexpr int kMaxSampleRate = 768000;
constexpr sf_count_t kBlockFrames = 4096;

// libsndfile virtual I/O over a read-only byte buffer.
struct MemoryReader {
  absl::string_view bytes;
  sf_count_t pos = 0;

  static sf_count_t Length(void* self) {
    return static_cast<sf_count_t>(static_cast<MemoryReader*>(self)->bytes.size());
  }
  static sf_count_t Seek(sf_count_t offset, int whence, void* self) {
    auto* r = static_cast<MemoryReader*>(self);
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? r->pos : Length(self);
    sf_count_t target = base + offset;
    if (target < 0) return -1;
    r->pos = target;
    return r->pos;
  }
  static sf_count_t Read(void* dst, sf_count_t count, void* self) {
    auto* r = static_cast<MemoryReader*>(self);
    const sf_count_t size = Length(self);
    if (count <= 0 || r->pos >= size) return 0;
    sf_count_t n = std::min(count, size - r->pos);
    std::memcpy(dst, r->bytes.data() + r->pos, static_cast<size_t>(n));
    r->pos += n;
    return n;
  }
  static sf_count_t Write(const void*, sf_count_t, void*) { return 0; }
  static sf_count_t Tell(void* self) { return static_cast<MemoryReader*>(self)->pos; }
};

// libsndfile virtual I/O appending to (and patching) a growing string.
struct MemoryWriter {
  std::string bytes;
  sf_count_t pos = 0;

  static sf_count_t Length(void* self) {
    return static_cast<sf_count_t>(static_cast<MemoryWriter*>(self)->bytes.size());
  }
  static sf_count_t Seek(sf_count_t offset, int whence, void* self) {
    auto* w = static_cast<MemoryWriter*>(self);
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? w->pos : Length(self);
    if (base + offset < 0) return -1;
    w->pos = base + offset;
    return w->pos;
  }
  static sf_count_t Read(void* dst, sf_count_t count, void* self) {
    auto* w = static_cast<MemoryWriter*>(self);
    const sf_count_t size = Length(self);
    if (count <= 0 || w->pos >= size) return 0;
    sf_count_t n = std::min(count, size - w->pos);
    std::memcpy(dst, w->bytes.data() + w->pos, static_cast<size_t>(n));
    w->pos += n;
    return n;
  }
  static sf_count_t Write(const void* src, sf_count_t count, void* self) {
    auto* w = static_cast<MemoryWriter*>(self);
    if (count <= 0) return 0;
    const size_t end = static_cast<size_t>(w->pos + count);
    if (w->bytes.size() < end) w->bytes.resize(end);
    std::memcpy(w->bytes.data() + w->pos, src, static_cast<size_t>(count));
    w->pos += count;
    return count;
  }
  static sf_count_t Tell(void* self) { return static_cast<MemoryWriter*>(self)->pos; }
};

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

struct SoxrDeleter {
  void operator()(soxr* s) const { soxr_delete(s); }
};
using SoxrPtr = std::unique_ptr<soxr, SoxrDeleter>;

std::string FormatName(int format) {
  SF_FORMAT_INFO major{}, sub{};
  major.format = format & SF_FORMAT_TYPEMASK;
  sub.format = format & SF_FORMAT_SUBMASK;
  std::string out;
  out += sf_command(nullptr, SFC_GET_FORMAT_INFO, &major, sizeof(major)) == 0 && major.name
             ? major.name
             : "unknown container";
  out += " / ";
  out += sf_command(nullptr, SFC_GET_FORMAT_INFO, &sub, sizeof(sub)) == 0 && sub.name
             ? sub.name
             : "unknown encoding";
  return out;
}

// Checks a header against the options; fills `info`.
absl::Status CheckHeader(absl::string_view name, const SF_INFO& sf, const AudioDecodeOptions& options,
                         AudioInfo* info) {
  info->sample_rate = sf.samplerate;
  info->channels = sf.channels;
  info->frames = sf.frames;
  info->format = FormatName(sf.format);
  if (sf.channels <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": header says ", sf.channels, " channels"));
  }
  if (sf.channels > options.max_channels) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": header says ", sf.channels,
                                                   " channels (more than ", options.max_channels,
                                                   ")"));
  }
  if (sf.samplerate < kMinSampleRate || sf.samplerate > kMaxSampleRate) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": header sample rate ", sf.samplerate,
                                                   " Hz outside ", kMinSampleRate, "..",
                                                   kMaxSampleRate));
  }
  if (sf.frames < 0 || static_cast<double>(sf.frames) / sf.samplerate > options.max_seconds) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name, ": header says ", sf.frames, " frames at ", sf.samplerate,
                     " Hz, over the limit of ", options.max_seconds, " s"));
  }
  if (sf.frames == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": no audio frames"));
  }
  return absl::OkStatus();
}

absl::Status OpenError(absl::string_view name, SNDFILE* file_or_null) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": not a readable audio file: ", sf_strerror(file_or_null)));
}

// libsndfile quietly shortens a WAV/AIFF whose data chunk runs past the end of
// the file; only its log says so ("data : 176400 (should be 88178)"). We
// refuse such files rather than train on half a recording. Streaming writers
// that leave the size 0 or 0xFFFFFFFF are accepted.
absl::Status CheckNotTruncated(absl::string_view name, SNDFILE* file) {
  char log[8192];
  log[0] = '\0';
  sf_command(file, SFC_GET_LOG_INFO, log, sizeof(log));
  absl::string_view text(log, strnlen(log, sizeof(log)));
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::StartsWith(line, "data") && !absl::StartsWith(line, "SSND")) continue;
    size_t colon = line.find(':');
    size_t should = line.find("(should be");
    if (colon == absl::string_view::npos || should == absl::string_view::npos) continue;
    uint64_t declared = 0, actual = 0;
    absl::string_view declared_text =
        absl::StripAsciiWhitespace(line.substr(colon + 1, should - colon - 1));
    absl::string_view actual_text = line.substr(should + 10);
    actual_text = absl::StripAsciiWhitespace(actual_text.substr(0, actual_text.find(')')));
    if (!absl::SimpleAtoi(declared_text, &declared) || !absl::SimpleAtoi(actual_text, &actual)) {
      continue;
    }
    if (declared > actual && declared != 0xFFFFFFFFu && declared != 0) {
      return absl::DataLossError(absl::StrCat(name, ": truncated: the data chunk declares ",
                                              declared, " bytes, the file holds ", actual));
    }
  }
  return absl::OkStatus();
}

// Reads every frame, downmixes to mono, resamples to options.target_rate.
absl::StatusOr<DecodedAudio> DecodeOpen(absl::string_view name, SNDFILE* file, const SF_INFO& sf,
                                        const AudioDecodeOptions& options) {
  DecodedAudio out;
  RETURN_IF_ERROR(CheckHeader(name, sf, options, &out.source));
  RETURN_IF_ERROR(CheckNotTruncated(name, file));
  const int channels = sf.channels;
  const int out_rate = options.target_rate > 0 ? options.target_rate : sf.samplerate;
  if (out_rate < kMinSampleRate || out_rate > kMaxSampleRate) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": target sample rate ", out_rate, " Hz outside ", kMinSampleRate,
                     "..", kMaxSampleRate));
  }
  out.sample_rate = out_rate;

  SoxrPtr resampler;
  if (out_rate != sf.samplerate) {
    soxr_error_t err = nullptr;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
    resampler.reset(soxr_create(sf.samplerate, out_rate, 1, &err, &io, &quality, nullptr));
    if (err != nullptr || resampler == nullptr) {
      return absl::InternalError(absl::StrCat(name, ": soxr_create: ", err ? err : "failed"));
    }
  }
  const double ratio = static_cast<double>(out_rate) / sf.samplerate;
  out.samples.reserve(static_cast<size_t>(std::ceil(static_cast<double>(sf.frames) * ratio)) + 16);

  std::vector<float> interleaved(static_cast<size_t>(kBlockFrames) * channels);
  std::vector<float> mono(kBlockFrames);
  std::vector<float> resampled(static_cast<size_t>(std::ceil(kBlockFrames * ratio)) + 64);
  auto emit = [&](const float* data, size_t n) {
    for (size_t i = 0; i < n; ++i) out.samples.push_back(FloatToInt16(data[i]));
  };
  auto push = [&](const float* in, size_t n) -> absl::Status {
    if (!resampler) {
      emit(in, n);
      return absl::OkStatus();
    }
    // in == nullptr flushes. soxr may hold output back; loop until it stops.
    size_t consumed = 0;
    while (true) {
      size_t idone = 0, odone = 0;
      soxr_error_t err = soxr_process(resampler.get(), in ? in + consumed : nullptr,
                                      in ? n - consumed : 0, &idone, resampled.data(),
                                      resampled.size(), &odone);
      if (err != nullptr) return absl::InternalError(absl::StrCat(name, ": soxr: ", err));
      emit(resampled.data(), odone);
      consumed += idone;
      if (in ? (consumed >= n && odone < resampled.size()) : odone == 0) break;
    }
    return absl::OkStatus();
  };

  int64_t read_total = 0;
  while (read_total < sf.frames) {
    sf_count_t want = std::min<sf_count_t>(kBlockFrames, sf.frames - read_total);
    sf_count_t got = sf_readf_float(file, interleaved.data(), want);
    if (got <= 0) break;
    for (sf_count_t f = 0; f < got; ++f) {
      float sum = 0;
      const float* frame = interleaved.data() + f * channels;
      for (int c = 0; c < channels; ++c) sum += frame[c];
      mono[f] = channels == 1 ? sum : sum / static_cast<float>(channels);
    }
    RETURN_IF_ERROR(push(mono.data(), static_cast<size_t>(got)));
    read_total += got;
  }
  if (sf_error(file) != SF_ERR_NO_ERROR) {
    return absl::DataLossError(absl::StrCat(name, ": decoding failed after ", read_total,
                                            " frames: ", sf_strerror(file)));
  }
  if (read_total < sf.frames) {
    return absl::DataLossError(absl::StrCat(name, ": truncated: header says ", sf.frames,
                                            " frames, only ", read_total, " could be decoded"));
  }
  if (resampler) RETURN_IF_ERROR(push(nullptr, 0));
  return out;
}

SF_VIRTUAL_IO ReaderIo() {
  SF_VIRTUAL_IO io{};
  io.get_filelen = &MemoryReader::Length;
  io.seek = &MemoryReader::Seek;
  io.read = &MemoryReader::Read;
  io.write = &MemoryReader::Write;
  io.tell = &MemoryReader::Tell;
  return io;
}

}  // namespace

int16_t FloatToInt16(float x) {
  if (!(x == x)) return 0;  // NaN
  float scaled = std::nearbyint(x * 32768.0f);
  if (scaled >= 32767.0f) return 32767;
  if (scaled <= -32768.0f) return -32768;
  return static_cast<int16_t>(scaled);
}

namespace {

// Opens a file for reading; NotFound for a missing file, else libsndfile's
// reason for refusing it.
absl::StatusOr<SndfilePtr> OpenFile(const std::string& path, SF_INFO* sf) {
  RETURN_IF_ERROR(RequireRegularFile(path));  // a FIFO would block sf_open
  SndfilePtr file(sf_open(path.c_str(), SFM_READ, sf));
  if (file) return file;
  FILE* probe = std::fopen(path.c_str(), "rb");
  if (probe == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  std::fclose(probe);
  return OpenError(path, nullptr);
}

}  // namespace

absl::StatusOr<DecodedAudio> ReadAudioFile(const std::string& path,
                                           const AudioDecodeOptions& options) {
  SF_INFO sf{};
  ASSIGN_OR_RETURN(SndfilePtr file, OpenFile(path, &sf));
  return DecodeOpen(path, file.get(), sf, options);
}

absl::StatusOr<DecodedAudio> DecodeAudio(absl::string_view bytes, absl::string_view name,
                                         const AudioDecodeOptions& options) {
  MemoryReader reader{bytes};
  SF_VIRTUAL_IO io = ReaderIo();
  SF_INFO sf{};
  SndfilePtr file(sf_open_virtual(&io, SFM_READ, &sf, &reader));
  if (!file) return OpenError(name, nullptr);
  return DecodeOpen(name, file.get(), sf, options);
}

absl::StatusOr<AudioInfo> ReadAudioInfo(const std::string& path,
                                        const AudioDecodeOptions& options) {
  SF_INFO sf{};
  ASSIGN_OR_RETURN(SndfilePtr file, OpenFile(path, &sf));
  AudioInfo info;
  RETURN_IF_ERROR(CheckHeader(path, sf, options, &info));
  RETURN_IF_ERROR(CheckNotTruncated(path, file.get()));
  return info;
}

absl::StatusOr<std::string> EncodeWav(absl::Span<const int16_t> samples, int sample_rate) {
  if (sample_rate < kMinSampleRate || sample_rate > kMaxSampleRate) {
    return absl::InvalidArgumentError(absl::StrCat("WAV sample rate ", sample_rate, " Hz outside ",
                                                   kMinSampleRate, "..", kMaxSampleRate));
  }
  MemoryWriter writer;
  writer.bytes.reserve(samples.size() * 2 + 64);
  SF_VIRTUAL_IO io{};
  io.get_filelen = &MemoryWriter::Length;
  io.seek = &MemoryWriter::Seek;
  io.read = &MemoryWriter::Read;
  io.write = &MemoryWriter::Write;
  io.tell = &MemoryWriter::Tell;
  SF_INFO sf{};
  sf.samplerate = sample_rate;
  sf.channels = 1;
  sf.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  {
    SndfilePtr file(sf_open_virtual(&io, SFM_WRITE, &sf, &writer));
    if (!file) return absl::InternalError(absl::StrCat("WAV encoder: ", sf_strerror(nullptr)));
    sf_count_t n = sf_write_short(file.get(), samples.data(), static_cast<sf_count_t>(samples.size()));
    if (n != static_cast<sf_count_t>(samples.size())) {
      return absl::InternalError(absl::StrCat("WAV encoder: ", sf_strerror(file.get())));
    }
  }  // sf_close writes the final header sizes
  return std::move(writer.bytes);
}

absl::Status WriteWavFile(const std::string& path, absl::Span<const int16_t> samples,
                          int sample_rate) {
  absl::StatusOr<std::string> bytes = EncodeWav(samples, sample_rate);
  if (!bytes.ok()) return Annotate(bytes.status(), path);
  return WriteFileAtomic(path, *bytes);
}

absl::StatusOr<std::vector<float>> ResampleMono(absl::Span<const float> input, int input_rate,
                                                int output_rate) {
  if (input_rate < kMinSampleRate || input_rate > kMaxSampleRate || output_rate < kMinSampleRate ||
      output_rate > kMaxSampleRate) {
    return absl::InvalidArgumentError(
        absl::StrCat("resample ", input_rate, " Hz -> ", output_rate, " Hz: rate out of range"));
  }
  if (input_rate == output_rate) return std::vector<float>(input.begin(), input.end());
  const size_t expected = static_cast<size_t>(
      std::llround(static_cast<double>(input.size()) * output_rate / input_rate));
  std::vector<float> out(expected);
  size_t odone = 0;
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  soxr_error_t err = soxr_oneshot(input_rate, output_rate, 1, input.data(), input.size(), nullptr,
                                  out.data(), out.size(), &odone, &io, &quality, nullptr);
  if (err != nullptr) return absl::InternalError(absl::StrCat("soxr: ", err));
  out.resize(odone);
  return out;
}

}  // namespace pianola
