#include "dataserver/window_assembler.h"

#include <algorithm>
#include <tuple>

#include "dataserver/synthetic_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::vector<int16_t> Samples(const std::string& bytes) {
  std::vector<int16_t> v(bytes.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<int16_t>(static_cast<uint8_t>(bytes[2 * i]) |
                                (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
  }
  return v;
}

template <typename T>
std::vector<uint32_t> Vec(const T& field) {
  return std::vector<uint32_t>(field.begin(), field.end());
}

// One recording of 1000 samples (sample i = i - 500) plus a 100-sample one.
std::unique_ptr<Dataset> HandDataset() {
  DatasetManifest m;
  m.set_name("hand");
  m.set_sample_rate(100);  // long notes: > 200 samples
  DatasetIndex index;
  std::vector<int16_t> audio;
  for (int r = 0; r < 2; ++r) {
    RecordingEntry* e = m.add_recordings();
    e->set_id("r" + std::to_string(r));
    e->set_piece("p" + std::to_string(r));
    e->set_timbre("grand");
    e->set_split(TRAIN);
    e->set_num_samples(r == 0 ? 1000 : 100);
    RecordingIndex* ri = index.add_recordings();
    ri->set_audio_offset(static_cast<int64_t>(audio.size()));
    ri->set_num_samples(e->num_samples());
    for (int i = 0; i < e->num_samples(); ++i) audio.push_back(static_cast<int16_t>(i - 500 + r));
  }
  RecordingIndex* ri = index.mutable_recordings(0);
  // (start, end, key, velocity), sorted by (start, key).
  const std::vector<std::tuple<int64_t, int64_t, uint32_t, uint32_t>> notes = {
      {0, 900, 21, 10},    // long, held through the span, no offset in it
      {50, 60, 60, 20},    // ends before the span
      {90, 110, 64, 30},   // ends at span start (s0 = 110): not held
      {100, 130, 62, 40},  // held, offset at 20
      {105, 400, 62, 41},  // long, same key, held, offset past span
      {110, 115, 70, 50},  // onset at 0, offset at 5
      {120, 120, 71, 51},  // zero length: onset and offset at 10
      {150, 300, 72, 52},  // onset at 40, lasts past span end (s1 = 210)
      {150, 160, 40, 53},  // onset at 40 (sorted by key after 72? no: tie broken below)
      {209, 230, 108, 54}, // onset at last sample
      {210, 220, 50, 55},  // starts at s1: outside
  };
  std::vector<std::tuple<int64_t, int64_t, uint32_t, uint32_t>> sorted = notes;
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<0>(a), std::get<2>(a)) < std::tie(std::get<0>(b), std::get<2>(b));
  });
  for (const auto& [s, e, k, v] : sorted) {
    ri->add_note_start(s);
    ri->add_note_end(e);
    ri->add_note_key(k);
    ri->add_note_velocity(v);
  }
  for (auto [a, b] : std::vector<std::pair<int64_t, int64_t>>{{10, 20}, {100, 115}, {200, 500}}) {
    ri->add_pedal_start(a);
    ri->add_pedal_end(b);
  }
  auto ds = Dataset::FromMemory(m, index, audio);
  EXPECT_TRUE(ds.ok()) << ds.status();
  return std::move(ds).value();
}

TEST(WindowAssemblerTest, ConditioningFollowsTheContractOnAHandBuiltRecording) {
  auto ds = HandDataset();
  WindowAssembler assembler(*ds);
  WindowSpec spec;
  spec.index = 3;
  spec.recording = 0;
  spec.offset = 140;  // span [110, 210) with context 30
  spec.reference_recording = 1;
  spec.reference_offset = 60;  // 40 real samples, 20 zeros
  const WindowGeometry g{70, 30, 60};
  Window w;
  ASSERT_TRUE(assembler.Assemble(spec, g, SPARSE, &w).ok());
  EXPECT_EQ(w.index(), 3u);
  EXPECT_EQ(w.timbre(), "grand");
  std::vector<int16_t> audio = Samples(w.audio());
  ASSERT_EQ(audio.size(), 100u);
  for (int t = 0; t < 100; ++t) ASSERT_EQ(audio[t], 110 + t - 500) << t;
  std::vector<int16_t> ref = Samples(w.reference());
  ASSERT_EQ(ref.size(), 60u);
  for (int t = 0; t < 60; ++t) EXPECT_EQ(ref[t], t < 40 ? 60 + t - 500 + 1 : 0) << t;

  const SparseConditioning& c = w.conditioning();
  EXPECT_THAT(Vec(c.onset_sample()), ElementsAre(0, 10, 40, 40, 99));
  EXPECT_THAT(Vec(c.onset_key()), ElementsAre(70, 71, 40, 72, 108));
  EXPECT_THAT(Vec(c.onset_velocity()), ElementsAre(50, 51, 53, 52, 54));
  EXPECT_THAT(Vec(c.held_key()), ElementsAre(21, 62, 62));
  EXPECT_THAT(Vec(c.held_velocity()), ElementsAre(10, 40, 41));
  EXPECT_THAT(Vec(c.offset_sample()), ElementsAre(5, 10, 20, 50));
  EXPECT_THAT(Vec(c.offset_key()), ElementsAre(70, 71, 62, 40));
  EXPECT_THAT(Vec(c.pedal_start()), ElementsAre(0, 90));
  EXPECT_THAT(Vec(c.pedal_end()), ElementsAre(5, 100));
  EXPECT_TRUE(w.dense_conditioning().empty());
}

