// Spectrogram PNGs: the file is a valid PNG (signature, IHDR, CRCs, IDAT that
// inflates to exactly height * (1 + 3 * width) bytes holding the pixels), and
// the picture shows what it claims (a tone's row, 0 dBFS in yellow, silence
// in the darkest colour, low frequencies at the bottom).

#include "trainer/spectrogram_png.h"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

uint32_t BigEndian32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
}

struct DecodedPng {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, colour_type = 0, interlace = 0;
  std::vector<std::string> chunk_types;
  std::string idat;      // concatenated IDAT data
  std::string inflated;  // idat inflated
};

// A strict reader of the PNG subset we write; fails the test on any defect.
DecodedPng ReadPng(const std::string& png) {
  DecodedPng d;
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t length = BigEndian32(png, at);
    EXPECT_LE(at + 12 + length, png.size());
    if (at + 12 + length > png.size()) break;
    const std::string type = png.substr(at + 4, 4);
    const std::string data = png.substr(at + 8, length);
    const uint32_t crc = BigEndian32(png, at + 8 + length);
    uLong want = crc32(0L, Z_NULL, 0);
    want = crc32(want, reinterpret_cast<const Bytef*>(png.data() + at + 4), 4 + length);
    EXPECT_EQ(crc, static_cast<uint32_t>(want)) << "CRC of " << type;
    d.chunk_types.push_back(type);
    if (type == "IHDR") {
      EXPECT_EQ(length, 13u);
      d.width = BigEndian32(data, 0);
      d.height = BigEndian32(data, 4);
      d.bit_depth = data[8];
      d.colour_type = data[9];
      d.interlace = data[12];
    } else if (type == "IDAT") {
      d.idat += data;
    }
    at += 12 + length;
  }
  EXPECT_EQ(at, png.size()) << "trailing bytes";
  // Inflate with room to spare, so an IDAT holding too many bytes shows.
  const size_t expected = static_cast<size_t>(d.height) * (1 + 3 * d.width);
  std::string out(expected + 1024, '\0');
  uLongf out_size = out.size();
  const int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &out_size,
                            reinterpret_cast<const Bytef*>(d.idat.data()), d.idat.size());
  EXPECT_EQ(rc, Z_OK);
  out.resize(out_size);
  d.inflated = out;
  return d;
}

std::vector<float> Sine(double hz, double amplitude, int samples, int rate) {
  std::vector<float> out(samples);
  for (int i = 0; i < samples; ++i) {
    out[i] = static_cast<float>(amplitude * std::sin(2 * std::numbers::pi * hz * i / rate));
  }
  return out;
}

TEST(SpectrogramPngTest, EncodesAValidPngHoldingThePixels) {
  RgbImage image;
  image.width = 7;
  image.height = 5;
  for (int i = 0; i < 7 * 5 * 3; ++i) image.rgb.push_back(static_cast<uint8_t>(i * 7));
  absl::StatusOr<std::string> png = EncodePng(image);
  ASSERT_TRUE(png.ok()) << png.status();
  const DecodedPng d = ReadPng(*png);
  EXPECT_THAT(d.chunk_types, testing::ElementsAre("IHDR", "IDAT", "IEND"));
  EXPECT_EQ(d.width, 7u);
  EXPECT_EQ(d.height, 5u);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.colour_type, 2);
  EXPECT_EQ(d.interlace, 0);
  ASSERT_EQ(d.inflated.size(), 5u * (1 + 3 * 7));
  for (int y = 0; y < 5; ++y) {
    EXPECT_EQ(d.inflated[y * 22], '\0') << "filter byte of row " << y;
    for (int x = 0; x < 21; ++x) {
      EXPECT_EQ(static_cast<uint8_t>(d.inflated[y * 22 + 1 + x]), image.rgb[y * 21 + x]);
    }
  }
}

