// MIDI -> sparse events for inference, checked against the fixtures' expected
// notes and pedal changes, which were generated independently of our reader
// (scripts/gen_midi_expected.py, from pretty_midi/mido).

#include "trainer/midi_conditioning.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "dataserver/midi.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

constexpr int kRate = 16000;

std::string MidiDir() {
  const char* src = std::getenv("PIANOLA_SOURCE_DIR");
  return std::string(src != nullptr ? src : PIANOLA_SOURCE_DIR_DEFAULT) + "/tests/data/midi";
}

struct ExpectedNote {
  int pitch, velocity;
  double start, end;
};

std::vector<ExpectedNote> ReadExpectedNotes(const std::string& name) {
  std::ifstream in(MidiDir() + "/expected/" + name + ".notes.tsv");
  EXPECT_TRUE(in.good()) << name;
  std::string line;
  std::getline(in, line);  // header
  std::vector<ExpectedNote> out;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    ExpectedNote n;
    row >> n.pitch >> n.velocity >> n.start >> n.end;
    if (n.pitch >= 21 && n.pitch <= 108) out.push_back(n);
  }
  return out;
}

midi::Performance Parse(const std::string& name) {
  absl::StatusOr<midi::Performance> p = midi::ReadMidiFile(MidiDir() + "/" + name + ".mid");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : midi::Performance();
}

// Samples may differ by one where the expected file's 6 decimals round a
// time that lies half a sample from the grid.
bool Near(int64_t sample, double seconds) { return std::abs(sample - seconds * kRate) <= 1.0; }

class MidiConditioningFixtureTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MidiConditioningFixtureTest, WholePieceMatchesExpectedNotes) {
  const std::string name = GetParam();
  const midi::Performance perf = Parse(name);
  const std::vector<ExpectedNote> expected = ReadExpectedNotes(name);
  ASSERT_FALSE(expected.empty());
  // Long enough that every note ends inside the span.
  const int64_t total = static_cast<int64_t>(midi::PianoEndSeconds(perf) * kRate) + kRate;
  absl::StatusOr<MidiConditioning> c = ConditioningFromPerformance(perf, kRate, total);
  ASSERT_TRUE(c.ok()) << c.status();
  const SparseEvents& e = c->events;
  EXPECT_EQ(c->num_samples, total);
  EXPECT_EQ(c->notes, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(c->notes_cut, 0);
  ASSERT_EQ(e.onset_sample.size(), expected.size());
  ASSERT_EQ(e.offset_sample.size(), expected.size());
  EXPECT_TRUE(e.held_key.empty());  // a span starting at 0 holds nothing over

  // Expected rows are sorted by (start, pitch) like the onsets.
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(testing::Message() << name << " note " << i);
    EXPECT_EQ(e.onset_key[i], static_cast<uint32_t>(expected[i].pitch));
    EXPECT_EQ(e.onset_velocity[i], static_cast<uint32_t>(expected[i].velocity));
    EXPECT_TRUE(Near(e.onset_sample[i], expected[i].start))
        << e.onset_sample[i] << " vs " << expected[i].start;
  }
  // Offsets are ordered by (sample, key); every expected end appears once.
  for (size_t i = 1; i < e.offset_sample.size(); ++i) {
    EXPECT_LE(std::make_tuple(e.offset_sample[i - 1], e.offset_key[i - 1]),
              std::make_tuple(e.offset_sample[i], e.offset_key[i]));
  }
  std::vector<std::tuple<int, int, double>> want, got;
  for (const ExpectedNote& n : expected) want.emplace_back(n.pitch, n.velocity, n.end);
  for (size_t i = 0; i < e.offset_sample.size(); ++i) {
    got.emplace_back(e.offset_key[i], e.offset_velocity[i],
                     static_cast<double>(e.offset_sample[i]) / kRate);
  }
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::get<0>(got[i]), std::get<0>(want[i]));
    EXPECT_EQ(std::get<1>(got[i]), std::get<1>(want[i]));
    EXPECT_NEAR(std::get<2>(got[i]), std::get<2>(want[i]), 1.0 / kRate + 1e-9);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MidiConditioningFixtureTest,
                         ::testing::Values("noteseq__melody", "jazzsoft__test-c-major-scale",
                                           "partitura__mozart_k265_var1", "pythonmidi__mary",
                                           "jazzsoft__test-note-on-velocity"));

TEST(MidiConditioningTest, SpanCutsNotesAndPedal) {
  // Damper fixture: pedal down 4.5 s .. 7.5 s.
  const midi::Performance perf = Parse("jazzsoft__test-control-40-damper");
  const std::vector<ExpectedNote> expected = ReadExpectedNotes("jazzsoft__test-control-40-damper");
  const int64_t total = 6 * kRate;  // cut inside the pedal interval
  absl::StatusOr<MidiConditioning> c = ConditioningFromPerformance(perf, kRate, total);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->events.pedal_start.size(), 1u);
  EXPECT_EQ(c->events.pedal_start[0], 72000u);
  EXPECT_EQ(c->events.pedal_end[0], static_cast<uint32_t>(total));

  int64_t starting = 0, ending = 0;
  for (const ExpectedNote& n : expected) {
    if (std::llround(n.start * kRate) < total) ++starting;
    if (std::llround(n.start * kRate) < total && std::llround(n.end * kRate) < total) ++ending;
  }
  EXPECT_EQ(c->notes, starting);
  EXPECT_EQ(static_cast<int64_t>(c->events.offset_sample.size()), ending);
  EXPECT_EQ(c->notes_cut, starting - ending);
  for (uint32_t s : c->events.onset_sample) EXPECT_LT(s, total);
  for (uint32_t s : c->events.offset_sample) EXPECT_LT(s, total);
}

TEST(MidiConditioningTest, DrumsAndOutOfRangeKeysAreNotPiano) {
  midi::Performance perf;
  perf.notes.push_back({.pitch = 60, .velocity = 90, .start = 0.5, .end = 1.0, .channel = 0});
  perf.notes.push_back({.pitch = 38, .velocity = 90, .start = 0.5, .end = 1.0,
                        .channel = midi::kDrumChannel});
  perf.notes.push_back({.pitch = 12, .velocity = 90, .start = 0.5, .end = 1.0, .channel = 0});
  perf.end_seconds = 1.0;
  absl::StatusOr<MidiConditioning> c = ConditioningFromPerformance(perf, kRate, kRate * 2);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->events.onset_key.size(), 1u);
  EXPECT_EQ(c->events.onset_key[0], 60u);
  EXPECT_EQ(c->events.onset_sample[0], 8000u);
  EXPECT_EQ(c->events.offset_sample[0], 16000u);
  EXPECT_EQ(c->events.offset_velocity[0], 90u);
}

TEST(MidiConditioningTest, RejectsBadSpans) {
  midi::Performance perf;
  EXPECT_EQ(ConditioningFromPerformance(perf, kRate, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConditioningFromPerformance(perf, 0, 100).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConditioningFromPerformance(perf, kRate, int64_t{1} << 33).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
