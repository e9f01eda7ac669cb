#include "dataserver/pianoroll.h"

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "dataserver/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

midi::Note MakeNote(int pitch, int velocity, double start, double end, int channel = 0) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.start = start;
  n.end = end;
  n.channel = channel;
  return n;
}

midi::Performance Perf(std::vector<midi::Note> notes) {
  midi::Performance p;
  p.notes = std::move(notes);
  for (const midi::Note& n : p.notes) p.end_seconds = std::max(p.end_seconds, n.end);
  return p;
}

TEST(PianoRollTest, OnsetRollShapeAndValues) {
  // 10 fps. Two onsets of A0 in bin 1 keep the louder; C8 at 0.55 s lands in
  // bin 5; out-of-range and drum notes are skipped; F = floor(0.93*10)+1 = 10.
  midi::Performance p = Perf({MakeNote(21, 64, 0.10, 0.20), MakeNote(21, 127, 0.19, 0.3),
                              MakeNote(108, 1, 0.55, 0.93), MakeNote(20, 100, 0.0, 0.5),
                              MakeNote(109, 100, 0.0, 0.5), MakeNote(60, 100, 0.0, 5.0, 9)});
  PianoRollOptions options;
  options.fps = 10;
  absl::StatusOr<PianoRoll> roll = MakePianoRoll(p, options);
  ASSERT_TRUE(roll.ok()) << roll.status();
  EXPECT_EQ(roll->frames, 10);
  ASSERT_EQ(roll->values.size(), 880u);
  EXPECT_FLOAT_EQ(roll->at(0, 1), 1.0f);
  EXPECT_FLOAT_EQ(roll->at(87, 5), static_cast<float>(1 / 127.0));
  int nonzero = 0;
  for (float v : roll->values) nonzero += v != 0;
  EXPECT_EQ(nonzero, 2);
}

TEST(PianoRollTest, FrameRollMarksSoundingFrames) {
  midi::Performance p = Perf({MakeNote(60, 64, 0.15, 0.40), MakeNote(62, 64, 0.5, 0.5),
                              MakeNote(64, 64, 0.0, 1.0)});
  PianoRollOptions options;
  options.fps = 10;
  options.kind = RollKind::kFrames;
  absl::StatusOr<PianoRoll> roll = MakePianoRoll(p, options);
  ASSERT_TRUE(roll.ok()) << roll.status();
  ASSERT_EQ(roll->frames, 11);
  auto row = [&](int pitch) {
    std::string s;
    for (int64_t f = 0; f < roll->frames; ++f) s += roll->at(pitch - 21, f) != 0 ? '#' : '.';
    return s;
  };
  EXPECT_EQ(row(60), ".###.......");  // [0.15, 0.40): frames 1..3
  EXPECT_EQ(row(62), ".....#.....");  // zero length: its onset frame
  EXPECT_EQ(row(64), "##########.");  // [0, 1.0): frames 0..9
}

TEST(PianoRollTest, SustainExtendsTheRoll) {
  midi::Performance p = Perf({MakeNote(60, 64, 0.0, 0.1)});
  midi::PedalEvent down;
  down.value = 127;
  down.time = 0.05;
  p.pedal.push_back(down);
  p.end_seconds = 2.0;  // pedal never released: down to the end
  PianoRollOptions options;
  options.fps = 100;
  absl::StatusOr<PianoRoll> roll = MakePianoRoll(p, options);
  ASSERT_TRUE(roll.ok());
  EXPECT_EQ(roll->frames, 201);
}

TEST(PianoRollTest, EmptyPerformanceHasOneFrame) {
  absl::StatusOr<PianoRoll> roll = MakePianoRoll(midi::Performance{}, PianoRollOptions{});
  ASSERT_TRUE(roll.ok());
  EXPECT_EQ(roll->frames, 1);
}

TEST(PianoRollTest, RefusesBadFpsAndHugeRolls) {
  midi::Performance p = Perf({MakeNote(60, 64, 0.0, 1e7)});
  PianoRollOptions options;
  EXPECT_EQ(MakePianoRoll(p, options).status().code(), absl::StatusCode::kResourceExhausted);
  options.fps = 0;
  EXPECT_EQ(MakePianoRoll(p, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.fps = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(MakePianoRoll(p, options).status().code(), absl::StatusCode::kInvalidArgument);
}

// The exact bytes numpy 2.x's np.save writes for np.arange(6, dtype='<f4').reshape(2, 3).
TEST(NpyTest, MatchesNumpyBytes) {
  const float data[] = {0, 1, 2, 3, 4, 5};
  const int64_t shape[] = {2, 3};
  std::string npy = EncodeNpyFloat32(data, shape);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(20, ' ');  // room for the first axis to grow to 21 digits
  header.append(128 - 10 - header.size() - 1, ' ');
  header += "\n";
  ASSERT_EQ(npy.size(), 128u + 24u);
  EXPECT_EQ(npy.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  EXPECT_EQ(npy.substr(10, 118), header);
  EXPECT_EQ(npy.substr(128 + 4, 4), std::string("\x00\x00\x80\x3f", 4));  // 1.0f
}

TEST(NpyTest, RoundTripAndErrors) {
  std::vector<float> data(88 * 7);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i) / 3;
  const int64_t shape[] = {88, 7};
  std::string npy = EncodeNpyFloat32(data, shape);
  EXPECT_EQ(npy.size() % 4, 0u);
  absl::StatusOr<NpyFloat32Array> back = ParseNpyFloat32(npy, "x.npy");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shape, (std::vector<int64_t>{88, 7}));
  EXPECT_EQ(back->data, data);
  const int64_t vec[] = {3};
  back = ParseNpyFloat32(EncodeNpyFloat32(absl::MakeSpan(data).subspan(0, 3), vec), "v.npy");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shape, (std::vector<int64_t>{3}));

  EXPECT_EQ(ParseNpyFloat32(npy.substr(0, npy.size() - 1), "x.npy").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseNpyFloat32("hello", "x.npy").status().code(), absl::StatusCode::kInvalidArgument);
  std::string f8 = npy;
  f8.replace(f8.find("<f4"), 3, "<f8");
  EXPECT_THAT(ParseNpyFloat32(f8, "x.npy").status().message(), HasSubstr("dtype '<f8'"));
  std::string huge = npy;
  huge.replace(huge.find("(88, 7)"), 7, "(88, 9999999999999)");
  EXPECT_EQ(ParseNpyFloat32(huge, "x.npy").status().code(), absl::StatusCode::kDataLoss);
}

TEST(NpyTest, WriteChecksShape) {
  const std::string path = ::testing::TempDir() + "/roll.npy";
  const float data[] = {1, 2, 3};
  const int64_t bad[] = {2, 2};
  EXPECT_EQ(WriteNpyFloat32(path, data, bad).code(), absl::StatusCode::kInvalidArgument);
  const int64_t good[] = {3};
  ASSERT_TRUE(WriteNpyFloat32(path, data, good).ok());
  absl::StatusOr<std::string> bytes = ReadFile(path);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, EncodeNpyFloat32(data, good));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace pianola