TEST(SpectrogramPngTest, RejectsInconsistentImages) {
  RgbImage image;
  image.width = 3;
  image.height = 2;
  image.rgb.resize(17);
  EXPECT_EQ(EncodePng(image).status().code(), absl::StatusCode::kInvalidArgument);
  image.width = 0;
  image.rgb.clear();
  EXPECT_EQ(EncodePng(image).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpectrogramPngTest, ViridisEnds) {
  uint8_t rgb[3];
  ViridisColour(0, rgb);
  EXPECT_THAT(std::vector<int>(rgb, rgb + 3), testing::ElementsAre(68, 1, 84));
  ViridisColour(1, rgb);
  EXPECT_THAT(std::vector<int>(rgb, rgb + 3), testing::ElementsAre(253, 231, 37));
  ViridisColour(-5, rgb);
  EXPECT_EQ(rgb[0], 68);
  ViridisColour(std::nan(""), rgb);
  EXPECT_EQ(rgb[0], 68);
  ViridisColour(0.5, rgb);
  EXPECT_THAT(std::vector<int>(rgb, rgb + 3), testing::ElementsAre(38, 130, 142));
}

TEST(SpectrogramPngTest, ToneShowsInItsRowAtFullScale) {
  constexpr int kRate = 16000;
  SpectrogramOptions o;
  o.n_fft = 512;
  o.hop = 128;
  // 1 kHz is exactly bin 32 of a 512-point FFT at 16 kHz.
  const std::vector<float> tone = Sine(1000, 1.0, kRate / 2, kRate);
  absl::StatusOr<RgbImage> image = RenderSpectrogram(tone, kRate, o);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->height, 257);
  EXPECT_EQ(image->width, 1 + kRate / 2 / 128);
  const int col = image->width / 2;
  auto pixel = [&](int row, int c) { return image->rgb[(row * image->width + col) * 3 + c]; };
  // Brightest (by the green channel, monotone in viridis) row: bin 32 from the bottom.
  int best = -1, best_green = -1;
  for (int row = 0; row < image->height; ++row) {
    if (pixel(row, 1) > best_green) best_green = pixel(row, 1), best = row;
  }
  EXPECT_EQ(best, image->height - 1 - 32);
  // A full-scale sine is 0 dBFS: the top of the colour map (within rounding).
  EXPECT_NEAR(pixel(best, 0), 253, 3);
  EXPECT_NEAR(pixel(best, 1), 231, 3);
  // Far from the tone the Hann sidelobes are below the range: darkest colour.
  EXPECT_EQ(pixel(image->height - 1 - 200, 0), 68);
  EXPECT_EQ(pixel(image->height - 1 - 200, 1), 1);
}

TEST(SpectrogramPngTest, QuieterIsDarkerAndSilenceIsDarkest) {
  constexpr int kRate = 16000;
  SpectrogramOptions o;
  o.n_fft = 256;
  const std::vector<float> loud = Sine(2000, 0.5, 4000, kRate);
  const std::vector<float> soft = Sine(2000, 0.005, 4000, kRate);
  const std::vector<float> silence(4000, 0.0f);
  absl::StatusOr<RgbImage> a = RenderSpectrogram(loud, kRate, o);
  absl::StatusOr<RgbImage> b = RenderSpectrogram(soft, kRate, o);
  absl::StatusOr<RgbImage> s = RenderSpectrogram(silence, kRate, o);
  ASSERT_TRUE(a.ok() && b.ok() && s.ok());
  const int row = a->height - 1 - 32;  // 2 kHz = bin 32 of 256 at 16 kHz
  const int col = a->width / 2;
  const size_t at = (static_cast<size_t>(row) * a->width + col) * 3 + 1;
  EXPECT_GT(a->rgb[at], b->rgb[at] + 40);
  for (size_t i = 0; i < s->rgb.size(); i += 3) {
    ASSERT_EQ(s->rgb[i], 68);
    ASSERT_EQ(s->rgb[i + 1], 1);
    ASSERT_EQ(s->rgb[i + 2], 84);
  }
}

TEST(SpectrogramPngTest, AutomaticHopBoundsTheWidth) {
  SpectrogramOptions o;
  o.n_fft = 256;
  o.max_width = 100;
  const std::vector<float> audio(160000, 0.0f);  // 10 s at 16 kHz
  absl::StatusOr<RgbImage> image = RenderSpectrogram(audio, 16000, o);
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_LE(image->width, 101);  // 1 + samples / hop
  EXPECT_GE(image->width, 90);
  // Short audio: the hop does not fall below n_fft / 16.
  const std::vector<float> short_audio(160, 0.0f);
  image = RenderSpectrogram(short_audio, 16000, o);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->width, 1 + 160 / 16);
}

TEST(SpectrogramPngTest, BadOptionsAndEmptyAudio) {
  const std::vector<float> audio(1000, 0.0f);
  SpectrogramOptions o;
  o.n_fft = 1000;
  EXPECT_THAT(RenderSpectrogram(audio, 16000, o).status().message(),
              testing::HasSubstr("n_fft"));
  o = SpectrogramOptions();
  o.dynamic_range_db = 0;
  EXPECT_EQ(RenderSpectrogram(audio, 16000, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderSpectrogram({}, 16000).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RenderSpectrogram(audio, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SpectrogramPngTest, WritesTheFileAndNamesItInErrors) {
  const std::string dir = testing::TempDir() + "/spectrogram_png_test";
  std::filesystem::create_directories(dir);
  const std::vector<float> tone = Sine(440, 0.3, 8000, 16000);
  ASSERT_TRUE(WriteSpectrogramPng(dir + "/a.png", tone, 16000).ok());
  absl::StatusOr<std::string> bytes = ReadFile(dir + "/a.png");
  ASSERT_TRUE(bytes.ok());
  const DecodedPng d = ReadPng(*bytes);
  EXPECT_EQ(d.height, 513u);
  EXPECT_EQ(d.inflated.size(), d.height * (1 + 3 * d.width));
  absl::Status bad = WriteSpectrogramPng(dir + "/missing/dir/b.png", tone, 16000);
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(bad.message(), testing::HasSubstr("missing/dir/b.png"));
  bad = WriteSpectrogramPng(dir + "/c.png", {}, 16000);
  EXPECT_THAT(bad.message(), testing::HasSubstr("c.png"));
  (void)RemoveTree(dir);
}

}  // namespace
}  // namespace pianola
