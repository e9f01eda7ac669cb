#include "dataserver/audio_io.h"

#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

class AudioIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("audio_io_test_", ::getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes interleaved float frames with libsndfile in `format`.
  void WriteWith(const std::string& path, int format, int rate, int channels,
                 const std::vector<float>& interleaved) {
    SF_INFO info{};
    info.samplerate = rate;
    info.channels = channels;
    info.format = format;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
    ASSERT_EQ(sf_writef_float(f, interleaved.data(), interleaved.size() / channels),
              static_cast<sf_count_t>(interleaved.size() / channels));
    sf_close(f);
  }

  std::filesystem::path dir_;
};

std::vector<float> Sine(double freq, int rate, int frames, double amp) {
  std::vector<float> out(frames);
  for (int i = 0; i < frames; ++i) out[i] = amp * std::sin(2 * M_PI * freq * i / rate);
  return out;
}

// Power of `freq` in `x` (Goertzel), normalised by length.
double ToneEnergy(const std::vector<int16_t>& x, double freq, int rate) {
  double w = 2 * M_PI * freq / rate, re = 0, im = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    re += x[i] * std::cos(w * i);
    im += x[i] * std::sin(w * i);
  }
  return (re * re + im * im) / (static_cast<double>(x.size()) * x.size());
}

int16_t Peak(const std::vector<int16_t>& x, size_t from, size_t to) {
  int peak = 0;
  for (size_t i = from; i < to && i < x.size(); ++i) peak = std::max(peak, std::abs(int{x[i]}));
  return static_cast<int16_t>(peak);
}

TEST_F(AudioIoTest, WavRoundTripIsExactAtTheSameRate) {
  std::vector<int16_t> samples;
  for (int i = 0; i < 5000; ++i) samples.push_back(static_cast<int16_t>((i * 7919) % 65536 - 32768));
  samples.push_back(32767);
  samples.push_back(-32768);
  ASSERT_TRUE(WriteWavFile(Path("a.wav"), samples, 16000).ok());
  AudioDecodeOptions options;
  options.target_rate = 16000;
  auto decoded = ReadAudioFile(Path("a.wav"), options);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sample_rate, 16000);
  EXPECT_EQ(decoded->source.channels, 1);
  EXPECT_EQ(decoded->source.frames, static_cast<int64_t>(samples.size()));
  EXPECT_EQ(decoded->samples, samples);

  options.target_rate = 0;  // keep the source rate
  decoded = ReadAudioFile(Path("a.wav"), options);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sample_rate, 16000);
  EXPECT_EQ(decoded->samples, samples);
}