TEST(WindowAssemblerTest, ContextBeforeTheRecordingIsZeros) {
  auto ds = HandDataset();
  WindowAssembler assembler(*ds);
  WindowSpec spec;
  spec.recording = 0;
  spec.offset = 5;
  spec.reference_recording = 0;
  spec.reference_offset = 500;
  Window w;
  ASSERT_TRUE(assembler.Assemble(spec, {10, 20, 10}, SPARSE, &w).ok());
  std::vector<int16_t> audio = Samples(w.audio());
  ASSERT_EQ(audio.size(), 30u);
  for (int t = 0; t < 30; ++t) EXPECT_EQ(audio[t], t < 15 ? 0 : t - 15 - 500) << t;
  // Span [-15, 15): the note at 0 has its onset at 15; pedal [10, 20) -> [25, 30).
  EXPECT_THAT(Vec(w.conditioning().onset_sample()), ElementsAre(15));
  EXPECT_THAT(Vec(w.conditioning().pedal_start()), ElementsAre(25));
  EXPECT_THAT(Vec(w.conditioning().pedal_end()), ElementsAre(30));
  EXPECT_EQ(w.conditioning().held_key_size(), 0);
}

TEST(WindowAssemblerTest, DenseRowsMatchTheSparseEvents) {
  auto ds = HandDataset();
  WindowAssembler assembler(*ds);
  WindowSpec spec;
  spec.recording = 0;
  spec.offset = 140;
  spec.reference_recording = 1;
  const int64_t span = 100;
  Window w;
  ASSERT_TRUE(assembler.Assemble(spec, {70, 30, 60}, DENSE_UINT8, &w).ok());
  const std::string& d = w.dense_conditioning();
  ASSERT_EQ(d.size(), static_cast<size_t>(kConditioningChannels * span));
  auto at = [&](int row, int t) { return static_cast<uint8_t>(d[row * span + t]); };
  // Onsets: key 70 at 0, 71 at 10, 40 and 72 at 40, 108 at 99.
  int onset_cells = 0;
  for (int row = 0; row < kPianoKeys; ++row) {
    for (int t = 0; t < span; ++t) onset_cells += at(row, t) != 0;
  }
  EXPECT_EQ(onset_cells, 5);
  EXPECT_EQ(at(70 - 21, 0), 50);
  EXPECT_EQ(at(108 - 21, 99), 54);
  // Frames: key 62 held by two notes: max velocity 41 throughout; key 70 on [0, 5).
  EXPECT_EQ(at(kPianoKeys + 62 - 21, 0), 41);
  EXPECT_EQ(at(kPianoKeys + 62 - 21, 99), 41);
  EXPECT_EQ(at(kPianoKeys + 70 - 21, 4), 50);
  EXPECT_EQ(at(kPianoKeys + 70 - 21, 5), 0);
  EXPECT_EQ(at(kPianoKeys + 71 - 21, 10), 0);  // zero length: never sounding
  EXPECT_EQ(at(kPianoKeys + 21 - 21, 50), 10);
  // Pedal: [0, 5) and [90, 100).
  EXPECT_EQ(at(176, 4), 127);
  EXPECT_EQ(at(176, 5), 0);
  EXPECT_EQ(at(176, 90), 127);
}

// An independent, brute-force statement of the contract (every note scanned).
void ExpectMatchesBruteForce(const Dataset& ds, const WindowSpec& spec, const WindowGeometry& g,
                             const Window& w) {
  const RecordingIndex& ri = ds.recording_index(spec.recording);
  const int64_t s0 = spec.offset - g.context_samples, s1 = spec.offset + g.window_samples;
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> onsets;
  std::vector<std::tuple<uint32_t, uint32_t>> offsets;
  std::vector<std::tuple<uint32_t, int, uint32_t>> held;
  for (int i = 0; i < ri.note_start_size(); ++i) {
    const int64_t a = ri.note_start(i), b = ri.note_end(i);
    const bool onset = a >= s0 && a < s1, is_held = a < s0 && b > s0;
    if (onset) onsets.emplace_back(a - s0, ri.note_key(i), ri.note_velocity(i));
    if (is_held) held.emplace_back(ri.note_key(i), i, ri.note_velocity(i));
    if ((onset || is_held) && b < s1) offsets.emplace_back(b - s0, ri.note_key(i));
  }
  std::stable_sort(onsets.begin(), onsets.end(), [](const auto& x, const auto& y) {
    return std::tie(std::get<0>(x), std::get<1>(x)) < std::tie(std::get<0>(y), std::get<1>(y));
  });
  std::sort(held.begin(), held.end());
  std::stable_sort(offsets.begin(), offsets.end());
  const SparseConditioning& c = w.conditioning();
  ASSERT_EQ(c.onset_sample_size(), static_cast<int>(onsets.size()));
  for (size_t k = 0; k < onsets.size(); ++k) {
    EXPECT_EQ(c.onset_sample(k), std::get<0>(onsets[k]));
    EXPECT_EQ(c.onset_key(k), std::get<1>(onsets[k]));
    EXPECT_EQ(c.onset_velocity(k), std::get<2>(onsets[k]));
  }
  ASSERT_EQ(c.held_key_size(), static_cast<int>(held.size()));
  for (size_t k = 0; k < held.size(); ++k) {
    EXPECT_EQ(c.held_key(k), std::get<0>(held[k]));
    EXPECT_EQ(c.held_velocity(k), std::get<2>(held[k]));
  }
  ASSERT_EQ(c.offset_sample_size(), static_cast<int>(offsets.size()));
  for (size_t k = 0; k < offsets.size(); ++k) {
    EXPECT_EQ(c.offset_sample(k), std::get<0>(offsets[k]));
    EXPECT_EQ(c.offset_key(k), std::get<1>(offsets[k]));
  }
  std::vector<uint32_t> ps, pe;
  for (int i = 0; i < ri.pedal_start_size(); ++i) {
    const int64_t a = std::max(ri.pedal_start(i), s0), b = std::min(ri.pedal_end(i), s1);
    if (a < b) {
      ps.push_back(a - s0);
      pe.push_back(b - s0);
    }
  }
  EXPECT_THAT(Vec(c.pedal_start()), ElementsAreArray(ps));
  EXPECT_THAT(Vec(c.pedal_end()), ElementsAreArray(pe));
}

TEST(WindowAssemblerTest, SampledWindowsMatchBruteForceAndTheAudio) {
  SyntheticDatasetOptions o;
  o.notes_per_second = 30;
  o.piece_seconds = {6.0, 3.0, 5.0};
  auto ds_or = MakeSyntheticDataset(o);
  ASSERT_TRUE(ds_or.ok());
  const Dataset& ds = **ds_or;
  WindowAssembler assembler(ds);
  const WindowGeometry g{4000, 3000, 5000};
  auto sampler = WindowSampler::Create(ds, TRAIN, g);
  ASSERT_TRUE(sampler.ok());
  Window w;  // reused across windows: no stale data may survive
  int held = 0, offsets = 0;
  for (uint64_t i = 0; i < (*sampler)->epoch_size(); ++i) {
    WindowSpec spec = (*sampler)->Window(11, 2, i);
    ASSERT_TRUE(assembler.Assemble(spec, g, SPARSE, &w).ok());
    ExpectMatchesBruteForce(ds, spec, g, w);
    held += w.conditioning().held_key_size();
    offsets += w.conditioning().offset_sample_size();
    std::vector<int16_t> audio = Samples(w.audio());
    ASSERT_EQ(audio.size(), 7000u);
    for (int t = 0; t < 7000; t += 97) {
      const int64_t pos = spec.offset - 3000 + t;
      EXPECT_EQ(audio[t], pos < 0 ? 0 : SyntheticSample(o.seed, spec.recording, pos));
    }
    std::vector<int16_t> ref = Samples(w.reference());
    ASSERT_EQ(ref.size(), 5000u);
    const int64_t rn = ds.recording_index(spec.reference_recording).num_samples();
    for (int t = 0; t < 5000; t += 101) {
      const int64_t pos = spec.reference_offset + t;
      EXPECT_EQ(ref[t], pos >= rn ? 0 : SyntheticSample(o.seed, spec.reference_recording, pos));
    }
  }
  EXPECT_GT(held, 0);
  EXPECT_GT(offsets, 0);
}

TEST(WindowAssemblerTest, RefusesSpecsOutsideTheDataset) {
  auto ds = HandDataset();
  WindowAssembler assembler(*ds);
  Window w;
  WindowSpec spec;
  spec.recording = 2;
  EXPECT_EQ(assembler.Assemble(spec, {10, 0, 10}, SPARSE, &w).code(), absl::StatusCode::kInternal);
  spec.recording = 1;
  spec.offset = 95;  // 95 + 10 > 100
  EXPECT_EQ(assembler.Assemble(spec, {10, 0, 10}, SPARSE, &w).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace pianola