TEST_F(AudioIoTest, StereoAt44100BecomesMonoAt16000WithTheSameTone) {
  const int frames = 44100;
  std::vector<float> tone = Sine(440, 44100, frames, 0.5);
  std::vector<float> interleaved;
  for (float s : tone) {
    interleaved.push_back(s);
    interleaved.push_back(s);
  }
  WriteWith(Path("stereo.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, interleaved);
  auto decoded = ReadAudioFile(Path("stereo.wav"));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sample_rate, 16000);
  EXPECT_EQ(decoded->source.sample_rate, 44100);
  EXPECT_EQ(decoded->source.channels, 2);
  EXPECT_NEAR(static_cast<double>(decoded->samples.size()), 16000.0, 2.0);
  // Amplitude kept (0.5 full scale) away from the filter's edges; tone kept.
  EXPECT_NEAR(Peak(decoded->samples, 1000, 15000), 16384, 16384 * 0.02);
  EXPECT_GT(ToneEnergy(decoded->samples, 440, 16000), 1000 * ToneEnergy(decoded->samples, 1000, 16000));
}

TEST_F(AudioIoTest, DownmixAveragesChannels) {
  std::vector<float> tone = Sine(300, 16000, 8000, 0.5);
  std::vector<float> opposite, one_side;
  for (float s : tone) {
    opposite.insert(opposite.end(), {s, -s});
    one_side.insert(one_side.end(), {s, 0.0f});
  }
  WriteWith(Path("opposite.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, opposite);
  WriteWith(Path("one_side.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 2, one_side);
  auto a = ReadAudioFile(Path("opposite.wav"));
  auto b = ReadAudioFile(Path("one_side.wav"));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LE(Peak(a->samples, 0, a->samples.size()), 1);
  EXPECT_NEAR(Peak(b->samples, 0, b->samples.size()), 8192, 2);
}

TEST_F(AudioIoTest, FloatInputIsClippedRoundedAndNanSafe) {
  std::vector<float> values = {1.5f, -2.0f, NAN, 0.25f, -0.25f, 1.0f / 65536, -1.0f};
  WriteWith(Path("float.wav"), SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, values);
  auto decoded = ReadAudioFile(Path("float.wav"));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_THAT(decoded->samples, ::testing::ElementsAre(32767, -32768, 0, 8192, -8192, 0, -32768));
  EXPECT_EQ(FloatToInt16(0.5f / 32768), 0);  // round half to even
  EXPECT_EQ(FloatToInt16(1.5f / 32768), 2);
  EXPECT_EQ(FloatToInt16(-3.0f / 32768), -3);
}

TEST_F(AudioIoTest, DecodesFlacAndOggVorbis) {
  std::vector<float> tone = Sine(523.25, 48000, 24000, 0.4);
  WriteWith(Path("a.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 48000, 1, tone);
  WriteWith(Path("a.ogg"), SF_FORMAT_OGG | SF_FORMAT_VORBIS, 48000, 1, tone);
  for (const char* name : {"a.flac", "a.ogg"}) {
    SCOPED_TRACE(name);
    auto decoded = ReadAudioFile(Path(name));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->source.sample_rate, 48000);
    EXPECT_NEAR(static_cast<double>(decoded->samples.size()), 8000.0, 2.0);
    EXPECT_NEAR(Peak(decoded->samples, 500, 7500), 0.4 * 32768, 0.4 * 32768 * 0.05);
    EXPECT_GT(ToneEnergy(decoded->samples, 523.25, 16000),
              1000 * ToneEnergy(decoded->samples, 1500, 16000));
  }
}

TEST_F(AudioIoTest, MemoryDecodeMatchesFileDecode) {
  std::vector<float> tone = Sine(220, 22050, 11025, 0.3);
  WriteWith(Path("m.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050, 1, tone);
  auto bytes = ReadFile(Path("m.flac"));
  ASSERT_TRUE(bytes.ok());
  auto from_file = ReadAudioFile(Path("m.flac"));
  auto from_memory = DecodeAudio(*bytes, "m.flac");
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  ASSERT_TRUE(from_memory.ok()) << from_memory.status();
  EXPECT_EQ(from_file->samples, from_memory->samples);
}

TEST_F(AudioIoTest, ResampleMonoKeepsLengthAndTone) {
  std::vector<float> tone = Sine(1000, 44100, 44100, 0.5);
  auto out = ResampleMono(tone, 44100, 16000);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_NEAR(static_cast<double>(out->size()), 16000, 1);
  EXPECT_FALSE(ResampleMono(tone, 0, 16000).ok());
}

// --- bad input: every class names the file ------------------------------------

std::string ValidWavBytes() {
  std::vector<int16_t> samples(1600, 1000);
  return *EncodeWav(samples, 16000);
}

TEST_F(AudioIoTest, MissingFileIsNotFound) {
  auto r = ReadAudioFile(Path("nope.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("nope.wav"));
}

TEST_F(AudioIoTest, NotAudioIsRefused) {
  ASSERT_TRUE(WriteFileAtomic(Path("text.wav"), "this is not a sound file at all, just text\n").ok());
  auto r = ReadAudioFile(Path("text.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("text.wav"));
  ASSERT_TRUE(WriteFileAtomic(Path("empty.wav"), "").ok());
  r = ReadAudioFile(Path("empty.wav"));
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("empty.wav"));
  EXPECT_FALSE(DecodeAudio("", "mem").ok());
}

TEST_F(AudioIoTest, TruncatedDataChunkIsDataLoss) {
  std::string bytes = ValidWavBytes();
  ASSERT_TRUE(WriteFileAtomic(Path("cut.wav"), bytes.substr(0, bytes.size() / 2)).ok());
  auto r = ReadAudioFile(Path("cut.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("cut.wav"));
  EXPECT_THAT(r.status().message(), HasSubstr("truncated"));
  EXPECT_EQ(DecodeAudio(bytes.substr(0, bytes.size() - 100), "mem.wav").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadAudioInfo(Path("cut.wav")).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(AudioIoTest, TruncatedHeaderIsRefused) {
  std::string bytes = ValidWavBytes();
  for (size_t cut : {4, 12, 30, 43}) {
    auto r = DecodeAudio(bytes.substr(0, cut), absl::StrCat("head", cut, ".wav"));
    EXPECT_FALSE(r.ok()) << cut;
    EXPECT_THAT(r.status().message(), HasSubstr(absl::StrCat("head", cut, ".wav")));
  }
}

// Canonical 44-byte WAV header: channels at byte 22 (u16), sample rate at 24 (u32).
std::string Patch16(std::string bytes, size_t at, uint16_t v) {
  bytes[at] = static_cast<char>(v & 0xff);
  bytes[at + 1] = static_cast<char>(v >> 8);
  return bytes;
}
std::string Patch32(std::string bytes, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return bytes;
}

TEST_F(AudioIoTest, ZeroOrAbsurdChannelsAreRefused) {
  std::string bytes = ValidWavBytes();
  for (uint16_t channels : {0, 1000, 65535}) {
    auto r = DecodeAudio(Patch16(bytes, 22, channels), "chan.wav");
    EXPECT_FALSE(r.ok()) << channels;
    EXPECT_THAT(r.status().message(), HasSubstr("chan.wav"));
  }
}

TEST_F(AudioIoTest, AbsurdSampleRatesAreRefused) {
  std::string bytes = ValidWavBytes();
  for (uint32_t rate : {0u, 10u, 5000000u, 0xFFFFFFFFu}) {
    auto r = DecodeAudio(Patch32(bytes, 24, rate), "rate.wav");
    EXPECT_FALSE(r.ok()) << rate;
    EXPECT_THAT(r.status().message(), HasSubstr("rate.wav"));
  }
}

TEST_F(AudioIoTest, OverlongAudioIsResourceExhausted) {
  AudioDecodeOptions options;
  options.max_seconds = 0.05;  // the file holds 0.1 s
  auto r = DecodeAudio(ValidWavBytes(), "long.wav", options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("long.wav"));
  // A data chunk claiming 4 GB in a small file is refused, never allocated.
  r = DecodeAudio(Patch32(ValidWavBytes(), 40, 0xFFFFFFF0u), "huge.wav");
  EXPECT_FALSE(r.ok());
}

TEST_F(AudioIoTest, EmptyAudioIsRefused) {
  auto bytes = EncodeWav({}, 16000);
  ASSERT_TRUE(bytes.ok());
  auto r = DecodeAudio(*bytes, "silent.wav");
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("silent.wav"));
}

TEST_F(AudioIoTest, BadWriteRateIsRefused) {
  std::vector<int16_t> samples(10);
  EXPECT_EQ(WriteWavFile(Path("x.wav"), samples, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(WriteWavFile(Path("no/such/dir/x.wav"), samples, 16000).ok());
}

}  // namespace
}  // namespace pianola
